//! The function's own configuration, read once at cold start (docs/chaos-runner.md).

use std::time::Duration;

use shared::config::Vars;
use shared::SuiteError;

/// The registry compiled in: `events/chaos-runner/experiments.json` of the build.
pub const EMBEDDED_REGISTRY: &str = include_str!("../../../events/chaos-runner/experiments.json");

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `CHAOS_EXPERIMENTS`: `s3://bucket/key`, a file path, or unset for the embedded registry.
    pub registry_source: RegistrySource,
    /// `CHAOS_ALLOW_PRODUCTION`: first key for production (the experiment's
    /// `allow_production` is the second). Default false.
    pub allow_production: bool,
    /// `CHAOS_DRY_RUN`: scheduled runs start FIS with `actionsMode=skip-all`. Default false.
    pub dry_run: bool,
    /// `CHAOS_STATE_PREFIX`: run state in REPORT_BUCKET (default `chaos-runner/state/`).
    pub state_prefix: String,
    /// `CHAOS_POLL_MS`: between two GetExperiment calls (default 15000).
    pub poll: Duration,
    /// `CHAOS_DEADLINE_MARGIN_MS`: stop following this long before the invocation's deadline,
    /// to save the state (default 30000).
    pub deadline_margin: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RegistrySource {
    Embedded,
    File(String),
    S3 { bucket: String, key: String },
}

fn bad(var: &str, problem: impl Into<String>) -> SuiteError {
    SuiteError::Config {
        var: var.into(),
        problem: problem.into(),
    }
}

fn flag(vars: &Vars, name: &str) -> Result<bool, SuiteError> {
    match vars.get(name).map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") | Some("0") | Some("no") => Ok(false),
        Some("true") | Some("1") | Some("yes") => Ok(true),
        Some(other) => Err(bad(name, format!("{other:?} is not true or false"))),
    }
}

impl Settings {
    pub fn from_vars(vars: &Vars) -> Result<Self, SuiteError> {
        let registry_source = match vars.get("CHAOS_EXPERIMENTS") {
            None => RegistrySource::Embedded,
            Some(uri) if uri.starts_with("s3://") => {
                let rest = &uri[5..];
                match rest.split_once('/') {
                    Some((b, k)) if !b.is_empty() && !k.is_empty() => RegistrySource::S3 {
                        bucket: b.into(),
                        key: k.into(),
                    },
                    _ => {
                        return Err(bad(
                            "CHAOS_EXPERIMENTS",
                            format!("{uri:?} is not s3://bucket/key"),
                        ))
                    }
                }
            }
            Some(path) => RegistrySource::File(path.into()),
        };
        let mut state_prefix = vars.or("CHAOS_STATE_PREFIX", "chaos-runner/state/");
        if state_prefix.starts_with('/') {
            return Err(bad("CHAOS_STATE_PREFIX", "must not start with '/'"));
        }
        if !state_prefix.ends_with('/') {
            state_prefix.push('/');
        }
        let poll_ms: u64 = vars.parse_or("CHAOS_POLL_MS", 15_000, "milliseconds")?;
        let margin_ms: u64 = vars.parse_or("CHAOS_DEADLINE_MARGIN_MS", 30_000, "milliseconds")?;
        if poll_ms > 300_000 {
            return Err(bad("CHAOS_POLL_MS", "must be at most 300000 (5 minutes)"));
        }
        Ok(Settings {
            registry_source,
            allow_production: flag(vars, "CHAOS_ALLOW_PRODUCTION")?,
            dry_run: flag(vars, "CHAOS_DRY_RUN")?,
            state_prefix,
            poll: Duration::from_millis(poll_ms),
            deadline_margin: Duration::from_millis(margin_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, &str)]) -> Result<Settings, SuiteError> {
        Settings::from_vars(&Vars::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_and_sources() {
        let d = s(&[]).unwrap();
        assert_eq!(d.registry_source, RegistrySource::Embedded);
        assert!(!d.allow_production && !d.dry_run);
        assert_eq!(d.state_prefix, "chaos-runner/state/");
        assert_eq!(
            s(&[("CHAOS_EXPERIMENTS", "s3://cfg/chaos/experiments.json")])
                .unwrap()
                .registry_source,
            RegistrySource::S3 {
                bucket: "cfg".into(),
                key: "chaos/experiments.json".into()
            }
        );
        assert_eq!(
            s(&[("CHAOS_EXPERIMENTS", "/opt/experiments.json")])
                .unwrap()
                .registry_source,
            RegistrySource::File("/opt/experiments.json".into())
        );
        assert!(
            s(&[("CHAOS_ALLOW_PRODUCTION", "TRUE")])
                .unwrap()
                .allow_production
        );
    }

    #[test]
    fn bad_values_are_named() {
        for (pairs, var) in [
            (
                vec![("CHAOS_EXPERIMENTS", "s3://bucket-only")],
                "CHAOS_EXPERIMENTS",
            ),
            (
                vec![("CHAOS_ALLOW_PRODUCTION", "sure")],
                "CHAOS_ALLOW_PRODUCTION",
            ),
            (vec![("CHAOS_DRY_RUN", "maybe")], "CHAOS_DRY_RUN"),
            (vec![("CHAOS_POLL_MS", "soon")], "CHAOS_POLL_MS"),
            (vec![("CHAOS_POLL_MS", "900000")], "CHAOS_POLL_MS"),
            (vec![("CHAOS_STATE_PREFIX", "/x")], "CHAOS_STATE_PREFIX"),
        ] {
            let e = s(&pairs).unwrap_err().to_string();
            assert!(e.contains(var), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn embedded_registry_parses() {
        crate::registry::Registry::parse(EMBEDDED_REGISTRY).unwrap();
    }
}
