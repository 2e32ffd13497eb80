//! The run: start (resolve the scenario, plan, record the run), one slice per coordinator
//! invocation (fan out the slice's shards synchronously and in parallel; one lead before the
//! next window, hand off to a continuation of itself with an asynchronous self-invoke), and
//! the finalization by the last slice's coordinator (merge every slice's partial result from
//! S3, judge, gate, baseline, artifacts, metrics).
//!
//! State in S3 under `<prefix>runs/<run_id>/`: `run.json` (scenario, t0, plan), one
//! `slice-NNNN.claim` per slice (conditional create: a repeated delivery never runs a slice
//! twice) and one `slice-NNNN.json` partial result per slice.

use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use loadtest_core::{parse_scenario, BodySpec, Scenario, Schedule, ShardRequest};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shared::config::CommonConfig;
use shared::{SuiteError, SuiteResult};

use crate::ab::{AbPlan, AbSpec};
use crate::aggregate::{Aggregate, AggregateDoc, Numbers, Stats};
use crate::config::Settings;
use crate::gate::{throughput_check, Baseline, BaselineRun, RunVerdict};
use crate::plan::{plan, sse_clients_of, stripe_scheduled, Mode, Plan, SlicePlan};
use crate::port::{Invoker, Notifier, ShardFailure, Store};
use crate::release::IncidentDraft;
use crate::report::{latency_svg, markdown};
use crate::summary::{emf_documents, k6_summary, prom_series, Artifacts, BaselineCheck, RunReport};
use crate::threshold::{judge, parse_thresholds, Judged, Threshold};

pub fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

pub(crate) fn iso(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

pub(crate) fn internal(e: impl std::fmt::Display) -> SuiteError {
    SuiteError::Internal(e.to_string())
}

pub(crate) fn to_bytes<T: Serialize>(v: &T) -> SuiteResult<Bytes> {
    serde_json::to_vec_pretty(v)
        .map(Bytes::from)
        .map_err(internal)
}

/// What `run.json` holds: everything a continuation needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDoc {
    pub run_id: String,
    pub scenario: Scenario,
    pub t0_unix_ms: u64,
    pub plan: Plan,
    /// `<prefix>YYYY-MM-DD/<scenario>/<run_id>/`
    pub folder: String,
    pub slice_seconds: u64,
    pub lead_ms: u64,
    pub grace_ms: u64,
    pub created_at: String,
    /// This start's nonce: two deliveries of the same start never write the same bytes, so
    /// a conditional create that meets its own bytes knows the write was its own.
    #[serde(default)]
    pub writer: String,
    /// Set when the run is ad hoc (an inline scenario, a `base_url` override): why. Such a
    /// run is judged and reported but never touches the named scenario's release gate or
    /// baseline, and opens no incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adhoc: Option<String>,
    /// Set for an A/B comparison (ab.rs): the two arms and how their blocks interleave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ab: Option<AbPlan>,
}

/// `slice-NNNN.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlicePartial {
    pub slice: u32,
    pub aggregate: AggregateDoc,
    /// Set when an abortOnFail threshold failed on the data so far: later slices do not run.
    pub abort: Option<String>,
    pub finished_at: String,
    /// An A/B run's slice: `[current, candidate]`, each arm's share of `aggregate`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arms: Vec<AggregateDoc>,
    /// How this slice's remote write of its steps went (`None`: the run writes none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_write: Option<String>,
}

/// Where a scenario comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ScenarioRef {
    Named(String),
    Inline(Value),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    pub scenario: ScenarioRef,
    pub run_id: Option<String>,
    /// Replaces `target.base_url` (local targets, demos).
    pub base_url: Option<String>,
}

pub struct Engine<'a, S: Store, I: Invoker, N: Notifier> {
    pub store: &'a S,
    pub invoker: &'a I,
    pub notifier: &'a N,
    pub settings: &'a Settings,
    pub common: &'a CommonConfig,
    pub http: &'a reqwest::Client,
    /// Signs the remote write for Amazon Managed Service for Prometheus (config.rs).
    pub sigv4: Option<&'a crate::remote_write::SigV4>,
}

/// Why a run is ad hoc (it then never touches the named gate or baseline): an inline scenario
/// or a `base_url` override is not the scenario the release gate judges.
pub fn adhoc_reason(req: &StartRequest) -> Option<String> {
    match (&req.scenario, &req.base_url) {
        (ScenarioRef::Inline(_), Some(_)) => {
            Some("an inline scenario with a base_url override".into())
        }
        (ScenarioRef::Inline(_), None) => Some("an inline scenario".into()),
        (ScenarioRef::Named(_), Some(u)) => Some(format!("a base_url override ({u})")),
        (ScenarioRef::Named(_), None) => None,
    }
}

/// Scenario names become keys and file names: keep them plain.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}

/// A run id safe in keys and labels: letters, digits, `-`, `_`, at most 64.
pub fn clean_run_id(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .take(64)
        .collect()
}

pub fn new_run_id(now: u64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(now as i64)
        .map(|d| d.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_default();
    format!("{t}-{:08x}", rand::random::<u32>())
}

impl<S: Store, I: Invoker, N: Notifier> Engine<'_, S, I, N> {
    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.settings.prefix)
    }
    fn run_key(&self, run_id: &str, name: &str) -> String {
        self.key(&format!("runs/{run_id}/{name}"))
    }
    fn slice_key(&self, run_id: &str, k: u32, ext: &str) -> String {
        self.run_key(run_id, &format!("slice-{k:04}.{ext}"))
    }
    pub fn gate_key(&self, scenario: &str) -> String {
        self.key(&format!("gate/{scenario}.json"))
    }
    pub fn baseline_key(&self, scenario: &str) -> String {
        self.key(&format!("baseline/{scenario}.json"))
    }
    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.settings.bucket)
    }

    async fn read_file(&self, name: &str) -> SuiteResult<Option<Vec<u8>>> {
        if let Some(dir) = &self.settings.scenario_dir {
            let p = std::path::Path::new(dir).join(name);
            if p.is_file() {
                return Ok(Some(std::fs::read(&p)?));
            }
        }
        let key = format!("{}{name}", self.settings.scenario_prefix);
        Ok(self.store.get(&key).await?.map(|b| b.to_vec()))
    }

    /// Parses the scenario, inlines `body.file`, applies the base URL override.
    pub async fn resolve_scenario(&self, req: &StartRequest) -> SuiteResult<Scenario> {
        let bytes = match &req.scenario {
            ScenarioRef::Named(name) => {
                if !valid_name(name) {
                    return Err(SuiteError::invalid(
                        "scenario",
                        format!("{name:?} is not a scenario name"),
                        "send a name such as \"quote-generation\" (lower-case letters, digits, '-', '_', '.')",
                    ));
                }
                self.read_file(&format!("{name}.json")).await?.ok_or_else(|| {
                    SuiteError::invalid(
                        "scenario",
                        format!(
                            "no scenario {name:?} in {}{}",
                            self.settings.scenario_dir.as_deref().map(|d| format!("{d}/ or ")).unwrap_or_default(),
                            self.uri(&format!("{}{name}.json", self.settings.scenario_prefix))
                        ),
                        "upload the scenario file (Terraform does for events/loadtest/*.json) or send it inline",
                    )
                })?
            }
            ScenarioRef::Inline(v) => serde_json::to_vec(v).map_err(internal)?,
        };
        let mut s = parse_scenario(&bytes).map_err(|e| {
            let loadtest_core::ScenarioError::Field { field, message } = e;
            SuiteError::invalid(
                format!("scenario.{field}"),
                message,
                "fix the scenario file (docs/loadtest-coordinator.md)",
            )
        })?;
        if let Some(BodySpec::File(f)) = &s.request.body {
            if f.contains("..") || f.starts_with('/') {
                return Err(SuiteError::invalid(
                    "scenario.request.body.file",
                    format!("{f:?} leaves the scenario folder"),
                    "name a file next to the scenario",
                ));
            }
            let text = self.read_file(f).await?.ok_or_else(|| {
                SuiteError::invalid(
                    "scenario.request.body.file",
                    format!("{f:?} not found next to the scenario"),
                    "upload the body file beside the scenario",
                )
            })?;
            s.request.body = Some(BodySpec::Text(String::from_utf8_lossy(&text).to_string()));
        }
        if let Some(u) = &req.base_url {
            s.target.base_url = u.trim_end_matches('/').to_string();
        }
        s.validate().map_err(|e| {
            let loadtest_core::ScenarioError::Field { field, message } = e;
            SuiteError::invalid(
                if req.base_url.is_some() && field.starts_with("target") {
                    "base_url".to_string()
                } else {
                    format!("scenario.{field}")
                },
                message,
                "send an http(s) URL",
            )
        })?;
        parse_thresholds(&s.thresholds).map_err(|(f, m)| {
            SuiteError::invalid(
                format!("scenario.{f}"),
                m,
                "write thresholds in k6 syntax, e.g. \"p(95)<900\"",
            )
        })?;
        if let Some(b) = &s.baseline {
            if !(b.min_ratio.is_finite() && b.min_ratio >= 0.0) {
                return Err(SuiteError::invalid(
                    "scenario.baseline.min_ratio",
                    "must be a number ≥ 0",
                    "e.g. 1.0 (≥ the stored baseline)",
                ));
            }
        }
        Ok(s)
    }

    /// The first invocation: plan, record the run (once per run id), run slice 0.
    pub async fn start(&self, req: StartRequest) -> SuiteResult<Value> {
        self.start_run(req, None).await
    }

    /// The first invocation of an A/B comparison (ab.rs): the scenario against two targets.
    pub async fn start_ab(&self, req: StartRequest, spec: AbSpec) -> SuiteResult<Value> {
        if req.base_url.is_some() {
            return Err(SuiteError::invalid(
                "base_url",
                "comes with `ab`, whose arms name the two targets",
                "drop base_url and set ab.current.base_url and ab.candidate.base_url",
            ));
        }
        self.start_run(req, Some(spec)).await
    }

    async fn start_run(&self, req: StartRequest, ab: Option<AbSpec>) -> SuiteResult<Value> {
        let scenario = self.resolve_scenario(&req).await?;
        let p = plan(&scenario, &self.settings.plan).map_err(|e| {
            SuiteError::invalid(
                format!("scenario.{}", e.field),
                e.problem,
                "change the scenario or the LOADTEST_COORD_* sizing",
            )
        })?;
        let ab = match ab {
            None => None,
            Some(_) if p.mode != Mode::Http => {
                return Err(SuiteError::invalid(
                    "ab",
                    "compares request latency; the scenario holds SSE streams",
                    "use an arrival-rate scenario for an A/B comparison",
                ))
            }
            Some(spec) => Some(crate::ab::resolve(&spec)?),
        };
        let now = now_ms();
        let run_id = match &req.run_id {
            Some(r) if !clean_run_id(r).is_empty() => clean_run_id(r),
            _ => new_run_id(now),
        };
        let t0 = now + self.settings.lead.as_millis() as u64;
        let date = chrono::DateTime::from_timestamp_millis(t0 as i64)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let doc = RunDoc {
            folder: self.key(&format!("{date}/{}/{run_id}/", scenario.name)),
            run_id: run_id.clone(),
            scenario,
            t0_unix_ms: t0,
            plan: p,
            slice_seconds: self.settings.plan.slice.as_secs(),
            lead_ms: self.settings.lead.as_millis() as u64,
            grace_ms: self.settings.shard_grace.as_millis() as u64,
            created_at: iso(now),
            writer: format!("{:016x}", rand::random::<u64>()),
            adhoc: match &ab {
                Some(a) => Some(format!(
                    "an A/B comparison of {} and {}",
                    a.arms[0].name, a.arms[1].name
                )),
                None => adhoc_reason(&req),
            },
            ab,
        };
        let key = self.run_key(&run_id, "run.json");
        if !self
            .store
            .create(&key, to_bytes(&doc)?, "application/json")
            .await?
        {
            // A repeated delivery of the same start (scheduler retries are at-least-once).
            let existing = self.load_run(&run_id).await?;
            if let Some(r) = self
                .store
                .get(&format!("{}report.json", existing.folder))
                .await?
            {
                let mut v: Value = serde_json::from_slice(&r).map_err(internal)?;
                v["replayed"] = json!(true);
                return Ok(v);
            }
            if let Some(v) = self.finalize_if_cut(&existing, 0).await? {
                return Ok(v);
            }
            return Ok(
                json!({"status": "ALREADY_STARTED", "run_id": run_id, "report": self.uri(&format!("{}report.json", existing.folder))}),
            );
        }
        tracing::info!(run_id = %doc.run_id, scenario = %doc.scenario.name, slices = doc.plan.slices.len(),
            max_shards = doc.plan.max_shards(), scheduled = doc.plan.total_scheduled(), t0 = %iso(t0), "run planned");
        self.run_slice(&doc, 0).await
    }

    pub async fn load_run(&self, run_id: &str) -> SuiteResult<RunDoc> {
        let key = self.run_key(run_id, "run.json");
        let b = self.store.get(&key).await?.ok_or_else(|| {
            SuiteError::invalid("continuation.run_id", format!("no run state at {}", self.uri(&key)), "continuations are sent by the coordinator itself; start a run with {\"scenario\": ...}")
        })?;
        serde_json::from_slice(&b)
            .map_err(|e| SuiteError::bad_object(&self.settings.bucket, &key, e.to_string()))
    }

    /// A continuation: run slice `k` of a recorded run.
    pub async fn continue_run(&self, run_id: &str, k: u32) -> SuiteResult<Value> {
        let run = self.load_run(&clean_run_id(run_id)).await?;
        if k as usize >= run.plan.slices.len() {
            return Err(SuiteError::invalid(
                "continuation.slice",
                format!("run {run_id} has {} slices", run.plan.slices.len()),
                "send a slice of the plan",
            ));
        }
        self.run_slice(&run, k).await
    }

    /// Slice `k`'s partial, polled once a second until `wait_until` (Unix ms): the
    /// finalizer waits for the slices still writing theirs.
    pub(crate) async fn partial_by(
        &self,
        run: &RunDoc,
        k: u32,
        wait_until: u64,
    ) -> SuiteResult<Option<SlicePartial>> {
        let mut p = self.partial(run, k).await?;
        while p.is_none() && now_ms() < wait_until {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            p = self.partial(run, k).await?;
        }
        Ok(p)
    }

    pub(crate) async fn partial(&self, run: &RunDoc, k: u32) -> SuiteResult<Option<SlicePartial>> {
        let key = self.slice_key(&run.run_id, k, "json");
        match self.store.get(&key).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| SuiteError::bad_object(&self.settings.bucket, &key, e.to_string())),
        }
    }

    /// Whether the run's slices write their requests to Prometheus as they finish: remote
    /// write is on and the run sends requests to one target (an SSE run has no request
    /// timeline; an A/B run's two arms would mix in one series).
    fn writes_timeline(&self, run: &RunDoc) -> bool {
        self.settings.remote_write_url.is_some() && run.ab.is_none() && run.plan.mode == Mode::Http
    }

    /// POSTs a remote-write body; the outcome as the report states it. A failure is
    /// logged and never fails the run.
    pub(crate) async fn remote_write(&self, req: &crate::remote_write::WriteRequest) -> String {
        let Some(url) = &self.settings.remote_write_url else {
            return "skipped (no LOADTEST_COORD_REMOTE_WRITE_URL)".into();
        };
        let body = match crate::remote_write::encode(req) {
            Ok(b) => b,
            Err(e) => return format!("failed: {e}"),
        };
        match crate::remote_write::push_signed(self.http, url, body, Default::default(), self.sigv4)
            .await
        {
            Ok(1) => "sent".into(),
            Ok(n) => format!("sent (attempt {n})"),
            Err(e) => {
                tracing::warn!(error = %e, "remote write failed (the run's artifacts are still written)");
                format!("failed: {e}")
            }
        }
    }

    /// Writes slice `k`'s requests, one sample per step, continuing the counters of the
    /// slices before it (their partials). `None` when the run writes no timeline.
    async fn write_slice_timeline(
        &self,
        run: &RunDoc,
        k: u32,
        agg: &Aggregate,
    ) -> SuiteResult<Option<String>> {
        if !self.writes_timeline(run) {
            return Ok(None);
        }
        let mut base = loadtest_core::TimelineStep::new(0);
        for i in 0..k {
            if let Some(p) = self.partial(run, i).await? {
                for s in &p.aggregate.timeline {
                    base.add(s);
                }
            }
        }
        let steps: Vec<loadtest_core::TimelineStep> = agg.timeline.values().cloned().collect();
        let labels = crate::summary::labels_of(
            &run.scenario.name,
            &self.common.environment,
            &run.run_id,
            &run.scenario.tags,
        );
        let req = crate::summary::timeline_series(
            &labels,
            run.t0_unix_ms,
            run.plan.slices[k as usize].window,
            self.settings.remote_write_step.as_millis() as u64,
            &base,
            &steps,
        );
        Ok(Some(self.remote_write(&req).await))
    }

    /// A redelivery of the invocation that ran slice `k` and had to finalize the run, cut
    /// after the slice's result was written and before the report was (a crash in
    /// `finalize`): finalize again, which is idempotent (release.rs). The three ways slice
    /// `k` finalizes:
    /// - it is the last slice and every partial is there;
    /// - an earlier slice's abortOnFail stopped the run at `k` (run_slice finalized `0..k`);
    /// - its handoff failed (run_slice finalized `0..=k`): the next slice was never claimed
    ///   and its window opened longer than the shard grace ago. This delivery then claims the
    ///   next slice itself, so a coordinator arriving even later cannot run it after the report.
    ///
    /// `None` otherwise: a slice is still running or the next one may still come (a duplicate
    /// delivery then answers DUPLICATE at once: it must not hold up a delivery that is still
    /// at work), or the run is complete.
    async fn finalize_if_cut(&self, run: &RunDoc, k: u32) -> SuiteResult<Option<Value>> {
        let n = run.plan.slices.len() as u32;
        let mut earlier = vec![];
        for i in 0..k {
            earlier.push(self.partial(run, i).await?);
        }
        let abort = earlier.iter().flatten().find_map(|p| p.abort.clone());
        let this = if abort.is_none() {
            self.partial(run, k).await?
        } else {
            None
        };
        let complete = earlier.iter().all(Option::is_some) && this.is_some();
        let cut = if let Some(why) = abort {
            Some((k, Some(why)))
        } else if complete && k + 1 == n {
            Some((n, None))
        } else if complete && self.next_slice_never_came(run, k).await? {
            Some((
                k + 1,
                Some(format!(
                    "handoff to slice {} failed: it was never claimed (finalized on a redelivery of slice {k})",
                    k + 1
                )),
            ))
        } else {
            None
        };
        let Some((upto, why)) = cut else {
            return Ok(None);
        };
        if self
            .store
            .get(&format!("{}report.json", run.folder))
            .await?
            .is_some()
        {
            return Ok(None);
        }
        tracing::warn!(run_id = %run.run_id, slice = k, upto, reason = ?why, "redelivered after the slice that finalizes the run and before its report: finalizing again");
        self.finalize(run, upto, why).await.map(Some)
    }

    /// Whether slice `k + 1` was never started and never will be: its window opened more
    /// than the shard grace ago and nobody claimed it. Claims it (for nobody) when so.
    async fn next_slice_never_came(&self, run: &RunDoc, k: u32) -> SuiteResult<bool> {
        let Some(next) = run.plan.slices.get(k as usize + 1) else {
            return Ok(false);
        };
        if now_ms() < run.t0_unix_ms + next.window.from_ms + run.grace_ms {
            return Ok(false);
        }
        let key = self.slice_key(&run.run_id, k + 1, "claim");
        let marker = format!("never claimed: the run was finalized after slice {k}");
        if self
            .store
            .create(
                &key,
                Bytes::from(format!("{} {marker}", iso(now_ms()))),
                "text/plain",
            )
            .await?
        {
            return Ok(true);
        }
        // Claimed already: by a coordinator of that slice, or by an earlier repair that was
        // cut in turn (its marker says so).
        Ok(self
            .store
            .get(&key)
            .await?
            .is_some_and(|b| String::from_utf8_lossy(&b).ends_with(&marker)))
    }

    pub async fn run_slice(&self, run: &RunDoc, k: u32) -> SuiteResult<Value> {
        let n = run.plan.slices.len() as u32;
        let claim = self.slice_key(&run.run_id, k, "claim");
        if !self
            .store
            .create(
                &claim,
                // A nonce, so that only this invocation recognises the claim as its own.
                Bytes::from(format!("{} {:016x}", iso(now_ms()), rand::random::<u64>())),
                "text/plain",
            )
            .await?
        {
            if let Some(v) = self.finalize_if_cut(run, k).await? {
                return Ok(v);
            }
            tracing::info!(run_id = %run.run_id, slice = k, "slice already claimed: repeated delivery ignored");
            return Ok(json!({"status": "DUPLICATE", "run_id": run.run_id, "slice": k}));
        }
        // An earlier slice's abortOnFail: this slice does not run; finalize what ran.
        for i in 0..k {
            if let Some(p) = self.partial(run, i).await? {
                if let Some(why) = p.abort {
                    tracing::warn!(run_id = %run.run_id, slice = k, reason = %why, "aborted by an earlier slice");
                    return self.finalize(run, k, Some(why)).await;
                }
            }
        }
        let slice = run.plan.slices[k as usize].clone();
        let handoff = async {
            if k + 1 >= n {
                return Ok(());
            }
            let next = &run.plan.slices[(k + 1) as usize];
            let at = run.t0_unix_ms + next.window.from_ms;
            let when = at.saturating_sub(run.lead_ms);
            let now = now_ms();
            if when > now {
                tokio::time::sleep(Duration::from_millis(when - now)).await;
            }
            let payload = json!({"continuation": {"run_id": run.run_id, "slice": k + 1}});
            let mut last = None;
            for attempt in 0..3u64 {
                match self.invoker.continue_async(&payload).await {
                    Ok(()) => {
                        tracing::info!(run_id = %run.run_id, next_slice = k + 1, "handed off to the next slice's coordinator");
                        return Ok(());
                    }
                    Err(e) => {
                        tracing::warn!(run_id = %run.run_id, attempt, error = %e, "handoff failed");
                        last = Some(e);
                        tokio::time::sleep(Duration::from_millis(500 * (attempt + 1))).await;
                    }
                }
            }
            Err(last.unwrap_or_else(|| internal("handoff failed")))
        };
        let shards = async {
            match &run.ab {
                // An A/B run is judged whole (ab.rs): no abortOnFail between its blocks.
                Some(ab) => {
                    let (agg, arms) = self.run_ab_slice(run, ab, &slice).await;
                    (agg, Some(arms))
                }
                None => (self.run_shards(run, &run.scenario, &slice).await, None),
            }
        };
        let (handoff, (agg, arms)) = tokio::join!(handoff, shards);
        let abort = match arms {
            Some(_) => None,
            None => self.abort_reason(run, k, &agg).await?,
        };
        let remote_write = self.write_slice_timeline(run, k, &agg).await?;
        let partial = SlicePartial {
            slice: k,
            aggregate: agg.to_doc().map_err(internal)?,
            abort: abort.clone(),
            finished_at: iso(now_ms()),
            arms: match &arms {
                Some(a) => a
                    .iter()
                    .map(|a| a.to_doc().map_err(internal))
                    .collect::<SuiteResult<_>>()?,
                None => vec![],
            },
            remote_write,
        };
        self.store
            .put(
                &self.slice_key(&run.run_id, k, "json"),
                to_bytes(&partial)?,
                "application/json",
            )
            .await?;
        tracing::info!(run_id = %run.run_id, slice = k, scheduled = agg.scheduled, sent = agg.sent,
            dropped = agg.dropped, shards_failed = agg.failed_shards.len(), "slice done");
        if let Err(e) = handoff {
            // Without a next coordinator nobody would finalize: this one does, now.
            return self
                .finalize(
                    run,
                    k + 1,
                    Some(format!("handoff to slice {} failed: {e}", k + 1)),
                )
                .await;
        }
        if k + 1 == n {
            return self.finalize(run, n, None).await;
        }
        Ok(json!({
            "status": "SLICE_DONE", "run_id": run.run_id, "slice": k, "next_slice": k + 1,
            "slices": n, "abort": abort,
            "report": self.uri(&format!("{}report.json", run.folder)),
        }))
    }

    /// Fans out one slice's shards (the run's `scenario`, or an A/B arm's copy of it) and
    /// merges what comes back.
    pub async fn run_shards(
        &self,
        run: &RunDoc,
        scenario: &Scenario,
        slice: &SlicePlan,
    ) -> Aggregate {
        let mut agg = Aggregate::default();
        let sched = Schedule::from_scenario(scenario);
        let sse_clients = match &scenario.executor {
            loadtest_core::Executor::SseClients(e) => u64::from(e.clients),
            _ => 0,
        };
        let n = slice.shards;
        let deadline = run.t0_unix_ms + slice.window.to_ms + run.grace_ms;
        // The shards continue this invocation's trace (and pass it on to the target).
        let traceparent = shared::otel::current_traceparent();
        let calls = (0..n).map(|j| {
            let req = ShardRequest {
                run_id: run.run_id.clone(),
                scenario: scenario.clone(),
                t0_unix_ms: run.t0_unix_ms,
                window: slice.window,
                slice_index: slice.index,
                shard_index: j,
                shard_count: n,
                traceparent: traceparent.clone(),
                timeline_step_ms: self
                    .writes_timeline(run)
                    .then_some(self.settings.remote_write_step.as_millis() as u64),
            };
            let expected = match (run.plan.mode, &sched) {
                (Mode::Sse, _) => sse_clients_of(sse_clients, j, n),
                (Mode::Http, Some(s)) => stripe_scheduled(s, slice.window, j, n),
                (Mode::Http, None) => 0,
            };
            let timeout = Duration::from_millis(deadline.saturating_sub(now_ms()).max(1000));
            async move { (j, expected, self.invoker.invoke_shard(&req, timeout).await) }
        });
        let sse = run.plan.mode == Mode::Sse;
        for (j, expected, res) in join_all(calls).await {
            match res {
                Ok(r)
                    if r.run_id != run.run_id
                        || r.slice_index != slice.index
                        || r.shard_index != j =>
                {
                    agg.add_failed(
                        slice.index,
                        j,
                        expected,
                        sse,
                        &format!(
                            "answered for run {} slice {} shard {}",
                            r.run_id, r.slice_index, r.shard_index
                        ),
                    );
                }
                Ok(r) => {
                    if let Err(e) = agg.add_result(&r, expected) {
                        agg.add_failed(
                            slice.index,
                            j,
                            expected,
                            sse,
                            &format!("unreadable result: {e}"),
                        );
                    }
                }
                Err(ShardFailure::Timeout) => agg.add_failed(
                    slice.index,
                    j,
                    expected,
                    sse,
                    &format!(
                        "no answer within the window + {} s grace",
                        run.grace_ms / 1000
                    ),
                ),
                Err(ShardFailure::Failed(m)) => agg.add_failed(slice.index, j, expected, sse, &m),
            }
        }
        for f in agg.failed_shards.iter() {
            tracing::warn!(run_id = %run.run_id, slice = f.slice, shard = f.shard, scheduled = f.scheduled, reason = %f.reason, "shard failed: its requests count as dropped");
        }
        agg
    }

    /// abortOnFail thresholds judged on everything known so far (earlier partials + this slice).
    async fn abort_reason(
        &self,
        run: &RunDoc,
        k: u32,
        this: &Aggregate,
    ) -> SuiteResult<Option<String>> {
        let ts = parse_thresholds(&run.scenario.thresholds).unwrap_or_default();
        if !ts.iter().any(|t| t.abort_on_fail) {
            return Ok(None);
        }
        let mut all = Aggregate::default();
        let mut ms = 0u64;
        for i in 0..k {
            if let Some(p) = self.partial(run, i).await? {
                all.merge(&Aggregate::from_doc(&p.aggregate).map_err(internal)?);
                let w = run.plan.slices[i as usize].window;
                ms += w.to_ms - w.from_ms;
            }
        }
        all.merge(this);
        let w = run.plan.slices[k as usize].window;
        ms += w.to_ms - w.from_ms;
        let numbers = Numbers::of(&all, ms as f64 / 1000.0);
        let pct = percentile_fn(&all);
        Ok(ts
            .iter()
            .filter(|t| t.abort_on_fail)
            .map(|t| judge(t, &numbers, &pct))
            .find(|j| !j.ok)
            .map(|j| format!("abortOnFail threshold {} {} failed after slice {k} (observed {:.4} on {} samples)", j.metric, j.expr, j.observed, j.samples)))
    }

    /// Merges the slices `0..upto`, judges, and writes everything. Idempotent: a finished
    /// run's report is returned as it is.
    pub async fn finalize(
        &self,
        run: &RunDoc,
        upto: u32,
        aborted: Option<String>,
    ) -> SuiteResult<Value> {
        let report_key = format!("{}report.json", run.folder);
        if let Some(b) = self.store.get(&report_key).await? {
            let mut v: Value = serde_json::from_slice(&b).map_err(internal)?;
            v["replayed"] = json!(true);
            return Ok(v);
        }
        if let Some(ab) = &run.ab {
            return self.finalize_ab(run, ab, upto, aborted).await;
        }
        let mut agg = Aggregate::default();
        let mut notes = vec![];
        let mut duration_ms = 0u64;
        let sched = Schedule::from_scenario(&run.scenario);
        let sse_clients = run.plan.slices.first().map(|s| s.scheduled).unwrap_or(0);
        let wait_until = now_ms() + self.settings.finalize_wait.as_millis() as u64;
        for i in 0..upto {
            let sl = &run.plan.slices[i as usize];
            duration_ms += sl.window.to_ms - sl.window.from_ms;
            match self.partial_by(run, i, wait_until).await? {
                Some(p) => {
                    if let Some(rw) = p
                        .remote_write
                        .as_deref()
                        .filter(|r| r.starts_with("failed"))
                    {
                        notes.push(format!("slice {i}: remote write of its steps {rw}"));
                    }
                    agg.merge(&Aggregate::from_doc(&p.aggregate).map_err(internal)?)
                }
                None => {
                    notes.push(format!("slice {i}: no partial result within {} s; its {} shard(s) count as failed and their requests as dropped", self.settings.finalize_wait.as_secs(), sl.shards));
                    for j in 0..sl.shards {
                        let expected = match (run.plan.mode, &sched) {
                            (Mode::Sse, _) => sse_clients_of(sse_clients, j, sl.shards),
                            (Mode::Http, Some(s)) => stripe_scheduled(s, sl.window, j, sl.shards),
                            _ => 0,
                        };
                        agg.add_failed(
                            i,
                            j,
                            expected,
                            run.plan.mode == Mode::Sse,
                            "slice coordinator never reported",
                        );
                    }
                }
            }
        }
        for f in &agg.failed_shards {
            notes.push(format!(
                "slice {} shard {} failed ({}): {} scheduled counted as dropped",
                f.slice, f.shard, f.reason, f.scheduled
            ));
        }
        for s in &agg.stopped_early {
            notes.push(format!("stopped early: {s}"));
        }
        let numbers = Numbers::of(&agg, duration_ms as f64 / 1000.0);
        let thresholds = parse_thresholds(&run.scenario.thresholds).unwrap_or_default();
        let pct = percentile_fn(&agg);
        let judged: Vec<Judged> = thresholds
            .iter()
            .map(|t| judge(t, &numbers, &pct))
            .collect();
        let scenario = run.scenario.name.clone();
        let finished = now_ms();

        // Baseline: compare with the stored reference (an ad-hoc run has none: it is not the
        // scenario the baseline measures).
        let bkey = self.baseline_key(&scenario);
        let baseline = match (&run.adhoc, &run.scenario.baseline) {
            (None, Some(_)) => self.load_baseline(&bkey).await?,
            _ => Baseline::default(),
        };
        let baseline_check = match (&run.adhoc, &run.scenario.baseline) {
            (None, Some(spec)) => {
                let c = throughput_check(
                    &baseline,
                    &run.run_id,
                    numbers.throughput_rps,
                    spec.min_ratio,
                );
                Some(BaselineCheck {
                    reference_run: c.as_ref().and_then(|c| c.reference_runs.first().cloned()),
                    reference_runs: c
                        .as_ref()
                        .map(|c| c.reference_runs.len() as u32)
                        .unwrap_or(0),
                    reference_throughput_rps: c.as_ref().map(|c| c.reference_rps),
                    throughput_rps: numbers.throughput_rps,
                    ratio: c.as_ref().map(|c| c.ratio),
                    min_ratio: spec.min_ratio,
                    tolerance_rps: c.as_ref().map(|c| c.tolerance_rps),
                    required_rps: c.as_ref().map(|c| c.required_rps),
                    ok: c.as_ref().map(|c| c.ok).unwrap_or(true),
                })
            }
            _ => None,
        };
        // No evidence either way (an outage, most of the load never sent): ERROR, which the
        // gate does not count (gate.rs).
        let no_verdict = crate::gate::no_verdict(
            run.plan.mode == Mode::Http,
            numbers.scheduled,
            numbers.sent,
            numbers.ok,
            numbers.shards_total,
            numbers.shards_failed,
        );
        if let Some(why) = &no_verdict {
            notes.push(format!("no verdict: {why}"));
        }
        let passed = aborted.is_none()
            && no_verdict.is_none()
            && judged.iter().all(|j| j.ok)
            && baseline_check.as_ref().map(|b| b.ok).unwrap_or(true);
        let status = if no_verdict.is_some() {
            "ERROR"
        } else if aborted.is_some() {
            "ABORTED"
        } else if passed {
            "PASSED"
        } else {
            "FAILED"
        };

        let p95: Vec<(&Threshold, &Judged)> = thresholds
            .iter()
            .zip(judged.iter())
            .filter(|(t, _)| t.is_p95_latency())
            .collect();
        let objective_ms = p95.first().map(|(t, _)| t.value);
        let (p95_failed, p95_ms, objective) = if p95.is_empty() {
            (
                !passed,
                numbers.latency_ms.p95,
                "every threshold (no p95 objective)".to_string(),
            )
        } else {
            (
                p95.iter().any(|(_, j)| !j.ok),
                p95[0].1.observed,
                p95.iter()
                    .map(|(t, _)| format!("{} {}", t.metric, t.expr))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        };
        drop(p95);

        let artifacts = Artifacts {
            summary: self.uri(&format!("{}summary.json", run.folder)),
            histogram: self.uri(&format!("{}histogram.json", run.folder)),
            markdown: self.uri(&format!("{}report.md", run.folder)),
            chart: self.uri(&format!("{}latency.svg", run.folder)),
            report: self.uri(&report_key),
        };

        // The gate (and the incident it may open), then the baseline: release.rs says why in
        // this order. An ad-hoc run touches neither.
        let verdict = RunVerdict {
            scenario: scenario.clone(),
            run_id: run.run_id.clone(),
            passed,
            p95_failed,
            p95_ms,
            p95_objective: objective.clone(),
            report_uri: artifacts.report.clone(),
            now: iso(finished),
            no_verdict: no_verdict.clone(),
        };
        let (gate, incident) = match &run.adhoc {
            Some(why) => {
                notes.push(format!(
                    "ad-hoc run ({why}): the release gate and baseline of {scenario:?} were not touched"
                ));
                (None, None)
            }
            None => {
                let applied = self
                    .apply_gate(
                        &self.gate_key(&scenario),
                        &verdict,
                        IncidentDraft {
                            run,
                            p95_ms,
                            objective: &objective,
                            report_uri: &artifacts.report,
                            opened_at: iso(finished),
                        },
                    )
                    .await?;
                // The owners hear of a run with no verdict, and of the next one with a
                // verdict again (same key: the digest shows it resolved). Told after the gate
                // is written: a crash before it tells nothing and the redelivery (replay:
                // nothing) neither; losing a notice never fails the run.
                let was_error = applied
                    .prev
                    .as_ref()
                    .is_some_and(|p| p.last_run_error.is_some());
                // A redelivery (a replay for the gate) tells the owners of an ERROR run again
                // while no later run has been applied: the first delivery may have been cut
                // before its notice, and alert-router drops a second delivery of the same id.
                let tell = if applied.replay {
                    no_verdict.is_some() && applied.gate.last_run_id == run.run_id
                } else {
                    no_verdict.is_some() || was_error
                };
                if tell {
                    let notice = no_verdict_notice(
                        &self.common.environment,
                        &scenario,
                        &run.run_id,
                        no_verdict.as_deref(),
                        &artifacts.report,
                    );
                    if let Err(e) = self.notifier.notice(&notice).await {
                        tracing::warn!(error = %e, key = %notice.key, "owner notice not published");
                        notes.push(format!("owner notice not published: {e}"));
                    }
                }
                // A run with no verdict is no reference either.
                if no_verdict.is_none() {
                    self.record_baseline(
                        &bkey,
                        &scenario,
                        BaselineRun {
                            run_id: run.run_id.clone(),
                            finished_at: iso(finished),
                            throughput_rps: numbers.throughput_rps,
                            p95_ms: numbers.latency_ms.p95,
                            passed,
                        },
                    )
                    .await?;
                }
                let incident = applied.gate.incident.clone();
                (Some(applied.gate), incident)
            }
        };

        let mut report = RunReport {
            run_id: run.run_id.clone(),
            scenario: scenario.clone(),
            environment: self.common.environment.clone(),
            deployment: self.common.deployment.clone(),
            status: status.into(),
            passed,
            aborted,
            t0: iso(run.t0_unix_ms),
            finished_at: iso(finished),
            mode: format!("{:?}", run.plan.mode).to_lowercase(),
            slices_planned: run.plan.slices.len() as u32,
            slices_run: upto,
            slice_seconds: run.slice_seconds,
            numbers,
            thresholds: judged,
            baseline: baseline_check,
            gate,
            incident,
            artifacts,
            remote_write: String::new(),
            notes,
            tags: run.scenario.tags.clone(),
        };

        // Artifacts; the JSON report goes last.
        let f = &run.folder;
        self.store
            .put(
                &format!("{f}summary.json"),
                to_bytes(&k6_summary(&report))?,
                "application/json",
            )
            .await?;
        let hist = json!({
            "format": "HdrHistogram V2 + DEFLATE, base64; values in microseconds (loadtest_core::histo)",
            "run_id": run.run_id, "scenario": scenario,
            "merged": agg.to_doc().map_err(internal)?,
        });
        self.store
            .put(
                &format!("{f}histogram.json"),
                to_bytes(&hist)?,
                "application/json",
            )
            .await?;
        let (h_corr, h_unc) = if run.plan.mode == Mode::Sse && agg.latency.is_empty() {
            (&agg.sse_handshake, &agg.sse_handshake)
        } else {
            (&agg.latency, &agg.latency_uncorrected)
        };
        match latency_svg(
            &format!("{scenario} {}", run.run_id),
            h_corr,
            h_unc,
            objective_ms,
        ) {
            Ok(svg) => {
                self.store
                    .put(
                        &format!("{f}latency.svg"),
                        Bytes::from(svg),
                        "image/svg+xml",
                    )
                    .await?
            }
            Err(e) => report.notes.push(format!("chart not drawn: {e}")),
        }
        report.remote_write = self
            .remote_write(&prom_series(&report, finished as i64))
            .await;
        self.store
            .put(
                &format!("{f}report.md"),
                Bytes::from(markdown(&report, "latency.svg")),
                "text/markdown; charset=utf-8",
            )
            .await?;
        for d in emf_documents(self.common, &report) {
            d.emit();
        }
        self.store
            .put(&report_key, to_bytes(&report)?, "application/json")
            .await?;
        tracing::info!(run_id = %report.run_id, scenario = %report.scenario, status = %report.status,
            p95_ms = report.numbers.latency_ms.p95, error_rate = report.numbers.error_rate,
            gate = ?report.gate.as_ref().map(|g| g.state), "run finished");
        serde_json::to_value(&report).map_err(internal)
    }
}

/// Percentiles of the merged histograms by metric name (for thresholds like p(99.9)).
pub fn percentile_fn(a: &Aggregate) -> impl Fn(&str, f64) -> f64 + '_ {
    move |metric: &str, p: f64| match metric {
        "http_req_duration" => Stats::percentile(&a.latency, p),
        "scheduler_lag" => Stats::percentile(&a.scheduler_lag, p),
        "sse_handshake_duration" => Stats::percentile(&a.sse_handshake, p),
        "sse_reconnect_duration" => Stats::percentile(&a.sse_reconnect, p),
        "sse_event_delivery_lag" => Stats::percentile(&a.sse_delivery_lag, p),
        _ => 0.0,
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;

/// What the scenario's owners are told about a run with no verdict (`why`), or, with `why`
/// `None`, about the next run that has one. One key per environment and scenario.
pub fn no_verdict_notice(
    environment: &str,
    scenario: &str,
    run_id: &str,
    why: Option<&str>,
    report: &str,
) -> shared::notifications::PlaybookAlert {
    use shared::notifications::{Action, PlaybookAlert, PLAYBOOK_ALERT_VERSION};
    let (action, title, summary) = match why {
        Some(w) => (
            Action::Trigger,
            format!("Load test {scenario} ({environment}) gave no verdict"),
            format!(
                "Run {run_id}: {w}. The release gate kept its state; look at the target and the shards before the next scheduled run."
            ),
        ),
        None => (
            Action::Resolve,
            format!("Load test {scenario} ({environment}) has a verdict again"),
            format!("Run {run_id} was judged again."),
        ),
    };
    PlaybookAlert {
        playbook_alert: PLAYBOOK_ALERT_VERSION,
        id: Some(format!("loadtest/{run_id}/notice")),
        key: format!("loadtest/{environment}/{scenario}/no-verdict"),
        action,
        title,
        summary,
        source: "loadtest-coordinator".into(),
        at: None,
        link: Some(report.to_string()),
        fields: vec![("Run".into(), run_id.to_string())],
    }
}
