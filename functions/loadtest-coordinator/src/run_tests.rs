//! The run with fakes for the ports (pure logic of slicing, handoff, merge, gate): S3 is a
//! map, shards are computed from the same schedule the real shard uses and answer at the end
//! of their window, continuations are run by the test as they are sent. The same paths run
//! against moto, watch and the real shard in tests/.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use loadtest_core::{
    encode_histogram, new_histogram, ErrorCounts, Schedule, ShardRequest, ShardResult,
};
use serde_json::{json, Value};
use shared::config::{CommonConfig, Vars};
use shared::SuiteResult;

use super::*;
use crate::port::{Invoker, Notifier, ShardFailure, Store};

#[derive(Default)]
pub struct MapStore(pub Mutex<BTreeMap<String, Bytes>>);

impl Store for MapStore {
    async fn get(&self, key: &str) -> SuiteResult<Option<Bytes>> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }
    async fn put(&self, key: &str, body: Bytes, _: &str) -> SuiteResult<()> {
        self.0.lock().unwrap().insert(key.into(), body);
        Ok(())
    }
    async fn create(&self, key: &str, body: Bytes, _: &str) -> SuiteResult<bool> {
        let mut m = self.0.lock().unwrap();
        if let Some(existing) = m.get(key) {
            return Ok(*existing == body);
        }
        m.insert(key.into(), body);
        Ok(true)
    }
    async fn list(&self, prefix: &str) -> SuiteResult<Vec<String>> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
    async fn get_tagged(&self, key: &str) -> SuiteResult<Option<shared::store::Tagged>> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(key)
            .map(|b| shared::store::Tagged {
                etag: etag(b),
                body: b.clone(),
            }))
    }
    async fn replace(&self, key: &str, body: Bytes, _: &str, tag: &str) -> SuiteResult<bool> {
        let mut m = self.0.lock().unwrap();
        match m.get(key) {
            None => Ok(false),
            Some(cur) if etag(cur) == tag => {
                m.insert(key.into(), body);
                Ok(true)
            }
            Some(cur) => Ok(*cur == body),
        }
    }
}

/// A content ETag, as S3's MD5 is for a single-part object.
fn etag(b: &Bytes) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    b.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

impl MapStore {
    /// Uploads the scenario as the named scenario file (as Terraform does) and names it: a
    /// named run, the only kind that touches the release gate.
    fn named(&self, v: Value) -> ScenarioRef {
        let name = v["name"].as_str().unwrap().to_string();
        self.0.lock().unwrap().insert(
            format!("k6/scenarios/{name}.json"),
            Bytes::from(serde_json::to_vec(&v).unwrap()),
        );
        ScenarioRef::Named(name)
    }
    fn json(&self, key: &str) -> Value {
        let b = self
            .0
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("no {key}"));
        serde_json::from_slice(&b).unwrap()
    }
    fn keys(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }
}

/// How a fake shard behaves for a request.
#[derive(Clone, Copy)]
pub struct Behaviour {
    pub latency_ms: u64,
    /// Every n-th request is a 500.
    pub error_every: Option<u64>,
    pub fail: bool,
}

pub struct FakeShards {
    pub behaviour: Box<dyn Fn(&ShardRequest) -> Behaviour + Send + Sync>,
    pub continuations: tokio::sync::mpsc::UnboundedSender<Value>,
    pub invoked: Mutex<Vec<(u32, u32, u64)>>,
}

impl Invoker for FakeShards {
    async fn invoke_shard(
        &self,
        req: &ShardRequest,
        _timeout: Duration,
    ) -> Result<ShardResult, ShardFailure> {
        self.invoked
            .lock()
            .unwrap()
            .push((req.slice_index, req.shard_index, now_ms()));
        let b = (self.behaviour)(req);
        // Answer when the window closes, as a real shard does.
        let end = req.t0_unix_ms + req.window.to_ms;
        let now = now_ms();
        if end > now {
            tokio::time::sleep(Duration::from_millis(end - now)).await;
        }
        if b.fail {
            return Err(ShardFailure::Failed("Unhandled: injected".into()));
        }
        let s = Schedule::from_scenario(&req.scenario).unwrap();
        let idx: Vec<u64> = s
            .stripe_in(
                Duration::from_millis(req.window.from_ms),
                Duration::from_millis(req.window.to_ms),
                req.shard_index,
                req.shard_count,
            )
            .collect();
        let mut h = new_histogram();
        let mut errors = ErrorCounts::default();
        for &i in &idx {
            h.saturating_record(b.latency_ms * 1000);
            if b.error_every.map(|n| i % n == 0).unwrap_or(false) {
                *errors.status.entry("500".into()).or_default() += 1;
            }
        }
        let n = idx.len() as u64;
        Ok(ShardResult {
            run_id: req.run_id.clone(),
            slice_index: req.slice_index,
            shard_index: req.shard_index,
            scheduled: n,
            sent: n,
            ok: n - errors.total(),
            errors,
            dropped: 0,
            latency_us: encode_histogram(&h).unwrap(),
            latency_uncorrected_us: encode_histogram(&h).unwrap(),
            scheduler_lag_us: String::new(),
            ..Default::default()
        })
    }
    async fn continue_async(&self, payload: &Value) -> SuiteResult<()> {
        self.continuations
            .send(payload.clone())
            .map_err(|e| shared::SuiteError::Internal(e.to_string()))
    }
}

#[derive(Default)]
/// REL incidents published (subject, message), and notices.
pub struct FakeSns(
    pub Mutex<Vec<(String, String)>>,
    pub Mutex<Vec<shared::notifications::PlaybookAlert>>,
);

impl Notifier for FakeSns {
    async fn publish(&self, subject: &str, message: &str) -> SuiteResult<Option<String>> {
        self.0
            .lock()
            .unwrap()
            .push((subject.into(), message.into()));
        Ok(Some("m-1".into()))
    }

    async fn notice(
        &self,
        alert: &shared::notifications::PlaybookAlert,
    ) -> SuiteResult<Option<String>> {
        self.1.lock().unwrap().push(alert.clone());
        Ok(Some("n-1".into()))
    }
}

fn settings(slice_s: &str) -> (CommonConfig, Settings) {
    let vars = Vars::from_pairs([
        ("ENVIRONMENT", "local"),
        ("REPORT_BUCKET", "reports"),
        ("LOADTEST_COORD_SLICE_SECONDS", slice_s),
        ("LOADTEST_COORD_LEAD_SECONDS", "1"),
        ("LOADTEST_COORD_SHARD_GRACE_SECONDS", "2"),
        ("LOADTEST_COORD_FINALIZE_WAIT_SECONDS", "3"),
        ("LOADTEST_COORD_SHARD_RPS", "10"),
    ]);
    let common = CommonConfig::from_vars(&vars, "loadtest-coordinator").unwrap();
    let s = Settings::from_vars(&vars, &common).unwrap();
    (common, s)
}

fn scenario(duration: &str, rate: u32, thresholds: Value) -> Value {
    json!({
        "name": "quote-generation",
        "target": {"base_url": "http://127.0.0.1:1"},
        "executor": {"type": "constant-arrival-rate", "rate": rate, "time_unit": "1s", "duration": duration, "max_in_flight": 50},
        "request": {"method": "POST", "path": "/api/v1/quotes/generate", "body": {"json": {"items": 3}}},
        "thresholds": thresholds,
        "baseline": {"min_ratio": 0.9}
    })
}

/// Runs a start and every continuation it causes, concurrently, as Lambda would; returns the
/// responses in completion order.
async fn drive(
    engine: &Engine<'_, MapStore, FakeShards, FakeSns>,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>,
    start: StartRequest,
) -> Vec<Value> {
    let mut running = FuturesUnordered::new();
    running.push(Box::pin(async move { engine.start(start).await.unwrap() })
        as std::pin::Pin<
            Box<dyn std::future::Future<Output = Value> + Send + '_>,
        >);
    let mut out = vec![];
    loop {
        tokio::select! {
            Some(p) = rx.recv() => {
                let run_id = p["continuation"]["run_id"].as_str().unwrap().to_string();
                let k = p["continuation"]["slice"].as_u64().unwrap() as u32;
                running.push(Box::pin(async move { engine.continue_run(&run_id, k).await.unwrap() }));
            }
            Some(v) = running.next() => {
                out.push(v);
                if running.is_empty() {
                    // A continuation may still be queued.
                    match rx.try_recv() {
                        Ok(p) => {
                            let run_id = p["continuation"]["run_id"].as_str().unwrap().to_string();
                            let k = p["continuation"]["slice"].as_u64().unwrap() as u32;
                            running.push(Box::pin(async move { engine.continue_run(&run_id, k).await.unwrap() }));
                        }
                        Err(_) => break,
                    }
                }
            }
        }
    }
    out
}

macro_rules! engine {
    ($store:ident, $shards:ident, $sns:ident, $settings:ident, $common:ident, $http:ident) => {
        Engine {
            store: &$store,
            invoker: &$shards,
            notifier: &$sns,
            settings: &$settings,
            common: &$common,
            http: &$http,
            sigv4: None,
        }
    };
}

/// 5 s at 20/s with 2-second slices: three slices handed off at absolute times, a failed
/// shard in the middle slice counted (its requests dropped), one final report.
#[tokio::test]
async fn slices_hand_off_and_a_failed_shard_is_counted_not_lost() {
    let (common, st) = settings("2");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let store = MapStore::default();
    let shards = FakeShards {
        behaviour: Box::new(|r| Behaviour {
            latency_ms: 20,
            error_every: None,
            fail: r.slice_index == 1 && r.shard_index == 0,
        }),
        continuations: tx,
        invoked: Mutex::new(vec![]),
    };
    let sns = FakeSns::default();
    let http = crate::handler::http_client().unwrap();
    let engine = engine!(store, shards, sns, st, common, http);
    let start = StartRequest {
        scenario: ScenarioRef::Inline(scenario(
            "5s",
            20,
            json!({"http_req_duration": ["p(95)<900"], "http_req_failed": ["rate<0.5"]}),
        )),
        run_id: Some("run-1".into()),
        base_url: None,
    };
    let out = drive(&engine, &mut rx, start).await;
    assert_eq!(out.len(), 3, "{out:?}");
    let last = out
        .iter()
        .find(|v| v.get("numbers").is_some())
        .expect("a final report");
    let run: RunDoc = serde_json::from_value(store.json("k6/runs/run-1/run.json")).unwrap();
    assert_eq!(run.plan.slices.len(), 3);
    assert_eq!(run.plan.slices[0].shards, 2, "20/s at 10/s per shard");
    // Each slice's shards were invoked before their window opened (lead), not after the
    // previous slice ended.
    for (slice, _, at) in shards.invoked.lock().unwrap().iter() {
        let opens = run.t0_unix_ms + run.plan.slices[*slice as usize].window.from_ms;
        assert!(
            *at <= opens + 200,
            "slice {slice} invoked {} ms after its window opened",
            at.saturating_sub(opens)
        );
    }
    let n = &last["numbers"];
    assert_eq!(n["scheduled"], 100);
    // Slice 1 (2 s at 20/s) has 40 requests over 2 shards: shard 0's 20 are dropped.
    assert_eq!(n["dropped"], 20);
    assert_eq!(n["sent"], 80);
    assert_eq!(n["shards_failed"], 1);
    assert_eq!(n["shards_total"], 6);
    assert!((n["error_rate"].as_f64().unwrap() - 0.2).abs() < 1e-9);
    assert_eq!(last["status"], "PASSED");
    assert!(last["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x.as_str().unwrap().contains("slice 1 shard 0 failed")));
    let folder = &run.folder;
    for f in [
        "summary.json",
        "histogram.json",
        "report.md",
        "latency.svg",
        "report.json",
    ] {
        assert!(store.keys().contains(&format!("{folder}{f}")), "{f}");
    }
    assert!(
        folder.starts_with("k6/20") && folder.ends_with("/quote-generation/run-1/"),
        "{folder}"
    );
    let summary = store.json(&format!("{folder}summary.json"));
    assert_eq!(summary["metrics"]["http_reqs"]["count"], 80);
    assert_eq!(
        summary["metrics"]["http_req_duration"]["thresholds"]["p(95)<900"],
        false
    );
    assert!(
        (summary["metrics"]["http_req_duration"]["p(95)"]
            .as_f64()
            .unwrap()
            - 20.0)
            .abs()
            < 0.1
    );
    assert_eq!(
        summary["root_group"]["id"],
        "d41d8cd98f00b204e9800998ecf8427e"
    );

    // The same start delivered again does not run anything.
    let again = engine
        .start(StartRequest {
            scenario: ScenarioRef::Inline(scenario("5s", 20, json!({}))),
            run_id: Some("run-1".into()),
            base_url: None,
        })
        .await
        .unwrap();
    assert_eq!(again["replayed"], true);
    assert_eq!(again["run_id"], "run-1");
    // And a repeated continuation is refused by the slice claim.
    let dup = engine.continue_run("run-1", 1).await.unwrap();
    assert_eq!(dup["status"], "DUPLICATE");
}

/// p95 over its objective on two consecutive runs: BLOCK, REL-0001 in S3 and on SNS; the
/// third (passing) run clears it. Also the baseline: the first run sets it.
#[tokio::test]
async fn two_consecutive_slow_runs_block_and_a_pass_clears() {
    let (common, st) = settings("2");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let store = MapStore::default();
    let slow = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let s2 = slow.clone();
    let shards = FakeShards {
        behaviour: Box::new(move |_| Behaviour {
            latency_ms: if s2.load(std::sync::atomic::Ordering::SeqCst) {
                1500
            } else {
                100
            },
            error_every: None,
            fail: false,
        }),
        continuations: tx,
        invoked: Mutex::new(vec![]),
    };
    let sns = FakeSns::default();
    let http = crate::handler::http_client().unwrap();
    let engine = engine!(store, shards, sns, st, common, http);
    let th = json!({"http_req_duration": ["p(95)<900"]});
    let mut reports = vec![];
    for (i, is_slow) in [true, true, false].into_iter().enumerate() {
        slow.store(is_slow, std::sync::atomic::Ordering::SeqCst);
        let out = drive(
            &engine,
            &mut rx,
            StartRequest {
                scenario: store.named(scenario("1s", 10, th.clone())),
                run_id: Some(format!("g{i}")),
                base_url: None,
            },
        )
        .await;
        reports.push(out.last().cloned().unwrap());
    }
    assert_eq!(reports[0]["status"], "FAILED");
    assert_eq!(reports[0]["gate"]["state"], "PASS");
    assert_eq!(reports[0]["baseline"]["reference_run"], Value::Null);
    assert_eq!(reports[1]["gate"]["state"], "BLOCK");
    assert_eq!(reports[1]["incident"], "REL-0001");
    let inc = store.json("k6/incidents/REL-0001.json");
    assert_eq!(inc["run_id"], "g1");
    assert_eq!(inc["consecutive_p95_failures"], 2);
    let published = sns.0.lock().unwrap().clone();
    assert_eq!(published.len(), 1);
    assert!(
        published[0]
            .0
            .starts_with("REL-0001 release blocked: quote-generation"),
        "{}",
        published[0].0
    );
    assert_eq!(reports[2]["status"], "PASSED");
    assert_eq!(
        reports[2]["baseline"]["reference_run"], "g1",
        "no passing run yet: the latest"
    );
    let gate = store.json("k6/gate/quote-generation.json");
    assert_eq!(gate["state"], "PASS");
    assert_eq!(gate["last_incident"], "REL-0001");
    let base = store.json("k6/baseline/quote-generation.json");
    assert_eq!(base["runs"].as_array().unwrap().len(), 3);
}

/// A target that answers nothing but errors, two nights running (issue 22's "p95 0.0 ms"
/// REL): ERROR, the gate stays open, no incident, nothing on SNS, no baseline entry.
#[tokio::test]
async fn two_outages_give_no_verdict_and_never_block() {
    let (common, st) = settings("2");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let store = MapStore::default();
    let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let d2 = down.clone();
    let shards = FakeShards {
        behaviour: Box::new(move |_| Behaviour {
            latency_ms: if d2.load(std::sync::atomic::Ordering::SeqCst) {
                0
            } else {
                100
            },
            error_every: d2.load(std::sync::atomic::Ordering::SeqCst).then_some(1),
            fail: false,
        }),
        continuations: tx,
        invoked: Mutex::new(vec![]),
    };
    let sns = FakeSns::default();
    let http = crate::handler::http_client().unwrap();
    let engine = engine!(store, shards, sns, st, common, http);
    let th = json!({"http_req_duration": ["p(95)<900"], "http_req_failed": ["rate<0.01"]});
    let mut reports = vec![];
    for (i, is_down) in [true, true, false].into_iter().enumerate() {
        down.store(is_down, std::sync::atomic::Ordering::SeqCst);
        let out = drive(
            &engine,
            &mut rx,
            StartRequest {
                scenario: store.named(scenario("1s", 10, th.clone())),
                run_id: Some(format!("down{i}")),
                base_url: None,
            },
        )
        .await;
        reports.push(out.last().cloned().unwrap());
        if i == 0 {
            // Cut before its report (and maybe before its notice), then redelivered: the
            // owners are told again, under the same notice id.
            let folder = reports[0]["artifacts"]["report"]
                .as_str()
                .unwrap()
                .trim_start_matches("s3://reports/")
                .to_string();
            store.0.lock().unwrap().remove(&folder);
            let again = engine
                .start(StartRequest {
                    scenario: ScenarioRef::Named("quote-generation".into()),
                    run_id: Some("down0".into()),
                    base_url: None,
                })
                .await
                .unwrap();
            assert_eq!(again["status"], "ERROR", "{again}");
            let n = sns.1.lock().unwrap().clone();
            assert_eq!(n.len(), 2, "{n:?}");
            assert_eq!(
                n[0].id, n[1].id,
                "one notice id: alert-router delivers it once"
            );
        }
        if i == 1 {
            let gate = store.json("k6/gate/quote-generation.json");
            assert_eq!(gate["consecutive_p95_failures"], 0, "{gate}");
            assert!(
                gate["last_run_error"]
                    .as_str()
                    .unwrap()
                    .starts_with("no successful response among 10 request(s)"),
                "{gate}"
            );
        }
    }
    for r in &reports[..2] {
        assert_eq!(r["status"], "ERROR", "{r}");
        assert_eq!(r["gate"]["state"], "PASS", "{r}");
        assert_eq!(r["incident"], Value::Null);
    }
    assert_eq!(reports[2]["status"], "PASSED", "{}", reports[2]);
    assert_eq!(reports[2]["gate"]["last_run_error"], Value::Null);
    assert!(sns.0.lock().unwrap().is_empty(), "no REL published");
    assert!(
        !store.keys().iter().any(|k| k.starts_with("k6/incidents/")),
        "{:?}",
        store.keys()
    );
    // A redelivery of down1 after down2 was applied tells nobody again (its ERROR is over).
    let folder = reports[1]["artifacts"]["report"]
        .as_str()
        .unwrap()
        .trim_start_matches("s3://reports/")
        .to_string();
    store.0.lock().unwrap().remove(&folder);
    let late = engine
        .start(StartRequest {
            scenario: ScenarioRef::Named("quote-generation".into()),
            run_id: Some("down1".into()),
            base_url: None,
        })
        .await
        .unwrap();
    assert_eq!(late["status"], "ERROR", "{late}");
    // The owners were told twice (the first run twice, redelivered), then told it is over,
    // on one key.
    let notices = sns.1.lock().unwrap().clone();
    let actions: Vec<_> = notices.iter().map(|n| n.action).collect();
    use shared::notifications::Action;
    assert_eq!(
        actions,
        vec![
            Action::Trigger,
            Action::Trigger,
            Action::Trigger,
            Action::Resolve
        ],
        "{notices:?}"
    );
    assert!(notices
        .iter()
        .all(|n| n.key == "loadtest/local/quote-generation/no-verdict"));
    assert!(
        notices[0].summary.contains("no successful response"),
        "{:?}",
        notices[0]
    );
    // Only the passing run is a baseline.
    let base = store.json("k6/baseline/quote-generation.json");
    assert_eq!(base["runs"].as_array().unwrap().len(), 1, "{base}");
    assert_eq!(base["runs"][0]["run_id"], "down2");
}

/// An abortOnFail threshold broken in slice 0: slice 2 never runs (slice 1 was already
/// handed off), the run is ABORTED with what ran.
#[tokio::test]
async fn abort_on_fail_stops_later_slices() {
    let (common, st) = settings("2");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let store = MapStore::default();
    let shards = FakeShards {
        behaviour: Box::new(|_| Behaviour {
            latency_ms: 10,
            error_every: Some(2),
            fail: false,
        }),
        continuations: tx,
        invoked: Mutex::new(vec![]),
    };
    let sns = FakeSns::default();
    let http = crate::handler::http_client().unwrap();
    let engine = engine!(store, shards, sns, st, common, http);
    let th = json!({"http_req_failed": [{"threshold": "rate<0.1", "abortOnFail": true}]});
    let out = drive(
        &engine,
        &mut rx,
        StartRequest {
            scenario: ScenarioRef::Inline(scenario("6s", 10, th)),
            run_id: Some("ab".into()),
            base_url: None,
        },
    )
    .await;
    let last = out
        .iter()
        .find(|v| v.get("numbers").is_some())
        .expect("final report");
    assert_eq!(last["status"], "ABORTED");
    assert_eq!(last["slices_run"], 2);
    assert!(last["aborted"].as_str().unwrap().contains("rate<0.1"));
    assert!(shards
        .invoked
        .lock()
        .unwrap()
        .iter()
        .all(|(s, _, _)| *s < 2));
    assert_eq!(last["numbers"]["scheduled"], 40);
}

#[tokio::test]
async fn bad_scenarios_name_the_field() {
    let (common, st) = settings("2");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let store = MapStore::default();
    let shards = FakeShards {
        behaviour: Box::new(|_| Behaviour {
            latency_ms: 1,
            error_every: None,
            fail: false,
        }),
        continuations: tx,
        invoked: Mutex::new(vec![]),
    };
    let sns = FakeSns::default();
    let http = crate::handler::http_client().unwrap();
    let engine = engine!(store, shards, sns, st, common, http);
    let start = |v: Value| StartRequest {
        scenario: ScenarioRef::Inline(v),
        run_id: None,
        base_url: None,
    };
    let e = engine
        .start(start(scenario(
            "5s",
            1,
            json!({"http_req_duration": ["p95<1"]}),
        )))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("scenario.thresholds.http_req_duration[0]"),
        "{e}"
    );
    let mut s = scenario("5s", 1, json!({}));
    s["executor"]["rate"] = json!("fast");
    let e = engine.start(start(s)).await.unwrap_err().to_string();
    assert!(e.contains("scenario.executor.rate"), "{e}");
    let e = engine
        .start(StartRequest {
            scenario: ScenarioRef::Named("../etc/passwd".into()),
            run_id: None,
            base_url: None,
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a scenario name"), "{e}");
    let e = engine
        .start(StartRequest {
            scenario: ScenarioRef::Named("nope".into()),
            run_id: None,
            base_url: None,
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("s3://reports/k6/scenarios/nope.json"), "{e}");
    assert!(store.keys().is_empty(), "nothing recorded for refused runs");
}

/// The shards continue the coordinator's trace: each ShardRequest carries a `traceparent` of
/// the invocation's trace (the shard passes it on to the target).
#[tokio::test]
async fn shard_requests_carry_the_invocations_trace_context() {
    use tracing::Instrument as _;
    let (common, st) = settings("2");
    shared::telemetry::init(&common);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let store = MapStore::default();
    let seen = std::sync::Arc::new(Mutex::new(Vec::<Option<String>>::new()));
    let seen2 = seen.clone();
    let shards = FakeShards {
        behaviour: Box::new(move |r| {
            seen2.lock().unwrap().push(r.traceparent.clone());
            Behaviour {
                latency_ms: 5,
                error_every: None,
                fail: false,
            }
        }),
        continuations: tx,
        invoked: Mutex::new(vec![]),
    };
    let sns = FakeSns::default();
    let http = crate::handler::http_client().unwrap();
    let engine = engine!(store, shards, sns, st, common, http);
    let start = StartRequest {
        scenario: ScenarioRef::Inline(scenario(
            "1s",
            4,
            json!({"http_req_duration": ["p(95)<900"]}),
        )),
        run_id: Some("run-trace".into()),
        base_url: None,
    };
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let span = shared::telemetry::invocation_span_from(
        &lambda_runtime::Context::default(),
        &json!({ "traceparent": incoming }),
    );
    drive(&engine, &mut rx, start).instrument(span).await;
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "no shard was invoked");
    for tp in seen.iter() {
        let tp = tp.as_deref().expect("a shard request without traceparent");
        assert!(
            tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{tp} does not continue the incoming trace"
        );
        assert!(
            shared::otel::parse_traceparent(tp).is_some(),
            "{tp} is not W3C"
        );
    }
}

/// Issue 22: "a manual run with a base_url override or an inline scenario of the same name
/// changes the production gate". Neither does: they are judged and reported, and the named
/// gate and baseline stay as the named runs left them.
#[tokio::test]
async fn an_adhoc_run_never_touches_the_named_gate() {
    let (common, st) = settings("2");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let store = MapStore::default();
    let shards = FakeShards {
        behaviour: Box::new(|_| Behaviour {
            latency_ms: 1500,
            error_every: None,
            fail: false,
        }),
        continuations: tx,
        invoked: Mutex::new(vec![]),
    };
    let sns = FakeSns::default();
    let http = crate::handler::http_client().unwrap();
    let engine = engine!(store, shards, sns, st, common, http);
    let slow = || scenario("1s", 10, json!({"http_req_duration": ["p(95)<900"]}));
    let named = store.named(slow());
    let start = |scenario: ScenarioRef, run: &str, base_url: Option<&str>| StartRequest {
        scenario,
        run_id: Some(run.into()),
        base_url: base_url.map(String::from),
    };
    let first = engine
        .start(start(named.clone(), "n1", None))
        .await
        .unwrap();
    assert_eq!(first["gate"]["consecutive_p95_failures"], 1, "{first}");
    let gate_before = store.json("k6/gate/quote-generation.json");
    let base_before = store.json("k6/baseline/quote-generation.json");
    for (req, why) in [
        (
            start(ScenarioRef::Inline(slow()), "inline", None),
            "an inline scenario",
        ),
        (
            start(named.clone(), "override", Some("http://127.0.0.1:2")),
            "a base_url override",
        ),
    ] {
        let r = engine.start(req).await.unwrap();
        assert_eq!(r["status"], "FAILED", "judged all the same: {r}");
        assert_eq!(r["gate"], Value::Null, "{r}");
        assert_eq!(r["baseline"], Value::Null, "{r}");
        assert!(
            r["notes"].as_array().unwrap().iter().any(|n| n
                .as_str()
                .unwrap()
                .starts_with(&format!("ad-hoc run ({why}"))),
            "{r}"
        );
        assert_eq!(store.json("k6/gate/quote-generation.json"), gate_before);
        assert_eq!(store.json("k6/baseline/quote-generation.json"), base_before);
    }
    // Two ad-hoc breaches did not make the next named breach a third: it is the second.
    let second = engine.start(start(named, "n2", None)).await.unwrap();
    assert_eq!(second["gate"]["consecutive_p95_failures"], 2, "{second}");
    assert_eq!(second["incident"], "REL-0001");
    assert_eq!(sns.0.lock().unwrap().len(), 1);
}

/// A store whose first two reads of each raced key wait for each other after reading, so two finalizers
/// both read the same version before either writes (the race, made certain); counts the
/// conditional writes that lost.
struct RaceStore {
    inner: MapStore,
    raced: Vec<(String, tokio::sync::Barrier, std::sync::atomic::AtomicUsize)>,
    lost: std::sync::atomic::AtomicUsize,
}

impl Store for RaceStore {
    async fn get(&self, key: &str) -> SuiteResult<Option<Bytes>> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, body: Bytes, ct: &str) -> SuiteResult<()> {
        self.inner.put(key, body, ct).await
    }
    async fn create(&self, key: &str, body: Bytes, ct: &str) -> SuiteResult<bool> {
        self.inner.create(key, body, ct).await
    }
    async fn list(&self, prefix: &str) -> SuiteResult<Vec<String>> {
        self.inner.list(prefix).await
    }
    async fn get_tagged(&self, key: &str) -> SuiteResult<Option<shared::store::Tagged>> {
        // Read, then wait: both readers hold the same version before either goes on.
        let got = self.inner.get_tagged(key).await;
        if let Some((_, barrier, reads)) = self.raced.iter().find(|(k, _, _)| k == key) {
            if reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                barrier.wait().await;
            }
        }
        got
    }
    async fn replace(&self, key: &str, body: Bytes, ct: &str, etag: &str) -> SuiteResult<bool> {
        let ok = self.inner.replace(key, body, ct, etag).await?;
        if !ok {
            self.lost.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(ok)
    }
}

/// Issue 22: "Gate and baseline are plain read-modify-write PUTs (last writer wins)". Two
/// runs of one scenario finalize at once, after a first breach; both read the gate and the
/// baseline before either writes. With plain PUTs both saw one breach, both opened an
/// incident (REL-0001 and REL-0002) and the gate said 2; conditional writes make the loser
/// apply its run on top: 3 consecutive breaches, one REL, published once, three baseline runs.
#[tokio::test]
async fn two_finalizers_racing_lose_no_update() {
    let (common, st) = settings("2");
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let shards = FakeShards {
        behaviour: Box::new(|_| Behaviour {
            latency_ms: 1500,
            error_every: None,
            fail: false,
        }),
        continuations: tx,
        invoked: Mutex::new(vec![]),
    };
    let store = RaceStore {
        inner: MapStore::default(),
        raced: [
            "k6/gate/quote-generation.json",
            "k6/baseline/quote-generation.json",
        ]
        .into_iter()
        .map(|k| {
            (
                k.to_string(),
                tokio::sync::Barrier::new(2),
                std::sync::atomic::AtomicUsize::new(0),
            )
        })
        .collect(),
        lost: Default::default(),
    };
    let named = store.inner.named(scenario(
        "1s",
        10,
        json!({"http_req_duration": ["p(95)<900"]}),
    ));
    // The first breach, written before the race (its reads pass the barriers' count).
    store.inner.0.lock().unwrap().insert(
        "k6/gate/quote-generation.json".into(),
        Bytes::from(
            serde_json::to_vec(&json!({"scenario": "quote-generation", "state": "PASS",
                "consecutive_p95_failures": 1, "incident": null, "reason": "p95 broke once",
                "last_run_id": "r0", "last_run_passed": false, "last_p95_ms": 1500.0,
                "p95_objective": "http_req_duration p(95)<900", "last_report": "s3://reports/r0",
                "updated_at": "2026-12-01T02:00:00Z"}))
            .unwrap(),
        ),
    );
    store.inner.0.lock().unwrap().insert(
        "k6/baseline/quote-generation.json".into(),
        Bytes::from(
            serde_json::to_vec(
                &json!({"scenario": "quote-generation", "runs": [{"run_id": "r0",
                "finished_at": "2026-12-01T02:00:00Z", "throughput_rps": 10.0, "p95_ms": 1500.0,
                "passed": false}]}),
            )
            .unwrap(),
        ),
    );
    let sns = FakeSns::default();
    let http = crate::handler::http_client().unwrap();
    let engine = engine!(store, shards, sns, st, common, http);
    let req = |run: &str| StartRequest {
        scenario: named.clone(),
        run_id: Some(run.into()),
        base_url: None,
    };
    let (a, b) = tokio::join!(engine.start(req("ra")), engine.start(req("rb")));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        store.lost.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the race did not happen: each of the gate and the baseline should lose one write ({} lost; gate {})", store.lost.load(std::sync::atomic::Ordering::SeqCst), store.inner.json("k6/gate/quote-generation.json")
    );
    let gate = store.inner.json("k6/gate/quote-generation.json");
    assert_eq!(gate["consecutive_p95_failures"], 3, "{gate}");
    assert_eq!(gate["state"], "BLOCK");
    assert_eq!(gate["incident"], "REL-0001");
    let incidents: Vec<String> = store
        .inner
        .keys()
        .into_iter()
        .filter(|k| k.starts_with("k6/incidents/"))
        .collect();
    assert_eq!(incidents, vec!["k6/incidents/REL-0001.json"]);
    let published = sns.0.lock().unwrap().clone();
    assert_eq!(published.len(), 1, "{published:?}");
    let opener = store.inner.json("k6/incidents/REL-0001.json")["run_id"].clone();
    assert_eq!(gate["incident_run_id"], opener);
    for r in [&a, &b] {
        assert_eq!(r["gate"]["state"], "BLOCK", "{r}");
    }
    let base = store.inner.json("k6/baseline/quote-generation.json");
    let mut runs: Vec<&str> = base["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    runs.sort();
    assert_eq!(runs, vec!["r0", "ra", "rb"]);
}

/// A store that "crashes" the invocation at its `cut`-th write outside the run's own state
/// (gate, incidents, baseline, artifacts): `after` = the write lands and its answer is lost.
struct CrashStore {
    inner: MapStore,
    cut: usize,
    after: bool,
    writes: std::sync::atomic::AtomicUsize,
    armed: std::sync::atomic::AtomicBool,
}

impl CrashStore {
    fn crash(&self, key: &str) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        self.armed.load(SeqCst)
            && !key.starts_with("k6/runs/")
            && self.writes.fetch_add(1, SeqCst) == self.cut
    }
    fn injected() -> shared::SuiteError {
        shared::SuiteError::Internal("injected crash".into())
    }
}

impl Store for CrashStore {
    async fn get(&self, key: &str) -> SuiteResult<Option<Bytes>> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, body: Bytes, ct: &str) -> SuiteResult<()> {
        if self.crash(key) {
            if self.after {
                self.inner.put(key, body, ct).await?;
            }
            return Err(Self::injected());
        }
        self.inner.put(key, body, ct).await
    }
    async fn create(&self, key: &str, body: Bytes, ct: &str) -> SuiteResult<bool> {
        if self.crash(key) {
            if self.after {
                self.inner.create(key, body, ct).await?;
            }
            return Err(Self::injected());
        }
        self.inner.create(key, body, ct).await
    }
    async fn list(&self, prefix: &str) -> SuiteResult<Vec<String>> {
        self.inner.list(prefix).await
    }
    async fn get_tagged(&self, key: &str) -> SuiteResult<Option<shared::store::Tagged>> {
        self.inner.get_tagged(key).await
    }
    async fn replace(&self, key: &str, body: Bytes, ct: &str, etag: &str) -> SuiteResult<bool> {
        if self.crash(key) {
            if self.after {
                self.inner.replace(key, body, ct, etag).await?;
            }
            return Err(Self::injected());
        }
        self.inner.replace(key, body, ct, etag).await
    }
}

/// Issue 22: "the incident is created before the gate is written, so a crash between leaves
/// an orphan REL". The second breach's finalize is cut at each of its writes in turn, before
/// and after the write lands, then redelivered (the same start again, as Lambda's retry
/// does): every time, one REL (REL-0001), named by the gate, published (again at worst: the
/// router dedups on its id), and the run once in the baseline.
#[tokio::test]
async fn a_crash_at_any_step_of_the_gate_leaves_one_rel_once_redelivered() {
    let (common, st) = settings("2");
    let http = crate::handler::http_client().unwrap();
    let slow = || Behaviour {
        latency_ms: 1500,
        error_every: None,
        fail: false,
    };
    let th = json!({"http_req_duration": ["p(95)<900"]});
    // The first breach, uncut.
    let first = MapStore::default();
    let named = first.named(scenario("1s", 10, th));
    {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let shards = FakeShards {
            behaviour: Box::new(move |_| slow()),
            continuations: tx,
            invoked: Mutex::new(vec![]),
        };
        let sns = FakeSns::default();
        let engine = engine!(first, shards, sns, st, common, http);
        engine
            .start(StartRequest {
                scenario: named.clone(),
                run_id: Some("b1".into()),
                base_url: None,
            })
            .await
            .unwrap();
    }
    let snapshot = first.0.lock().unwrap().clone();
    let cases: Vec<(usize, bool)> = (0..14).flat_map(|c| [(c, false), (c, true)]).collect();
    let outcomes = futures::future::join_all(cases.iter().map(|&(cut, after)| {
        let snapshot = snapshot.clone();
        let (common, st, http, named) = (&common, &st, &http, named.clone());
        async move {
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            let shards = FakeShards {
                behaviour: Box::new(move |_| slow()),
                continuations: tx,
                invoked: Mutex::new(vec![]),
            };
            let store = CrashStore {
                inner: MapStore(Mutex::new(snapshot)),
                cut,
                after,
                writes: Default::default(),
                armed: std::sync::atomic::AtomicBool::new(true),
            };
            let sns = FakeSns::default();
            let engine = Engine {
                store: &store,
                invoker: &shards,
                notifier: &sns,
                settings: st,
                common,
                http,
                sigv4: None,
            };
            let req = || StartRequest {
                scenario: named.clone(),
                run_id: Some("b2".into()),
                base_url: None,
            };
            let crashed = engine.start(req()).await.is_err();
            store
                .armed
                .store(false, std::sync::atomic::Ordering::SeqCst);
            let report = engine.start(req()).await.unwrap();
            let case = format!(
                "cut at write {cut} ({})",
                if after {
                    "after it landed"
                } else {
                    "before it"
                }
            );
            assert_eq!(report["incident"], "REL-0001", "{case}: {report}");
            assert_eq!(report["status"], "FAILED", "{case}: {report}");
            let incidents: Vec<String> = store
                .inner
                .keys()
                .into_iter()
                .filter(|k| k.starts_with("k6/incidents/"))
                .collect();
            assert_eq!(incidents, vec!["k6/incidents/REL-0001.json"], "{case}");
            let gate = store.inner.json("k6/gate/quote-generation.json");
            assert_eq!(
                (
                    gate["state"].as_str(),
                    gate["incident"].as_str(),
                    gate["consecutive_p95_failures"].as_u64()
                ),
                (Some("BLOCK"), Some("REL-0001"), Some(2)),
                "{case}: {gate}"
            );
            let published: Vec<String> = sns
                .0
                .lock()
                .unwrap()
                .iter()
                .map(|(s, _)| s.clone())
                .collect();
            assert!(
                !published.is_empty(),
                "{case}: the incident was never published"
            );
            assert!(
                published.iter().all(|s| s.starts_with("REL-0001 ")),
                "{case}: {published:?}"
            );
            let base = store.inner.json("k6/baseline/quote-generation.json");
            let b2 = base["runs"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["run_id"] == "b2")
                .count();
            assert_eq!(b2, 1, "{case}: {base}");
            crashed
        }
    }))
    .await;
    let crashed = outcomes.iter().filter(|c| **c).count();
    // Every write of the finalize was cut at least once, and the last cases ran past them all.
    assert!(crashed >= 2 * 8, "only {crashed} cases crashed");
    assert!(
        outcomes.iter().any(|c| !c),
        "14 writes are not enough to run past the finalize"
    );
}

/// An A/B run over two slices: the blocks go A B B A to the two targets (each arm's shards
/// see only their target), each arm is merged on its own, and the verdict follows the
/// latencies: an equally fast cheaper candidate is a SWITCH, a slower one a STAY. Neither
/// touches the scenario's gate or baseline.
#[tokio::test]
async fn an_ab_run_interleaves_its_arms_and_judges_each_on_its_own_histogram() {
    for (candidate_ms, verdict) in [(40, "SWITCH"), (60, "STAY")] {
        let (common, st) = settings("2");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let store = MapStore::default();
        let seen: std::sync::Arc<Mutex<Vec<(String, u64, u64)>>> = Default::default();
        let log = seen.clone();
        let shards = FakeShards {
            behaviour: Box::new(move |r| {
                log.lock().unwrap().push((
                    r.scenario.target.base_url.clone(),
                    r.window.from_ms,
                    r.window.to_ms,
                ));
                Behaviour {
                    latency_ms: if r.scenario.target.base_url.ends_with(":2") {
                        candidate_ms
                    } else {
                        40
                    },
                    error_every: None,
                    fail: false,
                }
            }),
            continuations: tx,
            invoked: Mutex::new(vec![]),
        };
        let sns = FakeSns::default();
        let http = crate::handler::http_client().unwrap();
        let engine = engine!(store, shards, sns, st, common, http);
        let named = store.named(scenario(
            "4s",
            120,
            json!({"http_req_duration": ["p(95)<900"]}),
        ));
        let spec = crate::ab::parse_spec(&json!({
            "block_seconds": 1,
            "current": {"name": "x86", "base_url": "http://127.0.0.1:1", "instance_type": "m6i.large", "instances": 2},
            "candidate": {"name": "arm64", "base_url": "http://127.0.0.1:2", "instance_type": "m6g.large", "instances": 2}
        }))
        .unwrap();
        let mut running = FuturesUnordered::new();
        running.push(Box::pin(engine.start_ab(
            StartRequest {
                scenario: named,
                run_id: Some(format!("ab-{candidate_ms}")),
                base_url: None,
            },
            spec,
        ))
            as std::pin::Pin<
                Box<dyn std::future::Future<Output = SuiteResult<Value>> + Send + '_>,
            >);
        let mut report = None;
        while let Some(v) = running.next().await {
            let v = v.unwrap();
            if v.get("kind").is_some() {
                report = Some(v);
            }
            if let Ok(p) = rx.try_recv() {
                let run_id = p["continuation"]["run_id"].as_str().unwrap().to_string();
                let k = p["continuation"]["slice"].as_u64().unwrap() as u32;
                let engine = &engine;
                running.push(Box::pin(
                    async move { engine.continue_run(&run_id, k).await },
                ));
            }
        }
        let r = report.expect("an A/B report");
        assert_eq!(r["status"], verdict, "{r:#}");
        assert_eq!(r["slices_run"], 2);
        // 4 s at 120/s in blocks of 1 s, A B B A: 240 requests each, 2 blocks each.
        for arm in ["current", "candidate"] {
            assert_eq!(r[arm]["numbers"]["sent"], 240, "{arm}: {r:#}");
            assert_eq!(r[arm]["blocks"], 2);
            assert_eq!(r[arm]["seconds"], 2.0);
        }
        assert_eq!(
            r["candidate"]["numbers"]["latency_ms"]["p95"]
                .as_f64()
                .unwrap()
                .round(),
            candidate_ms as f64
        );
        // Every shard request of block g went to the arm A B B A gives it.
        let seen = seen.lock().unwrap().clone();
        assert!(!seen.is_empty());
        for (url, from, to) in &seen {
            assert_eq!(to - from, 1000, "one block per request: {seen:?}");
            let arm = crate::ab::arm_of_block(from / 1000);
            assert_eq!(
                url.ends_with(":2"),
                arm == 1,
                "block at {from} ms went to {url}"
            );
        }
        // Cost: 2 × m6g.large vs 2 × m6i.large at the same served rate: 19.8 % less.
        assert!(
            (r["saving"].as_f64().unwrap() - (1.0 - 0.077 / 0.096)).abs() < 1e-9,
            "{r:#}"
        );
        assert!(
            store
                .keys()
                .iter()
                .all(|k| !k.contains("/gate/") && !k.contains("/baseline/")),
            "{:?}",
            store.keys()
        );
        let md = String::from_utf8(
            store
                .0
                .lock()
                .unwrap()
                .iter()
                .find(|(k, _)| k.ends_with("report.md"))
                .unwrap()
                .1
                .to_vec(),
        )
        .unwrap();
        assert!(
            md.contains(&format!(
                "**{}",
                if verdict == "SWITCH" {
                    "SWITCH to arm64"
                } else {
                    "STAY on x86"
                }
            )),
            "{md}"
        );
        // A redelivered start replays the report.
        let again = engine
            .start_ab(
                StartRequest {
                    scenario: ScenarioRef::Named("quote-generation".into()),
                    run_id: Some(format!("ab-{candidate_ms}")),
                    base_url: None,
                },
                crate::ab::parse_spec(&json!({
                    "current": {"name": "x86", "base_url": "http://127.0.0.1:1", "instance_type": "m6i.large"},
                    "candidate": {"name": "arm64", "base_url": "http://127.0.0.1:2", "instance_type": "m6g.large"}
                }))
                .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(again["replayed"], true);
        assert_eq!(again["status"], verdict);
    }
}

/// Slice 0's handoff fails (the Invoke API refuses every attempt), so slice 0 finalizes the
/// run itself; suppose it was cut before its report (the report removed here) and the
/// scheduler redelivers the start. The redelivery finds slice 1 never claimed after its
/// window and grace, claims it so no late coordinator can run it, and finishes the report:
/// the same verdict, the gate not counted twice. A late continuation of slice 1 then answers
/// DUPLICATE and sends no load.
#[tokio::test]
async fn a_run_cut_after_a_failed_handoff_is_finished_by_its_redelivery() {
    let (common, st) = settings("2");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    drop(rx); // every continuation refused
    let store = MapStore::default();
    let shards = FakeShards {
        behaviour: Box::new(|_| Behaviour {
            latency_ms: 1500,
            error_every: None,
            fail: false,
        }),
        continuations: tx,
        invoked: Mutex::new(vec![]),
    };
    let sns = FakeSns::default();
    let http = crate::handler::http_client().unwrap();
    let engine = engine!(store, shards, sns, st, common, http);
    let named = store.named(scenario(
        "3s",
        10,
        json!({"http_req_duration": ["p(95)<900"]}),
    ));
    let start = || StartRequest {
        scenario: named.clone(),
        run_id: Some("cut".into()),
        base_url: None,
    };
    let first = engine.start(start()).await.unwrap();
    assert_eq!(first["slices_run"], 1, "{first:#}");
    assert!(
        first["aborted"]
            .as_str()
            .unwrap()
            .contains("handoff to slice 1 failed"),
        "{first:#}"
    );
    assert_eq!(first["gate"]["consecutive_p95_failures"], 1);
    let run: RunDoc = serde_json::from_value(store.json("k6/runs/cut/run.json")).unwrap();
    let report_key = format!("{}report.json", run.folder);
    store.0.lock().unwrap().remove(&report_key);

    // Before slice 1's window and grace are over, a redelivery cannot tell a failed handoff
    // from a late one: it leaves the run alone (the same run as if it had started just now).
    let mut young = run.clone();
    young.t0_unix_ms = now_ms();
    assert_eq!(engine.finalize_if_cut(&young, 0).await.unwrap(), None);
    assert!(!store.keys().iter().any(|k| k.ends_with("slice-0001.claim")));
    let early_until = run.t0_unix_ms + run.plan.slices[1].window.from_ms + run.grace_ms;
    if now_ms() < early_until {
        tokio::time::sleep(Duration::from_millis(early_until - now_ms() + 100)).await;
    }
    let again = engine.start(start()).await.unwrap();
    assert_eq!(again["status"], first["status"], "{again:#}");
    assert_eq!(again["slices_run"], 1);
    assert!(
        again["aborted"].as_str().unwrap().contains("never claimed"),
        "{again:#}"
    );
    assert_eq!(
        again["gate"]["consecutive_p95_failures"], 1,
        "the redelivery is a replay for the gate: {again:#}"
    );
    assert!(store.keys().contains(&report_key));
    let shard_calls = shards.invoked.lock().unwrap().len();
    let late = engine.continue_run("cut", 1).await.unwrap();
    assert_eq!(late["status"], "DUPLICATE", "{late:#}");
    assert_eq!(
        shards.invoked.lock().unwrap().len(),
        shard_calls,
        "no load after the report"
    );
    assert_eq!(sns.0.lock().unwrap().len(), 0, "one breach: no incident");
}
