//! manifest-diff under faults.
//!
//! Invariant, checked after every delivery and every kill: no half-written report is presented
//! as complete. A report's JSON is written last; so every report JSON under the report prefix
//! must parse, be final (not IN_PROGRESS), and name a Markdown report and a drift CSV that
//! exist and list exactly the drifting keys it counts. At the end, the run carried through
//! faults and redeliveries reports the same counts as a fault-free run over the same buckets.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use fault_proxy::{ErrorKind, ResetPoint};
use fault_tests::{context, deliver_until_ok, Faulted, BURST, BURST_FRACTION};
use lambda_runtime::LambdaEvent;
use manifest_diff::handler::{handle, Continuation, Deps};
use manifest_diff::request::Defaults;
use serde_json::{json, Value};
use shared::config::{CommonConfig, Vars};
use shared::store::S3Store;
use suite_tests::inventory::{write_report, Report, Row};
use suite_tests::{create_buckets, exclusive_moto, get, put};

use crate::gunzip;

const PRIMARY: &str = "mdf-primary";
const REPLICA: &str = "mdf-replica";
const REPORTS: &str = "mdf-reports";
const INVENTORY: &str = "mdf-inventory";

fn deps(s3: aws_sdk_s3::Client, scratch: &Path) -> Deps<S3Store> {
    Deps {
        common: CommonConfig {
            function_name: "manifest-diff".into(),
            environment: "local".into(),
            deployment: "faults".into(),
            report_bucket: REPORTS.into(),
            report_prefix: "reports/".into(),
            metrics_namespace: "Test".into(),
            log_mask_fields: vec![],
        },
        defaults: Defaults::from_vars(&Vars::from_pairs([
            ("PRIMARY_BUCKET", PRIMARY),
            ("REPLICA_BUCKET", REPLICA),
            ("PREFIXES", "attachments/"),
            ("PRIMARY_INVENTORY", "s3://mdf-inventory/mdf-primary/daily/"),
            ("REPLICA_INVENTORY", "s3://mdf-inventory/mdf-replica/daily/"),
        ]))
        .unwrap(),
        store: S3Store::new(s3),
        lambda: None,
        continuation: Continuation::Return,
        margin: Duration::ZERO,
        scratch: scratch.to_path_buf(),
        sort_budget_bytes: 1 << 14,
    }
}

async fn invoke_with(
    d: &Deps<S3Store>,
    payload: Value,
    budget: Duration,
) -> Result<Value, shared::SuiteError> {
    handle(d, LambdaEvent::new(payload, context(budget))).await
}

async fn invoke(d: &Deps<S3Store>, payload: Value) -> Result<Value, shared::SuiteError> {
    invoke_with(d, payload, Duration::from_secs(600)).await
}

/// 40 keys on both sides; 3 missing, 1 extra, 1 of another size: 5 drifting keys.
async fn seed_buckets(s3: &aws_sdk_s3::Client) -> chrono::DateTime<Utc> {
    create_buckets(s3, &[PRIMARY, REPLICA, REPORTS]).await;
    for i in 0..40 {
        let k = format!("attachments/doc {i:02}+.pdf");
        put(s3, PRIMARY, &k, format!("body {i}")).await;
        if !(10..13).contains(&i) {
            let b = if i == 20 {
                "other size".to_string()
            } else {
                format!("body {i}")
            };
            put(s3, REPLICA, &k, b).await;
        }
    }
    put(s3, REPLICA, "attachments/only-replica.pdf", "x").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    Utc::now()
}

fn list_payload(now: chrono::DateTime<Utc>, run_id: &str) -> Value {
    json!({"source": "list", "now": now.to_rfc3339(), "lag_allowance_hours": 1.0 / 3600.0,
           "run_id": run_id})
}

fn s3_uri(uri: &Value) -> (String, String) {
    let rest = uri.as_str().unwrap().strip_prefix("s3://").unwrap();
    let (b, k) = rest.split_once('/').unwrap();
    (b.to_string(), k.to_string())
}

/// The invariant: every report JSON present is complete and consistent with its parts.
/// Returns how many there are.
async fn no_half_written_report(s3: &aws_sdk_s3::Client) -> usize {
    let listed = s3
        .list_objects_v2()
        .bucket(REPORTS)
        .prefix("reports/manifest-diff/")
        .send()
        .await
        .unwrap();
    let mut n = 0;
    for o in listed.contents() {
        let key = o.key().unwrap();
        if key.contains("/_state/") || !key.ends_with(".json") {
            continue;
        }
        n += 1;
        let v: Value = serde_json::from_slice(&get(s3, REPORTS, key).await.unwrap())
            .unwrap_or_else(|e| panic!("{key}: report JSON unreadable: {e}"));
        assert_ne!(v["status"], "IN_PROGRESS", "{key}: {v}");
        let (b, k) = s3_uri(&v["report"]["markdown"]);
        assert!(
            get(s3, &b, &k).await.is_some(),
            "{key}: its Markdown {k} is missing"
        );
        let (b, k) = s3_uri(&v["report"]["drift_csv"]);
        let csv = gunzip(
            &get(s3, &b, &k)
                .await
                .unwrap_or_else(|| panic!("{key}: its drift CSV {k} is missing")),
        )
        .expect("drift CSV is gzip");
        let rows = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(&csv[..])
            .records()
            .count();
        assert_eq!(
            rows as u64,
            v["drifting_keys"].as_u64().unwrap(),
            "{key}: the drift CSV lists every drifting key it counts"
        );
    }
    n
}

async fn list_run_under(setup: impl Fn(&Faulted), tag: &str) -> Faulted {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    let now = seed_buckets(&s3).await;
    let tmp = tempfile::tempdir().unwrap();
    let expected = invoke(&deps(s3.clone(), tmp.path()), list_payload(now, "base"))
        .await
        .unwrap();
    assert_eq!(expected["totals"]["missing"], 3, "{expected}");
    assert_eq!(expected["drifting_keys"], 5, "{expected}");

    let f = Faulted::new(m).await;
    setup(&f);
    let tmp2 = tempfile::tempdir().unwrap();
    let d = deps(f.s3(), tmp2.path());
    // Checkpointed: one page of 4 keys per invocation; a failed invocation is redelivered as
    // it was, a finished one continues with `resume`.
    let mut payload = list_payload(now, "faulty");
    payload["page_size"] = json!(4);
    payload["max_runtime_seconds"] = json!(0);
    let mut failures = vec![];
    let mut v = Value::Null;
    for _ in 0..80 {
        let s3r = &s3;
        let out = deliver_until_ok(
            8,
            || invoke(&d, payload.clone()),
            move || async move {
                no_half_written_report(s3r).await;
            },
        )
        .await;
        failures.extend(out.errors);
        v = out.result;
        if v["status"] != "IN_PROGRESS" {
            break;
        }
        assert!(v["resume"].is_object(), "a continuation is lost: {v}");
        payload = json!({"resume": v["resume"], "max_runtime_seconds": 0});
    }
    f.proxy.clear();
    assert_eq!(v["totals"], expected["totals"], "{v}");
    assert_eq!(v["prefixes"], expected["prefixes"]);
    assert_eq!(no_half_written_report(&s3).await, 2);
    eprintln!("{tag}: failures {failures:?}, proxy {:?}", f.proxy.stats());
    f
}

#[tokio::test]
async fn a_checkpointed_list_run_through_a_burst_reports_what_a_clean_run_reports() {
    let f = list_run_under(
        |f| {
            f.proxy.seed(21);
            f.proxy.error_burst(BURST_FRACTION, BURST, ErrorKind::Mixed)
        },
        "burst",
    )
    .await;
    assert!(
        f.proxy.stats().injected_errors() > 0,
        "{:?}",
        f.proxy.stats()
    );
}

#[tokio::test]
async fn a_list_run_through_resets_and_an_outage_reports_what_a_clean_run_reports() {
    let f = list_run_under(
        |f| {
            f.proxy.seed(23);
            f.proxy.connection_resets(0.2, BURST, ResetPoint::Mixed);
            f.proxy
                .outage(Duration::from_millis(300), Duration::from_millis(1000));
        },
        "resets",
    )
    .await;
    let s = f.proxy.stats();
    assert!(s.resets > 0 && s.down > 0, "{s:?}");
}

async fn seed_inventory(s3: &aws_sdk_s3::Client) {
    create_buckets(s3, &[PRIMARY, REPLICA, REPORTS, INVENTORY]).await;
    let old = Utc::now() - chrono::Duration::days(3);
    let primary: Vec<Row> = (0..300)
        .map(|i| {
            Row::live(
                &format!("attachments/k{i:04}"),
                10 + i,
                &format!("e{i}"),
                old,
            )
        })
        .collect();
    let mut replica = primary.clone();
    replica.retain(|r| r.key != "attachments/k0007" && r.key != "attachments/k0100");
    let created = Utc::now() - chrono::Duration::days(1);
    let files = |rows: &[Row]| -> Vec<Vec<Row>> { rows.chunks(60).map(<[Row]>::to_vec).collect() };
    for (base, src, rows) in [
        ("mdf-primary/daily/", PRIMARY, &primary),
        ("mdf-replica/daily/", REPLICA, &replica),
    ] {
        write_report(
            s3,
            Report {
                dest_bucket: INVENTORY,
                base,
                source_bucket: src,
                folder: "2026-11-26T01-00Z",
                created,
                with_checksum: true,
            },
            &files(rows),
        )
        .await;
    }
}

/// Inventory mode does not checkpoint (it must read both inventories whole). Cut it at many
/// points (as Lambda does at the deadline), and give it deadlines too short to finish: it
/// never presents a partial report, and the next delivery with enough time completes with
/// every difference.
#[tokio::test]
async fn inventory_mode_killed_or_out_of_time_never_presents_a_partial_report() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    seed_inventory(&s3).await;
    let f = Faulted::new(m).await;
    f.proxy.set_latency(Duration::from_millis(5));
    let tmp = tempfile::tempdir().unwrap();
    let d = deps(f.s3(), tmp.path());
    let payload = json!({"source": "inventory", "run_id": "inv"});

    // A deadline that runs out while downloading: a classified error, no report.
    let e = invoke_with(&d, payload.clone(), Duration::from_millis(30))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("deadline"), "{} {e}", e.class());
    assert_eq!(no_half_written_report(&s3).await, 0);

    let mut cut_after = 5u64;
    let mut kills = 0;
    let v = loop {
        match tokio::time::timeout(
            Duration::from_millis(cut_after),
            invoke(&d, payload.clone()),
        )
        .await
        {
            Ok(r) => break r.expect("an uncut delivery succeeds"),
            Err(_) => {
                kills += 1;
                assert_eq!(
                    no_half_written_report(&s3).await,
                    0,
                    "after a kill at {cut_after} ms"
                );
                cut_after = cut_after * 3 / 2 + 5;
            }
        }
    };
    assert!(kills >= 4, "{kills}");
    assert_eq!(v["totals"]["missing"], 2, "{v}");
    assert_eq!(v["totals"]["eligible_primary"], 300, "{v}");
    assert_eq!(no_half_written_report(&s3).await, 1);
    // A late duplicate replays the report.
    let again = invoke(&d, payload).await.unwrap();
    assert_eq!(again["replayed"], true);
}

/// Inventory mode under a burst and resets: completes (or fails classified and completes on
/// redelivery) with every difference.
#[tokio::test]
async fn inventory_mode_through_a_burst_and_resets_finds_every_difference() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    seed_inventory(&s3).await;
    let f = Faulted::new(m).await;
    f.proxy.seed(31);
    f.proxy.error_burst(BURST_FRACTION, BURST, ErrorKind::Mixed);
    f.proxy.connection_resets(0.1, BURST, ResetPoint::Mixed);
    let tmp = tempfile::tempdir().unwrap();
    let d = deps(f.s3(), tmp.path());
    let s3r = &s3;
    let out = deliver_until_ok(
        8,
        || invoke(&d, json!({"source": "inventory", "run_id": "inv-burst"})),
        move || async move {
            no_half_written_report(s3r).await;
        },
    )
    .await;
    f.proxy.clear();
    let v = out.result;
    assert_eq!(v["totals"]["missing"], 2, "{v}");
    assert_eq!(v["totals"]["matched"], 298, "{v}");
    let s = f.proxy.stats();
    assert!(s.injected_errors() > 0 && s.resets > 0, "{s:?}");
    assert_eq!(no_half_written_report(&s3).await, 1);
}
