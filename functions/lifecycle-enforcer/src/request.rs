//! The invocation payloads (schedule, manual invoke, continuation) and the function's
//! configured defaults. Every problem names the field and the fix.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::config::Vars;
use shared::SuiteError;

use crate::policy::{Policy, PolicyDoc};

/// What the environment sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub primary_bucket: String,
    pub replica_bucket: Option<String>,
    pub policy: Policy,
}

const BUCKET_FIX: &str = "use a bucket name of 3-63 lowercase letters, digits, dots and hyphens";

pub fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.as_bytes()[0].is_ascii_alphanumeric()
}

impl Defaults {
    pub fn from_vars(vars: &Vars) -> Result<Self, SuiteError> {
        let primary_bucket = vars.required(
            "PRIMARY_BUCKET",
            "the bucket whose objects and rules are enforced",
        )?;
        if !valid_bucket(&primary_bucket) {
            return Err(SuiteError::Config {
                var: "PRIMARY_BUCKET".into(),
                problem: format!("{primary_bucket:?} is not a bucket name; {BUCKET_FIX}"),
            });
        }
        let replica_bucket = vars.get("REPLICA_BUCKET").map(str::to_string);
        if let Some(r) = &replica_bucket {
            if !valid_bucket(r) || r == &primary_bucket {
                return Err(SuiteError::Config {
                    var: "REPLICA_BUCKET".into(),
                    problem: format!("{r:?} is not a bucket name different from PRIMARY_BUCKET"),
                });
            }
        }
        let doc = match vars.get("LIFECYCLE_POLICY") {
            None => PolicyDoc::playbook(),
            Some(raw) => {
                let de = &mut serde_json::Deserializer::from_str(raw);
                serde_path_to_error::deserialize::<_, PolicyDoc>(de).map_err(|e| {
                    SuiteError::Config {
                        var: "LIFECYCLE_POLICY".into(),
                        problem: format!("not a policy document at `{}`: {}", e.path(), e.inner()),
                    }
                })?
            }
        };
        let policy = Policy::validate(doc).map_err(|e| e.into_config("LIFECYCLE_POLICY"))?;
        Ok(Defaults {
            primary_bucket,
            replica_bucket,
            policy,
        })
    }

    /// Buckets whose S3 events are acted on.
    pub fn managed_buckets(&self) -> Vec<String> {
        std::iter::once(self.primary_bucket.clone())
            .chain(self.replica_bucket.clone())
            .collect()
    }
}

/// The payload as sent. Unknown fields are refused so that a typo does not silently fall back
/// to a default.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// `sweep` (fix object tags) or `reconcile` (compare and fix lifecycle rules).
    pub action: Option<String>,
    /// Buckets to act on. Sweep: default the primary; reconcile: the primary and the DR bucket.
    pub buckets: Option<Vec<String>>,
    /// Sweep: report what would change, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Reconcile: write the desired rules (keeping foreign ones). Without it, only report.
    #[serde(default)]
    pub apply: bool,
    /// A policy document instead of `LIFECYCLE_POLICY` (validated the same way).
    pub policy: Option<Value>,
    pub run_id: Option<String>,
    /// Sweep: stop and checkpoint after this many seconds even if the deadline is further.
    pub max_runtime_seconds: Option<u64>,
    /// Sweep: ListObjectsV2 page size (1-1000).
    pub page_size: Option<i32>,
    /// Sweep: run again even if the run id already has a report.
    #[serde(default)]
    pub force: bool,
    pub scheduled_time: Option<String>,
    /// Set by the function itself when it continues a checkpointed sweep.
    pub resume: Option<Resume>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    pub run_id: String,
    pub sequence: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRequest {
    pub run_id: String,
    pub buckets: Vec<String>,
    pub dry_run: bool,
    pub policy: Policy,
    pub page_size: Option<i32>,
    pub force: bool,
    pub scheduled_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileRequest {
    pub run_id: String,
    pub buckets: Vec<String>,
    pub apply: bool,
    pub policy: Policy,
    pub scheduled_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    Sweep(Box<SweepRequest>),
    Resume(Resume),
    Reconcile(Box<ReconcileRequest>),
}

pub fn parse_payload(event: &Value) -> Result<Payload, SuiteError> {
    if !event.is_object() {
        return Err(SuiteError::invalid(
            "payload",
            "is not a JSON object",
            "send e.g. {\"action\": \"sweep\"}; see events/lifecycle-enforcer/",
        ));
    }
    serde_path_to_error::deserialize::<_, Payload>(event.clone()).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "payload".to_string()
        } else {
            path
        };
        SuiteError::invalid(
            field,
            e.inner().to_string(),
            "see events/lifecycle-enforcer/ and docs/lifecycle-enforcer.md for the payload's shape",
        )
    })
}

fn check_run_id(id: &str) -> Result<(), SuiteError> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
    {
        return Err(SuiteError::invalid(
            "run_id",
            format!("{id:?} is not usable in an S3 key"),
            "use 1-128 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok(())
}

impl Payload {
    pub fn validate(
        self,
        d: &Defaults,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Job, SuiteError> {
        if let Some(r) = self.resume {
            check_run_id(&r.run_id).map_err(|_| {
                SuiteError::invalid(
                    "resume.run_id",
                    format!("{:?} is not a run id", r.run_id),
                    "send the resume payload the function returned",
                )
            })?;
            return Ok(Job::Resume(r));
        }
        let action = self.action.as_deref().ok_or_else(|| {
            SuiteError::invalid(
                "action",
                "missing",
                "send {\"action\": \"sweep\"} or {\"action\": \"reconcile\"}, or an S3 event (`Records`)",
            )
        })?;
        let policy = match self.policy {
            None => d.policy.clone(),
            Some(v) => {
                let doc = serde_path_to_error::deserialize::<_, PolicyDoc>(v).map_err(|e| {
                    SuiteError::invalid(
                        format!("policy.{}", e.path())
                            .trim_end_matches('.')
                            .to_string(),
                        e.inner().to_string(),
                        "see docs/lifecycle-enforcer.md#policy for the policy document",
                    )
                })?;
                Policy::validate(doc).map_err(|e| e.into_input("policy"))?
            }
        };
        let default_buckets = match action {
            "sweep" => vec![d.primary_bucket.clone()],
            _ => d.managed_buckets(),
        };
        let buckets = self.buckets.unwrap_or(default_buckets);
        if buckets.is_empty() {
            return Err(SuiteError::invalid(
                "buckets",
                "is an empty list",
                "name at least one bucket, or leave the field out",
            ));
        }
        for (i, b) in buckets.iter().enumerate() {
            if !valid_bucket(b) {
                return Err(SuiteError::invalid(
                    format!("buckets[{i}]"),
                    format!("{b:?} is not a valid bucket name"),
                    BUCKET_FIX,
                ));
            }
            if buckets[..i].contains(b) {
                return Err(SuiteError::invalid(
                    format!("buckets[{i}]"),
                    format!("{b:?} is listed twice"),
                    "name each bucket once",
                ));
            }
        }
        if let Some(id) = &self.run_id {
            check_run_id(id)?;
        }
        let refuse = |field: &str, set: bool| -> Result<(), SuiteError> {
            if set {
                Err(SuiteError::invalid(
                    field,
                    format!("does not apply to action {action:?}"),
                    "leave it out",
                ))
            } else {
                Ok(())
            }
        };
        match action {
            "sweep" => {
                refuse("apply", self.apply)?;
                if let Some(n) = self.page_size {
                    if !(1..=1000).contains(&n) {
                        return Err(SuiteError::invalid(
                            "page_size",
                            format!("{n} is out of range"),
                            "give 1 to 1000 (ListObjectsV2 MaxKeys)",
                        ));
                    }
                }
                let mut req = SweepRequest {
                    run_id: String::new(),
                    buckets,
                    dry_run: self.dry_run,
                    policy,
                    page_size: self.page_size,
                    force: self.force,
                    scheduled_time: self.scheduled_time,
                };
                req.run_id = match self.run_id {
                    Some(id) => id,
                    None => default_sweep_id(&req, now.date_naive()),
                };
                Ok(Job::Sweep(Box::new(req)))
            }
            "reconcile" => {
                refuse("dry_run", self.dry_run)?;
                refuse("page_size", self.page_size.is_some())?;
                refuse("max_runtime_seconds", self.max_runtime_seconds.is_some())?;
                Ok(Job::Reconcile(Box::new(ReconcileRequest {
                    run_id: self.run_id.unwrap_or_else(|| {
                        format!("reconcile-{}", now.format("%Y%m%dT%H%M%S%3fZ"))
                    }),
                    buckets,
                    apply: self.apply,
                    policy,
                    scheduled_time: self.scheduled_time,
                })))
            }
            other => Err(SuiteError::invalid(
                "action",
                format!("{other:?} is not an action"),
                "use \"sweep\" or \"reconcile\"",
            )),
        }
    }
}

/// Same inputs on the same day → same run id, so a repeated nightly delivery replays the
/// report instead of sweeping twice.
fn default_sweep_id(req: &SweepRequest, today: chrono::NaiveDate) -> String {
    use sha2::{Digest, Sha256};
    let body = serde_json::json!({
        "b": req.buckets, "d": req.dry_run, "p": req.policy.doc(), "day": today.to_string(),
    });
    let h = Sha256::digest(body.to_string().as_bytes());
    format!("sweep-{}-{}", today.format("%Y%m%d"), &hex::encode(h)[..12])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaults() -> Defaults {
        Defaults::from_vars(&Vars::from_pairs([
            ("PRIMARY_BUCKET", "prod-files"),
            ("REPLICA_BUCKET", "dr-files"),
        ]))
        .unwrap()
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-11-27T02:30:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    fn job(v: Value) -> Result<Job, String> {
        parse_payload(&v)
            .and_then(|p| p.validate(&defaults(), now()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_per_action() {
        let Job::Sweep(s) = job(json!({"action": "sweep"})).unwrap() else {
            panic!()
        };
        assert_eq!(s.buckets, vec!["prod-files"]);
        assert!(s.run_id.starts_with("sweep-20261127-"));
        let Job::Sweep(s2) = job(json!({"action": "sweep"})).unwrap() else {
            panic!()
        };
        assert_eq!(s.run_id, s2.run_id);
        let Job::Reconcile(r) = job(json!({"action": "reconcile", "apply": true})).unwrap() else {
            panic!()
        };
        assert_eq!(r.buckets, vec!["prod-files", "dr-files"]);
        assert!(r.apply);
        assert!(matches!(
            job(json!({"resume": {"run_id": "r1", "sequence": 2}})).unwrap(),
            Job::Resume(_)
        ));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), "action"),
            (json!({"action": "sweeep"}), "action"),
            (json!({"action": "sweep", "dryrun": true}), "dryrun"),
            (json!({"action": "sweep", "buckets": []}), "buckets"),
            (
                json!({"action": "sweep", "buckets": ["Bad_Bucket"]}),
                "buckets[0]",
            ),
            (json!({"action": "sweep", "page_size": 0}), "page_size"),
            (json!({"action": "sweep", "apply": true}), "apply"),
            (json!({"action": "reconcile", "dry_run": true}), "dry_run"),
            (json!({"action": "sweep", "run_id": "a/b"}), "run_id"),
            (json!({"action": "sweep", "page_size": "x"}), "page_size"),
            (
                json!({"action": "reconcile", "policy": {"rules": [{"name": "a", "prefix": "a/", "transitions": [{"days": 10, "storage_class": "STANDARD_IA"}]}]}}),
                "policy.rules[0].transitions[0].days",
            ),
            (
                json!({"action": "reconcile", "policy": {"rules": [{"name": "a", "prefix": "a/", "expiration_dayz": 3}]}}),
                "policy.rules[0]",
            ),
            (json!([1]), "payload"),
        ];
        for (payload, field) in cases {
            let e = job(payload.clone()).unwrap_err();
            assert!(e.contains(&format!("field `{field}")), "{payload}: {e}");
        }
    }

    #[test]
    fn environment_policy_errors_name_the_variable_and_field() {
        let e = Defaults::from_vars(&Vars::from_pairs([
            ("PRIMARY_BUCKET", "p-b"),
            (
                "LIFECYCLE_POLICY",
                r#"{"rules": [{"name": "a", "prefix": "a/", "transitions": [{"days": 30, "storage_class": "STANDARD_IA"}, {"days": 40, "storage_class": "GLACIER"}]}]}"#,
            ),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("LIFECYCLE_POLICY") && e.contains("rules[0].transitions[1].days"),
            "{e}"
        );
        let e = Defaults::from_vars(&Vars::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("PRIMARY_BUCKET"), "{e}");
    }
}
