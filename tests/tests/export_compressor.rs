//! export-compressor against moto's real S3 API: gzip and Parquet round trips checked by the
//! test itself, tags and metadata carried over, multipart uploads, the legal-hold and own-output
//! skips, repeated events, the roll-up, and injected failures between upload and delete.
//!
//! Failures are injected through the port: `Faulty` wraps the real S3 adapter and, when told
//! to, fails the DeleteObject of the original, corrupts the verification read of the staging
//! object, or fails an UploadPart. Everything else goes to moto.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::Array;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use chrono::Utc;
use export_compressor::config::Settings;
use export_compressor::handler::{handle, Deps};
use export_compressor::port::{ExportStore, FilePart, Head, ObjectAttrs, S3ExportStore, Tags};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use shared::config::CommonConfig;
use shared::{SuiteError, SuiteResult};
use suite_tests::{create_buckets, exclusive_moto, get, put, Moto};

const BUCKET: &str = "prod-files";
const REPORTS: &str = "playbook-reports";

/// The real adapter with switchable faults.
struct Faulty {
    inner: S3ExportStore,
    /// DeleteObject of any key NOT under the output prefix fails (the original's delete).
    fail_original_delete: AtomicBool,
    /// The read-back of a staging object returns different bytes.
    corrupt_readback: AtomicBool,
    /// UploadPart number 2 fails.
    fail_part_2: AtomicBool,
}

impl Faulty {
    fn new(inner: S3ExportStore) -> Self {
        Faulty {
            inner,
            fail_original_delete: AtomicBool::new(false),
            corrupt_readback: AtomicBool::new(false),
            fail_part_2: AtomicBool::new(false),
        }
    }
    fn clear(&self) {
        for f in [
            &self.fail_original_delete,
            &self.corrupt_readback,
            &self.fail_part_2,
        ] {
            f.store(false, Ordering::SeqCst);
        }
    }
}

fn injected(op: &'static str) -> SuiteError {
    SuiteError::Aws {
        service: "s3",
        operation: op,
        message: "injected failure".into(),
    }
}

impl ExportStore for Faulty {
    async fn head(&self, bucket: &str, key: &str) -> SuiteResult<Option<Head>> {
        self.inner.head(bucket, key).await
    }
    async fn tags(&self, bucket: &str, key: &str) -> SuiteResult<Option<Tags>> {
        self.inner.tags(bucket, key).await
    }
    async fn download(
        &self,
        bucket: &str,
        key: &str,
        if_match: Option<&str>,
        dest: &Path,
    ) -> SuiteResult<u64> {
        let n = self.inner.download(bucket, key, if_match, dest).await?;
        if key.contains("/_staging/") && self.corrupt_readback.load(Ordering::SeqCst) {
            // Valid gzip of other content: only the comparison can catch it.
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut enc, b"not the original\n").unwrap();
            std::fs::write(dest, enc.finish().unwrap()).unwrap();
        }
        Ok(n)
    }
    async fn put_file(&self, b: &str, k: &str, p: &Path, ct: &str) -> SuiteResult<()> {
        self.inner.put_file(b, k, p, ct).await
    }
    async fn create_multipart(&self, b: &str, k: &str, ct: &str) -> SuiteResult<String> {
        self.inner.create_multipart(b, k, ct).await
    }
    async fn upload_part(
        &self,
        b: &str,
        k: &str,
        id: &str,
        p: &Path,
        part: FilePart,
    ) -> SuiteResult<String> {
        if part.number == 2 && self.fail_part_2.load(Ordering::SeqCst) {
            return Err(injected("UploadPart"));
        }
        self.inner.upload_part(b, k, id, p, part).await
    }
    async fn complete_multipart(
        &self,
        b: &str,
        k: &str,
        id: &str,
        parts: &[(i32, String)],
    ) -> SuiteResult<()> {
        self.inner.complete_multipart(b, k, id, parts).await
    }
    async fn abort_multipart(&self, b: &str, k: &str, id: &str) -> SuiteResult<()> {
        self.inner.abort_multipart(b, k, id).await
    }
    async fn copy_with_attrs(
        &self,
        b: &str,
        s: &str,
        d: &str,
        size: u64,
        a: &ObjectAttrs,
    ) -> SuiteResult<()> {
        self.inner.copy_with_attrs(b, s, d, size, a).await
    }
    async fn delete(&self, bucket: &str, key: &str) -> SuiteResult<()> {
        if !key.starts_with("exports/compressed/")
            && bucket == BUCKET
            && self.fail_original_delete.load(Ordering::SeqCst)
        {
            return Err(injected("DeleteObject"));
        }
        self.inner.delete(bucket, key).await
    }
    async fn get_bytes(&self, b: &str, k: &str) -> SuiteResult<Option<Bytes>> {
        self.inner.get_bytes(b, k).await
    }
    async fn put_bytes(&self, b: &str, k: &str, body: Bytes, ct: &str) -> SuiteResult<()> {
        self.inner.put_bytes(b, k, body, ct).await
    }
    async fn list_keys(&self, b: &str, p: &str) -> SuiteResult<Vec<String>> {
        self.inner.list_keys(b, p).await
    }
}

async fn deps(m: &Moto, scratch: &Path, settings: Settings) -> Deps<Faulty> {
    let clients = m.clients().await;
    Deps {
        common: CommonConfig {
            function_name: "export-compressor".into(),
            environment: "local".into(),
            deployment: "test".into(),
            report_bucket: REPORTS.into(),
            report_prefix: "reports/".into(),
            metrics_namespace: "Test".into(),
            log_mask_fields: vec![],
        },
        settings,
        store: Faulty::new(S3ExportStore::new(clients.s3())),
        scratch: scratch.to_path_buf(),
    }
}

async fn invoke(d: &Deps<Faulty>, payload: Value) -> Result<Value, SuiteError> {
    let mut ctx = Context::default();
    ctx.request_id = format!("req-{}", Utc::now().timestamp_nanos_opt().unwrap_or(0));
    ctx.deadline = (Utc::now().timestamp_millis() + 600_000) as u64;
    handle(d, LambdaEvent::new(payload, ctx)).await
}

/// An S3 notification for these keys, form-URL-encoded as S3 sends them.
fn s3_event(keys: &[&str]) -> Value {
    let records: Vec<Value> = keys
        .iter()
        .map(|k| {
            let enc: String = k
                .split('/')
                .map(|p| form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>())
                .collect::<Vec<_>>()
                .join("/");
            json!({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": BUCKET}, "object": {"key": enc}}})
        })
        .collect();
    json!({ "Records": records })
}

async fn put_with(
    s3: &aws_sdk_s3::Client,
    key: &str,
    body: impl Into<Bytes>,
    content_type: &str,
    tags: &str,
    meta: &[(&str, &str)],
) {
    let mut req = s3
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body.into()));
    if !tags.is_empty() {
        req = req.tagging(tags);
    }
    for (k, v) in meta {
        req = req.metadata(*k, *v);
    }
    req.send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

async fn tags_of(s3: &aws_sdk_s3::Client, key: &str) -> BTreeMap<String, String> {
    s3.get_object_tagging()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap()
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    flate2::read::MultiGzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn csv_body(rows: usize) -> String {
    let mut s = String::from("id,customer,amount,country,note\n");
    for i in 0..rows {
        s.push_str(&format!(
            "{i},\"Customer {}, Ltd\",{},{},{}\n",
            i % 97,
            (i as f64) * 0.25,
            ["FR", "DE", "US", "JP"][i % 4],
            if i % 10 == 0 { "" } else { "paid" }
        ));
    }
    s
}

async fn settings_with(f: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings::default();
    f(&mut s);
    s
}

async fn setup() -> (
    tokio::sync::MutexGuard<'static, ()>,
    aws_sdk_s3::Client,
    tempfile::TempDir,
    &'static Moto,
) {
    let (g, m) = exclusive_moto().await;
    let s3 = m.s3().await;
    create_buckets(&s3, &[BUCKET, REPORTS]).await;
    (g, s3, tempfile::tempdir().unwrap(), m)
}

fn objects(v: &Value) -> Vec<Value> {
    v["objects"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn csv_and_json_are_gzipped_verified_and_swapped_with_tags_and_metadata() {
    let (_g, s3, tmp, m) = setup().await;
    let d = deps(m, tmp.path(), Settings::default()).await;
    let csv_key = "exports/2026/11/orders 2026+11.csv";
    let csv = csv_body(3000);
    put_with(
        &s3,
        csv_key,
        csv.clone(),
        "text/csv",
        "retention=long&team=finance%20ops",
        &[("source-system", "billing"), ("run", "42")],
    )
    .await;
    let json_key = "exports/2026/11/customers.json";
    let doc: Vec<Value> = (0..500)
        .map(|i| json!({"id": i, "name": format!("customer {i}"), "tags": ["a", "b"]}))
        .collect();
    let json_body = serde_json::to_vec_pretty(&doc).unwrap();
    put_with(
        &s3,
        json_key,
        json_body.clone(),
        "application/json",
        "",
        &[],
    )
    .await;

    let v = invoke(&d, s3_event(&[csv_key, json_key])).await.unwrap();
    assert_eq!(v["status"], "COMPRESSED", "{v}");
    let objs = objects(&v);
    assert_eq!(objs.len(), 2);
    for o in &objs {
        assert_eq!(o["status"], "COMPRESSED", "{o}");
        assert_eq!(o["target"], "gzip", "{o}");
    }

    // The CSV: gone, its output decompresses to exactly the original bytes.
    let out_key = "exports/compressed/2026/11/orders 2026+11.csv.gz";
    assert_eq!(objs[0]["output_key"], out_key);
    assert!(
        get(&s3, BUCKET, csv_key).await.is_none(),
        "original deleted"
    );
    let gz = get(&s3, BUCKET, out_key).await.expect("output");
    assert_eq!(gunzip(&gz), csv.as_bytes(), "byte-for-byte round trip");
    assert!(gz.len() < csv.len() / 3, "{} vs {}", gz.len(), csv.len());
    let saving = &objs[0]["saving"];
    assert_eq!(saving["bytes_before"], csv.len() as u64);
    assert_eq!(saving["bytes_after"], gz.len() as u64);
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key(out_key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_encoding(), Some("gzip"));
    assert_eq!(head.content_type(), Some("text/csv"));
    let meta = head.metadata().unwrap();
    assert_eq!(
        meta.get("source-system").map(String::as_str),
        Some("billing")
    );
    assert_eq!(meta.get("run").map(String::as_str), Some("42"));
    assert_eq!(
        meta.get("export-compressor-source-bytes"),
        Some(&csv.len().to_string())
    );
    let tags = tags_of(&s3, out_key).await;
    assert_eq!(tags.get("retention").map(String::as_str), Some("long"));
    assert_eq!(tags.get("team").map(String::as_str), Some("finance ops"));
    assert_eq!(tags.len(), 2, "{tags:?}");
    // No staging object is left behind.
    let staged = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("exports/compressed/_staging/")
        .send()
        .await
        .unwrap();
    assert!(staged.contents().is_empty());

    // The JSON document.
    let jout = "exports/compressed/2026/11/customers.json.gz";
    assert!(get(&s3, BUCKET, json_key).await.is_none());
    assert_eq!(gunzip(&get(&s3, BUCKET, jout).await.unwrap()), json_body);
    let h = s3
        .head_object()
        .bucket(BUCKET)
        .key(jout)
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_type(), Some("application/json"));
    assert_eq!(h.content_encoding(), Some("gzip"));

    // The monthly roll-up counts both.
    let month = Utc::now().format("%Y-%m").to_string();
    let rkey = format!("reports/export-compressor/{month}.json");
    let r: Value = serde_json::from_slice(&get(&s3, REPORTS, &rkey).await.unwrap()).unwrap();
    assert_eq!(r["objects"], 2, "{r}");
    let before = csv.len() as u64 + json_body.len() as u64;
    assert_eq!(r["bytes_before"], before);
    assert!(r["dollars_saved"].as_f64().unwrap() > 0.0);

    // A repeated delivery: nothing to do, nothing counted twice, outputs unchanged.
    let again = invoke(&d, s3_event(&[csv_key, json_key])).await.unwrap();
    assert_eq!(again["status"], "NOTHING_TO_DO");
    for o in objects(&again) {
        assert_eq!(o["status"], "ALREADY_DONE", "{o}");
    }
    assert_eq!(objects(&again)[0]["output_key"], out_key);
    assert_eq!(get(&s3, BUCKET, out_key).await.unwrap(), gz);
    let r2: Value = serde_json::from_slice(&get(&s3, REPORTS, &rkey).await.unwrap()).unwrap();
    assert_eq!(r2["objects"], 2);

    // A delivery stopped between writing an export's record and adding it to the roll-up
    // (found by the fault test's kills): the roll-up lags its records by one. The
    // redelivery finds the export done and recorded, and brings the roll-up back to 2.
    let mut lagging = r2.clone();
    lagging["objects"] = json!(1);
    put(&s3, REPORTS, &rkey, serde_json::to_vec(&lagging).unwrap()).await;
    invoke(&d, s3_event(&[csv_key])).await.unwrap();
    let r3: Value = serde_json::from_slice(&get(&s3, REPORTS, &rkey).await.unwrap()).unwrap();
    assert_eq!(
        r3["objects"], 2,
        "the redelivery did not repair the roll-up: {r3}"
    );

    // Rebuilding from the per-export records gives the same totals.
    let rebuilt = invoke(&d, json!({"rebuild_rollup": month})).await.unwrap();
    assert_eq!(rebuilt["totals"]["objects"], 2);
    assert_eq!(rebuilt["totals"]["bytes_after"], r["bytes_after"]);
}

fn cell(col: &dyn Array, row: usize) -> String {
    arrow::util::display::array_value_to_string(col, row).unwrap()
}

#[tokio::test]
async fn large_csv_becomes_parquet_with_the_same_rows_and_values() {
    let (_g, s3, tmp, m) = setup().await;
    let settings = settings_with(|s| {
        s.parquet_min_bytes = Some(100_000);
        s.parquet.row_group_rows = 1000;
    })
    .await;
    let d = deps(m, tmp.path(), settings).await;
    let key = "exports/big/ledger.csv";
    let csv = csv_body(5000);
    assert!(csv.len() > 100_000);
    put_with(
        &s3,
        key,
        csv.clone(),
        "text/csv",
        "legal_hold=false&owner=data",
        &[("k", "v")],
    )
    .await;
    let small = "exports/big/small.csv";
    put_with(&s3, small, csv_body(100), "text/csv", "", &[]).await;

    let v = invoke(&d, s3_event(&[key, small])).await.unwrap();
    let objs = objects(&v);
    assert_eq!(objs[0]["target"], "parquet", "{v}");
    assert_eq!(objs[0]["rows"], 5000);
    assert_eq!(objs[1]["target"], "gzip", "below the threshold: {v}");
    let out = "exports/compressed/big/ledger.parquet";
    assert_eq!(objs[0]["output_key"], out);
    assert!(get(&s3, BUCKET, key).await.is_none());

    let bytes = get(&s3, BUCKET, out).await.expect("parquet output");
    let path = tmp.path().join("read.parquet");
    std::fs::write(&path, &bytes).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&path).unwrap(),
    )
    .unwrap();
    let names: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["id", "customer", "amount", "country", "note"]);
    assert!(
        reader.metadata().num_row_groups() >= 5,
        "row groups of 1000 rows"
    );
    let mut source = csv::Reader::from_reader(csv.as_bytes());
    let mut src_rows = source.records();
    let mut n = 0;
    for batch in reader.build().unwrap() {
        let batch = batch.unwrap();
        for r in 0..batch.num_rows() {
            let want = src_rows.next().expect("as many source rows").unwrap();
            assert_eq!(cell(batch.column(0), r), want[0], "id row {n}");
            assert_eq!(cell(batch.column(1), r), want[1], "customer row {n}");
            let amount: f64 = cell(batch.column(2), r).parse().unwrap();
            assert_eq!(amount, want[2].parse::<f64>().unwrap(), "amount row {n}");
            assert_eq!(cell(batch.column(3), r), want[3], "country row {n}");
            assert_eq!(
                cell(batch.column(4), r),
                want[4],
                "note row {n} (empty = null)"
            );
            n += 1;
        }
    }
    assert!(src_rows.next().is_none());
    assert_eq!(n, 5000);

    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key(out)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("application/vnd.apache.parquet"));
    assert_eq!(head.content_encoding(), None);
    assert_eq!(
        head.metadata().unwrap().get("k").map(String::as_str),
        Some("v")
    );
    let tags = tags_of(&s3, out).await;
    assert_eq!(tags.get("owner").map(String::as_str), Some("data"));
    assert_eq!(tags.get("legal_hold").map(String::as_str), Some("false"));
}

#[tokio::test]
async fn json_lines_become_parquet() {
    let (_g, s3, tmp, m) = setup().await;
    let settings = settings_with(|s| s.parquet_min_bytes = Some(1000)).await;
    let d = deps(m, tmp.path(), settings).await;
    // A .json whose lines are objects is JSON lines.
    let key = "exports/events.json";
    let body: String = (0..2000)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"kind\":\"k{}\",\"ok\":{}}}\n",
                i % 3,
                i % 2 == 0
            )
        })
        .collect();
    put_with(&s3, key, body.clone(), "application/json", "", &[]).await;
    let v = invoke(&d, s3_event(&[key])).await.unwrap();
    let o = &objects(&v)[0];
    assert_eq!(o["format"], "jsonl", "{v}");
    assert_eq!(o["target"], "parquet", "{v}");
    let bytes = get(&s3, BUCKET, "exports/compressed/events.parquet")
        .await
        .unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
    let mut n = 0usize;
    for b in reader {
        let b = b.unwrap();
        let ids = b.column_by_name("id").unwrap();
        for r in 0..b.num_rows() {
            assert_eq!(cell(ids.as_ref(), r), (n + r).to_string());
        }
        n += b.num_rows();
    }
    assert_eq!(n, 2000);
}

#[tokio::test]
async fn large_outputs_use_multipart_and_a_failed_part_aborts_and_keeps_the_original() {
    let (_g, s3, tmp, m) = setup().await;
    let settings = settings_with(|s| {
        s.multipart_threshold = 5 * 1024 * 1024;
        s.part_size = 5 * 1024 * 1024;
        s.gzip_level = 1;
    })
    .await;
    let d = deps(m, tmp.path(), settings).await;
    // Pseudo-random hex: compresses to about half, so the output needs two parts.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut body = String::from("id,hash\n");
    let mut i = 0;
    while body.len() < 13 * 1024 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.push_str(&format!("{i},{x:016x}{:016x}\n", x.rotate_left(29)));
        i += 1;
    }
    let key = "exports/huge.csv";
    put_with(&s3, key, body.clone(), "text/csv", "", &[]).await;

    d.store.fail_part_2.store(true, Ordering::SeqCst);
    let e = invoke(&d, s3_event(&[key])).await.unwrap_err();
    assert_eq!(e.class(), "AwsError");
    assert!(e.to_string().contains("UploadPart"), "{e}");
    assert_eq!(get(&s3, BUCKET, key).await.unwrap(), body.as_bytes());
    let uploads = s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "aborted: {:?}",
        uploads.uploads()
    );

    d.store.clear();
    let v = invoke(&d, s3_event(&[key])).await.unwrap();
    let o = &objects(&v)[0];
    assert_eq!(o["status"], "COMPRESSED", "{v}");
    let after = o["saving"]["bytes_after"].as_u64().unwrap();
    assert!(after > 5 * 1024 * 1024, "{after}: needs two parts");
    let gz = get(&s3, BUCKET, "exports/compressed/huge.csv.gz")
        .await
        .unwrap();
    assert_eq!(gunzip(&gz), body.as_bytes());
    // (That the upload went in parts is shown by the injected UploadPart failure above; the
    // final object is a CopyObject of it, so its ETag is a single-part one.)
}

#[tokio::test]
async fn legal_hold_own_output_and_compressed_objects_are_never_touched() {
    let (_g, s3, tmp, m) = setup().await;
    let d = deps(m, tmp.path(), Settings::default()).await;
    let held = "exports/held.csv";
    put_with(&s3, held, csv_body(500), "text/csv", "legal_hold=true", &[]).await;
    let own = "exports/compressed/old.csv.gz";
    put_with(
        &s3,
        own,
        b"\x1f\x8b not really".to_vec(),
        "text/csv",
        "",
        &[],
    )
    .await;
    let gz = "exports/already.csv.gz";
    put_with(&s3, gz, b"zz".to_vec(), "text/csv", "", &[]).await;
    let encoded = "exports/encoded.csv";
    s3.put_object()
        .bucket(BUCKET)
        .key(encoded)
        .content_encoding("gzip")
        .body(ByteStream::from_static(b"pretend gzip"))
        .send()
        .await
        .unwrap();
    let etag = |k: &'static str| {
        let s3 = s3.clone();
        async move {
            s3.head_object()
                .bucket(BUCKET)
                .key(k)
                .send()
                .await
                .unwrap()
                .e_tag()
                .map(str::to_string)
        }
    };
    let before: Vec<_> = vec![
        etag(held).await,
        etag(own).await,
        etag(gz).await,
        etag(encoded).await,
    ];

    let v = invoke(&d, s3_event(&[held, own, gz, encoded]))
        .await
        .unwrap();
    let skips: Vec<Value> = objects(&v).iter().map(|o| o["skip"].clone()).collect();
    assert_eq!(
        skips,
        vec![
            json!("legal_hold"),
            json!("own_output"),
            json!("already_compressed"),
            json!("already_compressed")
        ],
        "{v}"
    );
    for o in objects(&v) {
        assert_eq!(o["status"], "SKIPPED");
    }
    let after: Vec<_> = vec![
        etag(held).await,
        etag(own).await,
        etag(gz).await,
        etag(encoded).await,
    ];
    assert_eq!(before, after, "nothing rewritten");
    assert_eq!(
        get(&s3, BUCKET, held).await.unwrap(),
        csv_body(500).as_bytes()
    );
    assert_eq!(
        tags_of(&s3, held)
            .await
            .get("legal_hold")
            .map(String::as_str),
        Some("true")
    );
    assert!(get(&s3, BUCKET, "exports/compressed/held.csv.gz")
        .await
        .is_none());
    let all = s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    assert_eq!(all.contents().len(), 4, "no output was written");
}

#[tokio::test]
async fn a_failure_between_upload_and_delete_keeps_the_original_and_a_retry_finishes() {
    let (_g, s3, tmp, m) = setup().await;
    let d = deps(m, tmp.path(), Settings::default()).await;
    let key = "exports/daily.csv";
    let body = csv_body(2000);
    put_with(&s3, key, body.clone(), "text/csv", "team=x", &[]).await;
    let out = "exports/compressed/daily.csv.gz";

    // 1. The verification read returns other content: nothing is swapped.
    d.store.corrupt_readback.store(true, Ordering::SeqCst);
    let e = invoke(&d, s3_event(&[key])).await.unwrap_err();
    assert_eq!(e.class(), "BadObject");
    let msg = e.to_string();
    assert!(
        msg.contains("verification failed") && msg.contains("original is kept"),
        "{msg}"
    );
    assert_eq!(get(&s3, BUCKET, key).await.unwrap(), body.as_bytes());
    assert!(
        get(&s3, BUCKET, out).await.is_none(),
        "no final object after a failed check"
    );
    let staged = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("exports/compressed/")
        .send()
        .await
        .unwrap();
    assert!(staged.contents().is_empty(), "staging removed");

    // 2. The output is verified and in place, but the delete of the original fails.
    d.store.clear();
    d.store.fail_original_delete.store(true, Ordering::SeqCst);
    let e = invoke(&d, s3_event(&[key])).await.unwrap_err();
    assert_eq!(e.class(), "AwsError");
    assert!(e.to_string().contains("DeleteObject"), "{e}");
    assert_eq!(
        get(&s3, BUCKET, key).await.unwrap(),
        body.as_bytes(),
        "original intact"
    );
    assert_eq!(
        tags_of(&s3, key).await.get("team").map(String::as_str),
        Some("x")
    );

    // 3. The retried event redoes the work safely and finishes.
    d.store.clear();
    let v = invoke(&d, s3_event(&[key])).await.unwrap();
    assert_eq!(objects(&v)[0]["status"], "COMPRESSED", "{v}");
    assert!(get(&s3, BUCKET, key).await.is_none());
    assert_eq!(
        gunzip(&get(&s3, BUCKET, out).await.unwrap()),
        body.as_bytes()
    );
    let again = invoke(&d, s3_event(&[key])).await.unwrap();
    assert_eq!(objects(&again)[0]["status"], "ALREADY_DONE");
    // Counted once.
    let month = Utc::now().format("%Y-%m").to_string();
    let r: Value = serde_json::from_slice(
        &get(
            &s3,
            REPORTS,
            &format!("reports/export-compressor/{month}.json"),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(r["objects"], 1, "{r}");
}

#[tokio::test]
async fn bad_payloads_and_missing_objects() {
    let (_g, _s3, tmp, m) = setup().await;
    let d = deps(m, tmp.path(), Settings::default()).await;
    let e = invoke(&d, json!({"bucket": BUCKET})).await.unwrap_err();
    assert_eq!(e.class(), "InvalidInput");
    let v = invoke(&d, s3_event(&["exports/never.csv"])).await.unwrap();
    assert_eq!(objects(&v)[0]["status"], "GONE");
    let v = invoke(&d, json!({"Event": "s3:TestEvent"})).await.unwrap();
    assert_eq!(v["status"], "IGNORED");
    let e = invoke(
        &d,
        json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "no-such-bucket"}, "object": {"key": "exports/a.csv"}}}]}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.class(), "BucketError", "{e}");
}
