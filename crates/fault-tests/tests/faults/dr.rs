//! dr-restore through faults: the drill's RDS, S3 (state and report), Secrets Manager calls go
//! through the fault proxy; the restored database is the machine's PostgreSQL (not proxied:
//! the faults under test are the AWS ones).
//!
//! Invariant, checked after every delivery through clients that talk to moto directly: the
//! drill's state object is always whole JSON and its phase never goes backwards; at most one
//! restored instance ever exists; the report names the drill only once the drill has finished,
//! and then exactly once, in both its JSON and its Markdown.

use std::cell::RefCell;
use std::time::Duration;

use chrono::Utc;
use dr_restore::handler::{deadline_in, run_job, AwsDeps};
use fault_proxy::{ErrorKind, Fault, FaultProxy, ResetPoint};
use fault_tests::{deliver_until_ok, BURST, BURST_FRACTION};
use serde_json::{json, Value};
use shared::config::{CommonConfig, Vars};
use suite_tests::rds::{drop_database, pg, REPORTS, SECRET};
use suite_tests::{exclusive_moto, get, Moto};

const PHASES: [&str; 7] = [
    "STARTING",
    "RESTORING",
    "AVAILABLE",
    "VERIFYING",
    "CLEANING",
    "DONE",
    "FAILED",
];

/// A throwaway database that passes every check: both Alembic heads, 50 orders written 20 s
/// ago.
async fn create_db(tag: &str) -> String {
    let name = format!(
        "dr_fault_{tag}_{}_{}",
        std::process::id(),
        Utc::now().timestamp_micros() % 1_000_000_000
    );
    pg("postgres")
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let c = pg(&name).await;
    c.batch_execute(
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
         INSERT INTO alembic_version VALUES ('a1b2c3d4e5f6');
         CREATE TABLE orders (id serial PRIMARY KEY, updated_at timestamptz NOT NULL);",
    )
    .await
    .expect("schema");
    c.execute(
        "INSERT INTO orders (updated_at) SELECT $1::timestamptz - n * interval '1 minute' FROM generate_series(0, 49) AS n",
        &[&(Utc::now() - chrono::Duration::seconds(20))],
    )
    .await
    .expect("orders");
    name
}

/// The source instance, the drill's subnet and parameter groups, the secret, the bucket.
async fn seed(m: &Moto) {
    suite_tests::rds::seed(m, "unused", "drill parameter group").await;
}

/// dr-restore's dependencies with every AWS call going through `proxy`.
async fn deps(m: &Moto, proxy: &FaultProxy, db: &str) -> AwsDeps {
    let _ = m.clients().await;
    let mut pairs: Vec<(String, String)> = m.env();
    pairs.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    for (k, v) in [
        ("AWS_ENDPOINT_URL", proxy.url().as_str()),
        ("AWS_MAX_ATTEMPTS", "8"),
        ("AWS_INITIAL_BACKOFF_MS", "100"),
        ("AWS_ATTEMPT_TIMEOUT_MS", "10000"),
        ("ENVIRONMENT", "local"),
        ("DEPLOYMENT", "faults"),
        ("REPORT_BUCKET", REPORTS),
        ("DR_SOURCE_DB_INSTANCE", "app-db"),
        ("DR_SUBNET_GROUP", "dr-private"),
        ("DR_SECURITY_GROUP_IDS", "sg-0a1b2c3d"),
        ("DR_PARAMETER_GROUP", "dr-pg15"),
        ("DR_INSTANCE_CLASS", "db.t3.small"),
        ("DR_DB_NAME", db),
        ("DR_DB_SECRET_ID", SECRET),
        ("DR_DB_HOST_OVERRIDE", "127.0.0.1"),
        ("DR_DB_PORT_OVERRIDE", "5432"),
        ("DR_DB_CONNECT_TIMEOUT_MS", "2000"),
        ("DR_EXPECTED_HEADS", "a1b2c3d4e5f6"),
        ("DR_CRITICAL_TABLES", "orders"),
        ("DR_CURRENCY_COLUMNS", "orders.updated_at"),
        // A verification cut short by a fault is taken over after this long, not 15 min.
        ("DR_VERIFY_LEASE_SECONDS", "2"),
    ] {
        pairs.retain(|(a, _)| a != k);
        pairs.push((k.to_string(), v.to_string()));
    }
    let v = Vars::from_pairs(pairs);
    let common = CommonConfig::from_vars(&v, "dr-restore").expect("common");
    AwsDeps::from_vars(&v, common).await.expect("deps")
}

fn restored_event(instance: &str) -> Value {
    let arn = format!("arn:aws:rds:us-east-1:123456789012:db:{instance}");
    json!({
        "version": "0", "id": format!("ev-{instance}"), "detail-type": "RDS DB Instance Event",
        "source": "aws.rds", "account": "123456789012", "time": Utc::now().to_rfc3339(),
        "region": "us-east-1", "resources": [arn],
        "detail": {"EventCategories": ["restoration"], "SourceType": "DB_INSTANCE", "SourceArn": arn,
                   "Date": Utc::now().to_rfc3339(), "Message": "Restored from DB instance app-db",
                   "SourceIdentifier": instance, "EventID": "RDS-EVENT-0019"}
    })
}

/// Checks the invariant once; returns the drill's phase (None before the state exists).
async fn check(
    s3: &aws_sdk_s3::Client,
    rds: &aws_sdk_rds::Client,
    drill: &str,
    seen: &RefCell<Vec<usize>>,
) -> Option<String> {
    let phase = match get(s3, REPORTS, &format!("dr-restore/drills/{drill}.json")).await {
        None => None,
        Some(b) => {
            let v: Value = serde_json::from_slice(&b)
                .unwrap_or_else(|e| panic!("drill state is not whole JSON ({e})"));
            let p = v["phase"].as_str().expect("state has a phase").to_string();
            let i = PHASES
                .iter()
                .position(|x| *x == p)
                .unwrap_or_else(|| panic!("unknown phase {p}"));
            let mut seen = seen.borrow_mut();
            if let Some(&last) = seen.last() {
                assert!(i >= last, "phase went back: {} -> {p}", PHASES[last]);
            }
            seen.push(i);
            Some(p)
        }
    };
    let instances = rds
        .describe_db_instances()
        .send()
        .await
        .expect("describe (direct to moto)");
    let drills = instances
        .db_instances()
        .iter()
        .filter(|i| {
            i.db_instance_identifier()
                .is_some_and(|n| n.starts_with("dr-drill-"))
        })
        .count();
    assert!(drills <= 1, "{drills} restored instances: restored twice");
    let month = Utc::now().format("%Y-%m").to_string();
    let j = get(s3, REPORTS, &format!("reports/dr/{month}.json")).await;
    let md = get(s3, REPORTS, &format!("reports/dr/{month}.md")).await;
    if let Some(j) = j {
        let v: Value = serde_json::from_slice(&j).expect("report JSON is whole");
        let named = v["drills"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|d| d["drill_id"] == drill).count());
        assert!(named <= 1, "the drill is reported {named} times");
        if named == 1 {
            assert!(
                matches!(phase.as_deref(), Some("DONE" | "FAILED")),
                "reported before it finished (phase {phase:?})"
            );
        }
    }
    if let Some(md) = md {
        let md = String::from_utf8(md).expect("utf8");
        assert!(md.matches(&format!("`{drill}`")).count() <= 1, "{md}");
    }
    phase
}

/// A whole drill, start to report, through a burst of 503/500 and connection resets before
/// and after moto acted, each window renewed for each stage of the drill.
#[tokio::test]
async fn a_drill_through_bursts_and_resets_restores_once_and_reports_once() {
    let (_g, m) = exclusive_moto().await;
    seed(m).await;
    let db = create_db("burst").await;
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", m.port))
        .await
        .expect("proxy");
    let d = deps(m, &proxy, &db).await;
    let (s3, rds) = (
        m.s3().await,
        aws_sdk_rds::Client::new(&m.clients().await.sdk),
    );
    let drill = "fault-burst";
    let seen = RefCell::new(vec![]);
    let faults = |seed: u64| {
        proxy.seed(seed);
        proxy.error_burst(BURST_FRACTION, BURST, ErrorKind::Mixed);
        proxy.connection_resets(0.15, BURST, ResetPoint::Mixed);
    };
    let deliver = |payload: Value| {
        let d = &d;
        async move { run_job(d, &payload, deadline_in(Duration::from_secs(60))).await }
    };

    faults(21);
    let start = json!({"action": "start", "drill_id": drill, "triggered_by": "fault test"});
    let out = deliver_until_ok(
        10,
        || deliver(start.clone()),
        || async {
            check(&s3, &rds, drill, &seen).await;
        },
    )
    .await;
    assert!(
        ["STARTED", "ALREADY_STARTED"].contains(&out.result["status"].as_str().unwrap_or("")),
        "{}",
        out.result
    );

    faults(22);
    let ev = restored_event(&format!("dr-drill-{drill}"));
    deliver_until_ok(
        10,
        || deliver(ev.clone()),
        || async {
            check(&s3, &rds, drill, &seen).await;
        },
    )
    .await;
    // A delivery cut short mid-verification leaves a lease (2 s here); the polling schedule,
    // Lambda's safety net, takes over once it runs out.
    let mut phase = check(&s3, &rds, drill, &seen).await;
    for _ in 0..20 {
        if phase.as_deref() == Some("DONE") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        deliver_until_ok(
            10,
            || deliver(json!({"action": "poll"})),
            || async {
                check(&s3, &rds, drill, &seen).await;
            },
        )
        .await;
        phase = check(&s3, &rds, drill, &seen).await;
    }
    proxy.clear();
    assert_eq!(phase.as_deref(), Some("DONE"), "seen {:?}", seen.borrow());
    let stats = proxy.stats();
    assert!(
        stats.injected_errors() > 0 && stats.resets > 0,
        "the faults hit: {stats:?}"
    );

    // Finished, deleted, reported once, passed.
    let left = rds
        .describe_db_instances()
        .db_instance_identifier(format!("dr-drill-{drill}"))
        .send()
        .await;
    assert!(left.is_err(), "the restored instance is deleted");
    let month = Utc::now().format("%Y-%m").to_string();
    let j: Value = serde_json::from_slice(
        &get(&s3, REPORTS, &format!("reports/dr/{month}.json"))
            .await
            .expect("report"),
    )
    .unwrap();
    let reported: Vec<&Value> = j["drills"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["drill_id"] == drill)
        .collect();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0]["success"], true, "{}", reported[0]);
    let md = String::from_utf8(
        get(&s3, REPORTS, &format!("reports/dr/{month}.md"))
            .await
            .expect("md"),
    )
    .unwrap();
    assert!(
        md.contains(&format!("## Restore drill `{drill}`: PASSED")),
        "{md}"
    );
    eprintln!(
        "dr under faults: phases {:?}, proxy {stats:?}",
        seen.borrow()
    );
    drop_database(&db).await;
}

/// AWS down for good during a drill's start: a classified, retryable error, no state
/// half-written, no restore; when AWS is back, the redelivered start begins the drill once.
#[tokio::test]
async fn aws_down_at_the_start_then_back_starts_the_drill_once() {
    let (_g, m) = exclusive_moto().await;
    seed(m).await;
    let db = create_db("down").await;
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", m.port))
        .await
        .expect("proxy");
    let d = deps(m, &proxy, &db).await;
    let (s3, rds) = (
        m.s3().await,
        aws_sdk_rds::Client::new(&m.clients().await.sdk),
    );
    let seen = RefCell::new(vec![]);
    let drill = "fault-down";
    let start = json!({"action": "start", "drill_id": drill});
    proxy.set_down(true);
    let e = run_job(&d, &start, deadline_in(Duration::from_secs(60)))
        .await
        .expect_err("AWS is down");
    assert!(e.retryable(), "{} {e}", e.class());
    assert_eq!(check(&s3, &rds, drill, &seen).await, None);
    proxy.set_down(false);
    let r = run_job(&d, &start, deadline_in(Duration::from_secs(60)))
        .await
        .expect("start once AWS is back");
    assert_eq!(r["status"], "STARTED", "{r}");
    assert_eq!(
        check(&s3, &rds, drill, &seen).await.as_deref(),
        Some("RESTORING")
    );
    drop_database(&db).await;
}

/// How many instances of the drill exist (moto, directly).
async fn restored(rds: &aws_sdk_rds::Client, drill: &str) -> usize {
    let name = format!("dr-drill-{drill}");
    rds.describe_db_instances()
        .send()
        .await
        .expect("describe (direct to moto)")
        .db_instances()
        .iter()
        .filter(|i| i.db_instance_identifier() == Some(name.as_str()))
        .count()
}

/// The `PUT`s the proxy saw whose `METHOD target` contains `needle` (as `only_matching`
/// reads it): (fault, upstream status).
fn puts(proxy: &FaultProxy, needle: &str) -> Vec<(Fault, Option<u16>)> {
    proxy
        .records()
        .into_iter()
        .filter(|r| r.method == "PUT" && format!("PUT {}", r.target).contains(needle))
        .map(|r| (r.fault, r.status))
        .collect()
}

/// The answers of the drill's state create and of its first replace are lost after S3 stored
/// them; the SDK's retry of each meets the object just written (412). The drill must know
/// its own write: started once (STARTED, one restore, not ALREADY_STARTED, not CONFLICT), and
/// then, with half of every PUT's answers (state, report, Markdown) lost after S3 acted,
/// finished and reported once with nothing lost.
#[tokio::test]
async fn lost_answers_to_the_drill_state_writes_neither_refuse_nor_repeat_the_drill() {
    let (_g, m) = exclusive_moto().await;
    seed(m).await;
    let db = create_db("lost").await;
    let proxy = FaultProxy::start(format!("127.0.0.1:{}", m.port))
        .await
        .expect("proxy");
    let d = deps(m, &proxy, &db).await;
    let (s3, rds) = (
        m.s3().await,
        aws_sdk_rds::Client::new(&m.clients().await.sdk),
    );
    let drill = "fault-lost";
    let state_put = format!("PUT /{REPORTS}/dr-restore/drills/{drill}.json");
    let seen = RefCell::new(vec![]);
    let deliver = |payload: Value| {
        let d = &d;
        async move { run_job(d, &payload, deadline_in(Duration::from_secs(60))).await }
    };

    // Seed 23 draws reset, pass, reset, pass for the state PUTs: the create's first answer is
    // lost and its retry answered 412, then the same for the replace STARTING -> RESTORING.
    proxy.only_matching(Some(&state_put));
    proxy.seed(23);
    proxy.connection_resets(0.5, Duration::from_secs(30), ResetPoint::AfterUpstream);
    let start = json!({"action": "start", "drill_id": drill, "triggered_by": "fault test"});
    let r = deliver(start.clone()).await.expect("start");
    proxy.clear();
    let writes = puts(&proxy, &state_put);
    assert_eq!(
        writes.get(..2),
        Some(
            &[
                (Fault::ResetAfterUpstream, Some(200)),
                (Fault::None, Some(412))
            ][..]
        ),
        "the create's answer was not lost as planned: {writes:?}"
    );
    assert_eq!(
        r["status"], "STARTED",
        "the drill took its own create for another invocation's: {r}"
    );
    assert_eq!(
        writes.get(2..4),
        Some(
            &[
                (Fault::ResetAfterUpstream, Some(200)),
                (Fault::None, Some(412))
            ][..]
        ),
        "the replace's answer was not lost as planned: {writes:?}"
    );
    assert_eq!(r["phase"], "RESTORING", "{r}");
    assert_eq!(
        check(&s3, &rds, drill, &seen).await.as_deref(),
        Some("RESTORING")
    );
    assert_eq!(restored(&rds, drill).await, 1, "one restore");

    // A real second delivery of the start (another invocation's bytes) is ALREADY_STARTED.
    let again = deliver(start.clone()).await.expect("redelivered start");
    assert_eq!(again["status"], "ALREADY_STARTED", "{again}");
    assert_eq!(restored(&rds, drill).await, 1, "still one restore");

    // The rest of the drill with half of every PUT's answers lost after S3 acted.
    proxy.reset_stats();
    proxy.only_matching(Some(&format!("PUT /{REPORTS}/")));
    proxy.seed(24);
    proxy.connection_resets(0.5, Duration::from_secs(120), ResetPoint::AfterUpstream);
    let ev = restored_event(&format!("dr-drill-{drill}"));
    deliver_until_ok(
        10,
        || deliver(ev.clone()),
        || async {
            check(&s3, &rds, drill, &seen).await;
        },
    )
    .await;
    let mut phase = check(&s3, &rds, drill, &seen).await;
    for _ in 0..20 {
        if phase.as_deref() == Some("DONE") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        deliver_until_ok(
            10,
            || deliver(json!({"action": "poll"})),
            || async {
                check(&s3, &rds, drill, &seen).await;
            },
        )
        .await;
        phase = check(&s3, &rds, drill, &seen).await;
    }
    let lost = puts(&proxy, &format!("PUT /{REPORTS}/"))
        .iter()
        .filter(|(f, _)| *f == Fault::ResetAfterUpstream)
        .count();
    proxy.clear();
    assert_eq!(phase.as_deref(), Some("DONE"), "seen {:?}", seen.borrow());
    assert!(lost >= 2, "answers lost after the start: {lost}");

    // Deleted, reported once, passed; the state says reported.
    assert!(
        rds.describe_db_instances()
            .db_instance_identifier(format!("dr-drill-{drill}"))
            .send()
            .await
            .is_err(),
        "the restored instance is deleted"
    );
    let state: Value = serde_json::from_slice(
        &get(&s3, REPORTS, &format!("dr-restore/drills/{drill}.json"))
            .await
            .expect("state"),
    )
    .expect("state JSON");
    assert_eq!(state["reported"], true, "{state}");
    let month = Utc::now().format("%Y-%m").to_string();
    let j: Value = serde_json::from_slice(
        &get(&s3, REPORTS, &format!("reports/dr/{month}.json"))
            .await
            .expect("report"),
    )
    .expect("report JSON");
    let reported: Vec<&Value> = j["drills"]
        .as_array()
        .expect("drills")
        .iter()
        .filter(|x| x["drill_id"] == drill)
        .collect();
    assert_eq!(reported.len(), 1, "{j}");
    assert_eq!(reported[0]["success"], true, "{}", reported[0]);
    let md = String::from_utf8(
        get(&s3, REPORTS, &format!("reports/dr/{month}.md"))
            .await
            .expect("md"),
    )
    .expect("utf8");
    assert_eq!(
        md.matches(&format!("## Restore drill `{drill}`: PASSED"))
            .count(),
        1,
        "{md}"
    );
    eprintln!(
        "dr with lost answers: phases {:?}, {lost} answers lost after the start",
        seen.borrow()
    );
    drop_database(&db).await;
}

/// The shared port's read-back rule on the wire (moto through the proxy): a create and a
/// replace whose answers are lost after S3 acted are this writer's own; another writer's
/// create and a stale replace still lose.
#[tokio::test]
async fn the_shared_conditional_writes_know_their_own_lost_answers() {
    use shared::store::{AlreadyExists, ConditionalStore, Conflict, S3Store};

    let (_g, m) = exclusive_moto().await;
    let direct = m.s3().await;
    suite_tests::create_buckets(&direct, &[REPORTS]).await;
    let f = fault_tests::Faulted::new(m).await;
    let store = S3Store::new(f.s3());
    let key = "port/lease.json";
    let needle = format!("PUT /{REPORTS}/{key}");
    // Seed 27 draws reset, pass | pass | reset, pass | pass for the four writes below.
    f.proxy.only_matching(Some(&needle));
    f.proxy.seed(27);
    f.proxy
        .connection_resets(0.5, Duration::from_secs(30), ResetPoint::AfterUpstream);
    let ct = "application/json";

    let mine = store
        .create_if_absent(REPORTS, key, r#"{"holder":"a","nonce":1}"#.into(), ct)
        .await
        .expect("create")
        .expect("the lost create is mine");
    assert!(mine.reclaimed, "{mine:?}");
    assert_eq!(
        store
            .create_if_absent(REPORTS, key, r#"{"holder":"b","nonce":2}"#.into(), ct)
            .await
            .expect("create"),
        Err(AlreadyExists),
        "another writer's create loses"
    );
    let v2 = store
        .replace_if_match(
            REPORTS,
            key,
            r#"{"holder":"a","nonce":3}"#.into(),
            ct,
            &mine.etag,
        )
        .await
        .expect("replace")
        .expect("the lost replace is mine");
    assert!(v2.reclaimed, "{v2:?}");
    assert_ne!(v2.etag, mine.etag);
    assert_eq!(
        store
            .replace_if_match(
                REPORTS,
                key,
                r#"{"holder":"b","nonce":4}"#.into(),
                ct,
                &mine.etag
            )
            .await
            .expect("replace"),
        Err(Conflict),
        "a stale replace loses"
    );
    let writes = puts(&f.proxy, &needle);
    f.proxy.clear();
    assert_eq!(
        writes,
        vec![
            (Fault::ResetAfterUpstream, Some(200)),
            (Fault::None, Some(412)),
            (Fault::None, Some(412)),
            (Fault::ResetAfterUpstream, Some(200)),
            (Fault::None, Some(412)),
            (Fault::None, Some(412)),
        ]
    );
    let now = store
        .get_with_etag(REPORTS, key)
        .await
        .expect("get")
        .expect("object");
    assert_eq!(&now.body[..], br#"{"holder":"a","nonce":3}"#);
    assert_eq!(now.etag, v2.etag);
}
