//! The experiment registry: every experiment is pre-registered in a JSON file (hypothesis,
//! blast radius, owner rotation, stop conditions, steady-state probes, FIS template) before the
//! runner may start it. Parsing names the field at fault (`experiments[2].stop_conditions`),
//! and an experiment without a stop condition is refused here, at cold start. Metric queries
//! may write `${environment}` in their namespace and dimension values; [`Registry::parse_for`]
//! substitutes the runner's ENVIRONMENT, and an unknown placeholder names its field.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::calendar::Cadence;

/// A problem with the registry file, with the JSON path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct RegistryError {
    pub field: String,
    pub problem: String,
}

fn err(field: impl Into<String>, problem: impl Into<String>) -> RegistryError {
    RegistryError {
        field: field.into(),
        problem: problem.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    pub version: u32,
    /// Named on-call rotations; an experiment's owner is this month's member.
    pub rotations: BTreeMap<String, Rotation>,
    /// Skip experiments while the error budget is low (optional).
    #[serde(default)]
    pub error_budget: Option<ErrorBudgetGate>,
    pub experiments: Vec<Experiment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// `YYYY-MM`: the month `members[0]` owns; each following month the next member.
    pub anchor_month: String,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBudgetGate {
    /// Skip when the remaining budget (percent) is below this.
    pub min_remaining_percent: f64,
    /// Where the remaining budget comes from: a CloudWatch metric or a given value.
    pub source: BudgetSource,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BudgetSource {
    Metric(MetricQuery),
    Value(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Short, stable id: names runs, journals and metric dimensions.
    pub name: String,
    pub title: String,
    /// What we expect to stay true while the fault is injected.
    pub hypothesis: String,
    pub cadence: Cadence,
    /// Path of the runbook in the repository (docs/...).
    pub runbook: String,
    /// A key of `rotations`.
    pub owner_rotation: String,
    pub blast_radius: BlastRadius,
    /// CloudWatch alarms; FIS stops the experiment when one fires. At least one.
    pub stop_conditions: Vec<StopCondition>,
    /// Probes of the steady state, checked before, during and after.
    pub steady_state: Vec<Probe>,
    pub fis_template: TemplateRef,
    /// Second key for production (with `CHAOS_ALLOW_PRODUCTION=true`).
    #[serde(default)]
    pub allow_production: bool,
    /// Follow-up tasks copied into the postmortem skeleton.
    #[serde(default)]
    pub follow_ups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlastRadius {
    /// Human-readable selector of the targets (tag, service, cluster).
    pub selector: String,
    /// At most this many resources; the FIS template's `COUNT(n)` must not exceed it.
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopCondition {
    /// CloudWatch alarm name.
    pub alarm: String,
}

/// A FIS experiment template, by id or by its `Name` tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TemplateRef {
    Id(String),
    Name(String),
}

impl std::fmt::Display for TemplateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateRef::Id(id) => write!(f, "id {id}"),
            TemplateRef::Name(n) => write!(f, "Name tag {n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub name: String,
    #[serde(default)]
    pub metric: Option<MetricQuery>,
    #[serde(default)]
    pub http: Option<HttpCheck>,
    pub tolerance: Tolerance,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricQuery {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// Average, Sum, Minimum, Maximum or SampleCount.
    #[serde(default = "default_stat")]
    pub stat: String,
    #[serde(default = "default_period")]
    pub period_seconds: u32,
    /// How far back to look for the latest datapoint.
    #[serde(default = "default_lookback")]
    pub lookback_minutes: u32,
}

fn default_stat() -> String {
    "Average".into()
}
fn default_period() -> u32 {
    60
}
fn default_lookback() -> u32 {
    10
}

pub const STATS: &[&str] = &["Average", "Sum", "Minimum", "Maximum", "SampleCount"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub url: String,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Requests per check; `tolerance.max_failures` of them may fail.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

fn default_timeout() -> u64 {
    2_000
}
fn default_attempts() -> u32 {
    3
}

/// What "steady" means for a probe. Metric probes: `min`/`max` bound the value (a missing
/// datapoint fails unless `missing_data_ok`). HTTP probes: `status` lists accepted codes
/// (default any 2xx), `max_latency_ms` bounds each request, `max_failures` requests of
/// `attempts` may miss.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub missing_data_ok: bool,
    #[serde(default)]
    pub status: Vec<u16>,
    #[serde(default)]
    pub max_latency_ms: Option<u64>,
    #[serde(default)]
    pub max_failures: u32,
}

impl Rotation {
    /// This month's owner.
    pub fn owner_on(&self, date: NaiveDate) -> Option<&str> {
        let (y, m) = parse_month(&self.anchor_month)?;
        let months = (date.year() - y) as i64 * 12 + (date.month() as i64 - m as i64);
        let n = self.members.len() as i64;
        if n == 0 {
            return None;
        }
        self.members
            .get(months.rem_euclid(n) as usize)
            .map(String::as_str)
    }
}

fn parse_month(s: &str) -> Option<(i32, u32)> {
    let (y, m) = s.split_once('-')?;
    let (y, m) = (y.parse::<i32>().ok()?, m.parse::<u32>().ok()?);
    ((1..=12).contains(&m) && y > 1970 && s.len() == 7).then_some((y, m))
}

impl Registry {
    /// Parses and validates the file as written: placeholders are checked (an unknown one is an
    /// error) but `${environment}` is left in place. For checking the file; the runner reads
    /// it with [`Registry::parse_for`]. Serde errors carry the JSON path (serde_path_to_error).
    pub fn parse(text: &str) -> Result<Registry, RegistryError> {
        Self::load(text, None)
    }

    /// Parses, substitutes `${environment}` with `environment` (the runner's ENVIRONMENT) in
    /// metric namespaces and dimension values, and validates.
    pub fn parse_for(text: &str, environment: &str) -> Result<Registry, RegistryError> {
        Self::load(text, Some(environment))
    }

    fn load(text: &str, environment: Option<&str>) -> Result<Registry, RegistryError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let mut reg: Registry = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            err(
                if path == "." {
                    "(top level)".into()
                } else {
                    path
                },
                inner.to_string(),
            )
        })?;
        reg.substitute(environment)?;
        reg.validate()?;
        Ok(reg)
    }

    /// Every metric query: the error-budget source and each probe's, with its JSON path.
    fn metric_queries_mut(&mut self) -> Vec<(String, &mut MetricQuery)> {
        let mut out = vec![];
        if let Some(ErrorBudgetGate {
            source: BudgetSource::Metric(q),
            ..
        }) = &mut self.error_budget
        {
            out.push(("error_budget.source.metric".to_string(), q));
        }
        for (i, e) in self.experiments.iter_mut().enumerate() {
            for (j, p) in e.steady_state.iter_mut().enumerate() {
                if let Some(q) = &mut p.metric {
                    out.push((format!("experiments[{i}].steady_state[{j}].metric"), q));
                }
            }
        }
        out
    }

    /// `${environment}` in metric namespaces and dimension values becomes `environment`
    /// (`None`: only checked). Any other placeholder, or one where nothing is substituted (the
    /// metric name, a dimension name), is an error naming the field.
    fn substitute(&mut self, environment: Option<&str>) -> Result<(), RegistryError> {
        for (f, q) in self.metric_queries_mut() {
            q.namespace = fill(&q.namespace, environment, &format!("{f}.namespace"))?;
            no_placeholder(&q.name, &format!("{f}.name"))?;
            let mut dims = BTreeMap::new();
            for (k, v) in &q.dimensions {
                let field = format!("{f}.dimensions.{k}");
                no_placeholder(k, &field)?;
                dims.insert(k.clone(), fill(v, environment, &field)?);
            }
            q.dimensions = dims;
        }
        Ok(())
    }

    pub fn experiment(&self, name: &str) -> Option<&Experiment> {
        self.experiments.iter().find(|e| e.name == name)
    }

    pub fn owner(&self, e: &Experiment, date: NaiveDate) -> String {
        self.rotations
            .get(&e.owner_rotation)
            .and_then(|r| r.owner_on(date))
            .unwrap_or("unassigned")
            .to_string()
    }

    fn validate(&self) -> Result<(), RegistryError> {
        if self.version != 1 {
            return Err(err(
                "version",
                format!("{} is not supported; use 1", self.version),
            ));
        }
        for (name, r) in &self.rotations {
            let f = format!("rotations.{name}");
            if parse_month(&r.anchor_month).is_none() {
                return Err(err(
                    format!("{f}.anchor_month"),
                    format!("{:?} is not a month like \"2026-01\"", r.anchor_month),
                ));
            }
            if r.members.is_empty() || r.members.iter().any(|m| m.trim().is_empty()) {
                return Err(err(
                    format!("{f}.members"),
                    "needs at least one non-empty name",
                ));
            }
        }
        if let Some(b) = &self.error_budget {
            if !(0.0..=100.0).contains(&b.min_remaining_percent) {
                return Err(err("error_budget.min_remaining_percent", "must be 0-100"));
            }
            if let BudgetSource::Metric(q) = &b.source {
                check_metric(q, "error_budget.source.metric")?;
            }
        }
        if self.experiments.is_empty() {
            return Err(err(
                "experiments",
                "is empty; register at least one experiment",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, e) in self.experiments.iter().enumerate() {
            let f = |field: &str| format!("experiments[{i}].{field}");
            let ok_name = !e.name.is_empty()
                && e.name.len() <= 48
                && e.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok_name {
                return Err(err(
                    f("name"),
                    format!("{:?} must be 1-48 characters of a-z, 0-9 and '-'", e.name),
                ));
            }
            if !seen.insert(e.name.clone()) {
                return Err(err(f("name"), format!("{:?} is registered twice", e.name)));
            }
            for (field, v) in [("title", &e.title), ("hypothesis", &e.hypothesis)] {
                if v.trim().is_empty() {
                    return Err(err(f(field), "must not be empty"));
                }
            }
            if !e.runbook.starts_with("docs/") || !e.runbook.ends_with(".md") {
                return Err(err(f("runbook"), "must be a docs/....md path"));
            }
            if !self.rotations.contains_key(&e.owner_rotation) {
                return Err(err(
                    f("owner_rotation"),
                    format!("{:?} is not a key of rotations", e.owner_rotation),
                ));
            }
            if e.blast_radius.count == 0 {
                return Err(err(f("blast_radius.count"), "must be at least 1"));
            }
            if e.blast_radius.selector.trim().is_empty() {
                return Err(err(f("blast_radius.selector"), "must not be empty"));
            }
            if e.stop_conditions.is_empty() {
                return Err(err(
                    f("stop_conditions"),
                    "is empty: an experiment without a stop condition (a CloudWatch alarm) is refused",
                ));
            }
            for (j, s) in e.stop_conditions.iter().enumerate() {
                if s.alarm.trim().is_empty() {
                    return Err(err(
                        f(&format!("stop_conditions[{j}].alarm")),
                        "must name an alarm",
                    ));
                }
            }
            if e.steady_state.is_empty() {
                return Err(err(
                    f("steady_state"),
                    "is empty: without a steady-state probe the hypothesis cannot be checked",
                ));
            }
            for (j, p) in e.steady_state.iter().enumerate() {
                check_probe(p, &f(&format!("steady_state[{j}]")))?;
            }
            match &e.fis_template {
                TemplateRef::Id(s) | TemplateRef::Name(s) if s.trim().is_empty() => {
                    return Err(err(f("fis_template"), "must not be empty"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The placeholder the runner fills in: its own ENVIRONMENT.
pub const ENVIRONMENT_PLACEHOLDER: &str = "${environment}";

const PLACEHOLDER_FIX: &str =
    "the only placeholder is ${environment} (the runner's ENVIRONMENT); write the value out or use ${environment}";

/// `value` with each `${environment}` replaced by `environment` (kept when `None`); an
/// unknown or unclosed `${...}` is an error for `field`.
fn fill(value: &str, environment: Option<&str>, field: &str) -> Result<String, RegistryError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(err(
                field,
                format!("{value:?} has an unclosed placeholder `${{`; {PLACEHOLDER_FIX}"),
            ));
        };
        let name = &after[..end];
        if name != "environment" {
            return Err(err(
                field,
                format!("{value:?}: unknown placeholder `${{{name}}}`; {PLACEHOLDER_FIX}"),
            ));
        }
        out.push_str(environment.unwrap_or(ENVIRONMENT_PLACEHOLDER));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Fields where nothing is substituted must not look as if something would be.
fn no_placeholder(value: &str, field: &str) -> Result<(), RegistryError> {
    if value.contains("${") {
        return Err(err(
            field,
            format!(
                "{value:?}: placeholders are substituted only in a metric's namespace and dimension values; write the value out"
            ),
        ));
    }
    Ok(())
}

fn check_metric(q: &MetricQuery, f: &str) -> Result<(), RegistryError> {
    if q.namespace.is_empty() || q.name.is_empty() {
        return Err(err(format!("{f}.name"), "namespace and name are required"));
    }
    if !STATS.contains(&q.stat.as_str()) {
        return Err(err(
            format!("{f}.stat"),
            format!("{:?} is not one of {}", q.stat, STATS.join(", ")),
        ));
    }
    if q.period_seconds == 0 || (!q.period_seconds.is_multiple_of(60) && q.period_seconds > 60) {
        return Err(err(
            format!("{f}.period_seconds"),
            "must be positive (a multiple of 60 above 60)",
        ));
    }
    if q.lookback_minutes == 0 {
        return Err(err(format!("{f}.lookback_minutes"), "must be at least 1"));
    }
    Ok(())
}

fn check_probe(p: &Probe, f: &str) -> Result<(), RegistryError> {
    if p.name.trim().is_empty() {
        return Err(err(format!("{f}.name"), "must not be empty"));
    }
    let t = &p.tolerance;
    match (&p.metric, &p.http) {
        (Some(q), None) => {
            check_metric(q, &format!("{f}.metric"))?;
            if t.min.is_none() && t.max.is_none() {
                return Err(err(
                    format!("{f}.tolerance"),
                    "a metric probe needs min and/or max",
                ));
            }
            if let (Some(lo), Some(hi)) = (t.min, t.max) {
                if lo > hi {
                    return Err(err(format!("{f}.tolerance"), "min is above max"));
                }
            }
        }
        (None, Some(h)) => {
            if !(h.url.starts_with("http://") || h.url.starts_with("https://")) {
                return Err(err(
                    format!("{f}.http.url"),
                    format!("{:?} is not an http(s) URL", h.url),
                ));
            }
            if h.attempts == 0 || h.attempts > 20 {
                return Err(err(format!("{f}.http.attempts"), "must be 1-20"));
            }
            if h.timeout_ms == 0 {
                return Err(err(format!("{f}.http.timeout_ms"), "must be positive"));
            }
            if t.max_failures >= h.attempts {
                return Err(err(
                    format!("{f}.tolerance.max_failures"),
                    "must be below http.attempts (else the probe can never fail)",
                ));
            }
        }
        _ => {
            return Err(err(
                f.to_string(),
                "a probe has exactly one of `metric` or `http`",
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample_text() -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../events/chaos-runner/experiments.json"),
        )
        .expect("events/chaos-runner/experiments.json")
    }

    #[test]
    fn the_registered_experiments_parse() {
        let r = Registry::parse(&sample_text()).unwrap();
        let names: Vec<&str> = r.experiments.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "rq-queue",
                "s3-storage",
                "geocoding-dns",
                "postgres-failover"
            ]
        );
        let db = r.experiment("postgres-failover").unwrap();
        assert_eq!(db.cadence, Cadence::Quarterly);
        assert_eq!(db.runbook, "docs/db/disaster_recovery.md");
        for e in &r.experiments {
            assert!(!e.stop_conditions.is_empty());
            assert!(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../..")
                    .join(&e.runbook)
                    .exists(),
                "{} runbook {} exists",
                e.name,
                e.runbook
            );
        }
    }

    fn mutate(f: impl FnOnce(&mut serde_json::Value)) -> Result<Registry, RegistryError> {
        let mut v: serde_json::Value = serde_json::from_str(&sample_text()).unwrap();
        f(&mut v);
        Registry::parse(&v.to_string())
    }

    #[test]
    fn errors_name_the_field() {
        let e =
            mutate(|v| v["experiments"][1]["stop_conditions"] = serde_json::json!([])).unwrap_err();
        assert_eq!(e.field, "experiments[1].stop_conditions");
        assert!(e.problem.contains("refused"), "{e}");
        let e =
            mutate(|v| v["experiments"][0]["blast_radius"]["count"] = "one".into()).unwrap_err();
        assert_eq!(e.field, "experiments[0].blast_radius.count", "{e}");
        let e = mutate(|v| v["experiments"][2]["cadence"] = "weekly".into()).unwrap_err();
        assert_eq!(e.field, "experiments[2].cadence", "{e}");
        let e = mutate(|v| v["experiments"][0]["hypotesis"] = "typo".into()).unwrap_err();
        assert!(e.problem.contains("hypotesis"), "{e}");
        let e = mutate(|v| v["experiments"][0]["owner_rotation"] = "nobody".into()).unwrap_err();
        assert_eq!(e.field, "experiments[0].owner_rotation");
        let e =
            mutate(|v| v["experiments"][0]["steady_state"][1]["tolerance"] = serde_json::json!({}))
                .unwrap_err();
        assert_eq!(e.field, "experiments[0].steady_state[1].tolerance", "{e}");
        assert!(e.problem.contains("min and/or max"), "{e}");
        let e = mutate(|v| v["experiments"][3]["name"] = "rq-queue".into()).unwrap_err();
        assert!(e.problem.contains("twice"), "{e}");
        let e = mutate(|v| v["rotations"]["platform-sre"]["anchor_month"] = "January".into())
            .unwrap_err();
        assert_eq!(e.field, "rotations.platform-sre.anchor_month");
        let e = Registry::parse("{").unwrap_err();
        assert!(!e.problem.is_empty());
    }

    #[test]
    fn environment_is_substituted_in_metric_namespaces_and_dimensions() {
        let r = Registry::parse_for(&sample_text(), "staging").unwrap();
        let backlog = r.experiments[0].steady_state[1].metric.as_ref().unwrap();
        assert_eq!(backlog.name, "worker_backlog_total");
        assert_eq!(
            backlog.dimensions,
            BTreeMap::from([
                ("environment".to_string(), "staging".to_string()),
                ("function".to_string(), "worker-scaler-staging".to_string()),
            ])
        );
        let Some(ErrorBudgetGate {
            source: BudgetSource::Metric(budget),
            ..
        }) = &r.error_budget
        else {
            panic!("the sample's error budget reads a metric");
        };
        assert_eq!(budget.namespace, "PlatformPlaybook/SLO");
        assert_eq!(
            budget.dimensions,
            BTreeMap::from([
                ("environment".to_string(), "staging".to_string()),
                ("function".to_string(), "uptime-probe-staging".to_string()),
                ("slo".to_string(), "api-availability".to_string()),
            ])
        );
        // Nothing is left unresolved anywhere in a metric query.
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("${"), "{text}");
        // In the namespace too, several times in one value, and next to literal text.
        let mut v: serde_json::Value = serde_json::from_str(&sample_text()).unwrap();
        let m = &mut v["experiments"][0]["steady_state"][1]["metric"];
        m["namespace"] = "Playbook/${environment}".into();
        m["dimensions"]["pair"] = "${environment}-${environment}/x".into();
        // `parse` checks the placeholders but keeps them.
        let kept = Registry::parse(&v.to_string()).unwrap();
        let m = kept.experiments[0].steady_state[1].metric.as_ref().unwrap();
        assert_eq!(m.namespace, "Playbook/${environment}");
        assert_eq!(m.dimensions["function"], "worker-scaler-${environment}");
        let r = Registry::parse_for(&v.to_string(), "prod").unwrap();
        let m = r.experiments[0].steady_state[1].metric.as_ref().unwrap();
        assert_eq!(m.namespace, "Playbook/prod");
        assert_eq!(m.dimensions["pair"], "prod-prod/x");
        assert_eq!(m.dimensions["function"], "worker-scaler-prod");
        // Text without placeholders is untouched.
        let s3 = r.experiments[1].steady_state[1].metric.as_ref().unwrap();
        assert_eq!(s3.dimensions["FilterId"], "EntireBucket");
    }

    #[test]
    fn unknown_placeholders_name_the_field_and_the_fix() {
        let parse_both = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(&sample_text()).unwrap();
            f(&mut v);
            let a = Registry::parse(&v.to_string()).unwrap_err();
            let b = Registry::parse_for(&v.to_string(), "staging").unwrap_err();
            assert_eq!(a, b, "parse and parse_for agree");
            a
        };
        let e = parse_both(&|v| {
            v["experiments"][0]["steady_state"][1]["metric"]["dimensions"]["function"] =
                "worker-scaler-${env}".into()
        });
        assert_eq!(
            e.field,
            "experiments[0].steady_state[1].metric.dimensions.function"
        );
        assert!(e.problem.contains("unknown placeholder `${env}`"), "{e}");
        assert!(
            e.problem.contains("the only placeholder is ${environment}"),
            "{e}"
        );
        let e = parse_both(&|v| {
            v["error_budget"]["source"]["metric"]["dimensions"]["slo"] = "${slo}".into()
        });
        assert_eq!(e.field, "error_budget.source.metric.dimensions.slo");
        assert!(e.problem.contains("`${slo}`"), "{e}");
        let e = parse_both(&|v| {
            v["experiments"][3]["steady_state"][1]["metric"]["namespace"] =
                "AWS/${Environment}".into()
        });
        assert_eq!(e.field, "experiments[3].steady_state[1].metric.namespace");
        let e = parse_both(&|v| {
            v["experiments"][0]["steady_state"][1]["metric"]["dimensions"]["environment"] =
                "${environment".into()
        });
        assert_eq!(
            e.field,
            "experiments[0].steady_state[1].metric.dimensions.environment"
        );
        assert!(e.problem.contains("unclosed"), "{e}");
        // Where nothing is substituted, even `${environment}` is refused.
        let e = parse_both(&|v| {
            v["experiments"][0]["steady_state"][1]["metric"]["name"] =
                "backlog_${environment}".into()
        });
        assert_eq!(e.field, "experiments[0].steady_state[1].metric.name");
        assert!(e.problem.contains("only in a metric's namespace"), "{e}");
        // The cold start's message carries the path and the fix.
        let msg = e.to_string();
        assert!(
            msg.starts_with("experiments[0].steady_state[1].metric.name: "),
            "{msg}"
        );
    }

    #[test]
    fn owner_rotates_monthly() {
        let r = Rotation {
            anchor_month: "2026-01".into(),
            members: vec!["a".into(), "b".into(), "c".into()],
        };
        let d = |y, m| NaiveDate::from_ymd_opt(y, m, 2).unwrap();
        assert_eq!(r.owner_on(d(2026, 1)), Some("a"));
        assert_eq!(r.owner_on(d(2026, 2)), Some("b"));
        assert_eq!(r.owner_on(d(2026, 4)), Some("a"));
        assert_eq!(r.owner_on(d(2025, 12)), Some("c"), "before the anchor too");
        assert_eq!(r.owner_on(d(2027, 1)), Some("a"));
    }
}
