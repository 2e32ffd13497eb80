//! Ports and their adapters: the HTTP client the routes post with (retrying 429/5xx), the
//! secret that holds the routing keys. The digest goes out through `shared::sns`. The state (what
//! was delivered, the digest's items, open tickets) is `shared::state::JsonState` on the
//! shared S3 port.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use shared::error::aws_error;
use shared::{SuiteError, SuiteResult};

/// The routing keys, API tokens and webhook URLs (Secrets Manager, JSON). Every field is
/// optional: a route whose secret is absent is not configured.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSecrets {
    /// PagerDuty Events API v2 integration (routing) key, 32 characters.
    pub pagerduty_routing_key: Option<String>,
    /// OpsGenie API integration key (`Authorization: GenieKey …`).
    pub opsgenie_api_key: Option<String>,
    /// The FinOps channel's Slack incoming-webhook URL.
    pub slack_finops_webhook_url: Option<String>,
    /// Jira Cloud: the account's e-mail and API token (basic auth).
    pub jira_email: Option<String>,
    pub jira_api_token: Option<String>,
}

impl fmt::Debug for RouteSecrets {
    // Never the values: only which are set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |o: &Option<String>| if o.is_some() { "set" } else { "unset" };
        f.debug_struct("RouteSecrets")
            .field("pagerduty_routing_key", &set(&self.pagerduty_routing_key))
            .field("opsgenie_api_key", &set(&self.opsgenie_api_key))
            .field(
                "slack_finops_webhook_url",
                &set(&self.slack_finops_webhook_url),
            )
            .field("jira_email", &set(&self.jira_email))
            .field("jira_api_token", &set(&self.jira_api_token))
            .finish()
    }
}

impl RouteSecrets {
    /// Parses the secret's JSON; an error names the field, never a value.
    pub fn parse(secret_id: &str, text: &str) -> SuiteResult<Self> {
        let s: RouteSecrets = serde_json::from_str(text).map_err(|e| SuiteError::Config {
            var: format!("secret {secret_id}"),
            // serde's message names the field and the position, not the value.
            problem: format!(
                "{}; expected JSON with pagerduty_routing_key, opsgenie_api_key, slack_finops_webhook_url, jira_email, jira_api_token (docs/alert-router.md#secret)",
                e.to_string().split(" at line").next().unwrap_or("not JSON")
            ),
        })?;
        if let Some(u) = &s.slack_finops_webhook_url {
            if !u.starts_with("https://") && !u.starts_with("http://127.0.0.1") {
                return Err(SuiteError::Config {
                    var: format!("secret {secret_id}: slack_finops_webhook_url"),
                    problem: "must be an https:// Slack webhook URL".into(),
                });
            }
        }
        Ok(s)
    }
}

pub trait SecretSource: Send + Sync {
    fn routes(&self, secret_id: &str) -> impl Future<Output = SuiteResult<RouteSecrets>> + Send;
}

pub struct AwsSecrets {
    client: aws_sdk_secretsmanager::Client,
}

impl AwsSecrets {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        AwsSecrets { client }
    }
}

impl SecretSource for AwsSecrets {
    async fn routes(&self, secret_id: &str) -> SuiteResult<RouteSecrets> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| aws_error("secretsmanager", "GetSecretValue", e))?;
        let text = out.secret_string().ok_or_else(|| SuiteError::Config {
            var: format!("secret {secret_id}"),
            problem: "has no SecretString (binary secrets are not supported)".into(),
        })?;
        RouteSecrets::parse(secret_id, text)
    }
}

/// One answer from a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// One POST, no retry: the transport error as text.
pub trait HttpPost: Send + Sync {
    fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &Value,
    ) -> impl Future<Output = Result<(Reply, Option<Duration>), String>> + Send;
}

pub struct ReqwestPost {
    client: reqwest::Client,
}

impl ReqwestPost {
    pub fn new(timeout: Duration) -> SuiteResult<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent("platform-playbook-alert-router")
            .build()
            .map_err(|e| SuiteError::Internal(format!("HTTP client: {e}")))?;
        Ok(ReqwestPost { client })
    }
}

impl HttpPost for ReqwestPost {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &Value,
    ) -> Result<(Reply, Option<Duration>), String> {
        let mut req = self.client.post(url).json(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        // The URL may hold a secret (Slack webhooks): errors name the host only.
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{}: {}", host_of(url), e.without_url()))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.text().await.unwrap_or_default();
        Ok((Reply { status, body }, retry_after))
    }
}

pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

/// POSTs with up to `attempts` tries: 2xx is an answer; 429, 5xx and transport errors are
/// tried again after a backoff (or the service's `Retry-After`, at most 5 s); any other status
/// is a refusal no retry can mend. The last failure is a [`SuiteError::Upstream`].
pub async fn post_with_retry<H: HttpPost>(
    http: &H,
    service: &'static str,
    url: &str,
    headers: &[(&str, String)],
    body: &Value,
    attempts: u32,
    backoff: Duration,
) -> SuiteResult<Reply> {
    let mut last = String::new();
    for attempt in 0..attempts.max(1) {
        let wait = match http.post(url, headers, body).await {
            Ok((r, _)) if (200..300).contains(&r.status) => return Ok(r),
            Ok((r, retry_after)) if r.status == 429 || r.status >= 500 => {
                last = format!(
                    "HTTP {} from {}: {}",
                    r.status,
                    host_of(url),
                    crate::classify::truncate(&r.body, 300)
                );
                retry_after.unwrap_or(backoff * 4u32.pow(attempt))
            }
            Ok((r, _)) => {
                return Err(SuiteError::Upstream {
                    service,
                    message: format!(
                        "HTTP {} from {} (not retried: the request itself was refused): {}",
                        r.status,
                        host_of(url),
                        crate::classify::truncate(&r.body, 500)
                    ),
                    retryable: false,
                })
            }
            Err(e) => {
                last = e;
                backoff * 4u32.pow(attempt)
            }
        };
        if attempt + 1 < attempts {
            tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
        }
    }
    Err(SuiteError::Upstream {
        service,
        message: format!("{last} (after {attempts} attempts)"),
        retryable: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn secrets_debug_never_shows_values_and_errors_name_the_field() {
        let s = RouteSecrets::parse(
            "routes",
            r#"{"pagerduty_routing_key": "abcdefabcdefabcdefabcdefabcdef12"}"#,
        )
        .unwrap();
        let d = format!("{s:?}");
        assert!(
            d.contains("pagerduty_routing_key: \"set\"") && !d.contains("abcdef"),
            "{d}"
        );
        let e = RouteSecrets::parse("routes", r#"{"pagerduty_key": "sekrit"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pagerduty_key") && !e.contains("sekrit"), "{e}");
        let e = RouteSecrets::parse(
            "routes",
            r#"{"slack_finops_webhook_url": "hooks.slack.com/x"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("slack_finops_webhook_url"), "{e}");
    }

    struct Script(Mutex<Vec<Result<u16, String>>>);
    impl HttpPost for Script {
        async fn post(
            &self,
            _: &str,
            _: &[(&str, String)],
            _: &Value,
        ) -> Result<(Reply, Option<Duration>), String> {
            let next = self.0.lock().unwrap().remove(0);
            next.map(|status| {
                (
                    Reply {
                        status,
                        body: String::new(),
                    },
                    None,
                )
            })
        }
    }

    #[tokio::test]
    async fn retries_5xx_and_transport_errors_but_not_a_refusal() {
        let ok = Script(Mutex::new(vec![Err("reset".into()), Ok(503), Ok(202)]));
        let r = post_with_retry(
            &ok,
            "pagerduty",
            "http://x/",
            &[],
            &Value::Null,
            3,
            Duration::from_millis(1),
        )
        .await;
        assert_eq!(r.unwrap().status, 202);
        let refused = Script(Mutex::new(vec![Ok(400), Ok(202)]));
        let e = post_with_retry(
            &refused,
            "pagerduty",
            "http://x/",
            &[],
            &Value::Null,
            3,
            Duration::from_millis(1),
        )
        .await
        .unwrap_err();
        assert!(!e.retryable() && e.to_string().contains("HTTP 400"), "{e}");
        let down = Script(Mutex::new(vec![Ok(502), Ok(502), Ok(429)]));
        let e = post_with_retry(
            &down,
            "opsgenie",
            "http://x/",
            &[],
            &Value::Null,
            3,
            Duration::from_millis(1),
        )
        .await
        .unwrap_err();
        assert!(
            e.retryable() && e.to_string().contains("after 3 attempts"),
            "{e}"
        );
    }
}
