//! cost-anomaly's daily detection through S3 faults on its state and report writes (its S3
//! client goes through the fault proxy; Cost Explorer and Budgets talk to moto directly, since
//! moto's queued Cost Explorer results cannot be replayed for a retried request).
//!
//! Invariant, checked after every delivery through a client that talks to moto directly:
//! every object the function keeps (cache, alert state, forecast snapshots, report JSON) is
//! whole JSON; the report's JSON, written last, is never present without its Markdown and its
//! chart; an anomaly's alert state, once written, keeps its first-seen time (redeliveries do
//! not re-alert it as new). At the end the outcome is what a clean run gives.

#![allow(deprecated)] // CostFilters, as in the function's own tests

use std::cell::RefCell;
use std::collections::BTreeMap;

use chrono::{Days, NaiveDate, Utc};
use cost_anomaly::config::Settings;
use cost_anomaly::port::{AwsBudgets, AwsCostExplorer};
use cost_anomaly::run::{AlertAction, Engine};
use cost_anomaly::synth::{series, Class, Rng};
use fault_proxy::{ErrorKind, ResetPoint};
use fault_tests::{deliver_until_ok, Faulted, BURST};
use serde_json::Value;
use shared::aws::{AwsClients, AwsSettings};
use shared::config::{CommonConfig, Vars};
use shared::store::S3Store;
use suite_tests::ce::{self, ce_page, queue_ce_results, Spend};
use suite_tests::{create_buckets, exclusive_moto, get};

const REPORTS: &str = "playbook-reports";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

/// 92 days of spend to 2026-11-19 with a spike in prod EC2 on 2026-11-17 (the function's own
/// integration data, shortened to two series).
fn spend() -> Spend {
    let mut rng = Rng::new(42);
    ce::spend(
        &[
            ("prod", "Amazon Elastic Compute Cloud - Compute", 180.0),
            ("staging", "Amazon Relational Database Service", 40.0),
        ],
        false,
        |start, n| {
            let s = series(&mut rng, Class::Clean, start, n);
            (s.days, s.values)
        },
    )
}

/// Checks the invariant; `first_seen` keeps each alerted anomaly's first-seen time.
async fn check(s3: &aws_sdk_s3::Client, first_seen: &RefCell<BTreeMap<String, String>>) {
    let listed = s3
        .list_objects_v2()
        .bucket(REPORTS)
        .send()
        .await
        .expect("list (direct to moto)");
    let keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    for k in keys.iter().filter(|k| k.ends_with(".json")) {
        let b = get(s3, REPORTS, k).await.expect("listed object");
        serde_json::from_slice::<Value>(&b).unwrap_or_else(|e| panic!("{k} is not whole: {e}"));
    }
    if keys.iter().any(|k| k == "reports/finops/2026-11.json") {
        for companion in ["reports/finops/2026-11.md", "reports/finops/2026-11.svg"] {
            assert!(
                keys.iter().any(|k| k == companion),
                "the report's JSON is there without {companion}: {keys:?}"
            );
        }
    }
    if let Some(b) = get(s3, REPORTS, "reports/cost-anomaly/state/anomalies.json").await {
        let state: BTreeMap<String, Value> = serde_json::from_slice(&b).expect("state");
        let mut first_seen = first_seen.borrow_mut();
        for (key, st) in state {
            let seen = st["first_seen_at"]
                .as_str()
                .expect("first_seen_at")
                .to_string();
            match first_seen.get(&key) {
                Some(prev) => assert_eq!(prev, &seen, "{key} alerted as new again"),
                None => {
                    first_seen.insert(key, seen);
                }
            }
        }
    }
}

/// Daily detection with 40 % of the report writes failing (503/500) and half the
/// state requests reset after S3 acted, then a redelivery: the same anomalies, alerted as new
/// once, a whole report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_through_report_and_state_write_faults_alerts_once_and_reports_whole() {
    let (_g, m) = exclusive_moto().await;
    let _ = m.clients().await;
    let sp = spend();
    let as_of = d("2026-11-20");
    // One page, every day final.
    queue_ce_results(
        m,
        vec![ce_page(
            &sp,
            as_of - Days::new(90),
            as_of,
            NaiveDate::MAX,
            None,
        )],
    )
    .await;

    // Cost Explorer and Budgets direct to moto, one attempt (as the function's own tests).
    let mut env = m.env();
    env.push(("AWS_MAX_ATTEMPTS".into(), "1".into()));
    let direct =
        AwsClients::load(AwsSettings::from_vars(&Vars::from_pairs(env)).expect("settings")).await;
    create_buckets(&direct.s3(), &[REPORTS]).await;
    let f = Faulted::new(m).await;
    let store = S3Store::new(f.s3());
    let ce = AwsCostExplorer::new(aws_sdk_costexplorer::Client::new(&direct.sdk));
    let budgets = AwsBudgets::new(aws_sdk_budgets::Client::new(&direct.sdk));
    // The alerts go to the FinOps topic (SNS direct to moto; a publish repeated by a
    // redelivery carries the same idempotency id, which alert-router delivers once).
    m.cli(&["sns", "create-topic", "--name", "finops-alerts-local"]);
    let publisher = direct.sns_publisher();
    let common = CommonConfig::from_vars(
        &Vars::from_pairs([
            ("ENVIRONMENT", "local"),
            ("REPORT_BUCKET", REPORTS),
            ("DEPLOYMENT", "faults"),
        ]),
        "cost-anomaly",
    )
    .expect("common");
    let settings = Settings::from_vars(&Vars::from_pairs([
        ("FINOPS_BUDGETS", "prod-monthly=9000@prod,total=12000"),
        (
            "FINOPS_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:finops-alerts-local",
        ),
        ("FINOPS_ACCOUNT_ID", "123456789012"),
    ]))
    .expect("settings");
    let engine = Engine {
        store: &store,
        ce: &ce,
        budgets: &budgets,
        publisher: &publisher,
        common: &common,
        settings: &settings,
    };
    let s3 = direct.s3();
    let first_seen = RefCell::new(BTreeMap::new());
    let last = RefCell::new(None);
    let now = Utc::now();
    let detect = |at: chrono::DateTime<Utc>| {
        let (engine, last) = (&engine, &last);
        async move {
            let o = engine.detect(as_of, at).await?;
            let v = serde_json::to_value(&o).unwrap_or_default();
            *last.borrow_mut() = Some(o);
            Ok(v)
        }
    };

    // The report's writes: a burst answered in S3's place (nothing written).
    f.proxy.seed(31);
    f.proxy.only_matching(Some("/reports/finops/"));
    f.proxy.error_burst(0.4, BURST, ErrorKind::Mixed);
    deliver_until_ok(
        12,
        || detect(now),
        || async {
            check(&s3, &first_seen).await;
        },
    )
    .await;
    let first = last.borrow_mut().take().expect("an outcome");
    let hit = f.proxy.stats();
    assert!(hit.injected_errors() > 0, "the burst hit: {hit:?}");

    // The state's writes: reset after S3 stored them (the answer is lost, the write is not).
    f.proxy.clear();
    f.proxy.seed(32);
    f.proxy.only_matching(Some("/reports/cost-anomaly/state/"));
    f.proxy
        .connection_resets(0.5, BURST, ResetPoint::AfterUpstream);
    deliver_until_ok(
        12,
        || detect(now + chrono::Duration::minutes(5)),
        || async {
            check(&s3, &first_seen).await;
        },
    )
    .await;
    let hit = f.proxy.stats();
    assert!(hit.resets > 0, "the resets hit: {hit:?}");
    f.proxy.clear();
    let second = last.borrow_mut().take().expect("an outcome");

    let keys = |o: &cost_anomaly::run::DetectOutcome| -> Vec<String> {
        o.alerts.iter().map(|a| a.anomaly.key.clone()).collect()
    };
    assert!(
        keys(&first)
            .contains(&"prod/Amazon Elastic Compute Cloud - Compute/2026-11-17".to_string()),
        "{:?}",
        keys(&first)
    );
    assert_eq!(keys(&first), keys(&second), "the same anomalies");
    assert!(
        second
            .alerts
            .iter()
            .all(|a| a.action == AlertAction::Unchanged),
        "a redelivery does not re-alert: {:?}",
        second.alerts
    );
    let first_seen = first_seen.into_inner();
    assert_eq!(first_seen.len(), first.alerts.len(), "{first_seen:?}");

    // The report is whole and names the spike.
    let md = String::from_utf8(
        get(&s3, REPORTS, "reports/finops/2026-11.md")
            .await
            .expect("md"),
    )
    .expect("utf8");
    assert!(md.contains("# FinOps report 2026-11"), "{md}");
    assert!(
        md.contains("Amazon Elastic Compute Cloud - Compute in prod"),
        "{md}"
    );
    let j: Value = serde_json::from_slice(
        &get(&s3, REPORTS, "reports/finops/2026-11.json")
            .await
            .expect("json"),
    )
    .expect("report json");
    assert!(
        j["anomalies"].as_array().is_some_and(|a| !a.is_empty()),
        "{j}"
    );
}
