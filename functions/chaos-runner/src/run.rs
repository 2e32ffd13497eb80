//! One invocation's work against the ports: decide what is due, apply the safety rules, check
//! the steady state, start the FIS experiment, follow it until it ends or the invocation's
//! time runs out (the state is saved in S3 and a later invocation resumes), check the steady
//! state after, write the journal and regenerate the month's postmortem.
//!
//! S3 layout (REPORT_BUCKET):
//! - `<CHAOS_STATE_PREFIX>runs/<run_id>.json`: the run state (the journal so far);
//! - `<CHAOS_STATE_PREFIX>active/<run_id>`: present while a run is not finished;
//! - `<REPORT_PREFIX>chaos/YYYY-MM/<run_id>.json`: the journal (written when the run ends);
//! - `<REPORT_PREFIX>chaos/YYYY-MM.md`: the month's postmortem skeleton.

use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use shared::config::CommonConfig;
use shared::store::ObjectStore;
use shared::{SuiteError, SuiteResult};

use crate::calendar::{is_due, next_due};
use crate::config::Settings;
use crate::gate::{self, Refusal};
use crate::journal::{
    is_final, judge_http, judge_metric, postmortem_markdown, probe_activity, Journal, Outcome,
    ProbeRun, SteadyState, MAX_DURING,
};
use crate::port::ChaosPort;
use crate::registry::{BudgetSource, Experiment, Registry};

/// What the event asks for (parsed by the handler).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// The schedule: resume unfinished runs, then start the experiments due on `date`.
    Scheduled { date: NaiveDate },
    /// Run one experiment now; `force` runs it on a day it is not due.
    Run {
        experiment: String,
        date: NaiveDate,
        force: bool,
        dry_run: Option<bool>,
        run_id: Option<String>,
        error_budget_remaining_percent: Option<f64>,
    },
    /// Follow unfinished runs (all, or one).
    Resume { run_id: Option<String> },
    /// StopExperiment on a running run, then follow it to `stopped`.
    Stop { run_id: String, reason: String },
}

/// The state saved between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    /// `YYYY-MM`: the month whose report the run belongs to.
    pub month: String,
    pub journal: Journal,
}

/// One run's result, as the response and the metrics see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub experiment: String,
    pub outcome: Outcome,
    pub status: String,
    pub deviated: bool,
    pub dry_run: bool,
    pub owner: String,
    pub refusal: Option<String>,
    pub detail: Option<String>,
    pub fis_experiment_id: Option<String>,
    pub fis_states: Vec<String>,
    pub steady_state_before: Option<bool>,
    pub steady_state_after: Option<bool>,
    pub during_checks: usize,
    pub during_deviations: usize,
    pub duration_seconds: Option<f64>,
    /// s3:// of the journal (and the postmortem) once finished; of the state while running.
    pub journal: String,
    pub postmortem: Option<String>,
    /// True when this invocation only read back a run that had already finished.
    pub repeated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub status: String,
    pub date: Option<NaiveDate>,
    pub runs: Vec<RunSummary>,
    /// Experiments not due on `date`, with their next due date.
    pub not_due: Vec<(String, Option<NaiveDate>)>,
}

pub struct Engine<'a, P: ChaosPort, S: ObjectStore> {
    pub port: &'a P,
    pub store: &'a S,
    pub registry: &'a Registry,
    pub settings: &'a Settings,
    pub common: &'a CommonConfig,
}

/// Run ids name S3 keys and are the FIS client token (at most 64 characters).
pub fn valid_run_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub fn scheduled_run_id(experiment: &str, date: NaiveDate) -> String {
    format!("{experiment}-{}", date.format("%Y%m%d"))
}

impl<'a, P: ChaosPort, S: ObjectStore> Engine<'a, P, S> {
    fn bucket(&self) -> &str {
        &self.common.report_bucket
    }
    fn state_key(&self, run_id: &str) -> String {
        format!("{}runs/{run_id}.json", self.settings.state_prefix)
    }
    fn active_prefix(&self) -> String {
        format!("{}active/", self.settings.state_prefix)
    }
    pub fn journal_key(&self, month: &str, run_id: &str) -> String {
        format!("{}chaos/{month}/{run_id}.json", self.common.report_prefix)
    }
    pub fn postmortem_key(&self, month: &str) -> String {
        format!("{}chaos/{month}.md", self.common.report_prefix)
    }
    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket())
    }

    /// The invocation. `request_id` names manual runs (Lambda keeps it across the retries of
    /// one asynchronous invocation, so a retry resumes rather than starts a second run).
    pub async fn handle(
        &self,
        req: Request,
        request_id: &str,
        deadline: Instant,
    ) -> SuiteResult<Response> {
        match req {
            Request::Scheduled { date } => {
                let mut runs = self.resume_all(deadline).await?;
                let mut not_due = vec![];
                for e in &self.registry.experiments {
                    if !is_due(date, e.cadence) {
                        not_due.push((e.name.clone(), next_due(date, e.cadence)));
                        continue;
                    }
                    let run_id = scheduled_run_id(&e.name, date);
                    if runs.iter().any(|r| r.run_id == run_id) {
                        continue;
                    }
                    runs.push(
                        self.run(e, &run_id, date, self.settings.dry_run, None, deadline)
                            .await?,
                    );
                }
                let status = if runs.is_empty() {
                    "NOT_DUE"
                } else {
                    overall(&runs)
                };
                Ok(Response {
                    status: status.into(),
                    date: Some(date),
                    runs,
                    not_due,
                })
            }
            Request::Run {
                experiment,
                date,
                force,
                dry_run,
                run_id,
                error_budget_remaining_percent,
            } => {
                let e = self.registry.experiment(&experiment).ok_or_else(|| {
                    SuiteError::invalid(
                        "experiment",
                        format!("{experiment:?} is not registered"),
                        format!(
                            "send one of {}",
                            self.registry
                                .experiments
                                .iter()
                                .map(|e| e.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
                if !force && !is_due(date, e.cadence) {
                    return Ok(Response {
                        status: "NOT_DUE".into(),
                        date: Some(date),
                        runs: vec![],
                        not_due: vec![(e.name.clone(), next_due(date, e.cadence))],
                    });
                }
                let run_id = match run_id {
                    Some(id) => id,
                    None if !force => scheduled_run_id(&e.name, date),
                    None => {
                        let tag: String = request_id
                            .chars()
                            .filter(|c| c.is_ascii_alphanumeric())
                            .take(8)
                            .collect();
                        format!("{}-m{tag}", scheduled_run_id(&e.name, date))
                    }
                };
                if !valid_run_id(&run_id) {
                    return Err(SuiteError::invalid(
                        "run_id",
                        format!(
                            "{run_id:?} is not 1-64 characters of letters, digits, '-' and '_'"
                        ),
                        "send a run_id like \"rq-queue-20261106-retry\"",
                    ));
                }
                let dry = dry_run.unwrap_or(self.settings.dry_run);
                let s = self
                    .run(
                        e,
                        &run_id,
                        date,
                        dry,
                        error_budget_remaining_percent,
                        deadline,
                    )
                    .await?;
                Ok(Response {
                    status: overall(std::slice::from_ref(&s)).into(),
                    date: Some(date),
                    runs: vec![s],
                    not_due: vec![],
                })
            }
            Request::Resume { run_id: None } => {
                let runs = self.resume_all(deadline).await?;
                Ok(Response {
                    status: if runs.is_empty() {
                        "NOTHING_TO_DO".into()
                    } else {
                        overall(&runs).into()
                    },
                    date: None,
                    runs,
                    not_due: vec![],
                })
            }
            Request::Resume { run_id: Some(id) } => {
                let state = self.load(&id).await?.ok_or_else(|| unknown_run(&id))?;
                let s = self.advance(state, deadline).await?;
                Ok(Response {
                    status: overall(std::slice::from_ref(&s)).into(),
                    date: None,
                    runs: vec![s],
                    not_due: vec![],
                })
            }
            Request::Stop { run_id, reason } => {
                let mut state = self
                    .load(&run_id)
                    .await?
                    .ok_or_else(|| unknown_run(&run_id))?;
                if !state.journal.finished() {
                    if let Some(id) = state.journal.fis.experiment_id.clone() {
                        let info = self.port.stop_experiment(&id).await?;
                        let j = &mut state.journal;
                        j.fis.stop_requested = Some(reason.clone());
                        j.fis
                            .observe(&info.status, info.reason.as_deref(), Utc::now());
                        tracing::warn!(run_id = %run_id, fis_experiment_id = %id, reason = %reason, "StopExperiment sent");
                        self.save(&state).await?;
                    }
                }
                let s = self.advance(state, deadline).await?;
                Ok(Response {
                    status: overall(std::slice::from_ref(&s)).into(),
                    date: None,
                    runs: vec![s],
                    not_due: vec![],
                })
            }
        }
    }

    /// Follows every run with an `active/` marker.
    async fn resume_all(&self, deadline: Instant) -> SuiteResult<Vec<RunSummary>> {
        let mut out = vec![];
        for key in self.list_keys(&self.active_prefix()).await? {
            let run_id = key.rsplit('/').next().unwrap_or_default().to_string();
            match self.load(&run_id).await? {
                Some(state) => out.push(self.advance(state, deadline).await?),
                None => {
                    tracing::warn!(run_id = %run_id, "active marker without a state: removed");
                    self.store.delete(self.bucket(), &key).await?;
                }
            }
        }
        Ok(out)
    }

    /// A run from its beginning, or, when its state exists, from where it stopped.
    async fn run(
        &self,
        e: &Experiment,
        run_id: &str,
        date: NaiveDate,
        dry_run: bool,
        budget_override: Option<f64>,
        deadline: Instant,
    ) -> SuiteResult<RunSummary> {
        if let Some(state) = self.load(run_id).await? {
            tracing::info!(run_id, "run exists: resuming / reading it back");
            return self.advance(state, deadline).await;
        }
        let owner = self.registry.owner(e, date);
        let month = date.format("%Y-%m").to_string();
        let mut state = RunState {
            month,
            journal: Journal::new(
                e,
                run_id,
                &self.common.function_name,
                &self.common.environment,
                &owner,
                dry_run,
                Utc::now(),
            ),
        };
        tracing::info!(run_id, experiment = %e.name, owner = %owner, dry_run, "run starting");
        if let Err(r) = self.gates(e, budget_override).await? {
            let outcome = if r.code.starts_with("error_budget") {
                Outcome::Skipped
            } else {
                Outcome::Refused
            };
            tracing::warn!(run_id, experiment = %e.name, refusal = r.code, detail = %r.detail, "run not started");
            state.journal.refuse(outcome, r.code, r.detail, Utc::now());
            return self.finish(state).await;
        }
        let before = self.steady_state(e).await;
        let met = before.steady_state_met;
        state.journal.steady_states.before = Some(before);
        if !met {
            tracing::warn!(run_id, experiment = %e.name, "steady state not met before: nothing injected");
            state.journal.finish(Outcome::SteadyStateNotMet, Utc::now());
            return self.finish(state).await;
        }
        // Saved before StartExperiment: if this invocation dies right after the call, the next
        // one calls it again with the same client token and gets the same experiment.
        self.save(&state).await?;
        self.store
            .put_bytes(
                self.bucket(),
                &format!("{}{run_id}", self.active_prefix()),
                Bytes::from(run_id.to_string()),
                "text/plain",
            )
            .await?;
        self.advance(state, deadline).await
    }

    /// The safety rules, in order: production, the FIS template (stop conditions, blast
    /// radius), the alarms, the error budget. `Ok(Err(refusal))` when refused.
    async fn gates(
        &self,
        e: &Experiment,
        budget_override: Option<f64>,
    ) -> SuiteResult<Result<(), Refusal>> {
        if let Err(r) =
            gate::production(&self.common.environment, self.settings.allow_production, e)
        {
            return Ok(Err(r));
        }
        let Some(t) = self.port.template(&e.fis_template).await? else {
            return Ok(Err(Refusal {
                code: "template_missing",
                detail: format!("no FIS experiment template with {}", e.fis_template),
            }));
        };
        if let Err(r) = gate::template(e, &t) {
            return Ok(Err(r));
        }
        let names: Vec<String> = e.stop_conditions.iter().map(|s| s.alarm.clone()).collect();
        let states = self.port.alarm_states(&names).await?;
        if let Err(r) = gate::alarms(e, &states) {
            return Ok(Err(r));
        }
        if let Some(b) = &self.registry.error_budget {
            let remaining = match (budget_override, &b.source) {
                (Some(v), _) => Some(v),
                (None, BudgetSource::Value(v)) => Some(*v),
                (None, BudgetSource::Metric(q)) => self.port.metric(q, Utc::now()).await?,
            };
            if let Err(r) = gate::error_budget(remaining, b.min_remaining_percent) {
                return Ok(Err(r));
            }
        }
        Ok(Ok(()))
    }

    /// Takes every probe of the experiment once.
    async fn steady_state(&self, e: &Experiment) -> SteadyState {
        let mut runs = vec![];
        for p in &e.steady_state {
            let start = Utc::now();
            let (output, status, met, detail) = if let Some(q) = &p.metric {
                match self.port.metric(q, start).await {
                    Ok(v) => {
                        let (met, detail) = judge_metric(v, &p.tolerance);
                        (serde_json::json!(v), "succeeded", met, detail)
                    }
                    Err(err) => (serde_json::Value::Null, "failed", false, err.to_string()),
                }
            } else if let Some(h) = &p.http {
                let mut samples = vec![];
                for _ in 0..h.attempts {
                    samples.push(self.port.http(h).await);
                }
                let (met, detail) = judge_http(&samples, &p.tolerance);
                (serde_json::json!(samples), "succeeded", met, detail)
            } else {
                (
                    serde_json::Value::Null,
                    "failed",
                    false,
                    "probe has no provider".into(),
                )
            };
            let end = Utc::now();
            tracing::info!(probe = %p.name, tolerance_met = met, detail = %detail, "steady-state probe");
            runs.push(ProbeRun {
                activity: probe_activity(p),
                output,
                status: status.into(),
                tolerance_met: met,
                detail,
                start,
                end,
                duration: (end - start).num_milliseconds() as f64 / 1000.0,
            });
        }
        SteadyState::new(runs)
    }

    /// Moves a run as far as the deadline allows: start (idempotent), follow, after, finish.
    async fn advance(&self, mut state: RunState, deadline: Instant) -> SuiteResult<RunSummary> {
        if state.journal.finished() {
            let mut s = self.summary(&state);
            s.repeated = true;
            return Ok(s);
        }
        let name = state.journal.experiment_name().to_string();
        let Some(e) = self.registry.experiment(&name).cloned() else {
            // Unregistered since it started: stop following, keep the record.
            state.journal.refuse(
                Outcome::Refused,
                "unregistered",
                format!("experiment {name} is no longer in the registry"),
                Utc::now(),
            );
            return self.finish(state).await;
        };
        let run_id = state.journal.run_id.clone();
        let experiment_id = match state.journal.fis.experiment_id.clone() {
            Some(id) => id,
            None => {
                let Some(t) = self.port.template(&e.fis_template).await? else {
                    state.journal.refuse(
                        Outcome::Refused,
                        "template_missing",
                        format!("no FIS experiment template with {}", e.fis_template),
                        Utc::now(),
                    );
                    return self.finish(state).await;
                };
                let tags = vec![
                    ("chaos-run-id".to_string(), run_id.clone()),
                    ("chaos-experiment".to_string(), name.clone()),
                    ("owner".to_string(), state.journal.owner.clone()),
                ];
                let info = self
                    .port
                    .start_experiment(&t.id, &run_id, state.journal.dry_run, &tags)
                    .await?;
                tracing::info!(run_id = %run_id, fis_experiment_id = %info.id, template_id = %t.id,
                    actions_mode = %state.journal.fis.actions_mode, "FIS experiment started");
                let j = &mut state.journal;
                j.fis.template_id = Some(t.id);
                j.fis.experiment_id = Some(info.id.clone());
                j.fis.start_time = info.start_time;
                j.fis
                    .observe(&info.status, info.reason.as_deref(), Utc::now());
                self.save(&state).await?;
                info.id
            }
        };
        loop {
            let info = self.port.experiment(&experiment_id).await?;
            let j = &mut state.journal;
            if j.fis
                .observe(&info.status, info.reason.as_deref(), Utc::now())
            {
                tracing::info!(run_id = %run_id, fis_status = %info.status, reason = info.reason.as_deref().unwrap_or(""), "FIS state");
            }
            j.fis.start_time = info.start_time.or(j.fis.start_time);
            j.fis.end_time = info.end_time.or(j.fis.end_time);
            if is_final(&info.status) {
                break;
            }
            let during = self.steady_state(&e).await;
            let j = &mut state.journal;
            if !during.steady_state_met {
                tracing::warn!(run_id = %run_id, "steady state not met during the experiment");
            }
            if j.steady_states.during.len() < MAX_DURING {
                j.steady_states.during.push(during);
            }
            let now = Instant::now();
            if now + self.settings.poll + self.settings.deadline_margin >= deadline {
                self.save(&state).await?;
                tracing::info!(run_id = %run_id, fis_status = %info.status, "time is up for this invocation: state saved, a later invocation resumes");
                return Ok(self.summary(&state));
            }
            tokio::time::sleep(self.settings.poll).await;
        }
        let after = self.steady_state(&e).await;
        let after_met = after.steady_state_met;
        state.journal.steady_states.after = Some(after);
        let outcome = match state.journal.fis.last_status() {
            Some("completed") if after_met => Outcome::HypothesisHeld,
            Some("completed") => Outcome::Deviated,
            Some("stopped") => Outcome::Stopped,
            _ => Outcome::ExperimentFailed,
        };
        state.journal.finish(outcome, Utc::now());
        // Chaos Toolkit: deviated means the steady state did not hold after the method.
        state.journal.deviated = !after_met;
        self.finish(state).await
    }

    /// Writes the journal, regenerates the month's postmortem, saves the final state and
    /// removes the active marker (in that order: a crash in between repeats idempotent steps).
    async fn finish(&self, state: RunState) -> SuiteResult<RunSummary> {
        let j = &state.journal;
        let body = serde_json::to_vec_pretty(j).map_err(|e| SuiteError::Internal(e.to_string()))?;
        self.store
            .put_bytes(
                self.bucket(),
                &self.journal_key(&state.month, &j.run_id),
                Bytes::from(body),
                "application/json",
            )
            .await?;
        self.write_postmortem(&state.month).await?;
        self.save(&state).await?;
        self.store
            .delete(
                self.bucket(),
                &format!("{}{}", self.active_prefix(), j.run_id),
            )
            .await?;
        tracing::info!(run_id = %j.run_id, experiment = %j.experiment_name(), outcome = j.outcome.as_str(),
            deviated = j.deviated, refusal = j.refusal.as_deref().unwrap_or(""), "run finished");
        Ok(self.summary(&state))
    }

    /// The month's postmortem from all its journals.
    pub async fn write_postmortem(&self, month: &str) -> SuiteResult<String> {
        let prefix = format!("{}chaos/{month}/", self.common.report_prefix);
        let mut journals = vec![];
        for key in self.list_keys(&prefix).await? {
            if !key.ends_with(".json") {
                continue;
            }
            if let Some(bytes) = self.store.get_bytes(self.bucket(), &key).await? {
                match serde_json::from_slice::<Journal>(&bytes) {
                    Ok(j) => journals.push(j),
                    Err(e) => {
                        tracing::warn!(key = %key, error = %e, "unreadable journal left out of the postmortem")
                    }
                }
            }
        }
        journals.sort_by(|a, b| a.start.cmp(&b.start).then(a.run_id.cmp(&b.run_id)));
        let md = postmortem_markdown(month, &journals, |j| {
            self.uri(&self.journal_key(month, &j.run_id))
        });
        let key = self.postmortem_key(month);
        self.store
            .put_bytes(
                self.bucket(),
                &key,
                Bytes::from(md),
                "text/markdown; charset=utf-8",
            )
            .await?;
        Ok(key)
    }

    fn summary(&self, state: &RunState) -> RunSummary {
        let j = &state.journal;
        let finished = j.finished();
        RunSummary {
            run_id: j.run_id.clone(),
            experiment: j.experiment_name().to_string(),
            outcome: j.outcome,
            status: j.status.clone(),
            deviated: j.deviated,
            dry_run: j.dry_run,
            owner: j.owner.clone(),
            refusal: j.refusal.clone(),
            detail: j.refusal_detail.clone(),
            fis_experiment_id: j.fis.experiment_id.clone(),
            fis_states: j.fis.states.iter().map(|s| s.status.clone()).collect(),
            steady_state_before: j.steady_states.before.as_ref().map(|s| s.steady_state_met),
            steady_state_after: j.steady_states.after.as_ref().map(|s| s.steady_state_met),
            during_checks: j.steady_states.during.len(),
            during_deviations: j
                .steady_states
                .during
                .iter()
                .filter(|s| !s.steady_state_met)
                .count(),
            duration_seconds: j.duration,
            journal: if finished {
                self.uri(&self.journal_key(&state.month, &j.run_id))
            } else {
                self.uri(&self.state_key(&j.run_id))
            },
            postmortem: finished.then(|| self.uri(&self.postmortem_key(&state.month))),
            repeated: false,
        }
    }

    async fn load(&self, run_id: &str) -> SuiteResult<Option<RunState>> {
        let key = self.state_key(run_id);
        let Some(bytes) = self.store.get_bytes(self.bucket(), &key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SuiteError::bad_object(self.bucket(), &key, format!("run state: {e}")))
    }

    async fn save(&self, state: &RunState) -> SuiteResult<()> {
        let body = serde_json::to_vec(state).map_err(|e| SuiteError::Internal(e.to_string()))?;
        self.store
            .put_bytes(
                self.bucket(),
                &self.state_key(&state.journal.run_id),
                Bytes::from(body),
                "application/json",
            )
            .await
    }

    async fn list_keys(&self, prefix: &str) -> SuiteResult<Vec<String>> {
        self.store.list_keys(self.bucket(), prefix).await
    }
}

fn unknown_run(id: &str) -> SuiteError {
    SuiteError::invalid(
        "run_id",
        format!("no run state for {id:?}"),
        "send the run_id of a started run (see the response of the run, or the state prefix in S3)",
    )
}

/// The response status: IN_PROGRESS while any run is followed, else DONE.
fn overall(runs: &[RunSummary]) -> &'static str {
    if runs.iter().any(|r| r.outcome == Outcome::InProgress) {
        "IN_PROGRESS"
    } else {
        "DONE"
    }
}

/// `scheduled_time` as Scheduler sends it, to a UTC date.
pub fn date_of(ts: &str) -> Option<NaiveDate> {
    DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&Utc).date_naive())
}
