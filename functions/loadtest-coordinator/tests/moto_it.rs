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
        Ok(ShardResult {
            run_id: req.run_id.clone(),
            slice_index: req.slice_index,
            shard_index: req.shard_index,
            scheduled: n,
            sent: n,
            ok: n,
            latency_us: encode_histogram(&h).unwrap(),
            latency_uncorrected_us: encode_histogram(&h).unwrap(),
            ..Default::default()
        })
    }
    async fn continue_async(&self, _p: &Value) -> SuiteResult<()> {
        panic!("single-slice runs hand nothing off")
    }
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

    let mut reports = vec![];
    for (run, slow) in [("n1", true), ("n2", true), ("n3", false)] {
        invoker.latency_ms.store(
            if slow { 1200 } else { 80 },
            std::sync::atomic::Ordering::SeqCst,
        );
        let r = engine
            .start(StartRequest {
                scenario: ScenarioRef::Named("quote-generation".into()),
                run_id: Some(run.into()),
                base_url: None,
            })
            .await
            .unwrap();
        reports.push(r);
    }
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
