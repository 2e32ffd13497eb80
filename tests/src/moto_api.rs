//! moto's own API (`/moto-api/...`): configuration moto takes over HTTP rather than through an
//! AWS API (queued Cost Explorer results, the state manager's transitions, …).

use crate::Moto;

/// POSTs JSON to moto's own API (`/moto-api/...`) directly, not through any proxy; returns
/// the HTTP status (0 if the answer has none).
pub async fn moto_post(m: &Moto, path: &str, body: &serde_json::Value) -> u16 {
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
