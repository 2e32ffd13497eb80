//! SLOs as code: one definition file (infra/slo/slos.json) becomes multi-window,
//! multi-burn-rate CloudWatch alarms (the Google SRE workbook, "Alerting on SLOs", table 5-8),
//! combined with composite alarms and routed by severity to SNS topics, as Sloth and Pyrra do
//! for Prometheus. Every threshold is computed here from the objective and the tier; none is
//! typed by hand (docs/slo.md).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

pub mod tf;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SloError {
    #[error("SLO file: {0}")]
    Parse(String),
    #[error("SLO `{slo}`: {problem}")]
    Invalid { slo: String, problem: String },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SloFile {
    /// CloudWatch namespace of the metrics (the functions' `METRICS_NAMESPACE`).
    pub namespace: String,
    /// The SLO period the error budget is counted over (the workbook's 30 days).
    pub period_days: u32,
    pub slos: Vec<Slo>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Lower-case letters, digits and `-`; names the alarms.
    pub name: String,
    pub description: String,
    /// E.g. 99.5: at most 0.5 % of events may be bad over the period.
    pub objective_percent: f64,
    pub runbook: Option<String>,
    pub sli: Sli,
}

/// The SLI as a ratio of two counters: bad events over all events.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sli {
    pub errors: MetricRef,
    pub total: MetricRef,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricRef {
    pub metric: String,
    /// Values may contain `${environment}` (the Terraform `var.environment`).
    pub dimensions: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// PagerDuty.
    Critical,
    /// Slack #on-call.
    Warn,
    /// Email digest: recoveries and missing telemetry.
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warn => "warn",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Page,
    Ticket,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Page => "page",
            Kind::Ticket => "ticket",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            Kind::Page => Severity::Critical,
            Kind::Ticket => Severity::Warn,
        }
    }
}

/// One row of the workbook's table: alert when `budget_consumed` of the period's error budget
/// is spent within `long_minutes`, confirmed by the `short_minutes` window (1/12 of the long
/// one) so the alert resets quickly once the burn stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tier {
    pub kind: Kind,
    pub long_minutes: u32,
    pub short_minutes: u32,
    pub budget_consumed: f64,
}

/// The workbook's recommended tiers: 2 % of the budget in 1 h and 5 % in 6 h page; 10 % in
/// 1 day and 10 % in 3 days open a ticket.
pub const WORKBOOK_TIERS: [Tier; 4] = [
    Tier {
        kind: Kind::Page,
        long_minutes: 60,
        short_minutes: 5,
        budget_consumed: 0.02,
    },
    Tier {
        kind: Kind::Page,
        long_minutes: 360,
        short_minutes: 30,
        budget_consumed: 0.05,
    },
    Tier {
        kind: Kind::Ticket,
        long_minutes: 1440,
        short_minutes: 120,
        budget_consumed: 0.10,
    },
    Tier {
        kind: Kind::Ticket,
        long_minutes: 4320,
        short_minutes: 360,
        budget_consumed: 0.10,
    },
];

impl Tier {
    /// How many times faster than "exactly on budget" the budget burns when this tier fires:
    /// budget_consumed × period ÷ long window (0.02 × 720 h ÷ 1 h = 14.4).
    pub fn burn_rate(&self, period_days: u32) -> f64 {
        round9(self.budget_consumed * (period_days as f64 * 24.0 * 60.0) / self.long_minutes as f64)
    }
}

/// Rounds away float noise (14.399999999999999 → 14.4) so the output is stable and readable.
pub fn round9(x: f64) -> f64 {
    (x * 1e9).round() / 1e9
}

/// One window's alarm: error ratio over `window_minutes` above `threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowAlarm {
    pub slo: String,
    pub window_minutes: u32,
    pub burn_rate: f64,
    /// burn_rate × (1 − objective), as a ratio (0.072 = 7.2 % errors).
    pub threshold: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TierAlarms {
    pub tier: Tier,
    pub burn_rate: f64,
    pub long: WindowAlarm,
    pub short: WindowAlarm,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SloPlan {
    pub slo: Slo,
    /// 1 − objective, as a ratio (0.005 for 99.5 %).
    pub error_budget: f64,
    pub tiers: Vec<TierAlarms>,
}

impl SloPlan {
    pub fn tier(&self, long_minutes: u32) -> Option<&TierAlarms> {
        self.tiers
            .iter()
            .find(|t| t.tier.long_minutes == long_minutes)
    }
}

pub fn parse(text: &str) -> Result<SloFile, SloError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de)
        .map_err(|e| SloError::Parse(format!("{}: {}", e.path(), e.inner())))
}

fn invalid(slo: &str, problem: impl Into<String>) -> SloError {
    SloError::Invalid {
        slo: slo.to_string(),
        problem: problem.into(),
    }
}

/// `at` is the reference's place in the SLO (`sli.errors`, `sli.total`), so errors name the
/// field.
fn check_metric(slo: &str, at: &str, m: &MetricRef) -> Result<(), SloError> {
    if m.metric.is_empty()
        || !m
            .metric
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(invalid(
            slo,
            format!(
                "{at}.metric {:?} is not a metric name (letters, digits, '_')",
                m.metric
            ),
        ));
    }
    for (k, v) in &m.dimensions {
        let stripped = v.replace("${environment}", "");
        if stripped.contains("${") || stripped.contains('"') || stripped.contains('\\') {
            return Err(invalid(
                slo,
                format!(
                    "{at}.dimensions.{k} {v:?}: only ${{environment}} may be substituted, no quotes"
                ),
            ));
        }
    }
    Ok(())
}

/// Validates the file and computes every alarm.
pub fn plan(file: &SloFile) -> Result<Vec<SloPlan>, SloError> {
    if file.period_days == 0 || file.period_days > 90 {
        return Err(invalid(
            "*",
            format!("period_days {} must be 1-90", file.period_days),
        ));
    }
    if file.slos.is_empty() {
        return Err(invalid("*", "the file defines no SLO"));
    }
    let mut names = std::collections::BTreeSet::new();
    let mut out = vec![];
    for slo in &file.slos {
        let n = &slo.name;
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(invalid(
                n,
                "name must be lower-case letters, digits and '-'",
            ));
        }
        if !names.insert(n.clone()) {
            return Err(invalid(
                n,
                "name is defined twice; SLO names must be unique",
            ));
        }
        if !(slo.objective_percent > 0.0 && slo.objective_percent < 100.0) {
            return Err(invalid(
                n,
                format!(
                    "objective_percent {} must be above 0 and below 100",
                    slo.objective_percent
                ),
            ));
        }
        check_metric(n, "sli.errors", &slo.sli.errors)?;
        check_metric(n, "sli.total", &slo.sli.total)?;
        let budget = round9(1.0 - slo.objective_percent / 100.0);
        let mut tiers = vec![];
        for tier in WORKBOOK_TIERS {
            let burn = tier.burn_rate(file.period_days);
            let threshold = round9(burn * budget);
            if threshold >= 1.0 {
                // An error ratio cannot exceed 1: this alarm could never fire.
                return Err(invalid(
                    n,
                    format!(
                        "objective {} % is too loose for the {}× burn tier ({} × {} ≥ 100 % errors): the alarm could never fire",
                        slo.objective_percent, burn, burn, budget
                    ),
                ));
            }
            let w = |minutes| WindowAlarm {
                slo: n.clone(),
                window_minutes: minutes,
                burn_rate: burn,
                threshold,
            };
            tiers.push(TierAlarms {
                tier,
                burn_rate: burn,
                long: w(tier.long_minutes),
                short: w(tier.short_minutes),
            });
        }
        out.push(SloPlan {
            slo: slo.clone(),
            error_budget: budget,
            tiers,
        });
    }
    Ok(out)
}

/// `60` → `1h`, `5` → `5m`, `1440` → `1d`.
pub fn window_label(minutes: u32) -> String {
    // Whole days, then whole hours (`is_multiple_of` needs Rust 1.87; the MSRV is 1.85).
    let (days, hours) = (minutes / 1440, minutes / 60);
    if minutes > 0 && days * 1440 == minutes {
        format!("{days}d")
    } else if minutes > 0 && hours * 60 == minutes {
        format!("{hours}h")
    } else {
        format!("{minutes}m")
    }
}

/// Percent with up to 4 decimals, trailing zeros dropped (7.2, 0.5, 14.4).
pub fn pct(ratio: f64) -> String {
    let s = format!("{:.4}", round9(ratio * 100.0));
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The thresholds as a Markdown table (`slo table`), for docs/slo.md.
pub fn markdown_table(plans: &[SloPlan]) -> String {
    let mut s = String::from(
        "| SLO | objective | tier | burn rate | long / short window | alarm when error ratio > | severity |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for p in plans {
        for t in &p.tiers {
            let _ = writeln!(
                s,
                "| `{}` | {} % | {} | {}× | {} / {} | {} % | {} |",
                p.slo.name,
                p.slo.objective_percent,
                t.tier.kind.as_str(),
                t.burn_rate,
                window_label(t.long.window_minutes),
                window_label(t.short.window_minutes),
                pct(t.long.threshold),
                t.tier.kind.severity().as_str()
            );
        }
    }
    s
}
