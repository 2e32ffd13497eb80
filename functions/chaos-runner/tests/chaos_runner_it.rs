//! chaos-runner against real services: moto's FIS (templates, StartExperiment with client
//! tokens, the experiment states, StopExperiment), moto's CloudWatch (alarms, metrics) and S3,
//! and a real HTTP server started here for the steady-state HTTP probes.
//!
//! moto advances a FIS experiment's state through its state manager: `immediate` (default)
//! reports the final state at once; `manual` with `times: n` moves one state every n
//! GetExperiment calls. The tests set it per test, so runs can be held mid-way and resumed.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chaos_runner::config::{RegistrySource, Settings};
use chaos_runner::journal::{Journal, Outcome};
use chaos_runner::port::AwsChaos;
use chaos_runner::registry::Registry;
use chaos_runner::run::{Engine, Request, Response};
use chrono::NaiveDate;
use serde_json::json;
use shared::config::{CommonConfig, Vars};
use shared::store::S3Store;
use suite_tests::fis::{self, health_server, put_stop_alarm, set_progression};
use suite_tests::{create_buckets, exclusive_moto, get, Moto};

const BUCKET: &str = "chaos-reports";

/// The registry as the runner in `environment` reads it: `${environment}` in the metric
/// dimensions is substituted (the backlog probe reads worker-scaler's full dimension set).
fn registry(environment: &str, url: &str, budget: Option<serde_json::Value>) -> Registry {
    let mut rq_queue = fis::rq_queue(url);
    rq_queue["steady_state"]
        .as_array_mut()
        .expect("steady_state")
        .push(json!(
            {"name": "backlog", "metric": {"namespace": "PlatformPlaybook", "name": "worker_backlog_total",
             "dimensions": {"environment": "${environment}", "function": "worker-scaler-${environment}"},
             "stat": "Maximum", "period_seconds": 60, "lookback_minutes": 10},
             "tolerance": {"max": 100}}
        ));
    rq_queue["follow_ups"] = json!(["Check the intermediate list was requeued"]);
    let mut r = fis::registry(vec![
        rq_queue,
        json!({
            "name": "postgres-failover",
            "title": "Primary crash",
            "hypothesis": "The standby is promoted within 120 s",
            "cadence": "quarterly",
            "runbook": "docs/db/disaster_recovery.md",
            "owner_rotation": "sre",
            "blast_radius": {"selector": "primary db", "count": 1},
            "stop_conditions": [{"alarm": "chaos-stop-api"}],
            "steady_state": [
                {"name": "health", "http": {"url": url, "timeout_ms": 1000, "attempts": 1},
                 "tolerance": {}}
            ],
            "fis_template": {"name": "chaos-postgres-failover"}
        }),
    ]);
    if let Some(b) = budget {
        r["error_budget"] = b;
    }
    Registry::parse_for(&r.to_string(), environment).unwrap()
}

fn common(env: &str) -> CommonConfig {
    CommonConfig::from_vars(
        &Vars::from_pairs([("ENVIRONMENT", env), ("REPORT_BUCKET", BUCKET)]),
        "chaos-runner",
    )
    .unwrap()
}

fn settings(poll_ms: u64) -> Settings {
    Settings {
        registry_source: RegistrySource::Embedded,
        allow_production: false,
        dry_run: false,
        state_prefix: "chaos-runner/state/".into(),
        poll: Duration::from_millis(poll_ms),
        deadline_margin: Duration::ZERO,
    }
}

struct World {
    s3: aws_sdk_s3::Client,
    fis: aws_sdk_fis::Client,
    cw: aws_sdk_cloudwatch::Client,
    port: AwsChaos,
    store: S3Store,
}

async fn world(moto: &Moto) -> World {
    let clients = moto.clients().await;
    let s3 = clients.s3();
    create_buckets(&s3, &[BUCKET]).await;
    World {
        fis: aws_sdk_fis::Client::new(&clients.sdk),
        cw: aws_sdk_cloudwatch::Client::new(&clients.sdk),
        port: AwsChaos::new(&clients.sdk).unwrap(),
        store: S3Store::new(s3.clone()),
        s3,
    }
}

/// One datapoint, now, with exactly these dimensions (CloudWatch matches the set exactly).
async fn put_metric(
    cw: &aws_sdk_cloudwatch::Client,
    namespace: &str,
    name: &str,
    dims: &[(&str, &str)],
    value: f64,
) {
    let dims = dims
        .iter()
        .map(|(k, v)| {
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name(*k)
                .value(*v)
                .build()
        })
        .collect();
    cw.put_metric_data()
        .namespace(namespace)
        .metric_data(
            aws_sdk_cloudwatch::types::MetricDatum::builder()
                .metric_name(name)
                .set_dimensions(Some(dims))
                .value(value)
                .timestamp(aws_smithy_types::DateTime::from_secs(
                    chrono::Utc::now().timestamp(),
                ))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// worker-scaler's `worker_backlog_total` as it emits it: dimensions exactly `environment`
/// and `function` = `worker-scaler-<environment>`.
async fn backlog(w: &World, environment: &str, value: f64) {
    let function = format!("worker-scaler-{environment}");
    let dims = [
        ("environment", environment),
        ("function", function.as_str()),
    ];
    put_metric(
        &w.cw,
        "PlatformPlaybook",
        "worker_backlog_total",
        &dims,
        value,
    )
    .await;
}

/// A stop-condition alarm of a healthy system: created, then set to `OK`. AWS creates an
/// alarm in `INSUFFICIENT_DATA` (moto's may start `OK`), and the runner refuses an alarm
/// without data (`stop_condition_no_data`).
async fn healthy_stop_alarm(w: &World, name: &str) {
    put_stop_alarm(&w.cw, name).await;
    alarm_state(w, name, aws_sdk_cloudwatch::types::StateValue::Ok).await;
}

async fn alarm_state(w: &World, name: &str, state: aws_sdk_cloudwatch::types::StateValue) {
    w.cw.set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("test")
        .send()
        .await
        .unwrap();
}

/// A FIS template like infra/chaos_runner.tf's, created through the FIS API.
async fn template(w: &World, name: &str, stop_alarm: Option<&str>, selection: &str) -> String {
    fis::Template {
        name,
        stop_alarm,
        selection,
        client_token: &format!("{name}-{selection}-{}", stop_alarm.unwrap_or("none")),
        description: &format!("{name} (test)"),
    }
    .create(&w.fis)
    .await
}

async fn experiments(w: &World) -> usize {
    w.fis
        .list_experiments()
        .send()
        .await
        .unwrap()
        .experiments()
        .len()
}

async fn journal(w: &World, month: &str, run_id: &str) -> Journal {
    let bytes = get(
        &w.s3,
        BUCKET,
        &format!("reports/chaos/{month}/{run_id}.json"),
    )
    .await
    .unwrap_or_else(|| panic!("journal of {run_id}"));
    serde_json::from_slice(&bytes).unwrap()
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn run(experiment: &str, date: &str, force: bool, dry_run: bool) -> Request {
    Request::Run {
        experiment: experiment.into(),
        date: day(date),
        force,
        dry_run: Some(dry_run),
        run_id: None,
        error_budget_remaining_percent: None,
    }
}

fn soon(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

/// A dry run end to end on the first Friday: template found by its Name tag, stop conditions
/// and blast radius checked, steady state before, StartExperiment with skip-all, FIS states
/// followed to `completed`, steady state after, the journal and the postmortem in S3.
#[tokio::test]
async fn dry_run_follows_fis_to_completion_and_writes_journal_and_postmortem() {
    let (_g, moto) = exclusive_moto().await;
    set_progression(moto, json!({"progression": "manual", "times": 1})).await;
    let w = world(moto).await;
    let (url, _) = health_server().await;
    healthy_stop_alarm(&w, "chaos-stop-api").await;
    backlog(&w, "staging", 12.0).await;
    let template_id = template(&w, "chaos-rq-queue", Some("chaos-stop-api"), "COUNT(1)").await;
    let reg = registry("staging", &url, None);
    let (c, s) = (common("staging"), settings(50));
    let engine = Engine {
        port: &w.port,
        store: &w.store,
        registry: &reg,
        settings: &s,
        common: &c,
    };

    let resp: Response = engine
        .handle(
            run("rq-queue", "2026-11-06", false, true),
            "req-1",
            soon(30_000),
        )
        .await
        .unwrap();
    assert_eq!(resp.status, "DONE", "{resp:?}");
    let r = &resp.runs[0];
    assert_eq!(r.run_id, "rq-queue-20261106");
    assert_eq!(r.outcome, Outcome::HypothesisHeld, "{r:?}");
    assert_eq!(
        r.owner, "bruno",
        "November is 10 months after the January anchor: members[10 mod 3]"
    );
    assert_eq!(
        r.fis_states,
        ["pending", "initiating", "running", "completed"]
    );

    // FIS itself: one experiment, from our template, in skip-all mode, tagged with the run.
    let exp_id = r.fis_experiment_id.clone().unwrap();
    let e = w.fis.get_experiment().id(&exp_id).send().await.unwrap();
    let e = e.experiment().unwrap();
    assert_eq!(e.experiment_template_id(), Some(template_id.as_str()));
    assert_eq!(
        e.experiment_options()
            .and_then(|o| o.actions_mode())
            .map(|m| m.as_str()),
        Some("skip-all")
    );
    assert_eq!(
        e.tags()
            .and_then(|t| t.get("chaos-run-id"))
            .map(String::as_str),
        Some("rq-queue-20261106")
    );

    let j = journal(&w, "2026-11", "rq-queue-20261106").await;
    assert_eq!(j.status, "completed");
    assert!(!j.deviated);
    assert!(j.steady_states.before.as_ref().unwrap().steady_state_met);
    assert!(j.steady_states.after.as_ref().unwrap().steady_state_met);
    assert!(
        !j.steady_states.during.is_empty(),
        "probes taken while following"
    );
    let probes = &j.steady_states.before.as_ref().unwrap().probes;
    assert_eq!(
        probes[1].output,
        json!(12.0),
        "the backlog metric read from CloudWatch"
    );
    assert_eq!(j.fis.actions_mode, "skip-all");
    assert_eq!(j.run[0]["status"], "succeeded");
    let raw: serde_json::Value = serde_json::from_slice(
        &get(
            &w.s3,
            BUCKET,
            "reports/chaos/2026-11/rq-queue-20261106.json",
        )
        .await
        .unwrap(),
    )
    .unwrap();
    for key in [
        "chaoslib-version",
        "experiment",
        "steady_states",
        "deviated",
        "status",
        "run",
        "rollbacks",
        "start",
        "end",
        "duration",
    ] {
        assert!(raw.get(key).is_some(), "Chaos Toolkit journal key {key}");
    }
    assert!(raw["experiment"]["steady-state-hypothesis"]["probes"].is_array());
    assert!(raw["fis"]["states"][0]["at"].is_string());

    let md = String::from_utf8(
        get(&w.s3, BUCKET, "reports/chaos/2026-11.md")
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        md.starts_with("# Chaos experiments 2026-11: postmortem"),
        "{md}"
    );
    assert!(
        md.contains(
            "| rq-queue | `rq-queue-20261106` | bruno | dry run (skip-all) | **hypothesis_held** |"
        ),
        "{md}"
    );
    assert!(
        md.contains("- [ ] Check the intermediate list was requeued (owner: bruno)"),
        "{md}"
    );
    assert!(
        md.contains("- [ ] This was a dry run (actions skipped): schedule the live run"),
        "{md}"
    );
    assert!(md.contains("FIS `completed`"), "{md}");

    // A repeated delivery reads the run back: no second experiment.
    let again = engine
        .handle(
            run("rq-queue", "2026-11-06", false, true),
            "req-2",
            soon(30_000),
        )
        .await
        .unwrap();
    assert!(again.runs[0].repeated);
    assert_eq!(experiments(&w).await, 1);
    // Not due on the second Friday without force.
    let later = engine
        .handle(
            run("rq-queue", "2026-11-13", false, true),
            "req-3",
            soon(30_000),
        )
        .await
        .unwrap();
    assert_eq!(later.status, "NOT_DUE");
    assert_eq!(later.not_due[0].1, Some(day("2026-12-04")));
}

/// The first invocation runs out of time while FIS is still `initiating`; the state is in S3
/// and the next (scheduled) invocation resumes it to the end without a second experiment.
#[tokio::test]
async fn a_run_is_resumed_across_invocations() {
    let (_g, moto) = exclusive_moto().await;
    set_progression(moto, json!({"progression": "manual", "times": 1})).await;
    let w = world(moto).await;
    let (url, status) = health_server().await;
    healthy_stop_alarm(&w, "chaos-stop-api").await;
    backlog(&w, "staging", 3.0).await;
    template(&w, "chaos-rq-queue", Some("chaos-stop-api"), "COUNT(1)").await;
    template(
        &w,
        "chaos-postgres-failover",
        Some("chaos-stop-api"),
        "COUNT(1)",
    )
    .await;
    let reg = registry("staging", &url, None);
    let (c, s) = (common("staging"), settings(50));
    let engine = Engine {
        port: &w.port,
        store: &w.store,
        registry: &reg,
        settings: &s,
        common: &c,
    };

    // 2026-11-06 is a first Friday but not a quarter month: only rq-queue is due.
    let first = engine
        .handle(
            Request::Scheduled {
                date: day("2026-11-06"),
            },
            "req-a",
            soon(0),
        )
        .await
        .unwrap();
    assert_eq!(first.status, "IN_PROGRESS", "{first:?}");
    assert_eq!(first.runs.len(), 1);
    assert_eq!(
        first.not_due,
        vec![("postgres-failover".to_string(), Some(day("2027-01-01")))]
    );
    let r = &first.runs[0];
    assert_eq!(r.outcome, Outcome::InProgress);
    assert_eq!(r.fis_states, ["pending", "initiating"]);
    assert!(
        r.journal
            .ends_with("chaos-runner/state/runs/rq-queue-20261106.json"),
        "{}",
        r.journal
    );
    assert!(
        get(&w.s3, BUCKET, "chaos-runner/state/active/rq-queue-20261106")
            .await
            .is_some()
    );
    assert!(
        get(
            &w.s3,
            BUCKET,
            "reports/chaos/2026-11/rq-queue-20261106.json"
        )
        .await
        .is_none(),
        "no journal before the end"
    );

    // The service degrades while the experiment runs: the steady state after is not met.
    status.store(503, Ordering::SeqCst);
    let second = engine
        .handle(
            Request::Scheduled {
                date: day("2026-11-06"),
            },
            "req-b",
            soon(30_000),
        )
        .await
        .unwrap();
    assert_eq!(second.status, "DONE", "{second:?}");
    assert_eq!(second.runs.len(), 1, "resumed, not started again");
    let r = &second.runs[0];
    assert_eq!(r.outcome, Outcome::Deviated);
    assert!(r.deviated);
    assert_eq!(
        r.fis_states,
        ["pending", "initiating", "running", "completed"],
        "each state once across both invocations"
    );
    assert_eq!(experiments(&w).await, 1);
    assert!(
        get(&w.s3, BUCKET, "chaos-runner/state/active/rq-queue-20261106")
            .await
            .is_none()
    );
    let j = journal(&w, "2026-11", "rq-queue-20261106").await;
    assert!(j.steady_states.before.as_ref().unwrap().steady_state_met);
    assert!(!j.steady_states.after.as_ref().unwrap().steady_state_met);
    assert!(j.steady_states.after.as_ref().unwrap().probes[0]
        .detail
        .contains("status 503"));
    assert!(j.steady_states.during.iter().any(|s| !s.steady_state_met));
    let md = String::from_utf8(
        get(&w.s3, BUCKET, "reports/chaos/2026-11.md")
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        md.contains("Find why the steady state did not return"),
        "{md}"
    );

    // A third delivery of the same schedule: nothing new.
    let third = engine
        .handle(
            Request::Scheduled {
                date: day("2026-11-06"),
            },
            "req-c",
            soon(30_000),
        )
        .await
        .unwrap();
    assert!(third.runs[0].repeated);
    assert_eq!(experiments(&w).await, 1);
}

/// StopExperiment on a running run; the run ends `stopped`, FIS agrees.
#[tokio::test]
async fn a_running_experiment_is_stopped() {
    let (_g, moto) = exclusive_moto().await;
    set_progression(moto, json!({"progression": "manual", "times": 1000})).await;
    let w = world(moto).await;
    let (url, _) = health_server().await;
    healthy_stop_alarm(&w, "chaos-stop-api").await;
    backlog(&w, "dev", 3.0).await;
    template(&w, "chaos-rq-queue", Some("chaos-stop-api"), "COUNT(1)").await;
    let reg = registry("dev", &url, None);
    let (c, s) = (common("dev"), settings(50));
    let engine = Engine {
        port: &w.port,
        store: &w.store,
        registry: &reg,
        settings: &s,
        common: &c,
    };
    let first = engine
        .handle(
            run("rq-queue", "2026-11-20", true, false),
            "abcdef123456",
            soon(0),
        )
        .await
        .unwrap();
    let r = &first.runs[0];
    assert_eq!(
        r.run_id, "rq-queue-20261120-mabcdef12",
        "forced manual runs are named by the request id"
    );
    assert_eq!(r.outcome, Outcome::InProgress);

    // One state per GetExperiment from here: `stopping` then `stopped` (with `immediate`, moto
    // would first jump the pending experiment to `completed`).
    set_progression(moto, json!({"progression": "manual", "times": 1})).await;
    let stop = Request::Stop {
        run_id: r.run_id.clone(),
        reason: "test stop".into(),
    };
    let stopped = engine.handle(stop, "req-s", soon(30_000)).await.unwrap();
    let r = &stopped.runs[0];
    assert_eq!(r.outcome, Outcome::Stopped, "{r:?}");
    assert_eq!(r.fis_states.last().map(String::as_str), Some("stopped"));
    assert!(
        r.fis_states.iter().any(|s| s == "stopping"),
        "{:?}",
        r.fis_states
    );
    let e = w
        .fis
        .get_experiment()
        .id(r.fis_experiment_id.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        e.experiment()
            .unwrap()
            .state()
            .unwrap()
            .status()
            .unwrap()
            .as_str(),
        "stopped"
    );
    let j = journal(&w, "2026-11", &r.run_id).await;
    assert_eq!(j.status, "aborted");
    assert_eq!(j.fis.stop_requested.as_deref(), Some("test stop"));
    assert_eq!(j.fis.actions_mode, "run-all");
}

/// The safety rules: production, a template whose only stop condition is `none`, a template
/// wider than the blast radius, an alarm already firing, an alarm without data, a low error
/// budget (given and from a CloudWatch metric), a steady state not met before. None of them
/// starts an experiment.
#[tokio::test]
async fn refusals_start_nothing() {
    let (_g, moto) = exclusive_moto().await;
    set_progression(moto, json!({"progression": "immediate"})).await;
    let w = world(moto).await;
    let (url, status) = health_server().await;
    healthy_stop_alarm(&w, "chaos-stop-api").await;
    backlog(&w, "staging", 3.0).await;
    let s = settings(50);
    let reg = registry("staging", &url, None);
    let outcome = |resp: &Response| (resp.runs[0].outcome, resp.runs[0].refusal.clone());

    // No template yet.
    let c = common("staging");
    let engine = Engine {
        port: &w.port,
        store: &w.store,
        registry: &reg,
        settings: &s,
        common: &c,
    };
    let n = std::cell::Cell::new(0);
    let next = |_: &Engine<'_, AwsChaos, S3Store>| {
        n.set(n.get() + 1);
        Request::Run {
            experiment: "rq-queue".into(),
            date: day("2026-11-06"),
            force: true,
            dry_run: Some(true),
            run_id: Some(format!("t{}", n.get())),
            error_budget_remaining_percent: None,
        }
    };
    let r = engine
        .handle(next(&engine), "r", soon(10_000))
        .await
        .unwrap();
    assert_eq!(
        outcome(&r),
        (Outcome::Refused, Some("template_missing".into()))
    );

    // Production: refused before FIS is even asked.
    template(&w, "chaos-rq-queue", None, "COUNT(1)").await;
    let prod = common("prod");
    let engine_prod = Engine {
        port: &w.port,
        store: &w.store,
        registry: &reg,
        settings: &s,
        common: &prod,
    };
    let r = engine_prod
        .handle(next(&engine_prod), "r", soon(10_000))
        .await
        .unwrap();
    assert_eq!(outcome(&r), (Outcome::Refused, Some("production".into())));
    let j = journal(&w, "2026-11", &r.runs[0].run_id).await;
    assert_eq!(j.status, "aborted");
    assert!(j.refusal_detail.unwrap().contains("CHAOS_ALLOW_PRODUCTION"));
    // Allowed by the function but not by the experiment: still refused.
    let s_prod = Settings {
        allow_production: true,
        ..settings(50)
    };
    let engine_prod2 = Engine {
        port: &w.port,
        store: &w.store,
        registry: &reg,
        settings: &s_prod,
        common: &prod,
    };
    let r = engine_prod2
        .handle(next(&engine_prod2), "r", soon(10_000))
        .await
        .unwrap();
    assert_eq!(outcome(&r), (Outcome::Refused, Some("production".into())));

    // The template's only stop condition is `none`.
    let r = engine
        .handle(next(&engine), "r", soon(10_000))
        .await
        .unwrap();
    assert_eq!(
        outcome(&r),
        (Outcome::Refused, Some("no_stop_condition".into())),
        "{r:?}"
    );

    // A template selecting ALL targets: wider than the registered COUNT(1).
    w.fis
        .delete_experiment_template()
        .id(w
            .fis
            .list_experiment_templates()
            .send()
            .await
            .unwrap()
            .experiment_templates()[0]
            .id()
            .unwrap())
        .send()
        .await
        .unwrap();
    let wide = template(&w, "chaos-rq-queue", Some("chaos-stop-api"), "ALL").await;
    let r = engine
        .handle(next(&engine), "r", soon(10_000))
        .await
        .unwrap();
    assert_eq!(outcome(&r), (Outcome::Refused, Some("blast_radius".into())));
    w.fis
        .delete_experiment_template()
        .id(wide)
        .send()
        .await
        .unwrap();
    template(&w, "chaos-rq-queue", Some("chaos-stop-api"), "COUNT(1)").await;

    // The stop-condition alarm is already firing.
    w.cw.set_alarm_state()
        .alarm_name("chaos-stop-api")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("test")
        .send()
        .await
        .unwrap();
    let r = engine
        .handle(next(&engine), "r", soon(10_000))
        .await
        .unwrap();
    assert_eq!(
        outcome(&r),
        (Outcome::Refused, Some("stop_condition_in_alarm".into()))
    );

    // The stop-condition alarm has no data (as AWS creates it, or its metric is not emitted):
    // it could never fire, so nothing starts.
    alarm_state(
        &w,
        "chaos-stop-api",
        aws_sdk_cloudwatch::types::StateValue::InsufficientData,
    )
    .await;
    let r = engine
        .handle(next(&engine), "r", soon(10_000))
        .await
        .unwrap();
    assert_eq!(
        outcome(&r),
        (Outcome::Refused, Some("stop_condition_no_data".into())),
        "{r:?}"
    );
    assert!(
        r.runs[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("chaos-stop-api is in INSUFFICIENT_DATA"),
        "{r:?}"
    );
    let j = journal(&w, "2026-11", &r.runs[0].run_id).await;
    assert_eq!(j.status, "aborted");
    assert_eq!(j.refusal.as_deref(), Some("stop_condition_no_data"));
    alarm_state(
        &w,
        "chaos-stop-api",
        aws_sdk_cloudwatch::types::StateValue::Ok,
    )
    .await;

    // Error budget: a given value, then a CloudWatch metric.
    let gated = registry(
        "staging",
        &url,
        Some(json!({"min_remaining_percent": 25, "source": {"value": 10}})),
    );
    let engine_b = Engine {
        port: &w.port,
        store: &w.store,
        registry: &gated,
        settings: &s,
        common: &c,
    };
    let r = engine_b
        .handle(next(&engine_b), "r", soon(10_000))
        .await
        .unwrap();
    assert_eq!(outcome(&r), (Outcome::Skipped, Some("error_budget".into())));
    // The source as the registry writes it: uptime-probe's full dimension set, with the
    // environment substituted.
    let from_metric = registry(
        "staging",
        &url,
        Some(json!({"min_remaining_percent": 25, "source": {"metric": {
        "namespace": "PlatformPlaybook/SLO", "name": "error_budget_remaining_percent",
        "dimensions": {"environment": "${environment}", "function": "uptime-probe-${environment}", "slo": "api-availability"},
        "stat": "Minimum", "period_seconds": 60, "lookback_minutes": 60}}})),
    );
    let budget = |environment: &'static str, value: f64| {
        let cw = w.cw.clone();
        async move {
            let function = format!("uptime-probe-{environment}");
            let dims = [
                ("environment", environment),
                ("function", function.as_str()),
                ("slo", "api-availability"),
            ];
            put_metric(
                &cw,
                "PlatformPlaybook/SLO",
                "error_budget_remaining_percent",
                &dims,
                value,
            )
            .await;
        }
    };
    // Another environment's budget is not this one's.
    budget("prod", 90.0).await;
    let engine_m = Engine {
        port: &w.port,
        store: &w.store,
        registry: &from_metric,
        settings: &s,
        common: &c,
    };
    let r = engine_m
        .handle(next(&engine_m), "r", soon(10_000))
        .await
        .unwrap();
    assert_eq!(
        outcome(&r),
        (Outcome::Skipped, Some("error_budget_unknown".into())),
        "no datapoint for staging yet (only prod's)"
    );
    budget("staging", 12.5).await;
    let r = engine_m
        .handle(next(&engine_m), "r", soon(10_000))
        .await
        .unwrap();
    assert_eq!(outcome(&r), (Outcome::Skipped, Some("error_budget".into())));
    assert!(
        r.runs[0].detail.as_deref().unwrap().contains("12.5 %"),
        "{r:?}"
    );

    // The steady state is not met before (the service answers 503): nothing injected.
    status.store(503, Ordering::SeqCst);
    let r = engine
        .handle(next(&engine), "r", soon(10_000))
        .await
        .unwrap();
    assert_eq!(outcome(&r), (Outcome::SteadyStateNotMet, None));
    status.store(200, Ordering::SeqCst);

    assert_eq!(experiments(&w).await, 0, "no refusal started an experiment");
    // And the whole sequence is in the month's postmortem.
    let md = String::from_utf8(
        get(&w.s3, BUCKET, "reports/chaos/2026-11.md")
            .await
            .unwrap(),
    )
    .unwrap();
    for code in [
        "production",
        "no_stop_condition",
        "blast_radius",
        "stop_condition_in_alarm",
        "stop_condition_no_data",
        "error_budget",
    ] {
        assert!(
            md.contains(&format!("`{code}`")),
            "{code} in the postmortem:\n{md}"
        );
    }

    // With every rule satisfied the same request runs.
    let r = engine
        .handle(next(&engine), "r", soon(10_000))
        .await
        .unwrap();
    assert_eq!(outcome(&r), (Outcome::HypothesisHeld, None), "{r:?}");
    assert_eq!(experiments(&w).await, 1);
}

/// The HTTP probe's transport errors (nothing listening) count as misses.
#[tokio::test]
async fn http_probe_against_a_closed_port_fails_the_steady_state() {
    let (_g, moto) = exclusive_moto().await;
    let w = world(moto).await;
    healthy_stop_alarm(&w, "chaos-stop-api").await;
    backlog(&w, "dev", 3.0).await;
    template(&w, "chaos-rq-queue", Some("chaos-stop-api"), "COUNT(1)").await;
    let closed = format!("http://127.0.0.1:{}/healthz", suite_tests::free_port());
    let reg = registry("dev", &closed, None);
    let (c, s) = (common("dev"), settings(50));
    let engine = Engine {
        port: &w.port,
        store: &w.store,
        registry: &reg,
        settings: &s,
        common: &c,
    };
    let r = engine
        .handle(
            run("rq-queue", "2026-12-04", false, true),
            "r",
            soon(10_000),
        )
        .await
        .unwrap();
    assert_eq!(r.runs[0].outcome, Outcome::SteadyStateNotMet);
    let j = journal(&w, "2026-12", "rq-queue-20261204").await;
    let p = &j.steady_states.before.unwrap().probes[0];
    assert!(
        p.detail.contains("connect error") && p.detail.contains("3 of 3"),
        "{}",
        p.detail
    );
}
