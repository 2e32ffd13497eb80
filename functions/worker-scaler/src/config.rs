//! worker-scaler's own configuration (`SCALER_*`), read once at cold start
//! (docs/worker-scaler.md#configuration).

use std::time::Duration;

use shared::config::Vars;
use shared::SuiteError;

use crate::policy::{Policy, Window};
use crate::target::TargetSpec;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub redis_url: String,
    pub queues: Vec<String>,
    pub target: TargetSpec,
    pub policy: Policy,
    pub redis_timeout: Duration,
    pub lock_ttl: Duration,
    pub state_prefix: String,
    pub retry_scan_limit: usize,
}

fn bad(var: &str, problem: impl Into<String>) -> SuiteError {
    SuiteError::Config {
        var: var.into(),
        problem: problem.into(),
    }
}

impl Settings {
    pub fn from_vars(vars: &Vars) -> Result<Self, SuiteError> {
        let redis_url = vars.or("SCALER_REDIS_URL", "redis://127.0.0.1:6379");
        if !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://")) {
            return Err(bad(
                "SCALER_REDIS_URL",
                "must be a redis:// or rediss:// URL, e.g. redis://queue-cache:6379/0",
            ));
        }
        let queues = vars.list("SCALER_QUEUES");
        if queues.is_empty() {
            return Err(bad(
                "SCALER_QUEUES",
                "is not set; set it to the RQ queue names, comma-separated (e.g. default,exports)",
            ));
        }
        if let Some(q) = queues
            .iter()
            .find(|q| q.chars().any(|c| c.is_whitespace() || c == '*'))
        {
            return Err(bad(
                "SCALER_QUEUES",
                format!("{q:?} is not a queue name (no spaces or wildcards)"),
            ));
        }
        let target = TargetSpec::parse(
            &vars.required("SCALER_TARGET", "ecs:CLUSTER/SERVICE or asg:GROUP_NAME")?,
        )
        .map_err(|e| bad("SCALER_TARGET", e))?;
        let window = Window::parse(&vars.or("SCALER_WINDOW", "20:00-02:00"))
            .map_err(|e| bad("SCALER_WINDOW", format!("{e}; expected UTC HH:MM-HH:MM")))?;
        let base: u32 = vars.parse_or("SCALER_BASE_WORKERS", 2, "a number of workers")?;
        let max: u32 = vars.parse_or("SCALER_MAX_WORKERS", 8, "a number of workers")?;
        if base == 0 {
            return Err(bad("SCALER_BASE_WORKERS", "must be at least 1"));
        }
        if max < base {
            return Err(bad(
                "SCALER_MAX_WORKERS",
                format!("{max} is below SCALER_BASE_WORKERS ({base})"),
            ));
        }
        let high_backlog: u64 = vars.parse_or("SCALER_HIGH_BACKLOG", 100, "a number of jobs")?;
        let low_backlog: u64 = vars.parse_or("SCALER_LOW_BACKLOG", 10, "a number of jobs")?;
        if low_backlog >= high_backlog {
            return Err(bad(
                "SCALER_LOW_BACKLOG",
                format!("{low_backlog} must be below SCALER_HIGH_BACKLOG ({high_backlog}): the gap is the hysteresis band"),
            ));
        }
        let consecutive_checks: u32 =
            vars.parse_or("SCALER_CONSECUTIVE_CHECKS", 3, "a number of checks")?;
        if consecutive_checks == 0 {
            return Err(bad("SCALER_CONSECUTIVE_CHECKS", "must be at least 1"));
        }
        let cooldown_seconds: i64 = vars.parse_or("SCALER_COOLDOWN_SECONDS", 900, "seconds")?;
        if cooldown_seconds < 0 {
            return Err(bad("SCALER_COOLDOWN_SECONDS", "must not be negative"));
        }
        let redis_timeout = Duration::from_millis(vars.parse_or(
            "SCALER_REDIS_TIMEOUT_MS",
            2000u64,
            "milliseconds",
        )?);
        let lock_ttl =
            Duration::from_secs(vars.parse_or("SCALER_LOCK_TTL_SECONDS", 120u64, "seconds")?);
        if lock_ttl.is_zero() || redis_timeout.is_zero() {
            return Err(bad(
                "SCALER_LOCK_TTL_SECONDS / SCALER_REDIS_TIMEOUT_MS",
                "must be above 0",
            ));
        }
        Ok(Settings {
            redis_url,
            queues,
            target,
            policy: Policy {
                window,
                base,
                max,
                high_backlog,
                consecutive_checks,
                low_backlog,
                cooldown_seconds,
            },
            redis_timeout,
            lock_ttl,
            state_prefix: vars.or("SCALER_STATE_PREFIX", "worker-scaler:"),
            retry_scan_limit: vars.parse_or(
                "SCALER_RETRY_SCAN_LIMIT",
                1000,
                "a number of job ids",
            )?,
        })
    }

    pub fn state_key(&self) -> String {
        format!("{}{}:state", self.state_prefix, self.target.id())
    }

    pub fn lock_key(&self) -> String {
        format!("{}{}:lock", self.state_prefix, self.target.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, &str)]) -> Result<Settings, SuiteError> {
        let mut all = vec![("SCALER_QUEUES", "default"), ("SCALER_TARGET", "ecs:c/s")];
        all.extend_from_slice(pairs);
        Settings::from_vars(&Vars::from_pairs(all))
    }

    #[test]
    fn defaults() {
        let c = s(&[]).unwrap();
        assert_eq!(c.policy.base, 2);
        assert_eq!(c.policy.max, 8);
        assert_eq!(c.policy.high_backlog, 100);
        assert_eq!(c.policy.window, Window::parse("20:00-02:00").unwrap());
        assert_eq!(c.state_key(), "worker-scaler:ecs:c/s:state");
        assert_eq!(c.redis_url, "redis://127.0.0.1:6379");
    }

    #[test]
    fn bad_values_are_named() {
        for (pairs, var) in [
            (vec![("SCALER_QUEUES", " , ")], "SCALER_QUEUES"),
            (vec![("SCALER_QUEUES", "a b")], "SCALER_QUEUES"),
            (vec![("SCALER_TARGET", "ecs:c")], "SCALER_TARGET"),
            (vec![("SCALER_WINDOW", "8pm-2am")], "SCALER_WINDOW"),
            (vec![("SCALER_MAX_WORKERS", "1")], "SCALER_MAX_WORKERS"),
            (vec![("SCALER_BASE_WORKERS", "0")], "SCALER_BASE_WORKERS"),
            (vec![("SCALER_LOW_BACKLOG", "100")], "SCALER_LOW_BACKLOG"),
            (
                vec![("SCALER_REDIS_URL", "127.0.0.1:6379")],
                "SCALER_REDIS_URL",
            ),
            (
                vec![("SCALER_CONSECUTIVE_CHECKS", "x")],
                "SCALER_CONSECUTIVE_CHECKS",
            ),
        ] {
            let e = s(&pairs).unwrap_err().to_string();
            assert!(e.contains(var), "{pairs:?}: {e}");
        }
    }
}
