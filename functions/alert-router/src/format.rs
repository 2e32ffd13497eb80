//! The request bodies each service documents, built from an [`Alert`]. Pure; the limits are
//! the services' own (PagerDuty `summary` 1024, OpsGenie `message` 130, Slack header 150 and
//! section 3000, Jira `summary` 255 on one line), so a long alarm reason is cut, not refused.

use serde_json::{json, Map, Value};

use crate::classify::truncate;
use crate::model::{Action, Alert};

/// PagerDuty Events API v2 (`POST /v2/enqueue`): trigger with the alert's key as `dedup_key`,
/// resolve with the same key.
pub fn pagerduty_event(alert: &Alert, routing_key: &str) -> Value {
    match alert.action {
        Action::Resolve => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": alert.key,
        }),
        Action::Trigger => {
            let details: Map<String, Value> = alert
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .chain([("summary".to_string(), Value::String(alert.summary.clone()))])
                .collect();
            let mut event = json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": alert.key,
                "payload": {
                    "summary": truncate(&alert.title, 1024),
                    "source": truncate(&alert.source, 255),
                    "severity": alert.severity.pagerduty(),
                    "component": "platform-playbook",
                    "custom_details": details,
                },
                "client": "alert-router",
            });
            if let Some(t) = &alert.at {
                if let Ok(ts) = chrono::DateTime::parse_from_rfc3339(&normalise_offset(t)) {
                    event["payload"]["timestamp"] = json!(ts.to_rfc3339());
                }
            }
            if let Some(link) = &alert.link {
                event["links"] = json!([{"href": link, "text": "Details"}]);
            }
            event
        }
    }
}

/// CloudWatch writes `+0000`; RFC 3339 wants `+00:00`.
fn normalise_offset(t: &str) -> String {
    let b = t.as_bytes();
    if b.len() > 5
        && (b[b.len() - 5] == b'+' || b[b.len() - 5] == b'-')
        && !t[t.len() - 5..].contains(':')
    {
        format!("{}:{}", &t[..t.len() - 2], &t[t.len() - 2..])
    } else {
        t.to_string()
    }
}

/// OpsGenie Alert API: `POST /v2/alerts` (create; an open alert with the same `alias` is
/// deduplicated by OpsGenie, so a flapping alarm pages once).
pub fn opsgenie_create(alert: &Alert) -> Value {
    let details: Map<String, Value> = alert
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(truncate(v, 8000))))
        .collect();
    let mut description = alert.summary.clone();
    if let Some(link) = &alert.link {
        description.push_str(&format!("\n\n{link}"));
    }
    json!({
        "message": truncate(&alert.title, 130),
        "alias": alert.key,
        "description": truncate(&description, 15000),
        "priority": alert.severity.opsgenie(),
        "source": truncate(&alert.source, 100),
        "tags": ["platform-playbook"],
        "details": details,
    })
}

/// OpsGenie `POST /v2/alerts/{alias}/close?identifierType=alias`.
pub fn opsgenie_close(alert: &Alert) -> Value {
    json!({"source": "alert-router", "note": truncate(&format!("Resolved: {}", alert.title), 25000)})
}

/// The path of the close request (the alias is URL-encoded).
pub fn opsgenie_close_path(alert: &Alert) -> String {
    format!(
        "/v2/alerts/{}/close?identifierType=alias",
        url_encode(&alert.key)
    )
}

/// A Slack incoming-webhook message with Block Kit blocks (`text` is the notification
/// fallback).
pub fn slack_message(alert: &Alert) -> Value {
    let icon = match alert.action {
        Action::Trigger => ":rotating_light:",
        Action::Resolve => ":white_check_mark:",
    };
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&alert.title, 150), "emoji": true}}),
    ];
    if !alert.summary.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!("{icon} {}", alert.summary), 3000)}}));
    }
    let fields: Vec<Value> = alert
        .fields
        .iter()
        .take(10)
        .map(|(k, v)| json!({"type": "mrkdwn", "text": truncate(&format!("*{k}*\n{v}"), 2000)}))
        .collect();
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    let mut context = format!("{} · key `{}`", alert.source, alert.key);
    if let Some(link) = &alert.link {
        context.push_str(&format!(" · <{link}|details>"));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(&context, 3000)}]}));
    json!({"text": truncate(&format!("{icon} {}", alert.title), 3000), "blocks": blocks})
}

fn adf_text(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

fn adf_paragraph(text: &str) -> Value {
    json!({"type": "paragraph", "content": [adf_text(text)]})
}

/// A Jira Cloud issue (`POST /rest/api/3/issue`): the description in Atlassian Document
/// Format, the alert key as a label-safe hash in the summary's wake (labels carry no spaces).
pub fn jira_issue(alert: &Alert, project: &str, issue_type: &str) -> Value {
    let mut content = vec![];
    if !alert.summary.is_empty() {
        for para in alert.summary.split('\n').filter(|p| !p.trim().is_empty()) {
            content.push(adf_paragraph(para));
        }
    }
    if !alert.fields.is_empty() {
        let items: Vec<Value> = alert
            .fields
            .iter()
            .map(|(k, v)| {
                json!({"type": "listItem", "content": [{"type": "paragraph", "content": [
                    {"type": "text", "text": format!("{k}: "), "marks": [{"type": "strong"}]},
                    adf_text(if v.is_empty() { "-" } else { v }),
                ]}]})
            })
            .collect();
        content.push(json!({"type": "bulletList", "content": items}));
    }
    if let Some(link) = &alert.link {
        content.push(json!({"type": "paragraph", "content": [
            {"type": "text", "text": "Details", "marks": [{"type": "link", "attrs": {"href": link}}]}
        ]}));
    }
    content.push(adf_paragraph(&format!(
        "Alert key: {} (source {})",
        alert.key, alert.source
    )));
    let summary = truncate(&alert.title.replace(['\n', '\r'], " "), 255);
    json!({
        "fields": {
            "project": {"key": project},
            "issuetype": {"name": issue_type},
            "summary": summary,
            "description": {"type": "doc", "version": 1, "content": content},
            "labels": ["alert-router", label(&alert.source)],
        }
    })
}

/// A comment on the alert's ticket (`POST /rest/api/3/issue/{key}/comment`), e.g. its
/// recovery: Jira workflows differ, so the router says it, and a person closes the ticket.
pub fn jira_comment(text: &str) -> Value {
    json!({"body": {"type": "doc", "version": 1, "content": [adf_paragraph(text)]}})
}

/// Jira labels: no spaces; keep letters, digits, `-` and `_`.
fn label(s: &str) -> String {
    let base = s.split(':').next().unwrap_or(s);
    let l: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(255)
        .collect();
    if l.is_empty() {
        "unknown".into()
    } else {
        l
    }
}

pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Severity;

    fn alert(action: Action) -> Alert {
        Alert {
            key: "cloudwatch/slo api page".into(),
            action,
            severity: Severity::Critical,
            title: "ALARM: slo-api-page-prod".into(),
            summary: "burning\nfast".into(),
            source: "cloudwatch:arn:aws:cloudwatch:us-east-1:1:alarm:x".into(),
            at: Some("2026-12-02T10:00:00.000+0000".into()),
            link: Some("https://console.aws.amazon.com/x".into()),
            fields: vec![("Alarm".into(), "slo-api-page-prod".into())],
        }
    }

    #[test]
    fn pagerduty_trigger_and_resolve_share_the_dedup_key() {
        let t = pagerduty_event(&alert(Action::Trigger), "R0UTINGKEY");
        let r = pagerduty_event(&alert(Action::Resolve), "R0UTINGKEY");
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(r["event_action"], "resolve");
        assert_eq!(t["dedup_key"], r["dedup_key"]);
        assert_eq!(t["payload"]["severity"], "critical");
        assert_eq!(t["payload"]["timestamp"], "2026-12-02T10:00:00+00:00");
        assert!(r.get("payload").is_none());
    }

    #[test]
    fn opsgenie_alias_is_the_key_and_the_close_path_encodes_it() {
        let a = alert(Action::Trigger);
        assert_eq!(opsgenie_create(&a)["alias"], "cloudwatch/slo api page");
        assert_eq!(opsgenie_create(&a)["priority"], "P1");
        assert_eq!(
            opsgenie_close_path(&a),
            "/v2/alerts/cloudwatch%2Fslo%20api%20page/close?identifierType=alias"
        );
        let long = Alert {
            title: "t".repeat(500),
            ..a
        };
        assert_eq!(
            opsgenie_create(&long)["message"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            130
        );
    }

    #[test]
    fn slack_blocks_and_jira_adf_have_their_shapes() {
        let s = slack_message(&alert(Action::Trigger));
        assert_eq!(s["blocks"][0]["type"], "header");
        assert_eq!(s["blocks"][0]["text"]["type"], "plain_text");
        let j = jira_issue(&alert(Action::Trigger), "FINOPS", "Task");
        assert_eq!(j["fields"]["project"]["key"], "FINOPS");
        assert_eq!(j["fields"]["description"]["type"], "doc");
        assert_eq!(
            j["fields"]["description"]["content"][0]["type"],
            "paragraph"
        );
        assert_eq!(j["fields"]["labels"][1], "cloudwatch");
    }
}
