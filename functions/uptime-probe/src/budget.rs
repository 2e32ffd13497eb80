//! The error budget, pure (no AWS types): the SLO file resolved for one environment, and the
//! remaining budget computed from two sums (docs/uptime-probe.md, "Error budget").
//!
//! The SLO file is infra/slo/slos.json, compiled in; it is parsed and validated by the same
//! code that generates the burn-rate alarms (`crates/slo`), so the budget never reads a file
//! the alarms would refuse.

use serde::Serialize;

/// infra/slo/slos.json as built into the binary.
pub const SLO_FILE: &str = include_str!("../../../infra/slo/slos.json");

/// The placeholder the SLO file uses in dimension values.
const ENVIRONMENT_PLACEHOLDER: &str = "${environment}";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BudgetError {
    /// The SLO file does not parse or does not validate.
    #[error("SLO file infra/slo/slos.json: {0}")]
    File(String),
}

/// One CloudWatch metric to sum: a name and its exact dimension set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSpec {
    pub name: String,
    /// Sorted by name; `${environment}` already replaced.
    pub dimensions: Vec<(String, String)>,
}

/// One SLO, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct SloSpec {
    /// The `slo` dimension of the emitted metric (`api-availability`).
    pub name: String,
    pub objective_percent: f64,
    pub errors: MetricSpec,
    pub total: MetricSpec,
}

/// The SLO file for one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct SloSet {
    /// The file's `namespace` (where the SLI metrics are).
    pub namespace: String,
    /// The budget window: the last `period_days` days.
    pub period_days: u32,
    pub slos: Vec<SloSpec>,
}

fn metric_spec(m: &slo::MetricRef, environment: &str) -> MetricSpec {
    MetricSpec {
        name: m.metric.clone(),
        dimensions: m
            .dimensions
            .iter()
            .map(|(k, v)| (k.clone(), v.replace(ENVIRONMENT_PLACEHOLDER, environment)))
            .collect(),
    }
}

/// Parses and validates an SLO file (`crates/slo`'s rules) and substitutes `environment`.
pub fn resolve(text: &str, environment: &str) -> Result<SloSet, BudgetError> {
    let file = slo::parse(text).map_err(|e| BudgetError::File(e.to_string()))?;
    slo::plan(&file).map_err(|e| BudgetError::File(e.to_string()))?;
    Ok(SloSet {
        namespace: file.namespace.clone(),
        period_days: file.period_days,
        slos: file
            .slos
            .iter()
            .map(|s| SloSpec {
                name: s.name.clone(),
                objective_percent: s.objective_percent,
                errors: metric_spec(&s.sli.errors, environment),
                total: metric_spec(&s.sli.total, environment),
            })
            .collect(),
    })
}

/// The share of the error budget left, in percent:
/// `100 × (1 − (errors / total) / (1 − objective / 100))`.
///
/// - `None` when there is nothing to judge: `total` is 0 (no data), or an input is negative
///   or not finite. The caller must report "unknown", never a made-up 100.
/// - Negative when the budget is overspent (e.g. −50: half a budget more than allowed was
///   spent); not clamped, so the gate and dashboards see how far over it is. `errors` above
///   `total` (a mis-wired SLI) gives a large negative value too.
/// - An objective of 100 % has a budget of zero events (the formula would divide by zero):
///   the remaining budget is 100 with no error and 0 with any error (not −∞: the metric must
///   stay finite for CloudWatch).
pub fn remaining_percent(errors: f64, total: f64, objective_percent: f64) -> Option<f64> {
    if !(errors.is_finite() && total.is_finite() && objective_percent.is_finite())
        || errors < 0.0
        || total <= 0.0
    {
        return None;
    }
    let allowed = 1.0 - objective_percent / 100.0;
    if allowed <= 0.0 {
        return Some(if errors > 0.0 { 0.0 } else { 100.0 });
    }
    Some(100.0 * (1.0 - (errors / total) / allowed))
}

/// Why a budget is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unknown {
    /// The total metric has no datapoint (or sums to 0) in the window.
    NoData,
    /// The total has data but the errors metric has none: the SLI is not emitted (e.g.
    /// `probe_slow_requests` for a target without `latency_threshold_ms`), so 0 errors would
    /// be a guess.
    NoErrorsData,
}

/// One SLO's budget over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Budget {
    pub name: String,
    pub objective_percent: f64,
    /// Sum of the errors metric; `null` without a datapoint.
    pub errors: Option<f64>,
    /// Sum of the total metric; `null` without a datapoint.
    pub total: Option<f64>,
    /// errors / total; `null` when unknown.
    pub error_ratio: Option<f64>,
    /// `null` when unknown (see `unknown`).
    pub remaining_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<Unknown>,
}

/// Judges one SLO from the two sums (`None` = the metric had no datapoint in the window).
pub fn evaluate(slo: &SloSpec, errors: Option<f64>, total: Option<f64>) -> Budget {
    let (error_ratio, remaining, unknown) = match (errors, total) {
        (_, None) => (None, None, Some(Unknown::NoData)),
        (None, Some(_)) => (None, None, Some(Unknown::NoErrorsData)),
        (Some(e), Some(t)) => match remaining_percent(e, t, slo.objective_percent) {
            Some(r) => (Some(e / t), Some(r), None),
            None => (None, None, Some(Unknown::NoData)),
        },
    };
    Budget {
        name: slo.name.clone(),
        objective_percent: slo.objective_percent,
        errors,
        total,
        error_ratio,
        remaining_percent: remaining,
        unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn remaining_exact_numbers() {
        // 2 errors in 1000 at 99.5 %: 0.2 % of a 0.5 % budget spent, 60 % left.
        assert!(close(remaining_percent(2.0, 1000.0, 99.5), 60.0));
        assert!(close(remaining_percent(0.0, 1000.0, 99.5), 100.0));
        // Exactly the budget: 5 in 1000.
        assert!(close(remaining_percent(5.0, 1000.0, 99.5), 0.0));
        // Overspent: 10 in 1000 is two budgets, −100 %.
        assert!(close(remaining_percent(10.0, 1000.0, 99.5), -100.0));
        // 95 %: 3 slow in 100 spends 60 % of the 5 % budget.
        assert!(close(remaining_percent(3.0, 100.0, 95.0), 40.0));
        // 99 %: 1 in 400 spends a quarter.
        assert!(close(remaining_percent(1.0, 400.0, 99.0), 75.0));
    }

    #[test]
    fn no_data_is_unknown_never_100() {
        assert_eq!(remaining_percent(0.0, 0.0, 99.5), None);
        assert_eq!(remaining_percent(3.0, 0.0, 99.5), None);
        assert_eq!(remaining_percent(f64::NAN, 10.0, 99.5), None);
        assert_eq!(remaining_percent(1.0, f64::INFINITY, 99.5), None);
        assert_eq!(remaining_percent(-1.0, 10.0, 99.5), None);
        assert_eq!(remaining_percent(1.0, -10.0, 99.5), None);
    }

    #[test]
    fn objective_100_does_not_divide_by_zero() {
        assert_eq!(remaining_percent(0.0, 1000.0, 100.0), Some(100.0));
        assert_eq!(remaining_percent(1.0, 1000.0, 100.0), Some(0.0));
        assert_eq!(remaining_percent(1.0, 0.0, 100.0), None);
        // Above 100 is nonsense; it is handled the same way (never ∞ or NaN).
        assert_eq!(remaining_percent(1.0, 10.0, 120.0), Some(0.0));
    }

    #[test]
    fn the_compiled_in_file_resolves_for_an_environment() {
        let set = resolve(SLO_FILE, "prod").unwrap();
        assert_eq!(set.namespace, "PlatformPlaybook");
        assert_eq!(set.period_days, 30);
        let names: Vec<_> = set.slos.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["api-availability", "quote-latency", "sse-uptime"]);
        let api = &set.slos[0];
        assert_eq!(api.objective_percent, 99.5);
        assert_eq!(api.errors.name, "probe_errors");
        assert_eq!(api.total.name, "probe_requests");
        assert_eq!(
            api.total.dimensions,
            [
                ("environment".to_string(), "prod".to_string()),
                ("function".to_string(), "uptime-probe-prod".to_string()),
                ("target".to_string(), "api".to_string()),
            ]
        );
        assert_eq!(set.slos[1].errors.name, "probe_slow_requests");
        assert!(set
            .slos
            .iter()
            .flat_map(|s| s.errors.dimensions.iter().chain(&s.total.dimensions))
            .all(|(_, v)| !v.contains("${")));
    }

    #[test]
    fn a_bad_file_is_named() {
        let e = resolve("{\"namespace\": \"x\"}", "dev").unwrap_err();
        assert!(e.to_string().contains("infra/slo/slos.json"), "{e}");
        let bad = SLO_FILE.replace("99.5", "100");
        let e = resolve(&bad, "dev").unwrap_err().to_string();
        assert!(
            e.contains("api-availability") && e.contains("objective"),
            "{e}"
        );
    }

    #[test]
    fn evaluate_reports_unknown_with_a_reason() {
        let set = resolve(SLO_FILE, "dev").unwrap();
        let api = &set.slos[0];
        let b = evaluate(api, Some(2.0), Some(1000.0));
        assert!(close(b.remaining_percent, 60.0));
        assert!(close(b.error_ratio, 0.002));
        assert_eq!(b.unknown, None);
        let b = evaluate(api, None, None);
        assert_eq!(
            (b.remaining_percent, b.unknown),
            (None, Some(Unknown::NoData))
        );
        let b = evaluate(api, Some(0.0), Some(0.0));
        assert_eq!(
            (b.remaining_percent, b.unknown),
            (None, Some(Unknown::NoData))
        );
        let b = evaluate(api, None, Some(100.0));
        assert_eq!(
            (b.remaining_percent, b.unknown),
            (None, Some(Unknown::NoErrorsData))
        );
        let v = serde_json::to_value(evaluate(api, None, None)).unwrap();
        assert!(
            v["remaining_percent"].is_null() && v["unknown"] == "no_data",
            "{v}"
        );
    }
}
