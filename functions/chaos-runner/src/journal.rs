//! The run journal, in the shape of a Chaos Toolkit journal (`experiment`, `status`,
//! `deviated`, `steady_states.before/during/after`, `run`, `rollbacks`, `start`, `end`,
//! `duration`), plus the FIS states with their times and an `outcome`; the tolerance judges
//! of the probes; and the monthly postmortem skeleton in Markdown. All pure.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::registry::{Experiment, Probe, Tolerance};

/// How a run ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Following the FIS experiment; a later invocation resumes.
    InProgress,
    /// The experiment completed and the steady state held after it.
    HypothesisHeld,
    /// The experiment completed but the steady state was not met after it.
    Deviated,
    /// The steady state was not met before: nothing was injected.
    SteadyStateNotMet,
    /// FIS stopped the experiment (a stop condition fired, or a `stop` request).
    Stopped,
    /// FIS reported `failed` (or `cancelled`).
    ExperimentFailed,
    /// A safety rule refused the run (see `refusal`).
    Refused,
    /// Skipped by the error-budget gate.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InProgress => "in_progress",
            Outcome::HypothesisHeld => "hypothesis_held",
            Outcome::Deviated => "deviated",
            Outcome::SteadyStateNotMet => "steady_state_not_met",
            Outcome::Stopped => "stopped",
            Outcome::ExperimentFailed => "experiment_failed",
            Outcome::Refused => "refused",
            Outcome::Skipped => "skipped",
        }
    }

    /// The Chaos Toolkit `status` for this outcome.
    pub fn ctk_status(self) -> &'static str {
        match self {
            Outcome::InProgress => "running",
            Outcome::HypothesisHeld | Outcome::Deviated => "completed",
            Outcome::SteadyStateNotMet | Outcome::ExperimentFailed => "failed",
            Outcome::Stopped | Outcome::Refused | Outcome::Skipped => "aborted",
        }
    }
}

/// One probe's run (a Chaos Toolkit activity run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRun {
    pub activity: Value,
    /// The metric value, or the HTTP samples.
    pub output: Value,
    /// `succeeded` when the probe could be taken (whatever it found), `failed` otherwise.
    pub status: String,
    pub tolerance_met: bool,
    pub detail: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub duration: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SteadyState {
    pub steady_state_met: bool,
    pub probes: Vec<ProbeRun>,
}

impl SteadyState {
    pub fn new(probes: Vec<ProbeRun>) -> Self {
        SteadyState {
            steady_state_met: probes.iter().all(|p| p.tolerance_met),
            probes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SteadyStates {
    pub before: Option<SteadyState>,
    /// Taken while following the experiment (at most [`MAX_DURING`] kept).
    pub during: Vec<SteadyState>,
    pub after: Option<SteadyState>,
}

pub const MAX_DURING: usize = 50;

/// A FIS experiment state as observed, with the time the runner saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FisState {
    pub status: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FisRecord {
    pub template_id: Option<String>,
    pub experiment_id: Option<String>,
    /// `run-all`, or `skip-all` for a dry run.
    pub actions_mode: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub states: Vec<FisState>,
    /// Set when the runner itself called StopExperiment.
    pub stop_requested: Option<String>,
}

impl FisRecord {
    /// Appends the state when it differs from the last one seen.
    pub fn observe(&mut self, status: &str, reason: Option<&str>, at: DateTime<Utc>) -> bool {
        if self.states.last().map(|s| s.status.as_str()) == Some(status) {
            return false;
        }
        self.states.push(FisState {
            status: status.to_string(),
            reason: reason.map(str::to_string),
            at,
        });
        true
    }

    pub fn last_status(&self) -> Option<&str> {
        self.states.last().map(|s| s.status.as_str())
    }
}

/// FIS experiment statuses after which nothing moves.
pub fn is_final(status: &str) -> bool {
    matches!(status, "completed" | "stopped" | "failed" | "cancelled")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    #[serde(rename = "chaoslib-version")]
    pub chaoslib_version: String,
    pub platform: String,
    pub node: String,
    pub run_id: String,
    pub experiment: Value,
    pub environment: String,
    pub owner: String,
    pub dry_run: bool,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub status: String,
    pub deviated: bool,
    pub outcome: Outcome,
    /// Why a run was refused or skipped (a stable code, e.g. `production`, `no_stop_condition`).
    pub refusal: Option<String>,
    pub refusal_detail: Option<String>,
    pub steady_states: SteadyStates,
    /// The method's activities (one: the FIS experiment).
    pub run: Vec<Value>,
    pub rollbacks: Vec<Value>,
    pub fis: FisRecord,
    pub follow_ups: Vec<String>,
    pub runbook: String,
}

impl Journal {
    pub fn new(
        e: &Experiment,
        run_id: &str,
        node: &str,
        environment: &str,
        owner: &str,
        dry_run: bool,
        start: DateTime<Utc>,
    ) -> Self {
        Journal {
            chaoslib_version: concat!("chaos-runner/", env!("CARGO_PKG_VERSION")).into(),
            platform: "aws-fis".into(),
            node: node.into(),
            run_id: run_id.into(),
            experiment: experiment_doc(e, owner),
            environment: environment.into(),
            owner: owner.into(),
            dry_run,
            start,
            end: None,
            duration: None,
            status: Outcome::InProgress.ctk_status().into(),
            deviated: false,
            outcome: Outcome::InProgress,
            refusal: None,
            refusal_detail: None,
            steady_states: SteadyStates::default(),
            run: vec![],
            rollbacks: vec![],
            fis: FisRecord {
                actions_mode: if dry_run { "skip-all" } else { "run-all" }.into(),
                ..Default::default()
            },
            follow_ups: e.follow_ups.clone(),
            runbook: e.runbook.clone(),
        }
    }

    pub fn experiment_name(&self) -> &str {
        self.experiment["name"].as_str().unwrap_or("")
    }

    pub fn finish(&mut self, outcome: Outcome, end: DateTime<Utc>) {
        self.outcome = outcome;
        self.status = outcome.ctk_status().into();
        self.deviated = outcome == Outcome::Deviated;
        self.end = Some(end);
        self.duration = Some((end - self.start).num_milliseconds() as f64 / 1000.0);
        // The method's one activity: the FIS experiment, with its states.
        if self.fis.experiment_id.is_some() {
            self.run = vec![json!({
                "activity": {"type": "action", "name": "aws:fis:start-experiment",
                             "provider": {"type": "aws-fis", "template_id": self.fis.template_id,
                                          "actions_mode": self.fis.actions_mode}},
                "output": {"experiment_id": self.fis.experiment_id, "states": self.fis.states},
                "status": if matches!(self.fis.last_status(), Some("completed")) { "succeeded" } else { "failed" },
                "start": self.fis.start_time,
                "end": self.fis.end_time,
            })];
        }
    }

    pub fn refuse(&mut self, outcome: Outcome, code: &str, detail: String, end: DateTime<Utc>) {
        self.refusal = Some(code.into());
        self.refusal_detail = Some(detail);
        self.finish(outcome, end);
    }

    /// Whether the run has ended.
    pub fn finished(&self) -> bool {
        self.outcome != Outcome::InProgress
    }
}

/// The registered experiment as a Chaos Toolkit experiment document.
fn experiment_doc(e: &Experiment, owner: &str) -> Value {
    json!({
        "name": e.name,
        "title": e.title,
        "description": e.hypothesis,
        "tags": ["fis", format!("{:?}", e.cadence).to_lowercase()],
        "steady-state-hypothesis": {
            "title": e.hypothesis,
            "probes": e.steady_state.iter().map(probe_activity).collect::<Vec<_>>(),
        },
        "method": [{"type": "action", "name": "aws:fis:start-experiment",
                    "provider": {"type": "aws-fis", "template": e.fis_template}}],
        "extensions": [{
            "name": "chaos-runner",
            "owner": owner,
            "owner_rotation": e.owner_rotation,
            "blast_radius": e.blast_radius,
            "stop_conditions": e.stop_conditions,
            "runbook": e.runbook,
        }],
    })
}

pub fn probe_activity(p: &Probe) -> Value {
    let provider = match (&p.metric, &p.http) {
        (Some(m), _) => json!({"type": "cloudwatch", "metric": m}),
        (_, Some(h)) => {
            json!({"type": "http", "url": h.url, "timeout_ms": h.timeout_ms, "attempts": h.attempts})
        }
        _ => Value::Null,
    };
    json!({"type": "probe", "name": p.name, "provider": provider, "tolerance": p.tolerance})
}

/// A metric value against its tolerance.
pub fn judge_metric(value: Option<f64>, t: &Tolerance) -> (bool, String) {
    let Some(v) = value else {
        return if t.missing_data_ok {
            (true, "no datapoint (allowed by missing_data_ok)".into())
        } else {
            (false, "no datapoint in the lookback window".into())
        };
    };
    if let Some(lo) = t.min {
        if v < lo {
            return (false, format!("{v} is below min {lo}"));
        }
    }
    if let Some(hi) = t.max {
        if v > hi {
            return (false, format!("{v} is above max {hi}"));
        }
    }
    (true, format!("{v} within tolerance"))
}

/// One HTTP request's result: the status and latency, or the transport error (timeout, TLS,
/// refused connection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpSample {
    pub status: Option<u16>,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
}

/// HTTP samples against their tolerance: a sample misses on a transport error, a status not
/// accepted (default: any 2xx), or a latency above `max_latency_ms`; up to `max_failures`
/// misses are tolerated.
pub fn judge_http(samples: &[HttpSample], t: &Tolerance) -> (bool, String) {
    let miss = |s: &HttpSample| -> Option<String> {
        if let Some(e) = &s.error {
            return Some(e.clone());
        }
        let code = s.status.unwrap_or(0);
        let ok = if t.status.is_empty() {
            (200..300).contains(&code)
        } else {
            t.status.contains(&code)
        };
        if !ok {
            return Some(format!("status {code}"));
        }
        match (t.max_latency_ms, s.latency_ms) {
            (Some(max), Some(l)) if l > max => Some(format!("{l} ms > {max} ms")),
            _ => None,
        }
    };
    let misses: Vec<String> = samples.iter().filter_map(miss).collect();
    let met = !samples.is_empty() && misses.len() as u32 <= t.max_failures;
    let detail = if misses.is_empty() {
        format!("{} of {} requests fine", samples.len(), samples.len())
    } else {
        format!(
            "{} of {} requests missed ({}); {} tolerated",
            misses.len(),
            samples.len(),
            misses.join("; "),
            t.max_failures
        )
    };
    (met, detail)
}

/// The month's postmortem skeleton: one section per run (journals in start order), with the
/// facts filled in and the questions and follow-up tasks left to the owner.
pub fn postmortem_markdown(
    month: &str,
    journals: &[Journal],
    journal_uri: impl Fn(&Journal) -> String,
) -> String {
    let mut md = format!(
        "# Chaos experiments {month}: postmortem\n\n\
         Generated by chaos-runner from the run journals; the sections marked _to fill in_ are \
         for the experiment owners. Regenerated whenever a run of this month finishes \
         (edits belong in the team's copy, not in this file).\n\n\
         | experiment | run | owner | mode | outcome | deviated | FIS experiment |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for j in journals {
        md.push_str(&format!(
            "| {} | `{}` | {} | {} | **{}** | {} | {} |\n",
            j.experiment_name(),
            j.run_id,
            j.owner,
            if j.dry_run {
                "dry run (skip-all)"
            } else {
                "live"
            },
            j.outcome.as_str(),
            if j.deviated { "yes" } else { "no" },
            j.fis.experiment_id.as_deref().unwrap_or("—"),
        ));
    }
    for j in journals {
        let e = &j.experiment;
        md.push_str(&format!(
            "\n## {} — {}\n\n\
             - **Hypothesis:** {}\n\
             - **Owner:** {} (rotation `{}`)\n\
             - **Blast radius:** {} (at most {})\n\
             - **Stop conditions:** {}\n\
             - **Runbook:** [{}](../../{})\n\
             - **Journal:** `{}`\n\
             - **Outcome:** {} (Chaos Toolkit status `{}`, deviated: {})\n",
            j.experiment_name(),
            e["title"].as_str().unwrap_or(""),
            e["description"].as_str().unwrap_or(""),
            j.owner,
            e["extensions"][0]["owner_rotation"].as_str().unwrap_or(""),
            e["extensions"][0]["blast_radius"]["selector"]
                .as_str()
                .unwrap_or(""),
            e["extensions"][0]["blast_radius"]["count"],
            e["extensions"][0]["stop_conditions"]
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(|s| s["alarm"].as_str())
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            j.runbook,
            j.runbook,
            journal_uri(j),
            j.outcome.as_str(),
            j.status,
            j.deviated,
        ));
        if let (Some(code), Some(detail)) = (&j.refusal, &j.refusal_detail) {
            md.push_str(&format!("- **Not run:** `{code}`: {detail}\n"));
        }
        md.push_str("\n### Timeline (UTC)\n\n");
        md.push_str(&format!(
            "- {} run started\n",
            j.start.format("%Y-%m-%d %H:%M:%S")
        ));
        for s in &j.fis.states {
            md.push_str(&format!(
                "- {} FIS `{}`{}\n",
                s.at.format("%Y-%m-%d %H:%M:%S"),
                s.status,
                s.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ));
        }
        if let Some(end) = j.end {
            md.push_str(&format!(
                "- {} run ended\n",
                end.format("%Y-%m-%d %H:%M:%S")
            ));
        }
        md.push_str("\n### Steady state\n\n| phase | met | probes |\n| --- | --- | --- |\n");
        let row = |phase: &str, s: &SteadyState| {
            format!(
                "| {phase} | {} | {} |\n",
                if s.steady_state_met { "yes" } else { "**no**" },
                s.probes
                    .iter()
                    .map(|p| format!(
                        "{}: {}",
                        p.activity["name"].as_str().unwrap_or(""),
                        p.detail
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        if let Some(b) = &j.steady_states.before {
            md.push_str(&row("before", b));
        }
        let during_missed = j
            .steady_states
            .during
            .iter()
            .filter(|s| !s.steady_state_met)
            .count();
        if !j.steady_states.during.is_empty() {
            md.push_str(&format!(
                "| during | {} | {} checks, {} not met |\n",
                if during_missed == 0 { "yes" } else { "**no**" },
                j.steady_states.during.len(),
                during_missed
            ));
        }
        if let Some(a) = &j.steady_states.after {
            md.push_str(&row("after", a));
        }
        md.push_str(
            "\n### What happened\n\n_to fill in: what the system did, what users saw, what the alarms and dashboards showed._\n\
             \n### What we learned\n\n_to fill in: was the hypothesis right? what surprised us?_\n\
             \n### Follow-up tasks\n\n",
        );
        let mut tasks: Vec<String> = vec![];
        match j.outcome {
            Outcome::Deviated => tasks.push("Find why the steady state did not return after the experiment; fix or amend the hypothesis".into()),
            Outcome::SteadyStateNotMet => tasks.push("The steady state was not met before the run: fix the system or the probe, then rerun (manual invoke with force)".into()),
            Outcome::Stopped => tasks.push("A stop condition (or an operator) stopped the experiment: read the alarm history and decide whether the blast radius was right".into()),
            Outcome::ExperimentFailed => tasks.push("FIS reported the experiment failed: read the FIS state reason and the experiment log, fix the template or the role".into()),
            Outcome::Refused | Outcome::Skipped => tasks.push("The run did not happen: resolve the reason above and rerun this month".into()),
            Outcome::HypothesisHeld | Outcome::InProgress => {}
        }
        if j.dry_run {
            tasks.push("This was a dry run (actions skipped): schedule the live run".into());
        }
        tasks.extend(j.follow_ups.iter().cloned());
        tasks.push(format!(
            "Review the runbook {} against what happened",
            j.runbook
        ));
        for t in tasks {
            md.push_str(&format!("- [ ] {t} (owner: {})\n", j.owner));
        }
    }
    if journals.is_empty() {
        md.push_str("\nNo runs this month.\n");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol() -> Tolerance {
        Tolerance::default()
    }

    #[test]
    fn metric_tolerance() {
        let t = Tolerance {
            max: Some(100.0),
            ..tol()
        };
        assert!(judge_metric(Some(99.0), &t).0);
        assert!(!judge_metric(Some(101.0), &t).0);
        assert!(!judge_metric(None, &t).0);
        let t = Tolerance {
            min: Some(99.5),
            missing_data_ok: true,
            ..tol()
        };
        assert!(judge_metric(None, &t).0);
        let (ok, why) = judge_metric(Some(98.0), &t);
        assert!(!ok && why.contains("below min"), "{why}");
    }

    #[test]
    fn http_tolerance() {
        let ok = HttpSample {
            status: Some(200),
            latency_ms: Some(10),
            error: None,
        };
        let slow = HttpSample {
            status: Some(200),
            latency_ms: Some(1500),
            error: None,
        };
        let bad = HttpSample {
            status: Some(503),
            latency_ms: Some(5),
            error: None,
        };
        let down = HttpSample {
            status: None,
            latency_ms: None,
            error: Some("connection refused".into()),
        };
        let t = Tolerance {
            max_latency_ms: Some(900),
            max_failures: 1,
            ..tol()
        };
        assert!(judge_http(&[ok.clone(), ok.clone(), slow.clone()], &t).0);
        let (met, why) = judge_http(&[ok.clone(), bad.clone(), down.clone()], &t);
        assert!(
            !met && why.contains("status 503") && why.contains("refused"),
            "{why}"
        );
        let t = Tolerance {
            status: vec![503],
            ..tol()
        };
        assert!(judge_http(&[bad], &t).0);
        assert!(!judge_http(&[], &t).0, "no sample is no evidence");
    }

    #[test]
    fn fis_states_recorded_once_each() {
        let mut f = FisRecord::default();
        let t = Utc::now();
        assert!(f.observe("pending", None, t));
        assert!(!f.observe("pending", None, t));
        assert!(f.observe("running", Some("Experiment is running"), t));
        assert_eq!(f.states.len(), 2);
        assert!(is_final("completed") && is_final("stopped") && !is_final("running"));
    }
}
