//! The experiment registry: every experiment is pre-registered in a JSON file (hypothesis,
//! blast radius, owner rotation, stop conditions, steady-state probes, FIS template) before the
//! runner may start it. Parsing names the field at fault (`experiments[2].stop_conditions`),
//! and an experiment without a stop condition is refused here, at cold start.

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
    /// Parses and validates. Serde errors carry the JSON path (serde_path_to_error).
    pub fn parse(text: &str) -> Result<Registry, RegistryError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let reg: Registry = serde_path_to_error::deserialize(de).map_err(|e| {
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
        reg.validate()?;
        Ok(reg)
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
