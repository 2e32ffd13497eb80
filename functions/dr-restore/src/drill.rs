//! The restore drill as a pure state machine: no AWS types, no I/O, the clock passed in.
//!
//! ```text
//! STARTING --restore requested--> RESTORING --described available--> AVAILABLE
//!    |                               |                                   |
//!    | restore rejected              | failed status / timeout            | claim (lease)
//!    v                               v                                   v
//!  FAILED <--(failure recorded)-- CLEANING <----- verified ------- VERIFYING
//!                                    | deleted (or keep)
//!                                    v
//!                              DONE (all checks passed) / FAILED
//! ```
//!
//! `next_action` says what the driver must do next; `apply` folds the outcome of that action
//! (or of DescribeDBInstances, the source of truth) into a new state. RDS events only wake the
//! driver up (`on_rds_event` filters them); they never move the state by themselves.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::check::Verification;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    Starting,
    Restoring,
    Available,
    Verifying,
    Cleaning,
    Done,
    Failed,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "STARTING",
            Phase::Restoring => "RESTORING",
            Phase::Available => "AVAILABLE",
            Phase::Verifying => "VERIFYING",
            Phase::Cleaning => "CLEANING",
            Phase::Done => "DONE",
            Phase::Failed => "FAILED",
        }
    }
}

/// A single DB instance restored from an instance, or an Aurora cluster restored from a
/// cluster plus one instance in it (a restored cluster has no instance of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Instance,
    Cluster,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub from: Phase,
    pub to: Phase,
    pub at: DateTime<Utc>,
    pub cause: String,
}

/// Everything known about one drill; persisted as JSON (one S3 object per drill).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillState {
    pub drill_id: String,
    pub phase: Phase,
    pub mode: Mode,
    /// The source DB instance (mode instance) or cluster (mode cluster).
    pub source: String,
    /// The restored instance: DescribeDBInstances on it is the source of truth.
    pub instance_id: String,
    /// The restored cluster (mode cluster).
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// The point in time asked for; `None` = the latest restorable time.
    #[serde(default)]
    pub restore_time: Option<DateTime<Utc>>,
    /// The time the restore targets: `restore_time`, or the source's LatestRestorableTime read
    /// just before the restore call (a lower bound of the real restore point).
    #[serde(default)]
    pub target_time: Option<DateTime<Utc>>,
    /// Keep the restored instance (no clean-up).
    pub keep: bool,
    /// Who or what started the drill (schedule, an engineer's name, a ticket).
    pub triggered_by: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub restore_requested_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub available_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    #[serde(default)]
    pub verify_started_at: Option<DateTime<Utc>>,
    /// A claimed verification belongs to its invocation until then; after it, a crashed
    /// verification is taken over.
    #[serde(default)]
    pub verify_lease_until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub verified_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub verification: Option<Verification>,
    #[serde(default)]
    pub cleanup_started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the drill failed (the first failure), for the report's failure summary.
    #[serde(default)]
    pub failure: Option<String>,
    /// The last status DescribeDBInstances returned (`None` before the first call or when the
    /// instance did not exist).
    #[serde(default)]
    pub last_status: Option<String>,
    /// The message of the last failure-category RDS event for the instance, kept for the
    /// failure reason once DescribeDBInstances confirms the failure.
    #[serde(default)]
    pub last_failure_event: Option<String>,
    /// EventBridge event ids already handled (the newest 50), so a repeated delivery is a no-op.
    #[serde(default)]
    pub seen_events: Vec<String>,
    #[serde(default)]
    pub history: Vec<Transition>,
    /// +1 per persisted change.
    #[serde(default)]
    pub revision: u64,
    /// Whether the report and metrics of the finished drill went out.
    #[serde(default)]
    pub reported: bool,
}

/// What starting a drill needs (validated by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct StartSpec {
    pub drill_id: String,
    pub mode: Mode,
    pub source: String,
    pub instance_id: String,
    pub cluster_id: Option<String>,
    pub restore_time: Option<DateTime<Utc>>,
    pub keep: bool,
    pub triggered_by: String,
}

/// The clocks of the machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// A restore not available after this fails the drill.
    pub restore_timeout: Duration,
    /// DescribeDBInstances may not show a just-requested instance for a while.
    pub missing_grace: Duration,
    /// How long a claimed verification belongs to its invocation.
    pub verify_lease: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            restore_timeout: Duration::hours(6),
            missing_grace: Duration::minutes(10),
            verify_lease: Duration::minutes(15),
        }
    }
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    RequestRestore,
    Describe,
    Verify,
    /// Another invocation holds the verification lease.
    Wait(String),
    Delete,
    /// Terminal: write the report and metrics if not yet done.
    Finish,
}

/// What happened, fed back into the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    RestoreRequested {
        target_time: Option<DateTime<Utc>>,
    },
    /// RDS refused the restore (bad source, bad time, bad subnet group...): nothing to clean.
    RestoreRejected {
        reason: String,
    },
    /// DescribeDBInstances: `None` = the instance does not exist.
    Described {
        status: Option<String>,
        endpoint: Option<Endpoint>,
    },
    VerifyClaimed,
    Verified(Box<Verification>),
    /// DeleteDBInstance accepted (or the instance was already being deleted).
    DeleteRequested,
}

/// The outcome does not fit the drill's phase (a late or duplicate step): nothing to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale(pub String);

/// Statuses from which a restore never becomes available.
pub const FAILED_STATUSES: &[&str] = &[
    "failed",
    "incompatible-restore",
    "incompatible-parameters",
    "incompatible-network",
    "incompatible-option-group",
    "incompatible-credentials",
    "inaccessible-encryption-credentials",
    "inaccessible-encryption-credentials-recoverable",
    "restore-error",
    "storage-full",
];

pub fn new_drill(spec: &StartSpec, now: DateTime<Utc>) -> DrillState {
    DrillState {
        drill_id: spec.drill_id.clone(),
        phase: Phase::Starting,
        mode: spec.mode,
        source: spec.source.clone(),
        instance_id: spec.instance_id.clone(),
        cluster_id: spec.cluster_id.clone(),
        restore_time: spec.restore_time,
        target_time: spec.restore_time,
        keep: spec.keep,
        triggered_by: spec.triggered_by.clone(),
        created_at: now,
        restore_requested_at: None,
        available_at: None,
        endpoint: None,
        verify_started_at: None,
        verify_lease_until: None,
        verified_at: None,
        verification: None,
        cleanup_started_at: None,
        finished_at: None,
        failure: None,
        last_status: None,
        last_failure_event: None,
        seen_events: vec![],
        history: vec![],
        revision: 0,
        reported: false,
    }
}

pub fn next_action(s: &DrillState, now: DateTime<Utc>) -> Action {
    match s.phase {
        Phase::Starting => Action::RequestRestore,
        Phase::Restoring => Action::Describe,
        Phase::Available => Action::Verify,
        Phase::Verifying => match s.verify_lease_until {
            Some(until) if until > now => Action::Wait(format!(
                "another invocation is verifying (lease until {})",
                until.to_rfc3339()
            )),
            // The lease ran out: the verifying invocation crashed or timed out; take over.
            _ => Action::Verify,
        },
        // DeleteDBInstance is idempotent (a deleting or deleted instance answers so): the
        // clean-up asks again until the instance is gone.
        Phase::Cleaning => Action::Delete,
        Phase::Done | Phase::Failed => Action::Finish,
    }
}

fn goto(s: &mut DrillState, to: Phase, now: DateTime<Utc>, cause: impl Into<String>) {
    let from = s.phase;
    s.history.push(Transition {
        from,
        to,
        at: now,
        cause: cause.into(),
    });
    s.phase = to;
    if to.is_terminal() {
        s.finished_at = Some(now);
    }
}

/// Enters clean-up, recording the failure (if any); with `keep`, the drill ends here.
fn start_cleanup(s: &mut DrillState, now: DateTime<Utc>, failure: Option<String>, cause: &str) {
    if s.failure.is_none() {
        s.failure = failure;
    }
    s.cleanup_started_at = Some(now);
    if s.keep {
        let to = if s.failure.is_some() {
            Phase::Failed
        } else {
            Phase::Done
        };
        goto(
            s,
            to,
            now,
            format!("{cause}; restored instance kept (keep=true)"),
        );
    } else {
        goto(s, Phase::Cleaning, now, cause);
    }
}

fn finish_cleanup(s: &mut DrillState, now: DateTime<Utc>) {
    let to = if s.failure.is_some() {
        Phase::Failed
    } else {
        Phase::Done
    };
    goto(s, to, now, "restored instance deleted");
}

/// Folds an outcome into the state. `Err(Stale)` when it does not fit the phase (a duplicate
/// or late step): the caller changes nothing.
pub fn apply(
    s: &DrillState,
    outcome: Outcome,
    now: DateTime<Utc>,
    timing: &Timing,
) -> Result<DrillState, Stale> {
    let mut n = s.clone();
    match (s.phase, outcome) {
        (Phase::Starting, Outcome::RestoreRequested { target_time }) => {
            n.restore_requested_at = Some(now);
            if n.restore_time.is_none() {
                n.target_time = target_time;
            }
            goto(&mut n, Phase::Restoring, now, "restore requested");
        }
        (Phase::Starting, Outcome::RestoreRejected { reason }) => {
            n.failure = Some(format!("restore request rejected: {reason}"));
            goto(&mut n, Phase::Failed, now, "restore request rejected");
        }
        (Phase::Restoring, Outcome::Described { status, endpoint }) => {
            n.last_status = status.clone();
            match status.as_deref() {
                Some("available") => {
                    n.available_at = Some(now);
                    n.endpoint = endpoint;
                    if n.endpoint.is_none() {
                        start_cleanup(
                            &mut n,
                            now,
                            Some("restored instance is available but has no endpoint".into()),
                            "available without an endpoint",
                        );
                    } else {
                        goto(&mut n, Phase::Available, now, "instance available");
                    }
                }
                Some(st) if FAILED_STATUSES.contains(&st) => {
                    let mut why = format!("restore failed: instance status {st}");
                    if let Some(ev) = &n.last_failure_event {
                        why.push_str(&format!(" ({ev})"));
                    }
                    start_cleanup(&mut n, now, Some(why), "restore failed");
                }
                None if now - s.restore_requested_at.unwrap_or(s.created_at)
                    > timing.missing_grace =>
                {
                    n.failure = Some(format!(
                        "restored instance {} does not exist {} minutes after the restore request",
                        s.instance_id,
                        timing.missing_grace.num_minutes()
                    ));
                    goto(&mut n, Phase::Failed, now, "restored instance missing");
                }
                _ if now - s.restore_requested_at.unwrap_or(s.created_at)
                    > timing.restore_timeout =>
                {
                    let why = format!(
                        "restore not available after {} minutes (status {})",
                        timing.restore_timeout.num_minutes(),
                        status.as_deref().unwrap_or("not found")
                    );
                    start_cleanup(&mut n, now, Some(why), "restore timed out");
                }
                // creating, backing-up, modifying...: still waiting.
                _ => {}
            }
        }
        (Phase::Available | Phase::Verifying, Outcome::VerifyClaimed) => {
            if s.phase == Phase::Verifying {
                if let Some(until) = s.verify_lease_until {
                    if until > now {
                        return Err(Stale(
                            "verification lease held by another invocation".into(),
                        ));
                    }
                }
            }
            n.verify_started_at = Some(now);
            n.verify_lease_until = Some(now + timing.verify_lease);
            let cause = if s.phase == Phase::Verifying {
                "verification lease expired: taken over"
            } else {
                "verification claimed"
            };
            goto(&mut n, Phase::Verifying, now, cause);
        }
        (Phase::Verifying, Outcome::Verified(v)) => {
            n.verified_at = Some(now);
            n.verify_lease_until = None;
            let failure = if v.passed {
                None
            } else {
                Some(format!("restore check failed: {}", v.failures.join("; ")))
            };
            n.verification = Some(*v);
            let cause = if failure.is_some() {
                "verification failed"
            } else {
                "verification passed"
            };
            start_cleanup(&mut n, now, failure, cause);
        }
        (Phase::Cleaning, Outcome::DeleteRequested) => {
            n.last_status = Some("deleting".into());
        }
        (Phase::Cleaning, Outcome::Described { status, .. }) => match status {
            None => finish_cleanup(&mut n, now),
            Some(st) => n.last_status = Some(st),
        },
        (phase, o) => {
            return Err(Stale(format!(
                "{} does not apply in phase {}",
                outcome_name(&o),
                phase.as_str()
            )))
        }
    }
    if n != *s {
        n.revision = s.revision + 1;
    }
    Ok(n)
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::RestoreRequested { .. } => "restore requested",
        Outcome::RestoreRejected { .. } => "restore rejected",
        Outcome::Described { .. } => "describe",
        Outcome::VerifyClaimed => "verification claim",
        Outcome::Verified(_) => "verification result",
        Outcome::DeleteRequested => "delete requested",
    }
}

/// An RDS event as EventBridge delivers it (the fields the drill uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdsEvent {
    /// The EventBridge event id (repeated deliveries carry the same one).
    pub id: String,
    pub source_identifier: String,
    /// `RDS-EVENT-0019`...
    pub event_id: String,
    pub categories: Vec<String>,
    pub message: String,
}

impl RdsEvent {
    pub fn is_failure(&self) -> bool {
        self.categories.iter().any(|c| c == "failure")
            || matches!(
                self.event_id.as_str(),
                "RDS-EVENT-0031" | "RDS-EVENT-0035" | "RDS-EVENT-0036" | "RDS-EVENT-0058"
            )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventDecision {
    /// Not for this drill, repeated, or the drill is over: nothing to do.
    Ignore(String),
    /// Record the event (the new state) and advance the drill from DescribeDBInstances.
    Advance(Box<DrillState>),
}

const SEEN_EVENTS_KEPT: usize = 50;

pub fn on_rds_event(s: &DrillState, ev: &RdsEvent) -> EventDecision {
    let ours = ev.source_identifier == s.instance_id
        || s.cluster_id.as_deref() == Some(ev.source_identifier.as_str());
    if !ours {
        return EventDecision::Ignore(format!(
            "event for another instance ({}), drill {} restores {}",
            ev.source_identifier, s.drill_id, s.instance_id
        ));
    }
    if !ev.id.is_empty() && s.seen_events.contains(&ev.id) {
        return EventDecision::Ignore(format!("repeated event {}", ev.id));
    }
    if s.phase.is_terminal() {
        return EventDecision::Ignore(format!("drill already {}", s.phase.as_str()));
    }
    let mut n = s.clone();
    if !ev.id.is_empty() {
        n.seen_events.push(ev.id.clone());
        if n.seen_events.len() > SEEN_EVENTS_KEPT {
            let extra = n.seen_events.len() - SEEN_EVENTS_KEPT;
            n.seen_events.drain(..extra);
        }
    }
    if ev.is_failure() {
        n.last_failure_event = Some(format!("{}: {}", ev.event_id, ev.message));
    }
    n.revision = s.revision + 1;
    EventDecision::Advance(Box::new(n))
}

/// Phase timings for the report, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub restore_seconds: Option<f64>,
    pub wait_for_verify_seconds: Option<f64>,
    pub verify_seconds: Option<f64>,
    pub cleanup_seconds: Option<f64>,
    pub total_seconds: Option<f64>,
}

fn secs(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b >= a => Some((b - a).num_milliseconds() as f64 / 1000.0),
        _ => None,
    }
}

pub fn timings(s: &DrillState) -> Timings {
    Timings {
        restore_seconds: secs(s.restore_requested_at, s.available_at),
        wait_for_verify_seconds: secs(s.available_at, s.verify_started_at),
        verify_seconds: secs(s.verify_started_at, s.verified_at),
        cleanup_seconds: secs(s.cleanup_started_at, s.finished_at),
        total_seconds: secs(Some(s.created_at), s.finished_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Verification;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn spec(keep: bool) -> StartSpec {
        StartSpec {
            drill_id: "d1".into(),
            mode: Mode::Instance,
            source: "app-db".into(),
            instance_id: "dr-drill-d1".into(),
            cluster_id: None,
            restore_time: None,
            keep,
            triggered_by: "test".into(),
        }
    }

    fn ep() -> Option<Endpoint> {
        Some(Endpoint {
            host: "dr-drill-d1.x.rds.amazonaws.com".into(),
            port: 5432,
        })
    }

    fn described(st: Option<&str>) -> Outcome {
        Outcome::Described {
            status: st.map(str::to_string),
            endpoint: ep(),
        }
    }

    fn verification(passed: bool) -> Box<Verification> {
        Box::new(Verification {
            passed,
            failures: if passed {
                vec![]
            } else {
                vec!["schema: missing head abc".into()]
            },
            ..Verification::default()
        })
    }

    fn ev(id: &str, source: &str, event_id: &str, cats: &[&str]) -> RdsEvent {
        RdsEvent {
            id: id.into(),
            source_identifier: source.into(),
            event_id: event_id.into(),
            categories: cats.iter().map(|c| c.to_string()).collect(),
            message: "m".into(),
        }
    }

    /// The happy path through every phase, with the action asked for at each step.
    #[test]
    fn happy_path_through_every_phase() {
        let tm = Timing::default();
        let mut s = new_drill(&spec(false), t0());
        assert_eq!(next_action(&s, t0()), Action::RequestRestore);
        let target = t0() - Duration::minutes(3);
        s = apply(
            &s,
            Outcome::RestoreRequested {
                target_time: Some(target),
            },
            t0(),
            &tm,
        )
        .unwrap();
        assert_eq!(s.phase, Phase::Restoring);
        assert_eq!(s.target_time, Some(target));
        assert_eq!(next_action(&s, t0()), Action::Describe);
        // Still creating: no phase change.
        let t1 = t0() + Duration::minutes(5);
        s = apply(&s, described(Some("creating")), t1, &tm).unwrap();
        assert_eq!(s.phase, Phase::Restoring);
        assert_eq!(s.last_status.as_deref(), Some("creating"));
        let t2 = t0() + Duration::minutes(25);
        s = apply(&s, described(Some("available")), t2, &tm).unwrap();
        assert_eq!(s.phase, Phase::Available);
        assert_eq!(s.endpoint, ep());
        assert_eq!(next_action(&s, t2), Action::Verify);
        s = apply(&s, Outcome::VerifyClaimed, t2, &tm).unwrap();
        assert_eq!(s.phase, Phase::Verifying);
        s = apply(&s, Outcome::Verified(verification(true)), t2, &tm).unwrap();
        assert_eq!(s.phase, Phase::Cleaning);
        assert_eq!(next_action(&s, t2), Action::Delete);
        s = apply(&s, Outcome::DeleteRequested, t2, &tm).unwrap();
        assert_eq!(s.last_status.as_deref(), Some("deleting"));
        assert_eq!(s.phase, Phase::Cleaning);
        assert_eq!(next_action(&s, t2), Action::Delete);
        let t3 = t2 + Duration::minutes(4);
        s = apply(&s, described(None), t3, &tm).unwrap();
        assert_eq!(s.phase, Phase::Done);
        assert_eq!(s.failure, None);
        assert_eq!(next_action(&s, t3), Action::Finish);
        let t = timings(&s);
        assert_eq!(t.restore_seconds, Some(25.0 * 60.0));
        assert_eq!(t.cleanup_seconds, Some(240.0));
        let phases: Vec<Phase> = s.history.iter().map(|h| h.to).collect();
        assert_eq!(
            phases,
            vec![
                Phase::Restoring,
                Phase::Available,
                Phase::Verifying,
                Phase::Cleaning,
                Phase::Done
            ]
        );
    }

    #[test]
    fn failed_verification_still_cleans_up_and_ends_failed() {
        let tm = Timing::default();
        let mut s = new_drill(&spec(false), t0());
        s = apply(
            &s,
            Outcome::RestoreRequested { target_time: None },
            t0(),
            &tm,
        )
        .unwrap();
        s = apply(&s, described(Some("available")), t0(), &tm).unwrap();
        s = apply(&s, Outcome::VerifyClaimed, t0(), &tm).unwrap();
        s = apply(&s, Outcome::Verified(verification(false)), t0(), &tm).unwrap();
        assert_eq!(s.phase, Phase::Cleaning);
        s = apply(&s, described(None), t0(), &tm).unwrap();
        assert_eq!(s.phase, Phase::Failed);
        assert!(
            s.failure.as_deref().unwrap().contains("missing head abc"),
            "{:?}",
            s.failure
        );
    }

    #[test]
    fn keep_skips_the_delete() {
        let tm = Timing::default();
        let mut s = new_drill(&spec(true), t0());
        s = apply(
            &s,
            Outcome::RestoreRequested { target_time: None },
            t0(),
            &tm,
        )
        .unwrap();
        s = apply(&s, described(Some("available")), t0(), &tm).unwrap();
        s = apply(&s, Outcome::VerifyClaimed, t0(), &tm).unwrap();
        s = apply(&s, Outcome::Verified(verification(true)), t0(), &tm).unwrap();
        assert_eq!(s.phase, Phase::Done);
        assert!(s.history.last().unwrap().cause.contains("kept"));
    }

    #[test]
    fn restore_that_fails_records_the_rds_event_and_cleans_up() {
        let tm = Timing::default();
        let mut s = new_drill(&spec(false), t0());
        s = apply(
            &s,
            Outcome::RestoreRequested { target_time: None },
            t0(),
            &tm,
        )
        .unwrap();
        let e = ev("e1", "dr-drill-d1", "RDS-EVENT-0036", &["failure"]);
        match on_rds_event(&s, &e) {
            EventDecision::Advance(n) => s = *n,
            other => panic!("{other:?}"),
        }
        s = apply(&s, described(Some("incompatible-network")), t0(), &tm).unwrap();
        assert_eq!(s.phase, Phase::Cleaning);
        let f = s.failure.clone().unwrap();
        assert!(
            f.contains("incompatible-network") && f.contains("RDS-EVENT-0036"),
            "{f}"
        );
        // The failed instance is still deleted.
        assert_eq!(next_action(&s, t0()), Action::Delete);
    }

    #[test]
    fn rejected_restore_fails_without_cleanup() {
        let s = new_drill(&spec(false), t0());
        let s = apply(
            &s,
            Outcome::RestoreRejected {
                reason: "DBInstanceNotFound: nope".into(),
            },
            t0(),
            &Timing::default(),
        )
        .unwrap();
        assert_eq!(s.phase, Phase::Failed);
        assert!(s.failure.unwrap().contains("DBInstanceNotFound"));
    }

    #[test]
    fn restore_timeout_and_missing_instance() {
        let tm = Timing::default();
        let mut s = new_drill(&spec(false), t0());
        s = apply(
            &s,
            Outcome::RestoreRequested { target_time: None },
            t0(),
            &tm,
        )
        .unwrap();
        // Not visible yet, inside the grace period: wait.
        let w = apply(&s, described(None), t0() + Duration::minutes(2), &tm).unwrap();
        assert_eq!(w.phase, Phase::Restoring);
        let gone = apply(&s, described(None), t0() + Duration::minutes(11), &tm).unwrap();
        assert_eq!(gone.phase, Phase::Failed);
        assert!(gone.failure.unwrap().contains("does not exist"));
        let late = apply(
            &s,
            described(Some("creating")),
            t0() + Duration::hours(7),
            &tm,
        )
        .unwrap();
        assert_eq!(late.phase, Phase::Cleaning);
        assert!(late
            .failure
            .unwrap()
            .contains("not available after 360 minutes"));
    }

    #[test]
    fn events_for_other_instances_and_repeats_are_ignored() {
        let tm = Timing::default();
        let mut s = new_drill(&spec(false), t0());
        s = apply(
            &s,
            Outcome::RestoreRequested { target_time: None },
            t0(),
            &tm,
        )
        .unwrap();
        let other = ev("e9", "app-db", "RDS-EVENT-0019", &["restoration"]);
        match on_rds_event(&s, &other) {
            EventDecision::Ignore(r) => assert!(r.contains("another instance"), "{r}"),
            x => panic!("{x:?}"),
        }
        let e = ev("e1", "dr-drill-d1", "RDS-EVENT-0019", &["restoration"]);
        let EventDecision::Advance(n) = on_rds_event(&s, &e) else {
            panic!("advance")
        };
        assert_eq!(n.seen_events, vec!["e1".to_string()]);
        match on_rds_event(&n, &e) {
            EventDecision::Ignore(r) => assert!(r.contains("repeated"), "{r}"),
            x => panic!("{x:?}"),
        }
        // Describe twice with "available": the second is a no-op (no second transition).
        let a = apply(&n, described(Some("available")), t0(), &tm).unwrap();
        assert!(apply(&a, described(Some("available")), t0(), &tm).is_err());
        // Late verification result after cleanup started: stale.
        let c = apply(&a, Outcome::VerifyClaimed, t0(), &tm).unwrap();
        let c = apply(&c, Outcome::Verified(verification(true)), t0(), &tm).unwrap();
        assert!(apply(&c, Outcome::Verified(verification(true)), t0(), &tm).is_err());
    }

    /// A verification whose invocation died is taken over once the lease runs out, not before.
    #[test]
    fn crashed_verification_is_resumed_after_the_lease() {
        let tm = Timing::default();
        let mut s = new_drill(&spec(false), t0());
        s = apply(
            &s,
            Outcome::RestoreRequested { target_time: None },
            t0(),
            &tm,
        )
        .unwrap();
        s = apply(&s, described(Some("available")), t0(), &tm).unwrap();
        s = apply(&s, Outcome::VerifyClaimed, t0(), &tm).unwrap();
        // (crash here)
        let soon = t0() + Duration::minutes(5);
        assert!(matches!(next_action(&s, soon), Action::Wait(_)));
        assert!(apply(&s, Outcome::VerifyClaimed, soon, &tm).is_err());
        let later = t0() + Duration::minutes(16);
        assert_eq!(next_action(&s, later), Action::Verify);
        let r = apply(&s, Outcome::VerifyClaimed, later, &tm).unwrap();
        assert!(r.history.last().unwrap().cause.contains("taken over"));
    }

    #[test]
    fn state_round_trips_through_json() {
        let s = new_drill(&spec(false), t0());
        let j = serde_json::to_string(&s).unwrap();
        let back: DrillState = serde_json::from_str(&j).unwrap();
        assert_eq!(back, s);
        assert!(j.contains("\"phase\":\"STARTING\""));
    }
}
