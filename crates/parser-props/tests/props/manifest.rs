//! manifest-diff: inventory manifest.json (+ manifest.checksum), fileSchema, CSV rows, the
//! request payload, S3 URIs, and the whole handler on arbitrary events (with a store that is
//! offline, so only the parsing is exercised).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use lambda_runtime::{Context, LambdaEvent};
use manifest_diff::handler::{handle, Continuation, Deps};
use manifest_diff::inventory::{Manifest, RowScratch, Schema};
use manifest_diff::inventory_csv::{FieldReader, Fields};
use manifest_diff::request::{Defaults, Payload, S3Location};
use parser_props::{arb_json, mutate};
use proptest::prelude::*;
use serde_json::{json, Value};
use shared::config::{CommonConfig, Vars};
use shared::store::{ListPage, ListRequest, ObjectStore};
use shared::{SuiteError, SuiteResult};

const SCHEMA: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded";

fn manifest() -> Value {
    json!({"sourceBucket": "prod-files", "destinationBucket": "arn:aws:s3:::inv",
           "version": "2016-11-30", "creationTimestamp": "1795654800000", "fileFormat": "CSV",
           "fileSchema": SCHEMA,
           "files": [{"key": "p/data/a.csv.gz", "size": 10, "MD5checksum": "00"}]})
}

fn row() -> Vec<String> {
    [
        "prod-files",
        "a%2Fb+c.pdf",
        "v1",
        "true",
        "false",
        "12",
        "2026-11-20T10:00:00.000Z",
        "abc",
        "STANDARD",
        "false",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn defaults() -> Defaults {
    Defaults::from_vars(&Vars::from_pairs([
        ("PRIMARY_BUCKET", "prod-files"),
        ("REPLICA_BUCKET", "dr-files"),
        ("PRIMARY_INVENTORY", "s3://inv/prod-files/daily/"),
        ("REPLICA_INVENTORY", "s3://inv/dr-files/daily/"),
    ]))
    .unwrap()
}

proptest! {
    #[test]
    fn manifests_from_arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..1024), sum in proptest::option::of("[0-9a-f]{0,32}")) {
        let _ = Manifest::parse(&b, sum.as_deref());
    }

    #[test]
    fn manifests_from_arbitrary_json_never_panic(v in arb_json()) {
        let b = serde_json::to_vec(&v).unwrap();
        if let Ok(m) = Manifest::parse(&b, None) {
            let _ = m.destination_bucket_name();
            let _ = m.created_secs();
            prop_assert!(m.schema().is_ok());
        }
    }

    #[test]
    fn manifest_mutations_name_the_field(m in mutate(vec![manifest()])) {
        let b = serde_json::to_vec(&m.doc).unwrap();
        if let Err(e) = Manifest::parse(&b, None) {
            let msg = e.to_string();
            let field = m.field.clone().unwrap_or_default();
            // Known gap (reported): serde's type errors say where (line, column), not which
            // field; fileSchema problems name the missing column instead.
            let known = msg.contains("invalid type") || msg.contains("fileSchema") || msg.contains("fileFormat");
            prop_assert!(known || crate::names(&msg, &field), "{msg} does not name {field}: {:?}", m.mutation);
        }
    }

    #[test]
    fn a_checksum_mismatch_is_always_caught(extra in "[ -~]{1,8}") {
        let good = serde_json::to_vec(&manifest()).unwrap();
        let sum = hex::encode(<md5::Md5 as md5::Digest>::digest(&good));
        prop_assert!(Manifest::parse(&good, Some(&sum)).is_ok());
        let mut bad = good.clone();
        bad.extend_from_slice(extra.as_bytes());
        prop_assert!(Manifest::parse(&bad, Some(&sum)).unwrap_err().to_string().contains("manifest.checksum"));
    }

    #[test]
    fn schemas_never_panic(s in any::<String>(), cols in proptest::collection::vec(proptest::sample::select(vec!["Bucket", "Key", "Size", "ETag", "IsLatest", "IsDeleteMarker", "LastModifiedDate", "VersionId", "x", ""]), 0..12)) {
        let _ = Schema::parse(&s);
        let joined = cols.join(", ");
        match Schema::parse(&joined) {
            Ok(sc) => prop_assert_eq!(sc.columns, cols.len()),
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.contains("Key") || msg.contains("Size"), "{msg}");
            }
        }
    }

    /// Any CSV bytes, read as S3 Inventory rows: errors name the row (and column), no panic.
    #[test]
    fn csv_rows_from_arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let schema = Schema::parse(SCHEMA).unwrap();
        let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&b[..]);
        let mut rec = csv::ByteRecord::new();
        let mut row = 0;
        while let Ok(true) = rdr.read_byte_record(&mut rec) {
            row += 1;
            if let Err(e) = schema.entry(&rec, row) {
                prop_assert!(e.to_string().contains(&format!("row {row}")), "{e}");
            }
        }
    }

    /// The same through the reader the function really uses (`inventory_csv`), on arbitrary
    /// bytes and on inventory-like rows with bytes flipped: errors name the row, no panic,
    /// and where both readers accept the input they see the same fields.
    #[test]
    fn inventory_reader_on_arbitrary_bytes_never_panics(
        b in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2048),
            (proptest::collection::vec((0usize..400, any::<u8>()), 0..6)).prop_map(|flips| {
                let line = format!("\"{}\"\n", row().join("\",\""));
                let mut b = line.repeat(3).into_bytes();
                for (i, v) in flips {
                    let n = b.len();
                    b[i % n] = v;
                }
                b
            }),
        ]
    ) {
        let schema = Schema::parse(SCHEMA).unwrap();
        let mut rdr = FieldReader::new(&b[..]);
        let mut scratch = RowScratch::default();
        let mut ours = Vec::new();
        let mut row = 0;
        let clean = loop {
            match rdr.next_row() {
                Ok(Some(rec)) => {
                    row += 1;
                    ours.push((0..rec.count()).map(|i| rec.field(i).to_vec()).collect::<Vec<_>>());
                    if let Err(e) = schema.view(&rec, row, &mut scratch) {
                        prop_assert!(e.to_string().contains(&format!("row {row}")), "{e}");
                    }
                }
                Ok(None) => break true,
                Err(e) => {
                    prop_assert!(e.to_string().contains(&format!("row {}", row + 1)), "{e}");
                    break false;
                }
            }
        };
        if clean {
            let mut theirs = Vec::new();
            let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&b[..]);
            let mut rec = csv::ByteRecord::new();
            while let Ok(true) = rdr.read_byte_record(&mut rec) {
                theirs.push(rec.iter().map(<[u8]>::to_vec).collect::<Vec<_>>());
            }
            // The csv crate skips a UTF-8 byte-order mark at the start; ours keeps it.
            if !b.starts_with(&[0xef, 0xbb, 0xbf]) {
                prop_assert_eq!(ours, theirs);
            }
        }
    }

    #[test]
    fn row_mutations_name_the_column(i in 0usize..10, v in any::<String>()) {
        let schema = Schema::parse(SCHEMA).unwrap();
        let mut r = row();
        r[i] = v;
        let rec = csv::ByteRecord::from(r.clone());
        if let Err(e) = schema.entry(&rec, 7) {
            let msg = e.to_string();
            let col = SCHEMA.split(", ").nth(i).unwrap();
            prop_assert!(msg.contains("row 7") && msg.contains(col), "{msg} does not name {col}");
        }
    }

    #[test]
    fn payloads_never_panic(v in arb_json()) {
        if let Ok(p) = serde_json::from_value::<Payload>(v) {
            let _ = p.validate(&defaults(), chrono::Utc::now().date_naive());
        }
    }

    #[test]
    fn payload_mutations_name_the_field(m in mutate(crate::samples("manifest-diff").into_iter().filter(|v| v.get("Records").is_none()).collect())) {
        let r = serde_json::from_value::<Payload>(m.doc.clone())
            .map_err(|e| e.to_string())
            .and_then(|p| p.validate(&defaults(), chrono::Utc::now().date_naive()).map_err(|e| e.to_string()));
        if let Err(msg) = r {
            let field = m.field.clone().unwrap_or_default();
            let known = msg.contains("invalid type");
            prop_assert!(known || crate::names(&msg, &field), "{msg} does not name {field}: {:?}", m.mutation);
        }
    }

    #[test]
    fn s3_uris_never_panic_and_round_trip(s in any::<String>(), b in "[a-z0-9][a-z0-9.-]{2,20}", k in "[ -~]{0,30}") {
        let _ = S3Location::parse("f", &s);
        if let Ok(l) = S3Location::parse("f", &format!("s3://{b}/{k}")) {
            prop_assert_eq!(l.uri(), format!("s3://{b}/{k}"));
        }
    }
}

/// A store that is offline: every call fails (so a handler run exercises only parsing).
struct Offline;

fn offline() -> SuiteError {
    SuiteError::Aws {
        service: "s3",
        operation: "Offline",
        message: "offline".into(),
    }
}

impl ObjectStore for Offline {
    async fn list_page(&self, _: &str, _: ListRequest<'_>) -> SuiteResult<ListPage> {
        Err(offline())
    }
    async fn get_bytes(&self, _: &str, _: &str) -> SuiteResult<Option<Bytes>> {
        Err(offline())
    }
    async fn download(&self, _: &str, _: &str, _: &Path) -> SuiteResult<u64> {
        Err(offline())
    }
    async fn put_bytes(&self, _: &str, _: &str, _: Bytes, _: &str) -> SuiteResult<()> {
        Err(offline())
    }
    async fn put_file(
        &self,
        _: &str,
        _: &str,
        _: &Path,
        _: &str,
        _: Option<&str>,
    ) -> SuiteResult<()> {
        Err(offline())
    }
    async fn delete(&self, _: &str, _: &str) -> SuiteResult<()> {
        Err(offline())
    }
}

fn offline_deps() -> Deps<Offline> {
    Deps {
        common: CommonConfig::from_vars(
            &Vars::from_pairs([("ENVIRONMENT", "local"), ("REPORT_BUCKET", "r")]),
            "manifest-diff",
        )
        .unwrap(),
        defaults: defaults(),
        store: Offline,
        lambda: None,
        continuation: Continuation::Return,
        margin: Duration::ZERO,
        scratch: std::env::temp_dir(),
        sort_budget_bytes: 1 << 16,
    }
}

pub fn run_handler(v: Value) -> Result<Value, SuiteError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let d = offline_deps();
    let mut ctx = Context::default();
    ctx.request_id = "props".into();
    ctx.deadline = (chrono::Utc::now().timestamp_millis() + 60_000) as u64;
    rt.block_on(handle(&d, LambdaEvent::new(v, ctx)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// The whole handler, including the S3-event → run mapping, on arbitrary events.
    #[test]
    fn the_handler_never_panics_on_arbitrary_events(v in prop_oneof![arb_json(), mutate(crate::samples("manifest-diff")).prop_map(|m| m.doc)]) {
        let _ = run_handler(v);
    }
}
