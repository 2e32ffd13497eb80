//! One probe of one target, and the classification of what went wrong. Timeouts, connection
//! and TLS errors and non-2xx answers are all failures; the class says which.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{Kind, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// No complete answer within the timeout (a hung server).
    Timeout,
    /// TLS handshake or certificate failure.
    Tls,
    /// DNS, refused or reset connection.
    Connect,
    /// An answer outside 2xx.
    Status,
    /// An SSE target answered 2xx but not `text/event-stream`.
    ContentType,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeResult {
    pub target: String,
    pub url: String,
    pub ok: bool,
    pub status: Option<u16>,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Slower than the target's latency threshold, or failed (a failed request is not a fast
    /// one); `None` when the target has no threshold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow: Option<bool>,
}

/// The probe's HTTP client: no connection reuse, so every probe pays DNS, TCP and TLS like a
/// new user does (and an expired certificate shows at once).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("uptime-probe/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// The error and its sources, as one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

pub fn classify(e: &reqwest::Error, https: bool) -> FailureClass {
    if e.is_timeout() {
        return FailureClass::Timeout;
    }
    let text = chain(e).to_ascii_lowercase();
    let tls_words = [
        "certificate",
        "tls",
        "handshake",
        "corrupt message",
        "invalidcontenttype",
        "peer is incompatible",
        "alert",
    ];
    if https && tls_words.iter().any(|w| text.contains(w)) {
        return FailureClass::Tls;
    }
    if e.is_connect() {
        return FailureClass::Connect;
    }
    if e.is_status() {
        return FailureClass::Status;
    }
    FailureClass::Other
}

pub async fn probe(
    client: &reqwest::Client,
    target: &Target,
    default_timeout: Duration,
) -> ProbeResult {
    let timeout = target
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(default_timeout);
    let https = target.url.starts_with("https://");
    let started = Instant::now();
    let mut result = ProbeResult {
        target: target.name.clone(),
        url: target.url.clone(),
        ok: false,
        status: None,
        latency_ms: 0.0,
        failure: None,
        error: None,
        slow: None,
    };
    let mut req = client.get(&target.url).timeout(timeout);
    if target.kind == Kind::Sse {
        req = req.header("accept", "text/event-stream");
    }
    // The whole exchange is bounded by the timeout, body included (a server that sends
    // headers and then stalls is a failure too).
    let outcome = tokio::time::timeout(timeout, async {
        let resp = req.send().await?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if target.kind == Kind::Http {
            let _ = resp.bytes().await?;
        }
        Ok::<_, reqwest::Error>((status, content_type))
    })
    .await;
    result.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Err(_) => {
            result.failure = Some(FailureClass::Timeout);
            result.error = Some(format!(
                "no complete answer within {} ms",
                timeout.as_millis()
            ));
        }
        Ok(Err(e)) => {
            result.failure = Some(classify(&e, https));
            result.error = Some(chain(&e));
        }
        Ok(Ok((status, content_type))) => {
            result.status = Some(status.as_u16());
            if !status.is_success() {
                result.failure = Some(FailureClass::Status);
                result.error = Some(format!("HTTP {status}"));
            } else if target.kind == Kind::Sse && !content_type.starts_with("text/event-stream") {
                result.failure = Some(FailureClass::ContentType);
                result.error = Some(format!(
                    "content-type {content_type:?}, expected text/event-stream"
                ));
            } else {
                result.ok = true;
            }
        }
    }
    if let Some(limit) = target.latency_threshold_ms {
        result.slow = Some(!result.ok || result.latency_ms > limit as f64);
    }
    result
}
