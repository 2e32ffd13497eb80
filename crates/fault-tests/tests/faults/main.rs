//! Fault-injection tests: each landed function runs in-process through its Lambda handler,
//! with its AWS endpoint pointed at a fault proxy in front of moto. Each test states the
//! invariant it holds the function to and checks it after every delivery, through a client
//! that talks to moto directly.

mod chaos;
mod cost;
mod dr;
mod export;
mod lifecycle;
mod loadtest;
mod manifest;
mod scaler;

use std::io::Read;

/// POSTs JSON to moto's own API (`/moto-api/...`) directly, not through any proxy; returns
/// the HTTP status.
pub async fn moto_post(m: &suite_tests::Moto, path: &str, body: &serde_json::Value) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", m.port))
        .await
        .expect("connect moto");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        m.port,
        body.len()
    );
    sock.write_all(req.as_bytes()).await.expect("send");
    let mut resp = String::new();
    sock.read_to_string(&mut resp).await.expect("read");
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

pub fn gunzip(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![];
    flate2::read::MultiGzDecoder::new(b)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// An S3 notification for these keys, form-URL-encoded as S3 sends them.
pub fn s3_event(bucket: &str, keys: &[(&str, &str)]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = keys
        .iter()
        .map(|(k, seq)| {
            let enc: String = k
                .split('/')
                .map(|p| form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>())
                .collect::<Vec<_>>()
                .join("/");
            serde_json::json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": {"key": enc, "sequencer": seq}}})
        })
        .collect();
    serde_json::json!({ "Records": records })
}
