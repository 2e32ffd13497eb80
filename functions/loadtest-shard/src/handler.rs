//! The Lambda adapter: a `ShardRequest` in, a `ShardResult` out, EMF metrics and logs.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use lambda_runtime::LambdaEvent;
use loadtest_core::{decode_histogram, Executor, ShardRequest, ShardResult};
use serde_json::Value;
use shared::config::{CommonConfig, Vars};
use shared::metrics::{Emf, Unit};
use shared::SuiteError;

use crate::config::Settings;
use crate::engine::{run_shard, RunReport};

pub struct Deps {
    pub common: CommonConfig,
    pub settings: Settings,
}

impl Deps {
    /// Reads the configuration once per cold start. The shard calls no AWS API.
    pub fn from_env() -> Result<Self, SuiteError> {
        let vars = Vars::from_process();
        let common = CommonConfig::from_vars(&vars, "loadtest-shard")?;
        shared::telemetry::init(&common);
        Ok(Deps {
            common,
            settings: Settings::from_vars(&vars)?,
        })
    }
}

const FIX: &str =
    "send a ShardRequest as in events/loadtest/shard-request.json (docs/loadtest-shard.md)";

/// Parses the payload; errors name the JSON path of the offending field.
pub fn parse_request(payload: &Value) -> Result<ShardRequest, SuiteError> {
    if !payload.is_object() {
        return Err(SuiteError::invalid("payload", "is not a JSON object", FIX));
    }
    serde_path_to_error::deserialize::<_, ShardRequest>(payload).map_err(|e| {
        let path = e.path().to_string();
        // The scenario's own parser recovers paths inside the (internally tagged) executor.
        if path.starts_with("scenario") {
            if let Some(sc) = payload.get("scenario") {
                if let Err(loadtest_core::ScenarioError::Field { field, message }) =
                    loadtest_core::parse_scenario(sc.to_string().as_bytes())
                {
                    return SuiteError::invalid(format!("scenario.{field}"), message, FIX);
                }
            }
        }
        let field = if path.is_empty() || path == "." {
            "payload".to_string()
        } else {
            path
        };
        SuiteError::invalid(field, e.inner().to_string(), FIX)
    })
}

/// When the invocation must have returned, from the context's deadline (epoch ms in Lambda,
/// the timeout itself under `cargo lambda watch`).
pub fn deadline_of(ctx_deadline_ms: u64) -> Instant {
    let left = shared::telemetry::time_left(ctx_deadline_ms, chrono::Utc::now().timestamp_millis());
    Instant::now() + left
}

fn p_ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
}

/// The EMF documents of one shard run (docs/loadtest-shard.md lists every name; a test holds
/// the code to it). Per-shard percentiles are for watching a shard, never for averaging: the
/// coordinator merges histograms.
pub fn metric_documents(
    common: &CommonConfig,
    scenario: &str,
    r: &ShardResult,
    dropped_at_cap: u64,
) -> Vec<Emf> {
    let mut e = Emf::new(common).dimension("scenario", scenario);
    e.metric("loadtest_shard_scheduled", r.scheduled as f64, Unit::Count)
        .metric("loadtest_shard_sent", r.sent as f64, Unit::Count)
        .metric("loadtest_shard_ok", r.ok as f64, Unit::Count)
        .metric(
            "loadtest_shard_errors",
            r.errors.total() as f64,
            Unit::Count,
        )
        .metric(
            "loadtest_shard_timeouts",
            r.errors.timeout as f64,
            Unit::Count,
        )
        .metric(
            "loadtest_shard_connect_errors",
            r.errors.connect as f64,
            Unit::Count,
        )
        .metric("loadtest_shard_dropped", r.dropped as f64, Unit::Count)
        .metric(
            "loadtest_shard_dropped_at_cap",
            dropped_at_cap as f64,
            Unit::Count,
        )
        .metric(
            "loadtest_shard_duration_seconds",
            r.finished_unix_ms.saturating_sub(r.started_unix_ms) as f64 / 1000.0,
            Unit::Seconds,
        )
        .metric(
            "loadtest_shard_bytes_received",
            r.bytes_received as f64,
            Unit::Bytes,
        )
        .metric(
            "loadtest_shard_stopped_early",
            if r.stopped_early.is_some() { 1.0 } else { 0.0 },
            Unit::Count,
        );
    if let Ok(h) = decode_histogram(&r.latency_us) {
        if let Some(v) = p_ms(&h, 0.95) {
            e.metric("loadtest_shard_latency_p95_ms", v, Unit::Milliseconds);
        }
    }
    if let Ok(h) = decode_histogram(&r.scheduler_lag_us) {
        if let Some(v) = p_ms(&h, 0.99) {
            e.metric("loadtest_shard_scheduler_lag_p99_ms", v, Unit::Milliseconds);
        }
    }
    if let Some(s) = &r.sse {
        e.metric(
            "loadtest_shard_sse_streams_opened",
            s.streams_opened as f64,
            Unit::Count,
        )
        .metric(
            "loadtest_shard_sse_streams_failed",
            s.streams_failed as f64,
            Unit::Count,
        )
        .metric(
            "loadtest_shard_sse_reconnects",
            s.reconnects as f64,
            Unit::Count,
        )
        .metric(
            "loadtest_shard_sse_events",
            s.events_received as f64,
            Unit::Count,
        );
        if let Ok(h) = decode_histogram(&s.handshake_us) {
            if let Some(v) = p_ms(&h, 0.95) {
                e.metric("loadtest_shard_sse_handshake_p95_ms", v, Unit::Milliseconds);
            }
        }
    }
    e.property("run_id", r.run_id.clone())
        .property("slice_index", r.slice_index)
        .property("shard_index", r.shard_index)
        .property("stopped_early", r.stopped_early.clone().unwrap_or_default());
    vec![e]
}

/// The handler `main` registers. The payload keeps its `traceparent`: it is part of the
/// request and goes on to the target.
pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, SuiteError> {
    shared::lambda::invoke_with(
        &deps.common,
        shared::lambda::TraceContext::Keep,
        event,
        |event| handle_inner(deps, event),
    )
    .await
}

async fn handle_inner(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, SuiteError> {
    let (payload, ctx) = event.into_parts();
    let req = parse_request(&payload)?;
    let deadline = deadline_of(ctx.deadline);
    let report = run(deps, req, deadline).await?;
    serde_json::to_value(&report.result).map_err(|e| SuiteError::Internal(e.to_string()))
}

/// Runs a parsed request and emits its logs and metrics (also used by tests).
pub async fn run(
    deps: &Deps,
    req: ShardRequest,
    deadline: Instant,
) -> Result<RunReport, SuiteError> {
    let scenario = req.scenario.name.clone();
    let mode = match req.scenario.executor {
        Executor::SseClients(_) => "sse",
        _ => "http",
    };
    tracing::info!(
        run_id = %req.run_id, scenario = %scenario, mode, slice_index = req.slice_index,
        shard_index = req.shard_index, shard_count = req.shard_count,
        window_from_ms = req.window.from_ms, window_to_ms = req.window.to_ms,
        t0_unix_ms = req.t0_unix_ms, target = %req.scenario.target.base_url,
        time_left_ms = deadline.saturating_duration_since(Instant::now()).as_millis() as u64,
        "shard starting"
    );
    let report = run_shard(req, deps.settings.clone(), deadline).await?;
    let r = &report.result;
    tracing::info!(
        run_id = %r.run_id, scenario = %scenario, slice_index = r.slice_index, shard_index = r.shard_index,
        scheduled = r.scheduled, sent = r.sent, ok = r.ok, errors = r.errors.total(),
        timeouts = r.errors.timeout, connect_errors = r.errors.connect, other_errors = r.errors.other,
        dropped = r.dropped, dropped_at_cap = report.dropped_at_cap, in_flight_cap = report.in_flight_cap,
        stopped_early = r.stopped_early.as_deref().unwrap_or(""),
        duration_ms = r.finished_unix_ms.saturating_sub(r.started_unix_ms),
        "shard finished"
    );
    for d in metric_documents(&deps.common, &scenario, r, report.dropped_at_cap) {
        d.emit();
    }
    Ok(report)
}

/// Leaves room for the response to travel: a deadline this close is treated as over.
pub const MIN_TIME_LEFT: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn common() -> CommonConfig {
        CommonConfig::from_vars(
            &Vars::from_pairs([("ENVIRONMENT", "prod"), ("REPORT_BUCKET", "r")]),
            "loadtest-shard",
        )
        .unwrap()
    }

    fn sample(name: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../events/loadtest")
            .join(name);
        serde_json::from_slice(
            &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap()
    }

    #[test]
    fn bad_payloads_name_the_field() {
        let mut v = sample("shard-request.json");
        assert!(parse_request(&v).is_ok());
        v["shard_count"] = json!("three");
        let e = parse_request(&v).unwrap_err().to_string();
        assert!(e.contains("shard_count"), "{e}");
        let mut v = sample("shard-request.json");
        v["scenario"]["executor"]["rate"] = json!("fast");
        let e = parse_request(&v).unwrap_err().to_string();
        assert!(e.contains("scenario.executor.rate"), "{e}");
        let mut v = sample("shard-request.json");
        v.as_object_mut().unwrap().remove("t0_unix_ms");
        let e = parse_request(&v).unwrap_err().to_string();
        assert!(e.contains("t0_unix_ms"), "{e}");
        let e = parse_request(&json!([1, 2])).unwrap_err().to_string();
        assert!(e.contains("payload"), "{e}");
    }

    /// Every sample in events/loadtest/ parses: scenarios as scenarios, the shard request as
    /// a request, and the demo variants point at 127.0.0.1.
    #[test]
    fn samples_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/loadtest");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("events/loadtest") {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.ends_with(".json") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            if name == "shard-request.json" {
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                let r = parse_request(&v).unwrap();
                crate::engine::validate(
                    &r,
                    &Settings {
                        allowed_hosts: vec!["127.0.0.1".into()],
                        ..Default::default()
                    },
                )
                .unwrap();
            } else {
                let s =
                    loadtest_core::parse_scenario(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
                if name.ends_with("-demo.json") {
                    assert_eq!(s.target_host().as_deref(), Some("127.0.0.1"), "{name}");
                    assert!(s.duration() <= Duration::from_secs(30), "{name}");
                }
            }
            n += 1;
        }
        assert_eq!(
            n, 9,
            "three scenarios, three demo variants, the release-gate and A/B demos, one shard request"
        );
    }

    /// The metric names are a contract: every one emitted is documented with its unit in
    /// docs/loadtest-shard.md.
    #[test]
    fn emitted_metrics_are_documented() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/loadtest-shard.md"),
        )
        .expect("docs/loadtest-shard.md");
        let mut h = loadtest_core::new_histogram();
        h.saturating_record(1500);
        let enc = loadtest_core::encode_histogram(&h).unwrap();
        let r = ShardResult {
            run_id: "r".into(),
            scheduled: 10,
            sent: 9,
            ok: 8,
            dropped: 1,
            latency_us: enc.clone(),
            latency_uncorrected_us: enc.clone(),
            scheduler_lag_us: enc.clone(),
            stopped_early: Some("deadline".into()),
            sse: Some(loadtest_core::SseResult {
                clients: 1,
                handshake_us: enc.clone(),
                reconnect_us: enc,
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = common();
        let docs = metric_documents(&c, "quote-generation", &r, 1);
        let seen = shared::metrics::assert_documented(&doc, "docs/loadtest-shard.md", &docs);
        assert!(seen.occurrences >= 18, "{seen:?}");
    }
}
