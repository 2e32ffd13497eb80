//! The one SNS publisher: the digest (alert-router), the release incident
//! (loadtest-coordinator) and FinOps anomalies (cost-anomaly) all publish through it, so the
//! subject rules and the error classification live once.

use std::future::Future;

use aws_sdk_sns::types::MessageAttributeValue;

use crate::error::aws_error;
use crate::notifications::{PlaybookAlert, PRODUCER_ATTRIBUTE};
use crate::{SuiteError, SuiteResult};

/// One message to one topic.
#[derive(Debug, Clone, Copy)]
pub struct Publication<'a> {
    pub topic_arn: &'a str,
    pub subject: &'a str,
    pub message: &'a str,
    /// String message attributes: what subscription filter policies match on.
    pub attributes: &'a [(&'a str, &'a str)],
}

pub trait Publisher: Send + Sync {
    /// Publishes; answers SNS's message id.
    fn publish(&self, p: Publication<'_>) -> impl Future<Output = SuiteResult<String>> + Send;
}

/// SNS subjects: at most 100 printable ASCII characters, no line breaks (SNS refuses others
/// with InvalidParameter, losing the message).
pub fn subject(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect()
}

/// Publishes the suite's own alert as JSON, subject its title, with the `producer` attribute
/// naming the function (what subscription filters match on).
pub async fn publish_alert<P: Publisher>(
    publisher: &P,
    topic_arn: &str,
    producer: &str,
    alert: &PlaybookAlert,
) -> SuiteResult<String> {
    let message = serde_json::to_string(alert).map_err(|e| SuiteError::Internal(e.to_string()))?;
    publisher
        .publish(Publication {
            topic_arn,
            subject: &alert.title,
            message: &message,
            attributes: &[(PRODUCER_ATTRIBUTE, producer)],
        })
        .await
}

#[derive(Clone, Debug)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
}

impl SnsPublisher {
    pub fn new(client: aws_sdk_sns::Client) -> Self {
        SnsPublisher { client }
    }
}

impl Publisher for SnsPublisher {
    async fn publish(&self, p: Publication<'_>) -> SuiteResult<String> {
        let mut req = self
            .client
            .publish()
            .topic_arn(p.topic_arn)
            .subject(subject(p.subject))
            .message(p.message);
        for (name, value) in p.attributes {
            let v = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(*value)
                .build()
                .map_err(|e| SuiteError::Internal(format!("SNS attribute {name}: {e}")))?;
            req = req.message_attributes(*name, v);
        }
        let out = req
            .send()
            .await
            .map_err(|e| aws_error("sns", "Publish", e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_what_sns_accepts() {
        assert_eq!(
            subject("REL-0001: p95\n1200 ms — blocked"),
            "REL-0001: p95-1200 ms - blocked"
        );
        assert_eq!(subject(&"x".repeat(300)).len(), 100);
    }
}
