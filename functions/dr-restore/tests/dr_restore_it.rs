//! dr-restore against real services: moto (RDS control plane, S3 with conditional writes, SSM,
//! Secrets Manager) over their wire protocols, the machine's PostgreSQL playing the restored
//! database (a throwaway database per test), a local HTTP server for the smoke tests. RDS
//! events are sent the way EventBridge delivers them (moto sends none).

use std::time::Duration;

use chrono::Utc;
use dr_restore::handler::{deadline_in, run_job, AwsDeps};
use dr_restore::port::{Conflict, S3State, StateStore};
use serde_json::{json, Value};
use shared::config::{CommonConfig, Vars};
use suite_tests::rds::{drop_database, pg, REPORTS, SECRET};
use suite_tests::{create_buckets, exclusive_moto, get, Moto};

// ---- PostgreSQL -----------------------------------------------------------------------

/// A throwaway database with Alembic heads, 50 orders whose newest update is `newest_age` old,
/// and a users table with naive timestamps.
struct TestDb {
    name: String,
}

impl TestDb {
    async fn create(tag: &str, heads: &[&str], newest_age: chrono::Duration) -> TestDb {
        let name = format!(
            "dr_it_{tag}_{}_{}",
            std::process::id(),
            Utc::now().timestamp_micros() % 1_000_000_000
        );
        let admin = pg("postgres").await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let c = pg(&name).await;
        c.batch_execute(
            "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
             CREATE TABLE orders (id serial PRIMARY KEY, amount numeric NOT NULL,
                                  created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
             CREATE TABLE users (id serial PRIMARY KEY, email text, created_at timestamp NOT NULL);",
        )
        .await
        .expect("schema");
        for h in heads {
            c.execute("INSERT INTO alembic_version VALUES ($1)", &[h])
                .await
                .expect("head");
        }
        let newest = Utc::now() - newest_age;
        c.execute(
            "INSERT INTO orders (amount, created_at, updated_at)
             SELECT n * 1.5, $1::timestamptz - n * interval '1 hour', $1::timestamptz - n * interval '1 minute'
             FROM generate_series(0, 49) AS n",
            &[&newest],
        )
        .await
        .expect("orders");
        c.execute(
            "INSERT INTO users (email, created_at) SELECT 'u' || n || '@example.com', ($1::timestamptz - n * interval '1 day') AT TIME ZONE 'UTC' FROM generate_series(1, 5) AS n",
            &[&newest],
        )
        .await
        .expect("users");
        TestDb { name }
    }

    async fn drop(self) {
        drop_database(&self.name).await;
    }
}

// ---- moto -----------------------------------------------------------------------------

async fn rds(m: &Moto) -> aws_sdk_rds::Client {
    aws_sdk_rds::Client::new(&m.clients().await.sdk)
}

/// The source instance, the drill's subnet group and parameter group, the credentials secret,
/// the report bucket.
async fn seed(m: &Moto) {
    suite_tests::rds::seed(
        m,
        "trust-auth-ignores-it",
        "drill parameter group (rds.force_ssl=0)",
    )
    .await;
}

fn vars(m: &Moto, db: &str, extra: &[(&str, &str)]) -> Vars {
    let mut pairs: Vec<(String, String)> = m.env();
    for (k, v) in [
        ("ENVIRONMENT", "local"),
        ("DEPLOYMENT", "it"),
        ("REPORT_BUCKET", REPORTS),
        ("DR_SOURCE_DB_INSTANCE", "app-db"),
        ("DR_SUBNET_GROUP", "dr-private"),
        ("DR_SECURITY_GROUP_IDS", "sg-0a1b2c3d,sg-4e5f6a7b"),
        ("DR_PARAMETER_GROUP", "dr-pg15"),
        ("DR_INSTANCE_CLASS", "db.t3.small"),
        ("DR_TAGS", "team=platform,purpose=dr-drill"),
        ("DR_DB_NAME", db),
        ("DR_DB_SECRET_ID", SECRET),
        ("DR_DB_HOST_OVERRIDE", "127.0.0.1"),
        ("DR_DB_PORT_OVERRIDE", "5432"),
        ("DR_DB_CONNECT_TIMEOUT_MS", "2000"),
        ("DR_EXPECTED_HEADS", "a1b2c3d4e5f6,0f9e8d7c6b5a"),
        (
            "DR_SANITY_QUERIES",
            r#"[{"name": "orders", "sql": "SELECT count(*) FROM orders", "min": 10, "max": 100000}]"#,
        ),
        ("DR_CRITICAL_TABLES", "orders,users"),
        ("DR_CURRENCY_COLUMNS", "orders.updated_at,users.created_at"),
    ] {
        pairs.push((k.into(), v.into()));
    }
    for (k, v) in extra {
        pairs.retain(|(a, _)| a != k);
        pairs.push((k.to_string(), v.to_string()));
    }
    Vars::from_pairs(pairs)
}

async fn deps(m: &Moto, db: &str, extra: &[(&str, &str)]) -> AwsDeps {
    let _ = m.clients().await; // puts the test credentials in the process environment
    let v = vars(m, db, extra);
    let common = CommonConfig::from_vars(&v, "dr-restore").expect("common");
    AwsDeps::from_vars(&v, common).await.expect("deps")
}

async fn invoke(d: &AwsDeps, payload: Value) -> Value {
    run_job(d, &payload, deadline_in(Duration::from_secs(120)))
        .await
        .unwrap_or_else(|e| panic!("{payload}: {e}"))
}

fn rds_event(id: &str, source: &str, event_id: &str, category: &str, message: &str) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "RDS DB Instance Event", "source": "aws.rds",
        "account": "123456789012", "time": Utc::now().to_rfc3339(), "region": "us-east-1",
        "resources": [format!("arn:aws:rds:us-east-1:123456789012:db:{source}")],
        "detail": {"EventCategories": [category], "SourceType": "DB_INSTANCE",
                   "SourceArn": format!("arn:aws:rds:us-east-1:123456789012:db:{source}"),
                   "Date": Utc::now().to_rfc3339(), "Message": message,
                   "SourceIdentifier": source, "EventID": event_id}
    })
}

async fn report(m: &Moto) -> (Value, String) {
    let s3 = m.s3().await;
    let month = Utc::now().format("%Y-%m").to_string();
    let j = get(&s3, REPORTS, &format!("reports/dr/{month}.json"))
        .await
        .expect("report json");
    let md = get(&s3, REPORTS, &format!("reports/dr/{month}.md"))
        .await
        .expect("report md");
    (
        serde_json::from_slice(&j).expect("json"),
        String::from_utf8(md).expect("utf8"),
    )
}

// ---- tests ----------------------------------------------------------------------------

/// moto 5.2.5 honours S3 conditional writes; the drill's concurrency rests on them.
#[tokio::test]
async fn conditional_writes_are_honoured_by_the_state_store() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    create_buckets(&s3, &[REPORTS]).await;
    let store = S3State::new(s3, REPORTS);
    let e1 = store
        .create("k.json", b"1".to_vec(), "application/json")
        .await
        .unwrap()
        .expect("first create wins");
    assert_eq!(
        store
            .create("k.json", b"2".to_vec(), "application/json")
            .await
            .unwrap(),
        Err(Conflict)
    );
    let e2 = store
        .replace("k.json", b"3".to_vec(), "application/json", &e1)
        .await
        .unwrap()
        .expect("current etag wins");
    assert_eq!(
        store
            .replace("k.json", b"4".to_vec(), "application/json", &e1)
            .await
            .unwrap(),
        Err(Conflict),
        "stale etag loses"
    );
    let (body, etag) = store.load("k.json").await.unwrap().unwrap();
    assert_eq!((body, etag), (b"3".to_vec(), e2));
}

/// The whole drill driven by RDS events: start, an event for another instance, the restore
/// event, a repeated event; explicit groups and tags on the restored instance; deleted after
/// the checks; report and verdicts.
#[tokio::test]
async fn drill_driven_by_rds_events_passes_and_cleans_up() {
    let (_g, m) = exclusive_moto().await;
    seed(m).await;
    let db = TestDb::create(
        "pass",
        &["a1b2c3d4e5f6", "0f9e8d7c6b5a"],
        chrono::Duration::seconds(30),
    )
    .await;
    let d = deps(m, &db.name, &[]).await;

    let r = invoke(
        &d,
        json!({"action": "start", "drill_id": "it-pass", "triggered_by": "integration test"}),
    )
    .await;
    assert_eq!(r["status"], "STARTED", "{r}");
    assert_eq!(r["phase"], "RESTORING", "{r}");
    // A repeated start (the scheduler delivers at least once) changes nothing.
    let again = invoke(&d, json!({"action": "start", "drill_id": "it-pass"})).await;
    assert_eq!(again["status"], "ALREADY_STARTED", "{again}");

    // The restore was told everything explicitly.
    let client = rds(m).await;
    let i = client
        .describe_db_instances()
        .db_instance_identifier("dr-drill-it-pass")
        .send()
        .await
        .expect("restored instance exists");
    let i = &i.db_instances()[0];
    assert_eq!(i.db_instance_class(), Some("db.t3.small"));
    assert_eq!(
        i.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some("dr-private")
    );
    let sgs: Vec<&str> = i
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id())
        .collect();
    assert_eq!(sgs, vec!["sg-0a1b2c3d", "sg-4e5f6a7b"]);
    assert_eq!(
        i.db_parameter_groups()[0].db_parameter_group_name(),
        Some("dr-pg15")
    );
    let tags: Vec<(String, String)> = i
        .tag_list()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().into(),
                t.value().unwrap_or_default().into(),
            )
        })
        .collect();
    for want in [
        ("dr-drill-id", "it-pass"),
        ("team", "platform"),
        ("managed-by", "dr-restore"),
    ] {
        assert!(tags.contains(&(want.0.into(), want.1.into())), "{tags:?}");
    }

    let other = invoke(
        &d,
        rds_event(
            "ev-0",
            "app-db",
            "RDS-EVENT-0001",
            "backup",
            "Backing up DB instance",
        ),
    )
    .await;
    assert_eq!(other["status"], "IGNORED");
    assert!(
        other["note"].as_str().unwrap().contains("another instance"),
        "{other}"
    );

    let ev = rds_event(
        "ev-1",
        "dr-drill-it-pass",
        "RDS-EVENT-0019",
        "restoration",
        "Restored from DB instance app-db",
    );
    let r = invoke(&d, ev.clone()).await;
    assert_eq!(r["status"], "FINISHED", "{r}");
    assert_eq!(r["phase"], "DONE", "{r}");
    let steps: Vec<&str> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for s in [
        "RESTORING -> AVAILABLE",
        "AVAILABLE -> VERIFYING",
        "VERIFYING -> CLEANING",
        "CLEANING -> DONE",
        "report written",
    ] {
        assert!(steps.contains(&s), "{steps:?}");
    }
    // Deleted after the checks.
    let gone = client
        .describe_db_instances()
        .db_instance_identifier("dr-drill-it-pass")
        .send()
        .await;
    assert!(gone.is_err(), "the restored instance is deleted");

    let repeat = invoke(&d, ev).await;
    assert_eq!(repeat["status"], "IGNORED", "{repeat}");

    let (j, md) = report(m).await;
    let drill = j["drills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["drill_id"] == "it-pass")
        .expect("drill in report");
    assert_eq!(drill["success"], true, "{drill}");
    assert_eq!(drill["triggered_by"], "integration test");
    assert_eq!(drill["schema"]["passed"], true);
    let rpo = &drill["rpo"];
    assert_eq!(rpo["verdict"], "MET", "{rpo}");
    let rpo_s = rpo["rpo_seconds"].as_f64().unwrap();
    assert!((25.0..120.0).contains(&rpo_s), "rpo {rpo_s}");
    assert_eq!(rpo["newest_write_column"], "orders.updated_at");
    let kinds: Vec<&str> = drill["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["connect", "schema", "sanity", "smoke", "smoke", "currency", "currency", "rpo"]
    );
    assert!(drill["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["duration_ms"].as_f64().is_some()));
    assert!(drill["timings"]["total_seconds"].as_f64().is_some());
    assert!(md.contains("## Restore drill `it-pass`: PASSED"), "{md}");
    assert!(md.contains("| alembic_version | schema | pass |"), "{md}");
    // The password never reaches the report.
    assert!(
        !md.contains("trust-auth-ignores-it") && !j.to_string().contains("trust-auth-ignores-it")
    );
    db.drop().await;
}

/// (name, heads in alembic_version, age of the newest write, extra variables, expected reason)
type Case = (
    &'static str,
    Vec<&'static str>,
    chrono::Duration,
    Vec<(&'static str, &'static str)>,
    &'static str,
);

/// Each failing verdict fails the drill with a clear reason, and the failed drill is still
/// cleaned up.
#[tokio::test]
async fn failing_verdicts_name_the_reason() {
    let (_g, m) = exclusive_moto().await;
    seed(m).await;
    let cases: Vec<Case> = vec![
        (
            "missing",
            vec!["a1b2c3d4e5f6"],
            chrono::Duration::seconds(30),
            vec![],
            "missing head(s) 0f9e8d7c6b5a",
        ),
        (
            "extra",
            vec!["a1b2c3d4e5f6", "0f9e8d7c6b5a", "deadbeef0001"],
            chrono::Duration::seconds(30),
            vec![],
            "extra head(s) deadbeef0001 not in the expected heads",
        ),
        (
            "stale",
            vec!["a1b2c3d4e5f6", "0f9e8d7c6b5a"],
            chrono::Duration::minutes(30),
            vec![],
            "stale data: newest write orders.updated_at",
        ),
        (
            "down",
            vec!["a1b2c3d4e5f6", "0f9e8d7c6b5a"],
            chrono::Duration::seconds(30),
            // Nothing listens on port 1.
            vec![("DR_DB_PORT_OVERRIDE", "1")],
            "database unreachable: 127.0.0.1:1/",
        ),
    ];
    for (tag, heads, age, extra, reason) in cases {
        let db = TestDb::create(tag, &heads, age).await;
        let d = deps(m, &db.name, &extra).await;
        let id = format!("it-{tag}");
        let r = invoke(&d, json!({"action": "start", "drill_id": id})).await;
        assert_eq!(r["phase"], "RESTORING", "{tag}: {r}");
        let r = invoke(
            &d,
            rds_event(
                &format!("e-{tag}"),
                &format!("dr-drill-{id}"),
                "RDS-EVENT-0019",
                "restoration",
                "restored",
            ),
        )
        .await;
        assert_eq!(r["phase"], "FAILED", "{tag}: {r}");
        let failure = r["failure"].as_str().unwrap_or_default();
        assert!(failure.contains(reason), "{tag}: {failure}");
        assert!(
            rds(m)
                .await
                .describe_db_instances()
                .db_instance_identifier(format!("dr-drill-{id}"))
                .send()
                .await
                .is_err(),
            "{tag}: a failed drill is cleaned up too"
        );
        let (j, md) = report(m).await;
        let drill = j["drills"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["drill_id"] == id.as_str())
            .cloned()
            .expect("in report");
        assert_eq!(drill["success"], false);
        assert!(
            drill["failures"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f.as_str().unwrap().contains(reason)),
            "{tag}: {drill}"
        );
        assert!(
            md.contains(&format!("## Restore drill `{id}`: FAILED")),
            "{md}"
        );
        assert!(md.contains("**Failure summary**"));
        db.drop().await;
    }
    // The stale-data drill still reports the RPO it measured.
    let (j, _) = report(m).await;
    let stale = j["drills"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["drill_id"] == "it-stale")
        .unwrap()
        .clone();
    assert_eq!(stale["rpo"]["verdict"], "MISSED");
    assert!(
        stale["rpo"]["rpo_seconds"].as_f64().unwrap() >= 1790.0,
        "{}",
        stale["rpo"]
    );
}

/// A restore RDS refuses (here: the subnet group does not exist) fails the drill at once, with
/// RDS's reason, and nothing is left to clean up.
#[tokio::test]
async fn a_restore_that_fails_is_reported() {
    let (_g, m) = exclusive_moto().await;
    seed(m).await;
    let d = deps(m, "unused", &[("DR_SUBNET_GROUP", "no-such-group")]).await;
    let r = invoke(&d, json!({"action": "start", "drill_id": "it-rejected"})).await;
    assert_eq!(r["phase"], "FAILED", "{r}");
    assert_eq!(r["status"], "FINISHED", "{r}");
    let f = r["failure"].as_str().unwrap();
    assert!(
        f.contains("restore request rejected: DBSubnetGroupNotFoundFault"),
        "{f}"
    );
    let (j, md) = report(m).await;
    assert_eq!(j["drills"][0]["drill_id"], "it-rejected");
    assert!(md.contains("DBSubnetGroupNotFoundFault"), "{md}");
    // Reported once: a poll finds nothing to do.
    let p = invoke(&d, json!({"action": "poll"})).await;
    assert_eq!(p["drills"].as_array().unwrap().len(), 0, "{p}");
}

async fn put_state(m: &Moto, drill_id: &str, f: impl Fn(&mut Value)) {
    let s3 = m.s3().await;
    let key = format!("dr-restore/drills/{drill_id}.json");
    let mut v: Value =
        serde_json::from_slice(&get(&s3, REPORTS, &key).await.expect("state")).unwrap();
    f(&mut v);
    suite_tests::put(&s3, REPORTS, &key, serde_json::to_vec(&v).unwrap()).await;
}

/// Crashes: after the restore call but before the state was written (the restore is found by
/// its tag and adopted), and during verification (taken over by the poll once the lease ran
/// out, not before).
#[tokio::test]
async fn drills_resume_after_a_crash() {
    let (_g, m) = exclusive_moto().await;
    seed(m).await;
    let db = TestDb::create(
        "resume",
        &["a1b2c3d4e5f6", "0f9e8d7c6b5a"],
        chrono::Duration::seconds(20),
    )
    .await;
    let d = deps(m, &db.name, &[]).await;
    let r = invoke(&d, json!({"action": "start", "drill_id": "it-resume"})).await;
    assert_eq!(r["phase"], "RESTORING");
    // As if the write after the restore call was lost.
    put_state(m, "it-resume", |v| {
        v["phase"] = json!("STARTING");
        v["history"] = json!([]);
    })
    .await;
    let r = invoke(&d, json!({"action": "step", "drill_id": "it-resume"})).await;
    assert_eq!(
        r["phase"], "RESTORING",
        "adopted the existing instance: {r}"
    );

    // Now as if an invocation died while verifying, its lease still running.
    let now = Utc::now();
    put_state(m, "it-resume", |v| {
        v["phase"] = json!("VERIFYING");
        v["available_at"] = json!(now.to_rfc3339());
        v["endpoint"] = json!({"host": "dr-drill-it-resume.aaaaaaaaaa.us-east-1.rds.amazonaws.com", "port": 5432});
        v["verify_started_at"] = json!(now.to_rfc3339());
        v["verify_lease_until"] = json!((now + chrono::Duration::minutes(10)).to_rfc3339());
    })
    .await;
    let p = invoke(&d, json!({"action": "poll"})).await;
    assert_eq!(p["drills"][0]["status"], "WAITING", "{p}");
    assert!(
        p["drills"][0]["note"].as_str().unwrap().contains("lease"),
        "{p}"
    );
    // The lease ran out.
    put_state(m, "it-resume", |v| {
        v["verify_lease_until"] = json!((now - chrono::Duration::minutes(1)).to_rfc3339());
    })
    .await;
    let p = invoke(&d, json!({"action": "poll"})).await;
    assert_eq!(p["drills"][0]["phase"], "DONE", "{p}");
    let st = invoke(&d, json!({"action": "status", "drill_id": "it-resume"})).await;
    let causes: Vec<&str> = st["drill"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["cause"].as_str().unwrap())
        .collect();
    assert!(
        causes.contains(&"verification lease expired: taken over"),
        "{causes:?}"
    );
    db.drop().await;
}

/// Two invocations racing on one drill (an RDS event and the poll): the conditional writes
/// let exactly one verify and clean up; the drill is reported once.
#[tokio::test]
async fn concurrent_invocations_advance_the_drill_once() {
    let (_g, m) = exclusive_moto().await;
    seed(m).await;
    let db = TestDb::create(
        "race",
        &["a1b2c3d4e5f6", "0f9e8d7c6b5a"],
        chrono::Duration::seconds(20),
    )
    .await;
    let d = deps(m, &db.name, &[]).await;
    invoke(&d, json!({"action": "start", "drill_id": "it-race"})).await;
    let ev = rds_event(
        "ev-race",
        "dr-drill-it-race",
        "RDS-EVENT-0019",
        "restoration",
        "restored",
    );
    let poll = json!({"action": "poll"});
    let step = json!({"action": "step", "drill_id": "it-race"});
    let (a, b, c) = tokio::join!(
        run_job(&d, &ev, deadline_in(Duration::from_secs(120))),
        run_job(&d, &poll, deadline_in(Duration::from_secs(120))),
        run_job(&d, &step, deadline_in(Duration::from_secs(120))),
    );
    let (a, b, c) = (a.expect("event"), b.expect("poll"), c.expect("step"));
    let st = invoke(&d, json!({"action": "status", "drill_id": "it-race"})).await;
    assert_eq!(st["drill"]["phase"], "DONE", "{a}\n{b}\n{c}\n{st}");
    let to: Vec<&str> = st["drill"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        to,
        vec!["RESTORING", "AVAILABLE", "VERIFYING", "CLEANING", "DONE"],
        "each transition once: {a}\n{b}\n{c}"
    );
    let (j, _) = report(m).await;
    assert_eq!(j["drills"].as_array().unwrap().len(), 1);
    db.drop().await;
}

/// A tiny HTTP server: `/health` answers 200, anything else 503.
async fn http_server() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let (status, body) = if req.starts_with("GET /health ") {
                    ("200 OK", "ok")
                } else {
                    ("503 Service Unavailable", "down")
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes())
                    .await;
            });
        }
    });
    port
}

async fn ssm(m: &Moto) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&m.clients().await.sdk)
}

async fn param(m: &Moto, name: &str) -> (String, i64) {
    let p = ssm(m)
        .await
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .expect("param");
    let p = p.parameter().unwrap();
    (p.value().unwrap().to_string(), p.version())
}

/// Failover rehearsal: the dry run touches nothing, prod refuses without the confirmation, the
/// real run promotes, switches the flags, checks the promoted database and smoke-tests.
#[tokio::test]
async fn failover_rehearsal() {
    let (_g, m) = exclusive_moto().await;
    seed(m).await;
    let db = TestDb::create(
        "failover",
        &["a1b2c3d4e5f6", "0f9e8d7c6b5a"],
        chrono::Duration::seconds(45),
    )
    .await;
    rds(m)
        .await
        .create_db_instance_read_replica()
        .db_instance_identifier("app-db-replica")
        .source_db_instance_identifier("app-db")
        .send()
        .await
        .expect("replica");
    let s = ssm(m).await;
    for (name, value) in [
        (
            "/app/local/DATABASE_URL",
            "postgresql://app:primary-secret@app-db:5432/app",
        ),
        (
            "/app/local/standby/DATABASE_URL",
            "postgresql://app:standby-secret@app-db-replica:5432/app",
        ),
        ("/app/local/S3_BUCKET", "app-primary"),
        ("/app/local/standby/S3_BUCKET", "app-dr"),
    ] {
        s.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("param");
    }
    let port = http_server().await;
    let health = format!("http://127.0.0.1:{port}/health");
    let broken = format!("http://127.0.0.1:{port}/orders");
    let smoke = format!("{health},{broken}");
    let fo: Vec<(&str, &str)> = vec![
        ("DR_FAILOVER_REPLICA", "app-db-replica"),
        ("DR_FAILOVER_DATABASE_URL_PARAM", "/app/local/DATABASE_URL"),
        (
            "DR_FAILOVER_DATABASE_URL_STANDBY_PARAM",
            "/app/local/standby/DATABASE_URL",
        ),
        ("DR_FAILOVER_S3_BUCKET_PARAM", "/app/local/S3_BUCKET"),
        (
            "DR_FAILOVER_S3_BUCKET_STANDBY_PARAM",
            "/app/local/standby/S3_BUCKET",
        ),
        ("DR_SMOKE_URLS", &health),
        ("DR_SMOKE_TIMEOUT_MS", "2000"),
    ];
    let d = deps(m, &db.name, &fo).await;

    let dry = invoke(&d, json!({"action": "failover"})).await;
    assert_eq!(dry["status"], "DRY_RUN", "{dry}");
    let plan: Vec<&str> = dry["plan"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        plan[0].starts_with("PromoteReadReplica app-db-replica"),
        "{plan:?}"
    );
    assert!(
        plan.iter()
            .any(|p| p.contains("/app/local/DATABASE_URL") && p.contains("standby")),
        "{plan:?}"
    );
    assert!(
        plan.iter().any(|p| p.contains(&format!("GET {health}"))),
        "{plan:?}"
    );
    assert_eq!(
        param(m, "/app/local/DATABASE_URL").await.1,
        1,
        "a dry run touches nothing"
    );
    let s3 = m.s3().await;
    assert!(get(
        &s3,
        REPORTS,
        &format!("reports/dr/{}.json", Utc::now().format("%Y-%m"))
    )
    .await
    .is_none());

    // Production: refused without the explicit confirmation (no host override there).
    let mut prod: Vec<(&str, &str)> = fo.clone();
    prod.extend([
        ("ENVIRONMENT", "prod"),
        ("DR_DB_HOST_OVERRIDE", ""),
        ("DR_DB_PORT_OVERRIDE", ""),
    ]);
    let p = deps(m, &db.name, &prod).await;
    let e = run_job(
        &p,
        &json!({"action": "failover", "dry_run": false}),
        deadline_in(Duration::from_secs(60)),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("confirm") && e.contains("app-db-replica"), "{e}");
    let e = run_job(
        &p,
        &json!({"action": "failover", "dry_run": false, "confirm": "app-db"}),
        deadline_in(Duration::from_secs(60)),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), "InvalidInput");
    assert_eq!(
        param(m, "/app/local/DATABASE_URL").await.1,
        1,
        "a refused failover touches nothing"
    );

    let r = invoke(&d, json!({"action": "failover", "dry_run": false, "rehearsal_id": "it-fo", "triggered_by": "it"})).await;
    assert_eq!(r["status"], "FAILOVER_PASSED", "{r}");
    let (url, v) = param(m, "/app/local/DATABASE_URL").await;
    assert!(
        url.contains("standby-secret") && v == 2,
        "DATABASE_URL switched to the standby's value"
    );
    assert_eq!(param(m, "/app/local/S3_BUCKET").await.0, "app-dr");
    let rec = &r["record"];
    let names: Vec<&str> = rec["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "promote read replica",
            "switch DATABASE_URL",
            "switch S3_BUCKET",
            "check promoted database"
        ]
    );
    assert!(rec["failover_seconds"].as_f64().is_some());
    assert_eq!(rec["smoke"][0]["status"], 200);
    assert_eq!(
        rec["data_currency"]["rpo"]["verdict"], "MET",
        "{}",
        rec["data_currency"]
    );
    // Versions only: the URLs are secrets.
    assert!(!r.to_string().contains("secret@"), "{r}");
    let again = invoke(
        &d,
        json!({"action": "failover", "dry_run": false, "rehearsal_id": "it-fo"}),
    )
    .await;
    assert_eq!(again["status"], "ALREADY_RUN");

    // A failing smoke test fails the rehearsal with the endpoint and status.
    let mut bad = fo.clone();
    bad.retain(|(k, _)| *k != "DR_SMOKE_URLS");
    bad.push(("DR_SMOKE_URLS", &smoke));
    let d2 = deps(m, &db.name, &bad).await;
    let r = invoke(
        &d2,
        json!({"action": "failover", "dry_run": false, "rehearsal_id": "it-fo-2"}),
    )
    .await;
    assert_eq!(r["status"], "FAILOVER_FAILED", "{r}");
    let failures = r["record"]["failures"].to_string();
    assert!(
        failures.contains(&format!("smoke GET {broken}: HTTP 503")),
        "{failures}"
    );
    let (_, md) = report(m).await;
    assert!(
        md.contains("## Failover rehearsal `it-fo`: PASSED")
            && md.contains("## Failover rehearsal `it-fo-2`: FAILED"),
        "{md}"
    );
    db.drop().await;
}
