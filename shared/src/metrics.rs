//! CloudWatch Embedded Metric Format. A metric is a JSON log line on stdout that CloudWatch
//! Logs turns into metrics: no API call, no extra latency, no PutMetricData bill. See
//! docs/metrics.md for the names each function emits.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::config::CommonConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Milliseconds,
    Bytes,
    Percent,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
            Unit::Percent => "Percent",
            Unit::None => "None",
        }
    }
}

/// One EMF document: a namespace, one dimension set, up to 100 metrics, and properties that are
/// searchable in Logs Insights but not metrics.
#[derive(Debug, Clone)]
pub struct Emf {
    namespace: String,
    dimensions: Vec<(String, String)>,
    metrics: Vec<(String, Unit, f64)>,
    properties: Map<String, Value>,
}

/// CloudWatch's limit per EMF document.
pub const MAX_METRICS: usize = 100;

impl Emf {
    /// Dimensions `function` and `environment`, the ones every dashboard filters on.
    pub fn new(common: &CommonConfig) -> Self {
        Emf {
            namespace: common.metrics_namespace.clone(),
            dimensions: vec![
                ("function".into(), common.function_name.clone()),
                ("environment".into(), common.environment.clone()),
            ],
            metrics: Vec::new(),
            properties: Map::new(),
        }
    }

    /// Replaces the namespace (default `METRICS_NAMESPACE`), e.g. `PlatformPlaybook/SLO` for
    /// derived series that other tools read by name.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    pub fn dimension(mut self, name: &str, value: &str) -> Self {
        self.dimensions.push((name.into(), value.into()));
        self
    }

    pub fn metric(&mut self, name: &str, value: f64, unit: Unit) -> &mut Self {
        // A NaN or infinite value would make CloudWatch drop the whole document.
        if value.is_finite() && self.metrics.len() < MAX_METRICS {
            self.metrics.push((name.into(), unit, value));
        }
        self
    }

    pub fn property(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let mut doc = self.properties.clone();
        for (k, v) in &self.dimensions {
            doc.insert(k.clone(), Value::String(v.clone()));
        }
        for (name, _, v) in &self.metrics {
            doc.insert(name.clone(), json!(v));
        }
        let dims: Vec<&str> = self.dimensions.iter().map(|(k, _)| k.as_str()).collect();
        let defs: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dims],
                    "Metrics": defs,
                }]
            }),
        );
        Value::Object(doc)
    }

    /// Prints the document as one line on stdout (where the Lambda log agent picks it up).
    pub fn emit(&self) {
        if self.metrics.is_empty() {
            return;
        }
        println!("{}", self.to_json(chrono::Utc::now().timestamp_millis()));
    }
}

/// The `function_errors` document every failed invocation emits, with its `error_class`
/// ([`crate::lambda::invoke`] emits it).
pub fn error_document(common: &CommonConfig, err: &crate::SuiteError) -> Emf {
    let mut emf = Emf::new(common);
    emf.metric("function_errors", 1.0, Unit::Count)
        .property("error_class", err.class());
    emf
}

/// Emits [`error_document`].
pub fn emit_error(common: &CommonConfig, err: &crate::SuiteError) {
    error_document(common, err).emit();
}

/// What [`assert_documented`] checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentedMetrics {
    /// Every metric name seen, `function_errors` included.
    pub names: BTreeSet<String>,
    /// Metrics checked, counting a name once per document that carries it.
    pub occurrences: usize,
}

impl DocumentedMetrics {
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
    }
}

/// A test helper holding a function's metrics to its documentation: every metric in
/// `emitted`, and the `function_errors` metric every function emits through
/// [`crate::lambda::invoke`], must have a row in a Markdown table of `doc_markdown` that
/// starts with `` | `name` | ``, names its unit as a cell (`| Count |`), and names every
/// dimension beyond `function` and `environment` in backticks (`` `bucket` ``). `doc_name`
/// (e.g. `docs/worker-scaler.md`) is only used in the messages.
///
/// # Panics
///
/// On the first metric that is not documented so, naming it (it is an assertion).
pub fn assert_documented(doc_markdown: &str, doc_name: &str, emitted: &[Emf]) -> DocumentedMetrics {
    check_documented(doc_markdown, doc_name, emitted, Some(&signal_catalogue()))
}

/// [`assert_documented`], with the catalogue check only when `catalogue` is given (this
/// module's own tests document made-up metrics).
fn check_documented(
    doc_markdown: &str,
    doc_name: &str,
    emitted: &[Emf],
    catalogue: Option<&[Value]>,
) -> DocumentedMetrics {
    let errors = error_document(
        &CommonConfig {
            function_name: "function".into(),
            environment: "environment".into(),
            deployment: String::new(),
            report_bucket: String::new(),
            report_prefix: String::new(),
            metrics_namespace: String::new(),
            log_mask_fields: vec![],
        },
        &crate::SuiteError::Internal("documentation check".into()),
    );
    let mut out = DocumentedMetrics::default();
    for doc in emitted.iter().chain(std::iter::once(&errors)) {
        let extra: Vec<&str> = doc
            .dimensions
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !matches!(*k, "function" | "environment"))
            .collect();
        for (name, unit, _) in &doc.metrics {
            let start = format!("| `{name}` |");
            let row = doc_markdown
                .lines()
                .find(|l| l.starts_with(&start))
                .unwrap_or_else(|| panic!("metric {name} is not documented in {doc_name}"));
            let unit = unit.as_str();
            assert!(
                row.contains(&format!("| {unit} |")),
                "unit of {name} should be {unit} in {doc_name}: {row}"
            );
            for d in &extra {
                assert!(
                    row.contains(&format!("`{d}`")),
                    "{name} has dimension {d}, which {doc_name} does not name: {row}"
                );
            }
            if let Some(catalogue) = catalogue {
                assert_catalogued(catalogue, doc_name, doc, name, unit);
            }
            out.names.insert(name.clone());
            out.occurrences += 1;
        }
    }
    out
}

/// docs/signals.json, the signal catalogue every consumer is checked against
/// (crates/iac-check). Read from the source tree: only tests call it.
fn signal_catalogue() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/signals.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    v["metrics"].as_array().cloned().unwrap_or_default()
}

/// The emitted document's exact dimension set, unit and namespace family must be a catalogue
/// entry of this producer (the entry whose `doc` is the producer's docs page): consumers are
/// checked against the catalogue, so a document it does not list is one no check covers.
fn assert_catalogued(catalogue: &[Value], doc_name: &str, doc: &Emf, name: &str, unit: &str) {
    let dims: BTreeSet<&str> = doc.dimensions.iter().map(|(k, _)| k.as_str()).collect();
    let slo = doc.namespace.ends_with("/SLO");
    let entries: Vec<&Value> = catalogue
        .iter()
        .filter(|m| m["name"] == name && m["doc"] == doc_name)
        .collect();
    assert!(
        !entries.is_empty(),
        "{name} (documented in {doc_name}) is not in docs/signals.json with \"doc\": \"{doc_name}\""
    );
    let matches = entries.iter().any(|m| {
        let sets = m["dimensions"].as_array().cloned().unwrap_or_default();
        m["unit"] == unit
            && m["namespace"]
                .as_str()
                .unwrap_or_default()
                .ends_with("/SLO")
                == slo
            && sets.iter().any(|set| {
                let set: BTreeSet<&str> = set
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                set == dims
            })
    });
    assert!(
        matches,
        "{name} is emitted with unit {unit} and dimensions {dims:?} in namespace {}, which docs/signals.json does not list for {doc_name}: {entries:?}",
        doc.namespace
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common() -> CommonConfig {
        CommonConfig {
            function_name: "manifest-diff".into(),
            environment: "prod".into(),
            deployment: "d".into(),
            report_bucket: "r".into(),
            report_prefix: "reports/".into(),
            metrics_namespace: "PlatformPlaybook".into(),
            log_mask_fields: vec![],
        }
    }

    #[test]
    fn document_follows_emf_spec() {
        let mut emf = Emf::new(&common()).dimension("prefix", "exports/");
        emf.metric("manifest_drift_ratio", 0.002, Unit::None)
            .metric("manifest_missing_objects", 3.0, Unit::Count)
            .metric("bogus", f64::NAN, Unit::Count)
            .property("run_id", "abc");
        let v = emf.to_json(1_700_000_000_000);
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(cw["Namespace"], "PlatformPlaybook");
        assert_eq!(
            cw["Dimensions"],
            json!([["function", "environment", "prefix"]])
        );
        assert_eq!(cw["Metrics"].as_array().unwrap().len(), 2, "NaN dropped");
        assert_eq!(
            cw["Metrics"][1],
            json!({"Name": "manifest_missing_objects", "Unit": "Count"})
        );
        assert_eq!(v["manifest_drift_ratio"], 0.002);
        assert_eq!(v["function"], "manifest-diff");
        assert_eq!(v["environment"], "prod");
        assert_eq!(v["prefix"], "exports/");
        assert_eq!(v["run_id"], "abc");
        assert!(v.get("bogus").is_none());
    }

    const DOC: &str = "\
| metric | unit | dimensions | meaning |
| --- | --- | --- | --- |
| `runs` | Count | — and per `bucket` | runs |
| `run_seconds` | Seconds | — | time |
| `function_errors` | Count | — | failures |
";

    #[test]
    fn documented_metrics_pass_and_are_counted() {
        let c = common();
        let mut a = Emf::new(&c).dimension("bucket", "b");
        a.metric("runs", 1.0, Unit::Count);
        let mut b = Emf::new(&c);
        b.metric("runs", 2.0, Unit::Count)
            .metric("run_seconds", 1.5, Unit::Seconds);
        let seen = check_documented(DOC, "DOC", &[a, b], None);
        assert_eq!(
            seen.occurrences, 4,
            "runs twice, run_seconds, function_errors"
        );
        assert_eq!(
            seen.names.iter().map(String::as_str).collect::<Vec<_>>(),
            ["function_errors", "run_seconds", "runs"]
        );
        assert!(seen.contains("function_errors"));
        // function_errors is checked even when nothing else is emitted.
        assert_eq!(check_documented(DOC, "DOC", &[], None).occurrences, 1);
    }

    #[test]
    #[should_panic(expected = "metric runs_total is not documented in DOC")]
    fn an_undocumented_metric_fails() {
        let mut e = Emf::new(&common());
        e.metric("runs_total", 1.0, Unit::Count);
        check_documented(DOC, "DOC", &[e], None);
    }

    #[test]
    #[should_panic(expected = "unit of run_seconds should be Milliseconds in DOC")]
    fn a_wrong_unit_fails() {
        let mut e = Emf::new(&common());
        e.metric("run_seconds", 1.0, Unit::Milliseconds);
        check_documented(DOC, "DOC", &[e], None);
    }

    #[test]
    #[should_panic(expected = "run_seconds has dimension prefix, which DOC does not name")]
    fn an_undocumented_dimension_fails() {
        let mut e = Emf::new(&common()).dimension("prefix", "p/");
        e.metric("run_seconds", 1.0, Unit::Seconds);
        check_documented(DOC, "DOC", &[e], None);
    }

    #[test]
    #[should_panic(expected = "metric function_errors is not documented in DOC")]
    fn an_undocumented_function_errors_fails() {
        check_documented("| `runs` | Count | — | runs |", "DOC", &[], None);
    }

    #[test]
    fn error_document_carries_the_class() {
        let v = error_document(&common(), &crate::SuiteError::invalid("a", "b", "c")).to_json(0);
        assert_eq!(v["function_errors"], 1.0);
        assert_eq!(v["error_class"], "InvalidInput");
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "function_errors", "Unit": "Count"}])
        );
    }

    #[test]
    fn an_emitted_dimension_set_must_be_in_the_catalogue() {
        let catalogue = signal_catalogue();
        let mut ok = Emf::new(&common());
        ok.metric("manifest_drift_ratio", 0.1, Unit::None);
        assert_catalogued(
            &catalogue,
            "docs/observability.md",
            &ok,
            "manifest_drift_ratio",
            "None",
        );
        let mut per_prefix = Emf::new(&common()).dimension("prefix", "exports/");
        per_prefix.metric("manifest_drift_ratio", 0.1, Unit::None);
        assert_catalogued(
            &catalogue,
            "docs/observability.md",
            &per_prefix,
            "manifest_drift_ratio",
            "None",
        );
        // One dimension more than the catalogue lists: a consumer reading the listed set
        // would see nothing of it.
        let mut extra = Emf::new(&common()).dimension("bucket", "b");
        extra.metric("manifest_drift_ratio", 0.1, Unit::None);
        let caught = std::panic::catch_unwind(|| {
            assert_catalogued(
                &catalogue,
                "docs/observability.md",
                &extra,
                "manifest_drift_ratio",
                "None",
            )
        });
        assert!(caught.is_err());
        let wrong_unit = std::panic::catch_unwind(|| {
            assert_catalogued(
                &catalogue,
                "docs/observability.md",
                &ok,
                "manifest_drift_ratio",
                "Count",
            )
        });
        assert!(wrong_unit.is_err());
    }
}
