//! CloudWatch Embedded Metric Format. A metric is a JSON log line on stdout that CloudWatch
//! Logs turns into metrics: no API call, no extra latency, no PutMetricData bill. See
//! docs/metrics.md for the names each function emits.

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

/// The `function_errors` metric every failed invocation emits, with its `error_class`.
pub fn emit_error(common: &CommonConfig, err: &crate::SuiteError) {
    let mut emf = Emf::new(common);
    emf.metric("function_errors", 1.0, Unit::Count)
        .property("error_class", err.class());
    emf.emit();
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
}
