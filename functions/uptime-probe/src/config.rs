//! uptime-probe's configuration (`PROBE_*`), read once at cold start (docs/uptime-probe.md).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::config::Vars;
use shared::SuiteError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A health endpoint: 2xx and the whole body within the timeout.
    #[default]
    Http,
    /// A Server-Sent Events stream: 2xx with `Content-Type: text/event-stream` within the
    /// timeout (the stream itself is not read: it never ends).
    Sse,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The `target` dimension of the metrics (api, quote, sse, ...).
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub kind: Kind,
    /// When set, a request slower than this counts in `probe_slow_requests` (latency SLOs).
    #[serde(default)]
    pub latency_threshold_ms: Option<u64>,
    /// Overrides `PROBE_TIMEOUT_MS` for this target.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub targets: Vec<Target>,
    pub timeout: Duration,
}

fn bad(problem: impl Into<String>) -> SuiteError {
    SuiteError::Config {
        var: "PROBE_TARGETS".into(),
        problem: problem.into(),
    }
}

/// `PROBE_TARGETS` is JSON (`[{"name": "api", "url": "https://..."}]`) or the compact
/// `name=url[;kind=sse][;latency_ms=900][;timeout_ms=3000]`, comma-separated.
pub fn parse_targets(raw: &str) -> Result<Vec<Target>, SuiteError> {
    let raw = raw.trim();
    let targets: Vec<Target> = if raw.starts_with('[') {
        serde_json::from_str(raw).map_err(|e| bad(format!("not valid JSON targets: {e}")))?
    } else {
        let mut out = vec![];
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let mut parts = item.split(';');
            let head = parts.next().unwrap_or_default();
            let (name, url) = head
                .split_once('=')
                .ok_or_else(|| bad(format!("{item:?}: expected name=url")))?;
            let mut t = Target {
                name: name.trim().into(),
                url: url.trim().into(),
                kind: Kind::Http,
                latency_threshold_ms: None,
                timeout_ms: None,
            };
            for opt in parts {
                let (k, v) = opt
                    .split_once('=')
                    .ok_or_else(|| bad(format!("{item:?}: option {opt:?} is not key=value")))?;
                let num = || {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| bad(format!("{item:?}: {k}={v} is not a number of ms")))
                };
                match k.trim() {
                    "kind" if v.trim() == "sse" => t.kind = Kind::Sse,
                    "kind" if v.trim() == "http" => t.kind = Kind::Http,
                    "latency_ms" => t.latency_threshold_ms = Some(num()?),
                    "timeout_ms" => t.timeout_ms = Some(num()?),
                    _ => {
                        return Err(bad(format!(
                            "{item:?}: unknown option {opt:?} (kind=http|sse, latency_ms=N, timeout_ms=N)"
                        )))
                    }
                }
            }
            out.push(t);
        }
        out
    };
    if targets.is_empty() {
        return Err(bad(
            "names no target; set e.g. api=https://api.example.com/health",
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for t in &targets {
        if t.name.is_empty()
            || !t
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad(format!(
                "target name {:?} must be letters, digits, - or _ (it becomes a metric dimension)",
                t.name
            )));
        }
        if !names.insert(t.name.clone()) {
            return Err(bad(format!("target {:?} appears twice", t.name)));
        }
        if !(t.url.starts_with("http://") || t.url.starts_with("https://")) {
            return Err(bad(format!(
                "{}: {:?} is not an http(s) URL",
                t.name, t.url
            )));
        }
    }
    Ok(targets)
}

impl Settings {
    pub fn from_vars(vars: &Vars) -> Result<Self, SuiteError> {
        let targets = parse_targets(&vars.required(
            "PROBE_TARGETS",
            "the endpoints to probe, e.g. api=https://api.example.com/health",
        )?)?;
        let timeout_ms: u64 = vars.parse_or("PROBE_TIMEOUT_MS", 5000, "milliseconds")?;
        if timeout_ms == 0 || timeout_ms > 60_000 {
            return Err(SuiteError::Config {
                var: "PROBE_TIMEOUT_MS".into(),
                problem: format!("{timeout_ms} must be 1-60000 (the probe runs every minute)"),
            });
        }
        Ok(Settings {
            targets,
            timeout: Duration::from_millis(timeout_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_json_forms() {
        let t = parse_targets("api=https://a/health, quote=https://a/quote;latency_ms=900, sse=https://a/stream;kind=sse;timeout_ms=2000").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[1].latency_threshold_ms, Some(900));
        assert_eq!((t[2].kind, t[2].timeout_ms), (Kind::Sse, Some(2000)));
        let j =
            parse_targets(r#"[{"name": "api", "url": "http://x/h", "latency_threshold_ms": 900}]"#)
                .unwrap();
        assert_eq!(j[0].latency_threshold_ms, Some(900));
    }

    #[test]
    fn bad_targets_are_named() {
        for bad in [
            "",
            "api",
            "api=ftp://x",
            "a b=http://x",
            "api=http://x,api=http://y",
            "api=http://x;latency_ms=fast",
            "api=http://x;retries=3",
            "[{\"name\": \"api\"}]",
        ] {
            let e = Settings::from_vars(&Vars::from_pairs([("PROBE_TARGETS", bad)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("PROBE_TARGETS"), "{bad}: {e}");
        }
        let e = Settings::from_vars(&Vars::from_pairs([
            ("PROBE_TARGETS", "api=http://x"),
            ("PROBE_TIMEOUT_MS", "0"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("PROBE_TIMEOUT_MS"), "{e}");
    }
}
