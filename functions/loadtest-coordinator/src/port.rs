//! The narrow ports the run is written against (exactly the calls it makes) and their AWS
//! adapters: S3 (one bucket), Lambda Invoke (shards synchronously, the next slice's
//! coordinator asynchronously), SNS (incidents).

use std::future::Future;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_s3::error::SdkError;
use aws_smithy_types::Blob;
use bytes::Bytes;
use loadtest_core::{ShardRequest, ShardResult};
use shared::error::aws_error;
use shared::notifications::{PlaybookAlert, PRODUCER_ATTRIBUTE};
use shared::sns::{publish_alert, Publication, Publisher, SnsPublisher};
use shared::store::{ConditionalStore, ObjectStore, Tagged};
use shared::{SuiteError, SuiteResult};

pub trait Store: Send + Sync {
    /// `Ok(None)` when the key does not exist.
    fn get(&self, key: &str) -> impl Future<Output = SuiteResult<Option<Bytes>>> + Send;
    fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> impl Future<Output = SuiteResult<()>> + Send;
    /// Creates the object only if no object has the key (S3 conditional write,
    /// `If-None-Match: *`); `Ok(false)` when another writer's object is there. `Ok(true)`
    /// also when the object already holds exactly `body`: that is this writer's own earlier
    /// attempt, whose answer was lost after S3 acted (the SDK's retry then meets the
    /// precondition). So callers make each writer's body unique (a nonce).
    fn create(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> impl Future<Output = SuiteResult<bool>> + Send;
    /// Keys under `prefix` (all pages).
    fn list(&self, prefix: &str) -> impl Future<Output = SuiteResult<Vec<String>>> + Send;
    /// The object and the ETag it was read at; `Ok(None)` when the key does not exist.
    fn get_tagged(&self, key: &str) -> impl Future<Output = SuiteResult<Option<Tagged>>> + Send;
    /// Replaces the object only if it is still at `etag` (`If-Match`); `Ok(false)` when
    /// another writer changed or deleted it first. As with `create`, a refused write that
    /// finds exactly `body` is this writer's own (its answer lost): callers make bodies unique.
    fn replace(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        etag: &str,
    ) -> impl Future<Output = SuiteResult<bool>> + Send;
}

/// Why a shard produced no usable result.
#[derive(Debug, Clone, PartialEq)]
pub enum ShardFailure {
    /// The invocation outlived its window plus the grace period.
    Timeout,
    /// The function failed (X-Amz-Function-Error, or HTTP 500 from the local emulator), or
    /// the Invoke call itself failed.
    Failed(String),
}

pub trait Invoker: Send + Sync {
    /// Invokes one shard synchronously (RequestResponse); `timeout` bounds the whole call.
    fn invoke_shard(
        &self,
        req: &ShardRequest,
        timeout: Duration,
    ) -> impl Future<Output = Result<ShardResult, ShardFailure>> + Send;
    /// Invokes the coordinator itself asynchronously (InvocationType Event) with `payload`.
    fn continue_async(
        &self,
        payload: &serde_json::Value,
    ) -> impl Future<Output = SuiteResult<()>> + Send;
}

pub trait Notifier: Send + Sync {
    /// Publishes to the incident topic; `Ok(None)` when no topic is configured.
    fn publish(
        &self,
        subject: &str,
        message: &str,
    ) -> impl Future<Output = SuiteResult<Option<String>>> + Send;

    /// Tells the scenario's owners (the notice topic, `LOADTEST_COORD_NOTICE_TOPIC_ARN`);
    /// `Ok(None)` when no topic is configured.
    fn notice(
        &self,
        alert: &PlaybookAlert,
    ) -> impl Future<Output = SuiteResult<Option<String>>> + Send;
}

// ---- S3 ---------------------------------------------------------------------------------

/// One bucket of the shared S3 port (`shared::store`), whose conditional create reads the
/// object back when it is refused.
#[derive(Clone, Debug)]
pub struct S3Store {
    objects: shared::store::S3Store,
    bucket: String,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client, bucket: &str) -> Self {
        S3Store {
            objects: shared::store::S3Store::new(client).with_bucket_hint(
                "set LOADTEST_COORD_BUCKET or REPORT_BUCKET to an existing bucket",
            ),
            bucket: bucket.to_string(),
        }
    }
}

impl Store for S3Store {
    async fn get(&self, key: &str) -> SuiteResult<Option<Bytes>> {
        self.objects.get_bytes(&self.bucket, key).await
    }

    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> SuiteResult<()> {
        self.objects
            .put_bytes(&self.bucket, key, body, content_type)
            .await
    }

    async fn create(&self, key: &str, body: Bytes, content_type: &str) -> SuiteResult<bool> {
        Ok(self
            .objects
            .create_if_absent(&self.bucket, key, body, content_type)
            .await?
            .is_ok())
    }

    async fn list(&self, prefix: &str) -> SuiteResult<Vec<String>> {
        self.objects.list_keys(&self.bucket, prefix).await
    }

    async fn get_tagged(&self, key: &str) -> SuiteResult<Option<Tagged>> {
        self.objects.get_with_etag(&self.bucket, key).await
    }

    async fn replace(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        etag: &str,
    ) -> SuiteResult<bool> {
        Ok(self
            .objects
            .replace_if_match(&self.bucket, key, body, content_type, etag)
            .await?
            .is_ok())
    }
}

// ---- Lambda -----------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct LambdaInvoker {
    client: aws_sdk_lambda::Client,
    shard_function: String,
    self_function: String,
}

impl LambdaInvoker {
    pub fn new(client: aws_sdk_lambda::Client, shard_function: &str, self_function: &str) -> Self {
        LambdaInvoker {
            client,
            shard_function: shard_function.to_string(),
            self_function: self_function.to_string(),
        }
    }
}

/// The function's own error document (`{"errorType": ..., "errorMessage": ...}`), short.
fn error_text(payload: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap_or(serde_json::Value::Null);
    match (v.get("errorType"), v.get("errorMessage")) {
        (Some(t), Some(m)) => format!(
            "{}: {}",
            t.as_str().unwrap_or("?"),
            m.as_str().unwrap_or("?")
        ),
        _ => String::from_utf8_lossy(&payload[..payload.len().min(300)]).to_string(),
    }
}

impl Invoker for LambdaInvoker {
    async fn invoke_shard(
        &self,
        req: &ShardRequest,
        timeout: Duration,
    ) -> Result<ShardResult, ShardFailure> {
        let body = serde_json::to_vec(req).map_err(|e| ShardFailure::Failed(e.to_string()))?;
        // One attempt: a retried shard would run its window late. The read timeout covers
        // the whole window (the shared client's 30 s attempt timeout would cut it short).
        let call = self
            .client
            .invoke()
            .function_name(&self.shard_function)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(body))
            .customize()
            .config_override(
                aws_sdk_lambda::config::Builder::default()
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(
                        TimeoutConfig::builder()
                            .read_timeout(timeout)
                            .operation_attempt_timeout(timeout)
                            .operation_timeout(timeout)
                            .build(),
                    ),
            )
            .send();
        let out = match tokio::time::timeout(timeout + Duration::from_secs(1), call).await {
            Err(_) => return Err(ShardFailure::Timeout),
            Ok(Err(SdkError::TimeoutError(_))) => return Err(ShardFailure::Timeout),
            Ok(Err(SdkError::ServiceError(s))) => {
                let raw = s.raw();
                return Err(ShardFailure::Failed(format!(
                    "HTTP {}: {}",
                    raw.status().as_u16(),
                    raw.body().bytes().map(error_text).unwrap_or_default()
                )));
            }
            Ok(Err(e)) => {
                return Err(ShardFailure::Failed(
                    aws_error("lambda", "Invoke", e).to_string(),
                ))
            }
            Ok(Ok(o)) => o,
        };
        let payload = out
            .payload()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        if let Some(fe) = out.function_error() {
            return Err(ShardFailure::Failed(format!(
                "{fe}: {}",
                error_text(&payload)
            )));
        }
        serde_json::from_slice::<ShardResult>(&payload).map_err(|e| {
            ShardFailure::Failed(format!(
                "response is not a ShardResult ({e}): {}",
                error_text(&payload)
            ))
        })
    }

    async fn continue_async(&self, payload: &serde_json::Value) -> SuiteResult<()> {
        let body = serde_json::to_vec(payload).map_err(|e| SuiteError::Internal(e.to_string()))?;
        self.client
            .invoke()
            .function_name(&self.self_function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(body))
            .send()
            .await
            .map_err(|e| aws_error("lambda", "Invoke", e))?;
        Ok(())
    }
}

// ---- SNS --------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct SnsNotifier {
    publisher: SnsPublisher,
    topic_arn: Option<String>,
    notice_topic_arn: Option<String>,
}

impl SnsNotifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: Option<String>) -> Self {
        SnsNotifier {
            publisher: SnsPublisher::new(client),
            topic_arn,
            notice_topic_arn: None,
        }
    }

    /// Where notices go (see [`Notifier::notice`]).
    pub fn with_notice_topic(mut self, topic_arn: Option<String>) -> Self {
        self.notice_topic_arn = topic_arn;
        self
    }
}

impl Notifier for SnsNotifier {
    async fn publish(&self, subject: &str, message: &str) -> SuiteResult<Option<String>> {
        let Some(topic) = &self.topic_arn else {
            return Ok(None);
        };
        let id = self
            .publisher
            .publish(Publication {
                topic_arn: topic,
                subject,
                message,
                attributes: &[(PRODUCER_ATTRIBUTE, "loadtest-coordinator")],
            })
            .await?;
        Ok(Some(id))
    }

    async fn notice(&self, alert: &PlaybookAlert) -> SuiteResult<Option<String>> {
        let Some(topic) = &self.notice_topic_arn else {
            return Ok(None);
        };
        publish_alert(&self.publisher, topic, "loadtest-coordinator", alert)
            .await
            .map(Some)
    }
}
