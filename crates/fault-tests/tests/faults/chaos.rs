//! chaos-runner through faults: its FIS, CloudWatch and S3 calls go through the fault proxy
//! (the steady-state HTTP probe goes to a local server directly).
//!
//! Invariant, checked after every delivery through clients that talk to moto directly: at
//! most one FIS experiment is ever started for the run, even when StartExperiment's answer is
//! lost after FIS acted (the SDK retries with the same client token, and a redelivery reads
//! the run's state back); the journal, when present, is whole JSON. At the end the run has the
//! outcome a clean run has.

use std::time::{Duration, Instant};

use aws_sdk_fis::types::{
    CreateExperimentTemplateActionInput, CreateExperimentTemplateStopConditionInput,
    CreateExperimentTemplateTargetInput,
};
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
use suite_tests::{create_buckets, exclusive_moto, get};

const BUCKET: &str = "chaos-reports";
const ACCOUNT: &str = "123456789012";

/// A local health endpoint that always answers 200.
async fn health() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    format!("http://127.0.0.1:{port}/healthz")
}

fn registry(url: &str) -> Registry {
    Registry::parse(
        &json!({
            "version": 1,
            "rotations": {"sre": {"anchor_month": "2026-01", "members": ["amara", "bruno", "chen"]}},
            "experiments": [{
                "name": "rq-queue",
                "title": "RQ latency and worker crash",
                "hypothesis": "The backlog drains and the API stays up",
                "cadence": "monthly",
                "runbook": "docs/realtime/rq_recovery.md",
                "owner_rotation": "sre",
                "blast_radius": {"selector": "tag chaos-target=rq-workers", "count": 1},
                "stop_conditions": [{"alarm": "chaos-stop-api"}],
                "steady_state": [
                    {"name": "health", "http": {"url": url, "timeout_ms": 1000, "attempts": 3},
                     "tolerance": {"status": [200], "max_latency_ms": 900, "max_failures": 1}}
                ],
                "fis_template": {"name": "chaos-rq-queue"}
            }]
        })
        .to_string(),
    )
    .expect("registry")
}

/// The experiment template and the stop alarm, created directly in moto.
async fn seed(sdk: &aws_config::SdkConfig) -> String {
    let cw = aws_sdk_cloudwatch::Client::new(sdk);
    cw.put_metric_alarm()
        .alarm_name("chaos-stop-api")
        .namespace("PlatformPlaybook")
        .metric_name("api_availability")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(99.5)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::LessThanThreshold)
        .send()
        .await
        .expect("alarm");
    let out = aws_sdk_fis::Client::new(sdk)
        .create_experiment_template()
        .client_token("fault-chaos-rq-queue")
        .description("chaos-rq-queue (fault test)")
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/chaos-fis"))
        .stop_conditions(
            CreateExperimentTemplateStopConditionInput::builder()
                .source("aws:cloudwatch:alarm")
                .value(format!(
                    "arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:chaos-stop-api"
                ))
                .build()
                .expect("stop"),
        )
        .targets(
            "workers",
            CreateExperimentTemplateTargetInput::builder()
                .resource_type("aws:ecs:task")
                .selection_mode("COUNT(1)")
                .resource_arns(format!(
                    "arn:aws:ecs:us-east-1:{ACCOUNT}:task/workers/0123456789abcdef"
                ))
                .build()
                .expect("target"),
        )
        .actions(
            "crash-worker",
            CreateExperimentTemplateActionInput::builder()
                .action_id("aws:ecs:stop-task")
                .targets("Tasks", "workers")
                .build()
                .expect("action"),
        )
        .tags("Name", "chaos-rq-queue")
        .send()
        .await
        .expect("template");
    out.experiment_template()
        .and_then(|t| t.id())
        .expect("template id")
        .to_string()
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
    let status = crate::moto_post(
        m,
        "/moto-api/state-manager/set-transition",
        &json!({"model_name": "fis::experiment", "transition": {"progression": "manual", "times": 1}}),
    )
    .await;
    assert!((200..300).contains(&status), "set-transition: {status}");
    let direct = m.clients().await;
    create_buckets(&direct.s3(), &[BUCKET]).await;
    let template_id = seed(&direct.sdk).await;
    let url = health().await;
    let reg = registry(&url);

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
