//! The function's own configuration (LOADTEST_COORD_* variables), read once at cold start.
//! See docs/loadtest-coordinator.md.

use std::time::Duration;

use shared::config::{CommonConfig, Vars};
use shared::SuiteError;

use crate::plan::PlanSettings;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `LOADTEST_COORD_BUCKET`: artifacts, run state, gate, baseline, incidents, scenarios
    /// (default REPORT_BUCKET).
    pub bucket: String,
    /// `LOADTEST_COORD_PREFIX`: default `k6/`.
    pub prefix: String,
    /// `LOADTEST_COORD_SCENARIO_PREFIX`: scenario files in the bucket (default `<prefix>scenarios/`).
    pub scenario_prefix: String,
    /// `LOADTEST_COORD_SCENARIO_DIR`: a local directory read before S3 (local runs).
    pub scenario_dir: Option<String>,
    /// `LOADTEST_COORD_SHARD_FUNCTION`: the shard function's name or ARN.
    pub shard_function: String,
    /// `LOADTEST_COORD_SELF_FUNCTION`: this function's name for continuations (default
    /// AWS_LAMBDA_FUNCTION_NAME).
    pub self_function: String,
    pub plan: PlanSettings,
    /// `LOADTEST_COORD_LEAD_SECONDS`: shards are invoked this long before their window opens
    /// (cold starts), and the next slice's coordinator this long before its window.
    pub lead: Duration,
    /// `LOADTEST_COORD_SHARD_GRACE_SECONDS`: how long after its window a shard may take to
    /// answer before it counts as failed.
    pub shard_grace: Duration,
    /// `LOADTEST_COORD_FINALIZE_WAIT_SECONDS`: how long the last coordinator waits for the
    /// earlier slices' partial results.
    pub finalize_wait: Duration,
    /// `LOADTEST_COORD_INVOCATION_LIMIT_SECONDS`: the Lambda timeout (900); slices must fit.
    pub invocation_limit: Duration,
    /// `LOADTEST_COORD_REMOTE_WRITE_URL`: Prometheus remote-write endpoint (optional).
    pub remote_write_url: Option<String>,
    /// `LOADTEST_COORD_REMOTE_WRITE_STEP_SECONDS` (10): the spacing of the samples each slice
    /// writes of its requests (counters and latency buckets), so `rate()` sees the run.
    pub remote_write_step: Duration,
    /// `LOADTEST_COORD_REMOTE_WRITE_SIGV4_REGION`: sign the remote write with SigV4 (service
    /// `aps`) for this region. Unset: signed when the URL is Amazon Managed Service for
    /// Prometheus's (`aps-workspaces.<region>.amazonaws.com`, the region taken from it).
    pub remote_write_sigv4_region: Option<String>,
    /// `LOADTEST_COORD_INCIDENT_TOPIC_ARN`: SNS topic for REL incidents (optional locally).
    pub incident_topic_arn: Option<String>,
    /// `LOADTEST_COORD_NOTICE_TOPIC_ARN`: where a run with no verdict (ERROR) and the next
    /// run with one are told to the scenario's owners (Terraform: the info topic, which
    /// alert-router collects into the daily digest). Unset: not told.
    pub notice_topic_arn: Option<String>,
    /// `LOADTEST_COORD_LAMBDA_ENDPOINT_URL`: the Invoke API endpoint when it differs from
    /// AWS_ENDPOINT_URL (locally: `cargo lambda watch`, while S3 and SNS are moto). Unset on AWS.
    pub lambda_endpoint_url: Option<String>,
}

/// Time the coordinator needs after its slice's shards answer: merge, artifacts, gate.
pub const FINALIZE_BUDGET: Duration = Duration::from_secs(60);
/// Kept free below the invocation limit.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(30);

fn bad(var: &str, problem: impl Into<String>) -> SuiteError {
    SuiteError::Config {
        var: var.into(),
        problem: problem.into(),
    }
}

fn dir(mut p: String) -> String {
    if !p.is_empty() && !p.ends_with('/') {
        p.push('/');
    }
    p
}

impl Settings {
    pub fn from_vars(vars: &Vars, common: &CommonConfig) -> Result<Settings, SuiteError> {
        let prefix = dir(vars.or("LOADTEST_COORD_PREFIX", "k6/"));
        if prefix.starts_with('/') || prefix.is_empty() {
            return Err(bad(
                "LOADTEST_COORD_PREFIX",
                "must be a key prefix such as k6/",
            ));
        }
        let secs = |name: &str, default: u64| -> Result<Duration, SuiteError> {
            vars.parse_or(name, default, "whole seconds")
                .map(Duration::from_secs)
        };
        let d = PlanSettings::default();
        let plan = PlanSettings {
            slice: secs("LOADTEST_COORD_SLICE_SECONDS", 600)?,
            shard_rps: vars.parse_or(
                "LOADTEST_COORD_SHARD_RPS",
                d.shard_rps,
                "requests per second",
            )?,
            shard_max_in_flight: vars.parse_or(
                "LOADTEST_COORD_SHARD_MAX_IN_FLIGHT",
                d.shard_max_in_flight,
                "a number of sockets",
            )?,
            sse_clients_per_shard: vars.parse_or(
                "LOADTEST_COORD_SSE_CLIENTS_PER_SHARD",
                d.sse_clients_per_shard,
                "a number of streams",
            )?,
            max_shards: vars.parse_or(
                "LOADTEST_COORD_MAX_SHARDS",
                d.max_shards,
                "a number of shards",
            )?,
        };
        if plan.slice.is_zero() {
            return Err(bad("LOADTEST_COORD_SLICE_SECONDS", "must be at least 1"));
        }
        if !(plan.shard_rps.is_finite() && plan.shard_rps > 0.0) {
            return Err(bad("LOADTEST_COORD_SHARD_RPS", "must be > 0"));
        }
        // Lambda allows 1,024 descriptors; the runtime, TLS roots and logs need some.
        for (name, v) in [
            (
                "LOADTEST_COORD_SHARD_MAX_IN_FLIGHT",
                plan.shard_max_in_flight,
            ),
            (
                "LOADTEST_COORD_SSE_CLIENTS_PER_SHARD",
                plan.sse_clients_per_shard,
            ),
        ] {
            if v == 0 || v > 900 {
                return Err(bad(
                    name,
                    format!("{v} must be 1-900 (Lambda allows 1,024 file descriptors per shard)"),
                ));
            }
        }
        let s = Settings {
            bucket: vars
                .get("LOADTEST_COORD_BUCKET")
                .map(str::to_string)
                .unwrap_or_else(|| common.report_bucket.clone()),
            scenario_prefix: dir(vars.or(
                "LOADTEST_COORD_SCENARIO_PREFIX",
                &format!("{prefix}scenarios/"),
            )),
            prefix,
            scenario_dir: vars.get("LOADTEST_COORD_SCENARIO_DIR").map(str::to_string),
            shard_function: vars.or("LOADTEST_COORD_SHARD_FUNCTION", "loadtest-shard"),
            self_function: vars.or("LOADTEST_COORD_SELF_FUNCTION", &common.function_name),
            plan,
            lead: secs("LOADTEST_COORD_LEAD_SECONDS", 15)?,
            shard_grace: secs("LOADTEST_COORD_SHARD_GRACE_SECONDS", 30)?,
            finalize_wait: secs("LOADTEST_COORD_FINALIZE_WAIT_SECONDS", 120)?,
            invocation_limit: secs("LOADTEST_COORD_INVOCATION_LIMIT_SECONDS", 900)?,
            remote_write_url: vars
                .get("LOADTEST_COORD_REMOTE_WRITE_URL")
                .map(str::to_string),
            remote_write_step: secs("LOADTEST_COORD_REMOTE_WRITE_STEP_SECONDS", 10)?,
            remote_write_sigv4_region: vars
                .get("LOADTEST_COORD_REMOTE_WRITE_SIGV4_REGION")
                .map(str::to_string)
                .or_else(|| {
                    vars.get("LOADTEST_COORD_REMOTE_WRITE_URL")
                        .and_then(crate::remote_write::amp_region)
                }),
            incident_topic_arn: vars
                .get("LOADTEST_COORD_INCIDENT_TOPIC_ARN")
                .map(str::to_string),
            notice_topic_arn: vars
                .get("LOADTEST_COORD_NOTICE_TOPIC_ARN")
                .map(str::to_string),
            lambda_endpoint_url: vars
                .get("LOADTEST_COORD_LAMBDA_ENDPOINT_URL")
                .map(str::to_string),
        };
        if let Some(t) = &s.notice_topic_arn {
            if !t.starts_with("arn:") || !t.contains(":sns:") {
                return Err(bad(
                    "LOADTEST_COORD_NOTICE_TOPIC_ARN",
                    "must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)",
                ));
            }
        }
        if let Some(u) = &s.lambda_endpoint_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(bad(
                    "LOADTEST_COORD_LAMBDA_ENDPOINT_URL",
                    "must be an http(s) URL such as http://127.0.0.1:9599",
                ));
            }
        }
        if let Some(u) = &s.remote_write_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(bad(
                    "LOADTEST_COORD_REMOTE_WRITE_URL",
                    "must be an http(s) URL such as http://prometheus:9090/api/v1/write",
                ));
            }
        }
        if s.remote_write_step.is_zero() || s.remote_write_step > Duration::from_secs(300) {
            return Err(bad(
                "LOADTEST_COORD_REMOTE_WRITE_STEP_SECONDS",
                "must be 1-300 (k6 flushes every 5 s; Grafana's rate() wants ≥ 2 samples per window)",
            ));
        }
        s.check_budget()?;
        Ok(s)
    }

    /// The longest coordinator invocation: lead + slice + shard grace + finalize. It must fit
    /// the Lambda limit with margin (a shard invocation is shorter: it starts at most `lead`
    /// early and ends by its window's end).
    pub fn worst_invocation(&self) -> Duration {
        self.lead + self.plan.slice + self.shard_grace + FINALIZE_BUDGET
    }

    pub fn check_budget(&self) -> Result<(), SuiteError> {
        let worst = self.worst_invocation();
        let limit = self.invocation_limit.saturating_sub(SAFETY_MARGIN);
        if worst > limit {
            return Err(bad(
                "LOADTEST_COORD_SLICE_SECONDS",
                format!(
                    "lead {}s + slice {}s + shard grace {}s + finalize {}s = {}s exceeds the {}s invocation limit less {}s margin; shorten the slice",
                    self.lead.as_secs(), self.plan.slice.as_secs(), self.shard_grace.as_secs(),
                    FINALIZE_BUDGET.as_secs(), worst.as_secs(), self.invocation_limit.as_secs(), SAFETY_MARGIN.as_secs()
                ),
            ));
        }
        if self.lead >= self.plan.slice {
            return Err(bad(
                "LOADTEST_COORD_LEAD_SECONDS",
                "must be shorter than the slice (the next slice is handed off one lead before its window)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common() -> CommonConfig {
        CommonConfig::from_vars(
            &Vars::from_pairs([("ENVIRONMENT", "local"), ("REPORT_BUCKET", "reports")]),
            "loadtest-coordinator",
        )
        .unwrap()
    }

    fn s(pairs: &[(&str, &str)]) -> Result<Settings, SuiteError> {
        Settings::from_vars(&Vars::from_pairs(pairs.iter().copied()), &common())
    }

    #[test]
    fn defaults_fit_the_lambda_limit() {
        let d = s(&[]).unwrap();
        assert_eq!(d.bucket, "reports");
        assert_eq!(d.prefix, "k6/");
        assert_eq!(d.scenario_prefix, "k6/scenarios/");
        assert_eq!(d.self_function, "loadtest-coordinator");
        assert_eq!(d.plan.slice, Duration::from_secs(600));
        assert!(d.worst_invocation() <= Duration::from_secs(870));
        assert_eq!(d.remote_write_step, Duration::from_secs(10));
        assert_eq!(d.remote_write_sigv4_region, None);
    }

    #[test]
    fn an_amp_endpoint_is_signed_for_its_region() {
        let amp =
            "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/remote_write";
        let d = s(&[("LOADTEST_COORD_REMOTE_WRITE_URL", amp)]).unwrap();
        assert_eq!(d.remote_write_sigv4_region.as_deref(), Some("eu-west-1"));
        let d = s(&[
            (
                "LOADTEST_COORD_REMOTE_WRITE_URL",
                "https://amp-vpce.internal/workspaces/ws-1/api/v1/remote_write",
            ),
            ("LOADTEST_COORD_REMOTE_WRITE_SIGV4_REGION", "us-east-2"),
        ])
        .unwrap();
        assert_eq!(d.remote_write_sigv4_region.as_deref(), Some("us-east-2"));
        let d = s(&[(
            "LOADTEST_COORD_REMOTE_WRITE_URL",
            "http://prometheus:9090/api/v1/write",
        )])
        .unwrap();
        assert_eq!(
            d.remote_write_sigv4_region, None,
            "a plain Prometheus is not signed"
        );
    }

    #[test]
    fn bad_values_are_named() {
        for (pairs, var) in [
            (
                vec![("LOADTEST_COORD_SLICE_SECONDS", "840")],
                "LOADTEST_COORD_SLICE_SECONDS",
            ),
            (
                vec![("LOADTEST_COORD_SLICE_SECONDS", "ten")],
                "LOADTEST_COORD_SLICE_SECONDS",
            ),
            (
                vec![("LOADTEST_COORD_SSE_CLIENTS_PER_SHARD", "1000")],
                "LOADTEST_COORD_SSE_CLIENTS_PER_SHARD",
            ),
            (
                vec![("LOADTEST_COORD_SHARD_RPS", "0")],
                "LOADTEST_COORD_SHARD_RPS",
            ),
            (
                vec![("LOADTEST_COORD_REMOTE_WRITE_URL", "prom:9090")],
                "LOADTEST_COORD_REMOTE_WRITE_URL",
            ),
            (
                vec![("LOADTEST_COORD_REMOTE_WRITE_STEP_SECONDS", "0")],
                "LOADTEST_COORD_REMOTE_WRITE_STEP_SECONDS",
            ),
            (
                vec![
                    ("LOADTEST_COORD_SLICE_SECONDS", "10"),
                    ("LOADTEST_COORD_LEAD_SECONDS", "10"),
                ],
                "LOADTEST_COORD_LEAD_SECONDS",
            ),
        ] {
            let e = s(&pairs).unwrap_err().to_string();
            assert!(e.contains(var), "{pairs:?}: {e}");
        }
    }
}
