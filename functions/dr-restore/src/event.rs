//! What an event asks for: RDS events through EventBridge, the schedules' payloads and manual
//! invocations (docs/dr-restore.md#payloads). Malformed input is `InvalidInput` naming the field.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use shared::SuiteError;

use crate::drill::RdsEvent;

#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    pub drill_id: Option<String>,
    pub restore_time: Option<DateTime<Utc>>,
    pub keep: Option<bool>,
    pub triggered_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FailoverRequest {
    pub rehearsal_id: Option<String>,
    pub dry_run: bool,
    pub confirm: Option<String>,
    pub triggered_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    Start(StartRequest),
    /// Advance one drill now (manual, or a test).
    Step(String),
    /// The safety-net schedule: advance every unfinished drill.
    Poll,
    Status(String),
    Rds(RdsEvent),
    Failover(FailoverRequest),
    Ignore(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manual {
    action: String,
    #[serde(default)]
    drill_id: Option<String>,
    #[serde(default)]
    restore_time: Option<String>,
    #[serde(default)]
    keep: Option<bool>,
    #[serde(default)]
    triggered_by: Option<String>,
    /// Scheduler payloads: `"source": "scheduler"`, `"scheduled_time": "<aws.scheduler.scheduled-time>"`.
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    scheduled_time: Option<String>,
    #[serde(default)]
    rehearsal_id: Option<String>,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default)]
    confirm: Option<String>,
}

const ACTIONS: &str = "start, step, poll, status, failover";

fn id_field(field: &str, v: Option<String>) -> Result<Option<String>, SuiteError> {
    match v {
        None => Ok(None),
        // RDS lower-cases identifiers; the drill id is part of one.
        Some(s) => {
            let s = s.trim().to_ascii_lowercase();
            if s.is_empty()
                || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                || s.contains("--")
                || s.ends_with('-')
                || s.len() > 40
            {
                return Err(SuiteError::invalid(
                    field,
                    format!("{s:?} is not usable in an RDS identifier"),
                    "use letters, digits and single hyphens, at most 40 characters, e.g. \"2026q4\"",
                ));
            }
            Ok(Some(s))
        }
    }
}

pub fn parse_event(v: &Value) -> Result<Job, SuiteError> {
    if v.get("detail-type").is_some() || v.get("source").and_then(Value::as_str) == Some("aws.rds")
    {
        return parse_eventbridge(v);
    }
    let m: Manual = serde_json::from_value(v.clone()).map_err(|e| {
        SuiteError::invalid(
            "payload",
            e.to_string(),
            format!("send {{\"action\": ...}} with one of {ACTIONS}, or an RDS event"),
        )
    })?;
    let triggered_by =
        m.triggered_by
            .clone()
            .unwrap_or_else(|| match (&m.source, &m.scheduled_time) {
                (Some(s), Some(t)) => format!("{s} at {t}"),
                (Some(s), None) => s.clone(),
                _ => "manual invoke".into(),
            });
    let drill_id = id_field("drill_id", m.drill_id)?;
    let need_id = |what: &str| {
        drill_id.clone().ok_or_else(|| {
            SuiteError::invalid(
                "drill_id",
                format!("action {what} needs the drill"),
                "send {\"action\": \"step\", \"drill_id\": \"2026q4\"}",
            )
        })
    };
    match m.action.as_str() {
        "start" => {
            let restore_time = match m.restore_time.as_deref() {
                None | Some("latest") => None,
                Some(t) => Some(
                    DateTime::parse_from_rfc3339(t)
                        .map_err(|e| {
                            SuiteError::invalid(
                                "restore_time",
                                format!("{t:?}: {e}"),
                                "send an RFC 3339 time like \"2026-11-27T09:30:00Z\", or omit it for the latest restorable time",
                            )
                        })?
                        .with_timezone(&Utc),
                ),
            };
            Ok(Job::Start(StartRequest {
                drill_id,
                restore_time,
                keep: m.keep,
                triggered_by,
            }))
        }
        "step" => Ok(Job::Step(need_id("step")?)),
        "status" => Ok(Job::Status(need_id("status")?)),
        "poll" => Ok(Job::Poll),
        "failover" => Ok(Job::Failover(FailoverRequest {
            rehearsal_id: id_field("rehearsal_id", m.rehearsal_id)?,
            // A rehearsal is a dry run unless the payload says otherwise.
            dry_run: m.dry_run.unwrap_or(true),
            confirm: m.confirm,
            triggered_by,
        })),
        other => Err(SuiteError::invalid(
            "action",
            format!("{other:?} is not an action"),
            format!("use one of {ACTIONS}"),
        )),
    }
}

fn parse_eventbridge(v: &Value) -> Result<Job, SuiteError> {
    let dt = v["detail-type"].as_str().unwrap_or_default();
    if v["source"].as_str() != Some("aws.rds") {
        return Ok(Job::Ignore(format!(
            "EventBridge event from {} ({dt}) is not for this function",
            v["source"].as_str().unwrap_or("?")
        )));
    }
    if dt != "RDS DB Instance Event" && dt != "RDS DB Cluster Event" {
        return Ok(Job::Ignore(format!(
            "{dt}: only instance and cluster events move a drill"
        )));
    }
    let d = &v["detail"];
    let source_identifier = d["SourceIdentifier"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if source_identifier.is_empty() {
        return Err(SuiteError::invalid(
            "detail.SourceIdentifier",
            "missing in the RDS event",
            "send the event EventBridge delivers (detail.SourceIdentifier names the instance)",
        ));
    }
    Ok(Job::Rds(RdsEvent {
        id: v["id"].as_str().unwrap_or_default().to_string(),
        source_identifier,
        event_id: d["EventID"].as_str().unwrap_or_default().to_string(),
        categories: d["EventCategories"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        message: d["Message"].as_str().unwrap_or_default().to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads() {
        let j =
            parse_event(&json!({"action": "start", "drill_id": "Q4-2026", "keep": true})).unwrap();
        let Job::Start(s) = j else { panic!() };
        assert_eq!(s.drill_id.as_deref(), Some("q4-2026"));
        assert_eq!(s.keep, Some(true));
        assert_eq!(s.triggered_by, "manual invoke");
        let j = parse_event(&json!({"action": "start", "source": "scheduler", "scheduled_time": "2026-10-01T06:00:00Z", "restore_time": "2026-10-01T05:00:00Z"})).unwrap();
        let Job::Start(s) = j else { panic!() };
        assert_eq!(s.triggered_by, "scheduler at 2026-10-01T06:00:00Z");
        assert!(s.restore_time.is_some());
        assert_eq!(parse_event(&json!({"action": "poll"})).unwrap(), Job::Poll);
        let Job::Failover(f) = parse_event(&json!({"action": "failover"})).unwrap() else {
            panic!()
        };
        assert!(f.dry_run, "dry run by default");
    }

    #[test]
    fn bad_payloads_name_the_field() {
        for (v, field) in [
            (json!({"action": "begin"}), "action"),
            (
                json!({"action": "start", "restore_time": "yesterday"}),
                "restore_time",
            ),
            (json!({"action": "start", "drill_id": "a_b"}), "drill_id"),
            (json!({"action": "step"}), "drill_id"),
            (json!({"action": "start", "kep": true}), "kep"),
            (
                json!({"detail-type": "RDS DB Instance Event", "source": "aws.rds", "detail": {}}),
                "SourceIdentifier",
            ),
        ] {
            let e = parse_event(&v).unwrap_err().to_string();
            assert!(e.contains(field), "{v}: {e}");
        }
    }

    #[test]
    fn rds_events() {
        let v = json!({"id": "e1", "detail-type": "RDS DB Instance Event", "source": "aws.rds",
            "detail": {"SourceIdentifier": "dr-drill-q4", "EventID": "RDS-EVENT-0019",
                       "EventCategories": ["restoration"], "Message": "Restored from DB instance app-db to 2026-11-27 09:57:00"}});
        let Job::Rds(e) = parse_event(&v).unwrap() else {
            panic!()
        };
        assert_eq!(e.source_identifier, "dr-drill-q4");
        assert_eq!(e.event_id, "RDS-EVENT-0019");
        assert!(!e.is_failure());
        let snap =
            json!({"detail-type": "RDS DB Snapshot Event", "source": "aws.rds", "detail": {}});
        assert!(matches!(parse_event(&snap).unwrap(), Job::Ignore(_)));
    }
}
