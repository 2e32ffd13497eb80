//! One SNS message to one alert. Pure and total: every message of a channel becomes an alert
//! or is ignored with a reason; a message nobody recognises still becomes an alert on its
//! channel (an unknown message on the page topic pages), so nothing is dropped for its shape.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::notifications::{
    classify as classify_cost, AlertType, Message, PlaybookAlert, SnsEnvelope,
};

use crate::model::{Action, Alert, Channel, Severity};

/// What a message is to the router.
#[derive(Debug, Clone, PartialEq)]
pub enum Classified {
    Alert(Alert),
    /// Nothing to send: why (e.g. an alarm going to INSUFFICIENT_DATA on the page topic).
    Ignored(String),
}

/// PagerDuty's `dedup_key` and OpsGenie's `alias` take at most 255 and 512 characters: a key
/// longer than 250 is shortened to a prefix and a hash of the whole, still stable.
pub fn stable_key(raw: &str) -> String {
    if raw.len() <= 250 {
        return raw.to_string();
    }
    let digest = hex::encode(Sha256::digest(raw.as_bytes()));
    let mut cut = 180;
    while !raw.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{}", &raw[..cut], &digest[..32])
}

/// What a delivery is recorded under: the sender's idempotency id for a playbook alert that
/// carries one, the incident id for a release incident (a re-publish is the same
/// notification: the coordinator publishes an incident again when the run that opened it is
/// redelivered), else SNS's message id.
pub fn notification_id(env: &SnsEnvelope) -> String {
    if let Some(i) = release_incident(&env.message) {
        return format!("{}:release-gate/{}", env.topic_arn, i.id);
    }
    match classify_cost(&env.message) {
        Message::Playbook(PlaybookAlert { id: Some(id), .. }) if !id.is_empty() => {
            format!("{}:{id}", env.topic_arn)
        }
        _ => env.message_id.clone(),
    }
}

pub fn classify(channel: Channel, env: &SnsEnvelope) -> Classified {
    let trimmed = env.message.trim();
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        if v.get("AlarmName").is_some() && v.get("NewStateValue").is_some() {
            return alarm(channel, &v);
        }
    }
    if let Some(i) = release_incident(trimmed) {
        return Classified::Alert(release(i));
    }
    match classify_cost(&env.message) {
        Message::Budget(b) => {
            let month = env
                .timestamp
                .as_deref()
                .and_then(|t| t.get(..7))
                .unwrap_or("unknown")
                .to_string();
            let pct = b
                .threshold_percent
                .map(|p| format!("{p:.0} %"))
                .unwrap_or_else(|| "its threshold".into());
            let kind = match b.alert_type {
                AlertType::Actual => "actual",
                AlertType::Forecasted => "forecasted",
                AlertType::Unknown => "reported",
            };
            let mut fields = vec![("Budget".to_string(), b.budget_name.clone())];
            if let Some(a) = b.amount {
                fields.push((format!("{kind} spend"), dollars(a)));
            }
            if let Some(a) = b.budgeted_amount {
                fields.push(("Budgeted".into(), dollars(a)));
            }
            fields.push(("Threshold".into(), pct.clone()));
            if let Some(a) = &b.account {
                fields.push(("Account".into(), a.clone()));
            }
            Classified::Alert(Alert {
                key: stable_key(&format!("budget/{}", b.dedup_key(&month))),
                action: Action::Trigger,
                severity: Severity::Warning,
                title: format!("AWS Budgets: {} {kind} spend above {pct}", b.budget_name),
                summary: format!(
                    "Budget {} ({}): {kind} spend {} passed {pct} of the budgeted amount.",
                    b.budget_name,
                    b.budgeted_amount
                        .map(dollars)
                        .unwrap_or_else(|| "amount not given".into()),
                    b.amount.map(dollars).unwrap_or_else(|| "not given".into()),
                ),
                source: "aws-budgets".into(),
                at: env.timestamp.clone(),
                link: Some("https://console.aws.amazon.com/billing/home#/budgets".into()),
                fields,
            })
        }
        Message::CostAnomaly(a) => {
            let mut fields = vec![];
            if let Some(i) = a.total_impact {
                fields.push(("Impact".to_string(), dollars(i)));
            }
            if let Some(p) = a.total_impact_percentage {
                fields.push(("Impact %".into(), format!("{p:.1} %")));
            }
            if let (Some(act), Some(exp)) = (a.total_actual_spend, a.total_expected_spend) {
                fields.push((
                    "Actual / expected".into(),
                    format!("{} / {}", dollars(act), dollars(exp)),
                ));
            }
            for (i, rc) in a.root_causes.iter().take(3).enumerate() {
                let parts: Vec<&str> =
                    [&rc.service, &rc.region, &rc.usage_type, &rc.linked_account]
                        .into_iter()
                        .filter_map(|s| s.as_deref())
                        .collect();
                fields.push((format!("Root cause {}", i + 1), parts.join(" · ")));
            }
            let what = a
                .root_causes
                .first()
                .and_then(|r| r.service.clone())
                .or(a.dimensional_value.clone())
                .unwrap_or_else(|| "spend".into());
            Classified::Alert(Alert {
                key: stable_key(&format!("cost-anomaly-detection/{}", a.anomaly_id)),
                action: Action::Trigger,
                severity: Severity::Warning,
                title: format!(
                    "AWS Cost Anomaly Detection: {what}{}",
                    a.total_impact
                        .map(|i| format!(", impact {}", dollars(i)))
                        .unwrap_or_default()
                ),
                summary: format!(
                    "Anomaly {} (monitor {}) since {}.",
                    a.anomaly_id,
                    a.monitor_name.as_deref().unwrap_or("unknown"),
                    a.start_date.as_deref().unwrap_or("an unknown date")
                ),
                source: "cost-anomaly-detection".into(),
                at: env.timestamp.clone(),
                link: a.details_link.clone(),
                fields,
            })
        }
        Message::Playbook(a) => Classified::Alert(Alert {
            key: stable_key(&a.key),
            action: a.action,
            severity: default_severity(channel),
            title: truncate(&a.title, 200),
            summary: a.summary,
            source: a.source,
            at: a.at,
            link: a.link,
            fields: a.fields,
        }),
        Message::Unrecognised { reason, .. } => {
            // Still an alert on its channel: a person reads the raw message.
            let digest = hex::encode(Sha256::digest(env.message.as_bytes()));
            let subject = env
                .subject
                .clone()
                .unwrap_or_else(|| "Unrecognised notification".into());
            Classified::Alert(Alert {
                key: format!("unrecognised/{}", &digest[..32]),
                action: Action::Trigger,
                severity: default_severity(channel),
                title: subject,
                summary: truncate(&env.message, 2000),
                source: format!("sns:{}", env.topic_arn),
                at: env.timestamp.clone(),
                link: None,
                fields: vec![("Why unrecognised".into(), reason)],
            })
        }
    }
}

fn default_severity(channel: Channel) -> Severity {
    match channel {
        Channel::Critical => Severity::Critical,
        Channel::Info => Severity::Info,
        Channel::Finops | Channel::Release => Severity::Warning,
    }
}

/// A CloudWatch alarm notification (metric, metric math or composite alarm).
fn alarm(channel: Channel, v: &Value) -> Classified {
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let name = s("AlarmName");
    let state = s("NewStateValue");
    let action = match state.as_str() {
        "ALARM" => Action::Trigger,
        "OK" => Action::Resolve,
        // No data is neither a page nor a recovery: the SLO no-data alarm says it on its own.
        "INSUFFICIENT_DATA" if channel != Channel::Info => {
            return Classified::Ignored(format!(
                "{name}: INSUFFICIENT_DATA is neither a page nor a recovery"
            ))
        }
        "INSUFFICIENT_DATA" => Action::Trigger,
        other => {
            return Classified::Ignored(format!("{name}: unknown state {other:?}"));
        }
    };
    let region = s("Region");
    let arn = s("AlarmArn");
    let region_code = arn.split(':').nth(3).unwrap_or("us-east-1").to_string();
    let mut fields = vec![
        ("Alarm".to_string(), name.clone()),
        ("State".into(), format!("{} → {state}", s("OldStateValue"))),
    ];
    if !region.is_empty() {
        fields.push(("Region".into(), region));
    }
    if let Some(rule) = v.get("AlarmRule").and_then(Value::as_str) {
        fields.push(("Rule".into(), truncate(rule, 500)));
    }
    let description = s("AlarmDescription");
    let reason = s("NewStateReason");
    Classified::Alert(Alert {
        key: stable_key(&format!("cloudwatch/{name}")),
        action,
        severity: default_severity(channel),
        title: format!("{state}: {name}"),
        summary: [description, reason]
            .into_iter()
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        source: if arn.is_empty() {
            "cloudwatch".into()
        } else {
            format!("cloudwatch:{arn}")
        },
        at: v
            .get("StateChangeTime")
            .and_then(Value::as_str)
            .map(str::to_string),
        link: Some(format!(
            "https://console.aws.amazon.com/cloudwatch/home?region={region_code}#alarmsV2:alarm/{}",
            crate::format::url_encode(&name)
        )),
        fields,
    })
}

/// The message as a release incident, if it is one.
fn release_incident(message: &str) -> Option<ReleaseIncident> {
    let v: Value = serde_json::from_str(message.trim()).ok()?;
    if v.get("gate").is_none() || v.get("run_id").is_none() {
        return None;
    }
    serde_json::from_value(v).ok()
}

/// The release gate's incident (loadtest-coordinator `gate::Incident`, published as JSON);
/// the fields the ticket shows. A test holds it to the coordinator's own type.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ReleaseIncident {
    pub id: String,
    pub scenario: String,
    pub run_id: String,
    pub opened_at: String,
    pub reason: String,
    pub p95_ms: f64,
    pub p95_objective: String,
    pub consecutive_p95_failures: u32,
    pub report: String,
    pub gate: String,
}

fn release(i: ReleaseIncident) -> Alert {
    Alert {
        key: stable_key(&format!("release-gate/{}", i.id)),
        action: Action::Trigger,
        severity: Severity::Error,
        title: format!("Release blocked: {} ({})", i.scenario, i.id),
        summary: i.reason.clone(),
        source: "loadtest-coordinator".into(),
        at: Some(i.opened_at.clone()),
        link: Some(i.report.clone()),
        fields: vec![
            ("Incident".into(), i.id),
            ("Scenario".into(), i.scenario),
            ("Run".into(), i.run_id),
            (
                "p95".into(),
                format!("{:.1} ms (objective {})", i.p95_ms, i.p95_objective),
            ),
            (
                "Consecutive p95 failures".into(),
                i.consecutive_p95_failures.to_string(),
            ),
            ("Gate".into(), i.gate),
        ],
    }
}

pub fn dollars(x: f64) -> String {
    let neg = x < 0.0;
    let cents = (x.abs() * 100.0).round() as u64;
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!(
        "{}${grouped}.{:02}",
        if neg { "-" } else { "" },
        cents % 100
    )
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(message: &str) -> SnsEnvelope {
        SnsEnvelope {
            message_id: "m-1".into(),
            topic_arn: "arn:aws:sns:us-east-1:1:t".into(),
            subject: Some("subject".into()),
            timestamp: Some("2026-12-02T10:00:00.000Z".into()),
            message: message.into(),
        }
    }

    fn alarm_message(name: &str, state: &str) -> String {
        json!({
            "AlarmName": name,
            "AlarmDescription": "api-availability: 14.4x burn",
            "AWSAccountId": "123456789012",
            "NewStateValue": state,
            "OldStateValue": "OK",
            "NewStateReason": "Threshold Crossed",
            "StateChangeTime": "2026-12-02T10:00:00.000+0000",
            "Region": "US East (N. Virginia)",
            "AlarmArn": format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"),
        })
        .to_string()
    }

    fn alert(c: Classified) -> Alert {
        match c {
            Classified::Alert(a) => a,
            Classified::Ignored(r) => panic!("ignored: {r}"),
        }
    }

    #[test]
    fn an_alarm_and_its_recovery_share_one_key() {
        let fire = alert(classify(
            Channel::Critical,
            &env(&alarm_message("slo-api-page-prod", "ALARM")),
        ));
        let ok = alert(classify(
            Channel::Critical,
            &env(&alarm_message("slo-api-page-prod", "OK")),
        ));
        assert_eq!(fire.action, Action::Trigger);
        assert_eq!(ok.action, Action::Resolve);
        assert_eq!(fire.key, "cloudwatch/slo-api-page-prod");
        assert_eq!(fire.key, ok.key);
        assert_eq!(fire.severity, Severity::Critical);
        assert!(fire
            .link
            .unwrap()
            .contains("region=us-east-1#alarmsV2:alarm/slo-api-page-prod"));
    }

    #[test]
    fn no_data_neither_pages_nor_resolves() {
        let c = classify(
            Channel::Critical,
            &env(&alarm_message("x", "INSUFFICIENT_DATA")),
        );
        assert!(matches!(c, Classified::Ignored(_)), "{c:?}");
    }

    #[test]
    fn an_unknown_message_on_the_page_topic_still_pages() {
        let a = alert(classify(Channel::Critical, &env("disk on fire")));
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.summary, "disk on fire");
        assert!(a.key.starts_with("unrecognised/"));
    }

    #[test]
    fn budgets_and_anomalies_become_finops_alerts() {
        let b = "AWS Budget Notification November 27, 2026\nAWS Account 123456789012\n\nDear AWS Customer,\n\nYou requested that we alert you when the ACTUAL Cost associated with your prod-monthly budget is greater than 80.00% of your budgeted amount.\n\nBudget Name: prod-monthly\nBudget Type: Cost\nBudgeted Amount: $10,000.00\nAlert Type: ACTUAL\nAlert Threshold: > $8,000.00\nACTUAL Amount: $8,123.45\n";
        let a = alert(classify(Channel::Finops, &env(b)));
        assert_eq!(a.title, "AWS Budgets: prod-monthly actual spend above 80 %");
        assert!(
            a.key.starts_with("budget/prod-monthly|Actual|80|2026-12"),
            "{}",
            a.key
        );
        assert!(
            a.fields
                .contains(&("actual spend".into(), "$8,123.45".into())),
            "{:?}",
            a.fields
        );
        let cad = r#"{"accountId":"123456789012","anomalyId":"a-1","monitorName":"services","anomalyStartDate":"2026-11-20T00:00:00Z","impact":{"totalImpact":"1001.5","totalImpactPercentage":333.67},"rootCauses":[{"service":"Amazon Elastic Compute Cloud - Compute","region":"us-east-1","usageType":"BoxUsage:m5.xlarge"}]}"#;
        let a = alert(classify(Channel::Finops, &env(cad)));
        assert_eq!(a.key, "cost-anomaly-detection/a-1");
        assert_eq!(
            a.title,
            "AWS Cost Anomaly Detection: Amazon Elastic Compute Cloud - Compute, impact $1,001.50"
        );
        assert!(a
            .fields
            .iter()
            .any(|(k, v)| k == "Root cause 1" && v.contains("BoxUsage:m5.xlarge")));
    }

    #[test]
    fn the_suites_own_message_keeps_its_key_and_action() {
        let m = json!({"playbook_alert": 1, "key": "finops/prod/AmazonEC2", "action": "resolve", "title": "EC2 spend back to normal", "source": "cost-anomaly"}).to_string();
        let a = alert(classify(Channel::Finops, &env(&m)));
        assert_eq!(
            (a.key.as_str(), a.action),
            ("finops/prod/AmazonEC2", Action::Resolve)
        );
    }

    #[test]
    fn long_keys_stay_stable_and_short() {
        let long = "x".repeat(400);
        assert_eq!(stable_key(&long), stable_key(&long));
        assert!(stable_key(&long).len() <= 250);
        assert_ne!(stable_key(&long), stable_key(&"x".repeat(401)));
    }

    #[test]
    fn dollars_group_thousands() {
        assert_eq!(dollars(1234567.891), "$1,234,567.89");
        assert_eq!(dollars(-5.0), "-$5.00");
        assert_eq!(dollars(0.5), "$0.50");
    }
}
