//! The Lambda adapter: S3 events or a payload (sweep, reconcile, continuation) → job, the
//! deadline from the context, self-continuation of long sweeps, EMF metrics.

use std::time::{Duration, Instant};

use lambda_runtime::LambdaEvent;
use serde_json::{json, Value};
use shared::aws::{AwsClients, AwsSettings};
use shared::config::{CommonConfig, Vars};
use shared::events::{is_s3_event, parse_s3_event};
use shared::metrics::{Emf, Unit};
use shared::store::{ObjectStore, S3Store};
use shared::SuiteError;

use crate::port::{LifecyclePort, S3Lifecycle};
use crate::request::{parse_payload, Defaults, Job};
use crate::run::{Engine, EventResult, Outcome, ReconcileSummary, SweepSummary};
use crate::sequencer::Sequencer;

/// How a sweep that reaches its deadline goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuation {
    /// Invoke this function asynchronously with the `resume` payload (the default).
    Invoke,
    /// Return IN_PROGRESS with the `resume` payload; the caller invokes again.
    Return,
}

pub struct Deps<S: ObjectStore, P: LifecyclePort> {
    pub common: CommonConfig,
    pub defaults: Defaults,
    /// Listing, sequencer state, checkpoints and reports.
    pub store: S,
    /// Object tags and lifecycle configurations.
    pub port: P,
    pub lambda: Option<aws_sdk_lambda::Client>,
    pub continuation: Continuation,
    /// Checkpoint this long before the Lambda deadline.
    pub margin: Duration,
}

impl Deps<S3Store, S3Lifecycle> {
    /// Reads the configuration and builds the clients: once per cold start.
    pub async fn from_env() -> Result<Self, SuiteError> {
        let vars = Vars::from_process();
        let common = CommonConfig::from_vars(&vars, "lifecycle-enforcer")?;
        shared::telemetry::init(&common);
        let defaults = Defaults::from_vars(&vars)?;
        let continuation = match vars.or("CONTINUATION", "invoke").as_str() {
            "invoke" => Continuation::Invoke,
            "return" => Continuation::Return,
            other => {
                return Err(SuiteError::Config {
                    var: "CONTINUATION".into(),
                    problem: format!("{other:?} is not one of invoke, return"),
                })
            }
        };
        let clients = AwsClients::load(AwsSettings::from_vars(&vars)?).await;
        let s3 = clients.s3();
        Ok(Deps {
            common,
            defaults,
            store: S3Store::new(s3.clone()),
            port: S3Lifecycle::new(s3),
            lambda: (continuation == Continuation::Invoke).then(|| clients.lambda()),
            continuation,
            margin: Duration::from_secs(vars.parse_or(
                "CHECKPOINT_MARGIN_SECONDS",
                30u64,
                "seconds",
            )?),
        })
    }
}

// ---- metrics (names and units: docs/lifecycle-enforcer.md#metrics) -----------------------

pub fn event_metrics(common: &CommonConfig, results: &[EventResult]) -> Vec<Emf> {
    let n = |o: &[Outcome]| results.iter().filter(|r| o.contains(&r.outcome)).count() as f64;
    let mut emf = Emf::new(common);
    emf.metric(
        "lifecycle_objects_tagged",
        n(&[Outcome::Tagged]),
        Unit::Count,
    )
    .metric(
        "lifecycle_objects_untagged",
        n(&[Outcome::Untagged]),
        Unit::Count,
    )
    .metric(
        "lifecycle_exceptions_honoured",
        n(&[Outcome::ExceptionHonoured, Outcome::Untagged]),
        Unit::Count,
    )
    .metric(
        "lifecycle_objects_skipped",
        n(&[Outcome::Skipped]),
        Unit::Count,
    )
    .metric(
        "lifecycle_events_stale",
        n(&[Outcome::Duplicate, Outcome::Stale]),
        Unit::Count,
    )
    .property("trigger", "s3_event");
    vec![emf]
}

pub fn sweep_metrics(common: &CommonConfig, s: &SweepSummary) -> Vec<Emf> {
    let t = &s.totals;
    let mut emf = Emf::new(common);
    emf.metric("lifecycle_objects_scanned", t.scanned as f64, Unit::Count)
        .metric(
            "lifecycle_objects_out_of_policy",
            t.out_of_policy as f64,
            Unit::Count,
        )
        .metric("lifecycle_objects_tagged", t.tagged as f64, Unit::Count)
        .metric("lifecycle_objects_untagged", t.untagged as f64, Unit::Count)
        .metric(
            "lifecycle_exceptions_honoured",
            t.exceptions_honoured as f64,
            Unit::Count,
        )
        .metric("lifecycle_objects_skipped", t.skipped as f64, Unit::Count)
        .metric(
            "lifecycle_run_duration_seconds",
            s.duration_seconds,
            Unit::Seconds,
        )
        .property("trigger", "sweep")
        .property("run_id", s.run_id.clone())
        .property("status", s.status.clone())
        .property("dry_run", s.dry_run);
    vec![emf]
}

/// One document for the run, one per bucket (dimension `bucket`).
pub fn reconcile_metrics(common: &CommonConfig, s: &ReconcileSummary) -> Vec<Emf> {
    let mut emf = Emf::new(common);
    emf.metric("lifecycle_rule_drift", s.drift_rules as f64, Unit::Count)
        .metric(
            "lifecycle_rule_buckets_applied",
            s.buckets.iter().filter(|b| b.applied).count() as f64,
            Unit::Count,
        )
        .metric(
            "lifecycle_run_duration_seconds",
            s.duration_seconds,
            Unit::Seconds,
        )
        .property("trigger", "reconcile")
        .property("run_id", s.run_id.clone())
        .property("status", s.status.clone());
    let mut docs = vec![emf];
    for b in &s.buckets {
        let mut e = Emf::new(common).dimension("bucket", &b.bucket);
        e.metric("lifecycle_rule_drift", b.drift.len() as f64, Unit::Count)
            .property("run_id", s.run_id.clone())
            .property("status", b.status.clone());
        docs.push(e);
    }
    docs
}

// ---- the handler --------------------------------------------------------------------------

/// The handler `main` registers.
pub async fn handle<S: ObjectStore, P: LifecyclePort>(
    deps: &Deps<S, P>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    // The adapter boxes the sweep's future, which is deep enough to exceed the compiler's
    // layout depth limit otherwise.
    shared::lambda::invoke(&deps.common, event, |event| handle_inner(deps, event)).await
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, SuiteError> {
    serde_json::to_value(v).map_err(|e| SuiteError::Internal(e.to_string()))
}

/// The S3 event's objects with their validated sequencers.
pub fn objects_of(
    event: &Value,
) -> Result<Vec<(shared::events::S3ObjectRef, Option<Sequencer>)>, SuiteError> {
    let eventbridge = event.get("source").and_then(Value::as_str) == Some("aws.s3");
    parse_s3_event(event)?
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let seq = match o.sequencer.as_deref() {
                None => None,
                Some(raw) => Some(Sequencer::parse(raw).map_err(|e| {
                    SuiteError::invalid(
                        if eventbridge {
                            "detail.object.sequencer".to_string()
                        } else {
                            format!("Records[{i}].s3.object.sequencer")
                        },
                        e.to_string(),
                        "send the event as S3 delivered it (the sequencer is a hex string)",
                    )
                })?),
            };
            Ok((o, seq))
        })
        .collect()
}

async fn handle_inner<S: ObjectStore, P: LifecyclePort>(
    deps: &Deps<S, P>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    let started = Instant::now();
    let (payload, ctx) = event.into_parts();
    let engine = Engine {
        store: &deps.store,
        port: &deps.port,
        common: &deps.common,
    };
    if is_s3_event(&payload) {
        let objects = objects_of(&payload)?;
        let results = engine
            .handle_events(
                &deps.defaults.policy,
                &deps.defaults.managed_buckets(),
                objects,
            )
            .await?;
        if !results.is_empty() {
            for d in event_metrics(&deps.common, &results) {
                d.emit();
            }
        }
        tracing::info!(records = results.len(), outcomes = ?results.iter().map(|r| r.outcome).collect::<Vec<_>>(), "S3 event handled");
        return Ok(json!({"action": "event", "results": results}));
    }

    let p = parse_payload(&payload)?;
    let max_runtime = p.max_runtime_seconds;
    let job = p.validate(&deps.defaults, chrono::Utc::now())?;
    let (sweep_job, resume_of) = match job {
        Job::Reconcile(req) => {
            tracing::info!(run_id = %req.run_id, buckets = ?req.buckets, apply = req.apply, "rule reconciliation starting");
            let s = engine.reconcile(&req).await?;
            for d in reconcile_metrics(&deps.common, &s) {
                d.emit();
            }
            tracing::info!(run_id = %s.run_id, status = %s.status, drift_rules = s.drift_rules, "rule reconciliation done");
            return to_value(&s);
        }
        Job::Sweep(req) => (Ok(*req), None),
        Job::Resume(r) => (Err(r.clone()), Some(r)),
    };

    // Stop early enough to write the checkpoint before Lambda ends the invocation; the
    // margin is capped at a fifth of the time left, so short timeouts still make progress.
    let left = shared::telemetry::time_left(ctx.deadline, chrono::Utc::now().timestamp_millis());
    let mut budget = left.saturating_sub(deps.margin.min(left / 5));
    if let Some(max) = max_runtime {
        budget = budget.min(Duration::from_secs(max));
    }
    tracing::info!(
        deadline_ms = ctx.deadline,
        time_left_ms = left.as_millis() as u64,
        budget_ms = budget.as_millis() as u64,
        resume = ?resume_of,
        "sweep starting"
    );
    let s = engine.sweep(sweep_job, started + budget).await?;
    if let (Some(resume), Continuation::Invoke) = (&s.resume, deps.continuation) {
        if let Some(lambda) = &deps.lambda {
            let body = serde_json::to_vec(&json!({ "resume": resume }))
                .map_err(|e| SuiteError::Internal(e.to_string()))?;
            lambda
                .invoke()
                .function_name(&deps.common.function_name)
                .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
                .payload(aws_sdk_lambda::primitives::Blob::new(body))
                .send()
                .await
                .map_err(|e| shared::error::aws_error("lambda", "Invoke", e))?;
            tracing::info!(run_id = %resume.run_id, sequence = resume.sequence, "checkpointed; continuation invoked");
        }
    }
    if s.status != "IN_PROGRESS" && !s.replayed {
        for d in sweep_metrics(&deps.common, &s) {
            d.emit();
        }
    }
    tracing::info!(run_id = %s.run_id, status = %s.status, scanned = s.totals.scanned, out_of_policy = s.totals.out_of_policy, replayed = s.replayed, "sweep step done");
    to_value(&s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Policy, PolicyDoc};
    use crate::rules::{DriftKind, RuleDrift};
    use crate::run::{BucketReconcile, Counts};

    fn common() -> CommonConfig {
        CommonConfig::from_vars(
            &Vars::from_pairs([("ENVIRONMENT", "prod"), ("REPORT_BUCKET", "r")]),
            "lifecycle-enforcer",
        )
        .unwrap()
    }

    /// The metric names are a contract: every one emitted is documented in
    /// docs/lifecycle-enforcer.md, with its unit.
    #[test]
    fn emitted_metrics_are_documented() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../docs/lifecycle-enforcer.md"),
        )
        .expect("docs/lifecycle-enforcer.md");
        let c = common();
        let results = vec![EventResult {
            bucket: "b".into(),
            key: "attachments/a".into(),
            event: "ObjectCreated:Put".into(),
            sequencer: None,
            outcome: Outcome::Tagged,
            rule: None,
            reason: String::new(),
            tags: None,
        }];
        let sweep = SweepSummary {
            status: "FIXED".into(),
            action: "sweep".into(),
            run_id: "r".into(),
            dry_run: false,
            buckets: vec!["b".into()],
            started_at: String::new(),
            finished_at: None,
            duration_seconds: 1.5,
            invocations: 1,
            totals: Counts::default(),
            scopes: vec![],
            changes: vec![],
            changes_complete: true,
            warnings: vec![],
            report: None,
            resume: None,
            replayed: false,
            scheduled_time: None,
        };
        let policy = Policy::validate(PolicyDoc::playbook()).unwrap();
        let rec = ReconcileSummary {
            status: "DRIFT".into(),
            action: "reconcile".into(),
            run_id: "r".into(),
            apply: false,
            policy: policy.doc().clone(),
            desired_rules: policy.render(),
            buckets: vec![BucketReconcile {
                bucket: "b".into(),
                status: "DRIFT".into(),
                drift: vec![RuleDrift {
                    id: "x".into(),
                    kind: DriftKind::Missing,
                    details: vec![],
                }],
                in_sync: vec![],
                foreign_kept: vec![],
                warnings: vec![],
                applied: false,
            }],
            drift_rules: 1,
            started_at: String::new(),
            duration_seconds: 0.2,
            report: None,
            scheduled_time: None,
        };
        let docs: Vec<Emf> = event_metrics(&c, &results)
            .into_iter()
            .chain(sweep_metrics(&c, &sweep))
            .chain(reconcile_metrics(&c, &rec))
            .collect();
        // function_errors, emitted by every failed invocation, is checked with the others.
        let seen = shared::metrics::assert_documented(&doc, "docs/lifecycle-enforcer.md", &docs);
        assert!(
            seen.names.len() >= 11,
            "ten or more, and function_errors: {seen:?}"
        );
    }

    #[test]
    fn bad_sequencer_names_the_field() {
        let e = objects_of(&json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "k", "sequencer": "xyz"}}}]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Records[0].s3.object.sequencer"), "{e}");
    }
}

/// Every sample in events/lifecycle-enforcer/ is accepted by the parser it is meant for.
#[cfg(test)]
mod sample_events {
    use super::*;

    #[test]
    fn samples_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events/lifecycle-enforcer");
        let defaults = Defaults::from_vars(&Vars::from_pairs([
            ("PRIMARY_BUCKET", "playbook-primary"),
            ("REPLICA_BUCKET", "playbook-dr"),
        ]))
        .expect("defaults");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("events dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let v: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
            if is_s3_event(&v) {
                let objs = objects_of(&v).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(!objs.is_empty(), "{}", path.display());
                for (o, seq) in &objs {
                    assert!(
                        crate::run::event_kind(&o.event_name).is_some(),
                        "{}",
                        path.display()
                    );
                    assert!(seq.is_some(), "{}: no sequencer", path.display());
                    assert!(
                        defaults.policy.rule_for(&o.key).is_some(),
                        "{}: key {:?} under no rule",
                        path.display(),
                        o.key
                    );
                }
            } else {
                parse_payload(&v)
                    .and_then(|p| p.validate(&defaults, chrono::Utc::now()))
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            names.push(
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string(),
            );
        }
        names.sort();
        assert!(
            names.len() >= 4,
            "expected the sample events, found {names:?}"
        );
    }

    /// The URL-encoded sample key decodes to the key S3 stores.
    #[test]
    fn the_created_sample_key_is_decoded() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events/lifecycle-enforcer/s3-object-created.json");
        let v: Value = serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
        let objs = objects_of(&v).expect("event");
        assert_eq!(objs[0].0.key, "attachments/2026/11/scan 7+8 é.pdf");
    }
}
