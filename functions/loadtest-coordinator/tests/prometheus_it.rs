//! Remote write received by a REAL Prometheus (Debian package, started here with
//! `--web.enable-remote-write-receiver`), then queried back through its HTTP API.

mod common;

use loadtest_coordinator::aggregate::{Aggregate, Numbers};
use loadtest_coordinator::remote_write::{encode, push};
use loadtest_coordinator::summary::{prom_series, Artifacts, RunReport};
use loadtest_coordinator::threshold::Judged;
use loadtest_core::{encode_histogram, new_histogram, ErrorCounts, ShardResult};

fn shard(index: u32, latencies_ms: &[u64], errors: u64) -> ShardResult {
    let mut h = new_histogram();
    for &v in latencies_ms {
        h.saturating_record(v * 1000);
    }
    let n = latencies_ms.len() as u64;
    let mut e = ErrorCounts::default();
    e.status.insert("503".into(), errors);
    ShardResult {
        run_id: "prom-run".into(),
        shard_index: index,
        scheduled: n,
        sent: n,
        ok: n - errors,
        errors: e,
        latency_us: encode_histogram(&h).unwrap(),
        latency_uncorrected_us: encode_histogram(&h).unwrap(),
        ..Default::default()
    }
}

async fn query(prom: &str, q: &str) -> f64 {
    let client = reqwest::Client::new();
    for _ in 0..50 {
        let v: serde_json::Value = client
            .get(format!("{prom}/api/v1/query"))
            .query(&[("query", q)])
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("json");
        assert_eq!(v["status"], "success", "{v}");
        if let Some(r) = v["data"]["result"].as_array().and_then(|a| a.first()) {
            return r["value"][1].as_str().unwrap().parse().unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("{q}: no result from Prometheus");
}

/// A finished run's report: two shards, 900 requests at 50 ms and 100 at 2,000 ms.
fn report() -> RunReport {
    // Two shards: 900 requests at 50 ms and 100 at 2,000 ms (p95 is a slow one).
    let mut a = Aggregate::default();
    a.add_result(&shard(0, &[50; 900], 3), 900).unwrap();
    a.add_result(&shard(1, &[2000; 100], 0), 110).unwrap();
    a.add_failed(0, 2, 40, false, "timed out");
    let numbers = Numbers::of(&a, 100.0);
    RunReport {
        run_id: "prom-run".into(),
        scenario: "quote-generation".into(),
        environment: "local".into(),
        deployment: "test".into(),
        status: "FAILED".into(),
        passed: false,
        aborted: None,
        t0: String::new(),
        finished_at: String::new(),
        mode: "http".into(),
        slices_planned: 1,
        slices_run: 1,
        slice_seconds: 600,
        numbers: numbers.clone(),
        thresholds: vec![Judged {
            metric: "http_req_duration".into(),
            expr: "p(95)<900".into(),
            observed: numbers.latency_ms.p95,
            samples: numbers.latency_ms.count,
            ok: false,
            abort_on_fail: false,
        }],
        baseline: None,
        gate: None,
        incident: None,
        artifacts: Artifacts {
            summary: String::new(),
            histogram: String::new(),
            markdown: String::new(),
            chart: String::new(),
            report: String::new(),
        },
        remote_write: String::new(),
        notes: vec![],
        tags: [("service".to_string(), "quotes".to_string())].into(),
    }
}

#[tokio::test]
async fn prometheus_receives_the_summary_and_answers_queries() {
    let prom = common::prometheus();
    let report = report();
    let now = chrono::Utc::now().timestamp_millis();
    let body = encode(&prom_series(&report, now)).unwrap();
    push(
        &reqwest::Client::new(),
        &format!("{}/api/v1/write", prom.url),
        body,
        Default::default(),
    )
    .await
    .expect("Prometheus accepted the remote write");

    // The scenario's tags are labels too (as k6 tags its metrics).
    let sel = r#"{scenario="quote-generation",environment="local",testid="prom-run",job="loadtest-coordinator",service="quotes"}"#;
    let p95 = query(&prom.url, &format!("k6_http_req_duration_p95{sel}")).await;
    assert!((p95 - 2.0).abs() < 0.01, "p95 in seconds: {p95}");
    let p50 = query(&prom.url, &format!("k6_http_req_duration_p50{sel}")).await;
    assert!((p50 - 0.05).abs() < 0.001, "{p50}");
    assert_eq!(
        query(&prom.url, &format!("k6_http_reqs_total{sel}")).await,
        1000.0
    );
    // 10 + 40 dropped (the short shard and the failed one), 3 errors, 1,050 scheduled.
    assert_eq!(
        query(&prom.url, &format!("k6_dropped_iterations_total{sel}")).await,
        50.0
    );
    let rate = query(&prom.url, &format!("k6_http_req_failed_rate{sel}")).await;
    assert!((rate - 53.0 / 1050.0).abs() < 1e-9, "{rate}");
    assert_eq!(
        query(&prom.url, &format!("k6_summary_shards_failed{sel}")).await,
        1.0
    );
    assert_eq!(
        query(&prom.url, &format!("k6_summary_passed{sel}")).await,
        0.0
    );
    assert_eq!(
        query(&prom.url, &format!("k6_summary_thresholds_failed{sel}")).await,
        1.0
    );

    // A body that is not snappy is refused with the receiver's message.
    let err = push(
        &reqwest::Client::new(),
        &format!("{}/api/v1/write", prom.url),
        b"not snappy".to_vec(),
        Default::default(),
    )
    .await
    .unwrap_err();
    // A 4xx is the receiver refusing the data: sent once, never retried (remote write spec).
    assert!(
        err.contains("HTTP 400") && err.contains("not retried"),
        "{err}"
    );
}

/// SigV4 for Amazon Managed Service for Prometheus, checked by an independent implementation:
/// tools/amp-receiver.py recomputes the signature with botocore over the signed headers, the
/// path and the body, as AMP does. A signed push is taken at once; an unsigned one, one signed
/// with the wrong secret or for the wrong region is refused with 403 and sent only once (a
/// 4xx is never retried).
#[tokio::test]
async fn a_signed_remote_write_passes_an_independent_sigv4_check() {
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_credential_types::Credentials;
    use loadtest_coordinator::remote_write::{amp_region, push_signed, Retry, SigV4};
    use std::time::Duration;
    use suite_tests::{
        free_port, log_dir, spawn_supervised, venv_bin, wait_for_port, workspace_root,
    };

    let port = free_port();
    let log = log_dir().join(format!("amp-receiver-{port}.log"));
    let script = workspace_root().join("tools/amp-receiver.py");
    spawn_supervised(
        &venv_bin("python3"),
        &[
            script.to_str().unwrap(),
            &port.to_string(),
            "AKIDEXAMPLE",
            "s3cr3t",
            "eu-west-1",
        ],
        &[],
        &workspace_root(),
        &log,
    );
    wait_for_port(port, Duration::from_secs(20), "amp-receiver.py", &log);
    let url = format!("http://127.0.0.1:{port}/workspaces/ws-0123/api/v1/remote_write");
    let signer = |secret: &str, region: &str| SigV4 {
        region: region.into(),
        credentials: SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            secret,
            Some("session-token".into()),
            None,
            "test",
        )),
    };
    let quick = Retry {
        attempts: 3,
        base: Duration::from_millis(5),
        max: Duration::from_millis(20),
    };
    let report = report();
    let body = encode(&prom_series(&report, chrono::Utc::now().timestamp_millis())).unwrap();
    let client = reqwest::Client::new();
    assert_eq!(
        push_signed(
            &client,
            &url,
            body.clone(),
            quick,
            Some(&signer("s3cr3t", "eu-west-1"))
        )
        .await,
        Ok(1)
    );
    for (why, sig) in [
        ("unsigned", None),
        ("wrong secret", Some(signer("guess", "eu-west-1"))),
        ("wrong region", Some(signer("s3cr3t", "us-east-1"))),
    ] {
        let e = push_signed(&client, &url, body.clone(), quick, sig.as_ref())
            .await
            .unwrap_err();
        assert!(
            e.contains("HTTP 403") && e.contains("not retried"),
            "{why}: {e}"
        );
    }
    let counts: serde_json::Value = client
        .get(format!("http://127.0.0.1:{port}/received"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        counts,
        serde_json::json!({"accepted": 1, "refused": 3}),
        "each refusal sent once"
    );
    assert_eq!(
        amp_region(
            "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write"
        ),
        Some("eu-west-1".into())
    );
    assert_eq!(amp_region("http://prometheus:9090/api/v1/write"), None);
}
