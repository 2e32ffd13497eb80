//! The Lambda adapter: event → request → the engine, EMF metrics, the response.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::Value;
use shared::aws::{AwsClients, AwsSettings};
use shared::config::{CommonConfig, Vars};
use shared::metrics::{Emf, Unit};
use shared::store::{ObjectStore, S3Store};
use shared::SuiteError;

use crate::config::{RegistrySource, Settings, EMBEDDED_REGISTRY};
use crate::journal::Outcome;
use crate::port::{AwsChaos, ChaosPort};
use crate::registry::Registry;
use crate::run::{date_of, Engine, Request, RunSummary};

pub struct Deps<P: ChaosPort, S: ObjectStore> {
    pub common: CommonConfig,
    pub settings: Settings,
    pub registry: Registry,
    pub port: P,
    pub store: S,
}

impl Deps<AwsChaos, S3Store> {
    /// Reads the configuration and the registry, builds the clients: once per cold start.
    pub async fn from_env() -> Result<Self, SuiteError> {
        let vars = Vars::from_process();
        let common = CommonConfig::from_vars(&vars, "chaos-runner")?;
        shared::telemetry::init(&common);
        let settings = Settings::from_vars(&vars)?;
        let clients = AwsClients::load(AwsSettings::from_vars(&vars)?).await;
        let store = S3Store::new(clients.s3());
        let registry =
            load_registry(&settings.registry_source, &store, &common.environment).await?;
        Ok(Deps {
            common,
            settings,
            registry,
            port: AwsChaos::new(&clients.sdk)?,
            store,
        })
    }
}

/// The registry from where `CHAOS_EXPERIMENTS` says, with `${environment}` in its metric
/// namespaces and dimension values replaced by `environment` (the function's ENVIRONMENT); a
/// bad file fails the cold start with the field at fault.
pub async fn load_registry<S: ObjectStore>(
    source: &RegistrySource,
    store: &S,
    environment: &str,
) -> Result<Registry, SuiteError> {
    let (text, origin) = match source {
        RegistrySource::Embedded => (
            EMBEDDED_REGISTRY.to_string(),
            "the embedded registry".to_string(),
        ),
        RegistrySource::File(p) => (
            std::fs::read_to_string(p).map_err(|e| SuiteError::Config {
                var: "CHAOS_EXPERIMENTS".into(),
                problem: format!("cannot read {p}: {e}"),
            })?,
            p.clone(),
        ),
        RegistrySource::S3 { bucket, key } => {
            let bytes = store
                .get_bytes(bucket, key)
                .await?
                .ok_or_else(|| SuiteError::Config {
                    var: "CHAOS_EXPERIMENTS".into(),
                    problem: format!("s3://{bucket}/{key} does not exist"),
                })?;
            (
                String::from_utf8_lossy(&bytes).into_owned(),
                format!("s3://{bucket}/{key}"),
            )
        }
    };
    Registry::parse_for(&text, environment).map_err(|e| SuiteError::Config {
        var: "CHAOS_EXPERIMENTS".into(),
        problem: format!("{origin}: field `{}`: {}", e.field, e.problem),
    })
}

/// Manual and Scheduler payloads (EventBridge `Scheduled Event`s are recognised first).
#[derive(Debug, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// `run`, `resume`, `stop`; absent with `source: scheduler`.
    pub action: Option<String>,
    pub source: Option<String>,
    /// RFC 3339; the UTC date the calendar is judged on (Scheduler's `<aws.scheduler.scheduled-time>`).
    pub scheduled_time: Option<String>,
    pub experiment: Option<String>,
    /// `YYYY-MM-DD` (manual runs; default today in UTC).
    pub date: Option<NaiveDate>,
    #[serde(default)]
    pub force: bool,
    pub dry_run: Option<bool>,
    pub run_id: Option<String>,
    pub reason: Option<String>,
    pub error_budget_remaining_percent: Option<f64>,
}

const FIX: &str = "send {\"source\": \"scheduler\", \"scheduled_time\": \"...\"}, {\"action\": \"run\", \"experiment\": \"rq-queue\", \"force\": true, \"dry_run\": true}, {\"action\": \"resume\"} or {\"action\": \"stop\", \"run_id\": \"...\"}";

pub fn parse_event(v: &Value, today: NaiveDate) -> Result<Request, SuiteError> {
    // EventBridge rule schedules send the whole event; only its time matters.
    if v.get("source").and_then(Value::as_str) == Some("aws.events") {
        let date = v
            .get("time")
            .and_then(Value::as_str)
            .and_then(date_of)
            .unwrap_or(today);
        return Ok(Request::Scheduled { date });
    }
    if !v.is_object() {
        return Err(SuiteError::invalid("payload", "is not a JSON object", FIX));
    }
    let p: Payload = serde_path_to_error::deserialize(v.clone()).map_err(|e| {
        let path = e.path().to_string();
        SuiteError::invalid(
            if path == "." {
                "payload".to_string()
            } else {
                path
            },
            e.into_inner().to_string(),
            FIX,
        )
    })?;
    let scheduled_date = match &p.scheduled_time {
        Some(t) => Some(date_of(t).ok_or_else(|| {
            SuiteError::invalid(
                "scheduled_time",
                format!("{t:?} is not an RFC 3339 time"),
                "send e.g. 2026-11-06T10:00:00Z",
            )
        })?),
        None => None,
    };
    if let Some(pct) = p.error_budget_remaining_percent {
        if !(0.0..=100.0).contains(&pct) {
            return Err(SuiteError::invalid(
                "error_budget_remaining_percent",
                format!("{pct} is not 0-100"),
                "send a percentage",
            ));
        }
    }
    match (p.action.as_deref(), p.source.as_deref()) {
        (None, Some("scheduler")) => Ok(Request::Scheduled {
            date: scheduled_date.unwrap_or(today),
        }),
        (Some("run"), _) => Ok(Request::Run {
            experiment: p.experiment.ok_or_else(|| {
                SuiteError::invalid(
                    "experiment",
                    "missing",
                    "name a registered experiment, e.g. \"rq-queue\"",
                )
            })?,
            date: p.date.or(scheduled_date).unwrap_or(today),
            force: p.force,
            dry_run: p.dry_run,
            run_id: p.run_id,
            error_budget_remaining_percent: p.error_budget_remaining_percent,
        }),
        (Some("resume"), _) => Ok(Request::Resume { run_id: p.run_id }),
        (Some("stop"), _) => Ok(Request::Stop {
            run_id: p
                .run_id
                .ok_or_else(|| SuiteError::invalid("run_id", "missing", "name the run to stop"))?,
            reason: p.reason.unwrap_or_else(|| "manual stop request".into()),
        }),
        (Some(other), _) => Err(SuiteError::invalid(
            "action",
            format!("{other:?} is not run, resume or stop"),
            FIX,
        )),
        (None, _) => Err(SuiteError::invalid("action", "missing", FIX)),
    }
}

/// The EMF documents for one run summary. Names, units and dimensions are documented in
/// docs/chaos-runner.md (a test holds them to it).
pub fn metric_documents(common: &CommonConfig, s: &RunSummary) -> Vec<Emf> {
    let mode = if s.dry_run { "dry_run" } else { "live" };
    if s.repeated {
        let mut e = Emf::new(common).dimension("experiment", &s.experiment);
        e.metric("chaos_repeated_requests", 1.0, Unit::Count)
            .property("run_id", s.run_id.clone());
        return vec![e];
    }
    let mut docs = vec![];
    if s.outcome == Outcome::InProgress {
        let mut e = Emf::new(common).dimension("experiment", &s.experiment);
        e.metric("chaos_runs_in_progress", 1.0, Unit::Count)
            .metric(
                "chaos_steady_state_during_misses",
                s.during_deviations as f64,
                Unit::Count,
            )
            .property("run_id", s.run_id.clone())
            .property(
                "fis_status",
                s.fis_states.last().cloned().unwrap_or_default(),
            );
        docs.push(e);
        return docs;
    }
    let mut e = Emf::new(common)
        .dimension("experiment", &s.experiment)
        .dimension("outcome", s.outcome.as_str())
        .dimension("mode", mode);
    e.metric("chaos_runs_finished", 1.0, Unit::Count)
        .property("run_id", s.run_id.clone())
        .property("owner", s.owner.clone());
    docs.push(e);
    if let Some(reason) = &s.refusal {
        let mut r = Emf::new(common)
            .dimension("experiment", &s.experiment)
            .dimension("reason", reason);
        let name = if s.outcome == Outcome::Skipped {
            "chaos_runs_skipped"
        } else {
            "chaos_runs_refused"
        };
        r.metric(name, 1.0, Unit::Count)
            .property("run_id", s.run_id.clone());
        docs.push(r);
    }
    if s.fis_experiment_id.is_some() {
        let mut d = Emf::new(common)
            .dimension("experiment", &s.experiment)
            .dimension("mode", mode);
        d.metric(
            "chaos_steady_state_deviated",
            if s.deviated { 1.0 } else { 0.0 },
            Unit::Count,
        )
        .metric(
            "chaos_steady_state_during_misses",
            s.during_deviations as f64,
            Unit::Count,
        );
        if let Some(secs) = s.duration_seconds {
            d.metric("chaos_run_duration_seconds", secs, Unit::Seconds);
        }
        d.property("run_id", s.run_id.clone());
        docs.push(d);
    }
    docs
}

/// The handler `main` registers.
pub async fn handle<P: ChaosPort, S: ObjectStore>(
    deps: &Deps<P, S>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    shared::lambda::invoke(&deps.common, event, |event| handle_inner(deps, event)).await
}

async fn handle_inner<P: ChaosPort, S: ObjectStore>(
    deps: &Deps<P, S>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    let (payload, ctx) = event.into_parts();
    let now = Utc::now();
    let request = parse_event(&payload, now.date_naive())?;
    let left: Duration = shared::telemetry::time_left(ctx.deadline, now.timestamp_millis());
    let deadline = Instant::now() + left;
    tracing::info!(request = ?request, time_left_ms = left.as_millis() as u64, "chaos-runner invoked");
    let engine = Engine {
        port: &deps.port,
        store: &deps.store,
        registry: &deps.registry,
        settings: &deps.settings,
        common: &deps.common,
    };
    let response = engine.handle(request, &ctx.request_id, deadline).await?;
    for s in &response.runs {
        for d in metric_documents(&deps.common, s) {
            d.emit();
        }
    }
    serde_json::to_value(&response).map_err(|e| SuiteError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn common() -> CommonConfig {
        CommonConfig::from_vars(
            &Vars::from_pairs([("ENVIRONMENT", "staging"), ("REPORT_BUCKET", "r")]),
            "chaos-runner",
        )
        .unwrap()
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
    }

    #[test]
    fn events_parse() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            parse_event(
                &json!({"source": "scheduler", "scheduled_time": "2026-11-06T10:00:00Z"}),
                today()
            )
            .unwrap(),
            Request::Scheduled {
                date: d("2026-11-06")
            }
        );
        assert_eq!(
            parse_event(&json!({"source": "aws.events", "detail-type": "Scheduled Event", "time": "2027-01-01T09:00:00Z", "detail": {}}), today()).unwrap(),
            Request::Scheduled { date: d("2027-01-01") }
        );
        assert!(matches!(
            parse_event(
                &json!({"action": "run", "experiment": "rq-queue", "force": true, "dry_run": true}),
                today()
            )
            .unwrap(),
            Request::Run {
                force: true,
                dry_run: Some(true),
                ..
            }
        ));
        assert_eq!(
            parse_event(&json!({"action": "stop", "run_id": "x"}), today()).unwrap(),
            Request::Stop {
                run_id: "x".into(),
                reason: "manual stop request".into()
            }
        );
        for (bad, field) in [
            (json!({"action": "run"}), "experiment"),
            (
                json!({"action": "run", "experiment": "x", "force": "yes"}),
                "force",
            ),
            (
                json!({"action": "run", "experiment": "x", "date": "Friday"}),
                "date",
            ),
            (json!({"action": "explode"}), "action"),
            (json!({"action": "run", "experimnt": "x"}), "experimnt"),
            (json!({"action": "stop"}), "run_id"),
            (
                json!({"source": "scheduler", "scheduled_time": "soon"}),
                "scheduled_time",
            ),
            (
                json!({"action": "run", "experiment": "x", "error_budget_remaining_percent": 140}),
                "error_budget_remaining_percent",
            ),
            (json!([1, 2]), "payload"),
        ] {
            let e = parse_event(&bad, today()).unwrap_err().to_string();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }

    /// Every sample in events/chaos-runner/ parses (the registry file as a registry, the others
    /// as events).
    #[test]
    fn samples_parse() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/chaos-runner");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("events dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("experiments") {
                Registry::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            } else {
                let v: Value = serde_json::from_str(&text).expect("json");
                parse_event(&v, today()).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            n += 1;
        }
        assert!(n >= 6, "expected the samples, found {n}");
    }

    /// The cold start substitutes the function's ENVIRONMENT, and a bad placeholder fails it
    /// with the origin, the field and the fix.
    #[tokio::test]
    async fn the_loaded_registry_is_the_environments() {
        // Never called: the embedded and file sources do not read S3.
        let store = S3Store::new(aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .build(),
        ));
        let r = load_registry(&RegistrySource::Embedded, &store, "prod")
            .await
            .unwrap();
        let q = r.experiments[0].steady_state[1].metric.as_ref().unwrap();
        assert_eq!(q.dimensions["function"], "worker-scaler-prod");
        assert_eq!(q.dimensions["environment"], "prod");

        let mut v: Value = serde_json::from_str(EMBEDDED_REGISTRY).unwrap();
        v["experiments"][0]["steady_state"][1]["metric"]["dimensions"]["function"] =
            "worker-scaler-${stage}".into();
        let path = std::env::temp_dir().join(format!(
            "chaos-runner-placeholder-{}.json",
            std::process::id()
        ));
        std::fs::write(&path, v.to_string()).unwrap();
        let p = path.to_string_lossy().to_string();
        let e = load_registry(&RegistrySource::File(p.clone()), &store, "staging")
            .await
            .unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(matches!(e, SuiteError::Config { .. }), "{e:?}");
        let msg = e.to_string();
        for part in [
            "CHAOS_EXPERIMENTS",
            p.as_str(),
            "field `experiments[0].steady_state[1].metric.dimensions.function`",
            "unknown placeholder `${stage}`",
            "use ${environment}",
        ] {
            assert!(msg.contains(part), "{part:?} in {msg}");
        }
    }

    fn summary(outcome: Outcome) -> RunSummary {
        RunSummary {
            run_id: "rq-queue-20261106".into(),
            experiment: "rq-queue".into(),
            outcome,
            status: outcome.ctk_status().into(),
            deviated: outcome == Outcome::Deviated,
            dry_run: false,
            owner: "a".into(),
            refusal: matches!(outcome, Outcome::Refused | Outcome::Skipped)
                .then(|| "production".to_string()),
            detail: None,
            fis_experiment_id: (!matches!(outcome, Outcome::Refused | Outcome::Skipped))
                .then(|| "EXP1".into()),
            fis_states: vec!["running".into()],
            steady_state_before: Some(true),
            steady_state_after: None,
            during_checks: 1,
            during_deviations: 0,
            duration_seconds: Some(12.0),
            journal: "s3://r/x".into(),
            postmortem: None,
            repeated: false,
        }
    }

    /// The metric names are a contract: every one emitted is documented with its unit and
    /// dimensions in docs/chaos-runner.md.
    #[test]
    fn emitted_metrics_are_documented() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/chaos-runner.md"),
        )
        .expect("docs/chaos-runner.md");
        let c = common();
        let mut docs = vec![];
        for o in [
            Outcome::InProgress,
            Outcome::HypothesisHeld,
            Outcome::Deviated,
            Outcome::SteadyStateNotMet,
            Outcome::Stopped,
            Outcome::ExperimentFailed,
            Outcome::Refused,
            Outcome::Skipped,
        ] {
            docs.extend(metric_documents(&c, &summary(o)));
        }
        let mut rep = summary(Outcome::HypothesisHeld);
        rep.repeated = true;
        docs.extend(metric_documents(&c, &rep));
        let seen = shared::metrics::assert_documented(&doc, "docs/chaos-runner.md", &docs);
        for must in [
            "chaos_runs_finished",
            "chaos_runs_refused",
            "chaos_runs_skipped",
            "chaos_runs_in_progress",
            "chaos_steady_state_deviated",
            "function_errors",
        ] {
            assert!(seen.contains(must), "{must} emitted");
        }
    }
}
