//! The run's outputs derived from the merged numbers: the JSON report, the summary in k6's
//! `--summary-export` shape (so tooling that reads k6 summaries reads ours), the Prometheus
//! series (k6's remote-write names, seconds) and the EMF documents. Names are a contract
//! documented in docs/loadtest-coordinator.md (tests hold them to it).

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use shared::config::CommonConfig;
use shared::metrics::{Emf, Unit};

use crate::aggregate::{Numbers, Stats};
use crate::gate::GateState;
use crate::remote_write::{series, Sample, TimeSeries, WriteRequest};
use crate::threshold::Judged;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineCheck {
    /// The newest of the reference runs.
    pub reference_run: Option<String>,
    /// How many runs make the reference (the latest passing ones, gate::REFERENCE_RUNS).
    #[serde(default)]
    pub reference_runs: u32,
    /// Their median throughput.
    pub reference_throughput_rps: Option<f64>,
    pub throughput_rps: f64,
    /// throughput ÷ reference.
    pub ratio: Option<f64>,
    pub min_ratio: f64,
    /// From the reference runs' spread (gate::throughput_check).
    #[serde(default)]
    pub tolerance_rps: Option<f64>,
    /// min_ratio × reference − tolerance: the bar this run had to reach.
    #[serde(default)]
    pub required_rps: Option<f64>,
    /// True when there is no reference yet (the first run sets it).
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifacts {
    pub summary: String,
    pub histogram: String,
    pub markdown: String,
    pub chart: String,
    pub report: String,
}

/// `report.json`, written last: its presence means every other artifact is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub scenario: String,
    pub environment: String,
    pub deployment: String,
    /// PASSED, FAILED or ABORTED.
    pub status: String,
    pub passed: bool,
    pub aborted: Option<String>,
    pub t0: String,
    pub finished_at: String,
    pub mode: String,
    pub slices_planned: u32,
    pub slices_run: u32,
    pub slice_seconds: u64,
    pub numbers: Numbers,
    pub thresholds: Vec<Judged>,
    pub baseline: Option<BaselineCheck>,
    pub gate: Option<GateState>,
    pub incident: Option<String>,
    pub artifacts: Artifacts,
    /// `sent`, `skipped (no LOADTEST_COORD_REMOTE_WRITE_URL)` or `failed: ...`.
    pub remote_write: String,
    pub notes: Vec<String>,
    /// The scenario's `tags`: labels of every remote-written series (as k6 tags its metrics).
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
}

/// The labels every series carries: the run's own, then the scenario's tags as Prometheus
/// label names (`[a-zA-Z_][a-zA-Z0-9_]*`, other characters as `_`); a tag never replaces
/// one of the run's own labels, and `__`-prefixed names are reserved.
pub fn series_labels(r: &RunReport) -> Vec<(String, String)> {
    labels_of(&r.scenario, &r.environment, &r.run_id, &r.tags)
}

/// The labels of a run's series (the end-of-run summary and the samples each slice writes
/// carry the same set, so they are one series in Prometheus).
pub fn labels_of(
    scenario: &str,
    environment: &str,
    run_id: &str,
    tags: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = [
        ("scenario", scenario),
        ("environment", environment),
        ("testid", run_id),
        ("job", "loadtest-coordinator"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in tags {
        let mut name: String = k
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            name.insert(0, '_');
        }
        if name.is_empty() || name.starts_with("__") || labels.iter().any(|(l, _)| *l == name) {
            continue;
        }
        labels.push((name, v.clone()));
    }
    labels
}

fn md5_hex(s: &str) -> String {
    let mut h = Md5::new();
    h.update(s.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn trend(s: &Stats) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in [
        ("avg", s.avg),
        ("min", s.min),
        ("med", s.med),
        ("max", s.max),
        ("p(90)", s.p90),
        ("p(95)", s.p95),
        ("p(99)", s.p99),
    ] {
        m.insert(k.into(), json!(v));
    }
    m
}

fn with_thresholds(mut m: Map<String, Value>, metric: &str, j: &[Judged]) -> Value {
    let mine: Map<String, Value> = j
        .iter()
        .filter(|t| t.metric == metric)
        // k6's summary export: the value says whether the threshold FAILED.
        .map(|t| (t.expr.clone(), Value::Bool(!t.ok)))
        .collect();
    if !mine.is_empty() {
        m.insert("thresholds".into(), Value::Object(mine));
    }
    Value::Object(m)
}

fn counter(count: u64, duration_s: f64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("count".into(), json!(count));
    m.insert(
        "rate".into(),
        json!(if duration_s > 0.0 {
            count as f64 / duration_s
        } else {
            0.0
        }),
    );
    m
}

pub const CHECK_NAME: &str = "status is 2xx/3xx";

/// The summary in k6's `--summary-export` JSON shape: trends in ms with avg/min/med/max/
/// p(90)/p(95) (plus p(99)), counters `{count, rate}`, rates `{passes, fails, value}`, the
/// root group with its checks. `http_req_failed` follows our definition, (errors + dropped)
/// ÷ scheduled: `passes` counts the failed-or-dropped requests, as k6's rate metrics count
/// non-zero values as passes.
pub fn k6_summary(r: &RunReport) -> Value {
    let n = &r.numbers;
    let j = &r.thresholds;
    let d = n.duration_s;
    let mut metrics = Map::new();
    metrics.insert(
        "http_req_duration".into(),
        with_thresholds(trend(&n.latency_ms), "http_req_duration", j),
    );
    metrics.insert(
        "http_req_duration_uncorrected".into(),
        Value::Object(trend(&n.latency_uncorrected_ms)),
    );
    metrics.insert(
        "scheduler_lag".into(),
        with_thresholds(trend(&n.scheduler_lag_ms), "scheduler_lag", j),
    );
    let bad = n.errors + n.dropped;
    let mut failed = Map::new();
    failed.insert("passes".into(), json!(bad));
    failed.insert("fails".into(), json!(n.scheduled.saturating_sub(bad)));
    failed.insert("value".into(), json!(n.error_rate));
    metrics.insert(
        "http_req_failed".into(),
        with_thresholds(failed, "http_req_failed", j),
    );
    metrics.insert(
        "http_reqs".into(),
        with_thresholds(counter(n.sent, d), "http_reqs", j),
    );
    metrics.insert("iterations".into(), Value::Object(counter(n.sent, d)));
    metrics.insert(
        "dropped_iterations".into(),
        with_thresholds(counter(n.dropped, d), "dropped_iterations", j),
    );
    let mut checks = Map::new();
    checks.insert("passes".into(), json!(n.ok));
    checks.insert("fails".into(), json!(n.errors));
    checks.insert(
        "value".into(),
        json!(if n.sent > 0 {
            n.ok as f64 / n.sent as f64
        } else {
            0.0
        }),
    );
    metrics.insert("checks".into(), Value::Object(checks));
    if let Some(sse) = &n.sse {
        metrics.insert(
            "sse_handshake_duration".into(),
            with_thresholds(trend(&sse.handshake_ms), "sse_handshake_duration", j),
        );
        metrics.insert(
            "sse_reconnect_duration".into(),
            with_thresholds(trend(&sse.reconnect_ms), "sse_reconnect_duration", j),
        );
        metrics.insert(
            "sse_event_delivery_lag".into(),
            with_thresholds(trend(&sse.delivery_lag_ms), "sse_event_delivery_lag", j),
        );
        metrics.insert(
            "sse_events".into(),
            Value::Object(counter(sse.totals.events_received, d)),
        );
    }
    let check_path = format!("::{CHECK_NAME}");
    json!({
        "root_group": {
            "name": "",
            "path": "",
            "id": md5_hex(""),
            "groups": [],
            "checks": [{
                "name": CHECK_NAME,
                "path": check_path,
                "id": md5_hex(&check_path),
                "passes": n.ok,
                "fails": n.errors,
            }],
        },
        "options": {
            "summaryTrendStats": ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)"],
            "summaryTimeUnit": "",
            "noColor": false,
        },
        "state": {
            "isStdOutTTY": false,
            "isStdErrTTY": false,
            "testRunDurationMs": d * 1000.0,
        },
        "metrics": metrics,
    })
}

/// Every Prometheus series name this function writes (the doc test checks the list).
pub fn prom_series(r: &RunReport, ts_ms: i64) -> WriteRequest {
    let n = &r.numbers;
    let owned = series_labels(r);
    let labels: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let s = |v: f64| v / 1000.0; // ms → s
    let lat = &n.latency_ms;
    let mut v: Vec<(String, f64)> = vec![
        ("k6_http_req_duration_min".into(), s(lat.min)),
        ("k6_http_req_duration_avg".into(), s(lat.avg)),
        ("k6_http_req_duration_med".into(), s(lat.med)),
        ("k6_http_req_duration_p50".into(), s(lat.med)),
        ("k6_http_req_duration_p90".into(), s(lat.p90)),
        ("k6_http_req_duration_p95".into(), s(lat.p95)),
        ("k6_http_req_duration_p99".into(), s(lat.p99)),
        ("k6_http_req_duration_max".into(), s(lat.max)),
        ("k6_http_req_duration_count".into(), lat.count as f64),
        ("k6_http_reqs_total".into(), n.sent as f64),
        ("k6_iterations_total".into(), n.sent as f64),
        ("k6_http_req_failed_rate".into(), n.error_rate),
        ("k6_dropped_iterations_total".into(), n.dropped as f64),
        ("k6_summary_scheduled_total".into(), n.scheduled as f64),
        ("k6_summary_errors_total".into(), n.errors as f64),
        (
            "k6_summary_error_rate_samples".into(),
            n.error_rate_samples as f64,
        ),
        ("k6_summary_throughput_rps".into(), n.throughput_rps),
        (
            "k6_summary_throughput_samples".into(),
            n.throughput_samples as f64,
        ),
        (
            "k6_summary_http_req_duration_uncorrected_p95".into(),
            s(n.latency_uncorrected_ms.p95),
        ),
        (
            "k6_summary_http_req_duration_uncorrected_p99".into(),
            s(n.latency_uncorrected_ms.p99),
        ),
        (
            "k6_summary_scheduler_lag_p99".into(),
            s(n.scheduler_lag_ms.p99),
        ),
        ("k6_summary_shards_total".into(), n.shards_total as f64),
        ("k6_summary_shards_failed".into(), n.shards_failed as f64),
        ("k6_summary_slices_total".into(), f64::from(r.slices_run)),
        ("k6_summary_passed".into(), if r.passed { 1.0 } else { 0.0 }),
        (
            "k6_summary_thresholds_failed".into(),
            r.thresholds.iter().filter(|t| !t.ok).count() as f64,
        ),
        (
            "k6_summary_aborted".into(),
            if r.aborted.is_some() { 1.0 } else { 0.0 },
        ),
    ];
    // An ad-hoc run has no gate: it says nothing about the named scenario's.
    if let Some(g) = &r.gate {
        v.push((
            "k6_summary_gate_blocked".into(),
            if g.state == crate::gate::GateStatus::Block {
                1.0
            } else {
                0.0
            },
        ));
    }
    if let Some(ratio) = r.baseline.as_ref().and_then(|b| b.ratio) {
        v.push(("k6_summary_baseline_ratio".into(), ratio));
    }
    if let Some(sse) = &n.sse {
        v.extend([
            (
                "k6_summary_sse_handshake_duration_p95".into(),
                s(sse.handshake_ms.p95),
            ),
            (
                "k6_summary_sse_handshake_duration_p99".into(),
                s(sse.handshake_ms.p99),
            ),
            (
                "k6_summary_sse_handshake_duration_max".into(),
                s(sse.handshake_ms.max),
            ),
            (
                "k6_summary_sse_reconnect_duration_p95".into(),
                s(sse.reconnect_ms.p95),
            ),
            (
                "k6_summary_sse_reconnect_duration_max".into(),
                s(sse.reconnect_ms.max),
            ),
            (
                "k6_summary_sse_event_delivery_lag_p95".into(),
                s(sse.delivery_lag_ms.p95),
            ),
            (
                "k6_summary_sse_streams_opened_total".into(),
                sse.totals.streams_opened as f64,
            ),
            (
                "k6_summary_sse_streams_failed_total".into(),
                sse.totals.streams_failed as f64,
            ),
            (
                "k6_summary_sse_reconnects_total".into(),
                sse.totals.reconnects as f64,
            ),
            (
                "k6_summary_sse_events_total".into(),
                sse.totals.events_received as f64,
            ),
        ]);
    }
    WriteRequest {
        timeseries: v
            .into_iter()
            .filter_map(|(name, value)| series(&name, &labels, value, ts_ms))
            .collect::<Vec<TimeSeries>>(),
    }
}

/// The samples one slice writes of its requests, one every step (`timeline_step_ms`), as
/// Prometheus counters and a classic histogram, cumulative from the run's start: `base` is
/// everything the earlier slices counted, `steps` this slice's steps in order. Each sample is
/// stamped at its step's end (or the slice's end, for a step the slice boundary cuts, so the
/// next slice's sample of the same step comes later). The first slice starts every series at
/// 0 at its window's start, so `increase()` over the run is the run's count. The end-of-run
/// summary writes the same names and labels: its sample is the series' last point.
pub fn timeline_series(
    labels: &[(String, String)],
    t0_unix_ms: u64,
    window: loadtest_core::Window,
    step_ms: u64,
    base: &loadtest_core::TimelineStep,
    steps: &[loadtest_core::TimelineStep],
) -> WriteRequest {
    use loadtest_core::TIMELINE_LE_S;
    let les: Vec<String> = TIMELINE_LE_S
        .iter()
        .map(|le| format!("{le}"))
        .chain(std::iter::once("+Inf".to_string()))
        .collect();
    let mut out: Vec<TimeSeries> = vec![];
    let mut index: std::collections::BTreeMap<(String, Option<usize>), usize> = Default::default();
    let mut add = |name: &str, le: Option<usize>, value: f64, ts: i64| {
        let key = (name.to_string(), le);
        if let Some(&i) = index.get(&key) {
            out[i].samples.push(Sample {
                value,
                timestamp: ts,
            });
            return;
        }
        let mut l: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(b) = le {
            l.push(("le", les[b].as_str()));
        }
        if let Some(t) = series(name, &l, value, ts) {
            index.insert(key, out.len());
            out.push(t);
        }
    };
    let mut cum = base.clone();
    if cum.buckets.len() < les.len() {
        cum.buckets.resize(les.len(), 0);
    }
    let mut emit = |cum: &loadtest_core::TimelineStep, ts: i64| {
        let scheduled = cum.sent + cum.dropped;
        add("k6_http_reqs_total", None, cum.sent as f64, ts);
        add("k6_iterations_total", None, cum.sent as f64, ts);
        add("k6_dropped_iterations_total", None, cum.dropped as f64, ts);
        add("k6_summary_errors_total", None, cum.errors() as f64, ts);
        if scheduled > 0 {
            add(
                "k6_http_req_failed_rate",
                None,
                (cum.errors() + cum.dropped) as f64 / scheduled as f64,
                ts,
            );
        }
        let mut running = 0u64;
        for (b, n) in cum.buckets.iter().enumerate() {
            running += n;
            add(
                "k6_http_req_duration_seconds_bucket",
                Some(b),
                running as f64,
                ts,
            );
        }
        add(
            "k6_http_req_duration_seconds_count",
            None,
            running as f64,
            ts,
        );
        add(
            "k6_http_req_duration_seconds_sum",
            None,
            cum.latency_sum_us as f64 / 1e6,
            ts,
        );
    };
    if window.from_ms == 0 {
        emit(&cum, t0_unix_ms as i64);
    }
    let step_ms = step_ms.max(1);
    for s in steps {
        cum.add(s);
        let end = ((s.step + 1) * step_ms)
            .min(window.to_ms)
            .max(window.from_ms + 1);
        emit(&cum, (t0_unix_ms + end) as i64);
    }
    WriteRequest { timeseries: out }
}

/// The EMF documents of a finished run (dimension `scenario`).
pub fn emf_documents(common: &CommonConfig, r: &RunReport) -> Vec<Emf> {
    let n = &r.numbers;
    let mut e = Emf::new(common).dimension("scenario", &r.scenario);
    e.metric(
        "loadtest_http_req_duration_p50",
        n.latency_ms.med,
        Unit::Milliseconds,
    )
    .metric(
        "loadtest_http_req_duration_p95",
        n.latency_ms.p95,
        Unit::Milliseconds,
    )
    .metric(
        "loadtest_http_req_duration_p99",
        n.latency_ms.p99,
        Unit::Milliseconds,
    )
    .metric(
        "loadtest_http_req_duration_max",
        n.latency_ms.max,
        Unit::Milliseconds,
    )
    .metric("loadtest_error_rate", n.error_rate, Unit::None)
    .metric("loadtest_throughput_rps", n.throughput_rps, Unit::None)
    .metric(
        "loadtest_requests_scheduled",
        n.scheduled as f64,
        Unit::Count,
    )
    .metric("loadtest_requests_sent", n.sent as f64, Unit::Count)
    .metric("loadtest_requests_errors", n.errors as f64, Unit::Count)
    .metric("loadtest_requests_dropped", n.dropped as f64, Unit::Count)
    .metric(
        "loadtest_shards_failed",
        n.shards_failed as f64,
        Unit::Count,
    )
    .metric(
        "loadtest_thresholds_failed",
        r.thresholds.iter().filter(|t| !t.ok).count() as f64,
        Unit::Count,
    )
    .metric(
        "loadtest_run_passed",
        if r.passed { 1.0 } else { 0.0 },
        Unit::Count,
    )
    .property("run_id", r.run_id.clone())
    .property("status", r.status.clone())
    .property("report", r.artifacts.report.clone());
    // An ad-hoc run has no gate: it says nothing about the named scenario's.
    if let Some(g) = &r.gate {
        e.metric(
            "loadtest_gate_blocked",
            if g.state == crate::gate::GateStatus::Block {
                1.0
            } else {
                0.0
            },
            Unit::Count,
        );
    }
    if let Some(sse) = &n.sse {
        e.metric(
            "loadtest_sse_handshake_p95",
            sse.handshake_ms.p95,
            Unit::Milliseconds,
        )
        .metric(
            "loadtest_sse_reconnect_p95",
            sse.reconnect_ms.p95,
            Unit::Milliseconds,
        );
    }
    vec![e]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::tests::result;
    use crate::aggregate::{Aggregate, SseNumbers, SseTotals};
    use crate::gate::{GateState, GateStatus};
    use shared::config::Vars;

    fn common() -> CommonConfig {
        CommonConfig::from_vars(
            &Vars::from_pairs([("ENVIRONMENT", "prod"), ("REPORT_BUCKET", "r")]),
            "loadtest-coordinator",
        )
        .unwrap()
    }

    pub fn report(sse: bool) -> RunReport {
        let mut a = Aggregate::default();
        let mut lat = vec![100u64; 95];
        lat.extend([1200u64; 5]);
        a.add_result(&result(0, 0, &lat, 2, 3), 103).unwrap();
        let mut numbers = Numbers::of(&a, 10.0);
        if sse {
            numbers.sse = Some(SseNumbers {
                handshake_ms: numbers.latency_ms.clone(),
                reconnect_ms: numbers.latency_ms.clone(),
                delivery_lag_ms: numbers.latency_ms.clone(),
                totals: SseTotals::default(),
            });
        }
        RunReport {
            run_id: "run-7".into(),
            scenario: "quote-generation".into(),
            environment: "prod".into(),
            deployment: "d".into(),
            status: "FAILED".into(),
            passed: false,
            aborted: None,
            t0: "t".into(),
            finished_at: "t".into(),
            mode: "http".into(),
            slices_planned: 2,
            slices_run: 2,
            slice_seconds: 600,
            numbers,
            thresholds: vec![Judged {
                metric: "http_req_duration".into(),
                expr: "p(95)<900".into(),
                observed: 1200.0,
                samples: 100,
                ok: false,
                abort_on_fail: false,
            }],
            baseline: Some(BaselineCheck {
                reference_run: Some("run-6".into()),
                reference_runs: 1,
                reference_throughput_rps: Some(10.0),
                throughput_rps: 9.5,
                ratio: Some(0.95),
                min_ratio: 1.0,
                tolerance_rps: Some(0.2),
                required_rps: Some(9.8),
                ok: false,
            }),
            gate: Some(GateState {
                scenario: "quote-generation".into(),
                state: GateStatus::Block,
                consecutive_p95_failures: 2,
                incident: Some("REL-0001".into()),
                incident_run_id: Some("run-7".into()),
                last_incident: None,
                reason: "r".into(),
                last_run_id: "run-7".into(),
                last_run_passed: false,
                last_run_error: None,
                last_p95_ms: 1200.0,
                p95_objective: "p(95)<900".into(),
                last_report: "s3://x".into(),
                updated_at: "t".into(),
                applied_runs: vec!["run-7".into()],
            }),
            incident: Some("REL-0001".into()),
            artifacts: Artifacts {
                summary: "s".into(),
                histogram: "h".into(),
                markdown: "m".into(),
                chart: "c".into(),
                report: "r".into(),
            },
            remote_write: "sent".into(),
            notes: vec![],
            tags: [
                ("service", "quotes"),
                ("team-name", "platform"),
                ("scenario", "not-me"),
                ("9lives", "x"),
                ("__name__", "no"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }

    fn doc() -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../docs/loadtest-coordinator.md"),
        )
        .expect("docs/loadtest-coordinator.md")
    }

    /// The k6 `--summary-export` shape that existing tooling reads.
    #[test]
    fn summary_has_the_k6_export_shape() {
        let s = k6_summary(&report(false));
        let d = &s["metrics"]["http_req_duration"];
        for k in ["avg", "min", "med", "max", "p(90)", "p(95)"] {
            assert!(d[k].is_f64(), "{k}: {d}");
        }
        assert!((d["p(95)"].as_f64().unwrap() - 100.0).abs() < 0.1);
        assert!((d["max"].as_f64().unwrap() - 1200.0).abs() < 2.0);
        assert_eq!(
            d["thresholds"]["p(95)<900"], true,
            "true = failed, as k6 exports it"
        );
        assert_eq!(s["metrics"]["http_reqs"]["count"], 100);
        assert!((s["metrics"]["http_reqs"]["rate"].as_f64().unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(s["metrics"]["dropped_iterations"]["count"], 3);
        let f = &s["metrics"]["http_req_failed"];
        assert_eq!(f["passes"], 5);
        assert_eq!(f["fails"], 98);
        assert!((f["value"].as_f64().unwrap() - 5.0 / 103.0).abs() < 1e-12);
        assert_eq!(s["metrics"]["checks"]["passes"], 98);
        assert_eq!(s["metrics"]["checks"]["fails"], 2);
        let rg = &s["root_group"];
        assert_eq!(rg["name"], "");
        assert_eq!(rg["path"], "");
        assert_eq!(rg["id"], "d41d8cd98f00b204e9800998ecf8427e");
        assert!(rg["groups"].as_array().unwrap().is_empty());
        assert_eq!(rg["checks"][0]["name"], CHECK_NAME);
        assert_eq!(rg["checks"][0]["passes"], 98);
        assert_eq!(rg["checks"][0]["id"].as_str().unwrap().len(), 32);
        assert!(s["state"]["testRunDurationMs"].as_f64().unwrap() > 0.0);
    }

    #[test]
    fn prometheus_names_are_documented_and_in_seconds() {
        let doc = doc();
        for sse in [false, true] {
            let req = prom_series(&report(sse), 1_700_000_000_000);
            for ts in &req.timeseries {
                let name = &ts
                    .labels
                    .iter()
                    .find(|l| l.name == "__name__")
                    .unwrap()
                    .value;
                assert!(
                    doc.lines().any(|l| l.starts_with(&format!("| `{name}` |"))),
                    "series {name} is not documented in docs/loadtest-coordinator.md"
                );
                let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
                let mut sorted = names.clone();
                sorted.sort();
                assert_eq!(names, sorted);
            }
        }
        // The scenario's tags are labels; they never replace the run's own.
        let labels: Vec<(String, String)> = series_labels(&report(false));
        let l = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(l("service"), Some("quotes"));
        assert_eq!(l("team_name"), Some("platform"));
        assert_eq!(l("_9lives"), Some("x"));
        assert_eq!(l("scenario"), Some("quote-generation"));
        assert_eq!(
            labels.iter().filter(|(n, _)| n.starts_with("__")).count(),
            0
        );
        let req = prom_series(&report(false), 0);
        let get = |n: &str| {
            req.timeseries
                .iter()
                .find(|t| {
                    t.labels
                        .iter()
                        .any(|l| l.name == "__name__" && l.value == n)
                })
                .map(|t| t.samples[0].value)
                .unwrap_or_else(|| panic!("{n}"))
        };
        assert!(
            (get("k6_http_req_duration_p95") - 0.1).abs() < 1e-3,
            "seconds"
        );
        assert_eq!(get("k6_http_reqs_total"), 100.0);
        assert_eq!(get("k6_dropped_iterations_total"), 3.0);
        assert!((get("k6_http_req_failed_rate") - 5.0 / 103.0).abs() < 1e-12);
        assert_eq!(get("k6_summary_gate_blocked"), 1.0);
        assert_eq!(get("k6_summary_baseline_ratio"), 0.95);
    }

    /// Every EMF metric emitted is documented with its unit and dimension.
    #[test]
    fn emitted_metrics_are_documented() {
        let doc = doc();
        let c = common();
        let docs = emf_documents(&c, &report(true));
        let seen = shared::metrics::assert_documented(&doc, "docs/loadtest-coordinator.md", &docs);
        assert!(seen.occurrences >= 16, "{seen:?}");
    }

    #[test]
    fn markdown_and_chart() {
        let r = report(false);
        let md = crate::report::markdown(&r, "latency.svg");
        assert!(md.contains("![latency by percentile](latency.svg)"));
        assert!(
            md.contains("| p95 | 100.0") && md.contains(" | 100 |"),
            "{md}"
        );
        assert!(md.contains("**FAIL**"));
        assert!(md.contains("REL-0001"));
        let mut h = loadtest_core::new_histogram();
        for v in 1..1000u64 {
            h.saturating_record(v * 1000);
        }
        let svg = crate::report::latency_svg("t", &h, &h, Some(900.0)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline") || svg.contains("<path"),
            "{}",
            &svg[..200.min(svg.len())]
        );
        assert!(svg.contains("p95 objective 900 ms"));
        assert!(crate::report::latency_svg(
            "empty",
            &loadtest_core::new_histogram(),
            &loadtest_core::new_histogram(),
            None
        )
        .is_ok());
    }

    /// Two slices' samples are one cumulative counter per series: they start at 0 at t0,
    /// rise step by step, continue across the slice boundary (the cut step stamped at the
    /// slice's end, then at its own end), and every name is documented.
    #[test]
    fn slices_write_cumulative_counters_and_buckets_step_by_step() {
        use loadtest_core::{timeline_bucket, TimelineStep, Window, TIMELINE_LE_S};
        let step = |n: u64, sent: u64, ok: u64, lat_ms: u64| {
            let mut s = TimelineStep::new(n);
            s.sent = sent;
            s.ok = ok;
            s.buckets[timeline_bucket(lat_ms * 1000)] = sent;
            s.latency_sum_us = sent * lat_ms * 1000;
            s
        };
        let labels = labels_of("quote-generation", "local", "r1", &Default::default());
        // Slice 0 = [0, 25 s): steps 0, 1 and the first half of step 2 (10 s steps).
        let s0 = [step(0, 10, 10, 40), step(1, 10, 9, 40), step(2, 5, 5, 300)];
        let w0 = Window {
            from_ms: 0,
            to_ms: 25_000,
        };
        let a = timeline_series(&labels, 1_000_000, w0, 10_000, &TimelineStep::new(0), &s0);
        let mut base = TimelineStep::new(0);
        s0.iter().for_each(|s| base.add(s));
        let w1 = Window {
            from_ms: 25_000,
            to_ms: 40_000,
        };
        let s1 = [step(2, 5, 5, 300), step(3, 10, 10, 40)];
        let b = timeline_series(&labels, 1_000_000, w1, 10_000, &base, &s1);
        let get = |req: &WriteRequest, name: &str, le: Option<&str>| -> Vec<(i64, f64)> {
            req.timeseries
                .iter()
                .find(|t| {
                    t.labels
                        .iter()
                        .any(|l| l.name == "__name__" && l.value == name)
                        && le.is_none_or(|le| {
                            t.labels.iter().any(|l| l.name == "le" && l.value == le)
                        })
                })
                .map(|t| t.samples.iter().map(|s| (s.timestamp, s.value)).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            get(&a, "k6_http_reqs_total", None),
            [
                (1_000_000, 0.0),
                (1_010_000, 10.0),
                (1_020_000, 20.0),
                (1_025_000, 25.0)
            ]
        );
        assert_eq!(
            get(&b, "k6_http_reqs_total", None),
            [(1_030_000, 30.0), (1_040_000, 40.0)]
        );
        assert_eq!(
            get(&b, "k6_summary_errors_total", None).last(),
            Some(&(1_040_000, 1.0))
        );
        // Buckets are cumulative in `le`; +Inf is the count; 300 ms falls in le="0.5".
        assert_eq!(
            get(&b, "k6_http_req_duration_seconds_bucket", Some("0.05"))
                .last()
                .unwrap()
                .1,
            30.0
        );
        assert_eq!(
            get(&b, "k6_http_req_duration_seconds_bucket", Some("0.25"))
                .last()
                .unwrap()
                .1,
            30.0
        );
        assert_eq!(
            get(&b, "k6_http_req_duration_seconds_bucket", Some("0.5"))
                .last()
                .unwrap()
                .1,
            40.0
        );
        assert_eq!(
            get(&b, "k6_http_req_duration_seconds_bucket", Some("+Inf"))
                .last()
                .unwrap()
                .1,
            40.0
        );
        assert_eq!(
            get(&b, "k6_http_req_duration_seconds_count", None)
                .last()
                .unwrap()
                .1,
            40.0
        );
        let sum = get(&b, "k6_http_req_duration_seconds_sum", None)
            .last()
            .unwrap()
            .1;
        assert!((sum - (30.0 * 0.04 + 10.0 * 0.3)).abs() < 1e-9, "{sum}");
        // One series per bucket bound plus +Inf, every series' samples in time order.
        let buckets = a
            .timeseries
            .iter()
            .filter(|t| t.labels.iter().any(|l| l.name == "le"))
            .count();
        assert_eq!(buckets, TIMELINE_LE_S.len() + 1);
        let doc = doc();
        for req in [&a, &b] {
            for t in &req.timeseries {
                assert!(t
                    .samples
                    .windows(2)
                    .all(|w| w[0].timestamp < w[1].timestamp));
                let name = &t
                    .labels
                    .iter()
                    .find(|l| l.name == "__name__")
                    .unwrap()
                    .value;
                assert!(
                    doc.lines().any(|l| l.starts_with(&format!("| `{name}` |"))),
                    "series {name} is not documented in docs/loadtest-coordinator.md"
                );
            }
        }
    }
}
