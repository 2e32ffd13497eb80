//! The jobs, written against the ports: S3 events (tag one object), the sweep (every object
//! under the policy's prefixes, checkpointed), and rule reconciliation (both buckets).

use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::config::CommonConfig;
use shared::events::S3ObjectRef;
use shared::report::{ReportLocation, ReportWriter};
use shared::store::{ListRequest, ObjectStore};
use shared::{SuiteError, SuiteResult};

use crate::policy::{Policy, PolicyDoc, RuleSpec, Tag};
use crate::port::LifecyclePort;
use crate::request::{ReconcileRequest, Resume, SweepRequest};
use crate::rules::{diff_rules, RuleDrift};
use crate::sequencer::{freshness, Freshness, Sequencer};
use crate::tags::{plan, Verdict};

pub const REPORT_NAME: &str = "lifecycle-enforcer";
/// Changes listed in a sweep report (the counts cover all of them).
pub const MAX_LISTED_CHANGES: usize = 1000;
/// Longer than Lambda's 15-minute limit: no invocation can still be working on a checkpoint
/// this old, so a new delivery takes it over.
pub const ABANDONED_AFTER_SECS: i64 = 16 * 60;

pub struct Engine<'a, S: ObjectStore, P: LifecyclePort> {
    pub store: &'a S,
    pub port: &'a P,
    pub common: &'a CommonConfig,
}

// ---- one object ---------------------------------------------------------------------------

/// What enforcing the policy on one object did.
#[derive(Debug, Clone, PartialEq)]
pub struct Enforced {
    /// `None`: the object is gone.
    pub verdict: Option<Verdict>,
    pub rule: Option<String>,
    pub reason: String,
    /// The tag set after (or, in a dry run, the one that would be written).
    pub tags: Option<Vec<Tag>>,
    pub written: bool,
}

impl<S: ObjectStore, P: LifecyclePort> Engine<'_, S, P> {
    /// Reads the current version's tags, plans, and writes the merged set when needed.
    pub async fn enforce(
        &self,
        policy: &Policy,
        bucket: &str,
        key: &str,
        dry_run: bool,
    ) -> SuiteResult<Enforced> {
        let Some(current) = self.port.get_tags(bucket, key).await? else {
            return Ok(Enforced {
                verdict: None,
                rule: policy.rule_for(key).map(|r| r.name.clone()),
                reason: "the object no longer exists (deleted, or a delete marker is current)"
                    .into(),
                tags: None,
                written: false,
            });
        };
        let p = plan(policy, key, &current.tags);
        let mut out = Enforced {
            verdict: Some(p.verdict),
            rule: p.rule,
            reason: p.reason,
            tags: Some(current.tags.clone()),
            written: false,
        };
        if let Some(new_tags) = p.new_tags {
            if !dry_run {
                let ok = self
                    .port
                    .put_tags(bucket, key, current.version_id.as_deref(), &new_tags)
                    .await?;
                if !ok {
                    out.verdict = None;
                    out.reason = "the object was deleted while its tags were being written".into();
                    out.tags = None;
                    return Ok(out);
                }
                out.written = true;
                if matches!(p.verdict, Verdict::AddManaged) {
                    tracing::info!(bucket, key, "managed tag added");
                } else {
                    tracing::info!(bucket, key, "managed tag removed (exception)");
                }
            }
            out.tags = Some(new_tags);
        }
        if matches!(p.verdict, Verdict::TagLimit | Verdict::Conflict) {
            tracing::warn!(bucket, key, reason = %out.reason, "object skipped");
        }
        Ok(out)
    }
}

// ---- S3 events ----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    TagsChanged,
}

/// `ObjectCreated:*` and `ObjectTagging:Put|Delete` (notifications), or their EventBridge
/// detail types. Anything else is not the suite's business.
pub fn event_kind(name: &str) -> Option<EventKind> {
    match name {
        n if n.starts_with("ObjectCreated:") || n == "Object Created" => Some(EventKind::Created),
        "ObjectTagging:Put"
        | "ObjectTagging:Delete"
        | "Object Tags Added"
        | "Object Tags Deleted" => Some(EventKind::TagsChanged),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Tagged,
    Untagged,
    Compliant,
    ExceptionHonoured,
    Skipped,
    Duplicate,
    Stale,
    Gone,
    Ignored,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventResult {
    pub bucket: String,
    pub key: String,
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub reason: String,
    /// The object's tags after the event was handled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

/// The last sequencer applied for one key (stored in the report bucket; see the doc for why
/// not as an object tag).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyState {
    bucket: String,
    key: String,
    sequencer: Sequencer,
    event: String,
    applied_at: DateTime<Utc>,
}

fn outcome_of(e: &Enforced) -> Outcome {
    match e.verdict {
        None => Outcome::Gone,
        Some(Verdict::NotManaged) => Outcome::Ignored,
        Some(Verdict::Compliant) => Outcome::Compliant,
        Some(Verdict::Exception) => Outcome::ExceptionHonoured,
        Some(Verdict::AddManaged) => Outcome::Tagged,
        Some(Verdict::RemoveManaged) => Outcome::Untagged,
        Some(Verdict::TagLimit) | Some(Verdict::Conflict) => Outcome::Skipped,
    }
}

impl<S: ObjectStore, P: LifecyclePort> Engine<'_, S, P> {
    fn sequencer_key(&self, bucket: &str, key: &str) -> String {
        use sha2::{Digest, Sha256};
        format!(
            "{}{REPORT_NAME}/_sequencers/{bucket}/{}.json",
            self.common.report_prefix,
            hex::encode(Sha256::digest(key.as_bytes()))
        )
    }

    async fn last_sequencer(&self, bucket: &str, key: &str) -> SuiteResult<Option<Sequencer>> {
        let state_key = self.sequencer_key(bucket, key);
        let Some(b) = self
            .store
            .get_bytes(&self.common.report_bucket, &state_key)
            .await?
        else {
            return Ok(None);
        };
        match serde_json::from_slice::<KeyState>(&b) {
            Ok(s) if s.key == key && s.bucket == bucket => Ok(Some(s.sequencer)),
            _ => {
                tracing::warn!(
                    state_key,
                    "unreadable sequencer state; the event is applied"
                );
                Ok(None)
            }
        }
    }

    async fn save_sequencer(
        &self,
        bucket: &str,
        key: &str,
        sequencer: &Sequencer,
        event: &str,
    ) -> SuiteResult<()> {
        let state = KeyState {
            bucket: bucket.into(),
            key: key.into(),
            sequencer: sequencer.clone(),
            event: event.into(),
            applied_at: Utc::now(),
        };
        let body = serde_json::to_vec(&state).map_err(|e| SuiteError::Internal(e.to_string()))?;
        self.store
            .put_bytes(
                &self.common.report_bucket,
                &self.sequencer_key(bucket, key),
                Bytes::from(body),
                "application/json",
            )
            .await
    }

    /// Handles the objects of one S3 notification. Sequencers were validated by the caller.
    pub async fn handle_events(
        &self,
        policy: &Policy,
        managed_buckets: &[String],
        objects: Vec<(S3ObjectRef, Option<Sequencer>)>,
    ) -> SuiteResult<Vec<EventResult>> {
        let mut out = Vec::with_capacity(objects.len());
        for (obj, seq) in objects {
            let mut r = EventResult {
                bucket: obj.bucket.clone(),
                key: obj.key.clone(),
                event: obj.event_name.clone(),
                sequencer: seq.as_ref().map(|s| s.to_string()),
                outcome: Outcome::Ignored,
                rule: None,
                reason: String::new(),
                tags: None,
            };
            if event_kind(&obj.event_name).is_none() {
                r.reason = format!("event {:?} is not handled", obj.event_name);
                out.push(r);
                continue;
            }
            if !managed_buckets.contains(&obj.bucket) {
                r.reason = format!(
                    "bucket {:?} is not managed (PRIMARY_BUCKET, REPLICA_BUCKET)",
                    obj.bucket
                );
                out.push(r);
                continue;
            }
            let Some(rule) = policy.rule_for(&obj.key) else {
                r.reason = "the key is under no rule's prefix".into();
                out.push(r);
                continue;
            };
            r.rule = Some(rule.name.clone());
            if let Some(seq) = &seq {
                let last = self.last_sequencer(&obj.bucket, &obj.key).await?;
                match freshness(seq, last.as_ref()) {
                    Freshness::New => {}
                    f => {
                        r.outcome = if f == Freshness::Duplicate {
                            Outcome::Duplicate
                        } else {
                            Outcome::Stale
                        };
                        r.reason = format!(
                            "sequencer {seq} is {} the last applied ({}): nothing to do",
                            if f == Freshness::Duplicate {
                                "the same as"
                            } else {
                                "older than"
                            },
                            last.map(|l| l.to_string()).unwrap_or_default()
                        );
                        tracing::info!(bucket = %obj.bucket, key = %obj.key, sequencer = %seq, outcome = ?r.outcome, "event skipped");
                        out.push(r);
                        continue;
                    }
                }
            }
            let e = self.enforce(policy, &obj.bucket, &obj.key, false).await?;
            r.outcome = outcome_of(&e);
            r.reason = e.reason;
            r.tags = e.tags;
            if let Some(seq) = &seq {
                self.save_sequencer(&obj.bucket, &obj.key, seq, &obj.event_name)
                    .await?;
            }
            out.push(r);
        }
        Ok(out)
    }
}

// ---- the sweep ----------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub scanned: u64,
    pub compliant: u64,
    pub exceptions_honoured: u64,
    /// Objects whose tags disagreed with the policy (changed, would change, or skipped).
    pub out_of_policy: u64,
    pub tagged: u64,
    pub untagged: u64,
    /// Out of policy but not fixable by the suite (10 tags already, a foreign value under the
    /// managed key).
    pub skipped: u64,
    /// Listed, then gone before its tags were read.
    pub gone: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.scanned += o.scanned;
        self.compliant += o.compliant;
        self.exceptions_honoured += o.exceptions_honoured;
        self.out_of_policy += o.out_of_policy;
        self.tagged += o.tagged;
        self.untagged += o.untagged;
        self.skipped += o.skipped;
        self.gone += o.gone;
    }

    fn record(&mut self, e: &Enforced) {
        self.scanned += 1;
        let Some(v) = e.verdict else {
            self.gone += 1;
            return;
        };
        if v.exception_honoured() {
            self.exceptions_honoured += 1;
        }
        if v.out_of_policy() {
            self.out_of_policy += 1;
        }
        match v {
            Verdict::Compliant | Verdict::Exception | Verdict::NotManaged => self.compliant += 1,
            Verdict::AddManaged if e.written => self.tagged += 1,
            Verdict::RemoveManaged if e.written => self.untagged += 1,
            Verdict::TagLimit | Verdict::Conflict => self.skipped += 1,
            _ => {}
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeCounts {
    pub bucket: String,
    pub prefix: String,
    pub rule: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub bucket: String,
    pub key: String,
    pub verdict: Verdict,
    /// False in a dry run, and for skipped objects.
    pub applied: bool,
    pub reason: String,
}

/// Persisted between invocations of a long sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub request: SweepRequest,
    pub started_at: DateTime<Utc>,
    pub sequence: u32,
    /// Index into the (bucket × rule) scopes.
    pub scope_index: usize,
    /// Last key handled in the current scope: the next invocation lists after it.
    pub last_key: Option<String>,
    pub scopes: Vec<ScopeCounts>,
    pub changes: Vec<Change>,
    pub changes_total: u64,
    pub elapsed_ms: u64,
    pub report_json_key: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportKeys {
    pub json: String,
    pub markdown: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepSummary {
    /// IN_PROGRESS, COMPLIANT (nothing out of policy), FIXED, WOULD_CHANGE (dry run), PARTIAL
    /// (some objects could not be fixed: see `changes`).
    pub status: String,
    pub action: String,
    pub run_id: String,
    pub dry_run: bool,
    pub buckets: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_seconds: f64,
    pub invocations: u32,
    pub totals: Counts,
    pub scopes: Vec<ScopeCounts>,
    pub changes: Vec<Change>,
    /// Whether `changes` lists every change (it is capped at 1000).
    pub changes_complete: bool,
    pub warnings: Vec<String>,
    pub report: Option<ReportKeys>,
    pub resume: Option<Resume>,
    pub replayed: bool,
    pub scheduled_time: Option<String>,
}

fn scopes_of(req: &SweepRequest) -> Vec<ScopeCounts> {
    req.buckets
        .iter()
        .flat_map(|b| {
            req.policy.rules().iter().map(move |r| ScopeCounts {
                bucket: b.clone(),
                prefix: r.prefix.clone(),
                rule: r.name.clone(),
                counts: Counts::default(),
            })
        })
        .collect()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl<S: ObjectStore, P: LifecyclePort> Engine<'_, S, P> {
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

    async fn replay(&self, json_key: &str) -> SuiteResult<Option<SweepSummary>> {
        let Some(bytes) = self
            .store
            .get_bytes(&self.common.report_bucket, json_key)
            .await?
        else {
            return Ok(None);
        };
        Ok(serde_json::from_slice::<SweepSummary>(&bytes)
            .ok()
            .map(|mut s| {
                s.replayed = true;
                s
            }))
    }

    fn summary(&self, cp: &Checkpoint, warnings: Vec<String>) -> SweepSummary {
        let mut totals = Counts::default();
        for s in &cp.scopes {
            totals.add(&s.counts);
        }
        let status = if totals.out_of_policy == 0 {
            "COMPLIANT"
        } else if cp.request.dry_run {
            "WOULD_CHANGE"
        } else if totals.skipped > 0 {
            "PARTIAL"
        } else {
            "FIXED"
        };
        SweepSummary {
            status: status.into(),
            action: "sweep".into(),
            run_id: cp.request.run_id.clone(),
            dry_run: cp.request.dry_run,
            buckets: cp.request.buckets.clone(),
            started_at: rfc3339(cp.started_at),
            finished_at: None,
            duration_seconds: cp.elapsed_ms as f64 / 1000.0,
            invocations: cp.sequence + 1,
            totals,
            scopes: cp.scopes.clone(),
            changes: cp.changes.clone(),
            changes_complete: cp.changes_total as usize == cp.changes.len(),
            warnings,
            report: None,
            resume: None,
            replayed: false,
            scheduled_time: cp.request.scheduled_time.clone(),
        }
    }

    fn progress(&self, cp: &Checkpoint, warnings: Vec<String>) -> SweepSummary {
        let mut s = self.summary(cp, warnings);
        s.status = "IN_PROGRESS".into();
        s
    }

    /// Runs a new sweep or continues a checkpointed one; checkpoints at `stop_at`. Repeated
    /// deliveries are answered without repeating work.
    pub async fn sweep(
        &self,
        job: Result<SweepRequest, Resume>,
        stop_at: Instant,
    ) -> SuiteResult<SweepSummary> {
        let t0 = Instant::now();
        let now = Utc::now();
        let run_id = match &job {
            Ok(r) => r.run_id.clone(),
            Err(r) => r.run_id.clone(),
        };
        let force = matches!(&job, Ok(r) if r.force);
        let existing = self.load_checkpoint(&run_id).await?;
        if let Some(done) = existing.as_ref().and_then(|cp| cp.report_json_key.clone()) {
            if !force {
                if let Some(s) = self.replay(&done).await? {
                    return Ok(s);
                }
            }
        }
        let mut cp = match (job, existing) {
            (Err(r), Some(cp)) if cp.report_json_key.is_none() => {
                if cp.sequence != r.sequence {
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
            (Err(r), _) => {
                return Err(SuiteError::invalid(
                    "resume.run_id",
                    format!("no unfinished checkpoint for run {:?}", r.run_id),
                    "start a new sweep without `resume`",
                ))
            }
            (Ok(req), Some(cp))
                if !req.force
                    && cp.report_json_key.is_none()
                    && (now - cp.updated_at).num_seconds() > ABANDONED_AFTER_SECS =>
            {
                tracing::warn!(run_id = %cp.request.run_id, sequence = cp.sequence, "checkpoint abandoned by a lost continuation; this delivery resumes it");
                cp
            }
            (Ok(req), Some(cp)) if !req.force && cp.report_json_key.is_none() => {
                return Ok(self.progress(
                    &cp,
                    vec!["the sweep is already in progress; this delivery did nothing".into()],
                ));
            }
            (Ok(req), _) => Checkpoint {
                scopes: scopes_of(&req),
                request: req,
                started_at: now,
                sequence: 0,
                scope_index: 0,
                last_key: None,
                changes: vec![],
                changes_total: 0,
                elapsed_ms: 0,
                report_json_key: None,
                updated_at: now,
            },
        };
        let finished = self.sweep_scopes(&mut cp, stop_at).await?;
        cp.elapsed_ms += t0.elapsed().as_millis() as u64;
        if !finished {
            cp.sequence += 1;
            self.save_checkpoint(&mut cp).await?;
            let mut s = self.progress(&cp, vec![]);
            s.resume = Some(Resume {
                run_id: cp.request.run_id.clone(),
                sequence: cp.sequence,
            });
            return Ok(s);
        }
        let loc = self.location(&cp.request.run_id, cp.started_at);
        let mut s = self.summary(&cp, vec![]);
        s.finished_at = Some(rfc3339(Utc::now()));
        s.report = Some(ReportKeys {
            json: loc.uri(&loc.json_key()),
            markdown: loc.uri(&loc.markdown_key()),
        });
        let json = serde_json::to_value(&s).map_err(|e| SuiteError::Internal(e.to_string()))?;
        ReportWriter::new(self.store, loc.clone())
            .finish(&json, &sweep_markdown(&s))
            .await?;
        // Kept, marked done, so a late duplicate delivery replays the report.
        cp.report_json_key = Some(loc.json_key());
        cp.changes.clear();
        self.save_checkpoint(&mut cp).await?;
        Ok(s)
    }

    /// Lists each scope page by page from the checkpoint; returns false when it stopped at
    /// `stop_at` (checked between pages, after at least one page, so every invocation
    /// progresses).
    async fn sweep_scopes(&self, cp: &mut Checkpoint, stop_at: Instant) -> SuiteResult<bool> {
        let policy = cp.request.policy.clone();
        let dry_run = cp.request.dry_run;
        let page_size = cp.request.page_size;
        let mut pages = 0u64;
        while cp.scope_index < cp.scopes.len() {
            let si = cp.scope_index;
            let (bucket, prefix) = (cp.scopes[si].bucket.clone(), cp.scopes[si].prefix.clone());
            let mut token: Option<String> = None;
            let start_after = cp.last_key.clone();
            loop {
                if pages > 0 && Instant::now() >= stop_at {
                    return Ok(false);
                }
                let page = self
                    .store
                    .list_page(
                        &bucket,
                        ListRequest {
                            prefix: &prefix,
                            start_after: if token.is_none() {
                                start_after.as_deref()
                            } else {
                                None
                            },
                            continuation_token: token.as_deref(),
                            max_keys: page_size,
                            ..Default::default()
                        },
                    )
                    .await?;
                pages += 1;
                for obj in page.objects {
                    let e = self.enforce(&policy, &bucket, &obj.key, dry_run).await?;
                    cp.scopes[si].counts.record(&e);
                    if let Some(v) = e.verdict.filter(|v| v.out_of_policy()) {
                        cp.changes_total += 1;
                        if cp.changes.len() < MAX_LISTED_CHANGES {
                            cp.changes.push(Change {
                                bucket: bucket.clone(),
                                key: obj.key.clone(),
                                verdict: v,
                                applied: e.written,
                                reason: e.reason,
                            });
                        }
                    }
                    cp.last_key = Some(obj.key);
                }
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
            cp.scope_index += 1;
            cp.last_key = None;
        }
        Ok(true)
    }
}

pub fn sweep_markdown(s: &SweepSummary) -> String {
    use std::fmt::Write;
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# lifecycle-enforcer sweep {}\n\n**{}**{} — buckets {}, {} invocation(s), {:.1} s\n",
        s.run_id,
        s.status,
        if s.dry_run {
            " (dry run: nothing was changed)"
        } else {
            ""
        },
        s.buckets.join(", "),
        s.invocations,
        s.duration_seconds
    );
    let _ = writeln!(m, "| bucket | prefix | rule | scanned | compliant | exceptions | out of policy | tagged | untagged | skipped | gone |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for c in &s.scopes {
        let n = &c.counts;
        let _ = writeln!(
            m,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.bucket,
            c.prefix,
            c.rule,
            n.scanned,
            n.compliant,
            n.exceptions_honoured,
            n.out_of_policy,
            n.tagged,
            n.untagged,
            n.skipped,
            n.gone
        );
    }
    if !s.changes.is_empty() {
        let _ = writeln!(
            m,
            "\n## {} ({}{})\n\n| bucket | key | verdict | applied | reason |\n| --- | --- | --- | --- | --- |",
            if s.dry_run {
                "Would change"
            } else {
                "Changes"
            },
            s.changes.len(),
            if s.changes_complete { "" } else { ", list capped" }
        );
        for c in &s.changes {
            let _ = writeln!(
                m,
                "| {} | `{}` | {:?} | {} | {} |",
                c.bucket,
                c.key.replace('|', "\\|"),
                c.verdict,
                c.applied,
                c.reason.replace('|', "\\|")
            );
        }
    }
    m
}

// ---- rule reconciliation -----------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketReconcile {
    pub bucket: String,
    /// IN_SYNC, DRIFT (found, not applied), APPLIED.
    pub status: String,
    pub drift: Vec<RuleDrift>,
    pub in_sync: Vec<String>,
    /// Rules the suite does not own, kept as they were.
    pub foreign_kept: Vec<String>,
    pub warnings: Vec<String>,
    pub applied: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReconcileSummary {
    /// IN_SYNC, DRIFT, APPLIED.
    pub status: String,
    pub action: String,
    pub run_id: String,
    pub apply: bool,
    pub policy: PolicyDoc,
    pub desired_rules: Vec<RuleSpec>,
    pub buckets: Vec<BucketReconcile>,
    /// Drifting rules over all buckets.
    pub drift_rules: usize,
    pub started_at: String,
    pub duration_seconds: f64,
    pub report: Option<ReportKeys>,
    pub scheduled_time: Option<String>,
}

impl<S: ObjectStore, P: LifecyclePort> Engine<'_, S, P> {
    pub async fn reconcile(&self, req: &ReconcileRequest) -> SuiteResult<ReconcileSummary> {
        let t0 = Instant::now();
        let started = Utc::now();
        let desired = req.policy.render();
        let mut buckets = Vec::new();
        for bucket in &req.buckets {
            let snap = self.port.get_lifecycle(bucket).await?;
            let diff = diff_rules(&req.policy, &snap.rules);
            let mut b = BucketReconcile {
                bucket: bucket.clone(),
                status: if diff.is_in_sync() {
                    "IN_SYNC"
                } else {
                    "DRIFT"
                }
                .into(),
                drift: diff.drift.clone(),
                in_sync: diff.in_sync.clone(),
                foreign_kept: diff.foreign.clone(),
                warnings: diff.warnings.clone(),
                applied: false,
            };
            for d in &diff.drift {
                tracing::warn!(bucket = %bucket, rule = %d.id, kind = ?d.kind, details = ?d.details, "lifecycle rule drift");
            }
            if req.apply && !diff.is_in_sync() {
                self.port
                    .put_lifecycle(bucket, &snap.raw, &diff.foreign, &desired)
                    .await?;
                b.applied = true;
                b.status = "APPLIED".into();
                tracing::info!(bucket = %bucket, kept = ?diff.foreign, "lifecycle rules written");
                // Read back: S3 (or a stand-in) may normalise what it stores.
                let after = self.port.get_lifecycle(bucket).await?;
                let check = diff_rules(&req.policy, &after.rules);
                if !check.is_in_sync() {
                    b.warnings.push(format!(
                        "the configuration was written but reads back different: {:?}",
                        check.drift
                    ));
                }
                if check.foreign != diff.foreign {
                    b.warnings.push(format!(
                        "foreign rules before {:?}, after {:?}",
                        diff.foreign, check.foreign
                    ));
                }
            }
            buckets.push(b);
        }
        let drift_rules = buckets.iter().map(|b| b.drift.len()).sum();
        let status = if buckets.iter().any(|b| b.applied) {
            "APPLIED"
        } else if drift_rules > 0 {
            "DRIFT"
        } else {
            "IN_SYNC"
        };
        let loc = self.location(&req.run_id, started);
        let mut s = ReconcileSummary {
            status: status.into(),
            action: "reconcile".into(),
            run_id: req.run_id.clone(),
            apply: req.apply,
            policy: req.policy.doc().clone(),
            desired_rules: desired,
            buckets,
            drift_rules,
            started_at: rfc3339(started),
            duration_seconds: t0.elapsed().as_secs_f64(),
            report: Some(ReportKeys {
                json: loc.uri(&loc.json_key()),
                markdown: loc.uri(&loc.markdown_key()),
            }),
            scheduled_time: req.scheduled_time.clone(),
        };
        s.duration_seconds = t0.elapsed().as_secs_f64();
        let json = serde_json::to_value(&s).map_err(|e| SuiteError::Internal(e.to_string()))?;
        ReportWriter::new(self.store, loc)
            .finish(&json, &reconcile_markdown(&s))
            .await?;
        Ok(s)
    }
}

pub fn reconcile_markdown(s: &ReconcileSummary) -> String {
    use std::fmt::Write;
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# lifecycle-enforcer rule reconciliation {}\n\n**{}** — apply: {}, {} drifting rule(s)\n",
        s.run_id, s.status, s.apply, s.drift_rules
    );
    for b in &s.buckets {
        let _ = writeln!(m, "## {} — {}\n", b.bucket, b.status);
        for d in &b.drift {
            let _ = writeln!(m, "- `{}` {:?}: {}", d.id, d.kind, d.details.join("; "));
        }
        for id in &b.in_sync {
            let _ = writeln!(m, "- `{id}` in sync");
        }
        if !b.foreign_kept.is_empty() {
            let _ = writeln!(m, "- kept (not the suite's): {}", b.foreign_kept.join(", "));
        }
        for w in &b.warnings {
            let _ = writeln!(m, "- warning: {w}");
        }
        let _ = writeln!(m);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds() {
        assert_eq!(event_kind("ObjectCreated:Put"), Some(EventKind::Created));
        assert_eq!(
            event_kind("ObjectCreated:CompleteMultipartUpload"),
            Some(EventKind::Created)
        );
        assert_eq!(
            event_kind("ObjectTagging:Put"),
            Some(EventKind::TagsChanged)
        );
        assert_eq!(
            event_kind("ObjectTagging:Delete"),
            Some(EventKind::TagsChanged)
        );
        assert_eq!(
            event_kind("Object Tags Added"),
            Some(EventKind::TagsChanged)
        );
        assert_eq!(event_kind("ObjectRemoved:Delete"), None);
    }

    #[test]
    fn counts_follow_verdicts() {
        let mut c = Counts::default();
        let e = |v: Option<Verdict>, written: bool| Enforced {
            verdict: v,
            rule: None,
            reason: String::new(),
            tags: None,
            written,
        };
        c.record(&e(Some(Verdict::AddManaged), true));
        c.record(&e(Some(Verdict::AddManaged), false)); // dry run
        c.record(&e(Some(Verdict::RemoveManaged), true));
        c.record(&e(Some(Verdict::Exception), false));
        c.record(&e(Some(Verdict::TagLimit), false));
        c.record(&e(Some(Verdict::Compliant), false));
        c.record(&e(None, false));
        assert_eq!(
            c,
            Counts {
                scanned: 7,
                compliant: 2,
                exceptions_honoured: 2,
                out_of_policy: 4,
                tagged: 1,
                untagged: 1,
                skipped: 1,
                gone: 1,
            }
        );
    }
}
