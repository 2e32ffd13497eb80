//! Reports in S3: `<REPORT_PREFIX><name>/YYYY-MM-DD/<run_id>.{json,md}` plus attachments
//! (CSV.gz and the like) beside them. The JSON is written last: a JSON report present means
//! every artefact it names is complete, so a reader never sees a half-written report.

use std::path::Path;

use bytes::Bytes;
use chrono::NaiveDate;

use crate::error::SuiteResult;
use crate::store::ObjectStore;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLocation {
    pub bucket: String,
    /// `reports/manifest-diff/2026-11-27/`
    pub folder: String,
    pub run_id: String,
}

impl ReportLocation {
    pub fn new(
        bucket: &str,
        report_prefix: &str,
        name: &str,
        date: NaiveDate,
        run_id: &str,
    ) -> Self {
        ReportLocation {
            bucket: bucket.to_string(),
            folder: format!("{report_prefix}{name}/{}/", date.format("%Y-%m-%d")),
            run_id: run_id.to_string(),
        }
    }

    pub fn key(&self, suffix: &str) -> String {
        format!("{}{}{}", self.folder, self.run_id, suffix)
    }

    pub fn json_key(&self) -> String {
        self.key(".json")
    }

    pub fn markdown_key(&self) -> String {
        self.key(".md")
    }

    pub fn uri(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }
}

pub struct ReportWriter<'a, S: ObjectStore> {
    store: &'a S,
    pub location: ReportLocation,
}

impl<'a, S: ObjectStore> ReportWriter<'a, S> {
    pub fn new(store: &'a S, location: ReportLocation) -> Self {
        ReportWriter { store, location }
    }

    /// Reads back a finished report for this run, if one exists (idempotent re-delivery).
    pub async fn existing_json(&self) -> SuiteResult<Option<serde_json::Value>> {
        let Some(bytes) = self
            .store
            .get_bytes(&self.location.bucket, &self.location.json_key())
            .await?
        else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&bytes).ok())
    }

    pub async fn attach_file(
        &self,
        suffix: &str,
        path: &Path,
        content_type: &str,
        encoding: Option<&str>,
    ) -> SuiteResult<String> {
        let key = self.location.key(suffix);
        self.store
            .put_file(&self.location.bucket, &key, path, content_type, encoding)
            .await?;
        Ok(key)
    }

    /// Writes the Markdown, then the JSON (the completion marker).
    pub async fn finish(&self, json: &serde_json::Value, markdown: &str) -> SuiteResult<()> {
        self.store
            .put_bytes(
                &self.location.bucket,
                &self.location.markdown_key(),
                Bytes::from(markdown.to_string()),
                "text/markdown; charset=utf-8",
            )
            .await?;
        let body = serde_json::to_vec_pretty(json)
            .map_err(|e| crate::SuiteError::Internal(e.to_string()))?;
        self.store
            .put_bytes(
                &self.location.bucket,
                &self.location.json_key(),
                Bytes::from(body),
                "application/json",
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_keys() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let loc = ReportLocation::new("rep", "reports/", "manifest-diff", d, "run1");
        assert_eq!(loc.json_key(), "reports/manifest-diff/2026-11-27/run1.json");
        assert_eq!(
            loc.markdown_key(),
            "reports/manifest-diff/2026-11-27/run1.md"
        );
        assert_eq!(
            loc.key("-drift.csv.gz"),
            "reports/manifest-diff/2026-11-27/run1-drift.csv.gz"
        );
        assert_eq!(
            loc.uri(&loc.json_key()),
            "s3://rep/reports/manifest-diff/2026-11-27/run1.json"
        );
    }
}
