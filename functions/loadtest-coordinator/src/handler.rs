//! The Lambda adapter: the event (a schedule's `{"scenario": "quote-generation"}`, a manual
//! invoke with an inline scenario, or the coordinator's own continuation) → the run.

use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::Value;
use shared::aws::{AwsClients, AwsSettings};
use shared::config::{CommonConfig, Vars};
use shared::SuiteError;

use crate::config::Settings;
use crate::port::{Invoker, LambdaInvoker, Notifier, S3Store, SnsNotifier, Store};
use crate::run::{Engine, ScenarioRef, StartRequest};

pub struct Deps<S: Store, I: Invoker, N: Notifier> {
    pub common: CommonConfig,
    pub settings: Settings,
    pub store: S,
    pub invoker: I,
    pub notifier: N,
    pub http: reqwest::Client,
    pub sigv4: Option<crate::remote_write::SigV4>,
}

impl Deps<S3Store, LambdaInvoker, SnsNotifier> {
    /// Configuration and clients, once per cold start.
    pub async fn from_env() -> Result<Self, SuiteError> {
        let vars = Vars::from_process();
        let common = CommonConfig::from_vars(&vars, "loadtest-coordinator")?;
        shared::telemetry::init(&common);
        let settings = Settings::from_vars(&vars, &common)?;
        let clients = AwsClients::load(AwsSettings::from_vars(&vars)?).await;
        Ok(Deps {
            store: S3Store::new(clients.s3(), &settings.bucket),
            invoker: LambdaInvoker::new(
                match &settings.lambda_endpoint_url {
                    // Locally the Invoke API (cargo lambda watch) is not where S3 is (moto).
                    Some(url) => aws_sdk_lambda::Client::from_conf(
                        aws_sdk_lambda::config::Builder::from(&clients.sdk)
                            .endpoint_url(url)
                            .build(),
                    ),
                    None => clients.lambda(),
                },
                &settings.shard_function,
                &settings.self_function,
            ),
            notifier: SnsNotifier::new(
                aws_sdk_sns::Client::new(&clients.sdk),
                settings.incident_topic_arn.clone(),
            )
            .with_notice_topic(settings.notice_topic_arn.clone()),
            http: http_client()?,
            sigv4: match (
                &settings.remote_write_sigv4_region,
                clients.sdk.credentials_provider(),
            ) {
                (Some(region), Some(credentials)) => Some(crate::remote_write::SigV4 {
                    region: region.clone(),
                    credentials,
                }),
                (Some(_), None) => {
                    return Err(SuiteError::Config {
                        var: "LOADTEST_COORD_REMOTE_WRITE_SIGV4_REGION".into(),
                        problem: "SigV4 signing asked for, and the SDK found no AWS credentials"
                            .into(),
                    })
                }
                (None, _) => None,
            },
            common,
            settings,
        })
    }
}

pub fn http_client() -> Result<reqwest::Client, SuiteError> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| SuiteError::Internal(format!("HTTP client: {e}")))
}

/// The payloads the function accepts.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// A scenario name (file `<name>.json` in the scenario folder) or an inline scenario.
    pub scenario: Option<Value>,
    /// The scheduler's execution id (`<aws.scheduler.execution-id>`): a repeated delivery of
    /// the same execution is the same run.
    pub run_id: Option<String>,
    /// Informational (`<aws.scheduler.scheduled-time>`).
    pub scheduled_time: Option<String>,
    /// Replaces the scenario's target.base_url.
    pub base_url: Option<String>,
    /// Sent by the coordinator to itself: run slice `slice` of run `run_id`.
    pub continuation: Option<Continuation>,
    /// An A/B comparison of two deployments (ab.rs; docs/loadtest-coordinator.md).
    pub ab: Option<Value>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Continuation {
    pub run_id: String,
    pub slice: u32,
}

#[derive(Debug, PartialEq)]
pub enum Job {
    Start(StartRequest),
    StartAb(StartRequest, Box<crate::ab::AbSpec>),
    Continue { run_id: String, slice: u32 },
}

const FIX: &str = "send {\"scenario\": \"quote-generation\"} or {\"scenario\": {...inline scenario...}, \"base_url\": \"http://...\"}";

pub fn parse_event(event: &Value) -> Result<Job, SuiteError> {
    // An EventBridge rule delivers its input inside `detail`; Scheduler delivers it as is.
    let body = match (event.get("detail-type"), event.get("detail")) {
        (Some(_), Some(d)) => d,
        _ => event,
    };
    // serde_path_to_error: a wrong type deep in the payload is named by its path.
    let p: Payload = serde_path_to_error::deserialize(body.clone()).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "payload".to_string()
        } else {
            path
        };
        SuiteError::invalid(field, e.inner().to_string(), FIX)
    })?;
    if let Some(c) = p.continuation {
        if p.scenario.is_some() || p.ab.is_some() {
            return Err(SuiteError::invalid(
                "continuation",
                "comes without a scenario or ab",
                FIX,
            ));
        }
        return Ok(Job::Continue {
            run_id: c.run_id,
            slice: c.slice,
        });
    }
    let scenario = match p.scenario {
        Some(Value::String(name)) => ScenarioRef::Named(name),
        Some(v @ Value::Object(_)) => ScenarioRef::Inline(v),
        Some(_) => {
            return Err(SuiteError::invalid(
                "scenario",
                "must be a scenario name or an object",
                FIX,
            ))
        }
        None => {
            return Err(SuiteError::invalid(
                "scenario",
                "is missing (the payload has neither `scenario` nor `continuation`)",
                FIX,
            ))
        }
    };
    let req = StartRequest {
        scenario,
        run_id: p.run_id,
        base_url: p.base_url,
    };
    match p.ab {
        Some(ab) => Ok(Job::StartAb(req, Box::new(crate::ab::parse_spec(&ab)?))),
        None => Ok(Job::Start(req)),
    }
}

pub async fn handle<S: Store, I: Invoker, N: Notifier>(
    deps: &Deps<S, I, N>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    shared::lambda::invoke(&deps.common, event, |event| handle_inner(deps, event)).await
}

async fn handle_inner<S: Store, I: Invoker, N: Notifier>(
    deps: &Deps<S, I, N>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    let (payload, ctx) = event.into_parts();
    let left = shared::telemetry::time_left(ctx.deadline, chrono::Utc::now().timestamp_millis());
    if left < deps.settings.worst_invocation() {
        // The plan's budget assumes the configured timeout; say so when it is shorter.
        tracing::warn!(time_left_s = left.as_secs(), needed_s = deps.settings.worst_invocation().as_secs(),
            "less time left than a slice needs: raise the function timeout or shorten LOADTEST_COORD_SLICE_SECONDS");
    }
    let engine = Engine {
        store: &deps.store,
        invoker: &deps.invoker,
        notifier: &deps.notifier,
        settings: &deps.settings,
        common: &deps.common,
        http: &deps.http,
        sigv4: deps.sigv4.as_ref(),
    };
    match parse_event(&payload)? {
        Job::Start(req) => engine.start(req).await,
        Job::StartAb(req, spec) => engine.start_ab(req, *spec).await,
        Job::Continue { run_id, slice } => engine.continue_run(&run_id, slice).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads() {
        assert_eq!(
            parse_event(&json!({"scenario": "quote-generation", "run_id": "abc", "scheduled_time": "2026-01-01T02:00:00Z"})).unwrap(),
            Job::Start(StartRequest {
                scenario: ScenarioRef::Named("quote-generation".into()),
                run_id: Some("abc".into()),
                base_url: None
            })
        );
        assert!(matches!(
            parse_event(&json!({"scenario": {"name": "x"}, "base_url": "http://127.0.0.1:1"}))
                .unwrap(),
            Job::Start(StartRequest {
                scenario: ScenarioRef::Inline(_),
                base_url: Some(_),
                ..
            })
        ));
        assert_eq!(
            parse_event(&json!({"continuation": {"run_id": "r", "slice": 2}})).unwrap(),
            Job::Continue {
                run_id: "r".into(),
                slice: 2
            }
        );
        assert!(matches!(
            parse_event(
                &json!({"detail-type": "Scheduled Event", "detail": {"scenario": "bulk-import"}})
            )
            .unwrap(),
            Job::Start(_)
        ));
        for (bad, field) in [
            (json!({}), "scenario"),
            (json!({"scenario": 3}), "scenario"),
            (json!({"scenarios": "x"}), "scenarios"),
            (json!({"continuation": {"run_id": "r"}}), "slice"),
            (
                json!({"scenario": "x", "ab": {"current": {"name": "a", "base_url": "http://a", "instance_type": "m6i.large"}}}),
                "ab",
            ),
            (
                json!({"scenario": "x", "ab": {"current": {"name": "a", "base_url": "http://a", "instance_type": "m6i.large", "cores": 2}, "candidate": {"name": "b", "base_url": "http://b", "instance_type": "m6g.large"}}}),
                "ab.current.cores",
            ),
            (
                json!({"continuation": {"run_id": "r", "slice": 1}, "ab": {}}),
                "continuation",
            ),
        ] {
            let e = parse_event(&bad).unwrap_err().to_string();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }

    /// Every sample in events/loadtest-coordinator/ parses into the job it stands for.
    #[test]
    fn samples_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events/loadtest-coordinator");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("events dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let v: Value =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
            let job = parse_event(&v).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            match job {
                Job::Continue { .. } => assert!(name.contains("continuation"), "{name}"),
                Job::Start(StartRequest {
                    scenario: ScenarioRef::Inline(s),
                    ..
                }) => {
                    loadtest_core::parse_scenario(s.to_string().as_bytes())
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                }
                Job::Start(StartRequest {
                    scenario: ScenarioRef::Named(s),
                    ..
                }) => {
                    assert!(crate::run::valid_name(&s), "{name}")
                }
                Job::StartAb(_, spec) => {
                    assert!(name.starts_with("ab-"), "{name}");
                    crate::ab::resolve(&spec).unwrap_or_else(|e| panic!("{name}: {e}"));
                }
            }
            n += 1;
        }
        assert!(n >= 3, "expected the sample events, found {n}");
    }
}
