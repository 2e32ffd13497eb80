//! The outside message shapes, parsed defensively: SNS envelopes, AWS Budgets plain-text
//! notifications, Cost Anomaly Detection JSON and the suite's own alert ([`PlaybookAlert`],
//! which cost-anomaly publishes and alert-router routes). Pure and total: any input gives a value or
//! a named error, never a panic (a proptest holds them to it). A message we do not recognise
//! becomes [`Message::Unrecognised`] so it is recorded and reported, not dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One SNS delivery, as Lambda receives it in `Records[].Sns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnsEnvelope {
    pub message_id: String,
    pub topic_arn: String,
    pub subject: Option<String>,
    pub timestamp: Option<String>,
    pub message: String,
}

/// Whether the payload is an SNS event (`Records[].EventSource == "aws:sns"` or `Records[].Sns`).
pub fn is_sns_event(v: &Value) -> bool {
    v.get("Records")
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .map(|r| {
            r.get("Sns").is_some()
                || r.get("EventSource").and_then(Value::as_str) == Some("aws:sns")
        })
        .unwrap_or(false)
}

/// The SNS records of an event. A record without `Sns.Message` is an error naming its index.
pub fn parse_sns_event(v: &Value) -> Result<Vec<SnsEnvelope>, String> {
    let records = v
        .get("Records")
        .and_then(Value::as_array)
        .ok_or("Records: missing or not an array")?;
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let sns = r
            .get("Sns")
            .ok_or_else(|| format!("Records[{i}].Sns: missing"))?;
        let s = |k: &str| sns.get(k).and_then(Value::as_str).map(str::to_string);
        let message = s("Message")
            .ok_or_else(|| format!("Records[{i}].Sns.Message: missing or not a string"))?;
        out.push(SnsEnvelope {
            message_id: s("MessageId").unwrap_or_else(|| format!("no-id-{i}")),
            topic_arn: s("TopicArn").unwrap_or_default(),
            subject: s("Subject"),
            timestamp: s("Timestamp"),
            message,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertType {
    Actual,
    Forecasted,
    Unknown,
}

/// An AWS Budgets notification (plain text: a header line, prose, then `Key: Value` lines).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetAlert {
    pub budget_name: String,
    pub account: Option<String>,
    pub alert_type: AlertType,
    /// The threshold in percent of the budgeted amount (from the prose, or threshold/amount).
    pub threshold_percent: Option<f64>,
    pub threshold_amount: Option<f64>,
    pub budgeted_amount: Option<f64>,
    /// The ACTUAL or FORECASTED amount the notification reports.
    pub amount: Option<f64>,
    pub notified_on: Option<String>,
    /// Every `Key: Value` line, as sent.
    pub fields: BTreeMap<String, String>,
    /// The message as received.
    pub raw: String,
}

impl BudgetAlert {
    /// Dedup key: one alert per budget, threshold, alert type and month.
    pub fn dedup_key(&self, month: &str) -> String {
        let t = self
            .threshold_percent
            .map(|p| format!("{p:.0}"))
            .or_else(|| self.threshold_amount.map(|a| format!("${a:.2}")))
            .unwrap_or_else(|| "unknown".into());
        format!("{}|{:?}|{t}|{month}", self.budget_name, self.alert_type)
    }
}

/// One root cause of a Cost Anomaly Detection alert.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RootCause {
    pub service: Option<String>,
    pub region: Option<String>,
    pub linked_account: Option<String>,
    pub linked_account_name: Option<String>,
    pub usage_type: Option<String>,
}

/// A Cost Anomaly Detection alert (SNS JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CadAlert {
    pub anomaly_id: String,
    pub account_id: Option<String>,
    pub monitor_name: Option<String>,
    pub dimensional_value: Option<String>,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
    pub total_impact: Option<f64>,
    pub total_impact_percentage: Option<f64>,
    pub total_actual_spend: Option<f64>,
    pub total_expected_spend: Option<f64>,
    pub root_causes: Vec<RootCause>,
    pub details_link: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    Budget(BudgetAlert),
    CostAnomaly(CadAlert),
    Playbook(PlaybookAlert),
    Unrecognised { reason: String, raw: String },
}

/// What a [`PlaybookAlert`] asks of its routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Open (or, with the same key, re-notify an open) alert.
    Trigger,
    /// Close the alert with this key, on the route that opened it.
    Resolve,
}

fn trigger() -> Action {
    Action::Trigger
}

/// The version [`PlaybookAlert::playbook_alert`] carries.
pub const PLAYBOOK_ALERT_VERSION: u32 = 1;

/// The SNS message attribute every suite publication carries, naming the function. The
/// FinOps topic's subscription of cost-anomaly filters on its absence (infra/cost_anomaly.tf),
/// so the function that reads AWS's notifications does not read its own alerts back.
pub const PRODUCER_ATTRIBUTE: &str = "producer";

/// The suite's own alert (docs/alert-router.md#message): any function publishes it, as JSON,
/// to a channel's topic; alert-router routes it like AWS's notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybookAlert {
    /// Always [`PLAYBOOK_ALERT_VERSION`]: what makes a JSON message one of ours.
    pub playbook_alert: u32,
    /// The sender's idempotency id: alert-router delivers one id once per route, so a
    /// publish repeated after the sender lost its state is not a second message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Stable per alert: the trigger and its resolve carry the same key.
    pub key: String,
    #[serde(default = "trigger")]
    pub action: Action,
    pub title: String,
    #[serde(default)]
    pub summary: String,
    /// The function that raised it.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default)]
    pub fields: Vec<(String, String)>,
}

/// A JSON message that is one of ours: the version, a key and a title.
pub fn parse_playbook_alert(v: &Value) -> Result<PlaybookAlert, String> {
    let a: PlaybookAlert = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    if a.playbook_alert != PLAYBOOK_ALERT_VERSION {
        return Err(format!(
            "playbook_alert {} is not version {PLAYBOOK_ALERT_VERSION}",
            a.playbook_alert
        ));
    }
    if a.key.trim().is_empty() || a.title.trim().is_empty() {
        return Err("a playbook alert needs a key and a title".into());
    }
    Ok(a)
}

impl Message {
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Budget(_) => "budget",
            Message::CostAnomaly(_) => "cost_anomaly",
            Message::Playbook(_) => "playbook_alert",
            Message::Unrecognised { .. } => "unrecognised",
        }
    }
}

/// Classifies one SNS message body. Never fails: what is not a Budgets notification, a Cost
/// Anomaly Detection alert nor a playbook alert is `Unrecognised` with the reason.
pub fn classify(message: &str) -> Message {
    let trimmed = message.trim_start_matches('\u{feff}').trim();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        return match serde_json::from_str::<Value>(trimmed) {
            Ok(v) if v.get("playbook_alert").is_some() => match parse_playbook_alert(&v) {
                Ok(a) => Message::Playbook(a),
                Err(reason) => Message::Unrecognised {
                    reason: format!("a playbook alert that does not parse: {reason}"),
                    raw: message.to_string(),
                },
            },
            Ok(v) => match parse_cad(&v) {
                Ok(a) => Message::CostAnomaly(a),
                Err(reason) => Message::Unrecognised {
                    reason,
                    raw: message.to_string(),
                },
            },
            Err(e) => Message::Unrecognised {
                reason: format!("looks like JSON but does not parse: {e}"),
                raw: message.to_string(),
            },
        };
    }
    if is_budget_text(trimmed) {
        return match parse_budget(message) {
            Ok(b) => Message::Budget(b),
            Err(reason) => Message::Unrecognised {
                reason,
                raw: message.to_string(),
            },
        };
    }
    Message::Unrecognised {
        reason: "neither a Budgets notification (no \"AWS Budget Notification\" header) nor Cost Anomaly Detection JSON".into(),
        raw: message.to_string(),
    }
}

/// Recognised by the header: the first non-empty line starts "AWS Budget Notification"
/// (or the message carries a `Budget Name:` line, as notifications sent through Chatbot do).
pub fn is_budget_text(text: &str) -> bool {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    first
        .to_ascii_lowercase()
        .starts_with("aws budget notification")
        || text.lines().any(|l| {
            l.trim_start()
                .to_ascii_lowercase()
                .starts_with("budget name:")
        })
}

/// `$1,234.56`, `1234.56 USD`, `> $8,000.00` → 1234.56 etc.; `None` when no number is there.
pub fn parse_money(s: &str) -> Option<f64> {
    let mut num = String::new();
    let mut started = false;
    for c in s.chars() {
        if c.is_ascii_digit() || (c == '.' && started) || (c == '-' && !started) {
            started |= c.is_ascii_digit();
            num.push(c);
        } else if c == ',' && started {
            continue;
        } else if started {
            break;
        }
    }
    let v: f64 = num.trim_matches('-').parse().ok()?;
    let v = if num.starts_with('-') { -v } else { v };
    v.is_finite().then_some(v)
}

/// The Budgets plain-text notification. Unknown lines are ignored; `Budget Name` is the one
/// field we cannot do without.
pub fn parse_budget(text: &str) -> Result<BudgetAlert, String> {
    let mut fields = BTreeMap::new();
    let mut notified_on = None;
    let mut account = None;
    let mut prose_percent = None;
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("aws budget notification") {
            let date = l[l.len() - rest.len()..].trim();
            if !date.is_empty() {
                notified_on = Some(date.to_string());
            }
            continue;
        }
        if let Some(rest) = lower.strip_prefix("aws account") {
            let a = l[l.len() - rest.len()..]
                .trim()
                .trim_start_matches(':')
                .trim();
            if !a.is_empty() {
                account = Some(a.to_string());
            }
            continue;
        }
        // "... is greater than 80.00% of your budgeted amount ..."
        if prose_percent.is_none() {
            if let Some(pos) = l.find('%') {
                let before = &l[..pos];
                let start = before
                    .char_indices()
                    .rfind(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == ','))
                    .map(|(i, c)| i + c.len_utf8())
                    .unwrap_or(0);
                prose_percent = parse_money(&before[start..]);
            }
        }
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim();
            // Keys are short labels; prose lines with a colon are not fields.
            if !k.is_empty()
                && k.len() <= 40
                && k.split_whitespace().count() <= 4
                && !k.contains("http")
            {
                fields.insert(k.to_string(), v.trim().to_string());
            }
        }
    }
    let get = |names: &[&str]| {
        fields
            .iter()
            .find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
            .map(|(_, v)| v.clone())
    };
    let budget_name = get(&["Budget Name"]).filter(|s| !s.is_empty()).ok_or(
        "Budgets notification without a `Budget Name:` line (cannot tell which budget it is about)",
    )?;
    let alert_type = match get(&["Alert Type"]).map(|s| s.to_ascii_uppercase()) {
        Some(s) if s.contains("FORECAST") => AlertType::Forecasted,
        Some(s) if s.contains("ACTUAL") => AlertType::Actual,
        _ if text.contains("FORECASTED") => AlertType::Forecasted,
        _ if text.contains("ACTUAL") => AlertType::Actual,
        _ => AlertType::Unknown,
    };
    let budgeted_amount = get(&["Budgeted Amount"]).and_then(|s| parse_money(&s));
    let threshold_amount = get(&["Alert Threshold"]).and_then(|s| parse_money(&s));
    let amount = match alert_type {
        AlertType::Forecasted => get(&["FORECASTED Amount", "Forecasted Amount"]),
        _ => get(&["ACTUAL Amount", "Actual Amount"]),
    }
    .and_then(|s| parse_money(&s));
    let threshold_percent = prose_percent.or(match (threshold_amount, budgeted_amount) {
        (Some(t), Some(b)) if b > 0.0 => Some((t / b * 10_000.0).round() / 100.0),
        _ => None,
    });
    Ok(BudgetAlert {
        budget_name,
        account: account.or_else(|| get(&["AWS Account", "Account"])),
        alert_type,
        threshold_percent,
        threshold_amount,
        budgeted_amount,
        amount,
        notified_on,
        fields,
        raw: text.to_string(),
    })
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite())
}

/// Cost Anomaly Detection's SNS JSON. `anomalyId` is required; the rest is optional.
pub fn parse_cad(v: &Value) -> Result<CadAlert, String> {
    let obj = v.as_object().ok_or("JSON message is not an object")?;
    let anomaly_id = obj
        .get("anomalyId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("JSON message without `anomalyId`: not a Cost Anomaly Detection alert")?
        .to_string();
    let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let impact = obj.get("impact").cloned().unwrap_or(Value::Null);
    let imp = |k: &str| impact.get(k).and_then(num);
    let root_causes = obj
        .get("rootCauses")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| {
                    let o = r.as_object()?;
                    let f = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
                    Some(RootCause {
                        service: f("service"),
                        region: f("region"),
                        linked_account: f("linkedAccount"),
                        linked_account_name: f("linkedAccountName"),
                        usage_type: f("usageType"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CadAlert {
        anomaly_id,
        account_id: s("accountId"),
        monitor_name: s("monitorName"),
        dimensional_value: s("dimensionalValue"),
        start_date: s("anomalyStartDate"),
        end_date: s("anomalyEndDate"),
        total_impact: imp("totalImpact"),
        total_impact_percentage: imp("totalImpactPercentage"),
        total_actual_spend: imp("totalActualSpend"),
        total_expected_spend: imp("totalExpectedSpend"),
        root_causes,
        details_link: s("anomalyDetailsLink"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: &str = "AWS Budget Notification November 27, 2026\nAWS Account 123456789012\n\nDear AWS Customer,\n\nYou requested that we alert you when the ACTUAL Cost associated with your prod-monthly budget is greater than 80.00% of your budgeted amount.\n\nBudget Name: prod-monthly\nBudget Type: Cost\nBudgeted Amount: $10,000.00\nAlert Type: ACTUAL\nAlert Threshold: > $8,000.00\nACTUAL Amount: $8,123.45\n";

    #[test]
    fn playbook_alerts_are_recognised_and_survive_the_record() {
        let a = PlaybookAlert {
            playbook_alert: PLAYBOOK_ALERT_VERSION,
            id: Some("cost-anomaly/prod/EC2/2026-10-14/trigger/0".into()),
            key: "cost-anomaly/prod/EC2/2026-10-14".into(),
            action: Action::Resolve,
            title: "EC2 spend back to normal".into(),
            summary: String::new(),
            source: "cost-anomaly".into(),
            at: None,
            link: None,
            fields: vec![("Impact".into(), "$812.40".into())],
        };
        let text = serde_json::to_string(&a).unwrap();
        let m = classify(&text);
        assert_eq!(m, Message::Playbook(a.clone()));
        // cost-anomaly keeps the classified message in its record (internally tagged).
        let back: Message = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        // A typo is not silently accepted, nor a version from the future: raw, recorded.
        let typo = text.replace("\"title\"", "\"tittle\"");
        assert!(
            matches!(classify(&typo), Message::Unrecognised { reason, .. } if reason.contains("tittle"))
        );
        let v2 = text.replace("\"playbook_alert\":1", "\"playbook_alert\":2");
        assert!(
            matches!(classify(&v2), Message::Unrecognised { reason, .. } if reason.contains("version 1"))
        );
    }

    #[test]
    fn budget_text() {
        let Message::Budget(b) = classify(BUDGET) else {
            panic!("not recognised")
        };
        assert_eq!(b.budget_name, "prod-monthly");
        assert_eq!(b.account.as_deref(), Some("123456789012"));
        assert_eq!(b.alert_type, AlertType::Actual);
        assert_eq!(b.threshold_percent, Some(80.0));
        assert_eq!(b.threshold_amount, Some(8000.0));
        assert_eq!(b.budgeted_amount, Some(10000.0));
        assert_eq!(b.amount, Some(8123.45));
        assert_eq!(b.notified_on.as_deref(), Some("November 27, 2026"));
        assert_eq!(b.raw, BUDGET);
        assert_eq!(b.dedup_key("2026-11"), "prod-monthly|Actual|80|2026-11");
    }

    #[test]
    fn budget_without_prose_takes_percent_from_amounts() {
        let t = "AWS Budget Notification\nBudget Name: x\nBudgeted Amount: 200 USD\nAlert Type: FORECASTED\nAlert Threshold: > 240 USD\nFORECASTED Amount: 251.5 USD";
        let Message::Budget(b) = classify(t) else {
            panic!()
        };
        assert_eq!(b.alert_type, AlertType::Forecasted);
        assert_eq!(b.threshold_percent, Some(120.0));
        assert_eq!(b.amount, Some(251.5));
    }

    #[test]
    fn malformed_messages_are_unrecognised_with_a_reason() {
        for (m, want) in [
            ("AWS Budget Notification\nno fields here", "Budget Name"),
            ("{\"hello\": 1}", "anomalyId"),
            ("{not json", "does not parse"),
            ("[1,2]", "not an object"),
            ("hello world", "neither"),
            ("", "neither"),
        ] {
            match classify(m) {
                Message::Unrecognised { reason, raw } => {
                    assert!(reason.contains(want), "{m:?}: {reason}");
                    assert_eq!(raw, m);
                }
                other => panic!("{m:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn cad_json() {
        let m = r#"{"accountId":"123456789012","anomalyId":"a-1","anomalyStartDate":"2026-11-20T00:00:00Z","impact":{"totalImpact":"1001.5","totalImpactPercentage":333.67,"totalActualSpend":1301,"totalExpectedSpend":300},"rootCauses":[{"service":"Amazon Elastic Compute Cloud - Compute","region":"us-east-1","usageType":"BoxUsage:m5.xlarge"}, 5]}"#;
        let Message::CostAnomaly(a) = classify(m) else {
            panic!()
        };
        assert_eq!(a.anomaly_id, "a-1");
        assert_eq!(a.total_impact, Some(1001.5));
        assert_eq!(a.total_impact_percentage, Some(333.67));
        assert_eq!(a.root_causes.len(), 1);
        assert_eq!(
            a.root_causes[0].usage_type.as_deref(),
            Some("BoxUsage:m5.xlarge")
        );
    }

    #[test]
    fn sns_envelope() {
        let v = serde_json::json!({"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": "m1", "TopicArn": "arn:t", "Subject": "s", "Message": "hi"}}]});
        assert!(is_sns_event(&v));
        let e = parse_sns_event(&v).unwrap();
        assert_eq!(e[0].message_id, "m1");
        assert_eq!(e[0].message, "hi");
        let bad =
            serde_json::json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": 5}}]});
        assert!(parse_sns_event(&bad)
            .unwrap_err()
            .contains("Records[0].Sns.Message"));
        assert!(!is_sns_event(&serde_json::json!({"job": "detect"})));
    }

    #[test]
    fn money() {
        assert_eq!(parse_money("$1,234.50"), Some(1234.5));
        assert_eq!(parse_money("> $8,000.00"), Some(8000.0));
        assert_eq!(parse_money("USD"), None);
        assert_eq!(parse_money("-3.5"), Some(-3.5));
        assert_eq!(parse_money("1.2.3"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = classify(&s);
            let _ = parse_money(&s);
            let _ = parse_budget(&s);
        }

        #[test]
        fn budget_like_text_never_panics(lines in proptest::collection::vec("(Budget Name|Alert Type|Budgeted Amount|ACTUAL Amount|Alert Threshold|[a-z ]{0,8}): ?[$0-9,.%> A-Z]{0,12}", 0..8)) {
            let text = format!("AWS Budget Notification\n{}", lines.join("\n"));
            let _ = classify(&text);
        }

        #[test]
        fn json_never_panics(v in proptest::arbitrary::any::<(Option<String>, Option<f64>, u8)>()) {
            let doc = serde_json::json!({"anomalyId": v.0, "impact": {"totalImpact": v.1}, "rootCauses": v.2});
            let _ = classify(&doc.to_string());
        }
    }
}
