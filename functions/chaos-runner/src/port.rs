//! The narrow port the engine is written against (exactly the FIS, CloudWatch and HTTP calls
//! it makes) and its AWS adapter. S3 goes through `shared::store::ObjectStore`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use aws_sdk_fis::error::ProvideErrorMetadata;
use aws_sdk_fis::types::{ActionsMode, StartExperimentExperimentOptionsInput};
use chrono::{DateTime, Utc};
use shared::error::aws_error;
use shared::SuiteResult;

use crate::journal::HttpSample;
use crate::registry::{HttpCheck, MetricQuery, TemplateRef};

/// What the runner checks in a FIS experiment template before starting it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TemplateInfo {
    pub id: String,
    pub description: String,
    /// (source, value): `aws:cloudwatch:alarm` + alarm ARN, or `none`.
    pub stop_conditions: Vec<(String, Option<String>)>,
    /// target name → selection mode (`COUNT(1)`, `PERCENT(25)`, `ALL`).
    pub selection_modes: BTreeMap<String, String>,
}

/// An experiment's state as FIS reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExperimentInfo {
    pub id: String,
    pub status: String,
    pub reason: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub actions_mode: Option<String>,
}

pub trait ChaosPort: Send + Sync {
    /// `Ok(None)` when no template has this id / Name tag.
    fn template(
        &self,
        r: &TemplateRef,
    ) -> impl Future<Output = SuiteResult<Option<TemplateInfo>>> + Send;

    /// StartExperiment with `client_token` (idempotent: the same token returns the same
    /// experiment), `skip-all` when `dry_run`.
    fn start_experiment(
        &self,
        template_id: &str,
        client_token: &str,
        dry_run: bool,
        tags: &[(String, String)],
    ) -> impl Future<Output = SuiteResult<ExperimentInfo>> + Send;

    fn experiment(&self, id: &str) -> impl Future<Output = SuiteResult<ExperimentInfo>> + Send;

    fn stop_experiment(&self, id: &str)
        -> impl Future<Output = SuiteResult<ExperimentInfo>> + Send;

    /// Alarm name → state (`OK`, `ALARM`, `INSUFFICIENT_DATA`); absent names do not exist.
    fn alarm_states(
        &self,
        names: &[String],
    ) -> impl Future<Output = SuiteResult<BTreeMap<String, String>>> + Send;

    /// The latest datapoint's statistic in the lookback window, `None` without data.
    fn metric(
        &self,
        q: &MetricQuery,
        now: DateTime<Utc>,
    ) -> impl Future<Output = SuiteResult<Option<f64>>> + Send;

    /// One HTTP GET; transport errors are samples, not errors.
    fn http(&self, check: &HttpCheck) -> impl Future<Output = HttpSample> + Send;
}

pub struct AwsChaos {
    pub fis: aws_sdk_fis::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub http: reqwest::Client,
}

impl AwsChaos {
    pub fn new(sdk: &aws_config::SdkConfig) -> SuiteResult<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("chaos-runner/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| shared::SuiteError::Internal(format!("HTTP client: {e}")))?;
        Ok(AwsChaos {
            fis: aws_sdk_fis::Client::new(sdk),
            cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
            http,
        })
    }
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn experiment_info(e: &aws_sdk_fis::types::Experiment) -> ExperimentInfo {
    ExperimentInfo {
        id: e.id().unwrap_or_default().to_string(),
        status: e
            .state()
            .and_then(|s| s.status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "unknown".into()),
        reason: e.state().and_then(|s| s.reason()).map(str::to_string),
        start_time: e.start_time().and_then(to_chrono),
        end_time: e.end_time().and_then(to_chrono),
        actions_mode: e
            .experiment_options()
            .and_then(|o| o.actions_mode())
            .map(|m| m.as_str().to_string()),
    }
}

impl ChaosPort for AwsChaos {
    async fn template(&self, r: &TemplateRef) -> SuiteResult<Option<TemplateInfo>> {
        let id = match r {
            TemplateRef::Id(id) => id.clone(),
            TemplateRef::Name(name) => {
                let mut token: Option<String> = None;
                let found = loop {
                    let out = self
                        .fis
                        .list_experiment_templates()
                        .set_next_token(token.clone())
                        .send()
                        .await
                        .map_err(|e| aws_error("fis", "ListExperimentTemplates", e))?;
                    let found = out
                        .experiment_templates()
                        .iter()
                        .find(|t| t.tags().and_then(|m| m.get("Name")) == Some(name))
                        .and_then(|t| t.id().map(str::to_string));
                    token = out.next_token().map(str::to_string);
                    if found.is_some() || token.is_none() {
                        break found;
                    }
                };
                match found {
                    Some(id) => id,
                    None => return Ok(None),
                }
            }
        };
        let out = match self.fis.get_experiment_template().id(&id).send().await {
            Ok(o) => o,
            Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(None),
            Err(e) => return Err(aws_error("fis", "GetExperimentTemplate", e)),
        };
        let Some(t) = out.experiment_template() else {
            return Ok(None);
        };
        Ok(Some(TemplateInfo {
            id: t.id().unwrap_or(&id).to_string(),
            description: t.description().unwrap_or_default().to_string(),
            stop_conditions: t
                .stop_conditions()
                .iter()
                .map(|s| {
                    (
                        s.source().unwrap_or_default().to_string(),
                        s.value().map(str::to_string),
                    )
                })
                .collect(),
            selection_modes: t
                .targets()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.selection_mode().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        }))
    }

    async fn start_experiment(
        &self,
        template_id: &str,
        client_token: &str,
        dry_run: bool,
        tags: &[(String, String)],
    ) -> SuiteResult<ExperimentInfo> {
        let mode = if dry_run {
            ActionsMode::SkipAll
        } else {
            ActionsMode::RunAll
        };
        let tags: HashMap<String, String> = tags.iter().cloned().collect();
        let out = self
            .fis
            .start_experiment()
            .experiment_template_id(template_id)
            .client_token(client_token)
            .experiment_options(
                StartExperimentExperimentOptionsInput::builder()
                    .actions_mode(mode)
                    .build(),
            )
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| aws_error("fis", "StartExperiment", e))?;
        out.experiment().map(experiment_info).ok_or_else(|| {
            shared::SuiteError::Internal("StartExperiment returned no experiment".into())
        })
    }

    async fn experiment(&self, id: &str) -> SuiteResult<ExperimentInfo> {
        let out = self
            .fis
            .get_experiment()
            .id(id)
            .send()
            .await
            .map_err(|e| aws_error("fis", "GetExperiment", e))?;
        out.experiment().map(experiment_info).ok_or_else(|| {
            shared::SuiteError::Internal("GetExperiment returned no experiment".into())
        })
    }

    async fn stop_experiment(&self, id: &str) -> SuiteResult<ExperimentInfo> {
        let out = self
            .fis
            .stop_experiment()
            .id(id)
            .send()
            .await
            .map_err(|e| aws_error("fis", "StopExperiment", e))?;
        out.experiment().map(experiment_info).ok_or_else(|| {
            shared::SuiteError::Internal("StopExperiment returned no experiment".into())
        })
    }

    async fn alarm_states(&self, names: &[String]) -> SuiteResult<BTreeMap<String, String>> {
        let mut states = BTreeMap::new();
        // DescribeAlarms takes at most 100 names per call.
        for chunk in names.chunks(100) {
            let out = self
                .cloudwatch
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws_error("cloudwatch", "DescribeAlarms", e))?;
            for a in out.metric_alarms() {
                if let (Some(n), Some(s)) = (a.alarm_name(), a.state_value()) {
                    states.insert(n.to_string(), s.as_str().to_string());
                }
            }
            for a in out.composite_alarms() {
                if let (Some(n), Some(s)) = (a.alarm_name(), a.state_value()) {
                    states.insert(n.to_string(), s.as_str().to_string());
                }
            }
        }
        Ok(states)
    }

    async fn metric(&self, q: &MetricQuery, now: DateTime<Utc>) -> SuiteResult<Option<f64>> {
        let start = now - chrono::Duration::minutes(q.lookback_minutes as i64);
        let dims: Vec<Dimension> = q
            .dimensions
            .iter()
            .map(|(k, v)| Dimension::builder().name(k).value(v).build())
            .collect();
        let out = self
            .cloudwatch
            .get_metric_statistics()
            .namespace(&q.namespace)
            .metric_name(&q.name)
            .set_dimensions(Some(dims))
            .start_time(aws_smithy_types::DateTime::from_secs(start.timestamp()))
            .end_time(aws_smithy_types::DateTime::from_secs(now.timestamp() + 1))
            .period(q.period_seconds as i32)
            .statistics(Statistic::from(q.stat.as_str()))
            .send()
            .await
            .map_err(|e| aws_error("cloudwatch", "GetMetricStatistics", e))?;
        let latest = out
            .datapoints()
            .iter()
            .filter(|d| d.timestamp().is_some())
            .max_by_key(|d| d.timestamp().map(|t| t.secs()).unwrap_or(0));
        Ok(latest.and_then(|d| match q.stat.as_str() {
            "Sum" => d.sum(),
            "Minimum" => d.minimum(),
            "Maximum" => d.maximum(),
            "SampleCount" => d.sample_count(),
            _ => d.average(),
        }))
    }

    async fn http(&self, check: &HttpCheck) -> HttpSample {
        let started = Instant::now();
        let res = self
            .http
            .get(&check.url)
            .timeout(Duration::from_millis(check.timeout_ms))
            .send()
            .await;
        let latency_ms = started.elapsed().as_millis() as u64;
        match res {
            Ok(r) => HttpSample {
                status: Some(r.status().as_u16()),
                latency_ms: Some(latency_ms),
                error: None,
            },
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "request"
                };
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(&format!(": {s}"));
                    src = s.source();
                }
                HttpSample {
                    status: None,
                    latency_ms: Some(latency_ms),
                    error: Some(format!("{kind} error: {msg}")),
                }
            }
        }
    }
}
