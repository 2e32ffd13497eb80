//! Helpers for the moto integration tests: the engine's configuration and its adapters wired
//! to moto (moto's CE results API and synthetic spend pages are in `suite_tests::ce`).

#![allow(dead_code)]

use cost_anomaly::config::Settings;
use cost_anomaly::port::{AwsBudgets, AwsCostExplorer};
use shared::aws::{AwsClients, AwsSettings};
use shared::config::{CommonConfig, Vars};
use shared::sns::SnsPublisher;
use shared::store::S3Store;
use suite_tests::Moto;

pub const REPORTS: &str = "playbook-reports";
pub const ACCOUNT: &str = "123456789012";
pub const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:finops-alerts-local";

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
    pub publisher: SnsPublisher,
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
    // The FinOps topic the alerts are published to (Terraform creates it).
    m.cli(&["sns", "create-topic", "--name", "finops-alerts-local"]);
    let budgets_client = aws_sdk_budgets::Client::new(&clients.sdk);
    Adapters {
        store: S3Store::new(s3.clone()),
        ce: AwsCostExplorer::new(aws_sdk_costexplorer::Client::new(&clients.sdk)),
        budgets: AwsBudgets::new(budgets_client.clone()),
        budgets_client,
        s3,
        publisher: clients.sns_publisher(),
    }
}
