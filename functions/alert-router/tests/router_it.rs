//! alert-router against moto (S3 state, Secrets Manager, SNS → SQS for the digest) and the
//! local receivers of tools/alert-receivers.py, which check each service's documented request
//! shape and answer as it does (a malformed request is a 400 there, and fails here).

use std::time::Duration;

use alert_router::config::Settings;
use alert_router::handler::{handle, Deps};
use alert_router::port::{AwsSecrets, ReqwestPost};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use shared::config::{CommonConfig, Vars};
use shared::sns::SnsPublisher;
use shared::store::S3Store;
use shared::SuiteError;
use suite_tests::{
    exclusive_moto, free_port, log_dir, spawn_supervised, wait_for_port, workspace_root, Moto,
};

const CRITICAL: &str = "arn:aws:sns:us-east-1:123456789012:slo-critical-local";
const INFO: &str = "arn:aws:sns:us-east-1:123456789012:slo-info-local";
const FINOPS: &str = "arn:aws:sns:us-east-1:123456789012:finops-alerts-local";
const RELEASE: &str = "arn:aws:sns:us-east-1:123456789012:loadtest-incidents-local";
const BUCKET: &str = "alert-state";
const ROUTING_KEY: &str = "0123456789abcdef0123456789abcdef";

fn receivers() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let port = free_port();
        let log = log_dir().join(format!("alert-receivers-{port}.log"));
        let script = workspace_root().join("tools/alert-receivers.py");
        spawn_supervised(
            std::path::Path::new("python3"),
            &[script.to_str().unwrap(), &port.to_string()],
            &[],
            &workspace_root(),
            &log,
        );
        wait_for_port(port, Duration::from_secs(20), "alert-receivers.py", &log);
        format!("http://127.0.0.1:{port}")
    })
}

async fn control(path: &str, body: Value) -> Value {
    let c = reqwest::Client::new();
    let url = format!("{}{path}", receivers());
    if path == "/_state" {
        return c.get(url).send().await.unwrap().json().await.unwrap();
    }
    c.post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn set_secret(m: &Moto, secret: Value) {
    let clients = m.clients().await;
    let sm = aws_sdk_secretsmanager::Client::new(&clients.sdk);
    sm.create_secret()
        .name("alert-routes")
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap();
}

fn full_secret() -> Value {
    json!({
        "pagerduty_routing_key": ROUTING_KEY,
        "opsgenie_api_key": "og-key-1",
        "slack_finops_webhook_url": format!("{}/slack/services/T000/B000/XXXX", receivers()),
        "jira_email": "finops-bot@example.com",
        "jira_api_token": "jira-token-1",
    })
}

async fn deps(
    m: &Moto,
    digest_topic: Option<&str>,
) -> Deps<S3Store, ReqwestPost, AwsSecrets, SnsPublisher> {
    let r = receivers();
    let vars = Vars::from_pairs([
        ("ENVIRONMENT", "local".to_string()),
        ("REPORT_BUCKET", BUCKET.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", "alert-router-local".to_string()),
        (
            "ALERT_TOPICS",
            format!("critical={CRITICAL},info={INFO},finops={FINOPS},release={RELEASE}"),
        ),
        ("ALERT_SECRET_ID", "alert-routes".to_string()),
        ("ALERT_PAGERDUTY_URL", format!("{r}/pagerduty/v2/enqueue")),
        ("ALERT_OPSGENIE_URL", format!("{r}/opsgenie")),
        ("ALERT_JIRA_URL", format!("{r}/jira")),
        (
            "ALERT_DIGEST_TOPIC_ARN",
            digest_topic.unwrap_or_default().to_string(),
        ),
    ]);
    let common = CommonConfig::from_vars(&vars, "alert-router").unwrap();
    let settings = Settings::from_vars(&vars).unwrap();
    let clients = m.clients().await;
    suite_tests::create_buckets(&clients.s3(), &[BUCKET]).await;
    Deps {
        http: ReqwestPost::new(settings.http_timeout).unwrap(),
        store: S3Store::new(clients.s3()),
        secrets: AwsSecrets::new(aws_sdk_secretsmanager::Client::new(&clients.sdk)),
        publisher: clients.sns_publisher(),
        common,
        settings,
        backoff: Duration::from_millis(5),
    }
}

fn sns(topic: &str, message_id: &str, message: &str) -> Value {
    sns_at(topic, message_id, message, "2026-12-02T10:00:00.000Z")
}

fn sns_at(topic: &str, message_id: &str, message: &str, at: &str) -> Value {
    json!({"Records": [{"EventSource": "aws:sns", "Sns": {
        "Type": "Notification", "MessageId": message_id, "TopicArn": topic,
        "Subject": "notification", "Message": message, "Timestamp": at
    }}]})
}

fn alarm(name: &str, state: &str) -> String {
    json!({
        "AlarmName": name, "AlarmDescription": "api-availability page: 14.4x burn over 1h and 5m",
        "AWSAccountId": "123456789012", "NewStateValue": state, "OldStateValue": "OK",
        "NewStateReason": "child alarms in ALARM", "StateChangeTime": "2026-12-02T10:00:00.000+0000",
        "Region": "US East (N. Virginia)",
        "AlarmArn": format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"),
        "AlarmRule": "ALARM(a) AND ALARM(b)",
    })
    .to_string()
}

async fn run(
    d: &Deps<S3Store, ReqwestPost, AwsSecrets, SnsPublisher>,
    v: Value,
) -> Result<Value, SuiteError> {
    handle(d, LambdaEvent::new(v, Context::default())).await
}

fn requests_under(state: &Value, prefix: &str) -> usize {
    state["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"].as_str().unwrap().starts_with(prefix))
        .count()
}

#[tokio::test]
async fn a_page_pages_once_through_flapping_and_resolves_on_the_same_route() {
    let (_g, m) = exclusive_moto().await;
    control("/_reset", json!({})).await;
    set_secret(m, full_secret()).await;
    let d = deps(m, None).await;
    let name = "slo-api-availability-page-local";
    let r = run(&d, sns(CRITICAL, "m-1", &alarm(name, "ALARM")))
        .await
        .unwrap();
    assert_eq!(r["status"], "ROUTED");
    // Re-notified while open (a flap back through INSUFFICIENT_DATA, or a second action).
    run(&d, sns(CRITICAL, "m-2", &alarm(name, "INSUFFICIENT_DATA")))
        .await
        .unwrap();
    run(&d, sns(CRITICAL, "m-3", &alarm(name, "ALARM")))
        .await
        .unwrap();
    // SNS delivers m-1 again: nothing is sent twice.
    let again = run(&d, sns(CRITICAL, "m-1", &alarm(name, "ALARM")))
        .await
        .unwrap();
    assert!(
        again["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["outcome"] == "already_delivered"),
        "{again}"
    );

    let s = control("/_state", json!({})).await;
    let key = format!("cloudwatch/{name}");
    assert_eq!(s["incidents"][&key]["status"], "triggered", "{s}");
    assert_eq!(
        s["incidents"][&key]["pages"], 1,
        "one incident for two ALARM notifications"
    );
    assert_eq!(s["opsgenie"][&key]["status"], "open");
    assert_eq!(
        s["opsgenie"][&key]["notified"], 1,
        "OpsGenie deduplicated by alias"
    );
    assert_eq!(s["opsgenie"][&key]["count"], 2);
    assert_eq!(
        requests_under(&s, "/pagerduty"),
        2,
        "INSUFFICIENT_DATA and the redelivery sent nothing"
    );

    let ok = run(&d, sns(CRITICAL, "m-4", &alarm(name, "OK")))
        .await
        .unwrap();
    let s = control("/_state", json!({})).await;
    assert_eq!(s["incidents"][&key]["status"], "resolved", "{ok}");
    assert_eq!(s["opsgenie"][&key]["status"], "closed");
    let last = s["requests"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["path"] == "/pagerduty/v2/enqueue")
        .unwrap();
    assert_eq!(last["body"]["event_action"], "resolve");
    assert_eq!(last["body"]["dedup_key"], key.as_str());
}

#[tokio::test]
async fn finops_alerts_reach_slack_and_one_jira_ticket_and_release_incidents_a_rel_ticket() {
    let (_g, m) = exclusive_moto().await;
    control("/_reset", json!({})).await;
    set_secret(m, full_secret()).await;
    let d = deps(m, None).await;
    let budget = "AWS Budget Notification December 2, 2026\nAWS Account 123456789012\n\nDear AWS Customer,\n\nYou requested that we alert you when the ACTUAL Cost associated with your prod-monthly budget is greater than 80.00% of your budgeted amount.\n\nBudget Name: prod-monthly\nBudget Type: Cost\nBudgeted Amount: $10,000.00\nAlert Type: ACTUAL\nAlert Threshold: > $8,000.00\nACTUAL Amount: $8,123.45\n";
    run(&d, sns(FINOPS, "b-1", budget)).await.unwrap();
    // The same threshold notified again the same month: Slack hears it, the ticket is one.
    let again = run(&d, sns(FINOPS, "b-2", budget)).await.unwrap();
    let jira = again["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["route"] == "jira_finops")
        .unwrap()
        .clone();
    assert_eq!(
        (jira["outcome"].as_str(), jira["reference"].as_str()),
        (Some("deduplicated"), Some("FINOPS-1"))
    );
    let cad = r#"{"accountId":"123456789012","anomalyId":"a-77","monitorName":"services","anomalyStartDate":"2026-12-01T00:00:00Z","impact":{"totalImpact":"812.4","totalImpactPercentage":210.0},"rootCauses":[{"service":"Amazon Relational Database Service","region":"us-east-1","usageType":"InstanceUsage:db.r6g.xlarge"}],"anomalyDetailsLink":"https://console.aws.amazon.com/cost-management/home#/anomaly-detection/monitors/m/anomalies/a-77"}"#;
    run(&d, sns(FINOPS, "c-1", cad)).await.unwrap();

    // The release gate's own incident type, serialised as the coordinator publishes it.
    let incident = loadtest_coordinator::gate::Incident {
        id: "REL-0007".into(),
        scenario: "quote-generation".into(),
        run_id: "run-42".into(),
        opened_at: "2026-12-02T03:10:00Z".into(),
        reason: "p95 1200.0 ms broke http_req_duration p(95)<900 on 2 consecutive runs".into(),
        p95_ms: 1200.0,
        p95_objective: "p(95)<900".into(),
        consecutive_p95_failures: 2,
        report: "s3://reports/loadtest/run-42/report.md".into(),
        gate: "BLOCK".into(),
    };
    let r = run(
        &d,
        sns(RELEASE, "r-1", &serde_json::to_string(&incident).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(r["deliveries"][0]["reference"], "REL-1", "{r}");
    // Published again (the coordinator does when the run that opened it is redelivered, in
    // case a crash cut its first publish): the same notification, no second ticket.
    let again = run(
        &d,
        sns(RELEASE, "r-2", &serde_json::to_string(&incident).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            again["deliveries"][0]["outcome"].as_str(),
            again["deliveries"][0]["reference"].as_str()
        ),
        (Some("already_delivered"), Some("REL-1")),
        "{again}"
    );

    let s = control("/_state", json!({})).await;
    assert!(
        s["issues"].get("REL-2").is_none(),
        "a second REL ticket: {s}"
    );
    assert_eq!(s["slack"].as_array().unwrap().len(), 3, "{s}");
    assert_eq!(
        s["slack"][0]["blocks"][0]["text"]["text"],
        "AWS Budgets: prod-monthly actual spend above 80 %"
    );
    assert_eq!(
        s["issues"]["FINOPS-1"]["summary"],
        "AWS Budgets: prod-monthly actual spend above 80 %"
    );
    assert!(s["issues"]["FINOPS-2"]["summary"]
        .as_str()
        .unwrap()
        .contains("Amazon Relational Database Service"));
    assert_eq!(
        s["issues"]["REL-1"]["summary"],
        "Release blocked: quote-generation (REL-0007)"
    );
    assert!(s["issues"].get("FINOPS-3").is_none());
}

/// cost-anomaly's own detections, built by its own functions (`anomaly_alert`,
/// `anomaly_resolved`): a change on either side fails here.
#[tokio::test]
async fn our_own_anomalies_reach_slack_and_one_finops_ticket_which_their_resolve_comments() {
    use cost_anomaly::analysis::Anomaly;
    use cost_anomaly::run::{anomaly_alert, anomaly_resolved, AlertState};
    let (_g, m) = exclusive_moto().await;
    control("/_reset", json!({})).await;
    set_secret(m, full_secret()).await;
    let d = deps(m, None).await;
    let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let mut an = Anomaly {
        key: "staging/Amazon Relational Database Service/2026-11-08".into(),
        env: "staging".into(),
        service: "Amazon Relational Database Service".into(),
        kind: "drift".into(),
        start: day("2026-11-08"),
        end: day("2026-11-19"),
        flagged_on_data_of: day("2026-11-11"),
        detection_delay_days: 3,
        open: true,
        expected: 480.0,
        actual: 912.5,
        impact: 432.5,
        impact_percent: 90.1,
        contributors: vec![],
        explanation: "staging RDS rose 90 % over 12 days".into(),
    };
    let report = "s3://playbook-reports/reports/finops/2026-11.md";
    let msg = |a: &shared::notifications::PlaybookAlert| serde_json::to_string(a).unwrap();
    let first = anomaly_alert(&an, 0, false, "local", report);
    let r = run(&d, sns(FINOPS, "ca-1", &msg(&first))).await.unwrap();
    let outcomes = |r: &Value| -> Vec<(String, String)> {
        r["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    format!(
                        "{}:{}",
                        x["route"].as_str().unwrap(),
                        x["outcome"].as_str().unwrap()
                    ),
                    x["reference"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        outcomes(&r),
        vec![
            ("slack_finops:delivered".to_string(), String::new()),
            ("jira_finops:delivered".to_string(), "FINOPS-1".to_string()),
        ],
        "{r}"
    );
    // Published again after cost-anomaly lost its state (a new SNS message, the same id):
    // delivered once.
    let again = run(&d, sns(FINOPS, "ca-1-retry", &msg(&first)))
        .await
        .unwrap();
    assert!(
        outcomes(&again)
            .iter()
            .all(|(o, _)| o.ends_with(":already_delivered")),
        "{again}"
    );
    // It grew: Slack hears it, the ticket stays one.
    an.end = day("2026-11-23");
    an.impact = 610.0;
    let grew = run(
        &d,
        sns(
            FINOPS,
            "ca-2",
            &msg(&anomaly_alert(&an, 1, true, "local", report)),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        outcomes(&grew)[1],
        (
            "jira_finops:deduplicated".to_string(),
            "FINOPS-1".to_string()
        ),
        "{grew}"
    );
    // Over: the resolve comments on FINOPS-1.
    an.open = false;
    let st = AlertState {
        first_seen_at: "2026-11-12T07:00:00Z".into(),
        last_sent_at: "2026-11-24T07:00:00Z".into(),
        impact: an.impact,
        end: an.end,
        updates: 1,
        notified: true,
        resolved_at: None,
    };
    let over = run(
        &d,
        sns(
            FINOPS,
            "ca-3",
            &msg(&anomaly_resolved(&an.key, Some(&an), &st, report)),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        outcomes(&over)[1],
        ("jira_finops:delivered".to_string(), "FINOPS-1".to_string()),
        "{over}"
    );

    let s = control("/_state", json!({})).await;
    let slack = s["slack"].as_array().unwrap();
    assert_eq!(slack.len(), 3, "trigger, growth, resolve: {s}");
    assert!(
        slack[0]["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with(
                "FinOps anomaly (new): staging Amazon Relational Database Service $432.50"
            ),
        "{}",
        slack[0]
    );
    let issue = &s["issues"]["FINOPS-1"];
    assert!(
        issue["summary"]
            .as_str()
            .unwrap()
            .starts_with("FinOps anomaly (new): staging"),
        "{issue}"
    );
    assert_eq!(
        issue["comments"].as_array().map(Vec::len),
        Some(1),
        "{issue}"
    );
    assert!(s["issues"].get("FINOPS-2").is_none(), "one ticket: {s}");
}

#[tokio::test]
async fn a_failing_route_fails_the_invocation_and_its_retry_sends_only_what_did_not_go() {
    let (_g, m) = exclusive_moto().await;
    control("/_reset", json!({})).await;
    set_secret(m, full_secret()).await;
    let d = deps(m, None).await;
    // PagerDuty answers 503 to every attempt of the first invocation (3 tries).
    control(
        "/_fail",
        json!({"prefix": "/pagerduty", "status": 503, "times": 3}),
    )
    .await;
    let e = run(
        &d,
        sns(
            CRITICAL,
            "f-1",
            &alarm("slo-quote-latency-page-local", "ALARM"),
        ),
    )
    .await
    .unwrap_err();
    assert!(e.retryable(), "a 503 is worth Lambda's retry: {e}");
    assert!(
        e.to_string().contains("pagerduty") && e.to_string().contains("after 3 attempts"),
        "{e}"
    );
    let s = control("/_state", json!({})).await;
    assert_eq!(requests_under(&s, "/pagerduty"), 3);
    assert_eq!(
        requests_under(&s, "/opsgenie"),
        1,
        "OpsGenie went while PagerDuty failed"
    );

    // Lambda's retry of the same event: PagerDuty now, OpsGenie not again.
    let r = run(
        &d,
        sns(
            CRITICAL,
            "f-1",
            &alarm("slo-quote-latency-page-local", "ALARM"),
        ),
    )
    .await
    .unwrap();
    let outcomes: Vec<(String, String)> = r["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["route"].as_str().unwrap().into(),
                x["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("pagerduty".into(), "delivered".into()),
            ("opsgenie".into(), "already_delivered".into())
        ]
    );
    let s = control("/_state", json!({})).await;
    assert_eq!(requests_under(&s, "/opsgenie"), 1);
    assert_eq!(
        s["incidents"]["cloudwatch/slo-quote-latency-page-local"]["status"],
        "triggered"
    );

    // A refusal (bad routing key) is not retried in the invocation and says so.
    m.reset().await;
    set_secret(m, json!({"pagerduty_routing_key": "short"})).await;
    let d = deps(m, None).await;
    let e = run(&d, sns(CRITICAL, "f-2", &alarm("x", "ALARM")))
        .await
        .unwrap_err();
    assert!(!e.retryable() && e.to_string().contains("HTTP 400"), "{e}");
}

#[tokio::test]
async fn an_alert_no_route_can_carry_fails_loudly() {
    let (_g, m) = exclusive_moto().await;
    control("/_reset", json!({})).await;
    set_secret(m, json!({"pagerduty_routing_key": ROUTING_KEY})).await;
    let d = deps(m, None).await;
    let e = run(&d, sns(FINOPS, "n-1", r#"{"anomalyId":"a-1"}"#))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("reached nobody")
            && msg.contains("slack_finops")
            && msg.contains("secret alert-routes"),
        "{msg}"
    );
    // In one batch behind a failing record, the unconfigured one is still named.
    control(
        "/_fail",
        json!({"prefix": "/pagerduty", "status": 503, "times": 3}),
    )
    .await;
    let mut batch = sns(
        CRITICAL,
        "n-3",
        &alarm("slo-api-availability-page-local", "ALARM"),
    );
    let finops = sns(FINOPS, "n-4", r#"{"anomalyId":"a-2"}"#)["Records"][0].clone();
    batch["Records"].as_array_mut().unwrap().push(finops);
    let e = run(&d, batch).await.unwrap_err().to_string();
    assert!(
        e.contains("failed routes: pagerduty")
            && e.contains("slack_finops (cost-anomaly-detection/a-2)"),
        "{e}"
    );
    let e = run(&d, sns("arn:aws:sns:us-east-1:1:other", "n-2", "hello"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Records[0].Sns.TopicArn"), "{e}");
}

fn aws(m: &Moto, args: &[&str]) -> Value {
    m.cli(args)
}

#[tokio::test]
async fn info_notifications_become_one_digest_a_day() {
    let (_g, m) = exclusive_moto().await;
    set_secret(m, full_secret()).await;
    let topic = aws(m, &["sns", "create-topic", "--name", "alert-digest-local"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_string();
    let queue = m.subscribe_queue(&topic, "digest-mailbox", &[("RawMessageDelivery", "true")]);
    let d = deps(m, Some(&topic)).await;

    let no_data = "slo-api-availability-no-data-local";
    run(
        &d,
        sns_at(
            INFO,
            "i-1",
            &alarm(no_data, "ALARM"),
            "2026-12-02T01:00:00.000Z",
        ),
    )
    .await
    .unwrap();
    run(
        &d,
        sns_at(
            INFO,
            "i-2",
            &alarm("export-compressor-failures-local", "ALARM"),
            "2026-12-02T02:00:00.000Z",
        ),
    )
    .await
    .unwrap();
    run(
        &d,
        sns_at(
            INFO,
            "i-3",
            &alarm(no_data, "OK"),
            "2026-12-02T03:00:00.000Z",
        ),
    )
    .await
    .unwrap();
    // Redelivered: collected once.
    run(
        &d,
        sns_at(
            INFO,
            "i-3",
            &alarm(no_data, "OK"),
            "2026-12-02T03:00:00.000Z",
        ),
    )
    .await
    .unwrap();
    let empty = run(&d, json!({"kind": "digest", "day": "2026-12-01"}))
        .await
        .unwrap();
    assert_eq!(empty["status"], "EMPTY");

    let sent = run(&d, json!({"kind": "digest", "day": "2026-12-02"}))
        .await
        .unwrap();
    assert_eq!(
        (
            sent["status"].as_str(),
            sent["items"].as_u64(),
            sent["alerts"].as_u64()
        ),
        (Some("SENT"), Some(3), Some(2)),
        "{sent}"
    );
    let again = run(&d, json!({"kind": "digest", "day": "2026-12-02"}))
        .await
        .unwrap();
    assert_eq!(again["status"], "ALREADY_SENT");

    let got = aws(
        m,
        &[
            "sqs",
            "receive-message",
            "--queue-url",
            &queue,
            "--max-number-of-messages",
            "10",
        ],
    );
    let msgs = got["Messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(msgs.len(), 1, "one mail for the day: {got}");
    let body = msgs[0]["Body"].as_str().unwrap();
    assert!(
        body.starts_with("Platform alerts digest 2026-12-02 (local): 3 notifications, 2 alerts"),
        "{body}"
    );
    assert!(body.contains("OK: slo-api-availability-no-data-local\n  2 notification(s), first 2026-12-02T01:00:00.000Z, last 2026-12-02T03:00:00.000Z; resolved"), "{body}");
    assert!(
        body.contains("ALARM: export-compressor-failures-local"),
        "{body}"
    );
}

/// The load-test coordinator's notice of a run with no verdict, built by its own function,
/// and the next run's resolve: collected on the info route, one digest entry, resolved.
#[tokio::test]
async fn a_load_test_without_verdict_reaches_the_digest_and_resolves_there() {
    use loadtest_coordinator::run::no_verdict_notice;
    let (_g, m) = exclusive_moto().await;
    set_secret(m, full_secret()).await;
    let topic = aws(m, &["sns", "create-topic", "--name", "alert-digest-local"])["TopicArn"]
        .as_str()
        .unwrap()
        .to_string();
    let d = deps(m, Some(&topic)).await;
    let report = "s3://reports/k6/runs/r/report.json";
    let down = no_verdict_notice(
        "local",
        "quote-generation",
        "night-1",
        Some("no successful response among 40 request(s) sent of 40 scheduled"),
        report,
    );
    let back = no_verdict_notice("local", "quote-generation", "night-2", None, report);
    for (id, n, at) in [
        ("n-1", &down, "2026-12-05T02:20:00.000Z"),
        ("n-2", &back, "2026-12-05T23:20:00.000Z"),
    ] {
        let r = run(&d, sns_at(INFO, id, &serde_json::to_string(n).unwrap(), at))
            .await
            .unwrap();
        assert_eq!(
            (
                r["deliveries"][0]["route"].as_str(),
                r["deliveries"][0]["outcome"].as_str(),
                r["deliveries"][0]["key"].as_str()
            ),
            (
                Some("digest"),
                Some("collected"),
                Some("loadtest/local/quote-generation/no-verdict")
            ),
            "{r}"
        );
    }
    let sent = run(&d, json!({"kind": "digest", "day": "2026-12-05"}))
        .await
        .unwrap();
    assert_eq!(
        (sent["items"].as_u64(), sent["alerts"].as_u64()),
        (Some(2), Some(1)),
        "{sent}"
    );
}
