//! Inventory files on local disk → one key-sorted stream per side, and the join of two such
//! streams. No AWS types: the run downloads the files; the benchmark generates them.

use std::io::Read;
use std::path::{Path, PathBuf};

use shared::{SuiteError, SuiteResult};

use crate::diff::{MergeJoin, Step};
use crate::extsort::{ExternalSorter, Sorted};
use crate::inventory::{Manifest, RowScratch, RowView};
use crate::inventory_csv::FieldReader;
use crate::model::Entry;

/// One downloaded data file of a report.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// The file's key in the inventory bucket, for error messages.
    pub key: String,
    /// The manifest's `MD5checksum`, checked while reading.
    pub md5: Option<String>,
    pub path: PathBuf,
}

pub fn local_files(manifest: &Manifest, paths: &[PathBuf]) -> Vec<LocalFile> {
    manifest
        .files
        .iter()
        .zip(paths)
        .map(|(f, p)| LocalFile {
            key: f.key.clone(),
            md5: f.md5.clone(),
            path: p.clone(),
        })
        .collect()
}

/// Reads every file of one side (gzipped CSV, columns per the manifest's `fileSchema`), keeps
/// current versions under the prefixes, and sorts them externally in `sort_dir`.
pub fn load_side(
    manifest: &Manifest,
    files: &[LocalFile],
    prefixes: &[String],
    sort_dir: &Path,
    budget: usize,
) -> SuiteResult<Sorted> {
    std::fs::create_dir_all(sort_dir)?;
    let mut sorter = ExternalSorter::new(sort_dir, budget);
    for file in files {
        open_rows(manifest, file, |entry| {
            if prefixes.iter().any(|p| entry.key.starts_with(p.as_str())) {
                sorter.push(entry)?;
            }
            Ok(())
        })?;
    }
    Ok(sorter.finish()?)
}

/// Streams one data file's current-version rows to `f` (gunzip, CSV per the manifest's
/// `fileSchema`), and checks the file's MD5 against the manifest once it is read.
pub fn open_rows<F>(manifest: &Manifest, file: &LocalFile, mut f: F) -> SuiteResult<()>
where
    F: FnMut(Entry) -> SuiteResult<()>,
{
    open_row_views(manifest, file, |v| f(v.to_entry()))
}

/// [`open_rows`] without an allocation per row: each row is lent to `f`.
pub fn open_row_views<F>(manifest: &Manifest, file: &LocalFile, mut f: F) -> SuiteResult<()>
where
    F: FnMut(RowView<'_>) -> SuiteResult<()>,
{
    let schema = manifest
        .schema()
        .map_err(|e| SuiteError::Internal(e.to_string()))?;
    let dest = manifest.destination_bucket_name();
    let reader = HashingReader::new(std::fs::File::open(&file.path)?);
    let gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 17, reader));
    let mut csv = FieldReader::new(gz);
    let mut scratch = RowScratch::default();
    let mut row = 0u64;
    loop {
        let rec = match csv.next_row() {
            Ok(Some(rec)) => rec,
            Ok(None) => break,
            Err(e) => {
                return Err(SuiteError::bad_object(
                    dest,
                    &file.key,
                    format!("not readable as gzipped CSV: {e}"),
                ))
            }
        };
        row += 1;
        let view = schema
            .view(&rec, row, &mut scratch)
            .map_err(|e| SuiteError::bad_object(dest, &file.key, e.to_string()))?;
        if let Some(view) = view {
            f(view)?;
        }
    }
    let hashing = csv.into_inner().into_inner().into_inner();
    if let Some(expected) = &file.md5 {
        let actual = hashing.finish();
        if !expected.eq_ignore_ascii_case(&actual) {
            return Err(SuiteError::bad_object(
                dest,
                &file.key,
                format!("MD5 {actual} does not match the manifest's MD5checksum {expected}: the file is corrupt or was replaced"),
            ));
        }
    }
    Ok(())
}

/// Full outer join of two sorted sides, calling `f` once per key in byte order.
pub fn merge_sorted<F>(ps: &mut Sorted, rs: &mut Sorted, mut f: F) -> SuiteResult<()>
where
    F: FnMut(Option<Entry>, Option<Entry>) -> SuiteResult<()>,
{
    const PAGE: usize = 4096;
    let mut mj = MergeJoin::new();
    loop {
        match mj.step() {
            Step::NeedPrimary => {
                let page = ps.next_page(PAGE)?;
                let last = page.len() < PAGE;
                mj.feed_primary(page, last)
                    .map_err(|e| SuiteError::Internal(e.to_string()))?;
            }
            Step::NeedReplica => {
                let page = rs.next_page(PAGE)?;
                let last = page.len() < PAGE;
                mj.feed_replica(page, last)
                    .map_err(|e| SuiteError::Internal(e.to_string()))?;
            }
            Step::Pair(p, r) => f(p, r)?,
            Step::Done => return Ok(()),
        }
    }
}

/// MD5 of the bytes read through it, to check each inventory file against the manifest.
struct HashingReader<R> {
    inner: R,
    hasher: md5::Md5,
}

impl<R> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: <md5::Md5 as md5::Digest>::new(),
        }
    }

    fn finish(self) -> String {
        hex::encode(<md5::Md5 as md5::Digest>::finalize(self.hasher))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        <md5::Md5 as md5::Digest>::update(&mut self.hasher, &buf[..n]);
        Ok(n)
    }
}
