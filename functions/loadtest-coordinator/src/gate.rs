//! The release gate and the baseline, as pure state transitions (the S3 reads and writes are
//! in run.rs). Two consecutive runs of a scenario whose p95 breaks its objective → BLOCK and
//! one incident REL-####; a run that passes every threshold clears the block.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum GateStatus {
    Pass,
    Block,
}

/// `<prefix>gate/<scenario>.json`: what CI reads with one `aws s3 cp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateState {
    pub scenario: String,
    pub state: GateStatus,
    /// Consecutive runs whose p95 objective failed (reset by a run whose p95 passes).
    pub consecutive_p95_failures: u32,
    /// The open incident while BLOCK.
    pub incident: Option<String>,
    /// The incident a passing run closed, for the record.
    #[serde(default)]
    pub last_incident: Option<String>,
    pub reason: String,
    pub last_run_id: String,
    pub last_run_passed: bool,
    pub last_p95_ms: f64,
    pub p95_objective: String,
    /// s3:// URI of the last run's JSON report.
    pub last_report: String,
    pub updated_at: String,
}

/// What one run says, as the gate needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunVerdict {
    pub scenario: String,
    pub run_id: String,
    /// Every threshold (and the baseline) passed.
    pub passed: bool,
    /// The p95 objective failed (None: the scenario has no p95 objective, then any failed
    /// threshold counts).
    pub p95_failed: bool,
    pub p95_ms: f64,
    pub p95_objective: String,
    pub report_uri: String,
    pub now: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GateStep {
    pub state: GateState,
    /// Open a new incident (the caller allocates its number and sets `state.incident`).
    pub open_incident: bool,
    /// The run was already applied (a repeated delivery): nothing to write.
    pub replay: bool,
}

/// The next gate state. Idempotent: the same run applied twice changes nothing.
pub fn next_gate(prev: Option<&GateState>, v: &RunVerdict) -> GateStep {
    if let Some(p) = prev {
        if p.last_run_id == v.run_id {
            return GateStep {
                state: p.clone(),
                open_incident: false,
                replay: true,
            };
        }
    }
    let was_blocked = prev.map(|p| p.state == GateStatus::Block).unwrap_or(false);
    let consecutive = if v.p95_failed {
        prev.map(|p| p.consecutive_p95_failures).unwrap_or(0) + 1
    } else {
        0
    };
    let incident = prev.and_then(|p| p.incident.clone());
    let mut last_incident = prev.and_then(|p| p.last_incident.clone());
    let (state, open, incident, reason) = if v.passed {
        if incident.is_some() {
            last_incident = incident.clone();
        }
        (
            GateStatus::Pass,
            false,
            None,
            format!("run {} passed every threshold", v.run_id),
        )
    } else if consecutive >= 2 {
        let reason = format!(
            "p95 {:.1} ms broke {} on {consecutive} consecutive runs (last {})",
            v.p95_ms, v.p95_objective, v.run_id
        );
        if was_blocked {
            (GateStatus::Block, false, incident, reason)
        } else {
            (GateStatus::Block, true, None, reason)
        }
    } else if was_blocked {
        (
            GateStatus::Block,
            false,
            incident,
            format!(
                "still blocked: run {} did not pass every threshold (a passing run clears the block)",
                v.run_id
            ),
        )
    } else {
        (
            GateStatus::Pass,
            false,
            None,
            if v.p95_failed {
                format!(
                    "p95 {:.1} ms broke {} once; a second consecutive breach blocks",
                    v.p95_ms, v.p95_objective
                )
            } else {
                format!(
                    "run {} failed a threshold other than the p95 objective",
                    v.run_id
                )
            },
        )
    };
    GateStep {
        state: GateState {
            scenario: v.scenario.clone(),
            state,
            consecutive_p95_failures: consecutive,
            incident,
            last_incident,
            reason,
            last_run_id: v.run_id.clone(),
            last_run_passed: v.passed,
            last_p95_ms: v.p95_ms,
            p95_objective: v.p95_objective.clone(),
            last_report: v.report_uri.clone(),
            updated_at: v.now.clone(),
        },
        open_incident: open,
        replay: false,
    }
}

/// `REL-0007` (at least four digits, more after 9999).
pub fn incident_id(n: u64) -> String {
    format!("REL-{n:04}")
}

/// The number in `.../REL-0007.json`.
pub fn incident_number(key: &str) -> Option<u64> {
    let name = key.rsplit('/').next()?;
    name.strip_prefix("REL-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// The incident record (`<prefix>incidents/REL-####.json`, also the SNS message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub scenario: String,
    pub run_id: String,
    pub opened_at: String,
    pub reason: String,
    pub p95_ms: f64,
    pub p95_objective: String,
    pub consecutive_p95_failures: u32,
    pub report: String,
    pub gate: String,
}

/// `<prefix>baseline/<scenario>.json`: each run's throughput and p95.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub scenario: String,
    pub runs: Vec<BaselineRun>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineRun {
    pub run_id: String,
    pub finished_at: String,
    pub throughput_rps: f64,
    pub p95_ms: f64,
    pub passed: bool,
}

/// Runs kept in the baseline object.
pub const BASELINE_HISTORY: usize = 60;

impl Baseline {
    /// What the next run is compared with: the latest PASSING run (a degraded run must not
    /// lower the bar for the one after it), else the latest run. Never the run itself.
    pub fn reference(&self, run_id: &str) -> Option<&BaselineRun> {
        let others = || self.runs.iter().rev().filter(|r| r.run_id != run_id);
        others().find(|r| r.passed).or_else(|| others().next())
    }

    /// Records a run (idempotent per run id), keeping the last BASELINE_HISTORY.
    pub fn record(&mut self, run: BaselineRun) {
        self.runs.retain(|r| r.run_id != run.run_id);
        self.runs.push(run);
        let n = self.runs.len();
        if n > BASELINE_HISTORY {
            self.runs.drain(..n - BASELINE_HISTORY);
        }
    }
}

/// throughput ≥ min_ratio × reference. `None` when there is no reference yet (first run).
pub fn baseline_ratio(throughput: f64, reference: Option<&BaselineRun>) -> Option<f64> {
    let r = reference?;
    if r.throughput_rps <= 0.0 {
        return None;
    }
    Some(throughput / r.throughput_rps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(run: &str, passed: bool, p95_failed: bool) -> RunVerdict {
        RunVerdict {
            scenario: "quote-generation".into(),
            run_id: run.into(),
            passed,
            p95_failed,
            p95_ms: if p95_failed { 1200.0 } else { 400.0 },
            p95_objective: "http_req_duration p(95)<900".into(),
            report_uri: format!("s3://b/{run}.json"),
            now: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn two_consecutive_p95_failures_block_once_and_a_pass_clears() {
        let s1 = next_gate(None, &verdict("r1", false, true));
        assert_eq!(s1.state.state, GateStatus::Pass);
        assert_eq!(s1.state.consecutive_p95_failures, 1);
        assert!(!s1.open_incident);

        let mut s2 = next_gate(Some(&s1.state), &verdict("r2", false, true));
        assert_eq!(s2.state.state, GateStatus::Block);
        assert!(
            s2.open_incident,
            "second consecutive breach opens an incident"
        );
        s2.state.incident = Some(incident_id(1));

        // Repeated delivery of r2: nothing changes, no second incident.
        let again = next_gate(Some(&s2.state), &verdict("r2", false, true));
        assert!(again.replay && !again.open_incident);

        let s3 = next_gate(Some(&s2.state), &verdict("r3", false, true));
        assert_eq!(s3.state.state, GateStatus::Block);
        assert!(!s3.open_incident, "still the same incident");
        assert_eq!(s3.state.incident.as_deref(), Some("REL-0001"));
        assert_eq!(s3.state.consecutive_p95_failures, 3);

        // p95 back within its objective but another threshold fails: stays blocked.
        let s4 = next_gate(Some(&s3.state), &verdict("r4", false, false));
        assert_eq!(s4.state.state, GateStatus::Block);
        assert_eq!(s4.state.consecutive_p95_failures, 0);

        let s5 = next_gate(Some(&s4.state), &verdict("r5", true, false));
        assert_eq!(s5.state.state, GateStatus::Pass);
        assert_eq!(s5.state.incident, None);
        assert_eq!(s5.state.last_incident.as_deref(), Some("REL-0001"));
    }

    #[test]
    fn failures_that_are_not_consecutive_do_not_block() {
        let s1 = next_gate(None, &verdict("r1", false, true));
        let s2 = next_gate(Some(&s1.state), &verdict("r2", true, false));
        let s3 = next_gate(Some(&s2.state), &verdict("r3", false, true));
        assert_eq!(s3.state.state, GateStatus::Pass);
        assert_eq!(s3.state.consecutive_p95_failures, 1);
    }

    #[test]
    fn incident_ids() {
        assert_eq!(incident_id(7), "REL-0007");
        assert_eq!(incident_id(12345), "REL-12345");
        assert_eq!(incident_number("k6/incidents/REL-0042.json"), Some(42));
        assert_eq!(incident_number("k6/incidents/REL-12345.json"), Some(12345));
        assert_eq!(incident_number("k6/incidents/notes.txt"), None);
    }

    #[test]
    fn baseline_compares_with_the_last_passing_run() {
        let mut b = Baseline::default();
        assert_eq!(baseline_ratio(1.0, b.reference("r1")), None);
        let run = |id: &str, t: f64, passed: bool| BaselineRun {
            run_id: id.into(),
            finished_at: "t".into(),
            throughput_rps: t,
            p95_ms: 100.0,
            passed,
        };
        b.record(run("r1", 1.0, true));
        b.record(run("r2", 0.5, false));
        assert_eq!(b.reference("r3").map(|r| r.run_id.as_str()), Some("r1"));
        assert_eq!(baseline_ratio(0.9, b.reference("r3")), Some(0.9));
        // The run itself is never its own reference; recording twice keeps one entry.
        b.record(run("r3", 0.9, false));
        b.record(run("r3", 0.9, false));
        assert_eq!(b.runs.len(), 3);
        assert_eq!(b.reference("r1").map(|r| r.run_id.as_str()), Some("r3"));
        for i in 0..100 {
            b.record(run(&format!("x{i}"), 1.0, true));
        }
        assert_eq!(b.runs.len(), BASELINE_HISTORY);
    }
}
