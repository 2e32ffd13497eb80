//! What the router works with: the channel a message came in on, the alert it says, and the
//! routes that alert goes to. No AWS types.

use serde::{Deserialize, Serialize};

/// The playbook's severities and streams, one SNS topic each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Page: PagerDuty (Events API v2) and OpsGenie.
    Critical,
    /// Collected, then one e-mail digest a day.
    Info,
    /// FinOps Slack channel and Jira project FINOPS (our anomalies, AWS Budgets, AWS Cost
    /// Anomaly Detection).
    Finops,
    /// Release-gate incidents: a ticket in Jira project REL.
    Release,
}

impl Channel {
    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "critical" => Some(Channel::Critical),
            "info" => Some(Channel::Info),
            "finops" => Some(Channel::Finops),
            "release" => Some(Channel::Release),
            _ => None,
        }
    }

    /// Where an alert of this channel goes.
    pub fn routes(self) -> &'static [Route] {
        match self {
            Channel::Critical => &[Route::Pagerduty, Route::Opsgenie],
            Channel::Info => &[Route::Digest],
            Channel::Finops => &[Route::SlackFinops, Route::JiraFinops],
            Channel::Release => &[Route::JiraRelease],
        }
    }
}

/// One destination. The name is the `route` dimension of `alert_deliveries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Pagerduty,
    Opsgenie,
    SlackFinops,
    JiraFinops,
    JiraRelease,
    Digest,
}

impl Route {
    pub const ALL: [Route; 6] = [
        Route::Pagerduty,
        Route::Opsgenie,
        Route::SlackFinops,
        Route::JiraFinops,
        Route::JiraRelease,
        Route::Digest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Route::Pagerduty => "pagerduty",
            Route::Opsgenie => "opsgenie",
            Route::SlackFinops => "slack_finops",
            Route::JiraFinops => "jira_finops",
            Route::JiraRelease => "jira_release",
            Route::Digest => "digest",
        }
    }
}

/// What the alert asks of its routes (trigger / resolve): the suite's one definition.
pub use shared::notifications::Action;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    /// PagerDuty's `payload.severity` values.
    pub fn pagerduty(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    /// OpsGenie's priorities P1 (highest) to P5.
    pub fn opsgenie(self) -> &'static str {
        match self {
            Severity::Critical => "P1",
            Severity::Error => "P2",
            Severity::Warning => "P3",
            Severity::Info => "P5",
        }
    }
}

/// One alert, whatever sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable per alarm (or anomaly, budget threshold, incident): PagerDuty's `dedup_key`,
    /// OpsGenie's `alias`, the ticket's identity. Re-notifications and the resolve carry the
    /// same key, so a flapping alarm stays one incident.
    pub key: String,
    pub action: Action,
    pub severity: Severity,
    /// One line, e.g. the alarm name and its new state.
    pub title: String,
    /// A few lines: the state reason, the amounts, the p95.
    pub summary: String,
    /// What raised it: `cloudwatch:<alarm arn>`, `aws-budgets`, `cost-anomaly-detection`,
    /// `loadtest-coordinator`.
    pub source: String,
    /// When it happened (RFC 3339, as the sender said), if it said.
    pub at: Option<String>,
    /// A link a person follows (console, report, anomaly details).
    pub link: Option<String>,
    /// Label/value pairs shown as fields (Slack) and custom details (PagerDuty).
    pub fields: Vec<(String, String)>,
}

/// What one route did with one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub route: Route,
    pub key: String,
    pub action: Action,
    /// `delivered`, `already_delivered` (a redelivered message), `deduplicated` (the route
    /// already holds an open alert with this key), `collected` (digest), `skipped` (nothing to
    /// do, with the reason in `detail`).
    pub outcome: String,
    /// The route's own reference: PagerDuty's dedup key, the Jira issue key, the digest day.
    pub reference: Option<String>,
    pub detail: Option<String>,
}
