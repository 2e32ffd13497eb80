//! S3 Inventory reports: `manifest.json` (verified against `manifest.checksum`), column mapping
//! by `fileSchema`, and CSV rows (no header, form-URL-encoded keys) turned into [`Entry`]s.

use serde::Deserialize;
use shared::events::decode_s3_event_key;

use crate::model::{normalize_etag, Entry};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InventoryError {
    #[error("manifest.json is not valid JSON or lacks a field: {0}")]
    Manifest(String),
    #[error("manifest.json does not match manifest.checksum (expected MD5 {expected}, computed {actual})")]
    Checksum { expected: String, actual: String },
    #[error("fileFormat {0:?} is not supported; configure the inventory as CSV")]
    Format(String),
    #[error("fileSchema lacks the column {0:?} (needed to compare objects); add it to the inventory's optional fields")]
    MissingColumn(&'static str),
    #[error("row {row}: expected {expected} columns per fileSchema, found {found}")]
    Columns {
        row: u64,
        expected: usize,
        found: usize,
    },
    #[error("row {row}: column {column}: {problem}")]
    Value {
        row: u64,
        column: &'static str,
        problem: String,
    },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ManifestFile {
    pub key: String,
    #[serde(default)]
    pub size: u64,
    #[serde(rename = "MD5checksum", default)]
    pub md5: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub source_bucket: String,
    /// An ARN: `arn:aws:s3:::bucket`.
    pub destination_bucket: String,
    pub file_format: String,
    pub file_schema: String,
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    pub files: Vec<ManifestFile>,
}

impl Manifest {
    /// Parses and checks `manifest.json`. `checksum` is the content of `manifest.checksum`
    /// (the MD5 of manifest.json as hex), when present.
    pub fn parse(bytes: &[u8], checksum: Option<&str>) -> Result<Self, InventoryError> {
        if let Some(expected) = checksum {
            let expected = expected.trim().to_ascii_lowercase();
            let actual = hex::encode(<md5::Md5 as md5::Digest>::digest(bytes));
            if expected != actual {
                return Err(InventoryError::Checksum { expected, actual });
            }
        }
        // The path names the field (`files[0].size`), which serde's message alone does not.
        let m: Manifest =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(bytes))
                .map_err(|e| {
                    let path = e.path().to_string();
                    if path == "." {
                        InventoryError::Manifest(e.inner().to_string())
                    } else {
                        InventoryError::Manifest(format!("field `{path}`: {}", e.inner()))
                    }
                })?;
        if !m.file_format.eq_ignore_ascii_case("CSV") {
            return Err(InventoryError::Format(m.file_format));
        }
        Schema::parse(&m.file_schema)?;
        Ok(m)
    }

    /// The destination bucket's name (the manifest gives an ARN).
    pub fn destination_bucket_name(&self) -> &str {
        self.destination_bucket
            .strip_prefix("arn:aws:s3:::")
            .unwrap_or(&self.destination_bucket)
    }

    /// The inventory's snapshot time in seconds, from `creationTimestamp` (milliseconds).
    pub fn created_secs(&self) -> Option<i64> {
        self.creation_timestamp
            .as_deref()?
            .trim()
            .parse::<i64>()
            .ok()
            .map(|ms| ms / 1000)
    }

    pub fn schema(&self) -> Result<Schema, InventoryError> {
        Schema::parse(&self.file_schema)
    }
}

/// Column positions, from `fileSchema`.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub columns: usize,
    key: usize,
    size: Option<usize>,
    etag: Option<usize>,
    last_modified: Option<usize>,
    is_latest: Option<usize>,
    is_delete_marker: Option<usize>,
}

impl Schema {
    pub fn parse(file_schema: &str) -> Result<Self, InventoryError> {
        let cols: Vec<String> = file_schema
            .split(',')
            .map(|c| c.trim().to_string())
            .collect();
        let find = |name: &str| cols.iter().position(|c| c.eq_ignore_ascii_case(name));
        let key = find("Key").ok_or(InventoryError::MissingColumn("Key"))?;
        let size = find("Size");
        if size.is_none() {
            return Err(InventoryError::MissingColumn("Size"));
        }
        Ok(Schema {
            columns: cols.len(),
            key,
            size,
            etag: find("ETag"),
            last_modified: find("LastModifiedDate"),
            is_latest: find("IsLatest"),
            is_delete_marker: find("IsDeleteMarker"),
        })
    }

    /// Turns one CSV record into an entry; `Ok(None)` for a non-current version.
    pub fn entry(&self, rec: &csv::ByteRecord, row: u64) -> Result<Option<Entry>, InventoryError> {
        if rec.len() != self.columns {
            return Err(InventoryError::Columns {
                row,
                expected: self.columns,
                found: rec.len(),
            });
        }
        let text = |i: usize, column: &'static str| -> Result<&str, InventoryError> {
            std::str::from_utf8(&rec[i]).map_err(|_| InventoryError::Value {
                row,
                column,
                problem: "not UTF-8".into(),
            })
        };
        let flag = |i: Option<usize>, column: &'static str| -> Result<bool, InventoryError> {
            match i {
                None => Ok(false),
                Some(i) => match text(i, column)? {
                    "true" | "TRUE" | "True" => Ok(true),
                    "false" | "FALSE" | "False" | "" => Ok(false),
                    other => Err(InventoryError::Value {
                        row,
                        column,
                        problem: format!("expected true or false, found {other:?}"),
                    }),
                },
            }
        };
        if self.is_latest.is_some() && !flag(self.is_latest, "IsLatest")? {
            return Ok(None);
        }
        let delete_marker = flag(self.is_delete_marker, "IsDeleteMarker")?;
        let raw_key = text(self.key, "Key")?;
        if raw_key.is_empty() {
            return Err(InventoryError::Value {
                row,
                column: "Key",
                problem: "empty".into(),
            });
        }
        let key = if raw_key.contains(['%', '+']) {
            decode_s3_event_key(raw_key)
        } else {
            raw_key.to_string()
        };
        let size = match self.size {
            Some(i) => {
                let s = text(i, "Size")?;
                if s.is_empty() {
                    0
                } else {
                    s.parse::<u64>().map_err(|_| InventoryError::Value {
                        row,
                        column: "Size",
                        problem: format!("{s:?} is not a byte count"),
                    })?
                }
            }
            None => 0,
        };
        let etag = match self.etag {
            Some(i) => Some(text(i, "ETag")?)
                .filter(|s| !s.is_empty())
                .map(normalize_etag),
            None => None,
        };
        let last_modified = match self.last_modified {
            Some(i) => {
                let s = text(i, "LastModifiedDate")?;
                if s.is_empty() {
                    None
                } else {
                    Some(
                        chrono::DateTime::parse_from_rfc3339(s)
                            .map_err(|e| InventoryError::Value {
                                row,
                                column: "LastModifiedDate",
                                problem: format!("{s:?}: {e}"),
                            })?
                            .timestamp(),
                    )
                }
            }
            None => None,
        };
        Ok(Some(Entry {
            key,
            size,
            etag,
            last_modified,
            delete_marker,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass";

    fn manifest_json() -> String {
        format!(
            r#"{{"sourceBucket":"prod","destinationBucket":"arn:aws:s3:::inv","version":"2016-11-30","creationTimestamp":"1764205200000","fileFormat":"CSV","fileSchema":"{SCHEMA}","files":[{{"key":"prod/cfg/data/a.csv.gz","size":10,"MD5checksum":"00"}}]}}"#
        )
    }

    #[test]
    fn manifest_parses_and_checks_md5() {
        let body = manifest_json();
        let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(body.as_bytes()));
        let m = Manifest::parse(body.as_bytes(), Some(&format!("{md5}\n"))).unwrap();
        assert_eq!(m.destination_bucket_name(), "inv");
        assert_eq!(m.created_secs(), Some(1_764_205_200));
        assert_eq!(m.files[0].key, "prod/cfg/data/a.csv.gz");
        let e = Manifest::parse(body.as_bytes(), Some("0123")).unwrap_err();
        assert!(matches!(e, InventoryError::Checksum { .. }));
        assert!(matches!(
            Manifest::parse(b"{\"sourceBucket\":", None),
            Err(InventoryError::Manifest(_))
        ));
        let orc = body.replace("\"CSV\"", "\"ORC\"");
        assert_eq!(
            Manifest::parse(orc.as_bytes(), None),
            Err(InventoryError::Format("ORC".into()))
        );
    }

    fn rec(fields: &[&str]) -> csv::ByteRecord {
        csv::ByteRecord::from(fields.to_vec())
    }

    #[test]
    fn rows_map_by_schema_and_decode_keys() {
        let s = Schema::parse(SCHEMA).unwrap();
        let e = s
            .entry(
                &rec(&[
                    "prod",
                    "exports/a+b%2Bc%C3%A9.csv",
                    "v1",
                    "true",
                    "false",
                    "42",
                    "2026-11-20T10:00:00.000Z",
                    "abc",
                    "STANDARD",
                ]),
                1,
            )
            .unwrap()
            .unwrap();
        assert_eq!(e.key, "exports/a b+cé.csv");
        assert_eq!(e.size, 42);
        assert_eq!(e.etag.as_deref(), Some("abc"));
        assert_eq!(e.last_modified, Some(1_795_168_800));
        // Non-current versions are skipped; delete markers kept with no size.
        assert_eq!(
            s.entry(
                &rec(&[
                    "prod",
                    "k",
                    "v0",
                    "false",
                    "false",
                    "1",
                    "2026-11-20T10:00:00.000Z",
                    "x",
                    "STANDARD"
                ]),
                2
            )
            .unwrap(),
            None
        );
        let dm = s
            .entry(
                &rec(&[
                    "prod",
                    "k",
                    "v2",
                    "true",
                    "true",
                    "",
                    "2026-11-20T10:00:00.000Z",
                    "",
                    "",
                ]),
                3,
            )
            .unwrap()
            .unwrap();
        assert!(dm.delete_marker && dm.etag.is_none());
    }

    #[test]
    fn bad_rows_name_row_and_column() {
        let s = Schema::parse(SCHEMA).unwrap();
        let e = s.entry(&rec(&["prod", "k"]), 7).unwrap_err();
        assert_eq!(
            e.to_string(),
            "row 7: expected 9 columns per fileSchema, found 2"
        );
        let e = s
            .entry(
                &rec(&[
                    "prod",
                    "k",
                    "v",
                    "true",
                    "false",
                    "12x",
                    "2026-11-20T10:00:00.000Z",
                    "e",
                    "S",
                ]),
                8,
            )
            .unwrap_err();
        assert!(e.to_string().contains("row 8: column Size"), "{e}");
        let e = s
            .entry(
                &rec(&[
                    "prod",
                    "k",
                    "v",
                    "maybe",
                    "false",
                    "1",
                    "2026-11-20T10:00:00.000Z",
                    "e",
                    "S",
                ]),
                9,
            )
            .unwrap_err();
        assert!(e.to_string().contains("IsLatest"), "{e}");
        assert_eq!(
            Schema::parse("Bucket, Size").unwrap_err(),
            InventoryError::MissingColumn("Key")
        );
    }
}
