//! The function's own configuration, read once at cold start (docs/cost-anomaly.md#configuration).
//! Every variable is `FINOPS_`-prefixed: all functions share one environment file locally.

use serde::Serialize;
use shared::config::Vars;
use shared::SuiteError;

use crate::detect::Params;

/// One budget the function keeps in place: `NAME=AMOUNT[@ENV]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetSpec {
    pub name: String,
    /// Monthly limit in USD.
    pub limit: f64,
    /// Restricts the budget (and its forecast) to one `env` tag value; `None` is the account.
    pub env: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub enum NotificationKind {
    Actual,
    Forecasted,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Actual => "ACTUAL",
            NotificationKind::Forecasted => "FORECASTED",
        }
    }
}

/// One wanted notification: `ACTUAL:80` etc.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Threshold {
    pub kind: NotificationKind,
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `FINOPS_HISTORY_DAYS`: days of daily cost pulled and judged (default 90).
    pub history_days: u32,
    /// `FINOPS_CE_MAX_REQUESTS`: Cost Explorer requests per run ($0.01 each; default 20).
    pub max_requests: u32,
    /// `FINOPS_TAG_KEY`: the cost allocation tag that names the environment (default `env`).
    pub tag_key: String,
    /// `FINOPS_DOLLAR_FLOOR`, `FINOPS_PERCENT_GATE`, `FINOPS_DRIFT_PERCENT_GATE`,
    /// `FINOPS_SPIKE_SIGMAS`, `FINOPS_WARMUP_DAYS`: the detectors' knobs.
    pub params: Params,
    /// `FINOPS_BUDGETS`: `NAME=AMOUNT[@ENV],...`.
    pub budgets: Vec<BudgetSpec>,
    /// `FINOPS_BUDGET_THRESHOLDS`: default `ACTUAL:80,ACTUAL:100,FORECASTED:120`.
    pub thresholds: Vec<Threshold>,
    /// `FINOPS_TOPIC_ARN`: the SNS topic budget notifications go to (the FinOps channel).
    pub topic_arn: Option<String>,
    /// `FINOPS_ACCOUNT_ID`: the account whose budgets are managed (Budgets API needs it).
    pub account_id: Option<String>,
    /// `FINOPS_BASELINE_MONTH`: `YYYY-MM` the monthly delta compares against (default: the
    /// month before the one reported).
    pub baseline_month: Option<String>,
    /// `FINOPS_CE_FORECAST`: `on` (default) asks GetCostForecast; `off` uses the own model only.
    pub ce_forecast: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            history_days: 90,
            max_requests: 20,
            tag_key: "env".into(),
            params: Params::default(),
            budgets: vec![],
            thresholds: default_thresholds(),
            topic_arn: None,
            account_id: None,
            baseline_month: None,
            ce_forecast: true,
        }
    }
}

pub fn default_thresholds() -> Vec<Threshold> {
    vec![
        Threshold {
            kind: NotificationKind::Actual,
            percent: 80.0,
        },
        Threshold {
            kind: NotificationKind::Actual,
            percent: 100.0,
        },
        Threshold {
            kind: NotificationKind::Forecasted,
            percent: 120.0,
        },
    ]
}

fn bad(var: &str, problem: impl Into<String>) -> SuiteError {
    SuiteError::Config {
        var: var.into(),
        problem: problem.into(),
    }
}

pub fn parse_budgets(spec: &str) -> Result<Vec<BudgetSpec>, String> {
    let mut out: Vec<BudgetSpec> = vec![];
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) = item.split_once('=').ok_or_else(|| {
            format!("{item:?} is not NAME=AMOUNT[@ENV], e.g. prod-monthly=10000@prod")
        })?;
        let (amount, env) = match rest.split_once('@') {
            Some((a, e)) if !e.trim().is_empty() => (a, Some(e.trim().to_string())),
            Some(_) => return Err(format!("{item:?}: empty env after '@'")),
            None => (rest, None),
        };
        let limit: f64 = amount
            .trim()
            .parse()
            .map_err(|_| format!("{item:?}: {amount:?} is not an amount in USD"))?;
        if !(limit.is_finite() && limit > 0.0) {
            return Err(format!("{item:?}: the amount must be above 0"));
        }
        let name = name.trim();
        if name.is_empty() || name.len() > 100 || name.contains(':') || name.contains('\\') {
            return Err(format!(
                "{item:?}: budget names are 1-100 characters without ':' or '\\'"
            ));
        }
        if out.iter().any(|b| b.name == name) {
            return Err(format!("budget {name:?} is listed twice"));
        }
        out.push(BudgetSpec {
            name: name.to_string(),
            limit,
            env,
        });
    }
    Ok(out)
}

pub fn parse_thresholds(spec: &str) -> Result<Vec<Threshold>, String> {
    let mut out = vec![];
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, p) = item
            .split_once(':')
            .ok_or_else(|| format!("{item:?} is not ACTUAL:PERCENT or FORECASTED:PERCENT"))?;
        let kind = match k.trim().to_ascii_uppercase().as_str() {
            "ACTUAL" => NotificationKind::Actual,
            "FORECASTED" => NotificationKind::Forecasted,
            other => return Err(format!("{other:?} is neither ACTUAL nor FORECASTED")),
        };
        let percent: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("{item:?}: {p:?} is not a percentage"))?;
        if !(percent > 0.0 && percent <= 1000.0) {
            return Err(format!("{item:?}: the percentage must be in (0, 1000]"));
        }
        out.push(Threshold { kind, percent });
    }
    if out.is_empty() {
        return Err("no thresholds".into());
    }
    Ok(out)
}

impl Settings {
    pub fn from_vars(vars: &Vars) -> Result<Self, SuiteError> {
        let d = Settings::default();
        let history_days = vars.parse_or(
            "FINOPS_HISTORY_DAYS",
            d.history_days,
            "a number of days, e.g. 90",
        )?;
        if !(21..=365).contains(&history_days) {
            return Err(bad(
                "FINOPS_HISTORY_DAYS",
                format!("{history_days} is outside 21-365 days (the detectors need 3 weeks)"),
            ));
        }
        let max_requests = vars.parse_or(
            "FINOPS_CE_MAX_REQUESTS",
            d.max_requests,
            "a number of requests, e.g. 20",
        )?;
        if max_requests == 0 {
            return Err(bad("FINOPS_CE_MAX_REQUESTS", "must be at least 1"));
        }
        let tag_key = vars.or("FINOPS_TAG_KEY", &d.tag_key);
        let dp = Params::default();
        let params = Params {
            dollar_floor: vars.parse_or(
                "FINOPS_DOLLAR_FLOOR",
                dp.dollar_floor,
                "dollars, e.g. 10",
            )?,
            percent_gate: vars.parse_or(
                "FINOPS_PERCENT_GATE",
                dp.percent_gate,
                "a percentage, e.g. 20",
            )?,
            drift_percent_gate: vars.parse_or(
                "FINOPS_DRIFT_PERCENT_GATE",
                dp.drift_percent_gate,
                "a percentage, e.g. 10",
            )?,
            spike_sigmas: vars.parse_or(
                "FINOPS_SPIKE_SIGMAS",
                dp.spike_sigmas,
                "a number of sigmas, e.g. 4",
            )?,
            warmup_days: vars.parse_or(
                "FINOPS_WARMUP_DAYS",
                dp.warmup_days,
                "a number of days, e.g. 14",
            )?,
            ..dp
        };
        for (var, v) in [
            ("FINOPS_DOLLAR_FLOOR", params.dollar_floor),
            ("FINOPS_PERCENT_GATE", params.percent_gate),
            ("FINOPS_DRIFT_PERCENT_GATE", params.drift_percent_gate),
            ("FINOPS_SPIKE_SIGMAS", params.spike_sigmas),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(var, format!("{v} must be a non-negative number")));
            }
        }
        let budgets =
            parse_budgets(&vars.or("FINOPS_BUDGETS", "")).map_err(|e| bad("FINOPS_BUDGETS", e))?;
        let thresholds = match vars.get("FINOPS_BUDGET_THRESHOLDS") {
            None => d.thresholds,
            Some(s) => parse_thresholds(s).map_err(|e| bad("FINOPS_BUDGET_THRESHOLDS", e))?,
        };
        let topic_arn = vars.get("FINOPS_TOPIC_ARN").map(str::to_string);
        if let Some(t) = &topic_arn {
            if !t.starts_with("arn:") || !t.contains(":sns:") {
                return Err(bad(
                    "FINOPS_TOPIC_ARN",
                    format!("{t:?} is not an SNS topic ARN"),
                ));
            }
        }
        let account_id = vars.get("FINOPS_ACCOUNT_ID").map(str::to_string);
        if let Some(a) = &account_id {
            if a.len() != 12 || !a.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad(
                    "FINOPS_ACCOUNT_ID",
                    format!("{a:?} is not a 12-digit account id"),
                ));
            }
        }
        if !budgets.is_empty() && (topic_arn.is_none() || account_id.is_none()) {
            return Err(bad(
                "FINOPS_TOPIC_ARN / FINOPS_ACCOUNT_ID",
                "FINOPS_BUDGETS is set: both are needed to keep the budgets' notifications",
            ));
        }
        let baseline_month = vars.get("FINOPS_BASELINE_MONTH").map(str::to_string);
        if let Some(m) = &baseline_month {
            crate::analysis::parse_month(m).map_err(|e| bad("FINOPS_BASELINE_MONTH", e))?;
        }
        let ce_forecast = match vars
            .get("FINOPS_CE_FORECAST")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("on") | Some("true") => true,
            Some("off") | Some("false") => false,
            Some(o) => return Err(bad("FINOPS_CE_FORECAST", format!("{o:?} is not on or off"))),
        };
        Ok(Settings {
            history_days,
            max_requests,
            tag_key,
            params,
            budgets,
            thresholds,
            topic_arn,
            account_id,
            baseline_month,
            ce_forecast,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, &str)]) -> Result<Settings, SuiteError> {
        Settings::from_vars(&Vars::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_and_budgets() {
        assert_eq!(s(&[]).unwrap(), Settings::default());
        let t = s(&[
            ("FINOPS_BUDGETS", "prod-monthly=10000@prod, total=25000.5"),
            (
                "FINOPS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:finops",
            ),
            ("FINOPS_ACCOUNT_ID", "123456789012"),
            ("FINOPS_BUDGET_THRESHOLDS", "actual:50,FORECASTED:100"),
        ])
        .unwrap();
        assert_eq!(
            t.budgets[0],
            BudgetSpec {
                name: "prod-monthly".into(),
                limit: 10000.0,
                env: Some("prod".into())
            }
        );
        assert_eq!(t.budgets[1].env, None);
        assert_eq!(t.thresholds.len(), 2);
        assert_eq!(t.thresholds[0].kind, NotificationKind::Actual);
    }

    #[test]
    fn bad_values_are_named() {
        for (pairs, var) in [
            (vec![("FINOPS_HISTORY_DAYS", "7")], "FINOPS_HISTORY_DAYS"),
            (
                vec![("FINOPS_CE_MAX_REQUESTS", "0")],
                "FINOPS_CE_MAX_REQUESTS",
            ),
            (vec![("FINOPS_BUDGETS", "x")], "FINOPS_BUDGETS"),
            (vec![("FINOPS_BUDGETS", "x=-5")], "FINOPS_BUDGETS"),
            (vec![("FINOPS_BUDGETS", "x=5")], "FINOPS_TOPIC_ARN"),
            (
                vec![("FINOPS_BUDGET_THRESHOLDS", "ACTUAL")],
                "FINOPS_BUDGET_THRESHOLDS",
            ),
            (vec![("FINOPS_TOPIC_ARN", "finops")], "FINOPS_TOPIC_ARN"),
            (vec![("FINOPS_ACCOUNT_ID", "12")], "FINOPS_ACCOUNT_ID"),
            (
                vec![("FINOPS_BASELINE_MONTH", "May")],
                "FINOPS_BASELINE_MONTH",
            ),
            (vec![("FINOPS_DOLLAR_FLOOR", "-1")], "FINOPS_DOLLAR_FLOOR"),
            (vec![("FINOPS_CE_FORECAST", "maybe")], "FINOPS_CE_FORECAST"),
        ] {
            let e = s(&pairs).unwrap_err().to_string();
            assert!(e.contains(var), "{pairs:?}: {e}");
        }
    }
}
