//! Prometheus remote write 1.0: a protobuf `WriteRequest` (hand-written prost structs, no
//! protoc), compressed with snappy's BLOCK format (not the framed stream format), POSTed with
//! the headers the spec requires. Labels are sorted by name, timestamps are milliseconds.

use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

pub const CONTENT_TYPE: &str = "application/x-protobuf";
pub const CONTENT_ENCODING: &str = "snappy";
pub const VERSION: &str = "0.1.0";
pub const USER_AGENT: &str = concat!("loadtest-coordinator/", env!("CARGO_PKG_VERSION"));

/// One series: a name, its labels and one sample. Non-finite values are left out (Prometheus
/// would store them, but they mean "no data" here).
pub fn series(name: &str, labels: &[(&str, &str)], value: f64, ts_ms: i64) -> Option<TimeSeries> {
    if !value.is_finite() {
        return None;
    }
    let mut l: Vec<Label> = labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| Label {
            name: k.to_string(),
            value: v.to_string(),
        })
        .chain(std::iter::once(Label {
            name: "__name__".into(),
            value: name.into(),
        }))
        .collect();
    l.sort_by(|a, b| a.name.cmp(&b.name));
    l.dedup_by(|a, b| a.name == b.name);
    Some(TimeSeries {
        labels: l,
        samples: vec![Sample {
            value,
            timestamp: ts_ms,
        }],
    })
}

/// protobuf, then snappy block format.
pub fn encode(req: &WriteRequest) -> Result<Vec<u8>, String> {
    let pb = req.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&pb)
        .map_err(|e| format!("snappy: {e}"))
}

/// The inverse of [`encode`] (tests, and a sanity check of what is sent).
pub fn decode(body: &[u8]) -> Result<WriteRequest, String> {
    let pb = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    WriteRequest::decode(pb.as_slice()).map_err(|e| format!("protobuf: {e}"))
}

/// How a push is retried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all (the first one included).
    pub attempts: u32,
    /// The wait before the first retry; doubled for each next one, ±25 % jitter.
    pub base: std::time::Duration,
    /// No wait is longer (a `Retry-After` above it too).
    pub max: std::time::Duration,
}

impl Default for Retry {
    /// 4 attempts, 0.5 s then 1 s then 2 s: a restarting receiver gets about 4 s, and the
    /// run's artifacts (written before) never wait on it for long.
    fn default() -> Self {
        Retry {
            attempts: 4,
            base: std::time::Duration::from_millis(500),
            max: std::time::Duration::from_secs(5),
        }
    }
}

/// Whether the remote-write spec lets a sender retry an answer: 5xx and 429 yes (the
/// receiver is overloaded or failing), any other 4xx never (it refused the data, and sending
/// the same data again gets the same answer).
pub fn retryable(status: reqwest::StatusCode) -> bool {
    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

/// AWS Signature Version 4 for Amazon Managed Service for Prometheus (service `aps`): its
/// remote-write endpoint refuses an unsigned request with 403. The credentials are the
/// function's (the SDK's provider chain: the execution role on Lambda), fetched per push so a
/// rotated session is picked up.
#[derive(Clone, Debug)]
pub struct SigV4 {
    pub region: String,
    pub credentials: aws_credential_types::provider::SharedCredentialsProvider,
}

/// The service name AMP signs for.
pub const AMP_SERVICE: &str = "aps";

/// The region of an AMP remote-write URL (`https://aps-workspaces.<region>.amazonaws.com/…`).
pub fn amp_region(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split(['/', ':']).next()?;
    let rest = host.strip_prefix("aps-workspaces.")?;
    let region = rest.strip_suffix(".amazonaws.com")?;
    (!region.is_empty() && !region.contains('.')).then(|| region.to_string())
}

impl SigV4 {
    /// The headers that sign a POST of `body` to `url` with `headers` (each of which is
    /// signed): `Authorization`, `X-Amz-Date` and, for temporary credentials,
    /// `X-Amz-Security-Token`.
    pub async fn sign(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        use aws_credential_types::provider::ProvideCredentials;
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        let creds = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("SigV4: no AWS credentials: {e}"))?;
        let identity: aws_smithy_runtime_api::client::identity::Identity = creds.into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(AMP_SERVICE)
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("SigV4: {e}"))?
            .into();
        // iam-action: aps:RemoteWrite (infra/loadtest_coordinator.tf grants it on the workspace)
        let request = SignableRequest::new(
            "POST",
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| format!("SigV4: {e}"))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| format!("SigV4: {e}"))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

/// POSTs the body, retrying 5xx, 429 and transport errors (honouring `Retry-After` in
/// seconds) and never another 4xx. `Ok(attempts)`; errors carry the receiver's status and
/// message and how many attempts were made.
pub async fn push(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    retry: Retry,
) -> Result<u32, String> {
    push_signed(client, url, body, retry, None).await
}

/// [`push`], each attempt signed with SigV4 when `sigv4` is set (signed anew per attempt:
/// the signature carries the time, and AMP refuses one more than 5 minutes old).
pub async fn push_signed(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    retry: Retry,
    sigv4: Option<&SigV4>,
) -> Result<u32, String> {
    let mut last = String::new();
    let headers = [
        ("content-encoding", CONTENT_ENCODING),
        ("content-type", CONTENT_TYPE),
        ("x-prometheus-remote-write-version", VERSION),
    ];
    for attempt in 1..=retry.attempts.max(1) {
        let mut extra: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(signer) = sigv4 {
            extra.extend(signer.sign(url, &headers, &body).await?);
        }
        let mut map = reqwest::header::HeaderMap::new();
        for (k, v) in &extra {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| format!("header {k}: {e}"))?;
            let value = reqwest::header::HeaderValue::from_str(v)
                .map_err(|e| format!("header {k}: {e}"))?;
            map.insert(name, value);
        }
        let sent = client
            .post(url)
            .header("User-Agent", USER_AGENT)
            .headers(map)
            .body(body.clone())
            .send()
            .await;
        let mut wait = None;
        match sent {
            Ok(resp) if resp.status().is_success() => return Ok(attempt),
            Ok(resp) => {
                let status = resp.status();
                wait = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(std::time::Duration::from_secs);
                let text = resp.text().await.unwrap_or_default();
                last = format!("POST {url}: HTTP {status}: {}", text.trim());
                if !retryable(status) {
                    return Err(format!(
                        "{last} (not retried: the receiver refused the data)"
                    ));
                }
            }
            Err(e) => last = format!("POST {url}: {e}"),
        }
        if attempt < retry.attempts {
            let backoff = retry.base.saturating_mul(1 << (attempt - 1).min(16));
            let jitter = 0.75 + rand::random::<f64>() * 0.5;
            let pause = wait
                .unwrap_or_else(|| backoff.mul_f64(jitter))
                .min(retry.max);
            tracing::info!(attempt, wait_ms = pause.as_millis() as u64, error = %last, "remote write: retrying");
            tokio::time::sleep(pause).await;
        }
    }
    Err(format!("{last} (after {} attempts)", retry.attempts.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver answering a scripted list of statuses (then 204), counting requests; each
    /// answer is a whole HTTP/1.1 response on its own connection.
    async fn scripted(
        answers: Vec<&'static str>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                // Read the headers and the body (Content-Length).
                loop {
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let i = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let status = answers.get(i).copied().unwrap_or("204 No Content");
                let extra = if status.starts_with("429") {
                    "Retry-After: 0\r\n"
                } else {
                    ""
                };
                let resp = format!("HTTP/1.1 {status}\r\n{extra}Content-Length: 4\r\nConnection: close\r\n\r\nnope");
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        (url, count)
    }

    fn quick() -> Retry {
        Retry {
            attempts: 4,
            base: std::time::Duration::from_millis(5),
            max: std::time::Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn pushes_retry_5xx_and_429_and_never_another_4xx() {
        let client = reqwest::Client::new();
        let (url, n) = scripted(vec!["503 Service Unavailable", "429 Too Many Requests"]).await;
        assert_eq!(push(&client, &url, b"x".to_vec(), quick()).await, Ok(3));
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 3);

        let (url, n) = scripted(vec!["400 Bad Request"]).await;
        let e = push(&client, &url, b"x".to_vec(), quick())
            .await
            .unwrap_err();
        assert!(e.contains("HTTP 400") && e.contains("not retried"), "{e}");
        assert_eq!(
            n.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "a 400 is never sent twice"
        );

        let (url, n) = scripted(vec!["500 Internal Server Error"; 10]).await;
        let e = push(&client, &url, b"x".to_vec(), quick())
            .await
            .unwrap_err();
        assert!(
            e.contains("HTTP 500") && e.contains("after 4 attempts"),
            "{e}"
        );
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 4);

        // Nobody listening: transport errors are retried too, then reported.
        let e = push(
            &client,
            "http://127.0.0.1:9/api/v1/write",
            b"x".to_vec(),
            quick(),
        )
        .await
        .unwrap_err();
        assert!(e.contains("after 4 attempts"), "{e}");
    }

    #[test]
    fn round_trip_with_sorted_labels() {
        let s = series(
            "k6_http_req_duration_p95",
            &[
                ("scenario", "quote-generation"),
                ("environment", "prod"),
                ("empty", ""),
            ],
            0.412,
            1_700_000_000_123,
        )
        .unwrap();
        let names: Vec<&str> = s.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "environment", "scenario"]);
        assert!(series("x", &[], f64::NAN, 0).is_none());
        let req = WriteRequest {
            timeseries: vec![s.clone()],
        };
        let body = encode(&req).unwrap();
        // Snappy block format: starts with the uncompressed length as a varint, no stream
        // identifier chunk (0xff 0x06 0x00 0x00 "sNaPpY").
        assert_ne!(body[0], 0xff);
        let pb_len = req.encode_to_vec().len();
        assert_eq!(snap::raw::decompress_len(&body).unwrap(), pb_len);
        let back = decode(&body).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.timeseries[0].samples[0].timestamp, 1_700_000_000_123);
        assert!(decode(b"garbage").is_err());
    }

    #[test]
    fn wire_bytes_match_the_protobuf_schema() {
        // Label{name="a", value="b"} inside TimeSeries field 1, Sample{1.0, 2} in field 2.
        let ts = TimeSeries {
            labels: vec![Label {
                name: "a".into(),
                value: "b".into(),
            }],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 2,
            }],
        };
        let bytes = WriteRequest {
            timeseries: vec![ts],
        }
        .encode_to_vec();
        let expect: Vec<u8> = vec![
            0x0a, 0x15, // WriteRequest.timeseries (1, LEN) 21 bytes
            0x0a, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'b', // labels
            0x12, 0x0b, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x02, // samples
        ];
        assert_eq!(bytes, expect);
    }
}
