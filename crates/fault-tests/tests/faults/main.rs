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
