//! The invocation payload (schedule, manual invoke, continuation) and its validation against
//! the function's configured defaults. Every problem names the field and the fix.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::config::Vars;
use shared::SuiteError;

/// What the function's environment sets; a payload field overrides its default.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub primary_bucket: Option<String>,
    pub replica_bucket: Option<String>,
    pub prefixes: Vec<String>,
    pub source: String,
    pub primary_inventory: Option<String>,
    pub replica_inventory: Option<String>,
    pub lag_allowance_hours: f64,
    pub drift_threshold_percent: f64,
}

impl Defaults {
    pub fn from_vars(vars: &Vars) -> Result<Self, SuiteError> {
        let prefixes = vars.list("PREFIXES");
        Ok(Defaults {
            primary_bucket: vars.get("PRIMARY_BUCKET").map(str::to_string),
            replica_bucket: vars.get("REPLICA_BUCKET").map(str::to_string),
            prefixes: if prefixes.is_empty() {
                vec!["attachments/".into(), "exports/".into()]
            } else {
                prefixes
            },
            source: vars.or("SOURCE", "list"),
            primary_inventory: vars.get("PRIMARY_INVENTORY").map(str::to_string),
            replica_inventory: vars.get("REPLICA_INVENTORY").map(str::to_string),
            lag_allowance_hours: vars.parse_or(
                "LAG_ALLOWANCE_HOURS",
                24.0,
                "a number of hours, e.g. 24",
            )?,
            drift_threshold_percent: vars.parse_or(
                "DRIFT_THRESHOLD_PERCENT",
                0.1,
                "a percentage, e.g. 0.1",
            )?,
        })
    }
}

/// The payload as sent. Unknown fields are refused so that a typo does not silently fall back
/// to a default.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    pub primary_bucket: Option<String>,
    pub replica_bucket: Option<String>,
    pub prefixes: Option<Vec<String>>,
    /// `list` (ListObjectsV2) or `inventory` (the newest S3 Inventory report of each bucket).
    pub source: Option<String>,
    /// Where a bucket's inventory reports land: `s3://dest-bucket/prefix/source-bucket/config-id/`.
    pub primary_inventory: Option<String>,
    pub replica_inventory: Option<String>,
    /// A specific report instead of the newest: `s3://…/manifest.json`.
    pub primary_manifest: Option<String>,
    pub replica_manifest: Option<String>,
    pub lag_allowance_hours: Option<f64>,
    pub drift_threshold_percent: Option<f64>,
    /// Makes repeated deliveries of one scheduled run idempotent (EventBridge Scheduler:
    /// `<aws.scheduler.execution-id>`). Default: derived from the inputs and the day.
    pub run_id: Option<String>,
    /// Reference time for the lag allowance (RFC 3339); default now, or in inventory mode the
    /// primary report's creation time.
    pub now: Option<String>,
    /// Stop and checkpoint after this many seconds even if the Lambda deadline is further.
    pub max_runtime_seconds: Option<u64>,
    /// ListObjectsV2 page size (MaxKeys, 1-1000; default 1000). Smaller pages checkpoint
    /// more finely.
    pub page_size: Option<i32>,
    /// Recompute even if a finished report for this run id exists.
    #[serde(default)]
    pub force: bool,
    /// Set by the function itself when it continues a checkpointed run.
    pub resume: Option<Resume>,
    /// EventBridge Scheduler's scheduled time, kept in the report when given.
    pub scheduled_time: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    pub run_id: String,
    /// The checkpoint sequence this continuation expects; a stale duplicate is a no-op.
    pub sequence: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct S3Location {
    pub bucket: String,
    pub key: String,
}

impl S3Location {
    pub fn parse(field: &str, uri: &str) -> Result<Self, SuiteError> {
        let rest = uri.strip_prefix("s3://").ok_or_else(|| {
            SuiteError::invalid(
                field,
                format!("{uri:?} is not an s3:// URI"),
                "write it as s3://bucket/prefix/",
            )
        })?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(SuiteError::invalid(
                field,
                format!("{uri:?} has no bucket"),
                "write it as s3://bucket/prefix/",
            ));
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// Where one side's inventory comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InventorySource {
    /// The newest complete report under this location.
    Latest(S3Location),
    /// This `manifest.json`.
    Manifest(S3Location),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Source {
    List,
    Inventory {
        primary: InventorySource,
        replica: InventorySource,
    },
}

/// A validated request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub primary_bucket: String,
    pub replica_bucket: String,
    pub prefixes: Vec<String>,
    pub source: Source,
    pub lag_secs: i64,
    pub lag_allowance_hours: f64,
    /// As a fraction: 0.001 for 0.1 %.
    pub threshold: f64,
    pub threshold_percent: f64,
    pub run_id: String,
    pub now: Option<DateTime<Utc>>,
    pub max_runtime_seconds: Option<u64>,
    pub page_size: Option<i32>,
    pub force: bool,
    pub scheduled_time: Option<String>,
}

const BUCKET_FIX: &str = "use a bucket name of 3-63 lowercase letters, digits, dots and hyphens";

fn check_bucket(field: &str, b: &str) -> Result<(), SuiteError> {
    let ok = (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(SuiteError::invalid(
            field,
            format!("{b:?} is not a valid bucket name"),
            BUCKET_FIX,
        ))
    }
}

impl Payload {
    pub fn validate(self, d: &Defaults, today: chrono::NaiveDate) -> Result<Request, SuiteError> {
        let primary_bucket = self
            .primary_bucket
            .or_else(|| d.primary_bucket.clone())
            .ok_or_else(|| {
                SuiteError::invalid(
                    "primary_bucket",
                    "not given and PRIMARY_BUCKET is not set",
                    "name the primary bucket",
                )
            })?;
        let replica_bucket = self
            .replica_bucket
            .or_else(|| d.replica_bucket.clone())
            .ok_or_else(|| {
                SuiteError::invalid(
                    "replica_bucket",
                    "not given and REPLICA_BUCKET is not set",
                    "name the DR bucket",
                )
            })?;
        check_bucket("primary_bucket", &primary_bucket)?;
        check_bucket("replica_bucket", &replica_bucket)?;
        if primary_bucket == replica_bucket {
            return Err(SuiteError::invalid(
                "replica_bucket",
                "is the same bucket as primary_bucket",
                "name the DR bucket, not the primary",
            ));
        }

        let prefixes = self.prefixes.unwrap_or_else(|| d.prefixes.clone());
        if prefixes.is_empty() {
            return Err(SuiteError::invalid(
                "prefixes",
                "is an empty list",
                "give at least one prefix, e.g. [\"attachments/\"]",
            ));
        }
        for (i, p) in prefixes.iter().enumerate() {
            if p.is_empty() && prefixes.len() > 1 {
                return Err(SuiteError::invalid(
                    format!("prefixes[{i}]"),
                    "the empty prefix (the whole bucket) overlaps every other prefix",
                    "use [\"\"] alone for the whole bucket, or only non-empty prefixes",
                ));
            }
            if p.starts_with('/') {
                return Err(SuiteError::invalid(
                    format!("prefixes[{i}]"),
                    format!("{p:?} starts with '/'"),
                    "S3 keys have no leading slash: write e.g. \"exports/\"",
                ));
            }
            for (j, q) in prefixes.iter().enumerate() {
                if i != j && q.starts_with(p.as_str()) && !p.is_empty() {
                    return Err(SuiteError::invalid(
                        format!("prefixes[{j}]"),
                        format!("{q:?} lies inside {p:?}; its objects would be counted twice"),
                        "drop one of the overlapping prefixes",
                    ));
                }
            }
        }

        let lag_allowance_hours = self.lag_allowance_hours.unwrap_or(d.lag_allowance_hours);
        if !(0.0..=24.0 * 365.0).contains(&lag_allowance_hours) || !lag_allowance_hours.is_finite()
        {
            return Err(SuiteError::invalid(
                "lag_allowance_hours",
                format!("{lag_allowance_hours} is out of range"),
                "give hours between 0 and 8760, e.g. 24",
            ));
        }
        let threshold_percent = self
            .drift_threshold_percent
            .unwrap_or(d.drift_threshold_percent);
        if !(0.0..=100.0).contains(&threshold_percent) || !threshold_percent.is_finite() {
            return Err(SuiteError::invalid(
                "drift_threshold_percent",
                format!("{threshold_percent} is not a percentage"),
                "give a percentage between 0 and 100, e.g. 0.1 for 0.1 %",
            ));
        }

        let source_name = self.source.unwrap_or_else(|| d.source.clone());
        let source = match source_name.as_str() {
            "list" => Source::List,
            "inventory" => {
                let side = |manifest: Option<String>,
                            inv: Option<String>,
                            name: &str|
                 -> Result<InventorySource, SuiteError> {
                    if let Some(m) = manifest {
                        let field = format!("{name}_manifest");
                        let loc = S3Location::parse(&field, &m)?;
                        if !loc.key.ends_with("manifest.json") {
                            return Err(SuiteError::invalid(
                                field,
                                format!("{m:?} is not a manifest.json"),
                                "point at …/YYYY-MM-DDTHH-MMZ/manifest.json",
                            ));
                        }
                        return Ok(InventorySource::Manifest(loc));
                    }
                    let field = format!("{name}_inventory");
                    let uri = inv.ok_or_else(|| {
                        SuiteError::invalid(
                            &field,
                            format!(
                                "source is inventory but neither {field} nor {} is set",
                                field.to_uppercase()
                            ),
                            "give s3://inventory-bucket/prefix/source-bucket/config-id/",
                        )
                    })?;
                    let mut loc = S3Location::parse(&field, &uri)?;
                    if !loc.key.is_empty() && !loc.key.ends_with('/') {
                        loc.key.push('/');
                    }
                    Ok(InventorySource::Latest(loc))
                };
                Source::Inventory {
                    primary: side(
                        self.primary_manifest,
                        self.primary_inventory
                            .or_else(|| d.primary_inventory.clone()),
                        "primary",
                    )?,
                    replica: side(
                        self.replica_manifest,
                        self.replica_inventory
                            .or_else(|| d.replica_inventory.clone()),
                        "replica",
                    )?,
                }
            }
            other => {
                return Err(SuiteError::invalid(
                    "source",
                    format!("{other:?} is not a source"),
                    "use \"list\" or \"inventory\"",
                ))
            }
        };

        let now = match self.now.as_deref() {
            None => None,
            Some(s) => Some(
                DateTime::parse_from_rfc3339(s)
                    .map_err(|e| {
                        SuiteError::invalid(
                            "now",
                            format!("{s:?}: {e}"),
                            "give an RFC 3339 time such as 2026-11-27T02:00:00Z",
                        )
                    })?
                    .with_timezone(&Utc),
            ),
        };

        if let Some(id) = &self.run_id {
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
        }

        if let Some(n) = self.page_size {
            if !(1..=1000).contains(&n) {
                return Err(SuiteError::invalid(
                    "page_size",
                    format!("{n} is out of range"),
                    "give 1 to 1000 (ListObjectsV2 MaxKeys)",
                ));
            }
        }
        let mut req = Request {
            primary_bucket,
            replica_bucket,
            prefixes,
            source,
            lag_secs: (lag_allowance_hours * 3600.0).round() as i64,
            lag_allowance_hours,
            threshold: threshold_percent / 100.0,
            threshold_percent,
            run_id: String::new(),
            now,
            max_runtime_seconds: self.max_runtime_seconds,
            page_size: self.page_size,
            force: self.force,
            scheduled_time: self.scheduled_time,
        };
        req.run_id = match self.run_id {
            Some(id) => id,
            None => default_run_id(&req, today),
        };
        Ok(req)
    }
}

/// Same inputs on the same day → same run id, so a repeated nightly delivery finds the report
/// already written instead of doing the work twice.
fn default_run_id(req: &Request, today: chrono::NaiveDate) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let body = serde_json::json!({
        "p": req.primary_bucket, "r": req.replica_bucket, "x": req.prefixes, "s": req.source,
        "lag": req.lag_secs, "t": req.threshold_percent, "now": req.now, "day": today.to_string(),
    });
    h.update(body.to_string().as_bytes());
    let mode = match req.source {
        Source::List => "list",
        Source::Inventory { .. } => "inventory",
    };
    format!(
        "{mode}-{}-{}",
        today.format("%Y%m%d"),
        &hex::encode(h.finalize())[..12]
    )
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

    fn day() -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()
    }

    fn validate(v: serde_json::Value) -> Result<Request, String> {
        let p: Payload = serde_json::from_value(v).map_err(|e| e.to_string())?;
        p.validate(&defaults(), day()).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_apply() {
        let r = validate(json!({})).unwrap();
        assert_eq!(r.primary_bucket, "prod-files");
        assert_eq!(r.prefixes, vec!["attachments/", "exports/"]);
        assert_eq!(r.source, Source::List);
        assert_eq!(r.lag_secs, 86_400);
        assert!((r.threshold - 0.001).abs() < 1e-12);
        assert!(r.run_id.starts_with("list-20261127-"));
        // Same inputs, same day: same id (idempotent deliveries).
        assert_eq!(validate(json!({})).unwrap().run_id, r.run_id);
        assert_ne!(
            validate(json!({"prefixes": ["exports/"]})).unwrap().run_id,
            r.run_id
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                json!({"drift_threshold_percent": -1}),
                "drift_threshold_percent",
            ),
            (json!({"source": "athena"}), "source"),
            (json!({"prefixes": []}), "prefixes"),
            (json!({"prefixes": ["a/", "a/b/"]}), "prefixes[1]"),
            (json!({"prefixes": ["/a"]}), "prefixes[0]"),
            (json!({"replica_bucket": "prod-files"}), "replica_bucket"),
            (json!({"primary_bucket": "Bad_Bucket"}), "primary_bucket"),
            (json!({"source": "inventory"}), "primary_inventory"),
            (
                json!({"source": "inventory", "primary_manifest": "s3://i/x/manifest.json", "replica_inventory": "http://x"}),
                "replica_inventory",
            ),
            (json!({"now": "yesterday"}), "now"),
            (json!({"run_id": "a/b"}), "run_id"),
            (json!({"page_size": 0}), "page_size"),
            (
                json!({"drift_treshold_percent": 1}),
                "drift_treshold_percent",
            ),
        ];
        for (payload, field) in cases {
            let e = validate(payload.clone()).unwrap_err();
            assert!(e.contains(field), "{payload}: {e}");
        }
    }

    #[test]
    fn inventory_sources() {
        let r = validate(json!({"source": "inventory", "primary_inventory": "s3://inv/prod-files/daily", "replica_manifest": "s3://inv/dr-files/daily/2026-11-26T01-00Z/manifest.json"})).unwrap();
        assert_eq!(
            r.source,
            Source::Inventory {
                primary: InventorySource::Latest(S3Location {
                    bucket: "inv".into(),
                    key: "prod-files/daily/".into()
                }),
                replica: InventorySource::Manifest(S3Location {
                    bucket: "inv".into(),
                    key: "dr-files/daily/2026-11-26T01-00Z/manifest.json".into()
                }),
            }
        );
    }
}
