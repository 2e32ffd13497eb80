//! Writes S3 Inventory reports in the real format (what S3 itself delivers): gzipped CSV data
//! files with every field quoted and keys URL-encoded, a `manifest.json` naming them with
//! their MD5, and `manifest.checksum` last.

use std::io::Write;

use chrono::{DateTime, Utc};

pub const SCHEMA: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded";

#[derive(Debug, Clone)]
pub struct Row {
    pub key: String,
    pub version: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
    pub etag: String,
}

impl Row {
    pub fn live(key: &str, size: u64, etag: &str, last_modified: DateTime<Utc>) -> Self {
        Row {
            key: key.into(),
            version: "v1".into(),
            is_latest: true,
            delete_marker: false,
            size,
            last_modified,
            etag: etag.into(),
        }
    }
}

pub fn encode_key(key: &str) -> String {
    form_urlencoded::byte_serialize(key.as_bytes()).collect()
}

pub fn csv_gz(source_bucket: &str, rows: &[Row]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for r in rows {
        let size = if r.delete_marker {
            String::new()
        } else {
            r.size.to_string()
        };
        let fields = [
            source_bucket.to_string(),
            encode_key(&r.key),
            r.version.clone(),
            r.is_latest.to_string(),
            r.delete_marker.to_string(),
            size,
            r.last_modified
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            if r.delete_marker {
                String::new()
            } else {
                r.etag.clone()
            },
            if r.delete_marker {
                String::new()
            } else {
                "STANDARD".into()
            },
            r.etag.contains('-').to_string(),
        ];
        let line: Vec<String> = fields
            .iter()
            .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
            .collect();
        writeln!(gz, "{}", line.join(",")).expect("write");
    }
    gz.finish().expect("gzip")
}

pub fn md5_hex(b: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(b))
}

/// Where one report goes. `base` is `<prefix>/<source-bucket>/<config-id>/`; `folder` like
/// `2026-11-26T01-00Z`.
pub struct Report<'a> {
    pub dest_bucket: &'a str,
    pub base: &'a str,
    pub source_bucket: &'a str,
    pub folder: &'a str,
    pub created: DateTime<Utc>,
    /// S3 writes `manifest.checksum` last: without it the report is incomplete.
    pub with_checksum: bool,
}

/// Writes one report; returns the manifest.json key.
pub async fn write_report(s3: &aws_sdk_s3::Client, r: Report<'_>, files: &[Vec<Row>]) -> String {
    let Report {
        dest_bucket,
        base,
        source_bucket,
        folder,
        created,
        with_checksum,
    } = r;
    let mut entries = Vec::new();
    for (i, rows) in files.iter().enumerate() {
        let body = csv_gz(source_bucket, rows);
        let key = format!("{base}data/{folder}-{i:04}.csv.gz");
        entries.push(
            serde_json::json!({"key": key, "size": body.len(), "MD5checksum": md5_hex(&body)}),
        );
        crate::put(s3, dest_bucket, &key, body).await;
    }
    let manifest = serde_json::json!({
        "sourceBucket": source_bucket,
        "destinationBucket": format!("arn:aws:s3:::{dest_bucket}"),
        "version": "2016-11-30",
        "creationTimestamp": created.timestamp_millis().to_string(),
        "fileFormat": "CSV",
        "fileSchema": SCHEMA,
        "files": entries,
    });
    let body = serde_json::to_vec_pretty(&manifest).expect("json");
    let key = format!("{base}{folder}/manifest.json");
    crate::put(s3, dest_bucket, &key, body.clone()).await;
    if with_checksum {
        crate::put(
            s3,
            dest_bucket,
            &format!("{base}{folder}/manifest.checksum"),
            format!("{}\n", md5_hex(&body)),
        )
        .await;
    }
    key
}
