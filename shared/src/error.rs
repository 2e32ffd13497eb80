//! The classified error every function returns. The class becomes the Lambda error type
//! (`errorType`), so CloudWatch, the on-failure destination and the caller of
//! `aws lambda invoke` see what went wrong without reading the logs.

use lambda_runtime::Diagnostic;

pub type SuiteResult<T> = Result<T, SuiteError>;

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// A configuration variable is missing or malformed (raised at cold start).
    #[error("configuration: {var}: {problem}")]
    Config { var: String, problem: String },

    /// The event or a field inside it is wrong. `fix` tells the caller what to send instead.
    #[error("invalid input: field `{field}`: {problem} (fix: {fix})")]
    InvalidInput {
        field: String,
        problem: String,
        fix: String,
    },

    /// An object the run depends on is missing, unreadable or malformed.
    #[error("bad object s3://{bucket}/{key}: {problem}")]
    BadObject {
        bucket: String,
        key: String,
        problem: String,
    },

    /// A bucket does not exist or cannot be reached with these credentials.
    #[error("bucket `{bucket}`: {problem}")]
    Bucket { bucket: String, problem: String },

    /// An AWS call failed after the SDK's retries.
    #[error("AWS {service}.{operation} failed: {message}")]
    Aws {
        service: &'static str,
        operation: &'static str,
        message: String,
    },

    /// Local I/O (temporary files under /tmp).
    /// A service outside AWS (PagerDuty, OpsGenie, Slack, Jira) refused or failed a request.
    #[error("{service} failed: {message}")]
    Upstream {
        service: &'static str,
        message: String,
        /// Whether asking again can help (5xx, 429, transport); a 4xx other than 429 cannot.
        retryable: bool,
    },

    #[error("local I/O: {0}")]
    Io(#[from] std::io::Error),

    /// Anything that should not happen; kept distinct so alarms can tell bugs from bad input.
    #[error("internal: {0}")]
    Internal(String),
}

impl SuiteError {
    pub fn invalid(
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        SuiteError::InvalidInput {
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    pub fn bad_object(bucket: &str, key: &str, problem: impl Into<String>) -> Self {
        SuiteError::BadObject {
            bucket: bucket.to_string(),
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    /// A stable class name, used as the Lambda `errorType` and as the `error_class` log field
    /// and EMF dimension.
    pub fn class(&self) -> &'static str {
        match self {
            SuiteError::Config { .. } => "ConfigError",
            SuiteError::InvalidInput { .. } => "InvalidInput",
            SuiteError::BadObject { .. } => "BadObject",
            SuiteError::Bucket { .. } => "BucketError",
            SuiteError::Aws { .. } => "AwsError",
            SuiteError::Upstream { .. } => "UpstreamError",
            SuiteError::Io(_) => "IoError",
            SuiteError::Internal(_) => "InternalError",
        }
    }

    /// Whether a retry of the same event could succeed (throttling, I/O); bad input never does.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            SuiteError::Aws { .. }
                | SuiteError::Io(_)
                | SuiteError::Upstream {
                    retryable: true,
                    ..
                }
        )
    }
}

impl From<SuiteError> for Diagnostic {
    fn from(e: SuiteError) -> Self {
        Diagnostic {
            error_type: e.class().to_string(),
            error_message: e.to_string(),
        }
    }
}

/// Turns any AWS SDK error into a classified [`SuiteError`], keeping the service's own code and
/// message (the SDK's `Display` alone says only "service error").
pub fn aws_error<E>(service: &'static str, operation: &'static str, err: E) -> SuiteError
where
    E: std::error::Error + 'static,
{
    use std::fmt::Write;
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let _ = write!(message, ": {s}");
        source = s.source();
    }
    SuiteError::Aws {
        service,
        operation,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_names_field_and_fix() {
        let e = SuiteError::invalid(
            "drift_threshold_percent",
            "must be between 0 and 100, got -1",
            "send a value such as 0.1",
        );
        let d: Diagnostic = e.into();
        assert_eq!(d.error_type, "InvalidInput");
        assert!(d.error_message.contains("drift_threshold_percent"));
        assert!(d.error_message.contains("fix: send a value such as 0.1"));
    }

    #[test]
    fn classes_are_stable() {
        assert_eq!(SuiteError::Internal("x".into()).class(), "InternalError");
        assert!(!SuiteError::invalid("a", "b", "c").retryable());
        assert!(SuiteError::Io(std::io::Error::other("x")).retryable());
    }
}
