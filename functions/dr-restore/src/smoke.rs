//! HTTP smoke tests after a failover: GET each configured endpoint, 2xx within the timeout.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmokeResult {
    pub url: String,
    pub status: Option<u16>,
    pub passed: bool,
    pub duration_ms: f64,
    #[serde(default)]
    pub error: Option<String>,
}

/// Runs the GETs one after the other (a handful of endpoints; the order is the report's).
pub async fn run_smoke(urls: &[String], timeout: Duration) -> Vec<SmokeResult> {
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent("dr-restore-smoke")
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return urls
                .iter()
                .map(|u| SmokeResult {
                    url: u.clone(),
                    status: None,
                    passed: false,
                    duration_ms: 0.0,
                    error: Some(format!("HTTP client: {e}")),
                })
                .collect()
        }
    };
    let mut out = vec![];
    for url in urls {
        let start = Instant::now();
        let r = client.get(url).send().await;
        let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
        out.push(match r {
            Ok(resp) => {
                let status = resp.status();
                SmokeResult {
                    url: url.clone(),
                    status: Some(status.as_u16()),
                    passed: status.is_success(),
                    duration_ms,
                    error: (!status.is_success()).then(|| format!("HTTP {status}")),
                }
            }
            Err(e) => SmokeResult {
                url: url.clone(),
                status: None,
                passed: false,
                duration_ms,
                error: Some(if e.is_timeout() {
                    format!("no answer within {timeout:?}")
                } else {
                    let mut s = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(x) = src {
                        s.push_str(&format!(": {x}"));
                        src = x.source();
                    }
                    s
                }),
            },
        });
    }
    out
}
