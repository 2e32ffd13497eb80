//! The Lambda adapter: event → check, EMF metrics, the decision log line, the response.

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::aws::{AwsClients, AwsSettings};
use shared::config::{CommonConfig, Vars};
use shared::metrics::{Emf, Unit};
use shared::SuiteError;

use crate::config::Settings;
use crate::run::{run_check, Check, Outcome, Status};
use crate::target::{AwsTarget, ScalingTarget};

pub struct Deps<T: ScalingTarget> {
    pub common: CommonConfig,
    pub settings: Settings,
    pub redis: redis::Client,
    pub target: T,
}

impl Deps<AwsTarget> {
    /// Configuration, the Redis client and the ECS / Auto Scaling client: once per cold start.
    pub async fn from_env() -> Result<Self, SuiteError> {
        let vars = Vars::from_process();
        let common = CommonConfig::from_vars(&vars, "worker-scaler")?;
        shared::telemetry::init(&common);
        let settings = Settings::from_vars(&vars)?;
        let clients = AwsClients::load(AwsSettings::from_vars(&vars)?).await;
        Self::new(common, settings, &clients)
    }

    pub fn new(
        common: CommonConfig,
        settings: Settings,
        clients: &AwsClients,
    ) -> Result<Self, SuiteError> {
        let redis = redis_client(&settings)?;
        let target = AwsTarget::new(&settings.target, &clients.sdk);
        Ok(Deps {
            common,
            settings,
            redis,
            target,
        })
    }
}

pub fn redis_client(settings: &Settings) -> Result<redis::Client, SuiteError> {
    redis::Client::open(settings.redis_url.as_str()).map_err(|e| SuiteError::Config {
        var: "SCALER_REDIS_URL".into(),
        problem: format!("{e}; expected e.g. redis://host:6379/0"),
    })
}

/// The payloads: the schedule's (`scheduled_time` is the check's idempotency key), an
/// EventBridge "Scheduled Event", or a manual invoke.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub source: Option<String>,
    pub scheduled_time: Option<String>,
    /// Decide and report, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Evaluate the policy as if at this time (RFC 3339); only with `dry_run`, so a simulated
    /// clock can never change real capacity (except with `ENVIRONMENT=local`, for the demo).
    pub at: Option<DateTime<Utc>>,
}

pub fn parse_event(v: &Value, local: bool) -> Result<Request, SuiteError> {
    if v.is_null() {
        return Ok(Request::default());
    }
    if v.get("detail-type").is_some() {
        // EventBridge rule "Scheduled Event": its `time` identifies the check.
        return Ok(Request {
            source: Some("eventbridge".into()),
            scheduled_time: v.get("time").and_then(Value::as_str).map(str::to_string),
            ..Request::default()
        });
    }
    let r: Request = serde_json::from_value(v.clone()).map_err(|e| {
        SuiteError::invalid(
            "payload",
            e.to_string(),
            "send {\"source\": \"schedule\", \"scheduled_time\": \"...\"}, {} or {\"dry_run\": true, \"at\": \"2026-11-01T21:00:00Z\"}",
        )
    })?;
    if r.at.is_some() && !r.dry_run && !local {
        return Err(SuiteError::invalid(
            "at",
            "a simulated time is only allowed with dry_run",
            "add \"dry_run\": true, or drop \"at\"",
        ));
    }
    if let Some(t) = &r.scheduled_time {
        if t.is_empty() || t.len() > 64 {
            return Err(SuiteError::invalid(
                "scheduled_time",
                "must be 1-64 characters",
                "send the Scheduler's <aws.scheduler.scheduled-time>",
            ));
        }
    }
    Ok(r)
}

/// The EMF documents of one outcome (names documented in docs/worker-scaler.md; a test holds
/// them to it).
pub fn metric_documents(common: &CommonConfig, o: &Outcome) -> Vec<Emf> {
    let mut docs = vec![];
    let Some(snapshot) = &o.snapshot else {
        return docs;
    };
    for q in &snapshot.queues {
        let mut e = Emf::new(common).dimension("queue", &q.queue);
        e.metric("worker_backlog", q.backlog() as f64, Unit::Count)
            .metric("worker_jobs_started", q.started as f64, Unit::Count)
            .metric("worker_retries_total", q.retries as f64, Unit::Count)
            .metric(
                "worker_dead_letter_total",
                q.dead_letter as f64,
                Unit::Count,
            )
            .metric("workers_listening", q.workers as f64, Unit::Count);
        docs.push(e);
    }
    let mut e = Emf::new(common);
    e.metric(
        "worker_backlog_total",
        snapshot.backlog() as f64,
        Unit::Count,
    )
    .metric("workers_actual", snapshot.live_workers as f64, Unit::Count)
    .property("target", o.target.clone());
    if let Some(ts) = &o.target_state {
        e.metric("workers_desired", ts.desired as f64, Unit::Count)
            .metric("workers_running", ts.running as f64, Unit::Count);
    }
    if let Some(d) = &o.decision {
        let changed = o.status == Status::Scaled;
        e.metric(
            "worker_scaling_changes",
            if changed { 1.0 } else { 0.0 },
            Unit::Count,
        )
        .property("reason", json!(d.reason))
        .property("action", json!(d.action));
    }
    docs.push(e);
    docs
}

pub async fn handle<T: ScalingTarget>(
    deps: &Deps<T>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    shared::lambda::invoke(&deps.common, event, |event| handle_inner(deps, event)).await
}

async fn handle_inner<T: ScalingTarget>(
    deps: &Deps<T>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    let (payload, ctx) = event.into_parts();
    let req = parse_event(&payload, deps.common.environment == "local")?;
    let token = if ctx.request_id.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        format!("{}:{}", ctx.request_id, uuid::Uuid::new_v4())
    };
    let check = Check {
        check_id: req.scheduled_time.clone(),
        dry_run: req.dry_run,
        now: req.at.unwrap_or_else(Utc::now),
        token,
    };
    let outcome = run_check(&deps.settings, &deps.redis, &deps.target, &check).await?;
    log_outcome(&outcome);
    for d in metric_documents(&deps.common, &outcome) {
        d.emit();
    }
    serde_json::to_value(&outcome).map_err(|e| SuiteError::Internal(e.to_string()))
}

/// One `INFO` line per check: the decision and why.
pub fn log_outcome(o: &Outcome) {
    match (&o.decision, &o.snapshot) {
        (Some(d), Some(s)) => tracing::info!(
            status = ?o.status,
            target = %o.target,
            action = ?d.action,
            reason = ?d.reason,
            from = d.from,
            to = d.to,
            backlog = s.backlog(),
            consecutive_high = d.consecutive_high,
            in_window = d.in_window,
            cooldown_left_seconds = d.cooldown_left_seconds,
            live_workers = s.live_workers,
            evaluated_at = %o.evaluated_at.to_rfc3339(),
            "scaling decision"
        ),
        _ => {
            tracing::info!(status = ?o.status, target = %o.target, check_id = o.check_id.as_deref().unwrap_or(""), "check skipped")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Action, Decision, Reason};
    use crate::rq::{QueueStats, Snapshot};
    use crate::target::TargetState;

    fn common() -> CommonConfig {
        CommonConfig::from_vars(
            &Vars::from_pairs([("ENVIRONMENT", "prod"), ("REPORT_BUCKET", "r")]),
            "worker-scaler",
        )
        .unwrap()
    }

    fn outcome() -> Outcome {
        Outcome {
            status: Status::Scaled,
            target: "ecs:c/s".into(),
            check_id: None,
            evaluated_at: Utc::now(),
            decision: Some(Decision {
                action: Action::ScaleUp,
                reason: Reason::BacklogHigh,
                from: 2,
                to: 4,
                in_window: true,
                consecutive_high: 3,
                cooldown_left_seconds: 0,
            }),
            snapshot: Some(Snapshot {
                queues: vec![QueueStats {
                    queue: "default".into(),
                    queued: 150,
                    ..Default::default()
                }],
                live_workers: 2,
            }),
            target_state: Some(TargetState {
                desired: 4,
                running: 2,
                max: None,
            }),
        }
    }

    /// Every metric emitted is documented with its unit and dimensions in docs/worker-scaler.md.
    #[test]
    fn emitted_metrics_are_documented() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/worker-scaler.md"),
        )
        .expect("docs/worker-scaler.md");
        let c = common();
        let docs = metric_documents(&c, &outcome());
        let seen = shared::metrics::assert_documented(&doc, "docs/worker-scaler.md", &docs);
        for must in [
            "worker_backlog",
            "worker_retries_total",
            "worker_dead_letter_total",
            "workers_desired",
            "workers_actual",
        ] {
            assert!(seen.contains(must), "{must} emitted");
        }
    }

    fn parse_event_p(v: &Value) -> Result<Request, SuiteError> {
        parse_event(v, false)
    }

    #[test]
    fn payloads_parse() {
        assert!(
            parse_event(&json!({"at": "2026-11-01T21:00:00Z"}), true).is_ok(),
            "local demo"
        );
        let r =
            parse_event_p(&json!({"source": "schedule", "scheduled_time": "2026-11-01T21:05:00Z"}))
                .unwrap();
        assert_eq!(r.scheduled_time.as_deref(), Some("2026-11-01T21:05:00Z"));
        let r = parse_event_p(&json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-01T21:05:00Z", "detail": {}})).unwrap();
        assert_eq!(r.scheduled_time.as_deref(), Some("2026-11-01T21:05:00Z"));
        assert_eq!(parse_event_p(&Value::Null).unwrap(), Request::default());
        let e = parse_event_p(&json!({"at": "2026-11-01T21:00:00Z"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`at`") && e.contains("dry_run"), "{e}");
        let e = parse_event_p(&json!({"dryrun": true}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("dryrun"), "{e}");
        let e = parse_event_p(&json!({"at": "tonight", "dry_run": true}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("payload"), "{e}");
    }

    /// Every sample in events/worker-scaler/ parses.
    #[test]
    fn samples_parse() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/worker-scaler");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("events dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("json");
            parse_event_p(&v).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
        assert!(n >= 3, "found {n} samples");
    }
}
