//! The Lambda adapter: S3 event (or manual payload) → objects → the run, EMF metrics, and the
//! response.

use std::path::PathBuf;

use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::aws::{AwsClients, AwsSettings};
use shared::config::{CommonConfig, Vars};
use shared::events::{is_s3_event, parse_s3_event};
use shared::metrics::{Emf, Unit};
use shared::SuiteError;

use crate::config::Settings;
use crate::plan::parse_month;
use crate::port::{ExportStore, S3ExportStore};
use crate::run::{Engine, Outcome, Status};

pub struct Deps<S: ExportStore> {
    pub common: CommonConfig,
    pub settings: Settings,
    pub store: S,
    pub scratch: PathBuf,
}

impl Deps<S3ExportStore> {
    /// Reads the configuration and builds the S3 client: once per cold start.
    pub async fn from_env() -> Result<Self, SuiteError> {
        let vars = Vars::from_process();
        let common = CommonConfig::from_vars(&vars, "export-compressor")?;
        shared::telemetry::init(&common);
        let settings = Settings::from_vars(&vars)?;
        let clients = AwsClients::load(AwsSettings::from_vars(&vars)?).await;
        Ok(Deps {
            common,
            settings,
            store: S3ExportStore::new(clients.s3()),
            scratch: PathBuf::from(vars.or("SCRATCH_DIR", "/tmp")),
        })
    }
}

/// The manual payloads (besides S3 and EventBridge events).
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manual {
    /// Process one object now (e.g. one created before the notification existed).
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// Recount a month's roll-up (`YYYY-MM`) from its per-export records.
    pub rebuild_rollup: Option<String>,
}

/// What the event asks for.
#[derive(Debug, PartialEq)]
pub enum Job {
    Objects(Vec<(String, String)>),
    Rebuild(String),
    Ignore(String),
}

pub fn parse_event(event: &Value) -> Result<Job, SuiteError> {
    if is_s3_event(event) {
        let refs = parse_s3_event(event)?;
        let objects: Vec<(String, String)> = refs
            .into_iter()
            .filter(|r| {
                let created = r.event_name.starts_with("ObjectCreated")
                    || r.event_name.starts_with("s3:ObjectCreated")
                    || r.event_name == "Object Created"
                    || r.event_name.is_empty();
                if !created {
                    tracing::info!(key = %r.key, event = %r.event_name, "not an ObjectCreated event: ignored");
                }
                created
            })
            .map(|r| (r.bucket, r.key))
            .collect();
        if objects.is_empty() {
            return Ok(Job::Ignore("the event names no created object".into()));
        }
        return Ok(Job::Objects(objects));
    }
    let m: Manual = serde_path_to_error::deserialize(event).map_err(|e| {
        let path = e.path().to_string();
        SuiteError::invalid(
            if path == "." { "payload".to_string() } else { path },
            e.inner().to_string(),
            "send an S3 event, {\"bucket\": ..., \"key\": ...} or {\"rebuild_rollup\": \"YYYY-MM\"}",
        )
    })?;
    match m {
        Manual {
            rebuild_rollup: Some(month),
            bucket: None,
            key: None,
        } => parse_month(&month)
            .map(Job::Rebuild)
            .map_err(|p| SuiteError::invalid("rebuild_rollup", p, "send a month like \"2026-11\"")),
        Manual {
            bucket: Some(b),
            key: Some(k),
            rebuild_rollup: None,
        } if !b.is_empty() && !k.is_empty() => Ok(Job::Objects(vec![(b, k)])),
        _ => Err(SuiteError::invalid(
            "payload",
            "needs both bucket and key, or rebuild_rollup alone",
            "send {\"bucket\": \"b\", \"key\": \"exports/x.csv\"} or {\"rebuild_rollup\": \"2026-11\"}",
        )),
    }
}

/// The EMF documents for one outcome. Names, units and dimensions are documented in
/// docs/export-compressor.md (a test holds them to it).
pub fn metric_documents(common: &CommonConfig, o: &Outcome) -> Vec<Emf> {
    let mut docs = vec![];
    match o.status {
        Status::Compressed => {
            let target = o.target.map(|t| t.as_str()).unwrap_or("unknown");
            let mut e = Emf::new(common).dimension("target", target);
            e.metric("export_objects_compressed", 1.0, Unit::Count);
            if let Some(s) = &o.saving {
                e.metric("export_bytes_before", s.bytes_before as f64, Unit::Bytes)
                    .metric("export_bytes_after", s.bytes_after as f64, Unit::Bytes)
                    .metric("export_bytes_saved", s.bytes_saved() as f64, Unit::Bytes)
                    .metric("export_cost_saved_dollars", s.dollars_saved(), Unit::None);
                if let Some(r) = s.ratio() {
                    e.metric("export_compression_ratio", r, Unit::None);
                }
            }
            e.metric("export_duration_seconds", o.duration_seconds, Unit::Seconds)
                .property("bucket", o.bucket.clone())
                .property("key", o.key.clone())
                .property("output_key", o.output_key.clone().unwrap_or_default());
            docs.push(e);
            if let Some(s) = &o.saving {
                for (phase, dollars) in [("before", s.dollars_before), ("after", s.dollars_after)] {
                    let mut c = Emf::new(common).dimension("estimate", phase).dimension(
                        "storage_class",
                        o.storage_class.as_deref().unwrap_or("STANDARD"),
                    );
                    c.metric("s3_cost_estimate_dollars", dollars, Unit::None)
                        .property("key", o.key.clone());
                    docs.push(c);
                }
            }
        }
        Status::Skipped => {
            let mut e = Emf::new(common).dimension("reason", o.skip.as_deref().unwrap_or("other"));
            e.metric("export_objects_skipped", 1.0, Unit::Count)
                .property("key", o.key.clone());
            docs.push(e);
        }
        Status::AlreadyDone | Status::Gone => {
            let mut e = Emf::new(common);
            e.metric("export_repeated_events", 1.0, Unit::Count)
                .property("key", o.key.clone());
            docs.push(e);
        }
    }
    docs
}

/// The handler `main` registers.
pub async fn handle<S: ExportStore>(
    deps: &Deps<S>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    shared::lambda::invoke(&deps.common, event, |event| handle_inner(deps, event)).await
}

async fn handle_inner<S: ExportStore>(
    deps: &Deps<S>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    let (payload, ctx) = event.into_parts();
    let engine = Engine {
        store: &deps.store,
        settings: &deps.settings,
        common: &deps.common,
        scratch: &deps.scratch,
    };
    let now = chrono::Utc::now();
    let objects = match parse_event(&payload)? {
        Job::Ignore(reason) => return Ok(json!({"status": "IGNORED", "reason": reason})),
        Job::Rebuild(month) => {
            let r = engine.rebuild_rollup(&month, now).await?;
            tracing::info!(month = %month, objects = r.objects, "roll-up rebuilt");
            return Ok(json!({
                "status": "REBUILT",
                "rollup": format!("s3://{}/{}", deps.common.report_bucket, engine.rollup_key(&month)),
                "totals": r,
            }));
        }
        Job::Objects(o) => o,
    };
    // A token unique to this attempt (and safe in a key) names the staging object.
    let token: String = ctx
        .request_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    let token = if token.is_empty() {
        format!("t{}", now.timestamp_millis())
    } else {
        token
    };
    let mut results = vec![];
    let mut first_error = None;
    for (bucket, key) in objects {
        match engine.process(&bucket, &key, &token, now).await {
            Ok(o) => {
                tracing::info!(
                    bucket = %o.bucket, key = %o.key, status = ?o.status,
                    skip = o.skip.as_deref().unwrap_or(""),
                    output_key = o.output_key.as_deref().unwrap_or(""),
                    bytes_before = o.saving.map(|s| s.bytes_before).unwrap_or(0),
                    bytes_after = o.saving.map(|s| s.bytes_after).unwrap_or(0),
                    "export handled"
                );
                for d in metric_documents(&deps.common, &o) {
                    d.emit();
                }
                results.push(o);
            }
            Err(e) => {
                tracing::error!(bucket = %bucket, key = %key, error_class = e.class(), error = %e, "export failed; the original is kept");
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
        }
    }
    // One failure fails the invocation (so the event is retried; completed objects answer
    // ALREADY_DONE on the retry).
    if let Some(e) = first_error {
        return Err(e);
    }
    let compressed = results
        .iter()
        .filter(|o| o.status == Status::Compressed)
        .count();
    Ok(json!({
        "status": if compressed > 0 { "COMPRESSED" } else { "NOTHING_TO_DO" },
        "objects": results,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PriceTable, Saving, Target};

    fn common() -> CommonConfig {
        CommonConfig::from_vars(
            &Vars::from_pairs([("ENVIRONMENT", "prod"), ("REPORT_BUCKET", "r")]),
            "export-compressor",
        )
        .unwrap()
    }

    fn outcome(status: Status) -> Outcome {
        let mut o: Outcome = serde_json::from_value(json!({
            "bucket": "b", "key": "exports/a.csv", "status": status, "duration_seconds": 1.5
        }))
        .unwrap();
        if status == Status::Compressed {
            o.target = Some(Target::Gzip);
            o.saving = Some(Saving::new(1000, 250, None, &PriceTable::default()));
            o.output_key = Some("exports/compressed/a.csv.gz".into());
        }
        if status == Status::Skipped {
            o.skip = Some("legal_hold".into());
        }
        o
    }

    /// The metric names are a contract: every one emitted is documented with its unit and
    /// dimensions in docs/export-compressor.md.
    #[test]
    fn emitted_metrics_are_documented() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../docs/export-compressor.md"),
        )
        .expect("docs/export-compressor.md");
        let c = common();
        let mut docs = vec![];
        for s in [
            Status::Compressed,
            Status::Skipped,
            Status::AlreadyDone,
            Status::Gone,
        ] {
            docs.extend(metric_documents(&c, &outcome(s)));
        }
        let seen = shared::metrics::assert_documented(&doc, "docs/export-compressor.md", &docs);
        for must in [
            "s3_cost_estimate_dollars",
            "export_bytes_saved",
            "function_errors",
        ] {
            assert!(seen.contains(must), "{must} emitted");
        }
        assert!(seen.names.len() >= 10, "{seen:?}");
    }

    #[test]
    fn events_and_payloads_parse() {
        let n = json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {"key": "exports/a+b%2B.csv"}}}]});
        assert_eq!(
            parse_event(&n).unwrap(),
            Job::Objects(vec![("b".into(), "exports/a b+.csv".into())])
        );
        let removed = json!({"Records": [{"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "b"}, "object": {"key": "exports/a.csv"}}}]});
        assert!(matches!(parse_event(&removed).unwrap(), Job::Ignore(_)));
        assert_eq!(
            parse_event(&json!({"rebuild_rollup": "2026-11"})).unwrap(),
            Job::Rebuild("2026-11".into())
        );
        let e = parse_event(&json!({"rebuild_rollup": "Nov"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rebuild_rollup"), "{e}");
        let e = parse_event(&json!({"bucket": "b"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bucket and key"), "{e}");
        let e = parse_event(&json!({"bucket": "b", "kye": "k"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kye"), "{e}");
    }

    /// Every sample in events/export-compressor/ parses into the job it stands for.
    #[test]
    fn samples_parse() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/export-compressor");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("events dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let v: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
            let job = parse_event(&v).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            match job {
                Job::Objects(o) => {
                    assert!(!o.is_empty(), "{name}");
                    for (_, k) in o {
                        if name.contains("own-output") {
                            assert!(k.starts_with("exports/compressed/"), "{name}: {k}");
                        } else {
                            assert!(k.starts_with("exports/"), "{name}: {k}");
                        }
                    }
                }
                Job::Rebuild(_) => assert!(name.contains("rebuild"), "{name}"),
                Job::Ignore(_) => assert!(name.contains("test-event"), "{name}"),
            }
            n += 1;
        }
        assert!(n >= 5, "expected the sample events, found {n}");
    }
}
