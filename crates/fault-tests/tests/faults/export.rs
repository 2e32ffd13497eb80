//! export-compressor under faults.
//!
//! Invariant, checked after every delivery and every kill: no export is lost. For each
//! original, either the original is still there byte for byte, or its output exists and
//! decompresses to exactly those bytes (both may exist mid-swap). At the end, every original
//! is replaced, and each is counted once (one per-export record each; the roll-up agrees, or
//! the response said it was not updated and a rebuild agrees).

use std::path::Path;
use std::time::Duration;

use export_compressor::config::Settings;
use export_compressor::handler::{handle, Deps};
use export_compressor::port::S3ExportStore;
use fault_proxy::{ErrorKind, ResetPoint};
use fault_tests::{context, deliver_until_ok, Faulted, BURST, BURST_FRACTION};
use lambda_runtime::LambdaEvent;
use serde_json::{json, Value};
use shared::config::CommonConfig;
use suite_tests::{create_buckets, exclusive_moto, get, put};

use crate::{gunzip, s3_event};

const BUCKET: &str = "fx-files";
const REPORTS: &str = "fx-reports";

fn deps(f: &Faulted, scratch: &Path) -> Deps<S3ExportStore> {
    Deps {
        common: CommonConfig {
            function_name: "export-compressor".into(),
            environment: "local".into(),
            deployment: "faults".into(),
            report_bucket: REPORTS.into(),
            report_prefix: "reports/".into(),
            metrics_namespace: "Test".into(),
            log_mask_fields: vec![],
        },
        settings: Settings::default(),
        store: S3ExportStore::new(f.s3()),
        scratch: scratch.to_path_buf(),
    }
}

async fn invoke(d: &Deps<S3ExportStore>, payload: Value) -> Result<Value, shared::SuiteError> {
    handle(
        d,
        LambdaEvent::new(payload, context(Duration::from_secs(600))),
    )
    .await
}

fn body(i: usize) -> Vec<u8> {
    let mut s = String::from("id,name,amount\n");
    for r in 0..(200 + i * 50) {
        s.push_str(&format!("{r},\"name {r}, {i}\",{}\n", r as f64 * 1.5));
    }
    s.into_bytes()
}

/// Seeds `n` exports; returns (key, bytes).
async fn seed(s3: &aws_sdk_s3::Client, tag: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    create_buckets(s3, &[BUCKET, REPORTS]).await;
    let mut out = vec![];
    for i in 0..n {
        let key = format!("exports/{tag}/file {i}+x.csv");
        let b = body(i);
        put(s3, BUCKET, &key, b.clone()).await;
        out.push((key, b));
    }
    out
}

fn output_key(key: &str) -> String {
    format!(
        "exports/compressed/{}.gz",
        key.strip_prefix("exports/").unwrap()
    )
}

/// The invariant: nothing lost. Returns how many are already replaced.
async fn nothing_lost(s3: &aws_sdk_s3::Client, originals: &[(String, Vec<u8>)]) -> usize {
    let mut replaced = 0;
    for (key, bytes) in originals {
        let original = get(s3, BUCKET, key).await;
        let output = get(s3, BUCKET, &output_key(key)).await;
        if let Some(o) = &original {
            assert_eq!(o, bytes, "{key}: the original was changed");
        }
        match &output {
            Some(gz) => assert_eq!(
                gunzip(gz).as_ref(),
                Some(bytes),
                "{key}: an output exists that is not its verified replacement"
            ),
            None => assert!(
                original.is_some(),
                "{key}: LOST: neither the original nor its output exists"
            ),
        }
        if original.is_none() {
            replaced += 1;
        }
    }
    replaced
}

/// Each export counted once: one per-export record each, and the roll-up (or its rebuild).
async fn counted_once(
    s3: &aws_sdk_s3::Client,
    d: &Deps<S3ExportStore>,
    n: usize,
    responses: &[Value],
) {
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let records = s3
        .list_objects_v2()
        .bucket(REPORTS)
        .prefix(format!("reports/export-compressor/{month}/objects/"))
        .send()
        .await
        .unwrap();
    assert_eq!(records.contents().len(), n, "one record per export");
    let rollup: Value = serde_json::from_slice(
        &get(
            s3,
            REPORTS,
            &format!("reports/export-compressor/{month}.json"),
        )
        .await
        .expect("roll-up"),
    )
    .unwrap();
    let warned = responses
        .iter()
        .any(|v| v.to_string().contains("roll-up not updated"));
    if !warned {
        assert_eq!(
            rollup["objects"], n as u64,
            "roll-up counts each export once: {rollup}"
        );
    }
    // The records are the source of truth: a rebuild always agrees.
    let mut last = Err(shared::SuiteError::Internal("not run".into()));
    for _ in 0..5 {
        last = invoke(d, json!({"rebuild_rollup": month})).await;
        if last.is_ok() {
            break;
        }
    }
    assert_eq!(last.unwrap()["totals"]["objects"], n as u64);
}

async fn run_under_fault(setup: impl Fn(&Faulted), tag: &str) -> (Faulted, Vec<Value>) {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    let originals = seed(&s3, tag, 8).await;
    let f = Faulted::new(m).await;
    let tmp = tempfile::tempdir().unwrap();
    let d = deps(&f, tmp.path());
    let keys: Vec<(&str, &str)> = originals.iter().map(|(k, _)| (k.as_str(), "0A")).collect();
    let event = s3_event(BUCKET, &keys);
    setup(&f);
    let (s3r, orig) = (&s3, &originals[..]);
    let out = deliver_until_ok(
        8,
        || invoke(&d, event.clone()),
        move || async move {
            nothing_lost(s3r, orig).await;
        },
    )
    .await;
    f.proxy.clear();
    assert_eq!(
        nothing_lost(&s3, &originals).await,
        8,
        "all replaced: {out:?}"
    );
    let statuses: Vec<Value> = out.result["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].clone())
        .collect();
    for s in &statuses {
        assert!(s == "COMPRESSED" || s == "ALREADY_DONE", "{}", out.result);
    }
    counted_once(&s3, &d, 8, std::slice::from_ref(&out.result)).await;
    eprintln!(
        "{tag}: {} deliveries, errors {:?}, proxy {:?}",
        out.attempts,
        out.errors,
        f.proxy.stats()
    );
    (f, vec![out.result])
}

#[tokio::test]
async fn a_burst_of_503_and_500_loses_nothing_and_counts_each_export_once() {
    let (f, _) = run_under_fault(
        |f| {
            f.proxy.seed(7);
            f.proxy.error_burst(BURST_FRACTION, BURST, ErrorKind::Mixed)
        },
        "burst",
    )
    .await;
    let s = f.proxy.stats();
    assert!(
        s.slow_down > 0 && s.internal_error > 0,
        "the burst hit: {s:?}"
    );
}

#[tokio::test]
async fn connection_resets_before_and_after_s3_acts_lose_nothing() {
    let (f, _) = run_under_fault(
        |f| {
            f.proxy.seed(11);
            f.proxy.connection_resets(0.2, BURST, ResetPoint::Mixed)
        },
        "resets",
    )
    .await;
    let faults: Vec<_> = f.proxy.records().iter().map(|r| r.fault).collect();
    assert!(
        faults.contains(&fault_proxy::Fault::ResetAfterUpstream)
            && faults.contains(&fault_proxy::Fault::ResetBeforeUpstream),
        "{:?}",
        f.proxy.stats()
    );
}

#[tokio::test]
async fn moto_down_then_back_mid_run_and_down_for_good() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    let originals = seed(&s3, "down", 6).await;
    let keys: Vec<(&str, &str)> = originals.iter().map(|(k, _)| (k.as_str(), "0A")).collect();
    let event = s3_event(BUCKET, &keys);
    let tmp = tempfile::tempdir().unwrap();

    // Down for good (two attempts per call): a classified, retryable error, nothing touched.
    let short = Faulted::with_attempts(m, 2).await;
    short.proxy.set_down(true);
    let e = invoke(&deps(&short, tmp.path()), event.clone())
        .await
        .unwrap_err();
    assert!(e.retryable(), "{} {e}", e.class());
    assert_eq!(nothing_lost(&s3, &originals).await, 0);
    assert!(short.proxy.stats().down >= 2, "{:?}", short.proxy.stats());

    // Down for 1.5 s while a run is under way: the SDK's backoff rides through it.
    let f = Faulted::new(m).await;
    let d = deps(&f, tmp.path());
    let flip = async {
        // Go down once the run is a few requests in (a fixed delay let a fast machine finish
        // all six exports before the outage began).
        for _ in 0..1000 {
            if f.proxy.stats().forwarded >= 10 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        f.proxy.set_down(true);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        f.proxy.set_down(false);
    };
    let (r, ()) = tokio::join!(invoke(&d, event.clone()), flip);
    let mut responses = vec![];
    match r {
        Ok(v) => responses.push(v),
        Err(e) => {
            assert!(e.retryable(), "{e}");
            nothing_lost(&s3, &originals).await;
            responses.push(invoke(&d, event.clone()).await.expect("redelivery"));
        }
    }
    assert!(
        f.proxy.stats().down > 0,
        "the outage hit: {:?}",
        f.proxy.stats()
    );
    assert_eq!(nothing_lost(&s3, &originals).await, 6);
    counted_once(&s3, &d, 6, &responses).await;
}

/// Lambda stops a function at its deadline wherever it is. Cut the handler at many points
/// (by dropping its future) and check nothing is lost at each; a final delivery finishes.
#[tokio::test]
async fn killed_at_any_point_loses_nothing_and_a_redelivery_finishes() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    let originals = seed(&s3, "killed", 4).await;
    let keys: Vec<(&str, &str)> = originals.iter().map(|(k, _)| (k.as_str(), "0A")).collect();
    let event = s3_event(BUCKET, &keys);
    let f = Faulted::new(m).await;
    let tmp = tempfile::tempdir().unwrap();
    let d = deps(&f, tmp.path());
    let mut cut_after = 5u64;
    let mut kills = 0;
    let final_result = loop {
        match tokio::time::timeout(Duration::from_millis(cut_after), invoke(&d, event.clone()))
            .await
        {
            Ok(r) => break r.expect("an uncut delivery succeeds"),
            Err(_) => {
                kills += 1;
                nothing_lost(&s3, &originals).await;
                cut_after = cut_after * 3 / 2 + 5;
            }
        }
    };
    assert!(kills >= 5, "cut {kills} times");
    assert_eq!(nothing_lost(&s3, &originals).await, 4);
    counted_once(&s3, &d, 4, &[final_result]).await;
}

/// At-least-once: the same objects delivered twice at once, in different orders, then once
/// more. Each is replaced once and counted once.
#[tokio::test]
async fn duplicate_and_reordered_deliveries_at_the_same_time_count_each_export_once() {
    let (_g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    let originals = seed(&s3, "dup", 4).await;
    let f = Faulted::new(m).await;
    let tmp1 = tempfile::tempdir().unwrap();
    let tmp2 = tempfile::tempdir().unwrap();
    let d1 = deps(&f, tmp1.path());
    let d2 = deps(&f, tmp2.path());
    let fwd: Vec<(&str, &str)> = originals.iter().map(|(k, _)| (k.as_str(), "0A")).collect();
    let mut rev = fwd.clone();
    rev.reverse();
    let (a, b) = tokio::join!(
        invoke(&d1, s3_event(BUCKET, &fwd)),
        invoke(&d2, s3_event(BUCKET, &rev))
    );
    nothing_lost(&s3, &originals).await;
    let mut responses = vec![];
    for (r, d, ev) in [(a, &d1, &fwd), (b, &d2, &rev)] {
        match r {
            Ok(v) => responses.push(v),
            // A race with the twin (say, the original deleted under it) may fail one
            // attempt; its redelivery must then settle it.
            Err(e) => {
                assert!(e.retryable() || e.class() == "BadObject", "{e}");
                responses.push(invoke(d, s3_event(BUCKET, ev)).await.unwrap());
            }
        }
    }
    let late = invoke(&d1, s3_event(BUCKET, &fwd[..1])).await.unwrap();
    assert_eq!(late["objects"][0]["status"], "ALREADY_DONE", "{late}");
    responses.push(late);
    assert_eq!(nothing_lost(&s3, &originals).await, 4);
    counted_once(&s3, &d1, 4, &responses).await;
}
