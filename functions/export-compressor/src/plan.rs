//! The pure core: which objects to touch, what to turn them into, where the output goes, what
//! it saves, and whether a read-back matches. No AWS types, no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bytes in the "GB" of a GB-month: AWS bills storage in binary gigabytes (2^30 bytes).
pub const BYTES_PER_GB: f64 = 1_073_741_824.0;

/// What the source object holds, from its key (and a sniff of its first line for `.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    Csv,
    /// One JSON document (array or object).
    Json,
    /// One JSON object per line (`.jsonl`, `.ndjson`, or a `.json` whose first line is a
    /// complete object).
    #[serde(rename = "jsonl")]
    JsonLines,
}

impl SourceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Csv => "csv",
            SourceFormat::Json => "json",
            SourceFormat::JsonLines => "jsonl",
        }
    }

    /// The Content-Type of the gzipped output (the content is still this format).
    pub fn content_type(self) -> &'static str {
        match self {
            SourceFormat::Csv => "text/csv",
            SourceFormat::Json => "application/json",
            SourceFormat::JsonLines => "application/x-ndjson",
        }
    }

    pub fn tabular(self) -> bool {
        matches!(self, SourceFormat::Csv | SourceFormat::JsonLines)
    }
}

/// What the output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Gzip,
    Parquet,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Gzip => "gzip",
            Target::Parquet => "parquet",
        }
    }
}

/// Why an object is left alone. Skips are successes: the event was handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    OutsideSourcePrefix,
    OwnOutput,
    AlreadyCompressed,
    UnsupportedFormat,
    DirectoryMarker,
    LegalHold,
    ContentEncoded(String),
    Unreadable(String),
    Empty,
    NoSaving,
}

impl Skip {
    pub fn reason(&self) -> String {
        match self {
            Skip::OutsideSourcePrefix => "outside the source prefix".into(),
            Skip::OwnOutput => "under the output prefix (this function's own output)".into(),
            Skip::AlreadyCompressed => "already compressed (extension)".into(),
            Skip::UnsupportedFormat => "not CSV, JSON or JSON lines".into(),
            Skip::DirectoryMarker => "a folder marker".into(),
            Skip::LegalHold => "tagged legal_hold=true: never touched".into(),
            Skip::ContentEncoded(e) => format!("already has Content-Encoding: {e}"),
            Skip::Unreadable(c) => format!("storage class {c} cannot be read without a restore"),
            Skip::Empty => "empty object".into(),
            Skip::NoSaving => "the compressed output is not smaller than the original".into(),
        }
    }

    /// A short stable code for metrics and responses.
    pub fn code(&self) -> &'static str {
        match self {
            Skip::OutsideSourcePrefix => "outside_prefix",
            Skip::OwnOutput => "own_output",
            Skip::AlreadyCompressed | Skip::ContentEncoded(_) => "already_compressed",
            Skip::UnsupportedFormat => "unsupported_format",
            Skip::DirectoryMarker => "folder_marker",
            Skip::LegalHold => "legal_hold",
            Skip::Unreadable(_) => "archived",
            Skip::Empty => "empty",
            Skip::NoSaving => "no_saving",
        }
    }
}

const COMPRESSED_EXTENSIONS: &[&str] = &[
    ".gz", ".gzip", ".parquet", ".zst", ".zstd", ".bz2", ".xz", ".zip", ".snappy", ".lz4", ".br",
    ".7z", ".tgz",
];

fn lower_ext(key: &str) -> String {
    key.rsplit('/').next().unwrap_or(key).to_ascii_lowercase()
}

/// The first decision, on the key alone (before any S3 call).
pub fn classify_key(
    key: &str,
    source_prefix: &str,
    output_prefix: &str,
) -> Result<SourceFormat, Skip> {
    if !output_prefix.is_empty() && key.starts_with(output_prefix) {
        return Err(Skip::OwnOutput);
    }
    if !key.starts_with(source_prefix) {
        return Err(Skip::OutsideSourcePrefix);
    }
    if key.ends_with('/') {
        return Err(Skip::DirectoryMarker);
    }
    let name = lower_ext(key);
    if COMPRESSED_EXTENSIONS.iter().any(|e| name.ends_with(e)) {
        return Err(Skip::AlreadyCompressed);
    }
    if name.ends_with(".csv") {
        Ok(SourceFormat::Csv)
    } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        Ok(SourceFormat::JsonLines)
    } else if name.ends_with(".json") {
        Ok(SourceFormat::Json)
    } else {
        Err(Skip::UnsupportedFormat)
    }
}

/// A `.json` file whose first non-empty line is a complete JSON object is JSON lines.
pub fn refine_json(format: SourceFormat, first_line: &str) -> SourceFormat {
    if format != SourceFormat::Json {
        return format;
    }
    let line = first_line.trim();
    if line.starts_with('{')
        && serde_json::from_str::<serde_json::Value>(line)
            .map(|v| v.is_object())
            .unwrap_or(false)
    {
        SourceFormat::JsonLines
    } else {
        SourceFormat::Json
    }
}

/// Whether an object's tags put it under legal hold (`legal_hold=true`, case-insensitive
/// value, surrounding blanks ignored).
pub fn legal_hold(tags: &[(String, String)]) -> bool {
    tags.iter()
        .any(|(k, v)| k == "legal_hold" && v.trim().eq_ignore_ascii_case("true"))
}

/// The checks on the object's HEAD: encoding, storage class, size.
pub fn check_head(
    content_encoding: Option<&str>,
    storage_class: Option<&str>,
    size: u64,
) -> Result<(), Skip> {
    if let Some(enc) = content_encoding.map(str::trim).filter(|e| !e.is_empty()) {
        if !enc.eq_ignore_ascii_case("identity") {
            return Err(Skip::ContentEncoded(enc.to_string()));
        }
    }
    if let Some(c) = storage_class {
        if matches!(c, "GLACIER" | "DEEP_ARCHIVE") {
            return Err(Skip::Unreadable(c.to_string()));
        }
    }
    if size == 0 {
        return Err(Skip::Empty);
    }
    Ok(())
}

/// Gzip, or Parquet for tabular sources at or above the threshold.
pub fn choose_target(format: SourceFormat, size: u64, parquet_min_bytes: Option<u64>) -> Target {
    match parquet_min_bytes {
        Some(min) if format.tabular() && size >= min => Target::Parquet,
        _ => Target::Gzip,
    }
}

/// Where the output goes: the key's path below the source prefix, under the output prefix;
/// `.gz` appended for gzip, the extension replaced by `.parquet` for Parquet.
pub fn output_key(key: &str, source_prefix: &str, output_prefix: &str, target: Target) -> String {
    let rel = key.strip_prefix(source_prefix).unwrap_or(key);
    match target {
        Target::Gzip => format!("{output_prefix}{rel}.gz"),
        Target::Parquet => {
            let (dir, name) = match rel.rfind('/') {
                Some(i) => (&rel[..=i], &rel[i + 1..]),
                None => ("", rel),
            };
            let stem = match name.rfind('.') {
                Some(i) if i > 0 => &name[..i],
                _ => name,
            };
            format!("{output_prefix}{dir}{stem}.parquet")
        }
    }
}

/// Both possible outputs of a source key, for the "already done" check of a repeated event.
pub fn possible_outputs(key: &str, source_prefix: &str, output_prefix: &str) -> [String; 2] {
    [
        output_key(key, source_prefix, output_prefix, Target::Gzip),
        output_key(key, source_prefix, output_prefix, Target::Parquet),
    ]
}

/// The staging key the output is uploaded to and verified at before it is copied into place.
/// Under the output prefix, so its own ObjectCreated event is skipped.
pub fn staging_key(output_prefix: &str, final_key: &str, token: &str) -> String {
    let rel = final_key.strip_prefix(output_prefix).unwrap_or(final_key);
    format!("{output_prefix}_staging/{token}/{rel}")
}

/// Monthly storage price per class, $/GB-month.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable(pub BTreeMap<String, f64>);

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable(
            [
                ("STANDARD", 0.023),
                ("STANDARD_IA", 0.0125),
                ("GLACIER", 0.004),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        )
    }
}

impl PriceTable {
    /// `CLASS=price,CLASS=price`; classes given override the defaults, others keep them.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut t = PriceTable::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (class, price) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not CLASS=price"))?;
            let p: f64 = price
                .trim()
                .parse()
                .map_err(|e| format!("price {price:?} of {class}: {e}"))?;
            if !p.is_finite() || p < 0.0 {
                return Err(format!("price of {class} must be a non-negative number"));
            }
            t.0.insert(class.trim().to_ascii_uppercase(), p);
        }
        if !t.0.contains_key("STANDARD") {
            return Err("the table needs a STANDARD price".into());
        }
        Ok(t)
    }

    /// The price of a class; unknown classes (and none, which S3 means as STANDARD) use
    /// STANDARD's price.
    pub fn price(&self, class: Option<&str>) -> f64 {
        let class = class.unwrap_or("STANDARD");
        self.0
            .get(class)
            .or_else(|| self.0.get("STANDARD"))
            .copied()
            .unwrap_or(0.0)
    }

    /// Monthly storage cost of `bytes` in `class`, dollars.
    pub fn monthly_cost(&self, bytes: u64, class: Option<&str>) -> f64 {
        bytes as f64 / BYTES_PER_GB * self.price(class)
    }
}

/// What one compression saved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Saving {
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub dollars_before: f64,
    pub dollars_after: f64,
}

impl Saving {
    pub fn new(before: u64, after: u64, class: Option<&str>, prices: &PriceTable) -> Self {
        Saving {
            bytes_before: before,
            bytes_after: after,
            dollars_before: prices.monthly_cost(before, class),
            dollars_after: prices.monthly_cost(after, class),
        }
    }
    pub fn bytes_saved(&self) -> i64 {
        self.bytes_before as i64 - self.bytes_after as i64
    }
    pub fn dollars_saved(&self) -> f64 {
        self.dollars_before - self.dollars_after
    }
    /// after ÷ before (0.3 = the output is 30 % of the original).
    pub fn ratio(&self) -> Option<f64> {
        (self.bytes_before > 0).then(|| self.bytes_after as f64 / self.bytes_before as f64)
    }
}

/// Whether swapping is worth it: the output must be strictly smaller.
pub fn worth_swapping(before: u64, after: u64) -> bool {
    after < before
}

/// Content digest: SHA-256 (hex) and length of the uncompressed bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub sha256: String,
    pub bytes: u64,
}

/// Shape of a table: rows (not counting a CSV header) and columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableShape {
    pub rows: u64,
    pub columns: usize,
}

/// Gzip read-back: the decompressed output must be the original, byte for byte.
pub fn verify_gzip(original: &Digest, read_back: &Digest) -> Result<(), String> {
    if original == read_back {
        Ok(())
    } else {
        Err(format!(
            "gzip read-back differs: original {} bytes sha256 {}, decompressed output {} bytes sha256 {}",
            original.bytes, original.sha256, read_back.bytes, read_back.sha256
        ))
    }
}

/// Parquet read-back: as many rows as the source (counted independently of the converter),
/// and as many columns as the source's header (CSV) or inferred schema (JSON lines).
pub fn verify_parquet(source: &TableShape, read_back: &TableShape) -> Result<(), String> {
    if source.rows != read_back.rows {
        return Err(format!(
            "parquet read-back has {} rows, the source {}",
            read_back.rows, source.rows
        ));
    }
    if source.columns != read_back.columns {
        return Err(format!(
            "parquet read-back has {} columns, the source {}",
            read_back.columns, source.columns
        ));
    }
    Ok(())
}

/// The monthly roll-up under `reports/export-compressor/YYYY-MM.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Rollup {
    pub month: String,
    pub objects: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub bytes_saved: i64,
    /// Monthly storage cost of the originals / outputs, dollars per month.
    pub dollars_before: f64,
    pub dollars_after: f64,
    pub dollars_saved: f64,
    #[serde(default)]
    pub by_target: BTreeMap<String, u64>,
    #[serde(default)]
    pub updated_at: String,
}

impl Rollup {
    pub fn empty(month: &str) -> Self {
        Rollup {
            month: month.to_string(),
            ..Default::default()
        }
    }

    pub fn add(&mut self, target: Target, s: &Saving) {
        self.objects += 1;
        self.bytes_before += s.bytes_before;
        self.bytes_after += s.bytes_after;
        self.bytes_saved = self.bytes_before as i64 - self.bytes_after as i64;
        self.dollars_before += s.dollars_before;
        self.dollars_after += s.dollars_after;
        self.dollars_saved = self.dollars_before - self.dollars_after;
        *self
            .by_target
            .entry(target.as_str().to_string())
            .or_insert(0) += 1;
    }
}

/// A `YYYY-MM` month, validated.
pub fn parse_month(s: &str) -> Result<String, String> {
    let ok = s.len() == 7
        && s.as_bytes()[4] == b'-'
        && s[..4].bytes().all(|b| b.is_ascii_digit())
        // Two ASCII digits: `parse::<u32>` alone would take "+1".
        && s[5..].bytes().all(|b| b.is_ascii_digit())
        && s[5..]
            .parse::<u32>()
            .map(|m| (1..=12).contains(&m))
            .unwrap_or(false);
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a month like 2026-11"))
    }
}

/// S3 accepts at most this many parts per upload.
pub const MAX_PARTS: u64 = 10_000;

/// The parts of a multipart upload of `size` bytes: (part number, offset, length). The part
/// size grows when `part_size` would need more than 10,000 parts.
pub fn part_plan(size: u64, part_size: u64) -> Vec<(i32, u64, u64)> {
    let part = part_size.max(size.div_ceil(MAX_PARTS)).max(1);
    let mut parts = vec![];
    let mut offset = 0u64;
    let mut n = 1i32;
    while offset < size {
        let len = part.min(size - offset);
        parts.push((n, offset, len));
        offset += len;
        n += 1;
    }
    parts
}

/// Percent-encodes everything but RFC 3986 unreserved characters (and `/` when `keep_slash`):
/// for `x-amz-copy-source` and the `x-amz-tagging` query string.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Tags as the `x-amz-tagging` header wants them (`k=v&k2=v2`, each part encoded).
pub fn tagging_header(tags: &[(String, String)]) -> String {
    tags.iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified() {
        let c = |k: &str| classify_key(k, "exports/", "exports/compressed/");
        assert_eq!(c("exports/a.csv"), Ok(SourceFormat::Csv));
        assert_eq!(c("exports/2026/A.CSV"), Ok(SourceFormat::Csv));
        assert_eq!(c("exports/a.json"), Ok(SourceFormat::Json));
        assert_eq!(c("exports/a.jsonl"), Ok(SourceFormat::JsonLines));
        assert_eq!(c("exports/a.ndjson"), Ok(SourceFormat::JsonLines));
        assert_eq!(c("exports/a.csv.gz"), Err(Skip::AlreadyCompressed));
        assert_eq!(c("exports/a.parquet"), Err(Skip::AlreadyCompressed));
        assert_eq!(c("exports/compressed/a.csv"), Err(Skip::OwnOutput));
        assert_eq!(
            c("exports/compressed/_staging/t/a.csv.gz"),
            Err(Skip::OwnOutput)
        );
        assert_eq!(c("attachments/a.csv"), Err(Skip::OutsideSourcePrefix));
        assert_eq!(c("exports/folder/"), Err(Skip::DirectoryMarker));
        assert_eq!(c("exports/a.pdf"), Err(Skip::UnsupportedFormat));
        // An output prefix outside the source prefix is skipped too (it is checked first).
        assert_eq!(
            classify_key("compressed/a.csv", "", "compressed/"),
            Err(Skip::OwnOutput)
        );
    }

    #[test]
    fn json_lines_are_sniffed() {
        assert_eq!(
            refine_json(SourceFormat::Json, "{\"a\":1}\n"),
            SourceFormat::JsonLines
        );
        assert_eq!(refine_json(SourceFormat::Json, "["), SourceFormat::Json);
        assert_eq!(refine_json(SourceFormat::Json, "{"), SourceFormat::Json);
        assert_eq!(
            refine_json(SourceFormat::Csv, "{\"a\":1}"),
            SourceFormat::Csv
        );
    }

    #[test]
    fn legal_hold_and_head_checks() {
        let t = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(legal_hold(&t("legal_hold", "true")));
        assert!(legal_hold(&t("legal_hold", " TRUE ")));
        assert!(!legal_hold(&t("legal_hold", "false")));
        assert!(!legal_hold(&t("retention", "long")));
        assert_eq!(
            check_head(Some("gzip"), None, 10),
            Err(Skip::ContentEncoded("gzip".into()))
        );
        assert_eq!(check_head(Some("identity"), None, 10), Ok(()));
        assert_eq!(
            check_head(None, Some("GLACIER"), 10),
            Err(Skip::Unreadable("GLACIER".into()))
        );
        assert_eq!(check_head(None, Some("STANDARD_IA"), 10), Ok(()));
        assert_eq!(check_head(None, None, 0), Err(Skip::Empty));
    }

    #[test]
    fn targets_and_output_keys() {
        assert_eq!(
            choose_target(SourceFormat::Csv, 100, Some(100)),
            Target::Parquet
        );
        assert_eq!(
            choose_target(SourceFormat::Csv, 99, Some(100)),
            Target::Gzip
        );
        assert_eq!(
            choose_target(SourceFormat::Json, 1000, Some(1)),
            Target::Gzip
        );
        assert_eq!(choose_target(SourceFormat::Csv, 1000, None), Target::Gzip);
        let o = |k: &str, t| output_key(k, "exports/", "exports/compressed/", t);
        assert_eq!(
            o("exports/2026/a b.csv", Target::Gzip),
            "exports/compressed/2026/a b.csv.gz"
        );
        assert_eq!(
            o("exports/2026/a.b.csv", Target::Parquet),
            "exports/compressed/2026/a.b.parquet"
        );
        assert_eq!(
            o("exports/.csv", Target::Parquet),
            "exports/compressed/.csv.parquet"
        );
        assert_eq!(
            staging_key(
                "exports/compressed/",
                "exports/compressed/2026/a.csv.gz",
                "abc"
            ),
            "exports/compressed/_staging/abc/2026/a.csv.gz"
        );
    }

    #[test]
    fn cost_estimate_uses_the_price_table() {
        let p = PriceTable::default();
        assert!((p.monthly_cost(1 << 30, None) - 0.023).abs() < 1e-12);
        assert!((p.monthly_cost(1 << 30, Some("STANDARD_IA")) - 0.0125).abs() < 1e-12);
        assert!((p.monthly_cost(1 << 30, Some("GLACIER")) - 0.004).abs() < 1e-12);
        assert!((p.monthly_cost(1 << 30, Some("ONEZONE_IA")) - 0.023).abs() < 1e-12);
        let s = Saving::new(10 << 30, 3 << 30, None, &p);
        assert!((s.dollars_saved() - 7.0 * 0.023).abs() < 1e-9);
        assert_eq!(s.bytes_saved(), 7 << 30);
        assert!((s.ratio().unwrap() - 0.3).abs() < 1e-12);

        let t = PriceTable::parse("STANDARD_IA=0.01, intelligent_tiering=0.02").unwrap();
        assert_eq!(t.price(Some("STANDARD_IA")), 0.01);
        assert_eq!(t.price(Some("INTELLIGENT_TIERING")), 0.02);
        assert_eq!(t.price(None), 0.023);
        assert!(PriceTable::parse("STANDARD").is_err());
        assert!(PriceTable::parse("STANDARD=-1").is_err());
        assert!(PriceTable::parse("STANDARD=abc").is_err());
    }

    #[test]
    fn verification_compares() {
        let d = Digest {
            sha256: "ab".into(),
            bytes: 3,
        };
        assert!(verify_gzip(&d, &d.clone()).is_ok());
        let e = verify_gzip(
            &d,
            &Digest {
                sha256: "cd".into(),
                bytes: 3,
            },
        )
        .unwrap_err();
        assert!(e.contains("sha256 ab") && e.contains("sha256 cd"), "{e}");
        let s = TableShape {
            rows: 10,
            columns: 3,
        };
        assert!(verify_parquet(&s, &s).is_ok());
        assert!(verify_parquet(
            &s,
            &TableShape {
                rows: 9,
                columns: 3
            }
        )
        .unwrap_err()
        .contains("9 rows"));
        assert!(verify_parquet(
            &s,
            &TableShape {
                rows: 10,
                columns: 2
            }
        )
        .unwrap_err()
        .contains("2 columns"));
        assert!(worth_swapping(10, 9));
        assert!(!worth_swapping(10, 10));
    }

    #[test]
    fn rollup_adds_up() {
        let p = PriceTable::default();
        let mut r = Rollup::empty("2026-11");
        r.add(Target::Gzip, &Saving::new(1000, 300, None, &p));
        r.add(Target::Parquet, &Saving::new(2000, 500, None, &p));
        assert_eq!(r.objects, 2);
        assert_eq!(r.bytes_before, 3000);
        assert_eq!(r.bytes_after, 800);
        assert_eq!(r.bytes_saved, 2200);
        assert!((r.dollars_saved - p.monthly_cost(2200, None)).abs() < 1e-15);
        assert_eq!(r.by_target["gzip"], 1);
        assert_eq!(parse_month("2026-11"), Ok("2026-11".into()));
        assert!(parse_month("2026-13").is_err());
        assert!(parse_month("26-11").is_err());
    }

    #[test]
    fn parts_cover_the_file() {
        assert_eq!(part_plan(12, 5), vec![(1, 0, 5), (2, 5, 5), (3, 10, 2)]);
        assert_eq!(part_plan(10, 5), vec![(1, 0, 5), (2, 5, 5)]);
        assert!(part_plan(0, 5).is_empty());
        let big = part_plan(100_000 * 8, 5);
        assert_eq!(big.len(), 10_000);
        assert_eq!(big.iter().map(|p| p.2).sum::<u64>(), 800_000);
    }

    #[test]
    fn encoding_for_copy_source_and_tagging() {
        assert_eq!(
            uri_encode("exports/a b+c é.csv", true),
            "exports/a%20b%2Bc%20%C3%A9.csv"
        );
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        let tags = vec![
            ("legal_hold".to_string(), "true".to_string()),
            ("team".to_string(), "a&b=c".to_string()),
        ];
        assert_eq!(tagging_header(&tags), "legal_hold=true&team=a%26b%3Dc");
    }
}
