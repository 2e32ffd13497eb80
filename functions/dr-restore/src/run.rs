//! The drill and the failover rehearsal against the ports. Every change of a drill's state is a
//! conditional write of its S3 object (If-None-Match to create, If-Match on the ETag read):
//! when two invocations race, exactly one write wins and the loser stops with CONFLICT, so no
//! step is advanced twice. Side effects before a write are idempotent (restore of an existing
//! drill instance, delete of a deleted one), and verification is claimed with a lease first.
//! The writes go through `shared::state::JsonState`: each carries a write token, and a write
//! whose answer was lost after S3 acted is recognised as this invocation's own by reading it
//! back (otherwise the SDK's retry, refused by its own object, would answer ALREADY_STARTED or
//! CONFLICT for a drill this invocation did start or advance).

use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::config::CommonConfig;
use shared::metrics::{Emf, Unit};
use shared::store::AlreadyExists;
use shared::{SuiteError, SuiteResult};

use crate::check::{judge, Verification};
use crate::config::{valid_drill_id, Settings};
use crate::db::{ConnTarget, RestoredDb};
use crate::drill::{
    apply, new_drill, next_action, on_rds_event, Action, DrillState, EventDecision, Mode, Outcome,
    Phase, RdsEvent, StartSpec,
};
use crate::event::{FailoverRequest, StartRequest};
use crate::port::{
    Conflict, DeleteAck, Params, Rds, RestoreAck, RestoreSpec, SecretSource, StateStore,
};
use crate::report::{render_markdown, summarize, FailoverRecord, FailoverStep, MonthlyReport};
use crate::smoke::run_smoke;

/// What one invocation did to one drill.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillOutcome {
    pub drill_id: String,
    /// STARTED, ADVANCED, WAITING, CONFLICT, IGNORED, FINISHED, ALREADY_STARTED, IN_PROGRESS
    pub status: String,
    pub phase: Option<Phase>,
    pub steps: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

pub struct Engine<'a, R, S, D, K, P> {
    pub rds: &'a R,
    pub store: &'a S,
    pub db: &'a D,
    pub secrets: &'a K,
    pub params: &'a P,
    pub settings: &'a Settings,
    pub common: &'a CommonConfig,
}

/// Stop stepping when less than this is left (the poll or the next event resumes).
pub const MARGIN: std::time::Duration = std::time::Duration::from_secs(20);

impl<R, S, D, K, P> Engine<'_, R, S, D, K, P>
where
    R: Rds,
    S: StateStore,
    D: RestoredDb,
    K: SecretSource,
    P: Params,
{
    async fn load(&self, drill_id: &str) -> SuiteResult<Option<(DrillState, String)>> {
        let key = self.settings.state_key(drill_id);
        Ok(self
            .store
            .json()
            .load::<DrillState>(&key)
            .await?
            .map(|v| (v.value, v.etag)))
    }

    async fn save(&self, s: &DrillState, etag: &str) -> SuiteResult<Result<String, Conflict>> {
        Ok(self
            .store
            .json()
            .replace(&self.settings.state_key(&s.drill_id), s, etag)
            .await?
            .map(|w| w.etag))
    }

    pub fn report_key(&self, month: &str, ext: &str) -> String {
        format!("{}dr/{month}.{ext}", self.common.report_prefix)
    }

    /// Creates the drill (once: a repeated start answers ALREADY_STARTED) and requests the
    /// restore.
    pub async fn start(
        &self,
        req: &StartRequest,
        now: DateTime<Utc>,
        deadline: Instant,
    ) -> SuiteResult<DrillOutcome> {
        let drill_id = req
            .drill_id
            .clone()
            .unwrap_or_else(|| now.format("%Y%m%d-%H%M").to_string());
        if !valid_drill_id(&drill_id, &self.settings.instance_prefix) {
            return Err(SuiteError::invalid(
                "drill_id",
                format!(
                    "{:?} makes the identifier {}{drill_id} invalid or longer than RDS allows",
                    drill_id, self.settings.instance_prefix
                ),
                "use a shorter id of letters, digits and single hyphens",
            ));
        }
        if let Some(t) = req.restore_time {
            if t > now {
                return Err(SuiteError::invalid(
                    "restore_time",
                    format!("{} is in the future", t.to_rfc3339()),
                    "send a past time, or omit it for the latest restorable time",
                ));
            }
        }
        let instance_id = self.settings.instance_id(&drill_id);
        let spec = StartSpec {
            drill_id: drill_id.clone(),
            mode: self.settings.mode,
            source: self.settings.source.clone(),
            cluster_id: (self.settings.mode == Mode::Cluster)
                .then(|| format!("{instance_id}-cluster")),
            instance_id,
            restore_time: req.restore_time,
            keep: req.keep.unwrap_or(self.settings.keep_default),
            triggered_by: req.triggered_by.clone(),
        };
        let state = new_drill(&spec, now);
        match self
            .store
            .json()
            .create(&self.settings.state_key(&drill_id), &state)
            .await?
        {
            Ok(_) => {
                tracing::info!(drill_id = %drill_id, source = %spec.source, instance = %spec.instance_id, triggered_by = %spec.triggered_by, "drill created");
                let mut o = self.advance(&drill_id, deadline).await?;
                o.steps.insert(0, "drill created".into());
                if o.status == "ADVANCED" || o.status == "WAITING" {
                    o.status = "STARTED".into();
                }
                Ok(o)
            }
            Err(AlreadyExists) => {
                let existing = self.load(&drill_id).await?;
                Ok(DrillOutcome {
                    drill_id,
                    status: "ALREADY_STARTED".into(),
                    phase: existing.as_ref().map(|(s, _)| s.phase),
                    steps: vec![],
                    failure: existing.and_then(|(s, _)| s.failure),
                    report: None,
                    note: Some(
                        "a drill with this id exists; a repeated start changes nothing".into(),
                    ),
                })
            }
        }
    }

    /// An RDS event: wakes the drill it belongs to (DescribeDBInstances decides).
    pub async fn on_event(&self, ev: &RdsEvent, deadline: Instant) -> SuiteResult<DrillOutcome> {
        let ignored = |drill_id: String, why: String| DrillOutcome {
            drill_id,
            status: "IGNORED".into(),
            phase: None,
            steps: vec![],
            failure: None,
            report: None,
            note: Some(why),
        };
        let Some(drill_id) = self.settings.drill_of(&ev.source_identifier) else {
            return Ok(ignored(
                String::new(),
                format!(
                    "event for another instance ({}): not a drill instance",
                    ev.source_identifier
                ),
            ));
        };
        let Some((state, etag)) = self.load(&drill_id).await? else {
            return Ok(ignored(
                drill_id,
                format!("no drill state for {}", ev.source_identifier),
            ));
        };
        match on_rds_event(&state, ev) {
            EventDecision::Ignore(why) => {
                let mut o = ignored(drill_id, why);
                o.phase = Some(state.phase);
                Ok(o)
            }
            EventDecision::Advance(n) => {
                // Losing this write only loses the event's bookkeeping: the drill still advances
                // from DescribeDBInstances below.
                let _ = self.save(&n, &etag).await?;
                tracing::info!(drill_id = %drill_id, rds_event = %ev.event_id, message = %ev.message, "RDS event for the drill");
                let mut o = self.advance(&drill_id, deadline).await?;
                o.steps
                    .insert(0, format!("event {} {}", ev.event_id, ev.id));
                Ok(o)
            }
        }
    }

    /// The safety net: advances every drill that is not finished and reported.
    pub async fn poll(&self, deadline: Instant) -> SuiteResult<Vec<DrillOutcome>> {
        let mut out = vec![];
        for key in self.store.list(&self.settings.state_prefix).await? {
            let Some(id) = key
                .strip_prefix(&self.settings.state_prefix)
                .and_then(|k| k.strip_suffix(".json"))
            else {
                continue;
            };
            if deadline.saturating_duration_since(Instant::now()) < MARGIN {
                break;
            }
            if let Some((s, _)) = self.load(id).await? {
                if s.phase.is_terminal() && s.reported {
                    continue;
                }
                out.push(self.advance(id, deadline).await?);
            }
        }
        Ok(out)
    }

    pub async fn status(&self, drill_id: &str) -> SuiteResult<Option<DrillState>> {
        Ok(self.load(drill_id).await?.map(|(s, _)| s))
    }

    /// Steps the drill until it must wait for RDS, another invocation holds it, or it is
    /// finished and reported.
    pub async fn advance(&self, drill_id: &str, deadline: Instant) -> SuiteResult<DrillOutcome> {
        let mut steps: Vec<String> = vec![];
        let out =
            |status: &str, s: &DrillState, steps: Vec<String>, note: Option<String>| DrillOutcome {
                drill_id: drill_id.to_string(),
                status: status.into(),
                phase: Some(s.phase),
                steps,
                failure: s.failure.clone(),
                report: None,
                note,
            };
        let Some((mut s, mut etag)) = self.load(drill_id).await? else {
            return Err(SuiteError::invalid(
                "drill_id",
                format!("no drill {drill_id}"),
                "start it with {\"action\": \"start\"} or check the id",
            ));
        };
        let tm = self.settings.timing;
        loop {
            if deadline.saturating_duration_since(Instant::now()) < MARGIN {
                return Ok(out(
                    "IN_PROGRESS",
                    &s,
                    steps,
                    Some("time limit near: the poll or the next event resumes".into()),
                ));
            }
            let now = Utc::now();
            let (next, note) = match next_action(&s, now) {
                Action::RequestRestore => {
                    let target = match s.restore_time {
                        Some(t) => Some(t),
                        None => self.rds.latest_restorable_time(s.mode, &s.source).await?,
                    };
                    let ack = self.rds.restore(&self.restore_spec(&s)).await?;
                    let outcome = match ack {
                        RestoreAck::Requested => Outcome::RestoreRequested { target_time: target },
                        RestoreAck::AlreadyExists => match self.rds.describe(&s.instance_id).await? {
                            // A resumed start: the instance carries this drill's tag.
                            Some(v) if v.tags.iter().any(|(k, val)| k == "dr-drill-id" && val == &s.drill_id) => {
                                Outcome::RestoreRequested { target_time: target }
                            }
                            _ => Outcome::RestoreRejected {
                                reason: format!("an instance named {} exists and is not this drill's (no tag dr-drill-id={})", s.instance_id, s.drill_id),
                            },
                        },
                        RestoreAck::Rejected(r) => Outcome::RestoreRejected { reason: r },
                    };
                    (apply(&s, outcome, now, &tm), "restore requested")
                }
                Action::Describe => {
                    let v = self.rds.describe(&s.instance_id).await?;
                    let outcome = Outcome::Described {
                        status: v.as_ref().map(|v| v.status.clone()),
                        endpoint: v.and_then(|v| v.endpoint),
                    };
                    (apply(&s, outcome, now, &tm), "described")
                }
                Action::Verify => {
                    let claimed = match apply(&s, Outcome::VerifyClaimed, now, &tm) {
                        Ok(c) => c,
                        Err(stale) => return Ok(out("WAITING", &s, steps, Some(stale.0))),
                    };
                    let from = s.phase;
                    match self.save(&claimed, &etag).await? {
                        Ok(e) => {
                            etag = e;
                            s = claimed;
                        }
                        Err(Conflict) => return Ok(self.conflict(drill_id, &s, steps)),
                    }
                    steps.push(format!("{} -> VERIFYING", from.as_str()));
                    let v = self.verify(&s).await;
                    tracing::info!(drill_id = %drill_id, passed = v.passed, failures = %v.failures.join("; "), duration_ms = v.duration_ms, "restore check done");
                    (
                        apply(&s, Outcome::Verified(Box::new(v)), Utc::now(), &tm),
                        "verified",
                    )
                }
                Action::Delete => {
                    let ack = self
                        .rds
                        .delete_instance(&s.instance_id, s.cluster_id.as_deref())
                        .await?;
                    let outcome = match ack {
                        DeleteAck::Gone => Outcome::Described {
                            status: None,
                            endpoint: None,
                        },
                        DeleteAck::Deleting => Outcome::DeleteRequested,
                    };
                    (apply(&s, outcome, now, &tm), "delete requested")
                }
                Action::Wait(why) => return Ok(out("WAITING", &s, steps, Some(why))),
                Action::Finish => {
                    if s.reported {
                        return Ok(out("FINISHED", &s, steps, None));
                    }
                    let report = self.report_drill(&s).await?;
                    let mut done = s.clone();
                    done.reported = true;
                    done.revision += 1;
                    match self.save(&done, &etag).await? {
                        Ok(_) => {
                            self.drill_metrics(&done);
                            tracing::info!(drill_id = %drill_id, phase = done.phase.as_str(), failure = done.failure.as_deref().unwrap_or(""), report = %report, "drill finished");
                            steps.push("report written".into());
                            let mut o = out("FINISHED", &done, steps, None);
                            o.report = Some(report);
                            return Ok(o);
                        }
                        Err(Conflict) => return Ok(self.conflict(drill_id, &s, steps)),
                    }
                }
            };
            let n = match next {
                Ok(n) => n,
                // Nothing new (a duplicate observation): wait for RDS.
                Err(_) => {
                    return Ok(out(
                        "WAITING",
                        &s,
                        steps,
                        s.last_status
                            .clone()
                            .map(|st| format!("instance status {st}")),
                    ))
                }
            };
            if n == s {
                let why = match s.phase {
                    Phase::Restoring => format!(
                        "restore in progress (status {}): waiting for the RDS event or the poll",
                        s.last_status.as_deref().unwrap_or("not visible yet")
                    ),
                    Phase::Cleaning => {
                        "deletion in progress: waiting for the RDS event or the poll".into()
                    }
                    _ => "nothing to do".into(),
                };
                return Ok(out("WAITING", &s, steps, Some(why)));
            }
            let from = s.phase;
            match self.save(&n, &etag).await? {
                Ok(e) => etag = e,
                Err(Conflict) => return Ok(self.conflict(drill_id, &s, steps)),
            }
            if n.phase != from {
                tracing::info!(drill_id = %drill_id, from = from.as_str(), to = n.phase.as_str(), "drill phase changed");
                steps.push(format!("{} -> {}", from.as_str(), n.phase.as_str()));
            } else {
                steps.push(note.to_string());
            }
            let stop_after_restore = from == Phase::Starting && n.phase == Phase::Restoring;
            s = n;
            if stop_after_restore {
                // A restore takes minutes to hours: the RDS event (or the poll) continues.
                return Ok(out(
                    "WAITING",
                    &s,
                    steps,
                    Some("restore requested: waiting for the RDS event or the poll".into()),
                ));
            }
        }
    }

    fn conflict(&self, drill_id: &str, s: &DrillState, steps: Vec<String>) -> DrillOutcome {
        tracing::info!(drill_id = %drill_id, phase = s.phase.as_str(), "another invocation advanced the drill first");
        DrillOutcome {
            drill_id: drill_id.into(),
            status: "CONFLICT".into(),
            phase: Some(s.phase),
            steps,
            failure: None,
            report: None,
            note: Some("another invocation changed the drill first (conditional write lost); nothing was done twice".into()),
        }
    }

    fn restore_spec(&self, s: &DrillState) -> RestoreSpec {
        let mut tags = self.settings.tags.clone();
        tags.push(("dr-drill-id".into(), s.drill_id.clone()));
        tags.push(("managed-by".into(), "dr-restore".into()));
        tags.push(("environment".into(), self.common.environment.clone()));
        RestoreSpec {
            mode: s.mode,
            source: s.source.clone(),
            instance_id: s.instance_id.clone(),
            cluster_id: s.cluster_id.clone(),
            restore_time: s.restore_time,
            subnet_group: self.settings.subnet_group.clone(),
            security_group_ids: self.settings.security_group_ids.clone(),
            parameter_group: self.settings.parameter_group.clone(),
            instance_parameter_group: self.settings.instance_parameter_group.clone(),
            instance_class: self.settings.instance_class.clone(),
            tags,
        }
    }

    async fn conn_target(&self, host: &str, port: u16) -> Result<ConnTarget, String> {
        let credentials = self
            .secrets
            .credentials(&self.settings.db_secret_id)
            .await
            .map_err(|e| {
                format!(
                    "credentials from secret {}: {e}",
                    self.settings.db_secret_id
                )
            })?;
        Ok(ConnTarget {
            host: self
                .settings
                .host_override
                .clone()
                .unwrap_or_else(|| host.to_string()),
            port: self.settings.port_override.unwrap_or(port),
            dbname: self.settings.db_name.clone(),
            credentials,
            connect_timeout: self.settings.connect_timeout,
            statement_timeout: self.settings.statement_timeout,
        })
    }

    /// db_restore_check on the restored instance.
    pub async fn verify(&self, s: &DrillState) -> Verification {
        // "Latest restorable" drills measure the RPO from the drill's start (a disaster at
        // that moment); drills to a given time from that time.
        let reference = match s.restore_time {
            Some(t) => t,
            None => s.restore_requested_at.unwrap_or(s.created_at),
        };
        let Some(ep) = &s.endpoint else {
            return failed_verification("the restored instance has no endpoint");
        };
        let target = match self.conn_target(&ep.host, ep.port).await {
            Ok(t) => t,
            Err(e) => return failed_verification(&e),
        };
        let findings = self.db.collect(&target, &self.settings.plan).await;
        judge(&self.settings.plan, &findings, reference, s.target_time)
    }

    /// Read-modify-write of the monthly report with a conditional write (retried on conflict).
    async fn update_month<F>(&self, month: &str, f: F) -> SuiteResult<String>
    where
        F: Fn(&mut MonthlyReport),
    {
        let json_key = self.report_key(month, "json");
        let md_key = self.report_key(month, "md");
        let state = self.store.json();
        for _ in 0..8 {
            let (mut report, etag) = match state.load::<MonthlyReport>(&json_key).await? {
                Some(v) => (v.value, Some(v.etag)),
                None => (
                    MonthlyReport {
                        month: month.into(),
                        ..Default::default()
                    },
                    None,
                ),
            };
            f(&mut report);
            let written = match &etag {
                Some(e) => state.replace(&json_key, &report, e).await?.is_ok(),
                None => state.create(&json_key, &report).await?.is_ok(),
            };
            if written {
                // The Markdown is a rendering of the JSON just written; a crash between the two
                // is repaired by the next report of the month (or a repeated finish).
                self.store
                    .put(
                        &md_key,
                        render_markdown(&report).into_bytes(),
                        "text/markdown; charset=utf-8",
                    )
                    .await?;
                return Ok(format!("s3://{}/{md_key}", self.common.report_bucket));
            }
        }
        Err(SuiteError::Internal(format!(
            "{json_key}: 8 conditional writes lost in a row"
        )))
    }

    async fn report_drill(&self, s: &DrillState) -> SuiteResult<String> {
        let month = s.created_at.format("%Y-%m").to_string();
        let summary = summarize(s, &self.common.environment, &self.common.deployment);
        self.update_month(&month, |r| r.upsert_drill(summary.clone()))
            .await
    }

    fn drill_metrics(&self, s: &DrillState) {
        for d in drill_metric_documents(self.common, s) {
            d.emit();
        }
    }

    // ---- failover rehearsal -------------------------------------------------------------

    /// The plan, from configuration only (a dry run calls nothing).
    pub fn failover_plan(&self) -> Result<(String, Vec<String>), SuiteError> {
        let f = &self.settings.failover;
        let (target, first) = match (&f.replica, &f.cluster) {
            (Some(r), _) => (
                r.clone(),
                format!("PromoteReadReplica {r}; wait until DescribeDBInstances says available (at most {} s)", f.wait.as_secs()),
            ),
            (None, Some(c)) => (
                c.clone(),
                format!(
                    "FailoverDBCluster {c}{}",
                    f.target_instance.as_deref().map(|t| format!(" to {t}")).unwrap_or_default()
                ),
            ),
            (None, None) => {
                return Err(SuiteError::invalid(
                    "action",
                    "no failover target is configured",
                    "set DR_FAILOVER_REPLICA (or DR_FAILOVER_CLUSTER) on the function",
                ))
            }
        };
        let mut plan = vec![first];
        for sw in &f.switches {
            plan.push(format!(
                "switch flag {}: set SSM parameter {} to the value of {}",
                sw.flag, sw.parameter, sw.standby_parameter
            ));
        }
        if self.settings.failover.replica.is_some() || self.settings.failover.cluster.is_some() {
            plan.push(format!(
                "data currency and restore check on the promoted database ({})",
                self.settings.db_name
            ));
        }
        for u in &f.smoke_urls {
            plan.push(format!(
                "smoke test GET {u} (2xx within {} ms)",
                f.smoke_timeout.as_millis()
            ));
        }
        Ok((target, plan))
    }

    pub async fn failover(
        &self,
        req: &FailoverRequest,
        now: DateTime<Utc>,
    ) -> SuiteResult<serde_json::Value> {
        let (target, plan) = self.failover_plan()?;
        if req.dry_run {
            for (i, p) in plan.iter().enumerate() {
                tracing::info!(step = i + 1, plan = %p, "failover dry run: plan step");
            }
            return Ok(
                serde_json::json!({"status": "DRY_RUN", "target": target, "plan": plan,
                "note": "nothing was touched; send \"dry_run\": false to run it"}),
            );
        }
        if self.common.environment == "prod" && req.confirm.as_deref() != Some(target.as_str()) {
            return Err(SuiteError::invalid(
                "confirm",
                format!("a production failover needs \"confirm\": \"{target}\" (the instance or cluster promoted)"),
                format!("review the plan with a dry run, then send \"dry_run\": false, \"confirm\": \"{target}\""),
            ));
        }
        let id = req
            .rehearsal_id
            .clone()
            .unwrap_or_else(|| now.format("%Y%m%d-%H%M").to_string());
        let key = format!(
            "{}failovers/{id}.json",
            self.settings.state_prefix.trim_end_matches("drills/")
        );
        let mut record = FailoverRecord {
            rehearsal_id: id.clone(),
            success: false,
            environment: self.common.environment.clone(),
            deployment: self.common.deployment.clone(),
            triggered_by: req.triggered_by.clone(),
            target: target.clone(),
            plan: plan.clone(),
            started_at: now,
            finished_at: None,
            failover_seconds: None,
            steps: vec![],
            smoke: vec![],
            data_currency: None,
            failures: vec![],
        };
        // The record is the rehearsal's claim: a repeated delivery answers from it.
        let state = self.store.json();
        let etag = match state.create(&key, &record).await? {
            Ok(w) => w.etag,
            Err(AlreadyExists) => {
                let v = match state.load::<serde_json::Value>(&key).await {
                    Ok(v) => v.map(|v| v.value).unwrap_or_default(),
                    Err(SuiteError::BadObject { .. }) => serde_json::Value::Null,
                    Err(e) => return Err(e),
                };
                return Ok(
                    serde_json::json!({"status": "ALREADY_RUN", "rehearsal_id": id, "record": v}),
                );
            }
        };
        let started = Instant::now();
        let f = &self.settings.failover;
        // 1. promote / fail over, and wait for the promoted instance.
        let step_start = Utc::now();
        let t = Instant::now();
        let promoted = match (&f.replica, &f.cluster) {
            (Some(r), _) => match self.rds.promote_read_replica(r).await {
                Ok(()) => self.wait_available(r, f.wait).await,
                Err(e) => Err(e.to_string()),
            },
            (None, Some(c)) => self
                .rds
                .failover_cluster(c, f.target_instance.as_deref())
                .await
                .map_err(|e| e.to_string())
                .map(|_| None),
            (None, None) => Err("no failover target".into()),
        };
        let endpoint = match &promoted {
            Ok(ep) => ep.clone(),
            Err(_) => None,
        };
        record.steps.push(FailoverStep {
            name: if f.replica.is_some() {
                "promote read replica".into()
            } else {
                "fail over cluster".into()
            },
            passed: promoted.is_ok(),
            detail: match &promoted {
                Ok(_) => format!("{target} available"),
                Err(e) => e.clone(),
            },
            started_at: step_start,
            duration_ms: t.elapsed().as_secs_f64() * 1000.0,
        });
        if let Err(e) = &promoted {
            record.failures.push(format!("failover of {target}: {e}"));
        } else {
            // 2. switch the flags.
            for sw in &f.switches {
                let step_start = Utc::now();
                let t = Instant::now();
                let r: Result<String, String> = async {
                    let (value, _) = self
                        .params
                        .get(&sw.standby_parameter)
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| format!("standby parameter {} does not exist", sw.standby_parameter))?;
                    let before = self.params.get(&sw.parameter).await.map_err(|e| e.to_string())?.map(|(_, v)| v);
                    let after = self.params.put(&sw.parameter, &value).await.map_err(|e| e.to_string())?;
                    // Versions only: the values (a DATABASE_URL) are secrets.
                    Ok(format!(
                        "{} version {} -> {after} (value of {}; roll back with the previous version)",
                        sw.parameter,
                        before.map(|v| v.to_string()).unwrap_or_else(|| "none".into()),
                        sw.standby_parameter
                    ))
                }
                .await;
                if let Err(e) = &r {
                    record.failures.push(format!("switch {}: {e}", sw.flag));
                }
                record.steps.push(FailoverStep {
                    name: format!("switch {}", sw.flag),
                    passed: r.is_ok(),
                    detail: r.unwrap_or_else(|e| e),
                    started_at: step_start,
                    duration_ms: t.elapsed().as_secs_f64() * 1000.0,
                });
            }
            record.failover_seconds = Some(started.elapsed().as_secs_f64());
            // 3. data currency and checks on the promoted database.
            if let Some(ep) = endpoint {
                let step_start = Utc::now();
                let t = Instant::now();
                let v = match self.conn_target(&ep.host, ep.port).await {
                    Ok(ct) => {
                        let findings = self.db.collect(&ct, &self.settings.plan).await;
                        judge(&self.settings.plan, &findings, now, None)
                    }
                    Err(e) => failed_verification(&e),
                };
                for x in &v.failures {
                    record.failures.push(format!("promoted database: {x}"));
                }
                record.steps.push(FailoverStep {
                    name: "check promoted database".into(),
                    passed: v.passed,
                    detail: v.rpo.as_ref().map(|r| r.detail.clone()).unwrap_or_else(|| {
                        if v.passed {
                            "checks passed".into()
                        } else {
                            v.failures.join("; ")
                        }
                    }),
                    started_at: step_start,
                    duration_ms: t.elapsed().as_secs_f64() * 1000.0,
                });
                record.data_currency = Some(v);
            }
        }
        // 4. smoke tests (also after a failed step: they say what users see).
        record.smoke = run_smoke(&f.smoke_urls, f.smoke_timeout).await;
        for s in record.smoke.iter().filter(|s| !s.passed) {
            record.failures.push(format!(
                "smoke GET {}: {}",
                s.url,
                s.error.clone().unwrap_or_default()
            ));
        }
        record.finished_at = Some(Utc::now());
        record.success = record.failures.is_empty();
        let _ = state.replace(&key, &record, &etag).await?;
        let month = now.format("%Y-%m").to_string();
        let rec = record.clone();
        let report = self
            .update_month(&month, |r| r.upsert_failover(rec.clone()))
            .await?;
        for d in failover_metric_documents(self.common, &record) {
            d.emit();
        }
        tracing::info!(rehearsal_id = %id, success = record.success, failures = %record.failures.join("; "), "failover rehearsal finished");
        Ok(serde_json::json!({
            "status": if record.success { "FAILOVER_PASSED" } else { "FAILOVER_FAILED" },
            "rehearsal_id": id,
            "report": report,
            "record": record,
        }))
    }

    /// Polls DescribeDBInstances until the instance is available; its endpoint.
    async fn wait_available(
        &self,
        id: &str,
        wait: std::time::Duration,
    ) -> Result<Option<crate::drill::Endpoint>, String> {
        let start = Instant::now();
        loop {
            match self.rds.describe(id).await {
                Ok(Some(v)) if v.status == "available" => return Ok(v.endpoint),
                Ok(Some(v)) if start.elapsed() >= wait => {
                    return Err(format!(
                        "{id} still {} after {} s",
                        v.status,
                        wait.as_secs()
                    ))
                }
                Ok(None) => return Err(format!("{id} does not exist")),
                Err(e) => return Err(e.to_string()),
                Ok(Some(_)) => tokio::time::sleep(std::time::Duration::from_secs(10)).await,
            }
        }
    }
}

fn failed_verification(why: &str) -> Verification {
    Verification {
        passed: false,
        failures: vec![why.to_string()],
        ..Verification::default()
    }
}

/// The EMF documents of a finished drill (docs/dr-restore.md#metrics; a test holds the names
/// to that table).
pub fn drill_metric_documents(common: &CommonConfig, s: &DrillState) -> Vec<Emf> {
    let t = crate::drill::timings(s);
    let mut e = Emf::new(common).dimension("drill", "restore");
    let success = s.phase == Phase::Done && s.failure.is_none();
    e.metric(
        "dr_drill_success",
        if success { 1.0 } else { 0.0 },
        Unit::Count,
    );
    if let Some(x) = t.restore_seconds {
        e.metric("dr_restore_duration_seconds", x, Unit::Seconds);
    }
    if let Some(x) = t.total_seconds {
        e.metric("dr_drill_duration_seconds", x, Unit::Seconds);
    }
    if let Some(r) = s.verification.as_ref().and_then(|v| v.rpo.as_ref()) {
        if let Some(x) = r.rpo_seconds {
            e.metric("dr_rpo_seconds", x, Unit::Seconds);
        }
        if let Some(x) = r.recovery_point_age_seconds {
            e.metric("dr_recovery_point_age_seconds", x, Unit::Seconds);
        }
    }
    e.property("drill_id", s.drill_id.clone())
        .property("source", s.source.clone())
        .property("phase", s.phase.as_str())
        .property("failure", s.failure.clone().unwrap_or_default());
    vec![e]
}

pub fn failover_metric_documents(common: &CommonConfig, r: &FailoverRecord) -> Vec<Emf> {
    let mut e = Emf::new(common).dimension("drill", "failover");
    e.metric(
        "dr_drill_success",
        if r.success { 1.0 } else { 0.0 },
        Unit::Count,
    );
    if let Some(x) = r.failover_seconds {
        e.metric("dr_failover_duration_seconds", x, Unit::Seconds);
    }
    if let Some(x) = r
        .data_currency
        .as_ref()
        .and_then(|v| v.rpo.as_ref())
        .and_then(|r| r.rpo_seconds)
    {
        e.metric("dr_rpo_seconds", x, Unit::Seconds);
    }
    e.property("rehearsal_id", r.rehearsal_id.clone())
        .property("target", r.target.clone())
        .property("failure", r.failures.join("; "));
    vec![e]
}
