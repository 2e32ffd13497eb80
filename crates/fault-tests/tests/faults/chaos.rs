//! chaos-runner through faults: its FIS, CloudWatch and S3 calls go through the fault proxy
//! (the steady-state HTTP probe goes to a local server directly).
//!
//! Invariant, checked after every delivery through clients that talk to moto directly: at
//! most one FIS experiment is ever started for the run, even when StartExperiment's answer is
//! lost after FIS acted (the SDK retries with the same client token, and a redelivery reads
//! the run's state back); the journal, when present, is whole JSON. At the end the run has the
//! outcome a clean run has.

use std::time::{Duration, Instant};

use chaos_runner::config::{RegistrySource, Settings};
use chaos_runner::journal::Outcome;
use chaos_runner::port::AwsChaos;
use chaos_runner::registry::Registry;
use chaos_runner::run::{Engine, Request, Response};
use chrono::NaiveDate;
use fault_proxy::{ErrorKind, ResetPoint};
use fault_tests::{deliver_until_ok, Faulted, BURST};
use serde_json::{json, Value};
use shared::config::{CommonConfig, Vars};
use shared::store::S3Store;
use suite_tests::{create_buckets, exclusive_moto, fis, get};

const BUCKET: &str = "chaos-reports";

/// The experiment template and the stop alarm, created directly in moto.
async fn seed(sdk: &aws_config::SdkConfig) -> String {
    fis::put_stop_alarm(&aws_sdk_cloudwatch::Client::new(sdk), "chaos-stop-api").await;
    fis::Template {
        name: "chaos-rq-queue",
        stop_alarm: Some("chaos-stop-api"),
        selection: "COUNT(1)",
        client_token: "fault-chaos-rq-queue",
        description: "chaos-rq-queue (fault test)",
    }
    .create(&aws_sdk_fis::Client::new(sdk))
    .await
}

async fn check(fis: &aws_sdk_fis::Client, s3: &aws_sdk_s3::Client) -> usize {
    let n = fis
        .list_experiments()
        .send()
        .await
        .expect("list experiments (direct to moto)")
        .experiments()
        .len();
    assert!(n <= 1, "{n} FIS experiments started for one run");
    if let Some(b) = get(s3, BUCKET, "reports/chaos/2026-11/rq-queue-20261106.json").await {
        serde_json::from_slice::<Value>(&b).expect("the journal is whole JSON");
    }
    n
}

/// A dry run on its due date with StartExperiment's answers lost after FIS acted (half of
/// them) and a burst of 503/500 on every call.
#[tokio::test]
async fn lost_start_answers_and_a_burst_start_one_experiment() {
    let (_g, m) = exclusive_moto().await;
    // moto's FIS: move one state per GetExperiment call (pending → … → completed).
    fis::set_progression(m, json!({"progression": "manual", "times": 1})).await;
    let direct = m.clients().await;
    create_buckets(&direct.s3(), &[BUCKET]).await;
    let template_id = seed(&direct.sdk).await;
    // A local health endpoint; it answers 200.
    let (url, _) = fis::health_server().await;
    let reg =
        Registry::parse(&fis::registry(vec![fis::rq_queue(&url)]).to_string()).expect("registry");

    let f = Faulted::new(m).await;
    let port = AwsChaos::new(&f.clients.sdk).expect("port");
    let store = S3Store::new(f.s3());
    let common = CommonConfig::from_vars(
        &Vars::from_pairs([("ENVIRONMENT", "staging"), ("REPORT_BUCKET", BUCKET)]),
        "chaos-runner",
    )
    .expect("common");
    let settings = Settings {
        registry_source: RegistrySource::Embedded,
        allow_production: false,
        dry_run: false,
        state_prefix: "chaos-runner/state/".into(),
        poll: Duration::from_millis(50),
        deadline_margin: Duration::ZERO,
    };
    let engine = Engine {
        port: &port,
        store: &store,
        registry: &reg,
        settings: &settings,
        common: &common,
    };
    let fis = aws_sdk_fis::Client::new(&direct.sdk);
    let s3 = direct.s3();
    let request = || Request::Run {
        experiment: "rq-queue".into(),
        date: NaiveDate::from_ymd_opt(2026, 11, 6).expect("date"),
        force: false,
        dry_run: Some(true),
        run_id: None,
        error_budget_remaining_percent: None,
    };

    // Lost answers on StartExperiment only (POST /experiments), then a burst on everything.
    f.proxy.seed(41);
    f.proxy.only_matching(Some("POST /experiments"));
    f.proxy
        .connection_resets(0.5, BURST, ResetPoint::AfterUpstream);
    let mut attempt = 0;
    let out = deliver_until_ok(
        8,
        || {
            attempt += 1;
            let (engine, req) = (&engine, request());
            let id = format!("req-{attempt}");
            async move {
                let r: Response = engine
                    .handle(req, &id, Instant::now() + Duration::from_secs(30))
                    .await?;
                Ok(serde_json::to_value(r).unwrap_or_default())
            }
        },
        || async {
            check(&fis, &s3).await;
        },
    )
    .await;
    let lost = f.proxy.stats();
    f.proxy.clear();
    assert!(
        lost.resets > 0,
        "a StartExperiment answer was lost: {lost:?}"
    );
    let first: Response = serde_json::from_value(out.result).expect("response");
    assert_eq!(first.status, "DONE", "{first:?}");
    assert_eq!(first.runs[0].outcome, Outcome::HypothesisHeld, "{first:?}");
    assert_eq!(check(&fis, &s3).await, 1);

    // A redelivery of the same run through a burst on every call: read back, not rerun.
    f.proxy.seed(42);
    f.proxy.error_burst(0.3, BURST, ErrorKind::Mixed);
    let out = deliver_until_ok(
        8,
        || {
            let (engine, req) = (&engine, request());
            async move {
                let r: Response = engine
                    .handle(req, "req-again", Instant::now() + Duration::from_secs(30))
                    .await?;
                Ok(serde_json::to_value(r).unwrap_or_default())
            }
        },
        || async {
            check(&fis, &s3).await;
        },
    )
    .await;
    f.proxy.clear();
    let again: Response = serde_json::from_value(out.result).expect("response");
    assert!(again.runs[0].repeated, "{again:?}");
    assert_eq!(check(&fis, &s3).await, 1);
    let e = fis
        .list_experiments()
        .send()
        .await
        .expect("list")
        .experiments()[0]
        .clone();
    assert_eq!(e.experiment_template_id(), Some(template_id.as_str()));
}
