//! Helpers for the fault-injection tests (tests/faults/): a fault proxy in front of the test
//! binary's moto, AWS clients for the function under test that go through it (the test's own
//! checks talk to moto directly, so they never see a fault), Lambda contexts with a chosen
//! deadline, and the redelivery loop Lambda's own retries amount to.

use std::time::Duration;

use fault_proxy::FaultProxy;
use lambda_runtime::Context;
use shared::aws::{AwsClients, AwsSettings};
use shared::config::Vars;
use suite_tests::Moto;

/// How long a burst lasts in these tests. The example is 30 % of requests for 10 s;
/// the runs here take a few seconds, so 3 s covers most of each run and keeps `make test` fast.
pub const BURST: Duration = Duration::from_secs(3);
/// The fraction of requests hit by a burst.
pub const BURST_FRACTION: f64 = 0.3;

/// A proxy in front of moto and the clients of the function under test, which use it.
pub struct Faulted {
    pub proxy: FaultProxy,
    pub clients: AwsClients,
}

impl Faulted {
    /// The proxy, and clients built the way the functions build them (shared::aws) with
    /// `AWS_ENDPOINT_URL` pointing at the proxy. Retries: the suite's default of 8 attempts,
    /// with a 100 ms initial backoff (200 ms in production) to keep the tests quick.
    pub async fn new(m: &Moto) -> Faulted {
        Self::with_attempts(m, 8).await
    }

    pub async fn with_attempts(m: &Moto, attempts: u32) -> Faulted {
        // Sets the static test credentials in the environment, as the harness does.
        let _ = m.clients().await;
        let proxy = FaultProxy::start(format!("127.0.0.1:{}", m.port))
            .await
            .expect("start fault proxy");
        let mut env = m.env();
        env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
        env.push(("AWS_ENDPOINT_URL".into(), proxy.url()));
        env.push(("AWS_MAX_ATTEMPTS".into(), attempts.to_string()));
        env.push(("AWS_INITIAL_BACKOFF_MS".into(), "100".into()));
        env.push(("AWS_ATTEMPT_TIMEOUT_MS".into(), "10000".into()));
        let settings = AwsSettings::from_vars(&Vars::from_pairs(env)).expect("settings");
        let clients = AwsClients::load(settings).await;
        Faulted { proxy, clients }
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        self.clients.s3()
    }
}

/// A Lambda context whose deadline is `budget` from now, with a unique request id.
pub fn context(budget: Duration) -> Context {
    let mut ctx = Context::default();
    let now = chrono::Utc::now();
    ctx.request_id = format!("fault-{}", now.timestamp_nanos_opt().unwrap_or(0));
    ctx.deadline = (now.timestamp_millis() + budget.as_millis() as i64) as u64;
    ctx
}

/// What happened over the deliveries of one event.
#[derive(Debug)]
pub struct Deliveries {
    pub result: serde_json::Value,
    pub attempts: usize,
    /// The classified errors of the failed attempts (`class: message`).
    pub errors: Vec<String>,
}

/// Delivers `payload` again and again, as Lambda's async retries (and then the team's
/// redrive) would, until an attempt succeeds. Each failure must be a classified, retryable
/// error: bad input or an internal error under transport faults would be a bug. `check` runs
/// after every attempt (the invariant must hold at every point, not just at the end).
pub async fn deliver_until_ok<F, Fut, C, CFut>(
    max_attempts: usize,
    mut invoke: F,
    mut check: C,
) -> Deliveries
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value, shared::SuiteError>>,
    C: FnMut() -> CFut,
    CFut: std::future::Future<Output = ()>,
{
    let mut errors = vec![];
    for attempt in 1..=max_attempts {
        let r = invoke().await;
        check().await;
        match r {
            Ok(v) => {
                return Deliveries {
                    result: v,
                    attempts: attempt,
                    errors,
                }
            }
            Err(e) => {
                assert!(
                    e.retryable(),
                    "attempt {attempt} failed with a non-retryable {} under transport faults: {e}",
                    e.class()
                );
                errors.push(format!("{}: {e}", e.class()));
                // Lambda waits about a minute between async retries; a second is enough here
                // for the burst windows to move on.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    panic!("no success in {max_attempts} deliveries: {errors:#?}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn aws() -> shared::SuiteError {
        shared::SuiteError::Aws {
            service: "s3",
            operation: "PutObject",
            message: "SlowDown".into(),
        }
    }

    #[tokio::test]
    async fn redelivers_until_success_checking_every_time() {
        let calls = Cell::new(0);
        let checks = Cell::new(0);
        let out = deliver_until_ok(
            5,
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 3 {
                        Err(aws())
                    } else {
                        Ok(serde_json::json!({"n": n}))
                    }
                }
            },
            || {
                checks.set(checks.get() + 1);
                async {}
            },
        )
        .await;
        assert_eq!(out.attempts, 3);
        assert_eq!(out.errors.len(), 2);
        assert_eq!(checks.get(), 3);
        assert_eq!(out.result["n"], 3);
    }

    #[tokio::test]
    #[should_panic(expected = "non-retryable InvalidInput")]
    async fn a_non_retryable_failure_under_faults_fails_the_test() {
        deliver_until_ok(
            3,
            || async { Err(shared::SuiteError::invalid("x", "y", "z")) },
            || async {},
        )
        .await;
    }
}
