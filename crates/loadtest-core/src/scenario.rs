//! Scenario files (`events/loadtest/*.json`): k6's open-model executors, the request, and the
//! thresholds in k6's syntax (kept as written; the coordinator parses and judges them).
//!
//! ```json
//! { "name": "quote-generation",
//!   "target": { "base_url": "https://staging.example.com" },
//!   "executor": { "type": "constant-arrival-rate", "rate": 60, "time_unit": "1m",
//!                 "duration": "20m", "max_in_flight": 50 },
//!   "request": { "method": "POST", "path": "/api/v1/quotes/generate",
//!                "headers": { "content-type": "application/json" },
//!                "body": { "json": { "items": 12 } } },
//!   "timeout": "30s",
//!   "thresholds": { "http_req_duration": ["p(95)<900"],
//!                   "http_req_failed": [{ "threshold": "rate<0.005", "abortOnFail": true }] } }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScenarioError {
    /// `field` is the JSON path of the offending value (e.g. `executor.time_unit`).
    #[error("scenario field `{field}`: {message}")]
    Field { field: String, message: String },
}

fn field_err(field: &str, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Field {
        field: field.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub target: Target,
    pub executor: Executor,
    pub request: RequestSpec,
    /// Per-request timeout, k6 duration syntax; default 60s.
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// k6 thresholds: metric name → list of expressions (a string, or
    /// `{ "threshold": "...", "abortOnFail": true }`). Judged by the coordinator.
    #[serde(default)]
    pub thresholds: BTreeMap<String, Vec<serde_json::Value>>,
    /// Compare this run's throughput with the stored baseline (fail below `min_ratio` of it).
    #[serde(default)]
    pub baseline: Option<BaselineSpec>,
    /// Free-form tags copied into the summary and the metrics' labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn default_timeout() -> String {
    "60s".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `http(s)://host[:port]`; the shard refuses hosts outside its allowlist.
    pub base_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSpec {
    /// Fail when throughput < min_ratio × baseline throughput (1.0 = "≥ the baseline").
    #[serde(default = "one")]
    pub min_ratio: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Executor {
    /// k6 `constant-arrival-rate`: `rate` iterations per `time_unit` for `duration`.
    ConstantArrivalRate(ConstantArrivalRate),
    /// k6 `ramping-arrival-rate`: linear ramps between stage targets.
    RampingArrivalRate(RampingArrivalRate),
    /// Long-lived Server-Sent Events streams: `clients` concurrent streams held for
    /// `duration`, reconnecting when the server drops them.
    SseClients(SseClients),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstantArrivalRate {
    pub rate: f64,
    #[serde(default = "default_time_unit")]
    pub time_unit: String,
    pub duration: String,
    /// Cap on requests in flight across all shards (k6's maxVUs); beyond it a due request is
    /// counted as dropped, never silently skipped.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RampingArrivalRate {
    #[serde(default)]
    pub start_rate: f64,
    #[serde(default = "default_time_unit")]
    pub time_unit: String,
    pub stages: Vec<Stage>,
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SseClients {
    pub clients: u32,
    pub duration: String,
    /// Open the streams spread over this ramp (avoids a thundering herd); default 10s.
    #[serde(default)]
    pub ramp_up: Option<String>,
}

impl Executor {
    /// The in-flight cap across all shards (SSE: the client count).
    pub fn max_in_flight(&self) -> u32 {
        match self {
            Executor::ConstantArrivalRate(e) => e.max_in_flight,
            Executor::RampingArrivalRate(e) => e.max_in_flight,
            Executor::SseClients(e) => e.clients,
        }
    }
}

fn default_time_unit() -> String {
    "1s".to_string()
}

fn default_max_in_flight() -> u32 {
    100
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub target: f64,
    pub duration: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    #[serde(default = "default_method")]
    pub method: String,
    /// Path and query, appended to `target.base_url`.
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<BodySpec>,
}

fn default_method() -> String {
    "GET".to_string()
}

/// The request body. `{{i}}` in `text`/`json` string values is replaced by the request's
/// global index (unique per run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BodySpec {
    Text(String),
    Json(serde_json::Value),
    /// A file next to the scenario file; the coordinator inlines it (as `text`) before it
    /// sends the scenario to the shards, so shards never read files.
    File(String),
    /// `records` generated CSV rows under `header`, deterministic per request index.
    CsvRecords {
        records: u32,
        header: Vec<String>,
    },
}

/// Parses and validates a scenario; errors name the JSON path of the field.
pub fn parse_scenario(bytes: &[u8]) -> Result<Scenario, ScenarioError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let s: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "executor" {
            if let Some(inner) = diagnose_executor(bytes) {
                return inner;
            }
        }
        field_err(
            if path.is_empty() { "." } else { &path },
            e.inner().to_string(),
        )
    })?;
    s.validate()?;
    Ok(s)
}

/// Internally tagged enums buffer their content, which hides the inner path from
/// serde_path_to_error; deserializing the chosen variant's struct again recovers it.
fn diagnose_executor(bytes: &[u8]) -> Option<ScenarioError> {
    fn inner<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Option<ScenarioError> {
        let mut v = v.clone();
        v.as_object_mut()?.remove("type");
        let text = v.to_string();
        let de = &mut serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize::<_, T>(de)
            .err()
            .map(|e| field_err(&format!("executor.{}", e.path()), e.inner().to_string()))
    }
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let ex = doc.get("executor")?;
    match ex.get("type").and_then(|t| t.as_str()) {
        Some("constant-arrival-rate") => inner::<ConstantArrivalRate>(ex),
        Some("ramping-arrival-rate") => inner::<RampingArrivalRate>(ex),
        Some("sse-clients") => inner::<SseClients>(ex),
        Some(other) => Some(field_err(
            "executor.type",
            format!("unknown executor {other:?}; use constant-arrival-rate, ramping-arrival-rate or sse-clients"),
        )),
        None => Some(field_err(
            "executor.type",
            "missing; use constant-arrival-rate, ramping-arrival-rate or sse-clients",
        )),
    }
}

impl Scenario {
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.name.trim().is_empty() {
            return Err(field_err("name", "must not be empty"));
        }
        let url = self.target.base_url.as_str();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(field_err(
                "target.base_url",
                "must start with http:// or https://",
            ));
        }
        if host_of(url).is_none() {
            return Err(field_err("target.base_url", "has no host"));
        }
        if !self.request.path.starts_with('/') {
            return Err(field_err("request.path", "must start with '/'"));
        }
        parse_duration(&self.timeout).map_err(|m| field_err("timeout", m))?;
        match &self.executor {
            Executor::ConstantArrivalRate(ConstantArrivalRate {
                rate,
                time_unit,
                duration,
                max_in_flight,
            }) => {
                positive(*rate, "executor.rate")?;
                parse_duration(time_unit).map_err(|m| field_err("executor.time_unit", m))?;
                parse_duration(duration).map_err(|m| field_err("executor.duration", m))?;
                if *max_in_flight == 0 {
                    return Err(field_err("executor.max_in_flight", "must be at least 1"));
                }
            }
            Executor::RampingArrivalRate(RampingArrivalRate {
                start_rate,
                time_unit,
                stages,
                max_in_flight,
            }) => {
                if !(start_rate.is_finite() && *start_rate >= 0.0) {
                    return Err(field_err("executor.start_rate", "must be a number ≥ 0"));
                }
                parse_duration(time_unit).map_err(|m| field_err("executor.time_unit", m))?;
                if stages.is_empty() {
                    return Err(field_err("executor.stages", "needs at least one stage"));
                }
                for (i, st) in stages.iter().enumerate() {
                    if !(st.target.is_finite() && st.target >= 0.0) {
                        return Err(field_err(
                            &format!("executor.stages[{i}].target"),
                            "must be a number ≥ 0",
                        ));
                    }
                    parse_duration(&st.duration)
                        .map_err(|m| field_err(&format!("executor.stages[{i}].duration"), m))?;
                }
                if *max_in_flight == 0 {
                    return Err(field_err("executor.max_in_flight", "must be at least 1"));
                }
            }
            Executor::SseClients(SseClients {
                clients,
                duration,
                ramp_up,
            }) => {
                if *clients == 0 {
                    return Err(field_err("executor.clients", "must be at least 1"));
                }
                parse_duration(duration).map_err(|m| field_err("executor.duration", m))?;
                if let Some(r) = ramp_up {
                    parse_duration(r).map_err(|m| field_err("executor.ramp_up", m))?;
                }
            }
        }
        Ok(())
    }

    /// Total scheduled length of the scenario.
    pub fn duration(&self) -> Duration {
        match &self.executor {
            Executor::ConstantArrivalRate(ConstantArrivalRate { duration, .. })
            | Executor::SseClients(SseClients { duration, .. }) => {
                parse_duration(duration).unwrap_or_default()
            }
            Executor::RampingArrivalRate(RampingArrivalRate { stages, .. }) => stages
                .iter()
                .map(|s| parse_duration(&s.duration).unwrap_or_default())
                .sum(),
        }
    }

    /// Per-request timeout.
    pub fn request_timeout(&self) -> Duration {
        parse_duration(&self.timeout).unwrap_or(Duration::from_secs(60))
    }

    /// The target's host (for the allowlist).
    pub fn target_host(&self) -> Option<String> {
        host_of(&self.target.base_url)
    }
}

fn positive(v: f64, field: &str) -> Result<(), ScenarioError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(field_err(field, "must be a number > 0"))
    }
}

/// The host part of an http(s) URL, lower-cased, without port or userinfo.
pub fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    if host.is_empty() {
        None
    } else {
        Some(host.to_ascii_lowercase())
    }
}

/// k6 duration syntax: `90s`, `1m30s`, `20m`, `1h`, `250ms`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. \"30s\", \"15m\" or \"1h30m\"".into());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return if secs.is_finite() && secs >= 0.0 {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(format!("invalid duration {s:?}"))
        };
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                0.001
            }
            ('u' | 'µ', Some('s')) => {
                chars.next();
                0.000_001
            }
            ('h', _) => 3600.0,
            ('m', _) => 60.0,
            ('s', _) => 1.0,
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit at {c:?}; use h, m, s, ms"
                ))
            }
        };
        let n: f64 = num
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: a number must precede each unit"))?;
        total += n * unit;
        num.clear();
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(format!(
            "invalid duration {s:?}: a unit must follow each number (h, m, s, ms)"
        ));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote() -> serde_json::Value {
        serde_json::json!({
            "name": "quote-generation",
            "target": { "base_url": "http://127.0.0.1:8080" },
            "executor": { "type": "constant-arrival-rate", "rate": 60, "time_unit": "1m", "duration": "20m", "max_in_flight": 50 },
            "request": { "method": "POST", "path": "/api/v1/quotes/generate", "body": { "json": { "items": 3 } } },
            "thresholds": { "http_req_duration": ["p(95)<900"] }
        })
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert!(parse_duration("15x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("10m5").is_err());
    }

    #[test]
    fn parses_and_names_bad_fields() {
        let s = parse_scenario(quote().to_string().as_bytes()).unwrap();
        assert_eq!(s.duration(), Duration::from_secs(1200));
        assert_eq!(s.target_host().as_deref(), Some("127.0.0.1"));

        let mut bad = quote();
        bad["executor"]["time_unit"] = "1 fortnight".into();
        let e = parse_scenario(bad.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("executor.time_unit"), "{e}");

        let mut bad = quote();
        bad["executor"]["rate"] = "fast".into();
        let e = parse_scenario(bad.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("executor.rate"), "{e}");

        let mut bad = quote();
        bad["target"]["base_url"] = "ftp://x".into();
        let e = parse_scenario(bad.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("target.base_url"), "{e}");
    }

    #[test]
    fn hosts() {
        assert_eq!(
            host_of("https://User@API.example.com:8443/x").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(host_of("http://[::1]:80/").as_deref(), Some("::1"));
        assert_eq!(host_of("http:///x"), None);
    }
}
