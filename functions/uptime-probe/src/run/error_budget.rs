//! The `error_budget` use case: for each SLO of the compiled-in SLO file, sum its errors and
//! total metrics over the last `period_days`, compute the remaining budget, emit
//! `error_budget_remaining_percent` (namespace `<METRICS_NAMESPACE>/SLO`, dimension `slo`)
//! and answer the list. An SLO without data is reported unknown and emits nothing.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use shared::config::CommonConfig;
use shared::metrics::{Emf, Unit};
use shared::SuiteResult;

use crate::budget::{evaluate, Budget, MetricSpec, SloSet};
use crate::port::MetricReader;

/// The window the budget is counted over: `[end − period_days, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

pub fn window(now: DateTime<Utc>, period_days: u32) -> Window {
    // Whole seconds: what CloudWatch takes.
    let end = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    Window {
        start: end - Duration::days(i64::from(period_days)),
        end,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Where the SLI metrics were read.
    pub namespace: String,
    pub period_days: u32,
    pub window: Window,
    pub slos: Vec<Budget>,
}

/// Reads both sums of every SLO in one batch of GetMetricData queries and judges each SLO.
pub async fn run<M: MetricReader>(
    reader: &M,
    slos: &SloSet,
    namespace: &str,
    now: DateTime<Utc>,
) -> SuiteResult<Report> {
    let w = window(now, slos.period_days);
    let metrics: Vec<MetricSpec> = slos
        .slos
        .iter()
        .flat_map(|s| [s.errors.clone(), s.total.clone()])
        .collect();
    let sums = reader.sums(namespace, &metrics, w.start, w.end).await?;
    let sum = |i: usize| sums.get(i).copied().flatten();
    let budgets = slos
        .slos
        .iter()
        .enumerate()
        .map(|(i, s)| evaluate(s, sum(2 * i), sum(2 * i + 1)))
        .collect();
    Ok(Report {
        namespace: namespace.to_string(),
        period_days: slos.period_days,
        window: w,
        slos: budgets,
    })
}

/// `<METRICS_NAMESPACE>/SLO`, where chaos-runner's gate and the dashboards read the budget.
pub fn slo_namespace(common: &CommonConfig) -> String {
    format!("{}/SLO", common.metrics_namespace)
}

/// One EMF document per SLO whose budget is known (dimensions `function`, `environment`,
/// `slo`); an unknown budget emits nothing, so the gate sees "no datapoint", never 100.
pub fn metric_documents(common: &CommonConfig, report: &Report) -> Vec<Emf> {
    report
        .slos
        .iter()
        .filter_map(|b| {
            let remaining = b.remaining_percent?;
            let mut e = Emf::new(common)
                .namespace(slo_namespace(common))
                .dimension("slo", &b.name);
            e.metric("error_budget_remaining_percent", remaining, Unit::Percent)
                .property("objective_percent", b.objective_percent)
                .property("errors", json!(b.errors))
                .property("total", json!(b.total))
                .property("error_ratio", json!(b.error_ratio))
                .property("period_days", report.period_days);
            Some(e)
        })
        .collect()
}

/// The response: every SLO with its sums and remaining budget (`null` when unknown).
pub fn response(report: &Report) -> Value {
    json!({
        "kind": "error_budget",
        "namespace": report.namespace,
        "period_days": report.period_days,
        "window": report.window,
        "slos": report.slos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{resolve, SLO_FILE};
    use shared::config::Vars;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// One call: namespace, number of metrics, window.
    type Asked = (String, usize, DateTime<Utc>, DateTime<Utc>);

    /// Sums by metric name and `target` dimension; records what it was asked.
    struct Fake {
        sums: HashMap<(String, String), f64>,
        asked: Mutex<Vec<Asked>>,
    }

    impl MetricReader for Fake {
        async fn sums(
            &self,
            namespace: &str,
            metrics: &[MetricSpec],
            start: DateTime<Utc>,
            end: DateTime<Utc>,
        ) -> SuiteResult<Vec<Option<f64>>> {
            self.asked
                .lock()
                .unwrap()
                .push((namespace.into(), metrics.len(), start, end));
            Ok(metrics
                .iter()
                .map(|m| {
                    let target = m
                        .dimensions
                        .iter()
                        .find(|(k, _)| k == "target")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    self.sums.get(&(m.name.clone(), target)).copied()
                })
                .collect())
        }
    }

    fn common() -> CommonConfig {
        CommonConfig::from_vars(
            &Vars::from_pairs([
                ("ENVIRONMENT", "prod"),
                ("REPORT_BUCKET", "r"),
                ("AWS_LAMBDA_FUNCTION_NAME", "uptime-probe-prod"),
            ]),
            "uptime-probe",
        )
        .unwrap()
    }

    fn fake() -> Fake {
        let s = |n: &str, t: &str, v: f64| ((n.to_string(), t.to_string()), v);
        Fake {
            sums: [
                s("probe_requests", "api", 1000.0),
                s("probe_errors", "api", 2.0),
                s("probe_requests", "quote", 200.0),
                s("probe_slow_requests", "quote", 20.0),
            ]
            .into_iter()
            .collect(),
            asked: Mutex::new(vec![]),
        }
    }

    #[tokio::test]
    async fn budgets_documents_and_response() {
        let c = common();
        let set = resolve(SLO_FILE, &c.environment).unwrap();
        let f = fake();
        let now = DateTime::parse_from_rfc3339("2026-12-02T10:15:30.75Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = run(&f, &set, &c.metrics_namespace, now).await.unwrap();
        {
            let asked = f.asked.lock().unwrap();
            assert_eq!(asked.len(), 1, "one batch");
            let (ns, n, start, end) = &asked[0];
            assert_eq!((ns.as_str(), *n), ("PlatformPlaybook", 6));
            assert_eq!(end.to_rfc3339(), "2026-12-02T10:15:30+00:00");
            assert_eq!(*end - *start, Duration::days(30));
        }
        let get = |n: &str| r.slos.iter().find(|b| b.name == n).unwrap();
        assert!((get("api-availability").remaining_percent.unwrap() - 60.0).abs() < 1e-9);
        // 10 % slow against a 5 % budget: overspent by one budget.
        assert!((get("quote-latency").remaining_percent.unwrap() + 100.0).abs() < 1e-9);
        assert_eq!(get("sse-uptime").remaining_percent, None);

        let docs = metric_documents(&c, &r);
        assert_eq!(docs.len(), 2, "sse-uptime has no data: no document");
        let v = docs[0].to_json(0);
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "PlatformPlaybook/SLO");
        assert_eq!(
            cw["Dimensions"],
            json!([["function", "environment", "slo"]])
        );
        assert_eq!(
            cw["Metrics"],
            json!([{"Name": "error_budget_remaining_percent", "Unit": "Percent"}])
        );
        assert!((v["error_ratio"].as_f64().unwrap() - 0.002).abs() < 1e-12);
        assert_eq!(
            (v["errors"].as_f64(), v["total"].as_f64()),
            (Some(2.0), Some(1000.0))
        );
        assert_eq!(v["slo"], "api-availability");
        assert_eq!(v["function"], "uptime-probe-prod");
        assert_eq!(v["environment"], "prod");
        assert!((v["error_budget_remaining_percent"].as_f64().unwrap() - 60.0).abs() < 1e-9);

        let resp = response(&r);
        assert_eq!(resp["slos"].as_array().unwrap().len(), 3);
        let sse = &resp["slos"][2];
        assert_eq!(sse["name"], "sse-uptime");
        assert!(sse["remaining_percent"].is_null() && sse["total"].is_null());
        assert_eq!(sse["unknown"], "no_data");
        assert_eq!(resp["slos"][0]["errors"], 2.0);
        assert_eq!(resp["slos"][0]["total"], 1000.0);
    }

    #[test]
    fn namespace_follows_metrics_namespace() {
        let mut c = common();
        assert_eq!(slo_namespace(&c), "PlatformPlaybook/SLO");
        c.metrics_namespace = "Other".into();
        assert_eq!(slo_namespace(&c), "Other/SLO");
    }
}
