//! The function's own configuration, read once at cold start (docs/export-compressor.md).

use shared::config::Vars;
use shared::SuiteError;

use crate::codec::ParquetOptions;
use crate::plan::PriceTable;

const MIB: u64 = 1024 * 1024;
/// S3's smallest part (all but the last) and largest part.
pub const MIN_PART: u64 = 5 * MIB;
pub const MAX_PART: u64 = 5 * 1024 * MIB;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `SOURCE_PREFIX`: objects compressed live under it (default `exports/`).
    pub source_prefix: String,
    /// `OUTPUT_PREFIX`: where outputs go (default `exports/compressed/`); never processed.
    pub output_prefix: String,
    /// `GZIP_LEVEL`: 0-9, default 6.
    pub gzip_level: u32,
    /// `PARQUET_MIN_BYTES`: CSV / JSON lines at least this big become Parquet; `off` never.
    pub parquet_min_bytes: Option<u64>,
    pub parquet: ParquetOptions,
    /// `MULTIPART_THRESHOLD_BYTES`: outputs at least this big are uploaded in parts.
    pub multipart_threshold: u64,
    /// `MULTIPART_PART_BYTES`: the part size (5 MiB-5 GiB).
    pub part_size: u64,
    /// `PRICE_PER_GB_MONTH`: `CLASS=dollars,...` over the defaults.
    pub prices: PriceTable,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            source_prefix: "exports/".into(),
            output_prefix: "exports/compressed/".into(),
            gzip_level: 6,
            parquet_min_bytes: Some(64 * MIB),
            parquet: ParquetOptions::default(),
            multipart_threshold: 16 * MIB,
            part_size: 8 * MIB,
            prices: PriceTable::default(),
        }
    }
}

fn bad(var: &str, problem: impl Into<String>) -> SuiteError {
    SuiteError::Config {
        var: var.into(),
        problem: problem.into(),
    }
}

impl Settings {
    pub fn from_vars(vars: &Vars) -> Result<Self, SuiteError> {
        let d = Settings::default();
        let mut source_prefix = vars.or("SOURCE_PREFIX", &d.source_prefix);
        if source_prefix.starts_with('/') {
            return Err(bad("SOURCE_PREFIX", "must not start with '/'"));
        }
        if !source_prefix.is_empty() && !source_prefix.ends_with('/') {
            source_prefix.push('/');
        }
        let mut output_prefix = vars.or("OUTPUT_PREFIX", &d.output_prefix);
        if !output_prefix.ends_with('/') {
            output_prefix.push('/');
        }
        if output_prefix == "/" || output_prefix == source_prefix || output_prefix.starts_with('/')
        {
            return Err(bad(
                "OUTPUT_PREFIX",
                format!("{output_prefix:?} must be a prefix of its own, different from SOURCE_PREFIX (e.g. exports/compressed/): outputs under it are never processed"),
            ));
        }
        if source_prefix.starts_with(&output_prefix) {
            return Err(bad(
                "OUTPUT_PREFIX",
                "must not contain SOURCE_PREFIX: every source would be skipped as output",
            ));
        }
        let gzip_level = vars.parse_or("GZIP_LEVEL", d.gzip_level, "a gzip level 0-9")?;
        if gzip_level > 9 {
            return Err(bad("GZIP_LEVEL", format!("{gzip_level} is not 0-9")));
        }
        let parquet_min_bytes = match vars.get("PARQUET_MIN_BYTES") {
            Some(v) if v.eq_ignore_ascii_case("off") => None,
            _ => Some(vars.parse_or("PARQUET_MIN_BYTES", 64 * MIB, "a size in bytes, or off")?),
        };
        let p = ParquetOptions::default();
        let parquet = ParquetOptions {
            sample_rows: vars.parse_or("PARQUET_SAMPLE_ROWS", p.sample_rows, "a number of rows")?,
            batch_rows: p.batch_rows,
            row_group_rows: vars.parse_or(
                "PARQUET_ROW_GROUP_ROWS",
                p.row_group_rows,
                "a number of rows",
            )?,
            zstd_level: vars.parse_or("PARQUET_ZSTD_LEVEL", p.zstd_level, "a zstd level 1-22")?,
        };
        if parquet.sample_rows == 0 || parquet.row_group_rows == 0 {
            return Err(bad(
                "PARQUET_SAMPLE_ROWS / PARQUET_ROW_GROUP_ROWS",
                "must be at least 1",
            ));
        }
        if !(1..=22).contains(&parquet.zstd_level) {
            return Err(bad("PARQUET_ZSTD_LEVEL", "must be 1-22"));
        }
        let multipart_threshold = vars.parse_or(
            "MULTIPART_THRESHOLD_BYTES",
            d.multipart_threshold,
            "a size in bytes",
        )?;
        let part_size = vars.parse_or("MULTIPART_PART_BYTES", d.part_size, "a size in bytes")?;
        if !(MIN_PART..=MAX_PART).contains(&part_size) {
            return Err(bad(
                "MULTIPART_PART_BYTES",
                format!("{part_size} is outside S3's 5 MiB-5 GiB part size"),
            ));
        }
        let prices = match vars.get("PRICE_PER_GB_MONTH") {
            None => PriceTable::default(),
            Some(spec) => PriceTable::parse(spec).map_err(|e| bad("PRICE_PER_GB_MONTH", e))?,
        };
        Ok(Settings {
            source_prefix,
            output_prefix,
            gzip_level,
            parquet_min_bytes,
            parquet,
            multipart_threshold,
            part_size,
            prices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, &str)]) -> Result<Settings, SuiteError> {
        Settings::from_vars(&Vars::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults() {
        assert_eq!(s(&[]).unwrap(), Settings::default());
        let t = s(&[
            ("PARQUET_MIN_BYTES", "off"),
            ("OUTPUT_PREFIX", "compressed"),
            ("PRICE_PER_GB_MONTH", "STANDARD=0.02"),
        ])
        .unwrap();
        assert_eq!(t.parquet_min_bytes, None);
        assert_eq!(t.output_prefix, "compressed/");
        assert_eq!(t.prices.price(None), 0.02);
    }

    #[test]
    fn bad_values_are_named() {
        for (pairs, var) in [
            (vec![("GZIP_LEVEL", "10")], "GZIP_LEVEL"),
            (vec![("OUTPUT_PREFIX", "exports/")], "OUTPUT_PREFIX"),
            (vec![("OUTPUT_PREFIX", "/")], "OUTPUT_PREFIX"),
            (
                vec![("SOURCE_PREFIX", "exports/compressed/x/")],
                "OUTPUT_PREFIX",
            ),
            (
                vec![("MULTIPART_PART_BYTES", "1000")],
                "MULTIPART_PART_BYTES",
            ),
            (vec![("PARQUET_MIN_BYTES", "big")], "PARQUET_MIN_BYTES"),
            (
                vec![("PRICE_PER_GB_MONTH", "STANDARD")],
                "PRICE_PER_GB_MONTH",
            ),
            (vec![("PARQUET_ZSTD_LEVEL", "0")], "PARQUET_ZSTD_LEVEL"),
        ] {
            let e = s(&pairs).unwrap_err().to_string();
            assert!(e.contains(var), "{pairs:?}: {e}");
        }
    }
}
