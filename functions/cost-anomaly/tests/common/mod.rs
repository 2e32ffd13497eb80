//! Helpers for the moto integration tests: moto's CE results API, synthetic spend as Cost
//! Explorer would return it, and the engine wired to moto.

#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use cost_anomaly::config::Settings;
use cost_anomaly::port::{AwsBudgets, AwsCostExplorer};
use serde_json::{json, Value};
use shared::aws::{AwsClients, AwsSettings};
use shared::config::{CommonConfig, Vars};
use shared::store::S3Store;
use suite_tests::Moto;

pub const REPORTS: &str = "playbook-reports";
pub const ACCOUNT: &str = "123456789012";
pub const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:finops-alerts-local";

/// POSTs JSON to moto's own API (e.g. `/moto-api/static/ce/cost-and-usage-results`).
pub async fn moto_post(m: &Moto, path: &str, body: &Value) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", m.port))
        .await
        .expect("connect moto");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        m.port,
        body.len()
    );
    sock.write_all(req.as_bytes()).await.expect("send");
    let mut resp = String::new();
    sock.read_to_string(&mut resp).await.expect("read");
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Queues GetCostAndUsage results: each new distinct request takes the next one.
pub async fn queue_ce_results(m: &Moto, results: Vec<Value>) {
    let status = moto_post(
        m,
        "/moto-api/static/ce/cost-and-usage-results",
        &json!({ "results": results }),
    )
    .await;
    assert_eq!(status, 201, "moto refused the CE results");
}

/// Daily spend per (env, service) as one page of GetCostAndUsage (`Groups` keyed
/// `env$<env>` and the service name), days in `[from, to)`; `estimated_from` and later days
/// are `Estimated`.
pub fn ce_page(
    spend: &BTreeMap<(String, String), Vec<(NaiveDate, f64)>>,
    from: NaiveDate,
    to: NaiveDate,
    estimated_from: NaiveDate,
    next_token: Option<&str>,
) -> Value {
    let mut results = vec![];
    let mut d = from;
    while d < to {
        let groups: Vec<Value> = spend
            .iter()
            .filter_map(|((env, svc), days)| {
                let v = days.iter().find(|(x, _)| *x == d)?.1;
                Some(json!({
                    "Keys": [format!("env${env}"), svc],
                    "Metrics": {"UnblendedCost": {"Amount": format!("{v:.4}"), "Unit": "USD"}}
                }))
            })
            .collect();
        results.push(json!({
            "TimePeriod": {"Start": d.to_string(), "End": (d + Days::new(1)).to_string()},
            "Total": {},
            "Groups": groups,
            "Estimated": d >= estimated_from
        }));
        d = d + Days::new(1);
    }
    let mut page = json!({"ResultsByTime": results, "DimensionValueAttributes": []});
    if let Some(t) = next_token {
        page["NextPageToken"] = json!(t);
    }
    page
}

pub fn common() -> CommonConfig {
    CommonConfig::from_vars(
        &Vars::from_pairs([
            ("ENVIRONMENT", "local"),
            ("REPORT_BUCKET", REPORTS),
            ("DEPLOYMENT", "test"),
        ]),
        "cost-anomaly",
    )
    .expect("common config")
}

pub fn settings(extra: &[(&str, &str)]) -> Settings {
    let mut pairs: Vec<(&str, &str)> = vec![
        (
            "FINOPS_BUDGETS",
            "prod-monthly=9000@prod,staging-monthly=2500@staging,total=12000",
        ),
        ("FINOPS_TOPIC_ARN", TOPIC),
        ("FINOPS_ACCOUNT_ID", ACCOUNT),
    ];
    pairs.extend_from_slice(extra);
    Settings::from_vars(&Vars::from_pairs(pairs)).expect("settings")
}

pub struct Adapters {
    pub store: S3Store,
    pub ce: AwsCostExplorer,
    pub budgets: AwsBudgets,
    pub budgets_client: aws_sdk_budgets::Client,
    pub s3: aws_sdk_s3::Client,
}

/// The adapters the function builds, pointed at moto (one attempt: moto answers
/// GetCostForecast with an error, which must not be retried for minutes).
pub async fn adapters(m: &Moto) -> Adapters {
    let _ = m.clients().await; // sets the static credentials in the process environment
    let mut env = m.env();
    env.push(("AWS_MAX_ATTEMPTS".into(), "1".into()));
    let clients =
        AwsClients::load(AwsSettings::from_vars(&Vars::from_pairs(env)).expect("aws settings"))
            .await;
    let s3 = clients.s3();
    suite_tests::create_buckets(&s3, &[REPORTS]).await;
    let budgets_client = aws_sdk_budgets::Client::new(&clients.sdk);
    Adapters {
        store: S3Store::new(s3.clone()),
        ce: AwsCostExplorer::new(aws_sdk_costexplorer::Client::new(&clients.sdk)),
        budgets: AwsBudgets::new(budgets_client.clone()),
        budgets_client,
        s3,
    }
}
