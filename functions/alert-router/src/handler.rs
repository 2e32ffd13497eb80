//! The Lambda adapter: an SNS event (route it), `{"kind": "digest"}` or the daily schedule's
//! EventBridge event (send the digest), the EMF metrics, the response.

use std::time::Duration;

use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::aws::{AwsClients, AwsSettings};
use shared::config::{CommonConfig, Vars};
use shared::metrics::{Emf, Unit};
use shared::notifications::{is_sns_event, parse_sns_event, SnsEnvelope};
use shared::state::JsonState;
use shared::store::{ConditionalStore, S3Store};
use shared::SuiteError;

use crate::config::Settings;
use crate::model::Route;
use crate::port::{AwsSecrets, HttpPost, ReqwestPost, SecretSource};
use crate::run::digest::{send_digest, DigestOutcome};
use crate::run::route::{Routed, Router};
use shared::sns::{Publisher, SnsPublisher};

pub struct Deps<S, H, K, P> {
    pub common: CommonConfig,
    pub settings: Settings,
    pub store: S,
    pub http: H,
    pub secrets: K,
    pub publisher: P,
    pub backoff: Duration,
}

impl Deps<S3Store, ReqwestPost, AwsSecrets, SnsPublisher> {
    pub async fn from_env() -> Result<Self, SuiteError> {
        let vars = Vars::from_process();
        let common = CommonConfig::from_vars(&vars, "alert-router")?;
        shared::telemetry::init(&common);
        let settings = Settings::from_vars(&vars)?;
        let clients = AwsClients::load(AwsSettings::from_vars(&vars)?).await;
        Ok(Deps {
            http: ReqwestPost::new(settings.http_timeout)?,
            store: S3Store::new(clients.s3()),
            secrets: AwsSecrets::new(aws_sdk_secretsmanager::Client::new(&clients.sdk)),
            publisher: clients.sns_publisher(),
            common,
            settings,
            backoff: Duration::from_millis(250),
        })
    }
}

#[derive(Debug, PartialEq)]
pub enum Job {
    Route(Vec<SnsEnvelope>),
    /// The digest of one UTC day (`YYYY-MM-DD`).
    Digest(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DigestRequest {
    kind: String,
    /// Default: yesterday (UTC).
    day: Option<String>,
}

fn yesterday_of(t: chrono::DateTime<chrono::Utc>) -> String {
    (t - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string()
}

pub fn parse_event(v: &Value) -> Result<Job, SuiteError> {
    if is_sns_event(v) {
        return parse_sns_event(v).map(Job::Route).map_err(|p| {
            SuiteError::invalid("Records", p, "send an SNS event (Records[].Sns.Message)")
        });
    }
    if v.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        let t = v
            .get("time")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(chrono::Utc::now);
        return Ok(Job::Digest(yesterday_of(t)));
    }
    let fix = "send an SNS event, {\"kind\": \"digest\"} or {\"kind\": \"digest\", \"day\": \"2026-12-02\"}";
    let r: DigestRequest = serde_json::from_value(v.clone()).map_err(|e| {
        let field = e
            .to_string()
            .split('`')
            .nth(1)
            .map(str::to_string)
            .unwrap_or_else(|| "kind".into());
        SuiteError::invalid(field, e.to_string(), fix)
    })?;
    if r.kind != "digest" {
        return Err(SuiteError::invalid(
            "kind",
            format!("{:?} is not a job", r.kind),
            fix,
        ));
    }
    let day = match r.day {
        None => yesterday_of(chrono::Utc::now()),
        Some(d) => {
            chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|_| {
                SuiteError::invalid(
                    "day",
                    format!("{d:?} is not YYYY-MM-DD"),
                    "e.g. \"2026-12-02\"",
                )
            })?;
            d
        }
    };
    Ok(Job::Digest(day))
}

/// The EMF documents of a routing batch (docs/alert-router.md lists them; a test holds them
/// to it).
pub fn route_documents(common: &CommonConfig, r: &Routed) -> Vec<Emf> {
    let mut docs = vec![];
    for route in Route::ALL {
        let sent = r
            .deliveries
            .iter()
            .filter(|d| {
                d.route == route
                    && matches!(
                        d.outcome.as_str(),
                        "delivered" | "collected" | "deduplicated"
                    )
            })
            .count();
        let failed = r.failures.iter().filter(|f| f.0 == route).count();
        if sent + failed == 0 {
            continue;
        }
        let mut e = Emf::new(common).dimension("route", route.name());
        e.metric("alert_deliveries", sent as f64, Unit::Count)
            .metric("alert_delivery_failures", failed as f64, Unit::Count);
        docs.push(e);
    }
    docs
}

pub fn digest_documents(common: &CommonConfig, o: &DigestOutcome) -> Vec<Emf> {
    if o.status != "SENT" {
        return vec![];
    }
    let mut e = Emf::new(common);
    e.metric("alert_digest_items", o.items as f64, Unit::Count);
    vec![e]
}

pub async fn handle<S, H, K, P>(
    deps: &Deps<S, H, K, P>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError>
where
    S: ConditionalStore,
    H: HttpPost,
    K: SecretSource,
    P: Publisher,
{
    shared::lambda::invoke(&deps.common, event, |event| handle_inner(deps, event)).await
}

async fn handle_inner<S, H, K, P>(
    deps: &Deps<S, H, K, P>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError>
where
    S: ConditionalStore,
    H: HttpPost,
    K: SecretSource,
    P: Publisher,
{
    let state = JsonState::new(&deps.store, &deps.common.report_bucket);
    match parse_event(&event.payload)? {
        Job::Route(records) => {
            let secrets = deps.secrets.routes(&deps.settings.secret_id).await?;
            let router = Router {
                settings: &deps.settings,
                state,
                http: &deps.http,
                secrets: &secrets,
                backoff: deps.backoff,
            };
            let routed = router.route_all(&records).await?;
            for d in route_documents(&deps.common, &routed) {
                d.emit();
            }
            if let Some((route, key, err)) = routed.failures.first() {
                // The routes that went are recorded; the retry sends only the rest.
                let failed: Vec<String> = routed
                    .failures
                    .iter()
                    .map(|f| format!("{} ({})", f.0.name(), f.1))
                    .collect();
                return Err(match err {
                    SuiteError::Upstream {
                        service,
                        message,
                        retryable,
                    } => SuiteError::Upstream {
                        service,
                        message: format!("{message}; failed routes: {}", failed.join(", ")),
                        retryable: *retryable,
                    },
                    SuiteError::Config { var, problem } => SuiteError::Config {
                        var: var.clone(),
                        problem: format!("{problem} (route {}, key {key})", route.name()),
                    },
                    other => SuiteError::Internal(format!(
                        "{other}; failed routes: {}",
                        failed.join(", ")
                    )),
                });
            }
            Ok(json!({"status": "ROUTED", "deliveries": routed.deliveries}))
        }
        Job::Digest(day) => {
            let o = send_digest(
                state,
                &deps.store,
                &deps.settings.state_prefix,
                deps.settings.digest_topic_arn.as_deref(),
                &deps.publisher,
                &deps.common.environment,
                &day,
            )
            .await?;
            for d in digest_documents(&deps.common, &o) {
                d.emit();
            }
            tracing::info!(day = %o.day, status = %o.status, items = o.items, "digest");
            Ok(serde_json::to_value(&o).map_err(|e| SuiteError::Internal(e.to_string()))?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, Delivery};
    use crate::run::route::Routed;

    #[test]
    fn every_emitted_metric_is_documented_and_catalogued() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/alert-router.md"),
        )
        .expect("docs/alert-router.md");
        let common = CommonConfig::from_vars(
            &Vars::from_pairs([("ENVIRONMENT", "local"), ("REPORT_BUCKET", "b")]),
            "alert-router",
        )
        .unwrap();
        let routed = Routed {
            deliveries: vec![Delivery {
                route: Route::Pagerduty,
                key: "k".into(),
                action: Action::Trigger,
                outcome: "delivered".into(),
                reference: None,
                detail: None,
            }],
            failures: vec![(
                Route::Opsgenie,
                "k".into(),
                SuiteError::Internal("x".into()),
            )],
        };
        let mut docs = route_documents(&common, &routed);
        assert_eq!(docs.len(), 2, "one document per route that did something");
        docs.extend(digest_documents(
            &common,
            &DigestOutcome {
                status: "SENT".into(),
                day: "2026-12-02".into(),
                items: 3,
                alerts: 2,
                message_id: None,
            },
        ));
        let seen = shared::metrics::assert_documented(&doc, "docs/alert-router.md", &docs);
        for must in [
            "alert_deliveries",
            "alert_delivery_failures",
            "alert_digest_items",
        ] {
            assert!(seen.contains(must), "{must} emitted");
        }
    }

    #[test]
    fn events_parse_to_jobs_and_bad_ones_name_the_field() {
        assert_eq!(
            parse_event(&json!({"kind": "digest", "day": "2026-12-02"})).unwrap(),
            Job::Digest("2026-12-02".into())
        );
        assert_eq!(
            parse_event(&json!({"detail-type": "Scheduled Event", "time": "2026-12-03T08:00:00Z"}))
                .unwrap(),
            Job::Digest("2026-12-02".into())
        );
        let e = parse_event(&json!({"no_such_field": true}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `no_such_field`"), "{e}");
        let e = parse_event(&json!({"kind": "digest", "day": "yesterday"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `day`"), "{e}");
        let e = parse_event(&json!({"kind": "page"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `kind`"), "{e}");
        let e = parse_event(&json!({"Records": [{"Sns": {}}]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Records[0].Sns.Message"), "{e}");
    }
}
