//! cost-anomaly against moto's real AWS wire APIs: Cost Explorer results configured through
//! moto's `/moto-api/static/ce/cost-and-usage-results` (paginated by NextPageToken, Estimated
//! days), the S3 cache and state, anomaly alerts sent once, the report written to S3, budgets
//! created and their drift fixed, SNS alerts recorded and deduplicated through the handler.

// CostFilters (deprecated for FilterExpression) is what moto and the function use.
#![allow(deprecated)]

mod common;

use std::collections::BTreeMap;

use chrono::{Datelike, Days, NaiveDate, Utc};
use common::*;
use cost_anomaly::handler::{handle, Deps};
use cost_anomaly::run::{AlertAction, Engine};
use cost_anomaly::synth::{series, Class, Rng};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use suite_tests::ce::{self, ce_page, queue_ce_results, Spend};
use suite_tests::{exclusive_moto, get};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// 92 days of spend to 2026-11-19: steady series, one spike in prod EC2 on 2026-11-17 and a
/// slow drift in staging RDS from 2026-11-08.
fn spend() -> Spend {
    let mut rng = Rng::new(42);
    ce::spend(
        &[
            ("prod", "Amazon Elastic Compute Cloud - Compute", 180.0),
            ("prod", "Amazon Relational Database Service", 90.0),
            ("prod", "Amazon Simple Storage Service", 25.0),
            ("staging", "Amazon Relational Database Service", 40.0),
            ("staging", "Amazon Elastic Compute Cloud - Compute", 30.0),
            ("dev", "Amazon Elastic Compute Cloud - Compute", 15.0),
        ],
        true,
        |start, n| {
            let s = series(&mut rng, Class::Clean, start, n);
            (s.days, s.values)
        },
    )
}

async fn exists(s3: &aws_sdk_s3::Client, key: &str) -> bool {
    get(s3, REPORTS, key).await.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_pages_caches_alerts_once_and_writes_the_report() {
    let (_g, m) = exclusive_moto().await;
    let a = adapters(m).await;
    let sp = spend();
    let as_of = d("2026-11-20");
    let from = as_of - Days::new(90);
    let est = d("2026-11-18");
    // Run 1: one range, two pages; run 2: the two Estimated days again (now final).
    queue_ce_results(
        m,
        vec![
            ce_page(&sp, from, d("2026-10-05"), est, Some("page-2")),
            ce_page(&sp, d("2026-10-05"), as_of, est, None),
            ce_page(&sp, est, as_of, d("2099-01-01"), None),
        ],
    )
    .await;
    let common = common();
    let settings = settings(&[]);
    let engine = Engine {
        store: &a.store,
        ce: &a.ce,
        budgets: &a.budgets,
        publisher: &a.publisher,
        common: &common,
        settings: &settings,
    };
    let now = Utc::now();

    let first = engine.detect(as_of, now).await.expect("first detection");
    assert_eq!(first.fetch.requests, 2, "two pages");
    assert_eq!(first.fetch.cached_days, 0);
    assert_eq!(first.fetch.fetched_days, 90);
    assert_eq!(first.fetch.estimated_days, 2);
    assert_eq!(first.days, 90);
    assert_eq!(first.series, 6);
    let keys: Vec<&str> = first
        .alerts
        .iter()
        .map(|x| x.anomaly.key.as_str())
        .collect();
    let spike = first
        .alerts
        .iter()
        .find(|x| x.anomaly.key == "prod/Amazon Elastic Compute Cloud - Compute/2026-11-17")
        .unwrap_or_else(|| panic!("spike not found: {keys:?}"));
    assert_eq!(spike.action, AlertAction::New);
    assert_eq!(spike.anomaly.kind, "spike");
    assert_eq!(spike.anomaly.detection_delay_days, 0);
    assert!(
        spike.anomaly.impact > 200.0 && spike.anomaly.actual > 2.0 * spike.anomaly.expected,
        "{spike:?}"
    );
    assert_eq!(
        spike.anomaly.contributors[0].service,
        "Amazon Elastic Compute Cloud - Compute"
    );
    let drift = first
        .alerts
        .iter()
        .find(|x| x.anomaly.env == "staging" && x.anomaly.service.contains("Relational"))
        .unwrap_or_else(|| panic!("drift not found: {keys:?}"));
    assert!(
        drift.anomaly.start >= d("2026-11-06") && drift.anomaly.start <= d("2026-11-09"),
        "{drift:?}"
    );
    assert!(drift.anomaly.detection_delay_days <= 4, "{drift:?}");
    assert_eq!(first.alerts.len(), 2, "no other alerts: {keys:?}");

    // Forecast: own model always; moto has no GetCostForecast, which is said, not hidden.
    let all = &first.projections["all"];
    assert_eq!(all.as_of, as_of);
    assert!(all.projected_own > all.month_to_date, "{all:?}");
    assert!(
        first
            .ce_forecast_note
            .as_deref()
            .unwrap_or("")
            .contains("GetCostForecast"),
        "{:?}",
        first.ce_forecast_note
    );
    assert_eq!(first.budgets.len(), 3);
    assert!(first.delta_percent["all"].is_some());

    // Only final days are cached.
    let cache: Value = serde_json::from_slice(
        &get(&a.s3, REPORTS, "reports/cost-anomaly/cache/ce/2026-11.json")
            .await
            .expect("cache"),
    )
    .unwrap();
    let days = cache["days"].as_object().unwrap();
    assert!(
        days.contains_key("2026-11-17") && !days.contains_key("2026-11-18"),
        "{:?}",
        days.keys()
    );

    // Run 2: only the Estimated days are asked again; the same anomalies are not re-sent.
    let second = engine.detect(as_of, now).await.expect("second detection");
    assert_eq!(second.fetch.requests, 1);
    assert_eq!(second.fetch.cached_days, 88);
    assert!(
        second
            .alerts
            .iter()
            .all(|x| x.action == AlertAction::Unchanged),
        "{:?}",
        second.alerts
    );
    // Run 3: everything final and cached: no Cost Explorer request at all.
    let third = engine.detect(as_of, now).await.expect("third detection");
    assert_eq!((third.fetch.requests, third.fetch.cached_days), (0, 90));

    // The month's report: Markdown, JSON (last) and the chart.
    for ext in ["md", "json", "svg"] {
        assert!(
            exists(&a.s3, &format!("reports/finops/2026-11.{ext}")).await,
            "{ext}"
        );
    }
    let md = String::from_utf8(
        get(&a.s3, REPORTS, "reports/finops/2026-11.md")
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        md.contains("# FinOps report 2026-11 (month to date)"),
        "{md}"
    );
    assert!(md.contains("| prod-monthly | prod | $9,000.00 |"), "{md}");
    assert!(
        md.contains("Amazon Elastic Compute Cloud - Compute in prod"),
        "{md}"
    );
    assert!(
        md.contains("![Daily spend against budget, anomalies marked](2026-11.svg)"),
        "{md}"
    );
    let svg = String::from_utf8(
        get(&a.s3, REPORTS, "reports/finops/2026-11.svg")
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("<circle"),
        "anomalies marked"
    );
    let json: Value = serde_json::from_slice(
        &get(&a.s3, REPORTS, "reports/finops/2026-11.json")
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["forecast_history"].as_array().unwrap().len(), 1);
    assert_eq!(json["baseline_month"], "2026-10");

    // A request budget of one page cannot read a two-page range: nothing half-read is used.
    let (_g2, _) = (0, 0);
    let tight = settings_with_budget(1);
    m.reset().await;
    let a = adapters(m).await;
    queue_ce_results(
        m,
        vec![ce_page(&sp, from, d("2026-10-05"), est, Some("page-2"))],
    )
    .await;
    let engine = Engine {
        store: &a.store,
        ce: &a.ce,
        budgets: &a.budgets,
        publisher: &a.publisher,
        common: &common,
        settings: &tight,
    };
    let o = engine.detect(as_of, now).await.expect("budgeted detection");
    assert!(
        o.fetch.budget_exhausted && o.days == 0 && o.alerts.is_empty(),
        "{:?}",
        o.fetch
    );
}

fn settings_with_budget(n: u32) -> cost_anomaly::config::Settings {
    let mut s = settings(&[]);
    s.max_requests = n;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_report_of_a_past_month_is_final() {
    let (_g, m) = exclusive_moto().await;
    let a = adapters(m).await;
    let sp = spend();
    let as_of = d("2026-11-01");
    let from = as_of - Days::new(90);
    queue_ce_results(m, vec![ce_page(&sp, from, as_of, d("2099-01-01"), None)]).await;
    let common = common();
    let settings = settings(&[]);
    let engine = Engine {
        store: &a.store,
        ce: &a.ce,
        budgets: &a.budgets,
        publisher: &a.publisher,
        common: &common,
        settings: &settings,
    };
    let (an, key) = engine
        .monthly(d("2026-10-01"), d("2026-12-01"), Utc::now())
        .await
        .expect("report");
    assert_eq!(key, "reports/finops/2026-10.json");
    assert_eq!(
        an.fetch.forecast_requests, 0,
        "a finished month needs no forecast"
    );
    let json: Value = serde_json::from_slice(&get(&a.s3, REPORTS, &key).await.unwrap()).unwrap();
    assert_eq!(json["complete"], true);
    let actual = json["actual"].as_f64().unwrap();
    assert_eq!(json["projected_own"].as_f64().unwrap(), actual);
    let oct: f64 = sp
        .values()
        .flatten()
        .filter(|(d, _)| d.month() == 10)
        .map(|(_, v)| v)
        .sum();
    assert!((actual - oct).abs() < 0.05, "{actual} vs {oct}");
    assert_eq!(json["daily"].as_array().unwrap().len(), 31);
    let md = String::from_utf8(
        get(&a.s3, REPORTS, "reports/finops/2026-10.md")
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(md.contains("# FinOps report 2026-10 (final)"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_are_created_and_drift_fixed() {
    let (_g, m) = exclusive_moto().await;
    let a = adapters(m).await;
    let common = common();
    let settings = settings(&[]);
    let engine = Engine {
        store: &a.store,
        ce: &a.ce,
        budgets: &a.budgets,
        publisher: &a.publisher,
        common: &common,
        settings: &settings,
    };
    // prod-monthly exists with only the ACTUAL 80 % notification; dev-monthly (not configured
    // here) is left alone; the others are missing.
    use aws_sdk_budgets::types::*;
    let n80 = Notification::builder()
        .notification_type(NotificationType::Actual)
        .comparison_operator(ComparisonOperator::GreaterThan)
        .threshold(80.0)
        .threshold_type(ThresholdType::Percentage)
        .build()
        .unwrap();
    a.budgets_client
        .create_budget()
        .account_id(ACCOUNT)
        .budget(
            Budget::builder()
                .budget_name("prod-monthly")
                .budget_limit(
                    Spend::builder()
                        .amount("9000.00")
                        .unit("USD")
                        .build()
                        .unwrap(),
                )
                .time_unit(TimeUnit::Monthly)
                .budget_type(BudgetType::Cost)
                .cost_filters("TagKeyValue", vec!["user:env$prod".to_string()])
                .build()
                .unwrap(),
        )
        .notifications_with_subscribers(
            NotificationWithSubscribers::builder()
                .notification(n80)
                .subscribers(
                    Subscriber::builder()
                        .subscription_type(SubscriptionType::Sns)
                        .address(TOPIC)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("seed budget");

    let dry = engine.ensure_budgets(true).await.expect("dry run");
    let by: BTreeMap<&str, &cost_anomaly::run::BudgetOutcome> =
        dry.iter().map(|b| (b.budget.as_str(), b)).collect();
    let prod = serde_json::to_string(&by["prod-monthly"].drift).unwrap();
    assert!(
        prod.contains(r#"{"drift":"notification_missing","kind":"ACTUAL","percent":100.0}"#),
        "{prod}"
    );
    assert!(
        prod.contains(r#"{"drift":"notification_missing","kind":"FORECASTED","percent":120.0}"#),
        "{prod}"
    );
    assert!(!prod.contains("limit_differs"), "{prod}");
    assert_eq!(
        serde_json::to_string(&by["staging-monthly"].drift).unwrap(),
        r#"[{"drift":"missing"}]"#
    );
    assert!(dry.iter().all(|b| b.fixed.is_empty()));
    let count = |name: &'static str| {
        let c = a.budgets_client.clone();
        async move {
            c.describe_notifications_for_budget()
                .account_id(ACCOUNT)
                .budget_name(name)
                .send()
                .await
                .map(|o| o.notifications().len())
                .unwrap_or(0)
        }
    };
    assert_eq!(count("prod-monthly").await, 1, "dry run changed nothing");

    let fixed = engine.ensure_budgets(false).await.expect("fix");
    assert!(fixed.iter().all(|b| b.errors.is_empty()), "{fixed:?}");
    assert_eq!(count("prod-monthly").await, 3);
    assert_eq!(count("staging-monthly").await, 3);
    assert_eq!(count("total").await, 3);
    let staging = a
        .budgets_client
        .describe_budget()
        .account_id(ACCOUNT)
        .budget_name("staging-monthly")
        .send()
        .await
        .unwrap();
    let b = staging.budget().unwrap();
    assert_eq!(b.budget_limit().unwrap().amount(), "2500.00");
    assert_eq!(
        b.cost_filters().unwrap()["TagKeyValue"],
        vec!["user:env$staging".to_string()]
    );

    // Nothing left to fix (moto cannot list subscribers: that is reported, not fixed).
    let again = engine.ensure_budgets(true).await.expect("re-check");
    for b in &again {
        assert!(b.drift.iter().all(|d| !d.fixable()), "{b:?}");
    }

    // A limit changed by hand is drift too.
    let mut s2 = settings.clone();
    s2.budgets[0].limit = 9500.0;
    let engine = Engine {
        store: &a.store,
        ce: &a.ce,
        budgets: &a.budgets,
        publisher: &a.publisher,
        common: &common,
        settings: &s2,
    };
    let d2 = engine.ensure_budgets(true).await.unwrap();
    assert!(serde_json::to_string(&d2[0].drift)
        .unwrap()
        .contains(r#""drift":"limit_differs","have":9000.0,"want":9500.0"#));
}

fn sample(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events/cost-anomaly")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_alerts_are_recorded_and_deduplicated_through_the_handler() {
    let (_g, m) = exclusive_moto().await;
    let a = adapters(m).await;
    let deps = Deps {
        common: common(),
        settings: settings(&[]),
        store: a.store.clone(),
        ce: a.ce.clone(),
        budgets: a.budgets.clone(),
        publisher: a.publisher.clone(),
    };
    let invoke = |v: Value| {
        let deps = &deps;
        async move {
            handle(deps, LambdaEvent::new(v, Context::default()))
                .await
                .expect("handled")
        }
    };
    let budget = sample("sns-budget-actual-80.json");
    let r = invoke(budget.clone()).await;
    assert_eq!(r["messages"][0]["action"], "new");
    assert_eq!(
        r["messages"][0]["dedup_key"],
        "prod-monthly|Actual|80|2026-11"
    );
    // The same SNS message again (at-least-once delivery).
    let r = invoke(budget.clone()).await;
    assert_eq!(r["messages"][0]["action"], "repeat_delivery");
    // Budgets sends the same threshold again (another message id) in the same month.
    let mut again = budget.clone();
    again["Records"][0]["Sns"]["MessageId"] = "another-id".into();
    let r = invoke(again).await;
    assert_eq!(r["messages"][0]["action"], "duplicate");

    let r = invoke(sample("sns-cost-anomaly.json")).await;
    assert_eq!(r["messages"][0]["kind"], "cost_anomaly");
    assert_eq!(r["messages"][0]["action"], "new");
    let record = r["messages"][0]["record"].as_str().unwrap().to_string();
    let rec: Value = serde_json::from_slice(&get(&a.s3, REPORTS, &record).await.unwrap()).unwrap();
    assert_eq!(rec["message"]["total_impact"], 1001.0);
    assert_eq!(
        rec["message"]["root_causes"][0]["usage_type"],
        "USE1-BoxUsage:m5.4xlarge"
    );

    for name in ["sns-unrecognised.json", "sns-budget-truncated.json"] {
        let r = invoke(sample(name)).await;
        assert_eq!(r["unrecognised"], 1, "{name}");
        assert_eq!(r["messages"][0]["action"], "recorded");
        let key = r["messages"][0]["record"].as_str().unwrap().to_string();
        let rec: Value = serde_json::from_slice(&get(&a.s3, REPORTS, &key).await.unwrap()).unwrap();
        assert_eq!(rec["message"]["kind"], "unrecognised");
        let raw = sample(name)["Records"][0]["Sns"]["Message"].clone();
        assert_eq!(rec["raw"], raw, "raw text kept");
    }
    let counts: Value = serde_json::from_slice(
        &get(
            &a.s3,
            REPORTS,
            "reports/cost-anomaly/state/messages-2026-11.json",
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        counts,
        serde_json::json!({"budget": 2, "cost_anomaly": 1, "unrecognised": 2})
    );

    // A malformed SNS event is a clear error, not a panic.
    let e = handle(
        &deps,
        LambdaEvent::new(
            serde_json::json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": 7}}]}),
            Context::default(),
        ),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("Records[0].Sns.Message"), "{e}");
}

/// The FinOps topic as Terraform wires it, in moto: alert-router's subscription (here a
/// queue, every message) and cost-anomaly's own with the filter policy file Terraform applies.
/// Answers the two queue URLs (router, cost-anomaly).
fn finops_topic(m: &suite_tests::Moto) -> (String, String) {
    let topic = m.cli(&["sns", "create-topic", "--name", "finops-alerts-local"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(topic, TOPIC);
    let filter = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../infra/sns/finops-aws-notifications-only.json"),
    )
    .unwrap();
    assert!(
        filter.contains(&format!(
            "\"{}\"",
            shared::notifications::PRODUCER_ATTRIBUTE
        )),
        "the filter names the attribute the suite sets: {filter}"
    );
    let router = m.subscribe_queue(&topic, "router-inbox", &[]);
    let own = m.subscribe_queue(
        &topic,
        "cost-anomaly-inbox",
        &[
            ("FilterPolicyScope", "MessageAttributes"),
            ("FilterPolicy", filter.trim()),
        ],
    );
    (router, own)
}

/// The SNS envelopes a queue holds (drained).
fn drain(m: &suite_tests::Moto, url: &str) -> Vec<Value> {
    let mut out = vec![];
    loop {
        let got = m.cli(&[
            "sqs",
            "receive-message",
            "--queue-url",
            url,
            "--max-number-of-messages",
            "10",
            "--wait-time-seconds",
            "0",
        ]);
        let msgs = got["Messages"].as_array().cloned().unwrap_or_default();
        if msgs.is_empty() {
            return out;
        }
        for msg in msgs {
            m.cli(&[
                "sqs",
                "delete-message",
                "--queue-url",
                url,
                "--receipt-handle",
                msg["ReceiptHandle"].as_str().unwrap(),
            ]);
            out.push(serde_json::from_str(msg["Body"].as_str().unwrap()).unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalies_reach_the_finops_topic_once_and_resolve_there_never_read_back() {
    use shared::notifications::{classify, Action, Message};
    let (_g, m) = exclusive_moto().await;
    let a = adapters(m).await;
    let (router, own) = finops_topic(m);
    // spend() with five more days (to 2026-11-24), so the one-day spike of 2026-11-17 is over
    // (no longer within the last 3 data days) by the second run.
    let mut rng = Rng::new(42);
    let sp = ce::spend(
        &[
            ("prod", "Amazon Elastic Compute Cloud - Compute", 180.0),
            ("prod", "Amazon Relational Database Service", 90.0),
            ("staging", "Amazon Relational Database Service", 40.0),
        ],
        true,
        |start, n| {
            let s = series(&mut rng, Class::Clean, start, n + 5);
            (s.days, s.values)
        },
    );
    let as_of = d("2026-11-20");
    let later = d("2026-11-24");
    let from = as_of - Days::new(90);
    let est = d("2026-11-18");
    queue_ce_results(
        m,
        vec![
            ce_page(&sp, from, as_of, est, None),
            ce_page(&sp, est, later, d("2099-01-01"), None),
        ],
    )
    .await;
    let common = common();
    let settings = settings(&[]);
    let engine = Engine {
        store: &a.store,
        ce: &a.ce,
        budgets: &a.budgets,
        publisher: &a.publisher,
        common: &common,
        settings: &settings,
    };
    let alerts_in = |envs: &[Value]| -> Vec<shared::notifications::PlaybookAlert> {
        envs.iter()
            .map(|e| {
                assert_eq!(
                    e["MessageAttributes"]["producer"]["Value"], "cost-anomaly",
                    "{e}"
                );
                match classify(e["Message"].as_str().unwrap()) {
                    Message::Playbook(p) => p,
                    other => panic!("not a playbook alert: {other:?}"),
                }
            })
            .collect()
    };

    // Run 1: the spike (one day, already over) and the drift (still rising): two triggers.
    let first = engine.detect(as_of, Utc::now()).await.expect("first");
    let sent = alerts_in(&drain(m, &router));
    let mut keys: Vec<&str> = sent.iter().map(|p| p.key.as_str()).collect();
    keys.sort();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(sent.iter().all(|p| p.action == Action::Trigger));
    assert!(keys.contains(&"cost-anomaly/prod/Amazon Elastic Compute Cloud - Compute/2026-11-17"));
    let spike = sent.iter().find(|p| p.key.contains("/prod/")).unwrap();
    assert!(
        spike
            .title
            .starts_with("FinOps anomaly (new): prod Amazon Elastic Compute Cloud - Compute $")
            && spike.link.as_deref() == Some("s3://playbook-reports/reports/finops/2026-11.md")
            && spike.fields.iter().any(|(k, _)| k == "Impact"),
        "{spike:?}"
    );
    assert!(
        first
            .alerts
            .iter()
            .filter(|x| x.published.is_some())
            .count()
            == 2
    );
    assert!(
        first.resolved.is_empty(),
        "one triggered this run waits: {:?}",
        first.resolved
    );

    // Run 2, four days on: the spike is over: its resolve, same key; the drift grew: the
    // same key again, a new idempotency id.
    let second = engine.detect(later, Utc::now()).await.expect("second");
    let sent2 = alerts_in(&drain(m, &router));
    let resolve: Vec<_> = sent2
        .iter()
        .filter(|p| p.action == Action::Resolve)
        .collect();
    assert_eq!(resolve.len(), 1, "{sent2:?}");
    assert_eq!(resolve[0].key, spike.key);
    assert_eq!(
        resolve[0].id.as_deref(),
        Some("cost-anomaly/prod/Amazon Elastic Compute Cloud - Compute/2026-11-17/resolve/0")
    );
    assert_eq!(
        second.resolved,
        vec![spike.key["cost-anomaly/".len()..].to_string()]
    );
    let drift = sent.iter().find(|p| p.key.contains("/staging/")).unwrap();
    let grew: Vec<_> = sent2
        .iter()
        .filter(|p| p.action == Action::Trigger)
        .collect();
    assert_eq!(grew.len(), 1, "{sent2:?}");
    assert_eq!(grew[0].key, drift.key);
    assert_ne!(grew[0].id, drift.id);
    assert!(
        grew[0].title.starts_with("FinOps anomaly (grew): staging"),
        "{:?}",
        grew[0]
    );

    // Run 3: nothing new, nothing over again.
    let third = engine.detect(later, Utc::now()).await.expect("third");
    assert!(drain(m, &router).is_empty() && third.resolved.is_empty());

    // cost-anomaly's own subscription never saw its alerts; an AWS Budgets message (no
    // attributes, as AWS sends it) reaches it.
    assert!(drain(m, &own).is_empty(), "read its own alerts back");
    m.cli(&[
        "sns",
        "publish",
        "--topic-arn",
        TOPIC,
        "--message",
        "AWS Budget Notification November 27, 2026\nBudget Name: prod-monthly\nAlert Type: ACTUAL\nACTUAL Amount: $8,123.45",
    ]);
    let aws = drain(m, &own);
    assert_eq!(aws.len(), 1, "{aws:?}");
    assert!(matches!(
        classify(aws[0]["Message"].as_str().unwrap()),
        Message::Budget(_)
    ));
}
