//! The shard's configuration, read once per cold start (docs/loadtest-shard.md).

use std::time::Duration;

use shared::config::Vars;
use shared::SuiteError;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `LOADTEST_ALLOWED_HOSTS`: exact hosts or `*.suffix`; a target outside is refused.
    pub allowed_hosts: Vec<String>,
    /// `LOADTEST_DEADLINE_MARGIN_MS` (default 3000): stop scheduling this long before the
    /// invocation's deadline (in-flight requests get half of it to finish).
    pub deadline_margin: Duration,
    /// `LOADTEST_MAX_STREAMS` (default 900): SSE streams (and connections) one shard may
    /// hold; Lambda allows 1,024 file descriptors and the runtime needs some.
    pub max_streams: u32,
    /// `LOADTEST_MAX_CONNECTIONS`: HTTP/1.1 connections per shard; default (unset) one per
    /// in-flight slot. Fewer makes due requests wait for a connection (counted as in flight).
    pub max_connections: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allowed_hosts: vec![],
            deadline_margin: Duration::from_millis(3000),
            max_streams: 900,
            max_connections: None,
        }
    }
}

impl Settings {
    pub fn from_vars(vars: &Vars) -> Result<Self, SuiteError> {
        let allowed_hosts = vars.list("LOADTEST_ALLOWED_HOSTS");
        for h in &allowed_hosts {
            let bare = h.strip_prefix("*.").unwrap_or(h);
            if bare.is_empty() || bare.contains(['/', ':', '*', ' ']) && !bare.starts_with('[') {
                return Err(SuiteError::Config {
                    var: "LOADTEST_ALLOWED_HOSTS".into(),
                    problem: format!(
                        "{h:?} is not a host; list hosts (api.example.com) or suffixes (*.staging.example.com), comma-separated, no scheme or port"
                    ),
                });
            }
        }
        let margin_ms: u64 = vars.parse_or(
            "LOADTEST_DEADLINE_MARGIN_MS",
            3000,
            "milliseconds to keep free before the Lambda deadline",
        )?;
        let max_streams: u32 = vars.parse_or(
            "LOADTEST_MAX_STREAMS",
            900,
            "the most SSE streams / connections per shard (≤ 1000)",
        )?;
        if max_streams == 0 || max_streams > 1000 {
            return Err(SuiteError::Config {
                var: "LOADTEST_MAX_STREAMS".into(),
                problem: format!(
                    "{max_streams} is outside 1..=1000 (Lambda allows 1,024 file descriptors)"
                ),
            });
        }
        let max_connections = match vars.get("LOADTEST_MAX_CONNECTIONS") {
            None => None,
            Some(_) => {
                let n: u32 = vars.parse_or("LOADTEST_MAX_CONNECTIONS", 0, "a number ≥ 1")?;
                if n == 0 {
                    return Err(SuiteError::Config {
                        var: "LOADTEST_MAX_CONNECTIONS".into(),
                        problem: "must be at least 1".into(),
                    });
                }
                Some(n)
            }
        };
        Ok(Settings {
            allowed_hosts: allowed_hosts
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            deadline_margin: Duration::from_millis(margin_ms),
            max_streams,
            max_connections,
        })
    }
}

/// Whether `host` is allowed: equal to an entry, or a subdomain of a `*.suffix` entry (the
/// suffix itself is not matched by `*.suffix`; list it separately).
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allowed.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(sfx) => host.len() > sfx.len() + 1 && host.ends_with(&format!(".{sfx}")),
            None => host == p,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_matching() {
        let allow = vec!["127.0.0.1".to_string(), "*.staging.example.com".to_string()];
        assert!(host_allowed("127.0.0.1", &allow));
        assert!(host_allowed("API.staging.example.com", &allow));
        assert!(host_allowed("a.b.staging.example.com.", &allow));
        assert!(!host_allowed("staging.example.com", &allow));
        assert!(!host_allowed("evilstaging.example.com", &allow));
        assert!(!host_allowed("example.com", &allow));
        assert!(!host_allowed("127.0.0.2", &allow));
        assert!(!host_allowed("anything", &[]));
    }

    #[test]
    fn settings_from_vars() {
        let s = Settings::from_vars(&Vars::from_pairs([
            ("LOADTEST_ALLOWED_HOSTS", "127.0.0.1, *.Example.com"),
            ("LOADTEST_DEADLINE_MARGIN_MS", "1500"),
        ]))
        .unwrap();
        assert_eq!(s.allowed_hosts, vec!["127.0.0.1", "*.example.com"]);
        assert_eq!(s.deadline_margin, Duration::from_millis(1500));
        assert_eq!(s.max_streams, 900);
        let e = Settings::from_vars(&Vars::from_pairs([(
            "LOADTEST_ALLOWED_HOSTS",
            "https://x.com",
        )]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("LOADTEST_ALLOWED_HOSTS"), "{e}");
        let e = Settings::from_vars(&Vars::from_pairs([("LOADTEST_MAX_STREAMS", "5000")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("LOADTEST_MAX_STREAMS"), "{e}");
    }
}
