//! One manifest-diff run, written against the [`ObjectStore`] port: list or inventory mode,
//! checkpoint before the deadline (list mode), the drift CSV, and the reports.

use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::config::CommonConfig;
use shared::report::{ReportLocation, ReportWriter};
use shared::store::{ListRequest, ObjectMeta, ObjectStore};
use shared::{SuiteError, SuiteResult};

use crate::diff::{classify, MergeJoin, Policy, Step, Tally};
use crate::drift_csv::{DriftRow, DriftWriter};
use crate::inventory::Manifest;
use crate::inventory_load::local_files;
use crate::model::{normalize_etag, Entry};
use crate::partition::{join_partitioned, partition_side, partitions_for};
use crate::request::{InventorySource, Request, Resume, S3Location, Source};
use crate::summary::{judge, markdown, status_str, InventoryInfo, ReportKeys, Summary};

pub const REPORT_NAME: &str = "manifest-diff";
/// Rows of the drift list kept in the report itself.
pub const SAMPLE_ROWS: usize = 50;

/// What a run needs besides the request.
pub struct Engine<'a, S: ObjectStore> {
    pub store: &'a S,
    pub common: &'a CommonConfig,
    /// Local scratch space (/tmp in Lambda).
    pub scratch: &'a Path,
    /// Memory for the external sort of inventory rows, per side.
    pub sort_budget_bytes: usize,
}

/// Persisted between invocations of a long run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub request: Request,
    pub started_at: DateTime<Utc>,
    pub reference_secs: i64,
    pub sequence: u32,
    pub prefix_index: usize,
    pub last_key: Option<String>,
    pub tally: Tally,
    pub parts: Vec<String>,
    pub drifting_keys: u64,
    pub sample: Vec<DriftRow>,
    pub elapsed_ms: u64,
    /// Set once the run's report is written: later deliveries replay it.
    pub report_json_key: Option<String>,
    /// When the checkpoint was last written. A checkpoint untouched for longer than any
    /// invocation can last belongs to a continuation that was lost: a new delivery takes over.
    #[serde(default = "Utc::now")]
    pub updated_at: DateTime<Utc>,
}

/// Longer than Lambda's 15-minute limit: no invocation can still be working on a checkpoint
/// this old.
pub const ABANDONED_AFTER_SECS: i64 = 16 * 60;

/// A new run, or the continuation of a checkpointed one.
#[derive(Debug, Clone)]
pub enum Job {
    New(Box<Request>),
    Resume(Resume),
}

fn entry_from_meta(m: ObjectMeta) -> Entry {
    Entry {
        key: m.key,
        size: m.size,
        etag: m.etag.as_deref().map(normalize_etag),
        last_modified: m.last_modified.map(|t| t.timestamp()),
        delete_marker: false,
    }
}

fn rfc3339(secs: i64) -> String {
    DateTime::from_timestamp(secs, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl<S: ObjectStore> Engine<'_, S> {
    fn state_key(&self, run_id: &str) -> String {
        format!(
            "{}{REPORT_NAME}/_state/{run_id}.json",
            self.common.report_prefix
        )
    }

    fn location(&self, run_id: &str, started: DateTime<Utc>) -> ReportLocation {
        ReportLocation::new(
            &self.common.report_bucket,
            &self.common.report_prefix,
            REPORT_NAME,
            started.date_naive(),
            run_id,
        )
    }

    async fn load_checkpoint(&self, run_id: &str) -> SuiteResult<Option<Checkpoint>> {
        let key = self.state_key(run_id);
        match self
            .store
            .get_bytes(&self.common.report_bucket, &key)
            .await?
        {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                SuiteError::bad_object(
                    &self.common.report_bucket,
                    &key,
                    format!("checkpoint is not readable: {e}"),
                )
            }),
        }
    }

    async fn save_checkpoint(&self, cp: &mut Checkpoint) -> SuiteResult<()> {
        cp.updated_at = Utc::now();
        let body = serde_json::to_vec(cp).map_err(|e| SuiteError::Internal(e.to_string()))?;
        self.store
            .put_bytes(
                &self.common.report_bucket,
                &self.state_key(&cp.request.run_id),
                Bytes::from(body),
                "application/json",
            )
            .await
    }

    async fn replay(&self, json_key: &str) -> SuiteResult<Option<Summary>> {
        let Some(bytes) = self
            .store
            .get_bytes(&self.common.report_bucket, json_key)
            .await?
        else {
            return Ok(None);
        };
        Ok(serde_json::from_slice::<Summary>(&bytes).ok().map(|mut s| {
            s.replayed = true;
            s
        }))
    }

    /// Runs a new request or continues a checkpointed one. `stop_at` is when to checkpoint
    /// and hand over. Repeated deliveries are answered without repeating work.
    pub async fn execute(&self, job: Job, stop_at: Instant) -> SuiteResult<Summary> {
        let t0 = Instant::now();
        let now = Utc::now();
        let run_id = match &job {
            Job::New(r) => r.run_id.clone(),
            Job::Resume(r) => r.run_id.clone(),
        };
        let existing = self.load_checkpoint(&run_id).await?;
        if let Some(done) = existing.as_ref().and_then(|cp| cp.report_json_key.clone()) {
            let force = matches!(&job, Job::New(r) if r.force);
            if !force {
                if let Some(s) = self.replay(&done).await? {
                    return Ok(s);
                }
            }
        }
        let mut cp = match (job, existing) {
            (Job::Resume(r), Some(cp)) if cp.report_json_key.is_none() => {
                if cp.sequence != r.sequence {
                    // A stale or duplicate continuation: another invocation already moved on.
                    return Ok(self.progress(
                        &cp,
                        vec![format!(
                            "continuation {} ignored: the run is at checkpoint {}",
                            r.sequence, cp.sequence
                        )],
                    ));
                }
                cp
            }
            (Job::Resume(r), _) => {
                return Err(SuiteError::invalid(
                    "resume.run_id",
                    format!("no unfinished checkpoint for run {:?}", r.run_id),
                    "start a new run without `resume`",
                ))
            }
            (Job::New(req), Some(cp))
                if !req.force
                    && cp.report_json_key.is_none()
                    && (now - cp.updated_at).num_seconds() > ABANDONED_AFTER_SECS =>
            {
                tracing::warn!(
                    run_id = %cp.request.run_id,
                    sequence = cp.sequence,
                    updated_at = %cp.updated_at,
                    "checkpoint abandoned by a lost continuation; this delivery resumes it"
                );
                cp
            }
            (Job::New(req), existing) => {
                if !req.force {
                    if let Some(cp) = existing.as_ref().filter(|cp| cp.report_json_key.is_none()) {
                        return Ok(
                            self.progress(
                                cp,
                                vec!["the run is already in progress; this delivery did nothing"
                                    .into()],
                            ),
                        );
                    }
                    let loc = self.location(&req.run_id, now);
                    if let Some(s) = self.replay(&loc.json_key()).await? {
                        return Ok(s);
                    }
                }
                Checkpoint {
                    reference_secs: req.now.unwrap_or(now).timestamp(),
                    request: *req,
                    started_at: now,
                    sequence: 0,
                    prefix_index: 0,
                    last_key: None,
                    tally: Tally::default(),
                    parts: vec![],
                    drifting_keys: 0,
                    sample: vec![],
                    elapsed_ms: 0,
                    report_json_key: None,
                    updated_at: now,
                }
            }
        };
        let part_path = self
            .scratch
            .join(format!("{}-part-{}.csv.gz", cp.request.run_id, cp.sequence));
        let mut writer = DriftWriter::create(&part_path, cp.sequence == 0)?;

        let mut inventory = None;
        let mut warnings = Vec::new();
        let finished = match cp.request.source.clone() {
            Source::List => self.list_mode(&mut cp, &mut writer, stop_at).await?,
            Source::Inventory { primary, replica } => {
                let info = self
                    .inventory_mode(
                        &mut cp,
                        &mut writer,
                        &primary,
                        &replica,
                        stop_at,
                        &mut warnings,
                    )
                    .await?;
                inventory = Some(info);
                true
            }
        };
        cp.elapsed_ms += t0.elapsed().as_millis() as u64;
        let part = writer.finish()?;
        let loc = self.location(&cp.request.run_id, cp.started_at);
        if !finished {
            let key = loc.key(&format!("-drift.part-{:04}.csv.gz", cp.sequence));
            self.store
                .put_file(&loc.bucket, &key, &part, "text/csv", Some("gzip"))
                .await?;
            let _ = std::fs::remove_file(&part);
            cp.parts.push(key);
            cp.sequence += 1;
            self.save_checkpoint(&mut cp).await?;
            let mut s = self.progress(&cp, warnings);
            s.resume = Some(Resume {
                run_id: cp.request.run_id.clone(),
                sequence: cp.sequence,
            });
            return Ok(s);
        }
        let summary = self.finish(cp, part, &loc, inventory, warnings).await?;
        Ok(summary)
    }

    fn summary(&self, cp: &Checkpoint, status: Option<String>, warnings: Vec<String>) -> Summary {
        let req = &cp.request;
        let (prefixes, totals, overall, mut w) = judge(&req.prefixes, &cp.tally, req.threshold);
        w.extend(warnings);
        let ratio = totals.ratio();
        Summary {
            status: status.unwrap_or_else(|| status_str(overall).to_string()),
            run_id: req.run_id.clone(),
            source: match req.source {
                Source::List => "list".into(),
                Source::Inventory { .. } => "inventory".into(),
            },
            primary_bucket: req.primary_bucket.clone(),
            replica_bucket: req.replica_bucket.clone(),
            drift_ratio: ratio,
            drift_percent: ratio.map(|r| r * 100.0),
            threshold_percent: req.threshold_percent,
            lag_allowance_hours: req.lag_allowance_hours,
            reference_time: rfc3339(cp.reference_secs),
            started_at: cp
                .started_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            finished_at: None,
            duration_seconds: cp.elapsed_ms as f64 / 1000.0,
            invocations: cp.sequence + 1,
            totals,
            prefixes,
            drifting_keys: cp.drifting_keys,
            warnings: w,
            report: None,
            inventory: None,
            resume: None,
            replayed: false,
            sample: cp.sample.clone(),
        }
    }

    fn progress(&self, cp: &Checkpoint, warnings: Vec<String>) -> Summary {
        // Partial counts are not a verdict: an empty prefix mid-run is not yet a warning.
        let mut s = self.summary(cp, Some("IN_PROGRESS".into()), vec![]);
        s.warnings = warnings;
        s
    }

    fn record(
        &self,
        cp: &mut Checkpoint,
        writer: &mut DriftWriter,
        prefix: &str,
        p: Option<&Entry>,
        r: Option<&Entry>,
    ) -> SuiteResult<()> {
        let policy = Policy {
            now: cp.reference_secs,
            lag_secs: cp.request.lag_secs,
        };
        let class = classify(p, r, &policy);
        cp.tally.add(prefix, class, p, r);
        if class.is_listed() {
            writer.write(prefix, class, p, r)?;
            cp.drifting_keys += 1;
            if cp.sample.len() < SAMPLE_ROWS {
                cp.sample.push(DriftRow {
                    prefix: prefix.to_string(),
                    key: p.or(r).map(|e| e.key.clone()).unwrap_or_default(),
                    class,
                    primary_size: p.filter(|e| !e.delete_marker).map(|e| e.size),
                    replica_size: r.filter(|e| !e.delete_marker).map(|e| e.size),
                });
            }
        }
        Ok(())
    }

    /// ListObjectsV2 on both buckets, prefix by prefix, merge-joined page by page. Returns
    /// false when it stopped at a checkpoint.
    async fn list_mode(
        &self,
        cp: &mut Checkpoint,
        writer: &mut DriftWriter,
        stop_at: Instant,
    ) -> SuiteResult<bool> {
        let prefixes = cp.request.prefixes.clone();
        let (pb, rb) = (
            cp.request.primary_bucket.clone(),
            cp.request.replica_bucket.clone(),
        );
        let page_size = cp.request.page_size;
        let mut emitted = 0u64;
        for (pi, prefix) in prefixes.iter().enumerate().skip(cp.prefix_index) {
            let prefix = prefix.as_str();
            cp.tally.ensure(prefix);
            let start_after = cp.last_key.clone();
            let mut mj = MergeJoin::new();
            let mut tokens: [Option<String>; 2] = [None, None];
            let mut first = [true, true];
            loop {
                let side = match mj.step() {
                    Step::NeedPrimary => 0,
                    Step::NeedReplica => 1,
                    Step::Pair(p, r) => {
                        self.record(cp, writer, prefix, p.as_ref(), r.as_ref())?;
                        cp.last_key = p.or(r).map(|e| e.key);
                        emitted += 1;
                        continue;
                    }
                    Step::Done => break,
                };
                // A safe point: every key up to `last_key` is counted on both sides, and
                // whatever is buffered beyond it is listed again on resume.
                // Every invocation classifies at least one key, so a run always progresses.
                if emitted > 0 && Instant::now() >= stop_at {
                    cp.prefix_index = pi;
                    return Ok(false);
                }
                let bucket = if side == 0 { &pb } else { &rb };
                let page = self
                    .store
                    .list_page(
                        bucket,
                        ListRequest {
                            prefix,
                            start_after: if first[side] {
                                start_after.as_deref()
                            } else {
                                None
                            },
                            continuation_token: tokens[side].as_deref(),
                            max_keys: page_size,
                            ..Default::default()
                        },
                    )
                    .await?;
                first[side] = false;
                let last = page.next_token.is_none();
                tokens[side] = page.next_token;
                let entries: Vec<Entry> = page.objects.into_iter().map(entry_from_meta).collect();
                let fed = if side == 0 {
                    mj.feed_primary(entries, last)
                } else {
                    mj.feed_replica(entries, last)
                };
                fed.map_err(|e| SuiteError::Bucket {
                    bucket: bucket.clone(),
                    problem: format!(
                        "listing is not in key order ({e}); S3 always lists in UTF-8 byte order"
                    ),
                })?;
            }
            cp.last_key = None;
            cp.prefix_index = pi + 1;
        }
        Ok(true)
    }

    async fn resolve_manifest(
        &self,
        side: &str,
        src: &InventorySource,
    ) -> SuiteResult<(S3Location, Manifest)> {
        let manifest_loc = match src {
            InventorySource::Manifest(loc) => loc.clone(),
            InventorySource::Latest(base) => self.latest_manifest(side, base).await?,
        };
        let bucket = &manifest_loc.bucket;
        let json = self
            .store
            .get_bytes(bucket, &manifest_loc.key)
            .await?
            .ok_or_else(|| {
                SuiteError::bad_object(
                    bucket,
                    &manifest_loc.key,
                    "the inventory manifest does not exist",
                )
            })?;
        let checksum_key = manifest_loc
            .key
            .trim_end_matches("manifest.json")
            .to_string()
            + "manifest.checksum";
        let checksum = self.store.get_bytes(bucket, &checksum_key).await?;
        let checksum = checksum
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).to_string());
        let manifest = Manifest::parse(&json, checksum.as_deref())
            .map_err(|e| SuiteError::bad_object(bucket, &manifest_loc.key, e.to_string()))?;
        Ok((manifest_loc, manifest))
    }

    /// The newest dated report folder (`YYYY-MM-DDTHH-MMZ/`) with a `manifest.checksum`,
    /// which S3 writes last.
    async fn latest_manifest(&self, side: &str, base: &S3Location) -> SuiteResult<S3Location> {
        let mut folders = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .store
                .list_page(
                    &base.bucket,
                    ListRequest {
                        prefix: &base.key,
                        delimiter: Some("/"),
                        continuation_token: token.as_deref(),
                        ..Default::default()
                    },
                )
                .await?;
            folders.extend(page.common_prefixes.into_iter().filter(|p| {
                let name = p.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                name.len() == 17 && name.ends_with('Z') && name.as_bytes().get(10) == Some(&b'T')
            }));
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        folders.sort();
        for folder in folders.iter().rev() {
            if self
                .store
                .get_bytes(&base.bucket, &format!("{folder}manifest.checksum"))
                .await?
                .is_some()
            {
                return Ok(S3Location {
                    bucket: base.bucket.clone(),
                    key: format!("{folder}manifest.json"),
                });
            }
        }
        Err(SuiteError::bad_object(
            &base.bucket,
            &base.key,
            format!("no complete {side} inventory report here (no dated folder with a manifest.checksum among {} folders); check {side}_inventory and the bucket's inventory configuration", folders.len()),
        ))
    }

    async fn download_files(
        &self,
        side: &str,
        manifest: &Manifest,
        stop_at: Instant,
    ) -> SuiteResult<Vec<PathBuf>> {
        let dest = manifest.destination_bucket_name();
        let dir = self.scratch.join(format!("files-{side}"));
        std::fs::create_dir_all(&dir)?;
        let mut paths = Vec::with_capacity(manifest.files.len());
        for (i, f) in manifest.files.iter().enumerate() {
            if Instant::now() >= stop_at {
                return Err(SuiteError::Internal(format!(
                    "deadline reached while downloading the {side} inventory ({i} of {} files); raise the function's timeout or split the prefixes across runs",
                    manifest.files.len()
                )));
            }
            let path = dir.join(format!("{i:05}.csv.gz"));
            self.store.download(dest, &f.key, &path).await?;
            paths.push(path);
        }
        Ok(paths)
    }

    async fn inventory_mode(
        &self,
        cp: &mut Checkpoint,
        writer: &mut DriftWriter,
        primary: &InventorySource,
        replica: &InventorySource,
        stop_at: Instant,
        warnings: &mut Vec<String>,
    ) -> SuiteResult<InventoryInfo> {
        let (ploc, pm) = self.resolve_manifest("primary", primary).await?;
        let (rloc, rm) = self.resolve_manifest("replica", replica).await?;
        for (loc, m, want, field) in [
            (&ploc, &pm, &cp.request.primary_bucket, "primary"),
            (&rloc, &rm, &cp.request.replica_bucket, "replica"),
        ] {
            if &m.source_bucket != want {
                return Err(SuiteError::bad_object(
                    &loc.bucket,
                    &loc.key,
                    format!("this inventory lists bucket {:?}, not the {field} bucket {want:?}; check {field}_inventory", m.source_bucket),
                ));
            }
        }
        // The lag allowance counts back from the primary's snapshot, not from now: an object
        // written just before the snapshot is pending whenever the diff runs.
        if cp.request.now.is_none() {
            if let Some(t) = pm.created_secs() {
                cp.reference_secs = t;
            }
        }
        if let (Some(a), Some(b)) = (pm.created_secs(), rm.created_secs()) {
            if (a - b).abs() > cp.request.lag_secs.max(3600) {
                warnings.push(format!(
                    "the inventories were taken {:.1} h apart ({} and {}): differences may reflect the gap",
                    (a - b).abs() as f64 / 3600.0,
                    rfc3339(a),
                    rfc3339(b)
                ));
            }
        }
        for p in &cp.request.prefixes {
            cp.tally.ensure(p);
        }
        let pfiles = self.download_files("primary", &pm, stop_at).await?;
        let rfiles = self.download_files("replica", &rm, stop_at).await?;
        // The two sides are independent until the join: partition them on two threads, then
        // join partition by partition (see `partition`: bounded memory, no sort).
        let (ps, rs) = {
            let prefixes = &cp.request.prefixes;
            let compressed = |m: &Manifest| m.files.iter().map(|f| f.size).sum::<u64>();
            let parts =
                partitions_for(compressed(&pm).max(compressed(&rm)), self.sort_budget_bytes);
            let (pdir, rdir) = (
                self.scratch.join("parts-primary"),
                self.scratch.join("parts-replica"),
            );
            let pinput = local_files(&pm, &pfiles);
            let rinput = local_files(&rm, &rfiles);
            std::thread::scope(|scope| {
                let primary = scope.spawn(|| partition_side(&pm, &pinput, prefixes, &pdir, parts));
                let replica = partition_side(&rm, &rinput, prefixes, &rdir, parts);
                let primary = primary.join().unwrap_or_else(|_| {
                    Err(SuiteError::Internal(
                        "the primary side's reader panicked".into(),
                    ))
                });
                (primary, replica)
            })
        };
        for f in pfiles.iter().chain(&rfiles) {
            let _ = std::fs::remove_file(f);
        }
        let (ps, rs) = (ps?, rs?);
        let prefixes = cp.request.prefixes.clone();
        let prefix_of = |k: &str| {
            prefixes
                .iter()
                .find(|p| k.starts_with(p.as_str()))
                .map(String::as_str)
                .unwrap_or_default()
        };
        let duplicates = join_partitioned(&ps, &rs, 2, |p, r| {
            let key = p.or(r).map(|e| e.key.as_str()).unwrap_or_default();
            let prefix = prefix_of(key);
            self.record(cp, writer, prefix, p, r)
        })?;
        if duplicates > 0 {
            warnings.push(format!(
                "{duplicates} duplicate current-version rows were ignored (a malformed inventory?)"
            ));
        }
        let created = |m: &Manifest| m.created_secs().map(rfc3339);
        Ok(InventoryInfo {
            primary_manifest: ploc.uri(),
            replica_manifest: rloc.uri(),
            primary_created: created(&pm),
            replica_created: created(&rm),
            primary_files: pm.files.len(),
            replica_files: rm.files.len(),
            duplicate_keys: duplicates,
        })
    }

    async fn finish(
        &self,
        cp: Checkpoint,
        last_part: PathBuf,
        loc: &ReportLocation,
        inventory: Option<InventoryInfo>,
        warnings: Vec<String>,
    ) -> SuiteResult<Summary> {
        let csv_key = loc.key("-drift.csv.gz");
        if cp.parts.is_empty() {
            self.store
                .put_file(&loc.bucket, &csv_key, &last_part, "text/csv", Some("gzip"))
                .await?;
        } else {
            // Gzip members concatenate into one valid gzip stream: append the earlier parts and
            // this one into one file, upload it, and only then delete the parts.
            let joined = self
                .scratch
                .join(format!("{}-joined.csv.gz", cp.request.run_id));
            {
                let mut out = std::io::BufWriter::new(std::fs::File::create(&joined)?);
                for (i, key) in cp.parts.iter().enumerate() {
                    let tmp = self
                        .scratch
                        .join(format!("{}-dl-{i}.csv.gz", cp.request.run_id));
                    self.store.download(&loc.bucket, key, &tmp).await?;
                    std::io::copy(&mut std::fs::File::open(&tmp)?, &mut out)?;
                    let _ = std::fs::remove_file(&tmp);
                }
                std::io::copy(&mut std::fs::File::open(&last_part)?, &mut out)?;
                std::io::Write::flush(&mut out)?;
            }
            self.store
                .put_file(&loc.bucket, &csv_key, &joined, "text/csv", Some("gzip"))
                .await?;
            let _ = std::fs::remove_file(&joined);
        }
        let _ = std::fs::remove_file(&last_part);
        let mut s = self.summary(&cp, None, warnings);
        s.finished_at = Some(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        s.inventory = inventory;
        s.report = Some(ReportKeys {
            json: loc.uri(&loc.json_key()),
            markdown: loc.uri(&loc.markdown_key()),
            drift_csv: loc.uri(&csv_key),
        });
        let json = serde_json::to_value(&s).map_err(|e| SuiteError::Internal(e.to_string()))?;
        ReportWriter::new(self.store, loc.clone())
            .finish(&json, &markdown(&s))
            .await?;
        // Clean-up after the report is complete; a failure here leaves only litter.
        for key in &cp.parts {
            let _ = self.store.delete(&loc.bucket, key).await;
        }
        if cp.sequence > 0 {
            // Kept, marked done, so a late duplicate continuation replays the report.
            let mut done = cp.clone();
            done.report_json_key = Some(loc.json_key());
            done.sample.clear();
            self.save_checkpoint(&mut done).await?;
        }
        Ok(s)
    }
}
