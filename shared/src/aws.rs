//! The ONE place that builds AWS clients. Everything that differs between AWS and the local
//! stand-ins (moto) is decided here: region, endpoint override, path-style addressing when an
//! endpoint is set, retry with exponential backoff, timeouts, and the checksum policy. Clients
//! are built once per cold start and shared by reference with every invocation.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::config::Vars;
use crate::error::SuiteError;

/// The knobs, read from the environment (`AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_MAX_ATTEMPTS`,
/// `AWS_CONNECT_TIMEOUT_MS`, `AWS_ATTEMPT_TIMEOUT_MS`, `AWS_OPERATION_TIMEOUT_MS`).
#[derive(Debug, Clone, PartialEq)]
pub struct AwsSettings {
    pub region: String,
    pub endpoint_url: Option<String>,
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
}

impl AwsSettings {
    pub fn from_vars(vars: &Vars) -> Result<Self, SuiteError> {
        let region = vars
            .get("AWS_REGION")
            .or_else(|| vars.get("AWS_DEFAULT_REGION"))
            .unwrap_or("us-east-1")
            .to_string();
        let endpoint_url = vars.get("AWS_ENDPOINT_URL").map(str::to_string);
        if let Some(url) = &endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(SuiteError::Config {
                    var: "AWS_ENDPOINT_URL".into(),
                    problem: format!("{url:?} is not an http(s) URL; unset it for AWS or set e.g. http://127.0.0.1:5000"),
                });
            }
        }
        let max_attempts = vars.parse_or(
            "AWS_MAX_ATTEMPTS",
            8u32,
            "a whole number of attempts, e.g. 8",
        )?;
        if max_attempts == 0 {
            return Err(SuiteError::Config {
                var: "AWS_MAX_ATTEMPTS".into(),
                problem: "must be at least 1".into(),
            });
        }
        let ms = |name: &str, default: u64| -> Result<Duration, SuiteError> {
            vars.parse_or(name, default, "milliseconds")
                .map(Duration::from_millis)
        };
        Ok(AwsSettings {
            region,
            endpoint_url,
            max_attempts,
            initial_backoff: ms("AWS_INITIAL_BACKOFF_MS", 200)?,
            connect_timeout: ms("AWS_CONNECT_TIMEOUT_MS", 3_000)?,
            attempt_timeout: ms("AWS_ATTEMPT_TIMEOUT_MS", 30_000)?,
            operation_timeout: ms("AWS_OPERATION_TIMEOUT_MS", 120_000)?,
        })
    }

    pub fn retry_config(&self) -> RetryConfig {
        // Standard mode: exponential backoff with jitter, retries throttling (503 SlowDown),
        // 500s and transient transport errors.
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(Duration::from_secs(20))
    }

    pub fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .build()
    }
}

/// The shared SDK configuration and the clients built from it.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub settings: AwsSettings,
    pub sdk: SdkConfig,
}

impl AwsClients {
    /// Loads credentials and region once (the default provider chain: Lambda's role locally
    /// replaced by `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`).
    pub async fn load(settings: AwsSettings) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .region(Region::new(settings.region.clone()))
            .retry_config(settings.retry_config())
            .timeout_config(settings.timeout_config());
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let sdk = loader.load().await;
        AwsClients { settings, sdk }
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(s3_config(&self.sdk, &self.settings))
    }

    /// The suite's one SNS publisher (`shared::sns`).
    pub fn sns_publisher(&self) -> crate::sns::SnsPublisher {
        crate::sns::SnsPublisher::new(aws_sdk_sns::Client::new(&self.sdk))
    }

    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::new(&self.sdk)
    }
}

/// The one HTTP client every AWS client (and the credential providers) uses: hyper 1 with
/// rustls on ring. The SDKs' default features are off (see the workspace Cargo.toml), so
/// without this the loader would have no HTTP client at all; a test below checks it is set.
pub fn https_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// S3 needs two things beyond the shared config: path-style addressing when an endpoint is
/// overridden (moto and other stand-ins do not serve virtual-hosted buckets), and checksums
/// only when the operation requires them (stand-ins reject the streaming trailers).
pub fn s3_config(sdk: &SdkConfig, settings: &AwsSettings) -> aws_sdk_s3::Config {
    use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
    aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(settings.endpoint_url.is_some())
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> AwsSettings {
        AwsSettings::from_vars(&Vars::from_pairs(pairs.iter().copied())).unwrap()
    }

    #[test]
    fn defaults() {
        let s = settings(&[]);
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.endpoint_url, None);
        assert_eq!(s.max_attempts, 8);
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        assert_eq!(s.attempt_timeout, Duration::from_secs(30));
    }

    #[test]
    fn bad_endpoint_and_attempts_are_named() {
        let e = AwsSettings::from_vars(&Vars::from_pairs([("AWS_ENDPOINT_URL", "localhost:5000")]))
            .unwrap_err();
        assert!(e.to_string().contains("AWS_ENDPOINT_URL"));
        let e = AwsSettings::from_vars(&Vars::from_pairs([("AWS_MAX_ATTEMPTS", "0")])).unwrap_err();
        assert!(e.to_string().contains("AWS_MAX_ATTEMPTS"));
        let e = AwsSettings::from_vars(&Vars::from_pairs([("AWS_CONNECT_TIMEOUT_MS", "soon")]))
            .unwrap_err();
        assert!(e.to_string().contains("AWS_CONNECT_TIMEOUT_MS"));
    }

    #[tokio::test]
    async fn clients_follow_the_settings() {
        let s = settings(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5999"),
            ("AWS_MAX_ATTEMPTS", "4"),
            ("AWS_ATTEMPT_TIMEOUT_MS", "1500"),
        ]);
        let clients = AwsClients::load(s.clone()).await;
        assert!(
            clients.sdk.http_client().is_some(),
            "no HTTP client configured"
        );
        assert_eq!(clients.sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(clients.sdk.endpoint_url(), Some("http://127.0.0.1:5999"));
        let retry = clients.sdk.retry_config().expect("retry config set");
        assert_eq!(retry.max_attempts(), 4);
        let timeouts = clients.sdk.timeout_config().expect("timeouts set");
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(timeouts.connect_timeout(), Some(Duration::from_secs(3)));

        let s3 = s3_config(&clients.sdk, &s);
        assert_eq!(
            s3.request_checksum_calculation(),
            Some(&aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        );
    }

    /// The S3 client addresses buckets by path when an endpoint is overridden: checked on the
    /// wire, with a listener that records the request line.
    #[tokio::test]
    async fn s3_uses_path_style_against_an_endpoint() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap();
            let _ = sock
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await;
            String::from_utf8_lossy(&buf[..n]).to_string()
        });
        let s = settings(&[
            ("AWS_ENDPOINT_URL", &format!("http://127.0.0.1:{port}")),
            ("AWS_MAX_ATTEMPTS", "1"),
        ]);
        // Static test credentials, so the default chain does not wait on instance metadata.
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        let clients = AwsClients::load(s).await;
        let _ = clients
            .s3()
            .list_objects_v2()
            .bucket("my-bucket")
            .send()
            .await;
        let request = server.await.unwrap();
        let first_line = request.lines().next().unwrap_or_default();
        assert!(
            first_line.starts_with("GET /my-bucket/?list-type=2"),
            "{first_line}"
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains(&format!("host: 127.0.0.1:{port}")),
            "{request}"
        );
    }
}
