//! The `error_budget` use case against moto's CloudWatch: SLI datapoints put with
//! PutMetricData under the exact dimensions the SLO file names, read back through the real
//! adapter (GetMetricData, Sum, period 86400), the remaining budget per SLO, and an SLO with
//! no data reported unknown with no metric. Also the handler with `{"kind": "error_budget"}`.
//!
//! Checked first: moto 5.2.5's GetMetricData answers `Sum` per period for datapoints put with
//! PutMetricData, matches the dimension set exactly, and never returns a NextToken. Two moto
//! quirks (AWS behaves correctly on both): it does not check the namespace when dimensions are
//! given, so no decoy here relies on the namespace; and its `Dimension.__lt__` is broken, so
//! the dimension sets only match when both sides list the dimensions in the same order:
//! the datapoints are put in name order, the order the adapter sends (the SLO file's map).

use aws_sdk_cloudwatch::primitives::DateTime as AwsDateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use chrono::{Duration, Utc};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use shared::config::{CommonConfig, Vars};
use uptime_probe::config::Settings;
use uptime_probe::handler::{handle, load_slos, Deps};
use uptime_probe::port::CloudWatchReader;
use uptime_probe::probe::client;
use uptime_probe::run::error_budget;

fn common() -> CommonConfig {
    CommonConfig::from_vars(
        &Vars::from_pairs([
            ("ENVIRONMENT", "local"),
            ("REPORT_BUCKET", "r"),
            ("AWS_LAMBDA_FUNCTION_NAME", "uptime-probe-local"),
        ]),
        "uptime-probe",
    )
    .unwrap()
}

/// The SLI dimensions the probes emit, in name order (see the module comment on moto).
fn dims(env: &str, target: &str) -> Vec<Dimension> {
    [
        ("environment", env.to_string()),
        ("function", format!("uptime-probe-{env}")),
        ("target", target.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| Dimension::builder().name(k).value(v).build())
    .collect()
}

async fn put(
    cw: &aws_sdk_cloudwatch::Client,
    name: &str,
    dims: Vec<Dimension>,
    value: f64,
    ago: Duration,
) {
    cw.put_metric_data()
        .namespace("PlatformPlaybook")
        .metric_data(
            MetricDatum::builder()
                .metric_name(name)
                .set_dimensions(Some(dims))
                .value(value)
                .unit(StandardUnit::Count)
                .timestamp(AwsDateTime::from_secs((Utc::now() - ago).timestamp()))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn error_budget_from_moto_cloudwatch() {
    let (_g, moto) = suite_tests::exclusive_moto().await;
    let clients = moto.clients().await;
    let cw = aws_sdk_cloudwatch::Client::new(&clients.sdk);
    let h = Duration::hours;
    let d = Duration::days;

    // api: 1000 requests and 2 errors over the 30 days, spread over several days (the sums
    // cross periods); objective 99.5 → 60 % left.
    for (n, ago) in [(400.0, h(1)), (300.0, d(2)), (200.0, d(10)), (100.0, d(29))] {
        put(&cw, "probe_requests", dims("local", "api"), n, ago).await;
    }
    put(&cw, "probe_errors", dims("local", "api"), 1.0, h(1)).await;
    put(&cw, "probe_errors", dims("local", "api"), 0.0, d(2)).await;
    put(&cw, "probe_errors", dims("local", "api"), 1.0, d(10)).await;
    // Outside the window, and another environment: not counted.
    put(&cw, "probe_errors", dims("local", "api"), 500.0, d(31)).await;
    put(&cw, "probe_requests", dims("local", "api"), 500.0, d(31)).await;
    put(&cw, "probe_errors", dims("prod", "api"), 100.0, h(1)).await;
    // quote: 200 requests, 20 slow against 95 % → −100 % (overspent by one budget).
    put(&cw, "probe_requests", dims("local", "quote"), 200.0, h(3)).await;
    put(
        &cw,
        "probe_slow_requests",
        dims("local", "quote"),
        20.0,
        h(3),
    )
    .await;
    // sse: no data at all.

    let c = common();
    let slos = load_slos(&c).unwrap();
    let reader = CloudWatchReader::new(&clients);
    let report = error_budget::run(&reader, &slos, &c.metrics_namespace, Utc::now())
        .await
        .unwrap();
    let get = |n: &str| report.slos.iter().find(|b| b.name == n).unwrap();
    let api = get("api-availability");
    assert_eq!(
        (api.errors, api.total),
        (Some(2.0), Some(1000.0)),
        "{api:?}"
    );
    assert!(
        (api.remaining_percent.unwrap() - 60.0).abs() < 1e-9,
        "{api:?}"
    );
    let quote = get("quote-latency");
    assert_eq!((quote.errors, quote.total), (Some(20.0), Some(200.0)));
    assert!(
        (quote.remaining_percent.unwrap() + 100.0).abs() < 1e-9,
        "{quote:?}"
    );
    let sse = get("sse-uptime");
    assert_eq!(
        (sse.errors, sse.total, sse.remaining_percent),
        (None, None, None),
        "{sse:?}"
    );

    // One document per known budget; the unknown SLO emits nothing.
    let docs: Vec<_> = error_budget::metric_documents(&c, &report)
        .iter()
        .map(|e| e.to_json(0))
        .collect();
    assert_eq!(docs.len(), 2);
    assert!(docs.iter().all(|v| v["slo"] != "sse-uptime"));
    let api_doc = docs
        .iter()
        .find(|v| v["slo"] == "api-availability")
        .unwrap();
    let cw_def = &api_doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(cw_def["Namespace"], "PlatformPlaybook/SLO");
    assert_eq!(
        cw_def["Dimensions"],
        json!([["function", "environment", "slo"]])
    );
    assert_eq!(api_doc["function"], "uptime-probe-local");
    assert_eq!(api_doc["environment"], "local");

    // The handler as Lambda calls it, on the real adapter.
    let deps = Deps {
        common: c.clone(),
        settings: Settings::from_vars(&Vars::from_pairs([(
            "PROBE_TARGETS",
            "api=http://127.0.0.1:9/health",
        )]))
        .unwrap(),
        http: client(),
        slos,
        metrics: reader,
    };
    let r = handle(
        &deps,
        LambdaEvent::new(json!({"kind": "error_budget"}), Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(r["kind"], "error_budget");
    assert_eq!(r["period_days"], 30);
    let by = |n: &str| {
        r["slos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by("api-availability")["errors"], 2.0);
    assert_eq!(by("api-availability")["total"], 1000.0);
    assert!(
        (by("api-availability")["remaining_percent"]
            .as_f64()
            .unwrap()
            - 60.0)
            .abs()
            < 1e-9
    );
    assert!(by("sse-uptime")["remaining_percent"].is_null());
    assert_eq!(by("sse-uptime")["unknown"], "no_data");
}
