//! The Lambda adapter: by default probe every configured target concurrently, one EMF
//! document per target, one log line per probe, the results as the response; with
//! `{"kind": "error_budget"}` compute the SLOs' error budgets (`run::error_budget`).

use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::aws::{AwsClients, AwsSettings};
use shared::config::{CommonConfig, Vars};
use shared::metrics::{Emf, Unit};
use shared::SuiteError;

use crate::budget::{resolve, SloSet, SLO_FILE};
use crate::config::{Settings, Target};
use crate::port::{CloudWatchReader, MetricReader};
use crate::probe::{client, probe, ProbeResult};
use crate::run::error_budget;

pub struct Deps<M = CloudWatchReader> {
    pub common: CommonConfig,
    pub settings: Settings,
    pub http: reqwest::Client,
    /// The compiled-in SLO file for this environment (the `error_budget` kind).
    pub slos: SloSet,
    /// CloudWatch reads for the `error_budget` kind.
    pub metrics: M,
}

impl Deps<CloudWatchReader> {
    /// Configuration, the SLO file and the clients: once per cold start.
    pub async fn from_env() -> Result<Self, SuiteError> {
        let vars = Vars::from_process();
        let common = CommonConfig::from_vars(&vars, "uptime-probe")?;
        shared::telemetry::init(&common);
        let settings = Settings::from_vars(&vars)?;
        let slos = load_slos(&common)?;
        let clients = AwsClients::load(AwsSettings::from_vars(&vars)?).await;
        Ok(Deps {
            common,
            settings,
            http: client(),
            slos,
            metrics: CloudWatchReader::new(&clients),
        })
    }
}

/// The compiled-in SLO file resolved for `ENVIRONMENT`. The SLI metrics are read from
/// `METRICS_NAMESPACE` (where this function emits them); a file namespace that differs is
/// logged, not fatal.
pub fn load_slos(common: &CommonConfig) -> Result<SloSet, SuiteError> {
    let slos =
        resolve(SLO_FILE, &common.environment).map_err(|e| SuiteError::Internal(e.to_string()))?;
    if slos.namespace != common.metrics_namespace {
        tracing::warn!(
            file_namespace = %slos.namespace,
            metrics_namespace = %common.metrics_namespace,
            "the SLO file's namespace differs from METRICS_NAMESPACE; the error budget reads METRICS_NAMESPACE, where the probes' metrics are"
        );
    }
    Ok(slos)
}

/// What an invocation does.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InvocationKind {
    /// Probe the targets (the default).
    #[default]
    Probe,
    /// Compute the SLOs' error budgets and emit `error_budget_remaining_percent`.
    ErrorBudget,
}

/// The manual payload; the schedule's payload (`{"source": "schedule"}`) and EventBridge
/// "Scheduled Event"s probe everything; `{"kind": "error_budget"}` computes the budgets.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// `probe` (default) or `error_budget`.
    #[serde(default)]
    pub kind: InvocationKind,
    pub source: Option<String>,
    pub scheduled_time: Option<String>,
    /// Probe only these targets (by name); `kind` `probe` only.
    pub targets: Option<Vec<String>>,
}

pub fn parse_event(v: &Value) -> Result<Request, SuiteError> {
    if v.is_null() || v.get("detail-type").is_some() {
        return Ok(Request::default());
    }
    let req: Request = serde_json::from_value(v.clone()).map_err(|e| {
        SuiteError::invalid(
            "payload",
            e.to_string(),
            "send {\"source\": \"schedule\"}, {}, {\"targets\": [\"api\"]} or {\"kind\": \"error_budget\"}",
        )
    })?;
    if req.kind == InvocationKind::ErrorBudget && req.targets.is_some() {
        return Err(SuiteError::invalid(
            "targets",
            "applies to probes only, not to kind error_budget",
            "drop targets (the budget covers every SLO) or kind",
        ));
    }
    Ok(req)
}

pub fn select<'a>(all: &'a [Target], req: &Request) -> Result<Vec<&'a Target>, SuiteError> {
    match &req.targets {
        None => Ok(all.iter().collect()),
        Some(names) => names
            .iter()
            .map(|n| {
                all.iter().find(|t| &t.name == n).ok_or_else(|| {
                    SuiteError::invalid(
                        "targets",
                        format!("{n:?} is not a configured target"),
                        format!(
                            "use one of {}",
                            all.iter()
                                .map(|t| t.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })
            })
            .collect(),
    }
}

/// One EMF document per probe (dimension `target`). Names are documented in
/// docs/uptime-probe.md; infra/slo/slos.json builds the SLO alarms on them.
pub fn metric_documents(common: &CommonConfig, results: &[ProbeResult]) -> Vec<Emf> {
    results
        .iter()
        .map(|r| {
            let mut e = Emf::new(common).dimension("target", &r.target);
            e.metric("probe_requests", 1.0, Unit::Count)
                .metric("probe_errors", if r.ok { 0.0 } else { 1.0 }, Unit::Count)
                .metric(
                    "api_availability",
                    if r.ok { 100.0 } else { 0.0 },
                    Unit::Percent,
                )
                .metric("probe_latency_ms", r.latency_ms, Unit::Milliseconds)
                .property("url", r.url.clone())
                .property("status", json!(r.status))
                .property("failure", json!(r.failure));
            if let Some(slow) = r.slow {
                e.metric(
                    "probe_slow_requests",
                    if slow { 1.0 } else { 0.0 },
                    Unit::Count,
                );
            }
            e
        })
        .collect()
}

pub async fn probe_all<M>(deps: &Deps<M>, targets: &[&Target]) -> Vec<ProbeResult> {
    futures::future::join_all(
        targets
            .iter()
            .map(|t| probe(&deps.http, t, deps.settings.timeout)),
    )
    .await
}

pub async fn handle<M: MetricReader>(
    deps: &Deps<M>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    shared::lambda::invoke(&deps.common, event, |event| handle_inner(deps, event)).await
}

async fn handle_inner<M: MetricReader>(
    deps: &Deps<M>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    let req = parse_event(&event.payload)?;
    if req.kind == InvocationKind::ErrorBudget {
        return error_budget_now(deps).await;
    }
    let targets = select(&deps.settings.targets, &req)?;
    let results = probe_all(deps, &targets).await;
    for r in &results {
        if r.ok {
            tracing::info!(target_name = %r.target, url = %r.url, status = r.status, latency_ms = r.latency_ms, slow = r.slow, "probe ok");
        } else {
            tracing::warn!(target_name = %r.target, url = %r.url, status = r.status, latency_ms = r.latency_ms, failure = ?r.failure, error = r.error.as_deref().unwrap_or(""), "probe failed");
        }
    }
    for d in metric_documents(&deps.common, &results) {
        d.emit();
    }
    Ok(summary(&results))
}

/// The `error_budget` kind: window end = now.
pub async fn error_budget_now<M: MetricReader>(deps: &Deps<M>) -> Result<Value, SuiteError> {
    let report = error_budget::run(
        &deps.metrics,
        &deps.slos,
        &deps.common.metrics_namespace,
        chrono::Utc::now(),
    )
    .await?;
    for b in &report.slos {
        match b.remaining_percent {
            Some(pct) => {
                tracing::info!(slo = %b.name, remaining_percent = pct, errors = b.errors, total = b.total, "error budget")
            }
            None => {
                tracing::warn!(slo = %b.name, errors = b.errors, total = b.total, unknown = ?b.unknown, "error budget unknown")
            }
        }
    }
    for d in error_budget::metric_documents(&deps.common, &report) {
        d.emit();
    }
    Ok(error_budget::response(&report))
}

/// The response. A failing endpoint is data, not a function error: the invocation succeeds.
pub fn summary(results: &[ProbeResult]) -> Value {
    let ok = results.iter().filter(|r| r.ok).count();
    let pct = if results.is_empty() {
        100.0
    } else {
        100.0 * ok as f64 / results.len() as f64
    };
    json!({
        "status": if ok == results.len() { "UP" } else if ok == 0 { "DOWN" } else { "DEGRADED" },
        "availability_percent": pct,
        "results": results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::FailureClass;

    fn common() -> CommonConfig {
        CommonConfig::from_vars(
            &Vars::from_pairs([("ENVIRONMENT", "prod"), ("REPORT_BUCKET", "r")]),
            "uptime-probe",
        )
        .unwrap()
    }

    fn result(ok: bool, slow: Option<bool>) -> ProbeResult {
        ProbeResult {
            target: "api".into(),
            url: "https://x/h".into(),
            ok,
            status: Some(if ok { 200 } else { 500 }),
            latency_ms: 12.5,
            failure: (!ok).then_some(FailureClass::Status),
            error: None,
            slow,
        }
    }

    #[test]
    fn emitted_metrics_are_documented() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/uptime-probe.md"),
        )
        .expect("docs/uptime-probe.md");
        let c = common();
        let docs = metric_documents(&c, &[result(true, Some(false)), result(false, None)]);
        let seen = shared::metrics::assert_documented(&doc, "docs/uptime-probe.md", &docs);
        assert!(seen.contains("api_availability") && seen.contains("probe_slow_requests"));
        let slos = load_slos(&c).unwrap();
        let budgets = crate::run::error_budget::Report {
            namespace: c.metrics_namespace.clone(),
            period_days: slos.period_days,
            window: crate::run::error_budget::window(chrono::Utc::now(), slos.period_days),
            slos: slos
                .slos
                .iter()
                .map(|s| crate::budget::evaluate(s, Some(1.0), Some(100.0)))
                .collect(),
        };
        let docs = crate::run::error_budget::metric_documents(&c, &budgets);
        assert_eq!(docs.len(), 3);
        let seen = shared::metrics::assert_documented(&doc, "docs/uptime-probe.md", &docs);
        assert!(seen.contains("error_budget_remaining_percent"));
    }

    #[test]
    fn availability_metric_and_summary() {
        let c = common();
        let d = metric_documents(&c, &[result(false, Some(true))]);
        let v = d[0].to_json(0);
        assert_eq!(v["api_availability"], 0.0);
        assert_eq!(v["probe_errors"], 1.0);
        assert_eq!(v["probe_slow_requests"], 1.0);
        assert_eq!(v["target"], "api");
        let s = summary(&[result(true, None), result(false, None)]);
        assert_eq!(s["status"], "DEGRADED");
        assert_eq!(s["availability_percent"], 50.0);
    }

    #[test]
    fn payloads_and_samples_parse() {
        let all = crate::config::parse_targets("api=http://a,sse=http://b;kind=sse").unwrap();
        let r = parse_event(&json!({"targets": ["sse"]})).unwrap();
        assert_eq!(select(&all, &r).unwrap().len(), 1);
        let e = select(&all, &parse_event(&json!({"targets": ["web"]})).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("targets") && e.contains("api, sse"), "{e}");
        let e = parse_event(&json!({"target": "api"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `target`"), "{e}");
        assert_eq!(parse_event(&json!({})).unwrap().kind, InvocationKind::Probe);
        assert_eq!(
            parse_event(&json!({"kind": "error_budget"})).unwrap().kind,
            InvocationKind::ErrorBudget
        );
        assert_eq!(
            parse_event(&json!({"kind": "probe", "targets": ["api"]}))
                .unwrap()
                .targets,
            Some(vec!["api".to_string()])
        );
        let e = parse_event(&json!({"kind": "budget"}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown variant `budget`") && e.contains("error_budget"),
            "{e}"
        );
        let e = parse_event(&json!({"kind": "error_budget", "targets": ["api"]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `targets`"), "{e}");
        let e = parse_event(&json!({"kind": "error_budget", "slo": "x"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `slo`"), "{e}");
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/uptime-probe");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("events dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("json");
            parse_event(&v).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
        assert!(n >= 5, "found {n}");
        let v: Value =
            serde_json::from_slice(&std::fs::read(dir.join("error-budget.json")).unwrap()).unwrap();
        assert_eq!(parse_event(&v).unwrap().kind, InvocationKind::ErrorBudget);
    }
}
