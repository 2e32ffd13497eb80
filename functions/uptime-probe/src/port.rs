//! The narrow port the error-budget use case needs (sums of CloudWatch metrics over a window)
//! and its CloudWatch adapter (GetMetricData). The probes themselves call no AWS API.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, StatusCode};
use chrono::{DateTime, Utc};
use shared::error::aws_error;
use shared::{SuiteError, SuiteResult};

use crate::budget::MetricSpec;

/// The period of each datapoint asked for; the datapoints are summed, so it only sets how
/// many come back (one per day of the window).
pub const PERIOD_SECONDS: i32 = 86_400;

/// GetMetricData takes at most 500 queries per request.
const MAX_QUERIES: usize = 500;

pub trait MetricReader: Send + Sync {
    /// The Sum of each metric (exact dimension set) over `[start, end)`, in the order given;
    /// `None` for a metric with no datapoint in the window.
    fn sums(
        &self,
        namespace: &str,
        metrics: &[MetricSpec],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> impl Future<Output = SuiteResult<Vec<Option<f64>>>> + Send;
}

/// [`MetricReader`] over CloudWatch GetMetricData (aws-sdk-cloudwatch 1.99, the Query
/// protocol that moto speaks too).
#[derive(Debug, Clone)]
pub struct CloudWatchReader {
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl CloudWatchReader {
    /// The client from the shared SDK configuration (`shared::aws::AwsClients`).
    pub fn new(clients: &shared::aws::AwsClients) -> Self {
        CloudWatchReader {
            cloudwatch: aws_sdk_cloudwatch::Client::new(&clients.sdk),
        }
    }
}

fn query(id: String, namespace: &str, m: &MetricSpec) -> MetricDataQuery {
    let metric = Metric::builder()
        .namespace(namespace)
        .metric_name(&m.name)
        .set_dimensions(Some(
            m.dimensions
                .iter()
                .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                .collect(),
        ))
        .build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(PERIOD_SECONDS)
                .stat("Sum")
                .build(),
        )
        .return_data(true)
        .build()
}

impl MetricReader for CloudWatchReader {
    async fn sums(
        &self,
        namespace: &str,
        metrics: &[MetricSpec],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> SuiteResult<Vec<Option<f64>>> {
        let mut out: Vec<Option<f64>> = vec![None; metrics.len()];
        for (chunk_no, chunk) in metrics.chunks(MAX_QUERIES).enumerate() {
            let base = chunk_no * MAX_QUERIES;
            // Ids must start with a lower-case letter: m<index>.
            let queries: Vec<MetricDataQuery> = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| query(format!("m{}", base + i), namespace, m))
                .collect();
            let index: HashMap<String, usize> = (0..chunk.len())
                .map(|i| (format!("m{}", base + i), base + i))
                .collect();
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .cloudwatch
                    .get_metric_data()
                    .set_metric_data_queries(Some(queries.clone()))
                    .start_time(AwsDateTime::from_secs(start.timestamp()))
                    .end_time(AwsDateTime::from_secs(end.timestamp()))
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| aws_error("cloudwatch", "GetMetricData", e))?;
                for r in page.metric_data_results() {
                    if matches!(
                        r.status_code(),
                        Some(StatusCode::InternalError) | Some(StatusCode::Forbidden)
                    ) {
                        return Err(SuiteError::Aws {
                            service: "cloudwatch",
                            operation: "GetMetricData",
                            message: format!(
                                "query {} answered {:?}: {:?}",
                                r.id().unwrap_or("?"),
                                r.status_code(),
                                r.messages()
                            ),
                        });
                    }
                    let Some(&i) = r.id().and_then(|id| index.get(id)) else {
                        continue;
                    };
                    for v in r.values().iter().filter(|v| v.is_finite()) {
                        *out[i].get_or_insert(0.0) += v;
                    }
                }
                token = page.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(out)
    }
}
