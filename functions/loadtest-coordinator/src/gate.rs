//! The release gate and the baseline, as pure state transitions (the S3 reads and writes are
//! in run.rs). Two consecutive runs of a scenario whose p95 breaks its objective → BLOCK and
//! one incident REL-####; a run that passes every threshold clears the block. A run that is no
//! evidence either way (ERROR: the target never answered, most of the load was never sent,
//! most shards failed) leaves the gate as it was: it neither counts toward a block nor clears
//! one.

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
    /// While BLOCK: the run whose transition opened the block. Its finalizer numbers the
    /// incident after this state is written (`incident` None until then) and publishes it;
    /// its redelivery does whatever of that a crash cut (release.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_run_id: Option<String>,
    /// The incident a passing run closed, for the record.
    #[serde(default)]
    pub last_incident: Option<String>,
    pub reason: String,
    pub last_run_id: String,
    pub last_run_passed: bool,
    /// Why the last run gave no verdict (status ERROR), if it gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_error: Option<String>,
    pub last_p95_ms: f64,
    pub p95_objective: String,
    /// s3:// URI of the last run's JSON report.
    pub last_report: String,
    pub updated_at: String,
    /// The runs applied lately, newest last ([`APPLIED_RUNS`]): a run redelivered after
    /// another run was applied is still recognised and changes nothing.
    #[serde(default)]
    pub applied_runs: Vec<String>,
}

/// How many applied run ids the gate remembers.
pub const APPLIED_RUNS: usize = 30;

impl GateState {
    /// Whether `run_id` was already applied to this gate.
    pub fn applied(&self, run_id: &str) -> bool {
        self.last_run_id == run_id || self.applied_runs.iter().any(|r| r == run_id)
    }

    fn remember(&mut self, run_id: &str) {
        self.applied_runs.retain(|r| r != run_id);
        self.applied_runs.push(run_id.to_string());
        let n = self.applied_runs.len();
        if n > APPLIED_RUNS {
            self.applied_runs.drain(..n - APPLIED_RUNS);
        }
    }
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
    /// The run is no evidence either way (see [`no_verdict`]): why.
    pub no_verdict: Option<String>,
}

/// Below this share of the scheduled requests sent, a run is no evidence: a run that sent a
/// third of its load says nothing about the latency at the full load, whatever its numbers.
pub const MIN_SENT_SHARE: f64 = 0.5;

/// Why a run's numbers are no evidence about the target, if they are not: nothing scheduled,
/// no successful response at all (an outage, a refused or unreachable target), less than
/// [`MIN_SENT_SHARE`] of the schedule sent (dropped iterations, failed shards), or more than
/// half of the shards failed. `http`: request counts apply (an SSE run counts clients).
pub fn no_verdict(
    http: bool,
    scheduled: u64,
    sent: u64,
    ok: u64,
    shards_total: u64,
    shards_failed: u64,
) -> Option<String> {
    if shards_total > 0 && shards_failed * 2 > shards_total {
        return Some(format!("{shards_failed} of {shards_total} shards failed"));
    }
    if !http {
        return None;
    }
    if scheduled == 0 {
        return Some("no request was scheduled".into());
    }
    if ok == 0 {
        return Some(format!(
            "no successful response among {sent} request(s) sent of {scheduled} scheduled: the target was down, refused or unreachable"
        ));
    }
    if (sent as f64) < MIN_SENT_SHARE * scheduled as f64 {
        return Some(format!(
            "only {sent} of {scheduled} scheduled requests were sent ({:.0} % < {:.0} %)",
            100.0 * sent as f64 / scheduled as f64,
            100.0 * MIN_SENT_SHARE
        ));
    }
    None
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
        if p.applied(&v.run_id) {
            return GateStep {
                state: p.clone(),
                open_incident: false,
                replay: true,
            };
        }
    }
    if let Some(why) = &v.no_verdict {
        let mut state = prev.cloned().unwrap_or_else(|| GateState {
            scenario: v.scenario.clone(),
            state: GateStatus::Pass,
            consecutive_p95_failures: 0,
            incident: None,
            incident_run_id: None,
            last_incident: None,
            reason: String::new(),
            last_run_id: String::new(),
            last_run_passed: false,
            last_run_error: None,
            last_p95_ms: 0.0,
            p95_objective: v.p95_objective.clone(),
            last_report: String::new(),
            updated_at: String::new(),
            applied_runs: vec![],
        });
        state.reason = format!(
            "run {} gave no verdict (ERROR: {why}); the gate stays {} with {} consecutive p95 breach(es)",
            v.run_id,
            if state.state == GateStatus::Block { "BLOCK" } else { "PASS" },
            state.consecutive_p95_failures
        );
        state.last_run_id = v.run_id.clone();
        state.last_run_passed = false;
        state.last_run_error = Some(why.clone());
        state.last_report = v.report_uri.clone();
        state.updated_at = v.now.clone();
        state.remember(&v.run_id);
        return GateStep {
            state,
            open_incident: false,
            replay: false,
        };
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
    let incident_run_id = match state {
        GateStatus::Block if open => Some(v.run_id.clone()),
        GateStatus::Block => prev.and_then(|p| p.incident_run_id.clone()),
        GateStatus::Pass => None,
    };
    let mut next = GateState {
        scenario: v.scenario.clone(),
        state,
        consecutive_p95_failures: consecutive,
        incident,
        incident_run_id,
        last_incident,
        reason,
        last_run_id: v.run_id.clone(),
        last_run_passed: v.passed,
        last_run_error: None,
        last_p95_ms: v.p95_ms,
        p95_objective: v.p95_objective.clone(),
        last_report: v.report_uri.clone(),
        updated_at: v.now.clone(),
        applied_runs: prev.map(|p| p.applied_runs.clone()).unwrap_or_default(),
    };
    next.remember(&v.run_id);
    GateStep {
        state: next,
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

/// How many of the latest passing runs make the throughput reference.
pub const REFERENCE_RUNS: usize = 10;
/// The tolerance never goes below this share of the reference: a reference of one run, or of
/// runs with the same throughput, has no spread, and one error must not fail the next run.
pub const MIN_TOLERANCE_SHARE: f64 = 0.02;
/// The tolerance in robust standard deviations of the reference runs' throughput.
pub const TOLERANCE_SIGMAS: f64 = 3.0;

impl Baseline {
    /// What the next run is compared with: the latest [`REFERENCE_RUNS`] PASSING runs (a
    /// degraded run must not lower the bar for the one after it), else the latest run, newest
    /// first. Never the run itself.
    pub fn references(&self, run_id: &str) -> Vec<&BaselineRun> {
        let others = || self.runs.iter().rev().filter(|r| r.run_id != run_id);
        let passing: Vec<&BaselineRun> =
            others().filter(|r| r.passed).take(REFERENCE_RUNS).collect();
        if passing.is_empty() {
            others().take(1).collect()
        } else {
            passing
        }
    }

    /// Whether `run_id` is recorded.
    pub fn has(&self, run_id: &str) -> bool {
        self.runs.iter().any(|r| r.run_id == run_id)
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

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// A run's throughput judged against the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct ThroughputCheck {
    /// The reference runs, newest first.
    pub reference_runs: Vec<String>,
    /// Median throughput of the reference runs.
    pub reference_rps: f64,
    /// Their spread: 1.4826 × the median absolute deviation (a robust standard deviation).
    pub spread_rps: f64,
    /// max(TOLERANCE_SIGMAS × spread, MIN_TOLERANCE_SHARE × reference).
    pub tolerance_rps: f64,
    /// min_ratio × reference − tolerance: the run passes at or above it.
    pub required_rps: f64,
    /// throughput ÷ reference.
    pub ratio: f64,
    pub ok: bool,
}

/// throughput ≥ min_ratio × median(reference runs) − tolerance, the tolerance derived from
/// the reference runs' own spread. `None` when there is no reference yet (a first run) or the
/// reference carried nothing.
pub fn throughput_check(
    baseline: &Baseline,
    run_id: &str,
    throughput: f64,
    min_ratio: f64,
) -> Option<ThroughputCheck> {
    let refs = baseline.references(run_id);
    let mut xs: Vec<f64> = refs.iter().map(|r| r.throughput_rps).collect();
    let center = median(&mut xs);
    if refs.is_empty() || center <= 0.0 {
        return None;
    }
    let mut dev: Vec<f64> = xs.iter().map(|x| (x - center).abs()).collect();
    let spread = 1.4826 * median(&mut dev);
    let tolerance = (TOLERANCE_SIGMAS * spread).max(MIN_TOLERANCE_SHARE * center);
    let required = min_ratio * center - tolerance;
    Some(ThroughputCheck {
        reference_runs: refs.iter().map(|r| r.run_id.clone()).collect(),
        reference_rps: center,
        spread_rps: spread,
        tolerance_rps: tolerance,
        required_rps: required,
        ratio: throughput / center,
        ok: throughput >= required,
    })
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
            no_verdict: None,
        }
    }

    fn error(run: &str) -> RunVerdict {
        RunVerdict {
            no_verdict: Some("no successful response".into()),
            ..verdict(run, false, true)
        }
    }

    #[test]
    fn a_run_with_no_verdict_neither_blocks_nor_clears() {
        // Two outages in a row: no BLOCK, no incident.
        let e1 = next_gate(None, &error("e1"));
        let e2 = next_gate(Some(&e1.state), &error("e2"));
        assert_eq!(
            (
                e2.state.state,
                e2.state.consecutive_p95_failures,
                e2.open_incident
            ),
            (GateStatus::Pass, 0, false)
        );
        assert!(
            e2.state.reason.contains("no verdict (ERROR"),
            "{}",
            e2.state.reason
        );
        // A breach, an outage, a breach: the outage does not break "consecutive" either
        // (it is no evidence the p95 recovered), so the second breach blocks.
        let s1 = next_gate(Some(&e2.state), &verdict("r1", false, true));
        let e3 = next_gate(Some(&s1.state), &error("e3"));
        assert_eq!(e3.state.consecutive_p95_failures, 1);
        let s2 = next_gate(Some(&e3.state), &verdict("r2", false, true));
        assert!(s2.open_incident && s2.state.state == GateStatus::Block);
        let mut blocked = s2.state.clone();
        blocked.incident = Some(incident_id(1));
        // Blocked, then an outage: still blocked, same incident, no second one.
        let e4 = next_gate(Some(&blocked), &error("e4"));
        assert_eq!(
            (
                e4.state.state,
                e4.state.incident.as_deref(),
                e4.open_incident
            ),
            (GateStatus::Block, Some("REL-0001"), false)
        );
        assert_eq!(
            e4.state.last_run_error.as_deref(),
            Some("no successful response")
        );
        // Replayed: nothing changes; the next real pass clears the error mark too.
        assert!(next_gate(Some(&e4.state), &error("e4")).replay);
        let ok = next_gate(Some(&e4.state), &verdict("r3", true, false));
        assert_eq!(
            (ok.state.state, ok.state.last_run_error),
            (GateStatus::Pass, None)
        );
    }

    #[test]
    fn no_verdict_names_why() {
        assert_eq!(no_verdict(true, 100, 100, 99, 4, 0), None);
        assert!(no_verdict(true, 100, 100, 0, 4, 0)
            .unwrap()
            .contains("no successful response"));
        assert!(no_verdict(true, 100, 30, 30, 4, 0)
            .unwrap()
            .contains("only 30 of 100"));
        assert!(no_verdict(true, 100, 100, 90, 4, 3)
            .unwrap()
            .contains("3 of 4 shards failed"));
        assert!(no_verdict(true, 0, 0, 0, 1, 0).is_some());
        // Half the shards failing is still a (weak) verdict; SSE counts clients, not requests.
        assert_eq!(no_verdict(true, 100, 60, 60, 4, 2), None);
        assert_eq!(no_verdict(false, 0, 0, 0, 2, 0), None);
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

    fn base_run(id: &str, t: f64, passed: bool) -> BaselineRun {
        BaselineRun {
            run_id: id.into(),
            finished_at: "t".into(),
            throughput_rps: t,
            p95_ms: 100.0,
            passed,
        }
    }

    #[test]
    fn baseline_compares_with_the_last_passing_runs() {
        let mut b = Baseline::default();
        assert_eq!(throughput_check(&b, "r1", 1.0, 1.0), None);
        b.record(base_run("r1", 1.0, true));
        b.record(base_run("r2", 0.5, false));
        let c = throughput_check(&b, "r3", 0.9, 1.0).unwrap();
        assert_eq!(
            c.reference_runs,
            vec!["r1"],
            "a failing run never lowers the bar"
        );
        assert!((c.ratio - 0.9).abs() < 1e-12);
        // The run itself is never its own reference; recording twice keeps one entry.
        b.record(base_run("r3", 0.9, false));
        b.record(base_run("r3", 0.9, false));
        assert_eq!(b.runs.len(), 3);
        assert!(b.has("r3") && !b.has("r4"));
        for i in 0..100 {
            b.record(base_run(&format!("x{i}"), 1.0, true));
        }
        assert_eq!(b.runs.len(), BASELINE_HISTORY);
        assert_eq!(b.references("next").len(), REFERENCE_RUNS);
        // No passing run at all: the latest run.
        let mut f = Baseline::default();
        f.record(base_run("a", 2.0, false));
        f.record(base_run("b", 3.0, false));
        assert_eq!(
            throughput_check(&f, "c", 3.0, 1.0).unwrap().reference_runs,
            vec!["b"]
        );
    }

    /// Issue 22: after one perfect night, a single error must not fail the run (and keep a
    /// BLOCK from clearing); a real drop still fails; a noisy history widens the tolerance.
    #[test]
    fn the_throughput_tolerance_comes_from_the_baselines_spread() {
        // One perfect night at 10/s (600 requests in 60 s, all answered).
        let mut b = Baseline::default();
        b.record(base_run("perfect", 10.0, true));
        let one_error = 599.0 / 60.0;
        let c = throughput_check(&b, "next", one_error, 1.0).unwrap();
        assert!(c.ok, "{c:?}");
        assert!((c.tolerance_rps - 0.2).abs() < 1e-9, "the 2 % floor: {c:?}");
        assert!(
            !throughput_check(&b, "next", 9.5, 1.0).unwrap().ok,
            "a 5 % drop fails"
        );
        // A history that varies by about ±3 %: 3 σ of it is the tolerance.
        let mut noisy = Baseline::default();
        for (i, t) in [10.0, 9.7, 10.3, 9.8, 10.2, 10.0, 9.9, 10.1]
            .iter()
            .enumerate()
        {
            noisy.record(base_run(&format!("n{i}"), *t, true));
        }
        let n = throughput_check(&noisy, "next", 9.5, 1.0).unwrap();
        assert_eq!(n.reference_rps, 10.0);
        assert!(n.spread_rps > 0.1 && n.spread_rps < 0.3, "{n:?}");
        assert!(n.tolerance_rps > 0.2, "wider than the floor: {n:?}");
        assert!(n.ok, "9.5/s is within the history's own noise: {n:?}");
        assert!(!throughput_check(&noisy, "next", 8.5, 1.0).unwrap().ok);
        // min_ratio still scales the bar.
        assert!(throughput_check(&b, "next", 8.0, 0.8).unwrap().ok);
        assert!(!throughput_check(&b, "next", 7.5, 0.8).unwrap().ok);
    }

    #[test]
    fn a_run_applied_after_others_is_still_a_replay() {
        let s1 = next_gate(None, &verdict("r1", false, true));
        let s2 = next_gate(Some(&s1.state), &verdict("r2", true, false));
        // r1 redelivered late, after r2: nothing changes.
        let late = next_gate(Some(&s2.state), &verdict("r1", false, true));
        assert!(late.replay);
        assert_eq!(late.state.consecutive_p95_failures, 0);
        let mut s = s2.state;
        for i in 0..(APPLIED_RUNS + 5) {
            s = next_gate(Some(&s), &verdict(&format!("x{i}"), true, false)).state;
        }
        assert_eq!(s.applied_runs.len(), APPLIED_RUNS);
    }
}
