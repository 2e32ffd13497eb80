//! uptime-probe against real HTTP servers started here: healthy, 500, hung, slow, SSE, a TLS
//! failure and a closed port; and the handler end to end. The error budget against moto's
//! CloudWatch is in `probe_it/error_budget.rs`.

#[path = "probe_it/error_budget.rs"]
mod error_budget;

use std::time::{Duration, Instant};

use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use shared::config::{CommonConfig, Vars};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uptime_probe::config::{parse_targets, Settings};
use uptime_probe::handler::{handle, load_slos, metric_documents, probe_all, Deps};
use uptime_probe::port::MetricReader;
use uptime_probe::probe::{client, probe, FailureClass};

/// A tiny HTTP/1.1 server: reads the request head, waits `delay`, answers `response` (or
/// never, when `response` is None) and keeps the connection for a while.
async fn server(response: Option<&'static str>, delay: Duration) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                    // A TLS ClientHello (record type 0x16) on this plain-HTTP port: answer 400
                    // as real HTTP servers do.
                    if head.first() == Some(&0x16) {
                        let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                        return;
                    }
                }
                tokio::time::sleep(delay).await;
                if let Some(r) = response {
                    let _ = sock.write_all(r.as_bytes()).await;
                }
                // Hold the connection (a hung server; an SSE stream that stays open).
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    port
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\nconnection: close\r\n\r\n{\"status\":\"ok\"}";
const ERR: &str =
    "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 5\r\nconnection: close\r\n\r\noops!";
const SSE: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n: hello\n\n";

/// The probe cases read no metric.
struct NoMetrics;

impl MetricReader for NoMetrics {
    async fn sums(
        &self,
        _namespace: &str,
        metrics: &[uptime_probe::budget::MetricSpec],
        _start: chrono::DateTime<chrono::Utc>,
        _end: chrono::DateTime<chrono::Utc>,
    ) -> shared::SuiteResult<Vec<Option<f64>>> {
        Ok(vec![None; metrics.len()])
    }
}

fn common() -> CommonConfig {
    CommonConfig::from_vars(
        &Vars::from_pairs([("ENVIRONMENT", "local"), ("REPORT_BUCKET", "r")]),
        "uptime-probe",
    )
    .unwrap()
}

#[tokio::test]
async fn healthy_500_hung_tls_closed_slow_and_sse() {
    let healthy = server(Some(OK), Duration::ZERO).await;
    let failing = server(Some(ERR), Duration::ZERO).await;
    let hung = server(None, Duration::ZERO).await;
    let slow = server(Some(OK), Duration::from_millis(400)).await;
    let sse = server(Some(SSE), Duration::ZERO).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let spec = format!(
        "api=http://127.0.0.1:{healthy}/health,\
         broken=http://127.0.0.1:{failing}/health,\
         hung=http://127.0.0.1:{hung}/health;timeout_ms=700,\
         tls=https://127.0.0.1:{healthy}/health,\
         closed=http://127.0.0.1:{closed}/health,\
         quote=http://127.0.0.1:{slow}/quote;latency_ms=200,\
         quickquote=http://127.0.0.1:{healthy}/quote;latency_ms=900,\
         sse=http://127.0.0.1:{sse}/stream;kind=sse,\
         notsse=http://127.0.0.1:{healthy}/stream;kind=sse"
    );
    let targets = parse_targets(&spec).unwrap();
    let http = client();
    let started = Instant::now();
    let results = futures::future::join_all(
        targets
            .iter()
            .map(|t| probe(&http, t, Duration::from_secs(3))),
    )
    .await;
    // Concurrent: the hung target's 700 ms bounds the whole run, not the sum.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let get = |n: &str| results.iter().find(|r| r.target == n).unwrap();

    let r = get("api");
    assert!(
        r.ok && r.status == Some(200) && r.failure.is_none(),
        "{r:?}"
    );
    let r = get("broken");
    assert_eq!(
        (r.ok, r.status, r.failure),
        (false, Some(500), Some(FailureClass::Status)),
        "{r:?}"
    );
    let r = get("hung");
    assert_eq!(
        (r.ok, r.failure),
        (false, Some(FailureClass::Timeout)),
        "{r:?}"
    );
    assert!(r.latency_ms >= 650.0 && r.latency_ms < 2000.0, "{r:?}");
    let r = get("tls");
    assert_eq!((r.ok, r.failure), (false, Some(FailureClass::Tls)), "{r:?}");
    let r = get("closed");
    assert_eq!(
        (r.ok, r.failure),
        (false, Some(FailureClass::Connect)),
        "{r:?}"
    );
    // Slow but successful: available, and counted as a slow request for the latency SLO.
    let r = get("quote");
    assert!(
        r.ok && r.slow == Some(true) && r.latency_ms >= 400.0,
        "{r:?}"
    );
    let r = get("quickquote");
    assert_eq!(r.slow, Some(false), "{r:?}");
    assert_eq!(get("api").slow, None, "no threshold, no slow flag");
    // The SSE stream never ends: success as soon as its headers say text/event-stream.
    let r = get("sse");
    assert!(r.ok && r.latency_ms < 1000.0, "{r:?}");
    let r = get("notsse");
    assert_eq!(
        (r.ok, r.failure),
        (false, Some(FailureClass::ContentType)),
        "{r:?}"
    );

    // The metrics: one document per target with the SLI and its counters.
    let docs = metric_documents(&common(), &results);
    let v: Vec<_> = docs.iter().map(|d| d.to_json(0)).collect();
    let doc = |n: &str| v.iter().find(|d| d["target"] == n).unwrap();
    assert_eq!(doc("api")["api_availability"], 100.0);
    assert_eq!(doc("broken")["api_availability"], 0.0);
    assert_eq!(doc("broken")["probe_errors"], 1.0);
    assert_eq!(doc("hung")["failure"], "timeout");
    assert_eq!(doc("quote")["probe_slow_requests"], 1.0);
    assert_eq!(doc("quote")["probe_errors"], 0.0);
    assert!(doc("api").get("probe_slow_requests").is_none());
    assert_eq!(
        doc("api")["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["function", "environment", "target"]])
    );
}

/// The handler as Lambda calls it: a schedule event probes everything and succeeds even when
/// an endpoint is down; a manual payload picks targets; a bad payload names the field.
#[tokio::test]
async fn handler_end_to_end() {
    let healthy = server(Some(OK), Duration::ZERO).await;
    let failing = server(Some(ERR), Duration::ZERO).await;
    let settings = Settings::from_vars(&Vars::from_pairs([(
        "PROBE_TARGETS",
        format!(
            "api=http://127.0.0.1:{healthy}/health,sse=http://127.0.0.1:{failing}/stream;kind=sse"
        ),
    )]))
    .unwrap();
    let deps = Deps {
        slos: load_slos(&common()).unwrap(),
        common: common(),
        settings,
        http: client(),
        metrics: NoMetrics,
    };
    let event = |v| LambdaEvent::new(v, Context::default());
    let r = handle(
        &deps,
        event(json!({"source": "schedule", "scheduled_time": "2026-11-27T21:05:00Z"})),
    )
    .await
    .unwrap();
    assert_eq!(r["status"], "DEGRADED");
    assert_eq!(r["availability_percent"], 50.0);
    assert_eq!(r["results"].as_array().unwrap().len(), 2);
    let r = handle(&deps, event(json!({"targets": ["api"]})))
        .await
        .unwrap();
    assert_eq!(
        (r["status"].as_str(), r["results"][0]["target"].as_str()),
        (Some("UP"), Some("api"))
    );
    let e = handle(&deps, event(json!({"targets": ["web"]})))
        .await
        .unwrap_err();
    assert_eq!(e.class(), "InvalidInput");
    assert!(e.to_string().contains("api, sse"), "{e}");
    let all = probe_all(&deps, &deps.settings.targets.iter().collect::<Vec<_>>()).await;
    assert_eq!(all.iter().filter(|r| r.ok).count(), 1);
    // The budget kind without any data: every SLO unknown, never a made-up 100.
    let r = handle(&deps, event(json!({"kind": "error_budget"})))
        .await
        .unwrap();
    let slos = r["slos"].as_array().unwrap();
    assert_eq!(slos.len(), 3);
    assert!(slos.iter().all(|s| s["remaining_percent"].is_null()), "{r}");
    let e = handle(
        &deps,
        event(json!({"kind": "error_budget", "targets": ["api"]})),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), "InvalidInput");
    assert!(e.to_string().contains("`targets`"), "{e}");
}
