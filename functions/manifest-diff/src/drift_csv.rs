//! The full list of drifting (and pending) keys, streamed to a gzipped CSV on local disk as the
//! merge goes, so memory does not grow with the number of differences.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};

use crate::model::{Class, Entry};

pub const HEADER: [&str; 10] = [
    "prefix",
    "key",
    "class",
    "primary_size",
    "replica_size",
    "primary_etag",
    "replica_etag",
    "primary_last_modified",
    "replica_last_modified",
    "primary_delete_marker",
];

/// One drifting key, as kept in the report's sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftRow {
    pub prefix: String,
    pub key: String,
    pub class: Class,
    pub primary_size: Option<u64>,
    pub replica_size: Option<u64>,
}

pub struct DriftWriter {
    path: PathBuf,
    csv: csv::Writer<GzEncoder<BufWriter<File>>>,
    pub rows: u64,
}

fn ts(t: Option<i64>) -> String {
    t.and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl DriftWriter {
    pub fn create(path: &Path, header: bool) -> std::io::Result<Self> {
        let file = BufWriter::with_capacity(1 << 16, File::create(path)?);
        let mut csv = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(GzEncoder::new(file, Compression::default()));
        if header {
            csv.write_record(HEADER).map_err(std::io::Error::other)?;
        }
        Ok(DriftWriter {
            path: path.to_path_buf(),
            csv,
            rows: 0,
        })
    }

    pub fn write(
        &mut self,
        prefix: &str,
        class: Class,
        p: Option<&Entry>,
        r: Option<&Entry>,
    ) -> std::io::Result<()> {
        let live_size = |e: Option<&Entry>| {
            e.filter(|e| !e.delete_marker)
                .map(|e| e.size.to_string())
                .unwrap_or_default()
        };
        let key = p.or(r).map(|e| e.key.as_str()).unwrap_or_default();
        self.csv
            .write_record([
                prefix,
                key,
                class.as_str(),
                &live_size(p),
                &live_size(r),
                p.and_then(|e| e.etag.as_deref()).unwrap_or_default(),
                r.and_then(|e| e.etag.as_deref()).unwrap_or_default(),
                &ts(p.and_then(|e| e.last_modified)),
                &ts(r.and_then(|e| e.last_modified)),
                if p.is_some_and(|e| e.delete_marker) {
                    "true"
                } else {
                    "false"
                },
            ])
            .map_err(std::io::Error::other)?;
        self.rows += 1;
        Ok(())
    }

    /// Finishes the gzip stream and returns the file's path.
    pub fn finish(self) -> std::io::Result<PathBuf> {
        let gz = self
            .csv
            .into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut file = gz.finish()?;
        std::io::Write::flush(&mut file)?;
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn writes_gzipped_csv_with_header() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DriftWriter::create(&dir.path().join("d.csv.gz"), true).unwrap();
        let p = Entry::live("exports/a,b \"q\".csv", 5, "e1", 1_764_000_000);
        w.write("exports/", Class::Missing, Some(&p), None).unwrap();
        let path = w.finish().unwrap();
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(File::open(path).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        let mut rdr = csv::Reader::from_reader(s.as_bytes());
        let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
        assert_eq!(
            rdr.headers().unwrap().iter().collect::<Vec<_>>(),
            HEADER.to_vec()
        );
        assert_eq!(&rows[0][1], "exports/a,b \"q\".csv");
        assert_eq!(&rows[0][2], "missing");
        assert_eq!(&rows[0][3], "5");
        assert_eq!(&rows[0][4], "");
    }
}
