//! The run's result: the JSON response (also the JSON report) and its Markdown rendering.
//! The field names are a contract documented in docs/manifest-diff.md.

use serde::{Deserialize, Serialize};

use crate::diff::{verdict, Counts, Status, Tally};
use crate::drift_csv::DriftRow;
use crate::request::Resume;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PrefixSummary {
    pub prefix: String,
    pub status: Status,
    pub drift_ratio: Option<f64>,
    pub drift_percent: Option<f64>,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ReportKeys {
    pub json: String,
    pub markdown: String,
    pub drift_csv: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct InventoryInfo {
    pub primary_manifest: String,
    pub replica_manifest: String,
    pub primary_created: Option<String>,
    pub replica_created: Option<String>,
    pub primary_files: usize,
    pub replica_files: usize,
    pub duplicate_keys: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// OK, DRIFT, EMPTY or IN_PROGRESS.
    pub status: String,
    pub run_id: String,
    pub source: String,
    pub primary_bucket: String,
    pub replica_bucket: String,
    pub drift_ratio: Option<f64>,
    pub drift_percent: Option<f64>,
    pub threshold_percent: f64,
    pub lag_allowance_hours: f64,
    pub reference_time: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Processing time summed over every invocation of the run.
    pub duration_seconds: f64,
    pub invocations: u32,
    pub totals: Counts,
    pub prefixes: Vec<PrefixSummary>,
    pub drifting_keys: u64,
    pub warnings: Vec<String>,
    pub report: Option<ReportKeys>,
    pub inventory: Option<InventoryInfo>,
    /// Present while IN_PROGRESS: the payload that continues the run.
    pub resume: Option<Resume>,
    /// True when this response replays a report already written for the same run id.
    #[serde(default)]
    pub replayed: bool,
    pub sample: Vec<DriftRow>,
}

pub fn status_str(s: Status) -> &'static str {
    match s {
        Status::Ok => "OK",
        Status::Drift => "DRIFT",
        Status::Empty => "EMPTY",
    }
}

/// Per-prefix summaries, the overall status and warnings for empty prefixes.
pub fn judge(
    prefixes: &[String],
    tally: &Tally,
    threshold: f64,
) -> (Vec<PrefixSummary>, Counts, Status, Vec<String>) {
    let mut out = Vec::with_capacity(prefixes.len());
    let mut warnings = Vec::new();
    let mut any_drift = false;
    for p in prefixes {
        let counts = tally.by_prefix.get(p).cloned().unwrap_or_default();
        let status = verdict(&counts, threshold);
        if status == Status::Empty {
            warnings.push(format!(
                "prefix {p:?} has no objects on either bucket: check the prefix and the bucket names"
            ));
        }
        any_drift |= status == Status::Drift;
        let ratio = counts.ratio();
        out.push(PrefixSummary {
            prefix: p.clone(),
            status,
            drift_ratio: ratio,
            drift_percent: ratio.map(|r| r * 100.0),
            counts,
        });
    }
    let totals = tally.total();
    let overall = match verdict(&totals, threshold) {
        Status::Ok if any_drift => Status::Drift,
        s => s,
    };
    (out, totals, overall, warnings)
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('`', "'").replace('\n', " ")
}

fn pct(r: Option<f64>) -> String {
    r.map(|r| format!("{:.4} %", r * 100.0))
        .unwrap_or_else(|| "n/a".into())
}

pub fn markdown(s: &Summary) -> String {
    use std::fmt::Write;
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# Manifest diff: `{}` → `{}`: **{}**\n",
        s.primary_bucket, s.replica_bucket, s.status
    );
    let _ = writeln!(
        m,
        "Drift {} of eligible primary objects against a threshold of {} %. Source: {}. Reference time {} (changes within {} h are pending, not drift). Run `{}`, {} invocation(s), {:.1} s.\n",
        pct(s.drift_ratio),
        s.threshold_percent,
        s.source,
        s.reference_time,
        s.lag_allowance_hours,
        s.run_id,
        s.invocations,
        s.duration_seconds
    );
    let _ = writeln!(
        m,
        "| prefix | status | eligible | missing | extra | mismatched | pending | drift |"
    );
    let _ = writeln!(m, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for p in &s.prefixes {
        let c = &p.counts;
        let _ = writeln!(
            m,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} |",
            md_escape(&p.prefix),
            status_str(p.status),
            c.eligible_primary,
            c.missing,
            c.extra,
            c.mismatched(),
            c.pending,
            pct(p.drift_ratio)
        );
    }
    let t = &s.totals;
    let _ = writeln!(
        m,
        "| **all** | **{}** | {} | {} | {} | {} | {} | {} |\n",
        s.status,
        t.eligible_primary,
        t.missing,
        t.extra,
        t.mismatched(),
        t.pending,
        pct(s.drift_ratio)
    );
    let _ = writeln!(
        m,
        "Matched {} (of which {} by size only: multipart ETags are not comparable across replicas); deleted on both sides {}; {} bytes on the primary, {} on the replica.\n",
        t.matched + t.matched_size_only,
        t.matched_size_only,
        t.deleted_both,
        t.primary_bytes,
        t.replica_bytes
    );
    if let Some(inv) = &s.inventory {
        let _ = writeln!(
            m,
            "Inventory reports: primary `{}` ({} files, created {}), replica `{}` ({} files, created {}).\n",
            inv.primary_manifest,
            inv.primary_files,
            inv.primary_created.as_deref().unwrap_or("?"),
            inv.replica_manifest,
            inv.replica_files,
            inv.replica_created.as_deref().unwrap_or("?")
        );
    }
    if !s.warnings.is_empty() {
        let _ = writeln!(m, "## Warnings\n");
        for w in &s.warnings {
            let _ = writeln!(m, "- {}", md_escape(w));
        }
        let _ = writeln!(m);
    }
    if s.drifting_keys > 0 {
        let _ = writeln!(
            m,
            "## Drifting and pending keys ({} in all)\n",
            s.drifting_keys
        );
        if let Some(r) = &s.report {
            let _ = writeln!(
                m,
                "The full list is `{}` (gzipped CSV). The first {}:\n",
                r.drift_csv,
                s.sample.len()
            );
        }
        let _ = writeln!(m, "| class | key | primary size | replica size |");
        let _ = writeln!(m, "| --- | --- | ---: | ---: |");
        for r in &s.sample {
            let size = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "—".into());
            let _ = writeln!(
                m,
                "| {} | `{}` | {} | {} |",
                r.class.as_str(),
                md_escape(&r.key),
                size(r.primary_size),
                size(r.replica_size)
            );
        }
    }
    m
}
