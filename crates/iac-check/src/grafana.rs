//! The Grafana dashboards (infra/grafana/dashboards/*.json, docs/dashboards.md): every panel
//! target, read the way Grafana reads it. CloudWatch targets become [`Consumer`]s, so the
//! signal catalogue's check (`signals::check_consumer`) holds them to what a producer emits;
//! Prometheus targets are PromQL over the k6_* series the load-test coordinator remote-writes
//! (run against a real Prometheus in functions/loadtest-coordinator/tests/e2e_it.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::signals::Consumer;

/// The datasource uids infra/grafana/provisioning/datasources/datasources.yaml provisions.
pub const PROMETHEUS_UID: &str = "playbook-prometheus";
pub const CLOUDWATCH_UID: &str = "playbook-cloudwatch";

/// The four dashboards the playbook names, by file name.
pub const DASHBOARDS: [&str; 4] = ["unified-api-health", "frontend-ux", "async-jobs", "finops"];

/// CloudWatch statistics a target may ask for (GetMetricData's simple statistics; percentiles
/// would need extended statistics the local moto does not compute).
pub const STATISTICS: [&str; 5] = ["Average", "Sum", "Minimum", "Maximum", "SampleCount"];

pub struct Dashboard {
    /// `unified-api-health` (the file name without .json).
    pub file: String,
    pub json: Value,
}

/// One query of one panel.
#[derive(Debug, Clone)]
pub struct Target {
    pub dashboard: String,
    pub panel: String,
    pub ref_id: String,
    pub query: Query,
}

#[derive(Debug, Clone)]
pub enum Query {
    Prometheus {
        expr: String,
    },
    CloudWatch {
        namespace: String,
        metric: String,
        /// Name -> value as written (`$environment`, `uptime-probe-$environment`, `*`).
        dimensions: BTreeMap<String, String>,
        match_exact: bool,
        statistic: String,
        period: String,
    },
    /// A datasource uid neither provisioned datasource has.
    Unknown {
        uid: String,
    },
}

impl Target {
    pub fn source(&self) -> String {
        format!(
            "infra/grafana/dashboards/{}.json: panel \"{}\" target {}",
            self.dashboard, self.panel, self.ref_id
        )
    }

    /// A CloudWatch target as the consumer Grafana deploys in `environment`: `$environment`
    /// substituted, a `*` wildcard (any value, exact dimension set when matchExact) as no value.
    pub fn consumer(&self, environment: &str) -> Option<Consumer> {
        let Query::CloudWatch {
            namespace,
            metric,
            dimensions,
            ..
        } = &self.query
        else {
            return None;
        };
        let dims = dimensions
            .iter()
            .map(|(k, v)| {
                let v = substitute(v, environment);
                (k.clone(), if v == "*" { String::new() } else { v })
            })
            .collect();
        Some(Consumer::reading(
            format!("{environment}: {}", self.source()),
            namespace.clone(),
            metric.clone(),
            dims,
        ))
    }
}

/// `$environment` / `${environment}` as Grafana substitutes the dashboard variable.
pub fn substitute(text: &str, environment: &str) -> String {
    text.replace("${environment}", environment)
        .replace("$environment", environment)
}

/// Every k6_* metric name a PromQL expression names.
pub fn prom_metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            if word.starts_with("k6_") {
                out.insert(word.to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

pub fn load(repo: &Path) -> Result<Vec<Dashboard>, String> {
    DASHBOARDS
        .iter()
        .map(|name| {
            let path = repo.join(format!("infra/grafana/dashboards/{name}.json"));
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let json =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Dashboard {
                file: name.to_string(),
                json,
            })
        })
        .collect()
}

fn panels(d: &Value) -> Vec<&Value> {
    // Rows may nest panels (collapsed rows keep theirs under `panels`).
    let mut out = vec![];
    for p in d["panels"].as_array().into_iter().flatten() {
        if p["type"] == "row" {
            out.extend(p["panels"].as_array().into_iter().flatten());
        } else {
            out.push(p);
        }
    }
    out
}

impl Dashboard {
    pub fn targets(&self) -> Vec<Target> {
        let mut out = vec![];
        for p in panels(&self.json) {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                // A target without its own datasource uses the panel's.
                let uid = t["datasource"]["uid"]
                    .as_str()
                    .or(p["datasource"]["uid"].as_str())
                    .unwrap_or_default();
                let s = |k: &str| t[k].as_str().unwrap_or_default().to_string();
                let query = match uid {
                    PROMETHEUS_UID => Query::Prometheus { expr: s("expr") },
                    CLOUDWATCH_UID => Query::CloudWatch {
                        namespace: s("namespace"),
                        metric: s("metricName"),
                        dimensions: t["dimensions"]
                            .as_object()
                            .map(|o| {
                                o.iter()
                                    .map(|(k, v)| {
                                        // A multi-value dimension is a list; one value here.
                                        let v = v
                                            .as_str()
                                            .or_else(|| v[0].as_str())
                                            .unwrap_or_default();
                                        (k.clone(), v.to_string())
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                        match_exact: t["matchExact"].as_bool().unwrap_or(false),
                        statistic: s("statistic"),
                        period: s("period"),
                    },
                    other => Query::Unknown {
                        uid: other.to_string(),
                    },
                };
                out.push(Target {
                    dashboard: self.file.clone(),
                    panel: title.clone(),
                    ref_id: s("refId"),
                    query,
                });
            }
        }
        out
    }

    /// What Grafana would refuse or show wrongly, and what the suite requires of every
    /// dashboard: uid and title, the `environment` variable, known datasources, panels with
    /// a unit and at least one target, CloudWatch targets that match the dimension set exactly
    /// with a simple statistic, PromQL filtered on `$environment`.
    pub fn problems(&self) -> Vec<String> {
        let d = &self.json;
        let at = format!("infra/grafana/dashboards/{}.json", self.file);
        let mut out = vec![];
        for key in ["uid", "title"] {
            if d[key].as_str().is_none_or(str::is_empty) {
                out.push(format!("{at}: no {key}"));
            }
        }
        if d["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
            out.push(format!(
                "{at}: schemaVersion {} (want 36 or later)",
                d["schemaVersion"]
            ));
        }
        let env_var = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == "environment");
        match env_var {
            None => out.push(format!("{at}: no templating variable `environment`")),
            Some(v) => {
                let options: BTreeSet<&str> = v["options"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o["value"].as_str())
                    .collect();
                for e in ["dev", "staging", "prod"] {
                    if !options.contains(e) {
                        out.push(format!("{at}: variable environment has no option {e}"));
                    }
                }
            }
        }
        let mut ids = BTreeSet::new();
        for p in panels(d) {
            let title = p["title"].as_str().unwrap_or("?");
            if !ids.insert(p["id"].as_u64()) {
                out.push(format!("{at}: panel \"{title}\": id {} twice", p["id"]));
            }
            if p["datasource"]["uid"]
                .as_str()
                .is_none_or(|u| u != PROMETHEUS_UID && u != CLOUDWATCH_UID)
            {
                out.push(format!(
                    "{at}: panel \"{title}\": datasource {} is not provisioned",
                    p["datasource"]
                ));
            }
            if p["fieldConfig"]["defaults"]["unit"].as_str().is_none() {
                out.push(format!("{at}: panel \"{title}\": no unit"));
            }
            if p["targets"].as_array().is_none_or(Vec::is_empty) {
                out.push(format!("{at}: panel \"{title}\": no target"));
            }
        }
        for t in self.targets() {
            let src = t.source();
            match &t.query {
                Query::Unknown { uid } => {
                    out.push(format!("{src}: datasource uid {uid:?} is not provisioned"))
                }
                Query::Prometheus { expr } => {
                    if prom_metric_names(expr).is_empty() {
                        out.push(format!("{src}: names no k6_* series: {expr}"));
                    }
                    if !expr.contains("environment=\"$environment\"") {
                        out.push(format!(
                            "{src}: not filtered on environment=\"$environment\": {expr}"
                        ));
                    }
                }
                Query::CloudWatch {
                    dimensions,
                    match_exact,
                    statistic,
                    period,
                    ..
                } => {
                    if !match_exact {
                        out.push(format!(
                            "{src}: matchExact is off: CloudWatch would mix dimension sets"
                        ));
                    }
                    if !STATISTICS.contains(&statistic.as_str()) {
                        out.push(format!(
                            "{src}: statistic {statistic:?} (use one of {STATISTICS:?})"
                        ));
                    }
                    if period
                        .parse::<u64>()
                        .map_or(true, |p| p == 0 || p % 60 != 0)
                    {
                        out.push(format!("{src}: period {period:?} (a multiple of 60 s)"));
                    }
                    if dimensions.get("environment").map(String::as_str) != Some("$environment") {
                        out.push(format!("{src}: dimension environment is not $environment"));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_of_promql() {
        let names = prom_metric_names(
            r#"100 * max by (scenario) (last_over_time(k6_http_req_failed_rate{environment="$environment"}[$__interval])) or k6_x:y"#,
        );
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["k6_http_req_failed_rate", "k6_x:y"]
        );
        assert!(prom_metric_names("up{job=\"k6_x\"}").contains("k6_x"));
        assert!(prom_metric_names("sum(rate(http_requests_total[5m]))").is_empty());
    }

    #[test]
    fn wildcards_and_the_environment_become_a_consumer() {
        let t = Target {
            dashboard: "d".into(),
            panel: "p".into(),
            ref_id: "A".into(),
            query: Query::CloudWatch {
                namespace: "PlatformPlaybook".into(),
                metric: "api_availability".into(),
                dimensions: [
                    ("environment", "$environment"),
                    ("function", "uptime-probe-${environment}"),
                    ("target", "*"),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
                match_exact: true,
                statistic: "Average".into(),
                period: "300".into(),
            },
        };
        let c = t.consumer("prod").unwrap();
        assert_eq!(c.dimensions["environment"], "prod");
        assert_eq!(c.dimensions["function"], "uptime-probe-prod");
        assert_eq!(c.dimensions["target"], "");
    }
}
