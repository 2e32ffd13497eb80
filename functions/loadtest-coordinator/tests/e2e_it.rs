//! End to end: the coordinator through `cargo lambda watch` invoked with the AWS CLI, fanning
//! out to REAL loadtest-shard invocations through the Invoke API, which load the REAL local
//! target (crates/loadtest-target); state and artifacts in moto's S3. Covers a one-slice run
//! (synchronous answer), shards that fail (host outside the shards' allowlist: counted, their
//! requests dropped), and a two-slice run handed off by the asynchronous self-invoke.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use suite_tests::{aws_cli_invoke, create_buckets, exclusive_moto, get};

const BUCKET: &str = "playbook-reports";

fn scenario(name: &str, base_url: &str, rate: u32, duration: &str) -> Value {
    json!({
        "name": name,
        "target": {"base_url": base_url},
        "executor": {"type": "constant-arrival-rate", "rate": rate, "time_unit": "1s", "duration": duration, "max_in_flight": 20},
        "request": {"method": "POST", "path": "/api/v1/quotes/generate",
                    "headers": {"content-type": "application/json"},
                    "body": {"json": {"request_id": "e2e-{{i}}", "items": 3}}},
        "timeout": "5s",
        "thresholds": {"http_req_duration": ["p(95)<900"], "http_req_failed": ["rate<0.01"]}
    })
}

#[tokio::test]
async fn coordinator_fans_out_to_real_shards_through_watch() {
    let (_g, moto) = exclusive_moto().await;
    let s3 = moto.s3().await;
    create_buckets(&s3, &[BUCKET]).await;
    let (port, target) = common::target(&["--latency", "fixed:20ms"]);

    let mut env = moto.env();
    for (k, v) in [
        ("ENVIRONMENT", "local"),
        ("REPORT_BUCKET", BUCKET),
        ("LOADTEST_ALLOWED_HOSTS", "127.0.0.1"),
        ("LOADTEST_COORD_SLICE_SECONDS", "5"),
        ("LOADTEST_COORD_LEAD_SECONDS", "2"),
        ("LOADTEST_COORD_SHARD_GRACE_SECONDS", "10"),
        ("LOADTEST_COORD_FINALIZE_WAIT_SECONDS", "30"),
        ("LOADTEST_COORD_SHARD_RPS", "5"),
    ] {
        env.push((k.to_string(), v.to_string()));
    }
    // The coordinator's Invoke calls go to the emulator itself; S3 stays on moto.
    let watch_port = suite_tests::free_port();
    env.push((
        "LOADTEST_COORD_LAMBDA_ENDPOINT_URL".into(),
        format!("http://127.0.0.1:{watch_port}"),
    ));
    let watch = common::watch(&env, watch_port);
    let dir = tempfile::tempdir().unwrap();

    // Warm both functions up (the emulator starts each binary on its first invocation): a
    // shard asked for a window long over answers at once.
    let warm = json!({"run_id": "warm", "scenario": scenario("warm", &target, 1, "1s"), "t0_unix_ms": 1000,
                      "window": {"from_ms": 0, "to_ms": 1000}, "shard_index": 0, "shard_count": 1});
    let (_, text, doc) = aws_cli_invoke(
        &watch,
        "loadtest-shard",
        &common::write_json(dir.path(), "warm.json", &warm),
        &env,
    );
    assert_eq!(doc["run_id"], "warm", "shard warm-up: {text} {doc}");

    // 1. One slice (4 s < 5 s slices): the invocation answers with the full report.
    let payload =
        json!({"scenario": scenario("e2e-quote", &target, 10, "4s"), "run_id": "e2e-one"});
    let (ok, text, r) = aws_cli_invoke(
        &watch,
        "loadtest-coordinator",
        &common::write_json(dir.path(), "one.json", &payload),
        &env,
    );
    assert!(ok, "{text} {r}");
    assert_eq!(r["status"], "PASSED", "{r:#}");
    let n = &r["numbers"];
    assert_eq!(n["scheduled"], 40, "{n}");
    assert_eq!(n["sent"], 40);
    assert_eq!(n["ok"], 40);
    assert_eq!(n["dropped"], 0);
    assert_eq!(n["shards_total"], 2, "10/s at 5/s per shard");
    assert_eq!(n["shards_failed"], 0);
    let p95 = n["latency_ms"]["p95"].as_f64().unwrap();
    assert!(
        (19.0..300.0).contains(&p95),
        "target answers in 20 ms, p95 {p95}"
    );
    assert_eq!(n["latency_ms"]["count"], 40);
    let key = r["artifacts"]["summary"]
        .as_str()
        .unwrap()
        .trim_start_matches(&format!("s3://{BUCKET}/"))
        .to_string();
    let summary: Value =
        serde_json::from_slice(&get(&s3, BUCKET, &key).await.expect("summary.json in S3")).unwrap();
    assert_eq!(summary["metrics"]["http_reqs"]["count"], 40);
    assert_eq!(
        summary["metrics"]["http_req_duration"]["thresholds"]["p(95)<900"],
        false
    );

    // 2. Shards that fail: `localhost` is not in LOADTEST_ALLOWED_HOSTS, every shard refuses.
    let refused = json!({"scenario": scenario("e2e-refused", &format!("http://localhost:{port}"), 4, "2s"), "run_id": "e2e-refused"});
    let (ok, text, r) = aws_cli_invoke(
        &watch,
        "loadtest-coordinator",
        &common::write_json(dir.path(), "refused.json", &refused),
        &env,
    );
    assert!(ok, "the coordinator survives failing shards: {text} {r}");
    // Every shard refused: no evidence about the target, so no verdict (the gate would
    // ignore it; an inline scenario never reaches a gate anyway).
    assert_eq!(r["status"], "ERROR", "{r}");
    assert!(r["notes"].to_string().contains("shards failed"), "{r}");
    assert_eq!(
        r["gate"],
        Value::Null,
        "an inline scenario touches no gate: {r}"
    );
    let n = &r["numbers"];
    assert_eq!(n["scheduled"], 8);
    assert_eq!(
        n["dropped"], 8,
        "a failed shard's requests are dropped, not lost"
    );
    assert_eq!(n["shards_failed"], n["shards_total"]);
    assert_eq!(n["error_rate"], 1.0);
    assert!(
        r["notes"].to_string().contains("LOADTEST_ALLOWED_HOSTS")
            || r["notes"].to_string().contains("allow"),
        "{}",
        r["notes"]
    );

    // 3. Two slices (8 s, 5-second slices): the first invocation hands off to an async
    // continuation of itself; the report appears in S3 when the second slice is merged.
    let two = json!({"scenario": scenario("e2e-two", &target, 5, "8s"), "run_id": "e2e-two"});
    let (ok, text, r) = aws_cli_invoke(
        &watch,
        "loadtest-coordinator",
        &common::write_json(dir.path(), "two.json", &two),
        &env,
    );
    assert!(ok, "{text} {r}");
    assert_eq!(r["status"], "SLICE_DONE", "{r}");
    assert_eq!(r["next_slice"], 1);
    let report_key = r["report"]
        .as_str()
        .unwrap()
        .trim_start_matches(&format!("s3://{BUCKET}/"))
        .to_string();
    let start = Instant::now();
    let report: Value = loop {
        if let Some(b) = get(&s3, BUCKET, &report_key).await {
            break serde_json::from_slice(&b).unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no report at {report_key} after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(report["slices_run"], 2);
    assert_eq!(report["numbers"]["scheduled"], 40);
    assert_eq!(
        report["numbers"]["sent"], 40,
        "{:#} {}",
        report["numbers"], report["notes"]
    );
    assert_eq!(report["numbers"]["dropped"], 0);
    assert_eq!(report["status"], "PASSED");
    let lag_p99 = report["numbers"]["scheduler_lag_ms"]["p99"]
        .as_f64()
        .unwrap();
    assert!(
        lag_p99 < 100.0,
        "slice 1 started on time (lag p99 {lag_p99} ms)"
    );
}

/// An A/B comparison end to end: the coordinator through the emulator, real shards, two REAL
/// targets with different service times (the current 20 ms, the candidate 35 ms). Each arm's
/// p95 is its own target's, every scheduled request of each arm's blocks was sent, the verdict
/// is STAY (the candidate is slower, whatever it saves), and no release gate was written.
#[tokio::test]
async fn an_ab_comparison_against_two_real_targets() {
    let (_g, moto) = exclusive_moto().await;
    let s3 = moto.s3().await;
    create_buckets(&s3, &[BUCKET]).await;
    let (_, current) = common::target(&["--latency", "fixed:20ms"]);
    let (_, candidate) = common::target(&["--latency", "fixed:35ms"]);
    let mut env = moto.env();
    let watch_port = suite_tests::free_port();
    for (k, v) in [
        ("ENVIRONMENT", "local"),
        ("REPORT_BUCKET", BUCKET),
        ("LOADTEST_ALLOWED_HOSTS", "127.0.0.1"),
        ("LOADTEST_COORD_LEAD_SECONDS", "2"),
        ("LOADTEST_COORD_SHARD_GRACE_SECONDS", "10"),
        ("LOADTEST_COORD_FINALIZE_WAIT_SECONDS", "30"),
        ("LOADTEST_COORD_SHARD_RPS", "50"),
        (
            "LOADTEST_COORD_LAMBDA_ENDPOINT_URL",
            &format!("http://127.0.0.1:{watch_port}"),
        ),
    ] {
        env.push((k.to_string(), v.to_string()));
    }
    let watch = common::watch(&env, watch_port);
    let dir = tempfile::tempdir().unwrap();
    // Warm the shard up (the emulator starts its binary on the first invocation).
    let warm = json!({"run_id": "warm", "scenario": scenario("warm", &current, 1, "1s"), "t0_unix_ms": 1000,
                      "window": {"from_ms": 0, "to_ms": 1000}, "shard_index": 0, "shard_count": 1});
    let (_, text, doc) = aws_cli_invoke(
        &watch,
        "loadtest-shard",
        &common::write_json(dir.path(), "warm.json", &warm),
        &env,
    );
    assert_eq!(doc["run_id"], "warm", "shard warm-up: {text} {doc}");
    // 12 s at 50/s in blocks of 3 s, A B B A: 300 requests to each target.
    let payload = json!({
        "scenario": scenario("e2e-ab", "http://127.0.0.1:1", 50, "12s"),
        "run_id": "e2e-ab",
        "ab": {
            "block_seconds": 3,
            "current": {"name": "x86", "base_url": current, "instance_type": "m6i.large", "instances": 2},
            "candidate": {"name": "arm64", "base_url": candidate, "instance_type": "m7g.large", "instances": 2}
        }
    });
    let (ok, text, r) = aws_cli_invoke(
        &watch,
        "loadtest-coordinator",
        &common::write_json(dir.path(), "ab.json", &payload),
        &env,
    );
    assert!(ok, "{text} {r}");
    assert_eq!(r["kind"], "ab", "{r:#}");
    for arm in ["current", "candidate"] {
        let n = &r[arm]["numbers"];
        assert_eq!(n["scheduled"], 300, "{arm}: {n}");
        assert_eq!(n["sent"], 300, "{arm}: {n} {}", r["notes"]);
        assert_eq!(n["ok"], 300, "{arm}: {n}");
        assert_eq!(r[arm]["blocks"], 2);
        assert!(r[arm]["no_verdict"].is_null(), "{arm}: {r:#}");
    }
    let p95 = |arm: &str| r[arm]["numbers"]["latency_ms"]["p95"].as_f64().unwrap();
    assert!(
        (19.0..30.0).contains(&p95("current")),
        "current p95 {}",
        p95("current")
    );
    assert!(
        (34.0..50.0).contains(&p95("candidate")),
        "candidate p95 {}",
        p95("candidate")
    );
    assert_eq!(r["status"], "STAY", "{r:#}");
    assert!(
        r["reason"].as_str().unwrap().contains("p95"),
        "{}",
        r["reason"]
    );
    assert!(r["p95_ratio"]["lo"].as_f64().unwrap() > 1.05, "{r:#}");
    let key = r["markdown"]
        .as_str()
        .unwrap()
        .trim_start_matches(&format!("s3://{BUCKET}/"))
        .to_string();
    let md = String::from_utf8(get(&s3, BUCKET, &key).await.expect("report.md in S3")).unwrap();
    assert!(md.contains("**STAY on x86**"), "{md}");
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("k6/gate/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.key_count(),
        Some(0),
        "an A/B run writes no release gate"
    );
}

/// The Grafana dashboards' PromQL (infra/grafana/dashboards/*.json, docs/dashboards.md) against
/// a REAL Prometheus that received the remote write of REAL runs: the coordinator through the
/// emulator, real shards, the real target, an HTTP and an SSE scenario. Every Prometheus target
/// must return a non-empty result, and every k6_* series it names must hold samples: a panel
/// naming a series nobody writes fails here.
mod grafana {
    use std::collections::BTreeSet;
    use std::time::Instant;

    use serde_json::{json, Value};
    use suite_tests::{aws_cli_invoke, create_buckets, exclusive_moto, workspace_root};

    use super::{common, scenario, BUCKET};

    /// (dashboard, panel title, expr) of every target on the Prometheus datasource.
    fn prometheus_targets() -> Vec<(String, String, String)> {
        let mut out = vec![];
        let dir = workspace_root().join("infra/grafana/dashboards");
        for name in ["unified-api-health", "frontend-ux", "async-jobs", "finops"] {
            let path = dir.join(format!("{name}.json"));
            let d: Value = serde_json::from_str(
                &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")),
            )
            .unwrap_or_else(|e| panic!("{path:?}: {e}"));
            for p in d["panels"].as_array().into_iter().flatten() {
                for t in p["targets"].as_array().into_iter().flatten() {
                    let uid = t["datasource"]["uid"]
                        .as_str()
                        .or(p["datasource"]["uid"].as_str());
                    if uid == Some("playbook-prometheus") {
                        out.push((
                            name.to_string(),
                            p["title"].as_str().unwrap_or("?").to_string(),
                            t["expr"].as_str().unwrap_or_default().to_string(),
                        ));
                    }
                }
            }
        }
        out
    }

    /// Grafana's substitutions: the dashboard variable and the interval macros (an hour covers
    /// the runs of this test at any step).
    fn substitute(expr: &str) -> String {
        expr.replace("$environment", "local")
            .replace("$__rate_interval", "1h")
            .replace("$__interval", "1h")
            .replace("$__range", "1h")
    }

    fn k6_names(expr: &str) -> BTreeSet<String> {
        expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|w| w.starts_with("k6_"))
            .map(str::to_string)
            .collect()
    }

    async fn query(prom: &str, q: &str) -> Value {
        let v: Value = reqwest::Client::new()
            .get(format!("{prom}/api/v1/query"))
            .query(&[("query", q)])
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("json");
        assert_eq!(v["status"], "success", "{q}: {v}");
        v["data"]["result"].clone()
    }

    #[tokio::test]
    async fn every_dashboard_query_answers_from_a_real_run() {
        let t0 = Instant::now();
        let targets = prometheus_targets();
        assert!(targets.len() >= 20, "only {} PromQL targets", targets.len());
        let prom = common::prometheus();
        let (_g, moto) = exclusive_moto().await;
        let s3 = moto.s3().await;
        create_buckets(&s3, &[BUCKET]).await;
        let (_, target) = common::target(&[
            "--latency",
            "quantiles:0=5ms,0.5=20ms,0.95=60ms,1=120ms",
            "--error-rate",
            "0.02",
            "--sse-interval",
            "200ms",
            "--sse-drop-after",
            "5",
        ]);
        let mut env = moto.env();
        for (k, v) in [
            ("ENVIRONMENT", "local"),
            ("REPORT_BUCKET", BUCKET),
            ("LOADTEST_ALLOWED_HOSTS", "127.0.0.1"),
            ("LOADTEST_COORD_SLICE_SECONDS", "30"),
            ("LOADTEST_COORD_LEAD_SECONDS", "2"),
            ("LOADTEST_COORD_SHARD_GRACE_SECONDS", "10"),
            ("LOADTEST_COORD_FINALIZE_WAIT_SECONDS", "30"),
            ("LOADTEST_COORD_SHARD_RPS", "10"),
            ("LOADTEST_COORD_SSE_CLIENTS_PER_SHARD", "10"),
            ("LOADTEST_COORD_REMOTE_WRITE_STEP_SECONDS", "1"),
        ] {
            env.push((k.to_string(), v.to_string()));
        }
        env.push((
            "LOADTEST_COORD_REMOTE_WRITE_URL".into(),
            format!("{}/api/v1/write", prom.url),
        ));
        let watch_port = suite_tests::free_port();
        env.push((
            "LOADTEST_COORD_LAMBDA_ENDPOINT_URL".into(),
            format!("http://127.0.0.1:{watch_port}"),
        ));
        let watch = common::watch(&env, watch_port);
        let dir = tempfile::tempdir().unwrap();
        // Warm the shard up (the emulator starts it on its first invocation).
        let warm = json!({"run_id": "warm", "scenario": scenario("warm", &target, 1, "1s"), "t0_unix_ms": 1000,
                          "window": {"from_ms": 0, "to_ms": 1000}, "shard_index": 0, "shard_count": 1});
        let (_, text, doc) = aws_cli_invoke(
            &watch,
            "loadtest-shard",
            &common::write_json(dir.path(), "warm.json", &warm),
            &env,
        );
        assert_eq!(doc["run_id"], "warm", "shard warm-up: {text} {doc}");

        let sse = json!({
            "name": "grafana-sse",
            "target": {"base_url": target},
            "executor": {"type": "sse-clients", "clients": 12, "duration": "4s", "ramp_up": "1s"},
            "request": {"method": "GET", "path": "/api/v1/events/stream",
                        "headers": {"accept": "text/event-stream"}},
            "timeout": "5s",
            "thresholds": {"sse_handshake_duration": ["p(95)<300"]}
        });
        let runs = [
            ("grafana-http", scenario("grafana-http", &target, 15, "4s")),
            ("grafana-sse", sse),
        ];
        let mut http_sent = 0.0;
        for (name, sc) in runs {
            // Named scenarios (uploaded as Terraform does): only a named run keeps a release
            // gate, and the dashboard's gate panel reads its series.
            suite_tests::put(
                &s3,
                BUCKET,
                &format!("k6/scenarios/{name}.json"),
                serde_json::to_vec(&sc).unwrap(),
            )
            .await;
            let payload = json!({"scenario": name, "run_id": format!("{name}-run")});
            let (ok, text, r) = aws_cli_invoke(
                &watch,
                "loadtest-coordinator",
                &common::write_json(dir.path(), &format!("{name}.json"), &payload),
                &env,
            );
            assert!(ok, "{name}: {text} {r}");
            assert!(
                r["status"] == "PASSED" || r["status"] == "FAILED",
                "{name}: a finished run: {r:#}"
            );
            assert_eq!(r["remote_write"], "sent", "{name}: {r:#}");
            assert!(
                !r["notes"].to_string().contains("remote write of its steps"),
                "{name}: {}",
                r["notes"]
            );
            if name == "grafana-sse" {
                // Every event the real shards received carried the target's send time: the
                // merged delivery lag has one sample per event.
                let sse = &r["numbers"]["sse"];
                assert!(
                    sse["delivery_lag_ms"]["count"].as_u64().unwrap_or(0) > 0,
                    "{sse}"
                );
                assert_eq!(
                    sse["delivery_lag_ms"]["count"], sse["totals"]["events_received"],
                    "{sse}"
                );
            }
            if name == "grafana-http" {
                http_sent = r["numbers"]["sent"].as_f64().unwrap();
            }
        }

        // The HTTP run's requests arrived step by step (1-second steps of a 4-second run, a 0
        // at t0, the summary last), as one counter whose last point is the run's total; the
        // buckets give a p95 of the same order as the merged histograms'.
        let sel = r#"{testid="grafana-http-run"}"#;
        let scalar = |v: Value| -> f64 {
            v[0]["value"][1]
                .as_str()
                .unwrap_or("NaN")
                .parse()
                .unwrap_or(f64::NAN)
        };
        let points = scalar(
            query(
                &prom.url,
                &format!("count_over_time(k6_http_reqs_total{sel}[1h])"),
            )
            .await,
        );
        assert!(
            points >= 5.0,
            "k6_http_reqs_total has {points} samples: one per step expected"
        );
        let first = scalar(
            query(
                &prom.url,
                &format!("min_over_time(k6_http_reqs_total{sel}[1h])"),
            )
            .await,
        );
        let last = scalar(
            query(
                &prom.url,
                &format!("max_over_time(k6_http_reqs_total{sel}[1h])"),
            )
            .await,
        );
        assert_eq!(
            (first, last),
            (0.0, http_sent),
            "the counter runs from 0 to the run's total"
        );
        let inf = scalar(query(&prom.url, r#"max_over_time(k6_http_req_duration_seconds_bucket{testid="grafana-http-run",le="+Inf"}[1h])"#).await);
        assert!(
            inf > 0.0 && inf <= http_sent,
            "+Inf bucket {inf} of {http_sent} sent"
        );
        let p95 = scalar(query(&prom.url, &format!("histogram_quantile(0.95, sum by (le) (increase(k6_http_req_duration_seconds_bucket{sel}[1h])))")).await);
        assert!(
            (0.025..=0.25).contains(&p95),
            "p95 from buckets {p95} s (target: 20 ms median, 60 ms p95)"
        );

        // Every series a panel names holds samples of this run, and every panel's query answers.
        let mut empty = vec![];
        let names: BTreeSet<String> = targets.iter().flat_map(|(_, _, e)| k6_names(e)).collect();
        for name in &names {
            let sel = format!("{name}{{environment=\"local\",job=\"loadtest-coordinator\"}}");
            if query(&prom.url, &sel)
                .await
                .as_array()
                .is_none_or(Vec::is_empty)
            {
                empty.push(format!("series {name}: no sample (nobody writes it)"));
            }
        }
        for (board, panel, expr) in &targets {
            let q = substitute(expr);
            assert!(
                !q.contains('$'),
                "{board} \"{panel}\": a variable left in {q}"
            );
            let result = query(&prom.url, &q).await;
            let series = result.as_array().cloned().unwrap_or_default();
            if series.is_empty() {
                empty.push(format!("{board} \"{panel}\": {q} returned nothing"));
            }
            for s in &series {
                let v = s["value"][1].as_str().unwrap_or("NaN");
                assert!(
                    v.parse::<f64>().is_ok_and(f64::is_finite),
                    "{board} \"{panel}\": {q}: value {v}"
                );
                assert!(
                    s["metric"]["scenario"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("grafana-")),
                    "{board} \"{panel}\": grouped by scenario: {s}"
                );
            }
        }
        assert!(
            empty.is_empty(),
            "{} of {} PromQL targets or series are empty:\n  - {}",
            empty.len(),
            targets.len(),
            empty.join("\n  - ")
        );
        eprintln!(
            "grafana: {} PromQL targets over {} k6 series answered in {:.0} s",
            targets.len(),
            names.len(),
            t0.elapsed().as_secs_f64()
        );
    }
}
