//! The Lambda adapter: event → job → the engine, and the response.

use std::time::{Duration, Instant};

use lambda_runtime::LambdaEvent;
use serde_json::{json, Value};
use shared::aws::{AwsClients, AwsSettings};
use shared::config::{CommonConfig, Vars};
use shared::SuiteError;

use crate::config::Settings;
use crate::db::{Postgres, RestoredDb};
use crate::event::{parse_event, Job};
use crate::port::{AwsRds, AwsSecrets, Params, Rds, S3State, SecretSource, SsmParams, StateStore};
use crate::run::Engine;

pub struct Deps<R, S, D, K, P> {
    pub common: CommonConfig,
    pub settings: Settings,
    pub rds: R,
    pub store: S,
    pub db: D,
    pub secrets: K,
    pub params: P,
}

pub type AwsDeps = Deps<AwsRds, S3State, Postgres, AwsSecrets, SsmParams>;

impl AwsDeps {
    /// Reads the configuration and builds the clients: once per cold start.
    pub async fn from_env() -> Result<Self, SuiteError> {
        let vars = Vars::from_process();
        let common = CommonConfig::from_vars(&vars, "dr-restore")?;
        shared::telemetry::init(&common);
        Self::from_vars(&vars, common).await
    }

    pub async fn from_vars(vars: &Vars, common: CommonConfig) -> Result<Self, SuiteError> {
        let settings = Settings::from_vars(vars, &common.environment)?;
        let clients = AwsClients::load(AwsSettings::from_vars(vars)?).await;
        let bucket = settings
            .state_bucket
            .clone()
            .unwrap_or_else(|| common.report_bucket.clone());
        Ok(Deps {
            rds: AwsRds::new(aws_sdk_rds::Client::new(&clients.sdk)),
            store: S3State::new(clients.s3(), bucket),
            db: Postgres,
            secrets: AwsSecrets::new(aws_sdk_secretsmanager::Client::new(&clients.sdk)),
            params: SsmParams::new(aws_sdk_ssm::Client::new(&clients.sdk)),
            common,
            settings,
        })
    }
}

impl<R: Rds, S: StateStore, D: RestoredDb, K: SecretSource, P: Params> Deps<R, S, D, K, P> {
    pub fn engine(&self) -> Engine<'_, R, S, D, K, P> {
        Engine {
            rds: &self.rds,
            store: &self.store,
            db: &self.db,
            secrets: &self.secrets,
            params: &self.params,
            settings: &self.settings,
            common: &self.common,
        }
    }
}

/// The handler `main` registers.
pub async fn handle<R: Rds, S: StateStore, D: RestoredDb, K: SecretSource, P: Params>(
    deps: &Deps<R, S, D, K, P>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    shared::lambda::invoke(&deps.common, event, |event| async move {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let left = shared::telemetry::time_left(event.context.deadline, now_ms);
        run_job(deps, &event.payload, Instant::now() + left).await
    })
    .await
}

/// Runs one job until `deadline` (minus the engine's margin).
pub async fn run_job<R: Rds, S: StateStore, D: RestoredDb, K: SecretSource, P: Params>(
    deps: &Deps<R, S, D, K, P>,
    payload: &Value,
    deadline: Instant,
) -> Result<Value, SuiteError> {
    let engine = deps.engine();
    let now = chrono::Utc::now();
    match parse_event(payload)? {
        Job::Ignore(why) => {
            tracing::info!(reason = %why, "event ignored");
            Ok(json!({"status": "IGNORED", "reason": why}))
        }
        Job::Start(req) => Ok(to_json(&engine.start(&req, now, deadline).await?)),
        Job::Step(id) => Ok(to_json(&engine.advance(&id, deadline).await?)),
        Job::Rds(ev) => Ok(to_json(&engine.on_event(&ev, deadline).await?)),
        Job::Poll => {
            let drills = engine.poll(deadline).await?;
            Ok(json!({"status": "POLLED", "drills": drills}))
        }
        Job::Status(id) => match engine.status(&id).await? {
            Some(s) => {
                Ok(json!({"status": "FOUND", "drill": s, "timings": crate::drill::timings(&s)}))
            }
            None => Ok(json!({"status": "NOT_FOUND", "drill_id": id})),
        },
        Job::Failover(req) => engine.failover(&req, now).await,
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or_default()
}

/// Deadline for runs outside Lambda (tests, tools).
pub fn deadline_in(d: Duration) -> Instant {
    Instant::now() + d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{CheckResult, RpoMeasurement, RpoVerdict, Verification};
    use crate::drill::{new_drill, Mode, Phase, StartSpec};
    use crate::report::FailoverRecord;
    use crate::run::{drill_metric_documents, failover_metric_documents};
    use shared::metrics::Emf;

    fn common() -> CommonConfig {
        CommonConfig::from_vars(
            &Vars::from_pairs([("ENVIRONMENT", "prod"), ("REPORT_BUCKET", "r")]),
            "dr-restore",
        )
        .unwrap()
    }

    fn documents() -> Vec<Emf> {
        let now = chrono::Utc::now();
        let mut s = new_drill(
            &StartSpec {
                drill_id: "q4".into(),
                mode: Mode::Instance,
                source: "app".into(),
                instance_id: "dr-drill-q4".into(),
                cluster_id: None,
                restore_time: None,
                keep: false,
                triggered_by: "t".into(),
            },
            now,
        );
        s.restore_requested_at = Some(now);
        s.available_at = Some(now + chrono::Duration::minutes(20));
        s.finished_at = Some(now + chrono::Duration::minutes(30));
        s.phase = Phase::Done;
        let rpo = RpoMeasurement {
            reference_time: now,
            target_time: Some(now),
            recovery_point_age_seconds: Some(100.0),
            newest_write: Some(now),
            newest_write_column: Some("t.c".into()),
            rpo_seconds: Some(120.0),
            objective_seconds: 300.0,
            tolerance_seconds: 120.0,
            verdict: RpoVerdict::Met,
            detail: String::new(),
        };
        s.verification = Some(Verification {
            passed: true,
            checks: vec![CheckResult {
                name: "x".into(),
                kind: "rpo".into(),
                passed: true,
                detail: String::new(),
                duration_ms: 1.0,
            }],
            rpo: Some(rpo.clone()),
            ..Default::default()
        });
        let c = common();
        let mut docs = drill_metric_documents(&c, &s);
        let f = FailoverRecord {
            rehearsal_id: "r".into(),
            success: true,
            environment: "prod".into(),
            deployment: "d".into(),
            triggered_by: "t".into(),
            target: "replica".into(),
            plan: vec![],
            started_at: now,
            finished_at: Some(now),
            failover_seconds: Some(40.0),
            steps: vec![],
            smoke: vec![],
            data_currency: s.verification.clone(),
            failures: vec![],
        };
        docs.extend(failover_metric_documents(&c, &f));
        docs
    }

    /// The metric names are a contract: every one emitted is documented with its unit and
    /// dimensions in docs/dr-restore.md.
    #[test]
    fn emitted_metrics_are_documented() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dr-restore.md"),
        )
        .expect("docs/dr-restore.md");
        let seen = shared::metrics::assert_documented(&doc, "docs/dr-restore.md", &documents());
        for must in [
            "dr_restore_duration_seconds",
            "dr_rpo_seconds",
            "dr_drill_success",
            "dr_failover_duration_seconds",
        ] {
            assert!(seen.contains(must), "{must} emitted: {seen:?}");
        }
    }

    /// Every sample in events/dr-restore/ parses into the job its name says.
    #[test]
    fn samples_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/dr-restore");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("events dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let v: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
            let job = parse_event(&v).unwrap_or_else(|e| panic!("{name}: {e}"));
            let ok = match &job {
                Job::Start(_) => name.starts_with("start"),
                Job::Poll => name.starts_with("poll"),
                Job::Step(_) => name.starts_with("step"),
                Job::Status(_) => name.starts_with("status"),
                Job::Failover(f) => {
                    name.starts_with("failover") && (f.dry_run == name.contains("dry-run"))
                }
                Job::Rds(e) => {
                    name.starts_with("rds-")
                        && e.source_identifier.starts_with("dr-drill-")
                            != name.contains("other-instance")
                }
                Job::Ignore(_) => name.contains("ignored"),
            };
            assert!(ok, "{name} parsed as {job:?}");
            n += 1;
        }
        assert!(n >= 8, "expected the sample events, found {n}");
    }
}
