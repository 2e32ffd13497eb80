//! S3 Inventory reports: `manifest.json` (verified against `manifest.checksum`), column mapping
//! by `fileSchema`, and CSV rows (no header, form-URL-encoded keys) turned into [`Entry`]s.

use serde::Deserialize;

use crate::inventory_csv::Fields;
use crate::model::Entry;

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
        Ok(self
            .view(rec, row, &mut RowScratch::default())?
            .map(|v| v.to_entry()))
    }

    /// Like [`Schema::entry`] but borrowed from the record or `scratch`: no allocation per
    /// row once the scratch buffers have grown. At 10 million rows per side the owned entry's
    /// two strings, the generic URL decoder and chrono's RFC 3339 parser cost more than gunzip
    /// and CSV together, hence the fast paths (each checked against the generic one in tests).
    pub fn view<'a, F: Fields + ?Sized>(
        &self,
        rec: &'a F,
        row: u64,
        scratch: &'a mut RowScratch,
    ) -> Result<Option<RowView<'a>>, InventoryError> {
        if rec.count() != self.columns {
            return Err(InventoryError::Columns {
                row,
                expected: self.columns,
                found: rec.count(),
            });
        }
        let text = |i: usize, column: &'static str| -> Result<&'a str, InventoryError> {
            std::str::from_utf8(rec.field(i)).map_err(|_| InventoryError::Value {
                row,
                column,
                problem: "not UTF-8".into(),
            })
        };
        // Flags, sizes and timestamps are compared as bytes: UTF-8 validation is only paid
        // for where a string is kept (the key and the ETag) or an error quotes the value.
        let flag = |i: Option<usize>, column: &'static str| -> Result<bool, InventoryError> {
            match i {
                None => Ok(false),
                Some(i) => match rec.field(i) {
                    b"true" | b"TRUE" | b"True" => Ok(true),
                    b"false" | b"FALSE" | b"False" | b"" => Ok(false),
                    other => Err(InventoryError::Value {
                        row,
                        column,
                        problem: format!(
                            "expected true or false, found {:?}",
                            String::from_utf8_lossy(other)
                        ),
                    }),
                },
            }
        };
        if self.is_latest.is_some() && !flag(self.is_latest, "IsLatest")? {
            return Ok(None);
        }
        let delete_marker = flag(self.is_delete_marker, "IsDeleteMarker")?;
        let raw_key = rec.field(self.key);
        if raw_key.is_empty() {
            return Err(InventoryError::Value {
                row,
                column: "Key",
                problem: "empty".into(),
            });
        }
        let RowScratch {
            key: key_buf,
            etag: etag_buf,
        } = scratch;
        let key: &'a str = if memchr::memchr2(b'%', b'+', raw_key).is_some() {
            // Validated once, after decoding (see `form_decode_into`).
            form_decode_into(raw_key, key_buf).ok_or(InventoryError::Value {
                row,
                column: "Key",
                problem: "not UTF-8".into(),
            })?
        } else {
            text(self.key, "Key")?
        };
        let size = match self.size {
            Some(i) => match rec.field(i) {
                b"" => 0,
                b => parse_u64(b).ok_or_else(|| InventoryError::Value {
                    row,
                    column: "Size",
                    problem: format!("{:?} is not a byte count", String::from_utf8_lossy(b)),
                })?,
            },
            None => 0,
        };
        let etag = match self.etag {
            Some(i) => Some(text(i, "ETag")?)
                .filter(|s| !s.is_empty())
                .map(|s| normalize_etag_into(s, etag_buf)),
            None => None,
        };
        let last_modified = match self.last_modified {
            Some(i) => {
                let b = rec.field(i);
                if b.is_empty() {
                    None
                } else if let Some(t) = fast_utc_timestamp(b) {
                    Some(t)
                } else {
                    let s = text(i, "LastModifiedDate")?;
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
        Ok(Some(RowView {
            key,
            size,
            etag,
            last_modified,
            delete_marker,
        }))
    }
}

/// Reusable buffers behind [`Schema::view`].
#[derive(Debug, Default)]
pub struct RowScratch {
    key: String,
    etag: String,
}

/// One current-version row, borrowed: the fields of [`Entry`] without its allocations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowView<'a> {
    pub key: &'a str,
    pub size: u64,
    pub etag: Option<&'a str>,
    pub last_modified: Option<i64>,
    pub delete_marker: bool,
}

impl RowView<'_> {
    pub fn to_entry(&self) -> Entry {
        Entry {
            key: self.key.to_string(),
            size: self.size,
            etag: self.etag.map(str::to_string),
            last_modified: self.last_modified,
            delete_marker: self.delete_marker,
        }
    }
}

impl Entry {
    pub fn view(&self) -> RowView<'_> {
        RowView {
            key: &self.key,
            size: self.size,
            etag: self.etag.as_deref(),
            last_modified: self.last_modified,
            delete_marker: self.delete_marker,
        }
    }
}

/// `application/x-www-form-urlencoded` value decoding, as [`shared::events::decode_s3_event_key`] does it
/// (`+` is a space, `%XX` a byte, a malformed `%` kept as is, invalid UTF-8 from escapes
/// replaced), into `buf`. Hand-written so that a row costs no allocation and one UTF-8
/// validation; equality with the generic decoder is a test. `None` when `raw` itself is not
/// UTF-8 (checked only when the decoded bytes are not, which is rare).
fn form_decode_into<'b>(raw: &[u8], buf: &'b mut String) -> Option<&'b str> {
    let mut bytes = std::mem::take(buf).into_bytes();
    bytes.clear();
    bytes.reserve(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let h = raw.get(i + 1).map_or(0xff, |&b| HEX_DIGIT[b as usize]);
                let l = raw.get(i + 2).map_or(0xff, |&b| HEX_DIGIT[b as usize]);
                if h | l < 16 {
                    bytes.push(h << 4 | l);
                    i += 2;
                } else {
                    bytes.push(b'%');
                }
            }
            b => bytes.push(b),
        }
        i += 1;
    }
    *buf = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) if std::str::from_utf8(raw).is_err() => return None,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    Some(buf.as_str())
}

/// The value of each hex digit (either case); 0xff for any other byte.
const HEX_DIGIT: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// [`crate::model::normalize_etag`] into `buf`, borrowing the input when it is already normal.
fn normalize_etag_into<'b>(raw: &'b str, buf: &'b mut String) -> &'b str {
    let t = raw.trim().trim_matches('"');
    if !t.bytes().any(|b| b.is_ascii_uppercase()) {
        return t;
    }
    buf.clear();
    buf.push_str(t);
    buf.make_ascii_lowercase();
    buf.as_str()
}

/// A decimal byte count, as `str::parse::<u64>` reads it (a leading `+` allowed), from bytes.
fn parse_u64(b: &[u8]) -> Option<u64> {
    let digits = b.strip_prefix(b"+").unwrap_or(b);
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &c| {
        if c.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        } else {
            None
        }
    })
}

/// Seconds since the epoch for S3 Inventory's own format, `YYYY-MM-DDTHH:MM:SS[.fff]Z`;
/// `None` for anything else (the caller falls back to the full RFC 3339 parser, which also
/// names what is wrong).
fn fast_utc_timestamp(b: &[u8]) -> Option<i64> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as i64)
        })
    };
    let rest = &b[19..];
    let frac_ok = match rest {
        [b'Z'] => true,
        [b'.', digits @ .., b'Z'] => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !frac_ok {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d < 1 || d > days_in_month || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::normalize_etag;
    use shared::events::decode_s3_event_key;

    /// A small deterministic generator, so the fast paths meet thousands of inputs.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    #[test]
    fn fast_key_decoding_agrees_with_the_generic_decoder() {
        let fixed = [
            "a%2Fb",
            "scan+0%2Bfinal.pdf",
            "%",
            "%2",
            "%zz",
            "100%",
            "a&b=c",
            "%26%3D",
            "%C3%A9t%C3%A9",
            "%FF%FE",
            "%e2%82",
            "++",
            "caf\u{e9}+%41",
        ];
        let alphabet: Vec<&str> = vec![
            "%",
            "+",
            "2",
            "F",
            "f",
            "C",
            "3",
            "A",
            "9",
            "a",
            "&",
            "=",
            "é",
            "/",
            " ",
            "%E2%82%AC",
            "%ff",
        ];
        let mut g = Lcg(7);
        let mut buf = String::new();
        let random: Vec<String> = (0..5000)
            .map(|_| {
                (0..(g.next() % 12))
                    .map(|_| alphabet[(g.next() as usize) % alphabet.len()])
                    .collect()
            })
            .collect();
        // Invalid UTF-8 in the row itself is refused; from an escape it is replaced.
        assert_eq!(form_decode_into(b"a+\xff", &mut buf), None);
        assert_eq!(form_decode_into(b"a+%ff", &mut buf), Some("a \u{fffd}"));
        for raw in fixed.iter().map(|s| s.to_string()).chain(random) {
            assert_eq!(
                form_decode_into(raw.as_bytes(), &mut buf).unwrap(),
                decode_s3_event_key(&raw),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn fast_timestamps_agree_with_chrono_and_leave_the_rest_to_it() {
        let mut g = Lcg(11);
        for _ in 0..20_000 {
            let secs = (g.next() as i64 * 977) % 4_102_444_800; // 1970 .. 2100
            let t = chrono::DateTime::from_timestamp(secs, 0).unwrap();
            for s in [
                t.format("%Y-%m-%dT%H:%M:%S.%3fZ").to_string(),
                t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                t.format("%Y-%m-%dT%H:%M:%S.%6fZ").to_string(),
            ] {
                assert_eq!(fast_utc_timestamp(s.as_bytes()), Some(secs), "{s}");
            }
        }
        for leap in ["2024-02-29T00:00:00.000Z", "2000-02-29T12:00:00Z"] {
            assert_eq!(
                fast_utc_timestamp(leap.as_bytes()),
                Some(
                    chrono::DateTime::parse_from_rfc3339(leap)
                        .unwrap()
                        .timestamp()
                )
            );
        }
        // Not the inventory's own format, or not a date: the fast path declines.
        for other in [
            "2026-13-01T00:00:00.000Z",
            "2026-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2026-11-01T24:00:00Z",
            "2026-11-01T10:00:60Z",
            "2026-11-01T10:00:00+01:00",
            "2026-11-01T10:00:00.Z",
            "2026-11-01 10:00:00Z",
            "2026-11-01T10:00:00",
            "-026-11-01T10:00:00Z",
            "",
        ] {
            assert_eq!(fast_utc_timestamp(other.as_bytes()), None, "{other}");
        }
    }

    #[test]
    fn byte_counts_parse_like_str_parse() {
        for s in [
            "0",
            "42",
            "+7",
            "18446744073709551615",
            "18446744073709551616",
            "",
            "+",
            "-1",
            "1e3",
            " 1",
            "00012",
        ] {
            assert_eq!(parse_u64(s.as_bytes()), s.parse::<u64>().ok(), "{s:?}");
        }
    }

    #[test]
    fn borrowed_etags_are_normalised_like_owned_ones() {
        let mut buf = String::new();
        for raw in [
            "abc",
            "\"ABC\"",
            " \"d41d8cd98f00b204e9800998ecf8427e\" ",
            "E-3",
            "\"\"",
        ] {
            assert_eq!(normalize_etag_into(raw, &mut buf), normalize_etag(raw));
        }
    }

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
