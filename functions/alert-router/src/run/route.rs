//! SNS records in, deliveries out. Idempotent per SNS message and route: a delivery is recorded
//! (create-only) once the route accepted it, so a redelivered message or Lambda's retry of a
//! partly failed invocation sends only what has not gone yet. A failure of any route fails the
//! invocation after the others went: Lambda retries it, then puts it on the function's failure
//! queue, which alarms (infra/alert_routing.tf). Nothing is dropped quietly.

use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::notifications::SnsEnvelope;
use shared::state::JsonState;
use shared::store::ConditionalStore;
use shared::{SuiteError, SuiteResult};

use crate::classify::{classify, notification_id, Classified};
use crate::config::Settings;
use crate::format;
use crate::model::{Action, Alert, Delivery, Route};
use crate::port::{post_with_retry, HttpPost, RouteSecrets};

/// What the router needs, borrowed.
pub struct Router<'a, S: ConditionalStore, H: HttpPost> {
    pub settings: &'a Settings,
    pub state: JsonState<'a, S>,
    pub http: &'a H,
    pub secrets: &'a RouteSecrets,
    /// First retry wait inside an invocation (then ×4).
    pub backoff: Duration,
}

/// An open Jira ticket of an alert key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub issue_key: String,
    pub alert_key: String,
    pub opened_at: String,
    pub resolved: bool,
}

/// One collected info notification (digest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestItem {
    pub message_id: String,
    pub received_at: String,
    pub alert: Alert,
}

/// The outcome of a batch: every delivery made, and the routes that failed.
#[derive(Debug, Default)]
pub struct Routed {
    pub deliveries: Vec<Delivery>,
    pub failures: Vec<(Route, String, SuiteError)>,
}

fn short_hash(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))[..32].to_string()
}

/// The UTC day of an SNS timestamp (`2026-12-02T10:00:00.000Z`), else today.
pub fn day_of(timestamp: Option<&str>) -> String {
    timestamp
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now)
        .format("%Y-%m-%d")
        .to_string()
}

impl<S: ConditionalStore, H: HttpPost> Router<'_, S, H> {
    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.settings.state_prefix)
    }

    pub async fn route_all(&self, records: &[SnsEnvelope]) -> SuiteResult<Routed> {
        let mut out = Routed::default();
        for (i, env) in records.iter().enumerate() {
            let channel = self.settings.channel_of(&env.topic_arn).ok_or_else(|| {
                SuiteError::invalid(
                    format!("Records[{i}].Sns.TopicArn"),
                    format!("{} is not one of ALERT_TOPICS", env.topic_arn),
                    "subscribe the function only to the topics in ALERT_TOPICS, or add this one",
                )
            })?;
            let alert = match classify(channel, env) {
                Classified::Alert(a) => a,
                Classified::Ignored(reason) => {
                    tracing::info!(message_id = %env.message_id, reason = %reason, "notification ignored");
                    out.deliveries.push(Delivery {
                        route: channel.routes()[0],
                        key: String::new(),
                        action: Action::Trigger,
                        outcome: "ignored".into(),
                        reference: None,
                        detail: Some(reason),
                    });
                    continue;
                }
            };
            let notification = notification_id(env);
            let mut reached = 0;
            let failed_before = out.failures.len();
            let mut unconfigured = vec![];
            for &route in channel.routes() {
                let record = self.key(&format!(
                    "deliveries/{}/{}.json",
                    short_hash(&notification),
                    route.name()
                ));
                if let Some(done) = self.state.load::<Delivery>(&record).await? {
                    reached += 1;
                    out.deliveries.push(Delivery {
                        outcome: "already_delivered".into(),
                        ..done.value
                    });
                    continue;
                }
                match self.deliver(route, &alert, env).await {
                    Ok(d) if d.outcome == "not_configured" => {
                        unconfigured.push(route.name());
                        out.deliveries.push(d);
                    }
                    Ok(d) => {
                        reached += 1;
                        // Create-only: a concurrent duplicate delivery already recorded it.
                        let _ = self.state.create(&record, &d).await?;
                        tracing::info!(route = route.name(), key = %d.key, outcome = %d.outcome, reference = ?d.reference, "alert routed");
                        out.deliveries.push(d);
                    }
                    Err(e) => {
                        tracing::error!(route = route.name(), key = %alert.key, error = %e, "alert delivery failed");
                        out.failures.push((route, alert.key.clone(), e));
                    }
                }
            }
            if reached == 0 && out.failures.len() == failed_before {
                // Every route of the channel lacks its secret: a person would never see it.
                out.failures.push((
                    channel.routes()[0],
                    alert.key.clone(),
                    SuiteError::Config {
                        var: format!("secret {}", self.settings.secret_id),
                        problem: format!(
                            "no route of channel {channel:?} is configured ({} unset); the alert {:?} reached nobody",
                            unconfigured.join(", "),
                            alert.title
                        ),
                    },
                ));
            }
        }
        Ok(out)
    }

    fn not_configured(route: Route, alert: &Alert, what: &str) -> Delivery {
        Delivery {
            route,
            key: alert.key.clone(),
            action: alert.action,
            outcome: "not_configured".into(),
            reference: None,
            detail: Some(format!("{what} is not in the secret")),
        }
    }

    async fn post(
        &self,
        service: &'static str,
        url: &str,
        headers: &[(&str, String)],
        body: &serde_json::Value,
    ) -> SuiteResult<crate::port::Reply> {
        post_with_retry(
            self.http,
            service,
            url,
            headers,
            body,
            self.settings.http_attempts,
            self.backoff,
        )
        .await
    }

    async fn deliver(
        &self,
        route: Route,
        alert: &Alert,
        env: &SnsEnvelope,
    ) -> SuiteResult<Delivery> {
        let done = |outcome: &str, reference: Option<String>| Delivery {
            route,
            key: alert.key.clone(),
            action: alert.action,
            outcome: outcome.into(),
            reference,
            detail: None,
        };
        match route {
            Route::Pagerduty => {
                let Some(rk) = &self.secrets.pagerduty_routing_key else {
                    return Ok(Self::not_configured(route, alert, "pagerduty_routing_key"));
                };
                let reply = self
                    .post(
                        "pagerduty",
                        &self.settings.pagerduty_url,
                        &[],
                        &format::pagerduty_event(alert, rk),
                    )
                    .await?;
                let dedup = reply.json()["dedup_key"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| alert.key.clone());
                Ok(done("delivered", Some(dedup)))
            }
            Route::Opsgenie => {
                let Some(k) = &self.secrets.opsgenie_api_key else {
                    return Ok(Self::not_configured(route, alert, "opsgenie_api_key"));
                };
                let auth = [("Authorization", format!("GenieKey {k}"))];
                let (url, body) = match alert.action {
                    Action::Trigger => (
                        format!("{}/v2/alerts", self.settings.opsgenie_url),
                        format::opsgenie_create(alert),
                    ),
                    Action::Resolve => (
                        format!(
                            "{}{}",
                            self.settings.opsgenie_url,
                            format::opsgenie_close_path(alert)
                        ),
                        format::opsgenie_close(alert),
                    ),
                };
                let reply = self.post("opsgenie", &url, &auth, &body).await?;
                Ok(done(
                    "delivered",
                    reply.json()["requestId"].as_str().map(str::to_string),
                ))
            }
            Route::SlackFinops => {
                let Some(url) = &self.secrets.slack_finops_webhook_url else {
                    return Ok(Self::not_configured(
                        route,
                        alert,
                        "slack_finops_webhook_url",
                    ));
                };
                self.post("slack", url, &[], &format::slack_message(alert))
                    .await?;
                Ok(done("delivered", None))
            }
            Route::JiraFinops | Route::JiraRelease => {
                let project = if route == Route::JiraFinops {
                    &self.settings.jira_finops_project
                } else {
                    &self.settings.jira_release_project
                };
                let (Some(base), Some(email), Some(token)) = (
                    &self.settings.jira_url,
                    &self.secrets.jira_email,
                    &self.secrets.jira_api_token,
                ) else {
                    return Ok(Self::not_configured(
                        route,
                        alert,
                        "ALERT_JIRA_URL, jira_email or jira_api_token",
                    ));
                };
                let auth = [(
                    "Authorization",
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("{email}:{token}"))
                    ),
                )];
                let ticket_key = self.key(&format!(
                    "tickets/{project}/{}.json",
                    short_hash(&alert.key)
                ));
                let open = self.state.load::<Ticket>(&ticket_key).await?;
                match (alert.action, open) {
                    (Action::Trigger, Some(t)) if !t.value.resolved => Ok(Delivery {
                        detail: Some("the alert's ticket is still open".into()),
                        ..done("deduplicated", Some(t.value.issue_key))
                    }),
                    (Action::Trigger, previous) => {
                        let reply = self
                            .post(
                                "jira",
                                &format!("{base}/rest/api/3/issue"),
                                &auth,
                                &format::jira_issue(alert, project, &self.settings.jira_issue_type),
                            )
                            .await?;
                        let issue = reply.json()["key"]
                            .as_str()
                            .map(str::to_string)
                            .ok_or_else(|| SuiteError::Upstream {
                                service: "jira",
                                message: "created an issue but answered without its key".into(),
                                retryable: false,
                            })?;
                        let t = Ticket {
                            issue_key: issue.clone(),
                            alert_key: alert.key.clone(),
                            opened_at: env.timestamp.clone().unwrap_or_default(),
                            resolved: false,
                        };
                        match previous {
                            Some(p) => drop(self.state.replace(&ticket_key, &t, &p.etag).await?),
                            None => drop(self.state.create(&ticket_key, &t).await?),
                        }
                        Ok(done("delivered", Some(issue)))
                    }
                    (Action::Resolve, Some(t)) if !t.value.resolved => {
                        let issue = t.value.issue_key.clone();
                        self.post(
                            "jira",
                            &format!("{base}/rest/api/3/issue/{issue}/comment"),
                            &auth,
                            &format::jira_comment(&format!(
                                "Resolved: {} ({})",
                                alert.title,
                                alert.at.as_deref().unwrap_or("time not given")
                            )),
                        )
                        .await?;
                        let closed = Ticket {
                            resolved: true,
                            ..t.value
                        };
                        drop(self.state.replace(&ticket_key, &closed, &t.etag).await?);
                        Ok(done("delivered", Some(issue)))
                    }
                    (Action::Resolve, _) => Ok(Delivery {
                        detail: Some("no open ticket for this key".into()),
                        ..done("skipped", None)
                    }),
                }
            }
            Route::Digest => {
                let day = day_of(env.timestamp.as_deref());
                let item = DigestItem {
                    message_id: env.message_id.clone(),
                    received_at: env
                        .timestamp
                        .clone()
                        .unwrap_or_else(|| chrono::Utc::now().to_rfc3339()),
                    alert: alert.clone(),
                };
                let _ = self
                    .state
                    .create(
                        &self.key(&format!(
                            "digest/{day}/{}.json",
                            short_hash(&notification_id(env))
                        )),
                        &item,
                    )
                    .await?;
                Ok(done("collected", Some(day)))
            }
        }
    }
}
