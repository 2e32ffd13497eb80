//! The coordinator's S3 and SNS paths against moto (the real wire APIs): artifacts, run state,
//! conditional creates, gate BLOCK after two slow runs with incident REL-0001 written to S3 and
//! delivered through SNS to an SQS queue (read back with the AWS CLI), and the clear.
//!
//! Shards here are an in-process Invoker that answers from the schedule (the real shard runs
//! in e2e_it.rs); the Store and Notifier are the real S3 and SNS adapters.

mod common;

use std::time::Duration;

use bytes::Bytes;
use loadtest_coordinator::config::Settings;
use loadtest_coordinator::port::{Invoker, S3Store, ShardFailure, SnsNotifier, Store};
use loadtest_coordinator::run::{now_ms, Engine, ScenarioRef, StartRequest};
use loadtest_core::{encode_histogram, new_histogram, Schedule, ShardRequest, ShardResult};
use serde_json::{json, Value};
use shared::config::{CommonConfig, Vars};
use shared::SuiteResult;
use suite_tests::{create_buckets, exclusive_moto, get};

const BUCKET: &str = "playbook-reports";

struct Answering {
    latency_ms: std::sync::atomic::AtomicU64,
    /// The target is down: every request answered 503.
    down: std::sync::atomic::AtomicBool,
}

impl Invoker for Answering {
    async fn invoke_shard(
        &self,
        req: &ShardRequest,
        _t: Duration,
    ) -> Result<ShardResult, ShardFailure> {
        let end = req.t0_unix_ms + req.window.to_ms;
        let now = now_ms();
        if end > now {
            tokio::time::sleep(Duration::from_millis(end - now)).await;
        }
        let s = Schedule::from_scenario(&req.scenario).unwrap();
        let n = s
            .stripe_in(
                Duration::from_millis(req.window.from_ms),
                Duration::from_millis(req.window.to_ms),
                req.shard_index,
                req.shard_count,
            )
            .count() as u64;
        let mut h = new_histogram();
        let l = self.latency_ms.load(std::sync::atomic::Ordering::SeqCst);
        for _ in 0..n {
            h.saturating_record(l * 1000);
        }
        let down = self.down.load(std::sync::atomic::Ordering::SeqCst);
        let mut errors = loadtest_core::ErrorCounts::default();
        if down {
            errors.status.insert("503".into(), n);
        }
        Ok(ShardResult {
            run_id: req.run_id.clone(),
            slice_index: req.slice_index,
            shard_index: req.shard_index,
            scheduled: n,
            sent: n,
            ok: if down { 0 } else { n },
            errors,
            latency_us: encode_histogram(&h).unwrap(),
            latency_uncorrected_us: encode_histogram(&h).unwrap(),
            ..Default::default()
        })
    }
    async fn continue_async(&self, _p: &Value) -> SuiteResult<()> {
        panic!("single-slice runs hand nothing off")
    }
}

/// The release gate read as CI reads it: `tools/gate.sh` (what `make gate` runs) and the
/// one-liner documented in docs/loadtest-coordinator.md, which must agree; (exit code, line).
fn gate_read(env: &[(String, String)], scenario: &str) -> (i32, String) {
    let root = suite_tests::workspace_root();
    let path = suite_tests::venv_path();
    let run = |cmd: &mut std::process::Command| {
        let out = cmd
            .envs(env.iter().cloned())
            .env("PATH", &path)
            .output()
            .expect("bash");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let script = run(std::process::Command::new("bash")
        .arg(root.join("tools/gate.sh"))
        .arg(scenario)
        .env("GATE_URI_PREFIX", format!("s3://{BUCKET}/k6/gate/")));
    let doc = std::fs::read_to_string(root.join("docs/loadtest-coordinator.md")).unwrap();
    let line = doc
        .lines()
        .skip_while(|l| !l.contains("# gate-one-liner"))
        .nth(1)
        .expect("the gate one-liner in docs/loadtest-coordinator.md, after `# gate-one-liner`");
    let program = std::fs::read_to_string(root.join("tools/gate.jq")).unwrap();
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squash(line).contains(&squash(&program)),
        "the documented one-liner runs another program than tools/gate.jq:\n{line}"
    );
    let template = std::fs::read_to_string(root.join("docs/ci/release-gate.yml")).unwrap();
    assert!(
        squash(&template).contains(&squash(&program)),
        "docs/ci/release-gate.yml runs another program than tools/gate.jq"
    );
    let documented = run(std::process::Command::new("bash")
        .arg("-c")
        .arg(line)
        .env("REPORT_BUCKET", BUCKET)
        .env("SCENARIO", scenario));
    assert_eq!(
        script, documented,
        "tools/gate.sh and the documented one-liner disagree"
    );
    script
}

#[tokio::test]
async fn artifacts_gate_and_incidents_in_s3_and_sns() {
    let (_g, moto) = exclusive_moto().await;
    let env = moto.env();
    let clients = moto.clients().await;
    let s3 = clients.s3();
    create_buckets(&s3, &[BUCKET]).await;

    // SNS topic with an SQS subscriber: what an on-call pipeline would see.
    let topic = common::aws(
        &env,
        &[
            "--endpoint-url",
            &moto.url,
            "sns",
            "create-topic",
            "--name",
            "rel-incidents",
        ],
    )["TopicArn"]
        .as_str()
        .unwrap()
        .to_string();
    let queue = common::aws(
        &env,
        &[
            "--endpoint-url",
            &moto.url,
            "sqs",
            "create-queue",
            "--queue-name",
            "rel-inbox",
        ],
    )["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let qarn = common::aws(
        &env,
        &[
            "--endpoint-url",
            &moto.url,
            "sqs",
            "get-queue-attributes",
            "--queue-url",
            &queue,
            "--attribute-names",
            "QueueArn",
        ],
    )["Attributes"]["QueueArn"]
        .as_str()
        .unwrap()
        .to_string();
    common::aws(
        &env,
        &[
            "--endpoint-url",
            &moto.url,
            "sns",
            "subscribe",
            "--topic-arn",
            &topic,
            "--protocol",
            "sqs",
            "--notification-endpoint",
            &qarn,
        ],
    );

    let vars = Vars::from_pairs([
        ("ENVIRONMENT", "local"),
        ("REPORT_BUCKET", BUCKET),
        ("LOADTEST_COORD_SLICE_SECONDS", "5"),
        ("LOADTEST_COORD_LEAD_SECONDS", "1"),
        ("LOADTEST_COORD_INCIDENT_TOPIC_ARN", topic.as_str()),
    ]);
    let common = CommonConfig::from_vars(&vars, "loadtest-coordinator").unwrap();
    let settings = Settings::from_vars(&vars, &common).unwrap();
    let store = S3Store::new(s3.clone(), BUCKET);

    // Conditional create against moto: the second create of a key is refused.
    assert!(store
        .create("k6/test/once", Bytes::from("a"), "text/plain")
        .await
        .unwrap());
    assert!(!store
        .create("k6/test/once", Bytes::from("b"), "text/plain")
        .await
        .unwrap());
    assert_eq!(get(&s3, BUCKET, "k6/test/once").await.unwrap(), b"a");

    let invoker = Answering {
        latency_ms: 1200.into(),
        down: false.into(),
    };
    let notifier = SnsNotifier::new(aws_sdk_sns::Client::new(&clients.sdk), Some(topic.clone()));
    let http = reqwest::Client::new();
    let engine = Engine {
        store: &store,
        invoker: &invoker,
        notifier: &notifier,
        settings: &settings,
        common: &common,
        http: &http,
        sigv4: None,
    };

    // The scenario file lives in S3 under k6/scenarios/.
    let scenario = json!({
        "name": "quote-generation",
        "target": {"base_url": "http://127.0.0.1:9"},
        "executor": {"type": "constant-arrival-rate", "rate": 10, "time_unit": "1s", "duration": "2s"},
        "request": {"method": "POST", "path": "/api/v1/quotes/generate", "body": {"file": "quote.json"}},
        "thresholds": {"http_req_duration": ["p(95)<900"]},
        "baseline": {"min_ratio": 1.0}
    });
    suite_tests::put(
        &s3,
        BUCKET,
        "k6/scenarios/quote-generation.json",
        serde_json::to_vec(&scenario).unwrap(),
    )
    .await;
    suite_tests::put(
        &s3,
        BUCKET,
        "k6/scenarios/quote.json",
        &b"{\"items\": 5}"[..],
    )
    .await;

    // CI's read of the gate (tools/gate.sh and the documented one-liner) after each run.
    let mut reads = vec![gate_read(&env, "quote-generation")];
    let mut reports = vec![];
    for (run, slow, down) in [
        ("n1", true, false),
        ("n2", true, false),
        ("n3", false, false),
        ("n4", false, true),
    ] {
        invoker.latency_ms.store(
            if slow { 1200 } else { 80 },
            std::sync::atomic::Ordering::SeqCst,
        );
        invoker
            .down
            .store(down, std::sync::atomic::Ordering::SeqCst);
        let r = engine
            .start(StartRequest {
                scenario: ScenarioRef::Named("quote-generation".into()),
                run_id: Some(run.into()),
                base_url: None,
            })
            .await
            .unwrap();
        reports.push(r);
        reads.push(gate_read(&env, "quote-generation"));
    }
    let codes: Vec<i32> = reads.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, vec![2, 0, 1, 0, 2], "{reads:#?}");
    assert_eq!(reads[0].1, "no verdict: no run of this scenario yet\n");
    assert!(
        reads[1].1.starts_with("open: p95 1200.")
            && reads[1]
                .1
                .contains("ms broke http_req_duration p(95)<900 once"),
        "{}",
        reads[1].1
    );
    assert!(
        reads[2].1.starts_with("blocked: REL-0001: p95 1200."),
        "{}",
        reads[2].1
    );
    assert_eq!(reads[3].1, "open: run n3 passed every threshold\n");
    assert!(
        reads[4]
            .1
            .starts_with("no verdict: the last run (n4) gave none: no successful response"),
        "{}",
        reads[4].1
    );
    assert_eq!(reports[3]["status"], "ERROR", "{}", reports[3]);
    // Run 1: artifacts in k6/YYYY-MM-DD/<scenario>/<run_id>/, JSON report last.
    let folder = reports[0]["artifacts"]["report"]
        .as_str()
        .unwrap()
        .trim_start_matches(&format!("s3://{BUCKET}/"))
        .trim_end_matches("report.json")
        .to_string();
    assert!(
        folder.starts_with("k6/") && folder.ends_with("/quote-generation/n1/"),
        "{folder}"
    );
    let date = &folder[3..13];
    assert!(
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
        "{folder}"
    );
    for f in [
        "summary.json",
        "histogram.json",
        "report.md",
        "latency.svg",
        "report.json",
    ] {
        assert!(
            get(&s3, BUCKET, &format!("{folder}{f}")).await.is_some(),
            "{f}"
        );
    }
    let summary: Value = serde_json::from_slice(
        &get(&s3, BUCKET, &format!("{folder}summary.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["metrics"]["http_reqs"]["count"], 20);
    assert!(
        (summary["metrics"]["http_req_duration"]["p(95)"]
            .as_f64()
            .unwrap()
            - 1200.0)
            .abs()
            < 2.0
    );
    let run: Value =
        serde_json::from_slice(&get(&s3, BUCKET, "k6/runs/n1/run.json").await.unwrap()).unwrap();
    assert_eq!(
        run["scenario"]["request"]["body"]["text"], "{\"items\": 5}",
        "body.file inlined"
    );
    let svg = String::from_utf8(
        get(&s3, BUCKET, &format!("{folder}latency.svg"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(svg.contains("<svg"));

    assert_eq!(reports[0]["gate"]["state"], "PASS");
    assert_eq!(reports[1]["gate"]["state"], "BLOCK");
    assert_eq!(reports[1]["incident"], "REL-0001");
    // CI reads the gate with one call (by now run 3 has cleared it).
    let gate = common::aws(
        &env,
        &[
            "--endpoint-url",
            &moto.url,
            "s3",
            "cp",
            &format!("s3://{BUCKET}/k6/gate/quote-generation.json"),
            "-",
        ],
    );
    assert_eq!(gate["state"], "PASS");
    assert_eq!(gate["last_incident"], "REL-0001");
    let inc: Value = serde_json::from_slice(
        &get(&s3, BUCKET, "k6/incidents/REL-0001.json")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(inc["run_id"], "n2");
    assert_eq!(inc["consecutive_p95_failures"], 2);

    let msgs = common::aws(
        &env,
        &[
            "--endpoint-url",
            &moto.url,
            "sqs",
            "receive-message",
            "--queue-url",
            &queue,
            "--max-number-of-messages",
            "10",
            "--wait-time-seconds",
            "2",
        ],
    );
    let body: Value = serde_json::from_str(
        msgs["Messages"][0]["Body"]
            .as_str()
            .expect("an SNS message in the queue"),
    )
    .unwrap();
    assert!(
        body["Subject"]
            .as_str()
            .unwrap()
            .starts_with("REL-0001 release blocked: quote-generation"),
        "{body}"
    );
    let record: Value = serde_json::from_str(body["Message"].as_str().unwrap()).unwrap();
    assert_eq!(record["id"], "REL-0001");

    // Run 3 passes: the gate clears; the baseline compared it with run 2 (no passing run yet).
    assert_eq!(reports[2]["status"], "PASSED");
    let gate: Value = serde_json::from_slice(
        &get(&s3, BUCKET, "k6/gate/quote-generation.json")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(gate["state"], "PASS");
    assert_eq!(gate["last_incident"], "REL-0001");
    assert_eq!(reports[2]["baseline"]["reference_run"], "n2");
    let baseline: Value = serde_json::from_slice(
        &get(&s3, BUCKET, "k6/baseline/quote-generation.json")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(baseline["runs"].as_array().unwrap().len(), 3);

    // A repeated delivery of run 2's start replays its report; no second incident.
    let again = engine
        .start(StartRequest {
            scenario: ScenarioRef::Named("quote-generation".into()),
            run_id: Some("n2".into()),
            base_url: None,
        })
        .await
        .unwrap();
    assert_eq!(again["replayed"], true);
    assert!(get(&s3, BUCKET, "k6/incidents/REL-0002.json")
        .await
        .is_none());
}

/// The real S3 adapter with the race made certain: the first two reads of each raced key
/// wait for each other after reading, so both finalizers hold the same ETag.
struct Racing<'a> {
    inner: &'a S3Store,
    raced: Vec<(String, tokio::sync::Barrier, std::sync::atomic::AtomicUsize)>,
    lost: std::sync::atomic::AtomicUsize,
}

impl Store for Racing<'_> {
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

#[derive(Default)]
struct Counting(std::sync::Mutex<Vec<String>>);

impl loadtest_coordinator::port::Notifier for Counting {
    async fn publish(&self, subject: &str, _m: &str) -> SuiteResult<Option<String>> {
        self.0.lock().unwrap().push(subject.to_string());
        Ok(Some("m".into()))
    }
    async fn notice(
        &self,
        _a: &shared::notifications::PlaybookAlert,
    ) -> SuiteResult<Option<String>> {
        Ok(None)
    }
}

/// Two runs of one scenario finalize at once after a first breach, against moto's
/// conditional PutObject (If-Match / If-None-Match): both read the gate and the baseline at
/// the same ETag; the loser's 412 makes it apply its run on top. Three breaches, one REL.
#[tokio::test]
async fn racing_finalizers_lose_no_update_on_s3_conditional_writes() {
    let (_g, moto) = exclusive_moto().await;
    let clients = moto.clients().await;
    let s3 = clients.s3();
    create_buckets(&s3, &[BUCKET]).await;
    let vars = Vars::from_pairs([
        ("ENVIRONMENT", "local"),
        ("REPORT_BUCKET", BUCKET),
        ("LOADTEST_COORD_SLICE_SECONDS", "5"),
        ("LOADTEST_COORD_LEAD_SECONDS", "1"),
    ]);
    let common = CommonConfig::from_vars(&vars, "loadtest-coordinator").unwrap();
    let settings = Settings::from_vars(&vars, &common).unwrap();
    let s3store = S3Store::new(s3.clone(), BUCKET);
    let scenario = json!({
        "name": "race",
        "target": {"base_url": "http://127.0.0.1:9"},
        "executor": {"type": "constant-arrival-rate", "rate": 10, "time_unit": "1s", "duration": "1s"},
        "request": {"method": "GET", "path": "/"},
        "thresholds": {"http_req_duration": ["p(95)<900"]},
        "baseline": {"min_ratio": 1.0}
    });
    suite_tests::put(
        &s3,
        BUCKET,
        "k6/scenarios/race.json",
        serde_json::to_vec(&scenario).unwrap(),
    )
    .await;
    let invoker = Answering {
        latency_ms: 1200.into(),
        down: false.into(),
    };
    let notifier = Counting::default();
    let http = reqwest::Client::new();
    let req = |run: &str| StartRequest {
        scenario: ScenarioRef::Named("race".into()),
        run_id: Some(run.into()),
        base_url: None,
    };
    // The first breach, unraced.
    let plain = Engine {
        store: &s3store,
        invoker: &invoker,
        notifier: &notifier,
        settings: &settings,
        common: &common,
        http: &http,
        sigv4: None,
    };
    let first = plain.start(req("race-0")).await.unwrap();
    assert_eq!(first["gate"]["consecutive_p95_failures"], 1, "{first}");
    let store = Racing {
        inner: &s3store,
        raced: ["k6/gate/race.json", "k6/baseline/race.json"]
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
    let engine = Engine {
        store: &store,
        invoker: &invoker,
        notifier: &notifier,
        settings: &settings,
        common: &common,
        http: &http,
        sigv4: None,
    };
    let (a, b) = tokio::join!(engine.start(req("race-a")), engine.start(req("race-b")));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        store.lost.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "moto refused no write: the race did not happen"
    );
    let gate: Value =
        serde_json::from_slice(&get(&s3, BUCKET, "k6/gate/race.json").await.unwrap()).unwrap();
    assert_eq!(
        (
            gate["state"].as_str(),
            gate["consecutive_p95_failures"].as_u64(),
            gate["incident"].as_str()
        ),
        (Some("BLOCK"), Some(3), Some("REL-0001")),
        "{gate}"
    );
    let incidents = s3store.list("k6/incidents/").await.unwrap();
    assert_eq!(incidents, vec!["k6/incidents/REL-0001.json"]);
    assert_eq!(notifier.0.lock().unwrap().len(), 1);
    let base: Value =
        serde_json::from_slice(&get(&s3, BUCKET, "k6/baseline/race.json").await.unwrap()).unwrap();
    assert_eq!(base["runs"].as_array().unwrap().len(), 3, "{base}");
    for r in [a, b] {
        assert_eq!(r["gate"]["state"], "BLOCK", "{r}");
    }
}
