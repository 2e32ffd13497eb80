//! The Lambda adapter: turns the event into a job, runs it with the deadline from the
//! context, continues long runs, and publishes EMF metrics.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lambda_runtime::LambdaEvent;
use serde_json::{json, Value};
use shared::aws::{AwsClients, AwsSettings};
use shared::config::{CommonConfig, Vars};
use shared::events::{is_s3_event, parse_s3_event};
use shared::metrics::{Emf, Unit};
use shared::store::{ObjectStore, S3Store};
use shared::SuiteError;

use crate::request::{Defaults, InventorySource, Payload, S3Location, Source};
use crate::run::{Engine, Job};
use crate::summary::Summary;

/// How a run that reaches its deadline goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuation {
    /// Invoke this function asynchronously with the `resume` payload (the default).
    Invoke,
    /// Return IN_PROGRESS with the `resume` payload; the caller invokes again.
    Return,
}

pub struct Deps<S: ObjectStore> {
    pub common: CommonConfig,
    pub defaults: Defaults,
    pub store: S,
    pub lambda: Option<aws_sdk_lambda::Client>,
    pub continuation: Continuation,
    /// Checkpoint this long before the Lambda deadline.
    pub margin: Duration,
    pub scratch: PathBuf,
    pub sort_budget_bytes: usize,
}

impl Deps<S3Store> {
    /// Reads the configuration and builds the clients: once per cold start.
    pub async fn from_env() -> Result<Self, SuiteError> {
        let vars = Vars::from_process();
        let common = CommonConfig::from_vars(&vars, "manifest-diff")?;
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
        Ok(Deps {
            common,
            defaults,
            store: S3Store::new(clients.s3()),
            lambda: (continuation == Continuation::Invoke).then(|| clients.lambda()),
            continuation,
            margin: Duration::from_secs(vars.parse_or(
                "CHECKPOINT_MARGIN_SECONDS",
                30u64,
                "seconds",
            )?),
            scratch: PathBuf::from(vars.or("SCRATCH_DIR", "/tmp")),
            sort_budget_bytes: vars.parse_or::<usize>("SORT_MEMORY_MB", 96, "megabytes")? << 20,
        })
    }
}

/// Builds the job for an S3 event on an inventory's `manifest.checksum`: the report it
/// completes is one side; the other side's newest report comes from configuration.
async fn job_from_s3_event<S: ObjectStore>(
    deps: &Deps<S>,
    event: &Value,
) -> Result<Option<Payload>, SuiteError> {
    let objects = parse_s3_event(event)?;
    let Some(obj) = objects
        .into_iter()
        .find(|o| o.key.ends_with("manifest.checksum"))
    else {
        return Ok(None);
    };
    let manifest_key = obj.key.trim_end_matches("manifest.checksum").to_string() + "manifest.json";
    let body = deps
        .store
        .get_bytes(&obj.bucket, &manifest_key)
        .await?
        .ok_or_else(|| {
            SuiteError::bad_object(
                &obj.bucket,
                &manifest_key,
                "manifest.checksum arrived but manifest.json is missing",
            )
        })?;
    let source_bucket = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("sourceBucket")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .ok_or_else(|| {
            SuiteError::bad_object(
                &obj.bucket,
                &manifest_key,
                "not JSON with a sourceBucket field",
            )
        })?;
    let uri = S3Location {
        bucket: obj.bucket.clone(),
        key: manifest_key.clone(),
    }
    .uri();
    let mut p = Payload {
        source: Some("inventory".into()),
        ..Default::default()
    };
    if Some(&source_bucket) == deps.defaults.primary_bucket.as_ref() {
        p.primary_manifest = Some(uri);
    } else if Some(&source_bucket) == deps.defaults.replica_bucket.as_ref() {
        p.replica_manifest = Some(uri);
    } else {
        return Err(SuiteError::bad_object(
            &obj.bucket,
            &manifest_key,
            format!("inventory of bucket {source_bucket:?}, which is neither PRIMARY_BUCKET nor REPLICA_BUCKET"),
        ));
    }
    // Both reports' arrivals trigger a run: name it after the triggering report so the
    // second arrival of the same checksum event is a replay.
    let folder = manifest_key
        .trim_end_matches("/manifest.json")
        .rsplit('/')
        .next()
        .unwrap_or("x");
    let side = if p.primary_manifest.is_some() {
        "p"
    } else {
        "r"
    };
    p.run_id = Some(format!("inventory-{side}-{}", folder.replace(':', "-")));
    Ok(Some(p))
}

fn parse_payload(event: &Value) -> Result<Payload, SuiteError> {
    serde_json::from_value::<Payload>(event.clone()).map_err(|e| {
        let msg = e.to_string();
        let field = msg
            .split('`')
            .nth(1)
            .filter(|_| msg.contains("field"))
            .unwrap_or("payload")
            .to_string();
        SuiteError::invalid(
            field,
            msg,
            "see events/manifest-diff/ for the payload's shape",
        )
    })
}

/// The EMF documents for a finished run: one for the whole run, one per prefix (dimension
/// `prefix`). Names and units are documented in docs/observability.md.
pub fn metric_documents(common: &CommonConfig, s: &Summary) -> Vec<Emf> {
    let mut emf = Emf::new(common);
    let t = &s.totals;
    if let Some(r) = s.drift_ratio {
        emf.metric("manifest_drift_ratio", r, Unit::None);
    }
    emf.metric(
        "manifest_drift_detected",
        if s.status == "DRIFT" { 1.0 } else { 0.0 },
        Unit::Count,
    )
    .metric(
        "manifest_eligible_objects",
        t.eligible_primary as f64,
        Unit::Count,
    )
    .metric("manifest_missing_objects", t.missing as f64, Unit::Count)
    .metric("manifest_extra_objects", t.extra as f64, Unit::Count)
    .metric(
        "manifest_mismatched_objects",
        t.mismatched() as f64,
        Unit::Count,
    )
    .metric("manifest_pending_objects", t.pending as f64, Unit::Count)
    .metric(
        "manifest_diff_duration_seconds",
        s.duration_seconds,
        Unit::Seconds,
    )
    .property("run_id", s.run_id.clone())
    .property("status", s.status.clone())
    .property("primary_bucket", s.primary_bucket.clone())
    .property("replica_bucket", s.replica_bucket.clone());
    let mut docs = vec![emf];
    for p in &s.prefixes {
        let mut e = Emf::new(common).dimension("prefix", &p.prefix);
        if let Some(r) = p.drift_ratio {
            e.metric("manifest_drift_ratio", r, Unit::None);
        }
        e.metric(
            "manifest_missing_objects",
            p.counts.missing as f64,
            Unit::Count,
        )
        .metric("manifest_extra_objects", p.counts.extra as f64, Unit::Count)
        .metric(
            "manifest_mismatched_objects",
            p.counts.mismatched() as f64,
            Unit::Count,
        )
        .metric(
            "manifest_pending_objects",
            p.counts.pending as f64,
            Unit::Count,
        )
        .property("run_id", s.run_id.clone());
        docs.push(e);
    }
    docs
}

/// The handler `main` registers.
pub async fn handle<S: ObjectStore>(
    deps: &Deps<S>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    shared::lambda::invoke(&deps.common, event, |event| handle_inner(deps, event)).await
}

async fn handle_inner<S: ObjectStore>(
    deps: &Deps<S>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    let started = Instant::now();
    let (payload, ctx) = event.into_parts();
    let payload = if is_s3_event(&payload) {
        match job_from_s3_event(deps, &payload).await? {
            Some(p) => p,
            None => {
                tracing::info!("S3 event without a manifest.checksum: nothing to do");
                return Ok(
                    json!({"status": "IGNORED", "reason": "the event names no inventory manifest.checksum"}),
                );
            }
        }
    } else {
        parse_payload(&payload)?
    };

    // Stop early enough to write the checkpoint before Lambda kills the invocation.
    // The margin is capped at a fifth of the time left, so short timeouts still make progress.
    let left = shared::telemetry::time_left(ctx.deadline, chrono::Utc::now().timestamp_millis());
    let mut budget = left.saturating_sub(deps.margin.min(left / 5));
    if let Some(max) = payload.max_runtime_seconds {
        budget = budget.min(Duration::from_secs(max));
    }
    let stop_at = started + budget;
    tracing::info!(
        deadline_ms = ctx.deadline,
        time_left_ms = left.as_millis() as u64,
        budget_ms = budget.as_millis() as u64,
        "deadline"
    );

    let job = match payload.resume.clone() {
        Some(r) => Job::Resume(r),
        None => {
            let req = payload.validate(&deps.defaults, chrono::Utc::now().date_naive())?;
            if let Source::Inventory { primary, replica } = &req.source {
                let show = |s: &InventorySource| match s {
                    InventorySource::Latest(l) | InventorySource::Manifest(l) => l.uri(),
                };
                tracing::info!(primary = %show(primary), replica = %show(replica), "inventory mode");
            }
            tracing::info!(run_id = %req.run_id, primary = %req.primary_bucket, replica = %req.replica_bucket, prefixes = ?req.prefixes, "manifest diff starting");
            Job::New(Box::new(req))
        }
    };
    let engine = Engine {
        store: &deps.store,
        common: &deps.common,
        scratch: &deps.scratch,
        sort_budget_bytes: deps.sort_budget_bytes,
    };
    let summary = engine.execute(job, stop_at).await?;

    if let (Some(resume), Continuation::Invoke) = (&summary.resume, deps.continuation) {
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
    if summary.status != "IN_PROGRESS" && !summary.replayed {
        for doc in metric_documents(&deps.common, &summary) {
            doc.emit();
        }
    }
    tracing::info!(
        run_id = %summary.run_id,
        status = %summary.status,
        drift_ratio = summary.drift_ratio.unwrap_or(0.0),
        drifting_keys = summary.drifting_keys,
        replayed = summary.replayed,
        "manifest diff done"
    );
    serde_json::to_value(&summary).map_err(|e| SuiteError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metric names are a contract: every one emitted is documented, with its unit.
    #[test]
    fn emitted_metrics_are_documented() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/observability.md"),
        )
        .expect("docs/observability.md");
        let common = CommonConfig::from_vars(
            &Vars::from_pairs([("ENVIRONMENT", "prod"), ("REPORT_BUCKET", "r")]),
            "manifest-diff",
        )
        .unwrap();
        let mut tally = crate::diff::Tally::default();
        let e = crate::model::Entry::live("attachments/a", 1, "e", 0);
        tally.add("attachments/", crate::model::Class::Missing, Some(&e), None);
        let (prefixes, totals, _, _) =
            crate::summary::judge(&["attachments/".to_string()], &tally, 0.001);
        let s = Summary {
            status: "DRIFT".into(),
            run_id: "r".into(),
            source: "list".into(),
            primary_bucket: "p".into(),
            replica_bucket: "d".into(),
            drift_ratio: totals.ratio(),
            drift_percent: None,
            threshold_percent: 0.1,
            lag_allowance_hours: 24.0,
            reference_time: String::new(),
            started_at: String::new(),
            finished_at: None,
            duration_seconds: 1.5,
            invocations: 1,
            totals,
            prefixes,
            drifting_keys: 1,
            warnings: vec![],
            report: None,
            inventory: None,
            resume: None,
            replayed: false,
            sample: vec![],
        };
        let docs = metric_documents(&common, &s);
        assert_eq!(docs.len(), 2);
        // function_errors, emitted by every failed invocation, is checked with the others.
        let seen = shared::metrics::assert_documented(&doc, "docs/observability.md", &docs);
        assert!(
            seen.occurrences >= 13,
            "twelve or more, and function_errors: {seen:?}"
        );
    }

    #[test]
    fn payload_errors_name_the_field() {
        let e = parse_payload(&json!({"prefixs": ["a/"]}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("field `prefixs`") && e.contains("unknown field"),
            "{e}"
        );
        let e = parse_payload(&json!({"prefixes": "a/"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid type"), "{e}");
        let e = parse_payload(&json!([1, 2])).unwrap_err().to_string();
        assert!(e.contains("payload"), "{e}");
    }
}

/// Every sample in events/manifest-diff/ is accepted by the parser it is meant for.
#[cfg(test)]
mod sample_events {
    use super::*;

    #[test]
    fn samples_parse() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/manifest-diff");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("events dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let v: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
            if is_s3_event(&v) {
                let objs = parse_s3_event(&v).expect("s3 event");
                assert!(
                    objs[0].key.ends_with("manifest.checksum"),
                    "{}",
                    path.display()
                );
            } else {
                let p = parse_payload(&v).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let d = Defaults::from_vars(&Vars::from_pairs([
                    ("PRIMARY_BUCKET", "prod-files"),
                    ("REPLICA_BUCKET", "dr-files"),
                    ("PRIMARY_INVENTORY", "s3://inv/prod-files/daily/"),
                    ("REPLICA_INVENTORY", "s3://inv/dr-files/daily/"),
                ]))
                .expect("defaults");
                p.validate(&d, chrono::Utc::now().date_naive())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            n += 1;
        }
        assert!(n >= 4, "expected the sample events, found {n}");
    }
}
