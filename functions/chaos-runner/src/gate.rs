//! The safety rules a run must pass before anything is injected. Pure: each returns the
//! refusal code (a stable string: journal `refusal`, metric dimension `reason`) and why.

use std::collections::BTreeMap;

use crate::port::TemplateInfo;
use crate::registry::Experiment;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub detail: String,
}

fn refuse(code: &'static str, detail: String) -> Result<(), Refusal> {
    Err(Refusal { code, detail })
}

/// Production needs two keys: `CHAOS_ALLOW_PRODUCTION=true` on the function and
/// `allow_production: true` on the experiment.
pub fn production(environment: &str, allowed_by_env: bool, e: &Experiment) -> Result<(), Refusal> {
    if environment != "prod" {
        return Ok(());
    }
    match (allowed_by_env, e.allow_production) {
        (true, true) => Ok(()),
        (false, _) => refuse(
            "production",
            "ENVIRONMENT is prod and CHAOS_ALLOW_PRODUCTION is not true".into(),
        ),
        (true, false) => refuse(
            "production",
            format!(
                "ENVIRONMENT is prod and experiment {} does not set allow_production",
                e.name
            ),
        ),
    }
}

/// The FIS template must carry CloudWatch alarm stop conditions (FIS accepts `none`; we do
/// not), including every registered alarm, and must not select more targets than the
/// registered blast radius.
pub fn template(e: &Experiment, t: &TemplateInfo) -> Result<(), Refusal> {
    let alarms: Vec<&str> = t
        .stop_conditions
        .iter()
        .filter(|(source, _)| source == "aws:cloudwatch:alarm")
        .filter_map(|(_, v)| v.as_deref())
        .collect();
    if alarms.is_empty() {
        return refuse(
            "no_stop_condition",
            format!(
                "FIS template {} has no CloudWatch alarm stop condition (sources: {:?})",
                t.id,
                t.stop_conditions
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .collect::<Vec<_>>()
            ),
        );
    }
    for s in &e.stop_conditions {
        let suffix = format!(":alarm:{}", s.alarm);
        if !alarms.iter().any(|a| *a == s.alarm || a.ends_with(&suffix)) {
            return refuse(
                "stop_condition_mismatch",
                format!(
                    "registered stop condition {} is not a stop condition of FIS template {}",
                    s.alarm, t.id
                ),
            );
        }
    }
    for (target, mode) in &t.selection_modes {
        let n = mode
            .strip_prefix("COUNT(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|n| n.parse::<u32>().ok());
        match n {
            Some(n) if n <= e.blast_radius.count => {}
            _ => {
                return refuse(
                    "blast_radius",
                    format!(
                        "FIS template {} target {target} selects {mode:?}; the registered blast radius is COUNT({}) at most ({})",
                        t.id, e.blast_radius.count, e.blast_radius.selector
                    ),
                )
            }
        }
    }
    Ok(())
}

/// Every stop-condition alarm must exist, none may already be in ALARM (FIS would stop at
/// once, and the system is not in its steady state), and none may be in INSUFFICIENT_DATA:
/// FIS stops an experiment only when an alarm goes to ALARM, and an alarm that has no
/// datapoint to evaluate (a metric nothing emits with those dimensions, a producer that is
/// down) never will, so the experiment would run unguarded.
pub fn alarms(e: &Experiment, states: &BTreeMap<String, String>) -> Result<(), Refusal> {
    for s in &e.stop_conditions {
        match states.get(&s.alarm).map(String::as_str) {
            None => {
                return refuse(
                    "stop_condition_missing",
                    format!("stop-condition alarm {} does not exist", s.alarm),
                )
            }
            Some("ALARM") => {
                return refuse(
                    "stop_condition_in_alarm",
                    format!("stop-condition alarm {} is already in ALARM", s.alarm),
                )
            }
            Some("INSUFFICIENT_DATA") => {
                return refuse(
                    "stop_condition_no_data",
                    format!(
                        "stop-condition alarm {} is in INSUFFICIENT_DATA: it has no datapoint to evaluate, so it cannot stop the experiment (check that its metric is emitted with exactly the alarm's dimensions)",
                        s.alarm
                    ),
                )
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The error-budget gate: skip when the remaining budget is below the threshold, or unknown.
pub fn error_budget(remaining: Option<f64>, min_remaining: f64) -> Result<(), Refusal> {
    match remaining {
        None => refuse(
            "error_budget_unknown",
            "the error-budget metric has no datapoint: not risking it".into(),
        ),
        Some(r) if r < min_remaining => refuse(
            "error_budget",
            format!("{r:.1} % of the error budget left, below the {min_remaining} % threshold"),
        ),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn exp() -> Experiment {
        Registry::parse(crate::config::EMBEDDED_REGISTRY)
            .unwrap()
            .experiments
            .remove(0)
    }

    fn tmpl(e: &Experiment) -> TemplateInfo {
        TemplateInfo {
            id: "EXT1".into(),
            stop_conditions: e
                .stop_conditions
                .iter()
                .map(|s| {
                    (
                        "aws:cloudwatch:alarm".to_string(),
                        Some(format!(
                            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{}",
                            s.alarm
                        )),
                    )
                })
                .collect(),
            selection_modes: [("workers".to_string(), "COUNT(1)".to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn production_needs_both_keys() {
        let mut e = exp();
        assert!(production("staging", false, &e).is_ok());
        assert_eq!(
            production("prod", false, &e).unwrap_err().code,
            "production"
        );
        assert!(production("prod", true, &e)
            .unwrap_err()
            .detail
            .contains("allow_production"));
        e.allow_production = true;
        assert!(production("prod", true, &e).is_ok());
        assert_eq!(
            production("prod", false, &e).unwrap_err().code,
            "production"
        );
    }

    #[test]
    fn template_rules() {
        let e = exp();
        let t = tmpl(&e);
        assert!(template(&e, &t).is_ok());
        let mut none = t.clone();
        none.stop_conditions = vec![("none".into(), None)];
        assert_eq!(template(&e, &none).unwrap_err().code, "no_stop_condition");
        let mut other = t.clone();
        other.stop_conditions = vec![(
            "aws:cloudwatch:alarm".into(),
            Some("arn:aws:cloudwatch:us-east-1:1:alarm:unrelated".into()),
        )];
        assert_eq!(
            template(&e, &other).unwrap_err().code,
            "stop_condition_mismatch"
        );
        let mut wide = t.clone();
        wide.selection_modes
            .insert("all-workers".into(), "ALL".into());
        assert_eq!(template(&e, &wide).unwrap_err().code, "blast_radius");
        let mut many = t;
        many.selection_modes
            .insert("w".into(), format!("COUNT({})", e.blast_radius.count + 1));
        assert_eq!(template(&e, &many).unwrap_err().code, "blast_radius");
    }

    #[test]
    fn alarm_and_budget_rules() {
        let e = exp();
        let name = e.stop_conditions[0].alarm.clone();
        let mut states: BTreeMap<String, String> = e
            .stop_conditions
            .iter()
            .map(|s| (s.alarm.clone(), "OK".to_string()))
            .collect();
        assert!(alarms(&e, &states).is_ok());
        states.insert(name.clone(), "ALARM".into());
        assert_eq!(
            alarms(&e, &states).unwrap_err().code,
            "stop_condition_in_alarm"
        );
        states.insert(name.clone(), "INSUFFICIENT_DATA".into());
        let r = alarms(&e, &states).unwrap_err();
        assert_eq!(r.code, "stop_condition_no_data");
        assert!(r.detail.contains(&name), "{r:?}");
        // Any one alarm without data refuses, whichever of the list it is.
        states.insert(name.clone(), "OK".into());
        let last = e.stop_conditions.last().unwrap().alarm.clone();
        assert_ne!(last, name, "the sample has two stop conditions");
        states.insert(last.clone(), "INSUFFICIENT_DATA".into());
        assert_eq!(
            alarms(&e, &states).unwrap_err().code,
            "stop_condition_no_data"
        );
        states.insert(last, "OK".into());
        assert!(alarms(&e, &states).is_ok());
        states.remove(&name);
        assert_eq!(
            alarms(&e, &states).unwrap_err().code,
            "stop_condition_missing"
        );
        assert!(error_budget(Some(50.0), 25.0).is_ok());
        assert_eq!(
            error_budget(Some(10.0), 25.0).unwrap_err().code,
            "error_budget"
        );
        assert_eq!(
            error_budget(None, 25.0).unwrap_err().code,
            "error_budget_unknown"
        );
    }
}
