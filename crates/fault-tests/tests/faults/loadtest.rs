//! loadtest-coordinator through S3 faults: every S3 call (scenario, run state, slice claims,
//! partials, artifacts, gate) goes through the fault proxy, first with 30 % of the answers
//! lost after S3 acted, then with a 503/500 burst. The shards are an in-process invoker that
//! answers from the schedule (the real shard is tested end to end in
//! functions/loadtest-coordinator/tests/e2e_it.rs), so what is under test is the
//! coordinator's own state in S3.
//!
//! Invariant, checked after every delivery through a client that talks to moto directly:
//! the load is generated once (each shard of each slice invoked at most once, whatever the
//! redeliveries), and a run's `report.json` (written last, the completion marker) exists only
//! with every artifact beside it and a summary counting each scheduled request exactly once.
//! A lost answer to a conditional create (run state, slice claim) must not make the
//! coordinator think another delivery owns the run: that would lose the run.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use fault_proxy::{ErrorKind, ResetPoint};
use fault_tests::{deliver_until_ok, Faulted, BURST};
use loadtest_coordinator::config::Settings;
use loadtest_coordinator::port::{Invoker, S3Store, ShardFailure, SnsNotifier};
use loadtest_coordinator::run::{now_ms, Engine, ScenarioRef, StartRequest};
use loadtest_core::{encode_histogram, new_histogram, Schedule, ShardRequest, ShardResult};
use serde_json::{json, Value};
use shared::config::{CommonConfig, Vars};
use shared::SuiteResult;

const BUCKET: &str = "playbook-reports";
const ARTIFACTS: [&str; 5] = [
    "summary.json",
    "histogram.json",
    "report.md",
    "latency.svg",
    "report.json",
];

/// Shards that answer from the schedule after the window, counting every invocation.
#[derive(Default)]
struct Shards {
    calls: Mutex<BTreeMap<(String, u32, u32), u32>>,
}

impl Invoker for Shards {
    async fn invoke_shard(
        &self,
        req: &ShardRequest,
        _t: Duration,
    ) -> Result<ShardResult, ShardFailure> {
        *self
            .calls
            .lock()
            .expect("calls")
            .entry((req.run_id.clone(), req.slice_index, req.shard_index))
            .or_default() += 1;
        let end = req.t0_unix_ms + req.window.to_ms;
        let now = now_ms();
        if end > now {
            tokio::time::sleep(Duration::from_millis(end - now)).await;
        }
        let s = Schedule::from_scenario(&req.scenario).expect("schedule");
        let n = s
            .stripe_in(
                Duration::from_millis(req.window.from_ms),
                Duration::from_millis(req.window.to_ms),
                req.shard_index,
                req.shard_count,
            )
            .count() as u64;
        let mut h = new_histogram();
        for _ in 0..n {
            h.saturating_record(80_000);
        }
        Ok(ShardResult {
            run_id: req.run_id.clone(),
            slice_index: req.slice_index,
            shard_index: req.shard_index,
            scheduled: n,
            sent: n,
            ok: n,
            latency_us: encode_histogram(&h).expect("histogram"),
            latency_uncorrected_us: encode_histogram(&h).expect("histogram"),
            ..Default::default()
        })
    }

    async fn continue_async(&self, _p: &Value) -> SuiteResult<()> {
        panic!("single-slice runs hand nothing off")
    }
}

impl Shards {
    /// Each shard of `run` invoked exactly once; returns how many there were.
    fn once_each(&self, run: &str) -> usize {
        let calls = self.calls.lock().expect("calls");
        let mine: Vec<_> = calls.iter().filter(|((r, _, _), _)| r == run).collect();
        for (k, n) in &mine {
            assert_eq!(**n, 1, "shard {k:?} invoked {n} times: the load ran twice");
        }
        mine.len()
    }
}

/// The run's folder (`k6/<date>/<scenario>/<run>/`) if its completion marker exists, after
/// checking that everything a reader would open is beside it and counts each request once.
async fn complete_report(s3: &aws_sdk_s3::Client, run: &str, requests: u64) -> Option<String> {
    let keys = suite_tests::list_keys(s3, BUCKET, "k6/").await;
    let marker = keys
        .iter()
        .find(|k| k.ends_with(&format!("/{run}/report.json")))?;
    let folder = marker.trim_end_matches("report.json").to_string();
    for f in ARTIFACTS {
        assert!(
            keys.contains(&format!("{folder}{f}")),
            "{folder}report.json is presented as complete without {f}"
        );
    }
    let summary: Value = serde_json::from_slice(
        &suite_tests::get(s3, BUCKET, &format!("{folder}summary.json"))
            .await
            .expect("summary"),
    )
    .expect("summary JSON");
    assert_eq!(
        summary["metrics"]["http_reqs"]["count"], requests,
        "{folder}summary.json"
    );
    Some(folder)
}

#[tokio::test]
async fn lost_create_answers_and_bursts_neither_lose_a_run_nor_run_it_twice() {
    let (_g, m) = suite_tests::exclusive_moto().await;
    let direct = m.clients().await;
    let s3 = direct.s3();
    suite_tests::create_buckets(&s3, &[BUCKET]).await;
    let scenario = json!({
        "name": "checkout",
        "target": {"base_url": "http://127.0.0.1:9"},
        "executor": {"type": "constant-arrival-rate", "rate": 10, "time_unit": "1s", "duration": "2s"},
        "request": {"method": "GET", "path": "/health"},
        "thresholds": {"http_req_duration": ["p(95)<900"]}
    });
    suite_tests::put(
        &s3,
        BUCKET,
        "k6/scenarios/checkout.json",
        serde_json::to_vec(&scenario).expect("json"),
    )
    .await;

    let vars = Vars::from_pairs([
        ("ENVIRONMENT", "local"),
        ("REPORT_BUCKET", BUCKET),
        ("LOADTEST_COORD_SLICE_SECONDS", "5"),
        ("LOADTEST_COORD_LEAD_SECONDS", "1"),
    ]);
    let common = CommonConfig::from_vars(&vars, "loadtest-coordinator").expect("common");
    let settings = Settings::from_vars(&vars, &common).expect("settings");
    let f = Faulted::new(m).await;
    let store = S3Store::new(f.s3(), BUCKET);
    let shards = Shards::default();
    let notifier = SnsNotifier::new(aws_sdk_sns::Client::new(&f.clients.sdk), None);
    let http = reqwest::Client::new();
    let engine = Engine {
        store: &store,
        invoker: &shards,
        notifier: &notifier,
        settings: &settings,
        common: &common,
        http: &http,
        sigv4: None,
    };
    let start = |run: &'static str| {
        let engine = &engine;
        async move {
            engine
                .start(StartRequest {
                    scenario: ScenarioRef::Named("checkout".into()),
                    run_id: Some(run.into()),
                    base_url: None,
                })
                .await
        }
    };

    for (run, seed) in [("lost-answers", 61), ("burst", 62)] {
        f.proxy.seed(seed);
        if run == "lost-answers" {
            f.proxy
                .connection_resets(0.3, BURST, ResetPoint::AfterUpstream);
        } else {
            f.proxy.error_burst(0.3, BURST, ErrorKind::Mixed);
        }
        let out = deliver_until_ok(
            6,
            || start(run),
            || async {
                shards.once_each(run);
                complete_report(&s3, run, 20).await;
            },
        )
        .await;
        let hit = f.proxy.stats();
        f.proxy.clear();
        assert!(
            hit.resets + hit.slow_down + hit.internal_error > 0,
            "{run}: the faults never hit: {hit:?}"
        );
        assert_eq!(out.result["status"], "PASSED", "{run}: {}", out.result);
        assert!(
            complete_report(&s3, run, 20).await.is_some(),
            "{run}: no complete report"
        );
        let n = shards.once_each(run);
        assert!(n >= 1, "{run}: no shard ran");

        // The scheduler delivers the same start again: the finished report is replayed and no
        // load is generated.
        let again = start(run).await.expect("redelivery");
        assert_eq!(again["replayed"], true, "{run}: {again}");
        assert_eq!(shards.once_each(run), n);
    }
}
