//! The daily e-mail digest: the info notifications collected for one UTC day, grouped by
//! alert, published once to the digest topic (e-mail subscribers). `_sent.json` marks the day
//! done after the publish: a crash between the two sends the digest twice, never zero times.

use serde::{Deserialize, Serialize};
use shared::state::JsonState;
use shared::store::ConditionalStore;
use shared::{SuiteError, SuiteResult};

use crate::model::Action;
use crate::run::route::DigestItem;
use shared::sns::{Publication, Publisher};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestSent {
    pub day: String,
    pub items: usize,
    pub message_id: String,
    pub sent_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigestOutcome {
    /// `SENT`, `ALREADY_SENT` or `EMPTY` (nothing collected: no mail).
    pub status: String,
    pub day: String,
    pub items: usize,
    pub alerts: usize,
    pub message_id: Option<String>,
}

/// The digest's text: one block per alert key, newest state last.
pub fn render(day: &str, environment: &str, items: &[DigestItem]) -> (String, String, usize) {
    let mut by_key: Vec<(String, Vec<&DigestItem>)> = vec![];
    for it in items {
        match by_key.iter_mut().find(|(k, _)| *k == it.alert.key) {
            Some((_, v)) => v.push(it),
            None => by_key.push((it.alert.key.clone(), vec![it])),
        }
    }
    for (_, v) in by_key.iter_mut() {
        v.sort_by(|a, b| a.received_at.cmp(&b.received_at));
    }
    by_key.sort_by(|a, b| a.1[0].received_at.cmp(&b.1[0].received_at));
    let subject = format!(
        "Platform alerts digest {day} ({environment}): {} notifications, {} alerts",
        items.len(),
        by_key.len()
    );
    let mut body = format!(
        "{subject}\n\nInformational notifications of {day} (UTC), collected by alert-router.\n"
    );
    for (key, v) in &by_key {
        let last = v[v.len() - 1];
        let state = match last.alert.action {
            Action::Resolve => "resolved",
            Action::Trigger => "still raised at the last notification",
        };
        body.push_str(&format!(
            "\n* {}\n  {} notification(s), first {}, last {}; {state}\n",
            last.alert.title,
            v.len(),
            v[0].received_at,
            last.received_at
        ));
        if !last.alert.summary.is_empty() {
            for line in last.alert.summary.lines().take(4) {
                body.push_str(&format!("  {line}\n"));
            }
        }
        if let Some(l) = &last.alert.link {
            body.push_str(&format!("  {l}\n"));
        }
        body.push_str(&format!("  key: {key}\n"));
    }
    (subject, body, by_key.len())
}

pub async fn send_digest<S: ConditionalStore, P: Publisher>(
    state: JsonState<'_, S>,
    store: &S,
    prefix: &str,
    topic_arn: Option<&str>,
    publisher: &P,
    environment: &str,
    day: &str,
) -> SuiteResult<DigestOutcome> {
    let marker = format!("{prefix}digest/{day}/_sent.json");
    if let Some(sent) = state.load::<DigestSent>(&marker).await? {
        return Ok(DigestOutcome {
            status: "ALREADY_SENT".into(),
            day: day.into(),
            items: sent.value.items,
            alerts: 0,
            message_id: Some(sent.value.message_id),
        });
    }
    let keys = store
        .list_keys(state.bucket(), &format!("{prefix}digest/{day}/"))
        .await?;
    let mut items = vec![];
    for k in keys.iter().filter(|k| !k.ends_with("/_sent.json")) {
        if let Some(it) = state.load::<DigestItem>(k).await? {
            items.push(it.value);
        }
    }
    if items.is_empty() {
        return Ok(DigestOutcome {
            status: "EMPTY".into(),
            day: day.into(),
            items: 0,
            alerts: 0,
            message_id: None,
        });
    }
    let topic = topic_arn.ok_or_else(|| SuiteError::Config {
        var: "ALERT_DIGEST_TOPIC_ARN".into(),
        problem: format!(
            "is not set, and {} info notifications of {day} wait for the digest",
            items.len()
        ),
    })?;
    let (subject, body, alerts) = render(day, environment, &items);
    let message_id = publisher
        .publish(Publication {
            topic_arn: topic,
            subject: &subject,
            message: &body,
            attributes: &[],
        })
        .await?;
    let sent = DigestSent {
        day: day.into(),
        items: items.len(),
        message_id: message_id.clone(),
        sent_at: chrono::Utc::now().to_rfc3339(),
    };
    let _ = state.create(&marker, &sent).await?;
    Ok(DigestOutcome {
        status: "SENT".into(),
        day: day.into(),
        items: items.len(),
        alerts,
        message_id: Some(message_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Alert, Severity};

    fn item(key: &str, at: &str, action: Action) -> DigestItem {
        DigestItem {
            message_id: format!("{key}{at}"),
            received_at: at.into(),
            alert: Alert {
                key: key.into(),
                action,
                severity: Severity::Info,
                title: format!("title {key}"),
                summary: "reason".into(),
                source: "cloudwatch".into(),
                at: None,
                link: None,
                fields: vec![],
            },
        }
    }

    #[test]
    fn groups_by_alert_and_says_the_last_state() {
        let (subject, body, alerts) = render(
            "2026-12-02",
            "prod",
            &[
                item("a", "2026-12-02T03:00:00Z", Action::Trigger),
                item("b", "2026-12-02T01:00:00Z", Action::Trigger),
                item("a", "2026-12-02T04:00:00Z", Action::Resolve),
            ],
        );
        assert_eq!(alerts, 2);
        assert_eq!(
            subject,
            "Platform alerts digest 2026-12-02 (prod): 3 notifications, 2 alerts"
        );
        let b = body.find("title b").unwrap();
        let a = body.find("title a").unwrap();
        assert!(b < a, "oldest first:\n{body}");
        assert!(body.contains("2 notification(s), first 2026-12-02T03:00:00Z, last 2026-12-02T04:00:00Z; resolved"), "{body}");
    }
}
