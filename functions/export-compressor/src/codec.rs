//! File-to-file transforms on the local scratch disk: gzip with a content digest, CSV / JSON
//! lines to Parquet, and the read-back measurements (gunzip digest, Parquet shape, independent
//! source row counts). Streaming throughout: memory is bounded by a buffer, a record batch and
//! a row group, never by the object's size. No AWS types.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use flate2::write::GzEncoder;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use sha2::{Digest as _, Sha256};

use crate::plan::{Digest, SourceFormat, TableShape};

const BUF: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("local I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] ParquetError),
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    #[error("{0}")]
    Invalid(String),
}

/// Parameters of the Parquet conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParquetOptions {
    /// Rows read to infer the schema.
    pub sample_rows: usize,
    /// Rows per Arrow record batch (bounds the converter's memory with the row group).
    pub batch_rows: usize,
    /// Rows per Parquet row group (buffered in memory, compressed, before being written).
    pub row_group_rows: usize,
    pub zstd_level: i32,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        ParquetOptions {
            sample_rows: 10_000,
            batch_rows: 8192,
            row_group_rows: 131_072,
            zstd_level: 3,
        }
    }
}

/// The first line (up to 64 KiB) of a file, for format sniffing.
pub fn first_line(path: &Path) -> Result<String, CodecError> {
    let mut buf = Vec::new();
    BufReader::new(File::open(path)?)
        .take(64 * 1024)
        .read_until(b'\n', &mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Gzips `src` into `dst` at `level` (0-9); returns the digest of the original content and the
/// size of the output.
pub fn gzip_file(src: &Path, dst: &Path, level: u32) -> Result<(Digest, u64), CodecError> {
    let mut input = File::open(src)?;
    let out = BufWriter::with_capacity(BUF, File::create(dst)?);
    let mut enc = GzEncoder::new(out, flate2::Compression::new(level));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        enc.write_all(&buf[..n])?;
        total += n as u64;
    }
    let mut out = enc.finish()?;
    out.flush()?;
    drop(out);
    let size = std::fs::metadata(dst)?.len();
    Ok((
        Digest {
            sha256: hex::encode(hasher.finalize()),
            bytes: total,
        },
        size,
    ))
}

fn digest_reader(mut r: impl Read) -> Result<Digest, std::io::Error> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok(Digest {
        sha256: hex::encode(hasher.finalize()),
        bytes: total,
    })
}

/// SHA-256 of a plain file.
pub fn file_digest(path: &Path) -> Result<Digest, CodecError> {
    Ok(digest_reader(File::open(path)?)?)
}

/// SHA-256 of a gzip file's decompressed content (all members). A corrupt stream is an error.
pub fn gunzip_digest(path: &Path) -> Result<Digest, CodecError> {
    let dec = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(BUF, File::open(path)?));
    digest_reader(dec).map_err(|e| CodecError::Invalid(format!("not a valid gzip stream: {e}")))
}

/// Rows and columns of a CSV with a header, counted with the `csv` crate, independently of
/// the Arrow converter whose output is checked against it.
pub fn csv_shape(path: &Path) -> Result<TableShape, CodecError> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(BufReader::with_capacity(BUF, File::open(path)?));
    let columns = r.headers()?.len();
    let mut rows = 0u64;
    let mut rec = csv::ByteRecord::new();
    while r.read_byte_record(&mut rec)? {
        rows += 1;
    }
    Ok(TableShape { rows, columns })
}

/// Non-blank lines of a JSON-lines file.
pub fn json_lines_rows(path: &Path) -> Result<u64, CodecError> {
    let mut r = BufReader::with_capacity(BUF, File::open(path)?);
    let mut line = Vec::new();
    let mut rows = 0u64;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.iter().any(|b| !b.is_ascii_whitespace()) {
            rows += 1;
        }
    }
    Ok(rows)
}

fn writer_props(o: &ParquetOptions) -> Result<WriterProperties, CodecError> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(o.zstd_level)?))
        .set_max_row_group_row_count(Some(o.row_group_rows.max(1)))
        .build())
}

fn write_batches<I>(
    dst: &Path,
    schema: SchemaRef,
    batches: I,
    o: &ParquetOptions,
) -> Result<u64, CodecError>
where
    I: Iterator<Item = Result<RecordBatch, ArrowError>>,
{
    let out = BufWriter::with_capacity(BUF, File::create(dst)?);
    let mut w = ArrowWriter::try_new(out, schema, Some(writer_props(o)?))?;
    let mut rows = 0u64;
    for b in batches {
        let b = b?;
        rows += b.num_rows() as u64;
        w.write(&b)?;
    }
    w.close()?;
    Ok(rows)
}

fn csv_to_parquet(
    src: &Path,
    dst: &Path,
    schema: SchemaRef,
    o: &ParquetOptions,
) -> Result<u64, CodecError> {
    let reader = arrow::csv::ReaderBuilder::new(schema.clone())
        .with_header(true)
        .with_batch_size(o.batch_rows.max(1))
        .build(BufReader::with_capacity(BUF, File::open(src)?))?;
    write_batches(dst, schema, reader, o)
}

/// Converts CSV (with a header) or JSON lines to Parquet (ZSTD). The schema is inferred from
/// the first `sample_rows` rows; a CSV value that does not fit the inferred type (a column
/// that looked numeric in the sample) makes the conversion start over with every column as
/// text. A JSON-lines field not in the sample is an error (strict mode), never a silent drop.
/// Returns the shape written: rows, and columns of the schema.
pub fn to_parquet(
    src: &Path,
    dst: &Path,
    format: SourceFormat,
    o: &ParquetOptions,
) -> Result<TableShape, CodecError> {
    match format {
        SourceFormat::Csv => {
            let (schema, _) = arrow::csv::reader::Format::default()
                .with_header(true)
                .infer_schema(File::open(src)?, Some(o.sample_rows.max(1)))?;
            let schema = Arc::new(schema);
            let columns = schema.fields().len();
            let rows = match csv_to_parquet(src, dst, schema.clone(), o) {
                Ok(rows) => rows,
                Err(CodecError::Arrow(e)) => {
                    tracing::warn!(error = %e, "inferred CSV schema does not fit every row; converting every column as text");
                    let text: Vec<Field> = schema
                        .fields()
                        .iter()
                        .map(|f| Field::new(f.name(), DataType::Utf8, true))
                        .collect();
                    csv_to_parquet(src, dst, Arc::new(Schema::new(text)), o)?
                }
                Err(e) => return Err(e),
            };
            Ok(TableShape { rows, columns })
        }
        SourceFormat::JsonLines => {
            let (schema, _) = arrow::json::reader::infer_json_schema(
                BufReader::with_capacity(BUF, File::open(src)?),
                Some(o.sample_rows.max(1)),
            )?;
            let schema = Arc::new(schema);
            let columns = schema.fields().len();
            let reader = arrow::json::ReaderBuilder::new(schema.clone())
                .with_batch_size(o.batch_rows.max(1))
                .with_strict_mode(true)
                .build(BufReader::with_capacity(BUF, File::open(src)?))?;
            let rows = write_batches(dst, schema, reader, o)?;
            Ok(TableShape { rows, columns })
        }
        SourceFormat::Json => Err(CodecError::Invalid(
            "a JSON document is not tabular; only CSV and JSON lines become Parquet".into(),
        )),
    }
}

/// Reads a Parquet file back completely: rows decoded and columns of its schema.
pub fn parquet_shape(path: &Path) -> Result<TableShape, CodecError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    let columns = builder.schema().fields().len();
    let mut rows = 0u64;
    for b in builder.build()? {
        rows += b?.num_rows() as u64;
    }
    Ok(TableShape { rows, columns })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn gzip_round_trips_and_digests_agree() {
        let d = tempfile::tempdir().unwrap();
        let body: String = (0..5000)
            .map(|i| format!("{i},name-{i},{}\n", i * 7))
            .collect();
        let src = write(d.path(), "a.csv", &body);
        let dst = d.path().join("a.csv.gz");
        let (digest, size) = gzip_file(&src, &dst, 6).unwrap();
        assert_eq!(digest.bytes, body.len() as u64);
        assert!(size < body.len() as u64 / 2, "{size}");
        assert_eq!(gunzip_digest(&dst).unwrap(), digest);
        assert_eq!(file_digest(&src).unwrap(), digest);
        // A corrupt stream is an error, not a short digest.
        let mut bytes = std::fs::read(&dst).unwrap();
        let mid = bytes.len() / 2;
        bytes.truncate(mid);
        std::fs::write(&dst, bytes).unwrap();
        assert!(gunzip_digest(&dst).is_err());
    }

    #[test]
    fn csv_becomes_parquet_with_the_same_shape() {
        let d = tempfile::tempdir().unwrap();
        let mut body = String::from("id,name,amount\n");
        for i in 0..1000 {
            body.push_str(&format!("{i},\"n, {i}\",{}.5\n", i * 3));
        }
        let src = write(d.path(), "a.csv", &body);
        let dst = d.path().join("a.parquet");
        let o = ParquetOptions {
            batch_rows: 100,
            row_group_rows: 300,
            ..Default::default()
        };
        let written = to_parquet(&src, &dst, SourceFormat::Csv, &o).unwrap();
        assert_eq!(
            written,
            TableShape {
                rows: 1000,
                columns: 3
            }
        );
        assert_eq!(csv_shape(&src).unwrap(), written);
        assert_eq!(parquet_shape(&dst).unwrap(), written);
    }

    #[test]
    fn csv_whose_types_change_after_the_sample_falls_back_to_text() {
        let d = tempfile::tempdir().unwrap();
        let mut body = String::from("id,code\n");
        for i in 0..50 {
            body.push_str(&format!("{i},{i}\n"));
        }
        body.push_str("50,ABC\n");
        let src = write(d.path(), "a.csv", &body);
        let dst = d.path().join("a.parquet");
        let o = ParquetOptions {
            sample_rows: 10,
            ..Default::default()
        };
        let written = to_parquet(&src, &dst, SourceFormat::Csv, &o).unwrap();
        assert_eq!(
            written,
            TableShape {
                rows: 51,
                columns: 2
            }
        );
        assert_eq!(parquet_shape(&dst).unwrap(), written);
    }

    #[test]
    fn json_lines_become_parquet_and_unknown_fields_fail() {
        let d = tempfile::tempdir().unwrap();
        let body: String = (0..200)
            .map(|i| format!("{{\"id\":{i},\"name\":\"n{i}\"}}\n"))
            .collect::<String>()
            + "\n";
        let src = write(d.path(), "a.jsonl", &body);
        let dst = d.path().join("a.parquet");
        let w = to_parquet(
            &src,
            &dst,
            SourceFormat::JsonLines,
            &ParquetOptions::default(),
        )
        .unwrap();
        assert_eq!(
            w,
            TableShape {
                rows: 200,
                columns: 2
            }
        );
        assert_eq!(json_lines_rows(&src).unwrap(), 200);
        assert_eq!(parquet_shape(&dst).unwrap(), w);

        let mut late = body.clone();
        late.push_str("{\"id\":1,\"name\":\"x\",\"extra\":true}\n");
        let src = write(d.path(), "b.jsonl", &late);
        let o = ParquetOptions {
            sample_rows: 10,
            ..Default::default()
        };
        assert!(to_parquet(&src, &dst, SourceFormat::JsonLines, &o).is_err());
    }

    #[test]
    fn first_line_sniff() {
        let d = tempfile::tempdir().unwrap();
        let src = write(d.path(), "a.json", "{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(first_line(&src).unwrap(), "{\"a\":1}\n");
    }
}
