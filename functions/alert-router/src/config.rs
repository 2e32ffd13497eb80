//! alert-router's own configuration (`ALERT_*`), read once at cold start
//! (docs/alert-router.md#configuration). Secrets (routing keys, API tokens, webhook URLs) are
//! not here: they are read from Secrets Manager at each invocation (`ALERT_SECRET_ID`).

use std::collections::BTreeMap;
use std::time::Duration;

use shared::config::Vars;
use shared::SuiteError;

use crate::model::Channel;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `ALERT_TOPICS`: `critical=<arn>,info=<arn>,finops=<arn>,release=<arn>`: which channel a
    /// message belongs to is the topic it was published to.
    pub topics: BTreeMap<String, Channel>,
    /// `ALERT_SECRET_ID`: the Secrets Manager secret (JSON, docs/alert-router.md#secret).
    pub secret_id: String,
    /// `ALERT_DIGEST_TOPIC_ARN`: the daily digest is published here once a day (its
    /// subscribers are e-mail addresses).
    pub digest_topic_arn: Option<String>,
    /// `ALERT_STATE_PREFIX` (default `alerts/`) in `REPORT_BUCKET`: delivery records, the
    /// digest's collected items, the ticket of each open alert.
    pub state_prefix: String,
    /// `ALERT_PAGERDUTY_URL` (default PagerDuty's Events API v2 endpoint).
    pub pagerduty_url: String,
    /// `ALERT_OPSGENIE_URL` (default `https://api.opsgenie.com`; EU: `https://api.eu.opsgenie.com`).
    pub opsgenie_url: String,
    /// `ALERT_JIRA_URL`: the Jira Cloud site, e.g. `https://example.atlassian.net`.
    pub jira_url: Option<String>,
    /// `ALERT_JIRA_FINOPS_PROJECT` (default `FINOPS`).
    pub jira_finops_project: String,
    /// `ALERT_JIRA_RELEASE_PROJECT` (default `REL`).
    pub jira_release_project: String,
    /// `ALERT_JIRA_ISSUE_TYPE` (default `Task`).
    pub jira_issue_type: String,
    /// `ALERT_HTTP_TIMEOUT_MS` (default 5000): per request.
    pub http_timeout: Duration,
    /// `ALERT_HTTP_ATTEMPTS` (default 3): tries per delivery inside one invocation, before the
    /// invocation fails and Lambda's own retries (then the failure queue) take over.
    pub http_attempts: u32,
}

fn bad(var: &str, problem: impl Into<String>) -> SuiteError {
    SuiteError::Config {
        var: var.into(),
        problem: problem.into(),
    }
}

fn url(vars: &Vars, var: &str, default: Option<&str>) -> Result<Option<String>, SuiteError> {
    let Some(v) = vars.get(var).filter(|v| !v.is_empty()).or(default) else {
        return Ok(None);
    };
    if !(v.starts_with("https://") || v.starts_with("http://")) {
        return Err(bad(var, format!("{v:?} is not an http(s) URL")));
    }
    Ok(Some(v.trim_end_matches('/').to_string()))
}

impl Settings {
    pub fn from_vars(vars: &Vars) -> Result<Self, SuiteError> {
        let mut topics = BTreeMap::new();
        for pair in vars.list("ALERT_TOPICS") {
            let (name, arn) = pair.split_once('=').ok_or_else(|| {
                bad(
                    "ALERT_TOPICS",
                    format!("{pair:?} is not channel=<topic arn>"),
                )
            })?;
            let channel = Channel::parse(name.trim()).ok_or_else(|| {
                bad(
                    "ALERT_TOPICS",
                    format!("{name:?} is not a channel: critical, info, finops or release"),
                )
            })?;
            let arn = arn.trim();
            if !arn.starts_with("arn:") {
                return Err(bad(
                    "ALERT_TOPICS",
                    format!("{name}: {arn:?} is not a topic ARN"),
                ));
            }
            topics.insert(arn.to_string(), channel);
        }
        if topics.is_empty() {
            return Err(bad(
                "ALERT_TOPICS",
                "is not set; set it to critical=<arn>,info=<arn>,finops=<arn>,release=<arn>",
            ));
        }
        let mut state_prefix = vars.or("ALERT_STATE_PREFIX", "alerts/");
        if !state_prefix.ends_with('/') {
            state_prefix.push('/');
        }
        let timeout_ms: u64 = vars.parse_or("ALERT_HTTP_TIMEOUT_MS", 5000, "milliseconds")?;
        if !(100..=30_000).contains(&timeout_ms) {
            return Err(bad("ALERT_HTTP_TIMEOUT_MS", "must be 100-30000"));
        }
        let http_attempts: u32 = vars.parse_or("ALERT_HTTP_ATTEMPTS", 3, "a count")?;
        if !(1..=10).contains(&http_attempts) {
            return Err(bad("ALERT_HTTP_ATTEMPTS", "must be 1-10"));
        }
        let project = |var: &str, default: &str| -> Result<String, SuiteError> {
            let p = vars.or(var, default);
            if p.is_empty()
                || p.len() > 10
                || !p
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                return Err(bad(
                    var,
                    format!("{p:?} is not a Jira project key (A-Z, 0-9)"),
                ));
            }
            Ok(p)
        };
        Ok(Settings {
            topics,
            secret_id: vars.required(
                "ALERT_SECRET_ID",
                "the Secrets Manager secret with the routing keys (docs/alert-router.md#secret)",
            )?,
            digest_topic_arn: vars
                .get("ALERT_DIGEST_TOPIC_ARN")
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            state_prefix,
            pagerduty_url: url(
                vars,
                "ALERT_PAGERDUTY_URL",
                Some("https://events.pagerduty.com/v2/enqueue"),
            )?
            .unwrap_or_default(),
            opsgenie_url: url(vars, "ALERT_OPSGENIE_URL", Some("https://api.opsgenie.com"))?
                .unwrap_or_default(),
            jira_url: url(vars, "ALERT_JIRA_URL", None)?,
            jira_finops_project: project("ALERT_JIRA_FINOPS_PROJECT", "FINOPS")?,
            jira_release_project: project("ALERT_JIRA_RELEASE_PROJECT", "REL")?,
            jira_issue_type: vars.or("ALERT_JIRA_ISSUE_TYPE", "Task"),
            http_timeout: Duration::from_millis(timeout_ms),
            http_attempts,
        })
    }

    /// The channel of a topic, `None` for a topic this function was not told about.
    pub fn channel_of(&self, topic_arn: &str) -> Option<Channel> {
        self.topics.get(topic_arn).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(extra: &[(&str, &str)]) -> Vars {
        let mut v = vec![
            (
                "ALERT_TOPICS",
                "critical=arn:aws:sns:us-east-1:1:c,info=arn:aws:sns:us-east-1:1:i",
            ),
            ("ALERT_SECRET_ID", "alert-routes"),
        ];
        v.extend_from_slice(extra);
        Vars::from_pairs(v)
    }

    #[test]
    fn topics_map_to_channels() {
        let s = Settings::from_vars(&vars(&[])).unwrap();
        assert_eq!(
            s.channel_of("arn:aws:sns:us-east-1:1:c"),
            Some(Channel::Critical)
        );
        assert_eq!(
            s.channel_of("arn:aws:sns:us-east-1:1:i"),
            Some(Channel::Info)
        );
        assert_eq!(s.channel_of("arn:aws:sns:us-east-1:1:x"), None);
        assert_eq!(s.pagerduty_url, "https://events.pagerduty.com/v2/enqueue");
        assert_eq!(s.jira_release_project, "REL");
    }

    #[test]
    fn bad_settings_name_the_variable() {
        for (extra, var) in [
            (
                vec![("ALERT_TOPICS", "pager=arn:aws:sns:x")],
                "ALERT_TOPICS",
            ),
            (vec![("ALERT_TOPICS", "critical")], "ALERT_TOPICS"),
            (vec![("ALERT_TOPICS", "critical=topic")], "ALERT_TOPICS"),
            (
                vec![("ALERT_JIRA_URL", "jira.example.com")],
                "ALERT_JIRA_URL",
            ),
            (
                vec![("ALERT_JIRA_FINOPS_PROJECT", "fin ops")],
                "ALERT_JIRA_FINOPS_PROJECT",
            ),
            (vec![("ALERT_HTTP_ATTEMPTS", "0")], "ALERT_HTTP_ATTEMPTS"),
        ] {
            let err = Settings::from_vars(&vars(&extra)).unwrap_err().to_string();
            assert!(err.contains(var), "{extra:?}: {err}");
        }
        let err = Settings::from_vars(&Vars::from_pairs([("ALERT_TOPICS", "critical=arn:x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ALERT_SECRET_ID"), "{err}");
    }
}
