//! The release gate's writes: the gate and the baseline as conditional read-modify-writes,
//! the REL incident, and the order they happen in.
//!
//! Why this order (docs/loadtest-coordinator.md, "Crash safety"):
//!
//! 1. **The transition**: the gate is read with its ETag, the run applied to it
//!    ([`next_gate`]) and written back with `If-Match` (`If-None-Match: *` when there is no
//!    gate yet). Another finalizer's write in between (a 412) makes this one read the gate
//!    again and apply its run on top of the other's: no update is lost. Nothing else happens
//!    before this write lands, so a lost race leaves nothing behind. A transition that opens
//!    an incident writes `BLOCK` with `incident_run_id` = this run and no number yet.
//! 2. **The number**: only the run named by `incident_run_id` takes one, with a create-only
//!    write of `incidents/REL-####.json` (an earlier delivery's record is found and reused),
//!    and writes it into the gate (conditional again).
//! 3. **The alert**: then the incident is published.
//! 4. **The baseline**: recorded the same way (conditional, idempotent per run id).
//!
//! A redelivered run is a replay of step 1 (the gate remembers the runs it applied) and goes
//! on with steps 2 and 3 if it is the run that opened the block: a crash anywhere leaves no
//! second REL and no record the gate does not name, and the alert goes out (again, at worst:
//! alert-router dedups on the incident id). The one state a crash can leave until the
//! redelivery is `BLOCK` with no number yet: still a block.

use bytes::Bytes;
use shared::state::{decode, encode};
use shared::{SuiteError, SuiteResult};

use crate::gate::{
    incident_id, incident_number, next_gate, Baseline, BaselineRun, GateState, Incident, RunVerdict,
};
use crate::port::{Invoker, Notifier, Store};
use crate::run::{Engine, RunDoc};

const JSON: &str = "application/json";
/// Conditional write attempts before giving up (each loss means another writer's update
/// landed; the invocation's retry starts over).
const ATTEMPTS: usize = 20;

/// What applying one run to its gate did.
#[derive(Debug, Clone)]
pub struct GateApplied {
    /// The gate before this run (as last read).
    pub prev: Option<GateState>,
    pub gate: GateState,
    /// The run had been applied already: nothing was written.
    pub replay: bool,
    /// The incident this run's transition opened, numbered and published (again, on a
    /// redelivery) by [`Engine::apply_gate`].
    pub opened: Option<String>,
}

/// What an incident record needs besides its number.
pub struct IncidentDraft<'a> {
    pub run: &'a RunDoc,
    pub p95_ms: f64,
    pub objective: &'a str,
    pub report_uri: &'a str,
    pub opened_at: String,
}

fn lost(what: &str, key: &str) -> SuiteError {
    SuiteError::Internal(format!(
        "{what} {key}: {ATTEMPTS} conditional writes in a row lost to other writers (the invocation's retry starts over)"
    ))
}

impl<S: Store, I: Invoker, N: Notifier> Engine<'_, S, I, N> {
    fn incidents_prefix(&self) -> String {
        format!("{}incidents/", self.settings.prefix)
    }

    /// The incident record `run` opened, if one exists: records are read newest first and
    /// the scan stops at the first one opened before the run was created.
    async fn incident_of_run(&self, run: &RunDoc) -> SuiteResult<Option<Incident>> {
        let prefix = self.incidents_prefix();
        let mut numbers: Vec<u64> = self
            .store
            .list(&prefix)
            .await?
            .iter()
            .filter_map(|k| incident_number(k))
            .collect();
        numbers.sort_unstable_by(|a, b| b.cmp(a));
        for n in numbers {
            let key = format!("{prefix}{}.json", incident_id(n));
            let Some(b) = self.store.get(&key).await? else {
                continue;
            };
            let Ok(inc) = serde_json::from_slice::<Incident>(&b) else {
                continue;
            };
            if inc.run_id == run.run_id && inc.scenario == run.scenario.name {
                return Ok(Some(inc));
            }
            if inc.opened_at < run.created_at {
                break;
            }
        }
        Ok(None)
    }

    /// Takes the next REL number with a create-only write (two openers never get the same
    /// number: the loser moves on to the next). Not published here.
    async fn allocate_incident(
        &self,
        gate: &GateState,
        d: &IncidentDraft<'_>,
        gate_key: &str,
    ) -> SuiteResult<Incident> {
        let prefix = self.incidents_prefix();
        let mut next = self
            .store
            .list(&prefix)
            .await?
            .iter()
            .filter_map(|k| incident_number(k))
            .max()
            .unwrap_or(0)
            + 1;
        for _ in 0..50 {
            let inc = Incident {
                id: incident_id(next),
                scenario: d.run.scenario.name.clone(),
                run_id: d.run.run_id.clone(),
                opened_at: d.opened_at.clone(),
                reason: gate.reason.clone(),
                p95_ms: d.p95_ms,
                p95_objective: d.objective.to_string(),
                consecutive_p95_failures: gate.consecutive_p95_failures,
                report: d.report_uri.to_string(),
                gate: format!("s3://{}/{gate_key}", self.settings.bucket),
            };
            let body = serde_json::to_vec_pretty(&inc)
                .map(Bytes::from)
                .map_err(|e| SuiteError::Internal(e.to_string()))?;
            if self
                .store
                .create(&format!("{prefix}{}.json", inc.id), body, JSON)
                .await?
            {
                return Ok(inc);
            }
            next += 1;
        }
        Err(SuiteError::Internal(
            "could not allocate an incident number after 50 attempts".into(),
        ))
    }

    async fn publish_incident(&self, inc: &Incident) {
        let subject = format!(
            "{} release blocked: {} p95 {:.0} ms",
            inc.id, inc.scenario, inc.p95_ms
        );
        let message = serde_json::to_string_pretty(inc).unwrap_or_default();
        match self.notifier.publish(&subject, &message).await {
            Ok(mid) => {
                tracing::warn!(incident = %inc.id, message_id = ?mid, "incident opened and published")
            }
            // The record and the BLOCK are in S3 either way; a redelivery of the run publishes
            // again, nothing else does: say it loudly.
            Err(e) => {
                tracing::error!(incident = %inc.id, error = %e, "incident opened but SNS publish failed")
            }
        }
    }

    /// Reads the gate with its ETag.
    async fn read_gate(&self, key: &str) -> SuiteResult<(Option<GateState>, Option<String>)> {
        match self.store.get_tagged(key).await? {
            None => Ok((None, None)),
            Some(t) => {
                let g = decode::<GateState>(&t.body).map_err(|e| {
                    SuiteError::bad_object(
                        &self.settings.bucket,
                        key,
                        format!("not a release gate: {e}"),
                    )
                })?;
                Ok((Some(g), Some(t.etag)))
            }
        }
    }

    /// Writes `value` (stamped with a write token) if the object is still at `etag`, or
    /// creates it if `etag` is None; false when another writer was first.
    async fn write_if_unchanged<T: serde::Serialize>(
        &self,
        key: &str,
        value: &T,
        etag: Option<&str>,
    ) -> SuiteResult<bool> {
        let body = encode(value)?;
        match etag {
            Some(e) => self.store.replace(key, body, JSON, e).await,
            None => self.store.create(key, body, JSON).await,
        }
    }

    /// Applies the run's verdict to its gate, then numbers and publishes the incident its
    /// transition opened (steps 1–3 of the module doc).
    pub async fn apply_gate(
        &self,
        gate_key: &str,
        verdict: &RunVerdict,
        draft: IncidentDraft<'_>,
    ) -> SuiteResult<GateApplied> {
        // 1. The transition.
        let mut applied = None;
        for _ in 0..ATTEMPTS {
            let (prev, etag) = self.read_gate(gate_key).await?;
            let step = next_gate(prev.as_ref(), verdict);
            if step.replay
                || self
                    .write_if_unchanged(gate_key, &step.state, etag.as_deref())
                    .await?
            {
                applied = Some(GateApplied {
                    prev,
                    gate: step.state,
                    replay: step.replay,
                    opened: None,
                });
                break;
            }
            tracing::info!(gate = gate_key, run_id = %verdict.run_id, "gate changed under this finalizer: applying the run again on the newer state");
        }
        let Some(mut applied) = applied else {
            return Err(lost("release gate", gate_key));
        };
        if applied.gate.incident_run_id.as_deref() != Some(verdict.run_id.as_str()) {
            return Ok(applied);
        }
        // 2. This run opened the block: its incident, numbered once.
        let inc = match applied.gate.incident.clone() {
            Some(id) => match self.incident(&id).await? {
                Some(i) => i,
                None => {
                    // Numbered, and its record since removed by hand: nothing to publish.
                    tracing::warn!(incident = %id, "the gate names an incident whose record is gone: not published again");
                    return Ok(applied);
                }
            },
            None => {
                let i = match self.incident_of_run(draft.run).await? {
                    Some(i) => i,
                    None => {
                        self.allocate_incident(&applied.gate, &draft, gate_key)
                            .await?
                    }
                };
                applied.gate = self
                    .attach_incident(gate_key, &verdict.run_id, &i.id)
                    .await?;
                i
            }
        };
        // 3. The alert (again, on a redelivery).
        self.publish_incident(&inc).await;
        applied.opened = Some(inc.id);
        Ok(applied)
    }

    /// The record of incident `id`.
    async fn incident(&self, id: &str) -> SuiteResult<Option<Incident>> {
        let key = format!("{}{id}.json", self.incidents_prefix());
        match self.store.get(&key).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| SuiteError::bad_object(&self.settings.bucket, &key, e.to_string())),
        }
    }

    /// Writes the incident's number into the gate of the block `run_id` opened. If that block
    /// is already over (a passing run cleared it in between), the incident becomes the gate's
    /// `last_incident`: it happened, and stays on record.
    async fn attach_incident(&self, key: &str, run_id: &str, id: &str) -> SuiteResult<GateState> {
        for _ in 0..ATTEMPTS {
            let (cur, etag) = self.read_gate(key).await?;
            let Some(mut g) = cur else {
                return Err(SuiteError::Internal(format!(
                    "the release gate {key} vanished while incident {id} was being opened"
                )));
            };
            if g.incident.as_deref() == Some(id) || g.last_incident.as_deref() == Some(id) {
                return Ok(g);
            }
            if g.incident_run_id.as_deref() == Some(run_id) && g.incident.is_none() {
                g.incident = Some(id.to_string());
            } else {
                g.last_incident = Some(id.to_string());
            }
            if self.write_if_unchanged(key, &g, etag.as_deref()).await? {
                return Ok(g);
            }
        }
        Err(lost("release gate", key))
    }

    /// The baseline as last written (an unreadable object counts as empty: it is history,
    /// and the next write replaces it).
    pub async fn load_baseline(&self, key: &str) -> SuiteResult<Baseline> {
        Ok(match self.store.get(key).await? {
            Some(b) => decode(&b).unwrap_or_default(),
            None => Baseline::default(),
        })
    }

    /// Records the run in the baseline (step 5): conditional, idempotent per run id.
    pub async fn record_baseline(
        &self,
        key: &str,
        scenario: &str,
        run: BaselineRun,
    ) -> SuiteResult<()> {
        for _ in 0..ATTEMPTS {
            let cur = self.store.get_tagged(key).await?;
            let mut b: Baseline = cur
                .as_ref()
                .and_then(|t| decode(&t.body).ok())
                .unwrap_or_default();
            if b.has(&run.run_id) {
                return Ok(());
            }
            b.scenario = scenario.to_string();
            b.record(run.clone());
            if self
                .write_if_unchanged(key, &b, cur.as_ref().map(|t| t.etag.as_str()))
                .await?
            {
                return Ok(());
            }
        }
        Err(lost("baseline", key))
    }
}
