//! manifest-diff against moto's real S3 API: list and inventory modes, the S3 event trigger,
//! checkpoint and resume, idempotent re-delivery, bad input, and one end-to-end run through
//! `cargo lambda watch` with the real AWS CLI.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use lambda_runtime::{Context, LambdaEvent};
use manifest_diff::handler::{handle, Continuation, Deps};
use manifest_diff::request::Defaults;
use serde_json::{json, Value};
use shared::config::{CommonConfig, Vars};
use shared::store::S3Store;
use suite_tests::inventory::{write_report, Report, Row};
use suite_tests::{create_buckets, exclusive_moto, get, put, Moto};

const PRIMARY: &str = "prod-files";
const REPLICA: &str = "dr-files";
const REPORTS: &str = "playbook-reports";
const INVENTORY: &str = "inventory-reports";

async fn deps(m: &Moto, scratch: &Path) -> Deps<S3Store> {
    let clients = m.clients().await;
    Deps {
        common: CommonConfig {
            function_name: "manifest-diff".into(),
            environment: "local".into(),
            deployment: "test".into(),
            report_bucket: REPORTS.into(),
            report_prefix: "reports/".into(),
            metrics_namespace: "Test".into(),
            log_mask_fields: vec![],
        },
        defaults: Defaults::from_vars(&Vars::from_pairs([
            ("PRIMARY_BUCKET", PRIMARY),
            ("REPLICA_BUCKET", REPLICA),
            (
                "PRIMARY_INVENTORY",
                "s3://inventory-reports/prod-files/daily/",
            ),
            (
                "REPLICA_INVENTORY",
                "s3://inventory-reports/dr-files/daily/",
            ),
        ]))
        .unwrap(),
        store: S3Store::new(clients.s3()),
        lambda: None,
        continuation: Continuation::Return,
        margin: Duration::ZERO,
        scratch: scratch.to_path_buf(),
        // Small, so that the inventory tests spill several sorted runs to disk.
        sort_budget_bytes: 1 << 16,
    }
}

async fn invoke(deps: &Deps<S3Store>, payload: Value) -> Result<Value, shared::SuiteError> {
    let mut ctx = Context::default();
    ctx.request_id = "test-request".into();
    ctx.deadline = (Utc::now().timestamp_millis() + 600_000) as u64;
    handle(deps, LambdaEvent::new(payload, ctx)).await
}

fn counts(v: &Value, prefix: Option<&str>) -> Value {
    match prefix {
        None => v["totals"].clone(),
        Some(p) => v["prefixes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["prefix"] == p)
            .cloned()
            .unwrap_or_else(|| panic!("no prefix {p} in {v}")),
    }
}

fn s3_uri_key(uri: &str) -> (String, String) {
    let rest = uri.strip_prefix("s3://").unwrap();
    let (b, k) = rest.split_once('/').unwrap();
    (b.to_string(), k.to_string())
}

fn gunzip_csv(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut s)
        .unwrap();
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(s.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// Seeds the two buckets with known drift. Returns the reference time to use as `now` with a
/// one-second lag allowance: objects written before it are "old", those after it "fresh".
async fn seed_list_drift(s3: &aws_sdk_s3::Client) -> chrono::DateTime<Utc> {
    create_buckets(s3, &[PRIMARY, REPLICA, REPORTS]).await;
    for i in 0..40 {
        let k = format!("attachments/doc-{i:03}.pdf");
        put(s3, PRIMARY, &k, format!("body {i}")).await;
        put(s3, REPLICA, &k, format!("body {i}")).await;
    }
    // Keys that need care: a space, a literal plus, an encoded-looking plus, unicode.
    for k in ["attachments/a b+c%2Bé.txt", "attachments/ünïcødé/файл.pdf"] {
        put(s3, PRIMARY, k, "same").await;
        put(s3, REPLICA, k, "same").await;
    }
    put(s3, PRIMARY, "attachments/missing-1.pdf", "m1").await;
    put(s3, PRIMARY, "attachments/missing 2+.pdf", "m2").await;
    put(s3, PRIMARY, "attachments/size.pdf", "abcdef").await;
    put(s3, REPLICA, "attachments/size.pdf", "abc").await;
    put(s3, PRIMARY, "attachments/etag.pdf", "aaaa").await;
    put(s3, REPLICA, "attachments/etag.pdf", "bbbb").await;
    put(s3, REPLICA, "attachments/extra.pdf", "x").await;
    for i in 0..20 {
        let k = format!("exports/e-{i:02}.csv");
        put(s3, PRIMARY, &k, format!("a,b\n{i},2\n")).await;
        put(s3, REPLICA, &k, format!("a,b\n{i},2\n")).await;
    }
    // Same bytes, multipart on the primary and a single PUT on the replica: the ETags differ
    // and must not count as drift.
    let big: Vec<u8> = (0..(5 * 1024 * 1024 + 10))
        .map(|i| (i % 251) as u8)
        .collect();
    let mp = s3
        .create_multipart_upload()
        .bucket(PRIMARY)
        .key("exports/big.bin")
        .send()
        .await
        .unwrap();
    let id = mp.upload_id().unwrap();
    let mut parts = vec![];
    for (n, chunk) in big.chunks(5 * 1024 * 1024).enumerate() {
        let p = s3
            .upload_part()
            .bucket(PRIMARY)
            .key("exports/big.bin")
            .upload_id(id)
            .part_number(n as i32 + 1)
            .body(chunk.to_vec().into())
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n as i32 + 1)
                .set_e_tag(p.e_tag().map(str::to_string))
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket(PRIMARY)
        .key("exports/big.bin")
        .upload_id(id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    put(s3, REPLICA, "exports/big.bin", big).await;
    put(s3, REPLICA, "exports/fresh-changed.csv", "old").await;

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mid = Utc::now();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Written "within the lag allowance": pending, not drift.
    put(s3, PRIMARY, "exports/fresh.csv", "new").await;
    put(s3, PRIMARY, "exports/fresh-changed.csv", "newer content").await;
    mid
}

fn list_payload(now: chrono::DateTime<Utc>) -> Value {
    json!({
        "source": "list",
        "now": now.to_rfc3339(),
        "lag_allowance_hours": 1.0 / 3600.0,
    })
}

fn assert_list_counts(v: &Value) {
    let a = counts(v, Some("attachments/"));
    assert_eq!(a["eligible_primary"], 46, "{a}");
    assert_eq!(a["missing"], 2, "{a}");
    assert_eq!(a["extra"], 1, "{a}");
    assert_eq!(a["mismatched_size"], 1, "{a}");
    assert_eq!(a["mismatched_etag"], 1, "{a}");
    assert_eq!(a["matched"], 42, "{a}");
    assert_eq!(a["status"], "DRIFT");
    let e = counts(v, Some("exports/"));
    assert_eq!(e["eligible_primary"], 23, "{e}");
    assert_eq!(e["matched"], 20, "{e}");
    assert_eq!(e["matched_size_only"], 1, "{e}");
    assert_eq!(e["pending"], 2, "{e}");
    assert_eq!(e["missing"], 0, "{e}");
    assert_eq!(e["status"], "OK");
    let t = counts(v, None);
    assert_eq!(t["eligible_primary"], 69);
    assert_eq!(v["status"], "DRIFT");
    assert_eq!(v["drifting_keys"], 7, "5 drifting + 2 pending listed");
    let ratio = v["drift_ratio"].as_f64().unwrap();
    assert!((ratio - 5.0 / 69.0).abs() < 1e-12, "{ratio}");
}

#[tokio::test]
async fn list_mode_reports_seeded_drift_and_replays_repeated_deliveries() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    let now = seed_list_drift(&s3).await;
    let tmp = tempfile::tempdir().unwrap();
    let d = deps(m, tmp.path()).await;

    let v = invoke(&d, list_payload(now)).await.unwrap();
    assert_list_counts(&v);
    assert_eq!(v["replayed"], false);

    // The report: JSON equal to the response, Markdown, and the drift CSV with decoded keys.
    let (b, k) = s3_uri_key(v["report"]["json"].as_str().unwrap());
    assert_eq!(b, REPORTS);
    assert!(
        k.starts_with(&format!(
            "reports/manifest-diff/{}/",
            Utc::now().format("%Y-%m-%d")
        )),
        "{k}"
    );
    let stored: Value = serde_json::from_slice(&get(&s3, &b, &k).await.unwrap()).unwrap();
    assert_eq!(stored, v);
    let (b, k) = s3_uri_key(v["report"]["markdown"].as_str().unwrap());
    let md = String::from_utf8(get(&s3, &b, &k).await.unwrap()).unwrap();
    assert!(
        md.contains("**DRIFT**") && md.contains("`attachments/missing 2+.pdf`"),
        "{md}"
    );
    let (b, k) = s3_uri_key(v["report"]["drift_csv"].as_str().unwrap());
    let rows = gunzip_csv(&get(&s3, &b, &k).await.unwrap());
    assert_eq!(rows[0][0], "prefix");
    let mut listed: Vec<(String, String)> = rows[1..]
        .iter()
        .map(|r| (r[1].clone(), r[2].clone()))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("attachments/etag.pdf".into(), "mismatched_etag".into()),
            ("attachments/extra.pdf".into(), "extra".into()),
            ("attachments/missing 2+.pdf".into(), "missing".into()),
            ("attachments/missing-1.pdf".into(), "missing".into()),
            ("attachments/size.pdf".into(), "mismatched_size".into()),
            ("exports/fresh-changed.csv".into(), "pending".into()),
            ("exports/fresh.csv".into(), "pending".into()),
        ]
    );

    // The same delivery again: answered from the report, nothing recomputed.
    let again = invoke(&d, list_payload(now)).await.unwrap();
    assert_eq!(again["replayed"], true);
    assert_eq!(again["run_id"], v["run_id"]);
    assert_eq!(again["totals"], v["totals"]);
}

#[tokio::test]
async fn list_mode_checkpoints_and_resumes_to_the_same_result() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    let now = seed_list_drift(&s3).await;
    let tmp = tempfile::tempdir().unwrap();
    let d = deps(m, tmp.path()).await;

    let mut oneshot = list_payload(now);
    oneshot["run_id"] = json!("oneshot");
    let expected = invoke(&d, oneshot).await.unwrap();

    // A zero budget: every invocation lists one page of five keys, then checkpoints.
    let mut p = list_payload(now);
    p["run_id"] = json!("chunked");
    p["page_size"] = json!(5);
    p["max_runtime_seconds"] = json!(0);
    let first = invoke(&d, p.clone()).await.unwrap();
    assert_eq!(first["status"], "IN_PROGRESS");
    assert_eq!(first["resume"]["sequence"], 1);

    // The continuation is lost (say its async invoke failed for good). Once the checkpoint is
    // older than any invocation can run, the next scheduled delivery takes the run over.
    let state_key = "reports/manifest-diff/_state/chunked.json";
    let mut state: Value =
        serde_json::from_slice(&get(&s3, REPORTS, state_key).await.unwrap()).unwrap();
    state["updated_at"] = json!((Utc::now() - chrono::Duration::minutes(20)).to_rfc3339());
    put(&s3, REPORTS, state_key, serde_json::to_vec(&state).unwrap()).await;
    let mut v = invoke(&d, p.clone()).await.unwrap();
    assert_eq!(v["status"], "IN_PROGRESS");
    assert_eq!(
        v["resume"]["sequence"], 2,
        "the abandoned run was resumed, not restarted: {v}"
    );
    let mut invocations = 2;
    let mut stale = None;
    while v["status"] == "IN_PROGRESS" {
        let resume = v["resume"].clone();
        assert_eq!(resume["run_id"], "chunked");
        stale = Some(resume.clone());
        // A duplicate delivery of the first call while the run is in progress does nothing.
        let dup = invoke(&d, p.clone()).await.unwrap();
        assert_eq!(dup["status"], "IN_PROGRESS");
        v = invoke(&d, json!({"resume": resume, "max_runtime_seconds": 0}))
            .await
            .unwrap();
        invocations += 1;
        assert!(invocations < 100, "no progress: {v}");
    }
    assert!(
        invocations > 5,
        "expected several checkpoints, got {invocations}"
    );
    assert_eq!(v["invocations"], invocations);
    assert_eq!(v["totals"], expected["totals"]);
    assert_eq!(v["prefixes"], expected["prefixes"]);
    assert_list_counts(&v);

    // The drift list, stitched from the parts, equals the one-shot list.
    let read = |uri: Value| {
        let s3 = s3.clone();
        async move {
            let (b, k) = s3_uri_key(uri.as_str().unwrap());
            gunzip_csv(&get(&s3, &b, &k).await.unwrap())
        }
    };
    assert_eq!(
        read(v["report"]["drift_csv"].clone()).await,
        read(expected["report"]["drift_csv"].clone()).await
    );

    // A late duplicate of a continuation replays the finished report.
    let late = invoke(&d, json!({"resume": stale.unwrap()})).await.unwrap();
    assert_eq!(late["replayed"], true);
    assert_eq!(late["totals"], v["totals"]);
}

fn ts(d: u32, h: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
}

/// Real-format inventories of both buckets with known differences, across several unsorted
/// files, plus an older complete report and a newer incomplete one that must be ignored.
async fn seed_inventories(s3: &aws_sdk_s3::Client) {
    create_buckets(s3, &[PRIMARY, REPLICA, REPORTS, INVENTORY]).await;
    let old = ts(20, 10);
    let mut primary: Vec<Row> = (0..200)
        .map(|i| {
            Row::live(
                &format!("attachments/x{i:03}"),
                100 + i,
                &format!("e{i:03}"),
                old,
            )
        })
        .collect();
    let mut replica = primary.clone();
    primary.push(Row::live("attachments/a b+c%2Bé.txt", 4, "abcd", old));
    replica.push(Row::live("attachments/a b+c%2Bé.txt", 4, "abcd", old));
    // Non-current versions never count.
    primary.push(Row {
        is_latest: false,
        version: "v0".into(),
        ..Row::live("attachments/x010", 1, "zz", ts(1, 0))
    });
    // Deleted on both sides, and deleted only on the primary (the replica still serves it).
    for side in [&mut primary, &mut replica] {
        side.push(Row {
            delete_marker: true,
            version: "v9".into(),
            ..Row::live("attachments/deleted.pdf", 0, "", old)
        });
    }
    primary.push(Row {
        delete_marker: true,
        version: "v9".into(),
        ..Row::live("attachments/dm-primary.pdf", 0, "", old)
    });
    replica.push(Row::live("attachments/dm-primary.pdf", 7, "dm", old));
    // Missing x005, x006; size differs on x007; multipart ETags differ on x008 (same bytes).
    replica.retain(|r| r.key != "attachments/x005" && r.key != "attachments/x006");
    for r in replica.iter_mut() {
        if r.key == "attachments/x007" {
            r.size += 1;
        }
        if r.key == "attachments/x008" {
            r.etag = "aaaa-3".into();
        }
    }
    for r in primary.iter_mut() {
        if r.key == "attachments/x008" {
            r.etag = "bbbb-2".into();
        }
    }
    replica.push(Row::live("attachments/only-dr.pdf", 1, "o", old));
    // Written 30 minutes before the primary's snapshot: pending.
    primary.push(Row::live(
        "attachments/new.pdf",
        1,
        "n",
        ts(26, 0) + chrono::Duration::minutes(30),
    ));
    // Outside the compared prefixes.
    primary.push(Row::live("tmp/scratch", 1, "t", old));
    // Unsorted across and within files.
    primary.reverse();
    let (p1, p2) = primary.split_at(primary.len() / 3);
    let (r1, r2) = replica.split_at(replica.len() / 2);
    let (p1, p2, r1, r2) = (p1.to_vec(), p2.to_vec(), r1.to_vec(), r2.to_vec());

    let pb = "prod-files/daily/";
    let rb = "dr-files/daily/";
    let report = |base, source_bucket, folder, created, with_checksum| Report {
        dest_bucket: INVENTORY,
        base,
        source_bucket,
        folder,
        created,
        with_checksum,
    };
    let stale = vec![Row::live("attachments/stale", 1, "s", old)];
    write_report(
        s3,
        report(pb, PRIMARY, "2026-11-25T01-00Z", ts(25, 1), true),
        &[stale],
    )
    .await;
    write_report(
        s3,
        report(pb, PRIMARY, "2026-11-26T01-00Z", ts(26, 1), true),
        &[p2, p1],
    )
    .await;
    write_report(
        s3,
        report(pb, PRIMARY, "2026-11-27T01-00Z", ts(27, 1), false),
        &[vec![]],
    )
    .await;
    write_report(
        s3,
        report(rb, REPLICA, "2026-11-26T01-00Z", ts(26, 1), true),
        &[r2, r1],
    )
    .await;
}

fn assert_inventory_counts(v: &Value) {
    let a = counts(v, Some("attachments/"));
    assert_eq!(a["eligible_primary"], 202, "{a}");
    assert_eq!(a["missing"], 2, "{a}");
    assert_eq!(a["mismatched_size"], 1, "{a}");
    assert_eq!(a["mismatched_etag"], 0, "{a}");
    assert_eq!(a["matched_size_only"], 1, "{a}");
    assert_eq!(a["extra"], 2, "{a}");
    assert_eq!(a["pending"], 1, "{a}");
    assert_eq!(a["deleted_both"], 1, "{a}");
    assert_eq!(a["matched"], 197, "{a}");
    let e = counts(v, Some("exports/"));
    assert_eq!(e["status"], "EMPTY");
    assert_eq!(v["status"], "DRIFT");
    assert!((v["drift_ratio"].as_f64().unwrap() - 5.0 / 202.0).abs() < 1e-12);
    assert!(v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w.as_str().unwrap().contains("exports/")));
    assert_eq!(v["inventory"]["primary_files"], 2);
    assert_eq!(v["reference_time"], "2026-11-26T01:00:00Z");
}

#[tokio::test]
async fn inventory_mode_compares_the_newest_complete_reports() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    seed_inventories(&s3).await;
    let tmp = tempfile::tempdir().unwrap();
    let d = deps(m, tmp.path()).await;
    let v = invoke(&d, json!({"source": "inventory"})).await.unwrap();
    assert_inventory_counts(&v);
    assert!(v["inventory"]["primary_manifest"]
        .as_str()
        .unwrap()
        .ends_with("prod-files/daily/2026-11-26T01-00Z/manifest.json"));
    let (b, k) = s3_uri_key(v["report"]["drift_csv"].as_str().unwrap());
    let rows = gunzip_csv(&get(&s3, &b, &k).await.unwrap());
    assert!(
        rows.iter()
            .any(|r| r[1] == "attachments/dm-primary.pdf" && r[2] == "extra" && r[9] == "true"),
        "{rows:?}"
    );
}

#[tokio::test]
async fn inventory_checksum_event_starts_a_run_once() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    seed_inventories(&s3).await;
    let tmp = tempfile::tempdir().unwrap();
    let d = deps(m, tmp.path()).await;
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(
            suite_tests::workspace_root().join("events/manifest-diff/s3-inventory-checksum.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let v = invoke(&d, event.clone()).await.unwrap();
    assert_inventory_counts(&v);
    assert!(v["inventory"]["replica_manifest"]
        .as_str()
        .unwrap()
        .ends_with("dr-files/daily/2026-11-26T01-00Z/manifest.json"));
    let again = invoke(&d, event).await.unwrap();
    assert_eq!(again["replayed"], true);
    // An event for some other object is ignored, not an error.
    let other = json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": INVENTORY}, "object": {"key": "x/data/file.csv.gz"}}}]});
    assert_eq!(invoke(&d, other).await.unwrap()["status"], "IGNORED");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_never_a_silent_zero() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    seed_inventories(&s3).await;
    let tmp = tempfile::tempdir().unwrap();
    let d = deps(m, tmp.path()).await;

    let e = invoke(&d, json!({"primary_bucket": "no-such-bucket"}))
        .await
        .unwrap_err();
    assert_eq!(e.class(), "BucketError");
    assert!(e.to_string().contains("no-such-bucket"), "{e}");

    let e = invoke(
        &d,
        json!({"prefixes": ["attachments/"], "drift_threshold_percent": 250}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), "InvalidInput");
    assert!(e.to_string().contains("drift_threshold_percent"), "{e}");

    let e = invoke(&d, json!({"Records": [{"s3": {"object": {"key": "k"}}}]}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Records[0].s3.bucket.name"), "{e}");

    // An empty prefix is reported as such.
    let v = invoke(&d, json!({"prefixes": ["nothing-here/"]}))
        .await
        .unwrap();
    assert_eq!(v["status"], "EMPTY");
    assert!(v["drift_ratio"].is_null());
    assert!(v["warnings"][0].as_str().unwrap().contains("nothing-here/"));

    // A manifest changed after its checksum was written.
    let key = "prod-files/daily/2026-11-26T01-00Z/manifest.json";
    let mut body = get(&s3, INVENTORY, key).await.unwrap();
    body.extend_from_slice(b"\n ");
    put(&s3, INVENTORY, key, body).await;
    let e = invoke(&d, json!({"source": "inventory"}))
        .await
        .unwrap_err();
    assert_eq!(e.class(), "BadObject");
    assert!(
        e.to_string().contains(key) && e.to_string().contains("manifest.checksum"),
        "{e}"
    );

    // A data file with a row of the wrong width: named by file and row.
    let bad =
        suite_tests::inventory::csv_gz(PRIMARY, &[Row::live("attachments/ok", 1, "e", ts(20, 1))]);
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bad[..])
        .read_to_string(&mut text)
        .unwrap();
    text.push_str("\"prod-files\",\"attachments/short\"\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    let bad = gz.finish().unwrap();
    let manifest = json!({
        "sourceBucket": PRIMARY, "destinationBucket": "arn:aws:s3:::inventory-reports", "version": "2016-11-30",
        "creationTimestamp": "1795654800000", "fileFormat": "CSV", "fileSchema": suite_tests::inventory::SCHEMA,
        "files": [{"key": "prod-files/daily/data/bad.csv.gz", "size": bad.len(), "MD5checksum": suite_tests::inventory::md5_hex(&bad)}]
    });
    put(&s3, INVENTORY, "prod-files/daily/data/bad.csv.gz", bad).await;
    put(
        &s3,
        INVENTORY,
        "prod-files/daily/2026-11-28T01-00Z/manifest.json",
        serde_json::to_vec(&manifest).unwrap(),
    )
    .await;
    let e = invoke(&d, json!({"source": "inventory", "primary_manifest": "s3://inventory-reports/prod-files/daily/2026-11-28T01-00Z/manifest.json"}))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("prod-files/daily/data/bad.csv.gz")
            && msg.contains("row 2")
            && msg.contains("expected 10 columns"),
        "{msg}"
    );

    // A report folder with no complete report.
    let e = invoke(
        &d,
        json!({"source": "inventory", "primary_inventory": "s3://inventory-reports/nothing/"}),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("no complete primary inventory report"),
        "{e}"
    );
}

/// The function as users run it: `cargo lambda watch` serves the real Invoke API, and the real
/// AWS CLI invokes it with a payload file.
#[tokio::test]
async fn end_to_end_through_the_lambda_emulator_and_the_aws_cli() {
    // Build and start the emulator before taking the moto lock: the build is the slow part.
    let m = suite_tests::moto();
    let mut env = m.env();
    env.extend(
        [
            ("ENVIRONMENT", "local"),
            ("REPORT_BUCKET", REPORTS),
            ("PRIMARY_BUCKET", PRIMARY),
            ("REPLICA_BUCKET", REPLICA),
            ("CONTINUATION", "return"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let watch = tokio::task::spawn_blocking(move || suite_tests::start_watch(&env))
        .await
        .unwrap();
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    let now = seed_list_drift(&s3).await;
    let payload = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        payload.path(),
        serde_json::to_vec(&list_payload(now)).unwrap(),
    )
    .unwrap();
    let cli_env = m.env();
    let path = payload.path().to_path_buf();
    let (ok, out, doc) = tokio::task::spawn_blocking(move || {
        suite_tests::aws_cli_invoke(&watch, "manifest-diff", &path, &cli_env)
    })
    .await
    .unwrap();
    assert!(ok, "aws lambda invoke failed: {out}");
    assert!(out.contains("\"StatusCode\": 200"), "{out}");
    assert_list_counts(&doc);
    let (b, k) = s3_uri_key(doc["report"]["json"].as_str().unwrap());
    let stored: Value = serde_json::from_slice(&get(&s3, &b, &k).await.unwrap()).unwrap();
    assert_eq!(stored["status"], "DRIFT");
}

/// An OTLP/HTTP receiver on a free port: every POSTed JSON body, kept in arrival order.
async fn otlp_receiver() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 65536];
                // Several requests may share a connection (keep-alive).
                loop {
                    let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < i + 4 + len {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    if head.starts_with("post /v1/traces") {
                        if let Ok(v) = serde_json::from_slice(&buf[i + 4..i + 4 + len]) {
                            sink.lock().unwrap().push(v);
                        }
                    }
                    buf.drain(..i + 4 + len);
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    (port, got)
}

/// Tracing as an operator sees it: the function process under `cargo lambda watch`, invoked
/// through the real Invoke API with a W3C `traceparent` in the payload, exports its spans over
/// OTLP/HTTP to a receiver (here the test's, in production the ADOT layer's collector). The
/// invocation continues the caller's trace, and every S3 call is a CLIENT span under it.
#[tokio::test]
async fn spans_from_the_function_process_reach_an_otlp_receiver() {
    let (otlp_port, spans_in) = otlp_receiver().await;
    let m = suite_tests::moto();
    let mut env = m.env();
    env.extend(
        [
            ("ENVIRONMENT", "local"),
            ("REPORT_BUCKET", REPORTS),
            ("PRIMARY_BUCKET", PRIMARY),
            ("REPLICA_BUCKET", REPLICA),
            ("CONTINUATION", "return"),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                &format!("http://127.0.0.1:{otlp_port}"),
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let watch = tokio::task::spawn_blocking(move || suite_tests::start_watch(&env))
        .await
        .unwrap();
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    let now = seed_list_drift(&s3).await;
    let (trace, parent) = ("5a9c0f3e1d2b4c6a8e7f0123456789ab", "1122334455667788");
    let mut payload = list_payload(now);
    payload["traceparent"] = json!(format!("00-{trace}-{parent}-01"));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&payload).unwrap()).unwrap();
    let cli_env = m.env();
    let path = file.path().to_path_buf();
    let (ok, out, doc) = tokio::task::spawn_blocking(move || {
        suite_tests::aws_cli_invoke(&watch, "manifest-diff", &path, &cli_env)
    })
    .await
    .unwrap();
    assert!(ok, "aws lambda invoke failed: {out}");
    assert_list_counts(&doc);

    // The spans are sent when the invocation's root span closes, before the response; allow
    // for the receiver's own scheduling.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (resource, spans) = loop {
        let docs = spans_in.lock().unwrap().clone();
        let mut resource = None;
        let mut spans = Vec::new();
        for d in &docs {
            for rs in d["resourceSpans"].as_array().into_iter().flatten() {
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for s in ss["spans"].as_array().into_iter().flatten() {
                        if s["traceId"] == trace {
                            resource = Some(rs["resource"].clone());
                            spans.push(s.clone());
                        }
                    }
                }
            }
        }
        if spans.iter().any(|s| s["name"] == "invocation") || std::time::Instant::now() > deadline {
            break (resource, spans);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let root = spans
        .iter()
        .find(|s| s["name"] == "invocation")
        .unwrap_or_else(|| panic!("no invocation span in trace {trace}: {spans:#?}"));
    assert_eq!(root["parentSpanId"], parent, "continues the caller's trace");
    assert_eq!(root["kind"], 2, "SERVER");
    let attrs = resource.unwrap()["attributes"].clone();
    let service = attrs
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "service.name")
        .map(|a| a["value"]["stringValue"].clone());
    assert_eq!(service, Some(json!("manifest-diff")), "{attrs}");

    // Every S3 call is a CLIENT span whose ancestors lead to the invocation, in one trace.
    let by_id: std::collections::HashMap<String, &Value> = spans
        .iter()
        .map(|s| (s["spanId"].as_str().unwrap_or_default().to_string(), s))
        .collect();
    let s3_calls: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("S3.")))
        .collect();
    let names: std::collections::BTreeSet<&str> =
        s3_calls.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(
        names.contains("S3.ListObjectsV2") && names.contains("S3.PutObject"),
        "{names:?}"
    );
    for call in &s3_calls {
        assert_eq!(call["kind"], 3, "CLIENT: {call}");
        let mut cur = *call;
        let mut hops = 0;
        while cur["spanId"] != root["spanId"] {
            let p = cur["parentSpanId"].as_str().unwrap_or_default();
            cur = by_id
                .get(p)
                .unwrap_or_else(|| panic!("{} has a parent outside the trace: {p}", call["name"]));
            hops += 1;
            assert!(hops < 16, "parent chain too long");
        }
    }
}
