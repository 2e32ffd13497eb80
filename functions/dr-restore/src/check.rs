//! `db_restore_check`, the pure part: what to check (the plan), the raw findings the database
//! adapter collects (db.rs), and the verdicts: schema against the Alembic heads, sanity
//! bounds, smoke queries, and the RPO from the data's currency.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A row-count (or any single-number) query with bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanityQuery {
    pub name: String,
    /// Returns one row whose first column is an integer.
    pub sql: String,
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
}

/// `table.column` (or `schema.table.column`) holding a write time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrencyColumn {
    pub table: String,
    pub column: String,
}

impl CurrencyColumn {
    pub fn label(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }
}

/// The RPO objective and the tolerance that keeps the judgement from flapping.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RpoPolicy {
    pub objective_seconds: f64,
    pub tolerance_seconds: f64,
}

impl Default for RpoPolicy {
    fn default() -> Self {
        RpoPolicy {
            objective_seconds: 300.0,
            tolerance_seconds: 120.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckPlan {
    pub expected_heads: Vec<String>,
    pub sanity: Vec<SanityQuery>,
    pub critical_tables: Vec<String>,
    pub currency: Vec<CurrencyColumn>,
    pub rpo: RpoPolicy,
}

/// One check's raw result and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed<T> {
    pub value: Result<T, String>,
    pub ms: f64,
}

/// What the adapter found in the restored database.
#[derive(Debug, Clone, PartialEq)]
pub struct DbFindings {
    pub connect: Timed<()>,
    /// `alembic_version.version_num` rows.
    pub heads: Option<Timed<Vec<String>>>,
    pub sanity: Vec<(String, Timed<i64>)>,
    pub smoke: Vec<(String, Timed<()>)>,
    /// `max(column)` per currency column (`None` = no rows).
    pub currency: Vec<(String, Timed<Option<DateTime<Utc>>>)>,
}

impl DbFindings {
    /// The database could not be reached: nothing else ran.
    pub fn unreachable(reason: String, ms: f64) -> Self {
        DbFindings {
            connect: Timed {
                value: Err(reason),
                ms,
            },
            heads: None,
            sanity: vec![],
            smoke: vec![],
            currency: vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    /// connect, schema, sanity, smoke, currency, rpo
    pub kind: String,
    pub passed: bool,
    pub detail: String,
    pub duration_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SchemaVerdict {
    pub expected: Vec<String>,
    pub found: Vec<String>,
    pub missing: Vec<String>,
    pub extra: Vec<String>,
    pub passed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RpoVerdict {
    /// Within the objective.
    Met,
    /// Over the objective but within the tolerance: passes, flagged in the report.
    WithinTolerance,
    Missed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpoMeasurement {
    /// The time a disaster is assumed to strike: the drill's start for "latest restorable
    /// time" drills (the RDS lag counts as loss), the requested time otherwise.
    pub reference_time: DateTime<Utc>,
    pub target_time: Option<DateTime<Utc>>,
    /// reference − target: how old the newest restorable point was (the RDS lag).
    pub recovery_point_age_seconds: Option<f64>,
    /// The newest write found in the restored database.
    pub newest_write: Option<DateTime<Utc>>,
    pub newest_write_column: Option<String>,
    /// reference − newest write (0 when the newest write is later, i.e. clock skew).
    pub rpo_seconds: Option<f64>,
    pub objective_seconds: f64,
    pub tolerance_seconds: f64,
    pub verdict: RpoVerdict,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Verification {
    pub passed: bool,
    pub checks: Vec<CheckResult>,
    pub schema: Option<SchemaVerdict>,
    pub rpo: Option<RpoMeasurement>,
    /// One line per failed check: the failure summary.
    pub failures: Vec<String>,
    pub duration_ms: f64,
}

pub fn compare_heads(expected: &[String], found: &[String]) -> SchemaVerdict {
    let missing: Vec<String> = expected
        .iter()
        .filter(|h| !found.contains(h))
        .cloned()
        .collect();
    let extra: Vec<String> = found
        .iter()
        .filter(|h| !expected.contains(h))
        .cloned()
        .collect();
    SchemaVerdict {
        expected: expected.to_vec(),
        found: found.to_vec(),
        passed: missing.is_empty() && extra.is_empty() && !expected.is_empty(),
        missing,
        extra,
    }
}

/// The RPO judgement. The RDS recovery point normally lags 0-5 minutes and the newest write
/// depends on when the application last wrote, so a measurement right at the objective is
/// noise: over the objective but within `tolerance` passes as WITHIN_TOLERANCE; only beyond
/// objective + tolerance the drill fails.
pub fn measure_rpo(
    reference_time: DateTime<Utc>,
    target_time: Option<DateTime<Utc>>,
    newest: Option<(String, DateTime<Utc>)>,
    policy: RpoPolicy,
) -> RpoMeasurement {
    let age =
        target_time.map(|t| ((reference_time - t).num_milliseconds() as f64 / 1000.0).max(0.0));
    let (col, at) = match newest {
        Some((c, t)) => (Some(c), Some(t)),
        None => (None, None),
    };
    let rpo = at.map(|t| ((reference_time - t).num_milliseconds() as f64 / 1000.0).max(0.0));
    let limit = policy.objective_seconds + policy.tolerance_seconds;
    let (verdict, detail) = match (rpo, &col) {
        (None, _) => (
            RpoVerdict::Missed,
            "no write time found in the currency columns (empty tables?): data currency cannot be proven".to_string(),
        ),
        (Some(r), Some(c)) if r <= policy.objective_seconds => (
            RpoVerdict::Met,
            format!(
                "newest write {c} = {} is {r:.0} s before {}: within the {:.0} s objective",
                fmt_t(at),
                fmt_t(Some(reference_time)),
                policy.objective_seconds
            ),
        ),
        (Some(r), Some(c)) if r <= limit => (
            RpoVerdict::WithinTolerance,
            format!(
                "newest write {c} = {} is {r:.0} s before {}: over the {:.0} s objective but within the {:.0} s tolerance",
                fmt_t(at),
                fmt_t(Some(reference_time)),
                policy.objective_seconds,
                policy.tolerance_seconds
            ),
        ),
        (Some(r), c) => (
            RpoVerdict::Missed,
            format!(
                "stale data: newest write {} = {} is {r:.0} s before {}, beyond the {:.0} s objective + {:.0} s tolerance",
                c.as_deref().unwrap_or("?"),
                fmt_t(at),
                fmt_t(Some(reference_time)),
                policy.objective_seconds,
                policy.tolerance_seconds
            ),
        ),
    };
    RpoMeasurement {
        reference_time,
        target_time,
        recovery_point_age_seconds: age,
        newest_write: at,
        newest_write_column: col,
        rpo_seconds: rpo,
        objective_seconds: policy.objective_seconds,
        tolerance_seconds: policy.tolerance_seconds,
        verdict,
        detail,
    }
}

fn fmt_t(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

/// Turns the findings into the verdict. `reference_time` and `target_time` as in
/// [`measure_rpo`].
pub fn judge(
    plan: &CheckPlan,
    f: &DbFindings,
    reference_time: DateTime<Utc>,
    target_time: Option<DateTime<Utc>>,
) -> Verification {
    let mut checks = vec![];
    let mut failures = vec![];
    let mut push = |c: CheckResult, failures: &mut Vec<String>| {
        if !c.passed {
            failures.push(format!("{} {}: {}", c.kind, c.name, c.detail));
        }
        checks.push(c);
    };
    let mut total = f.connect.ms;
    match &f.connect.value {
        Ok(()) => push(
            CheckResult {
                name: "database".into(),
                kind: "connect".into(),
                passed: true,
                detail: "connected".into(),
                duration_ms: f.connect.ms,
            },
            &mut failures,
        ),
        Err(e) => {
            push(
                CheckResult {
                    name: "database".into(),
                    kind: "connect".into(),
                    passed: false,
                    detail: format!("database unreachable: {e}"),
                    duration_ms: f.connect.ms,
                },
                &mut failures,
            );
            return Verification {
                passed: false,
                checks,
                schema: None,
                rpo: None,
                failures,
                duration_ms: total,
            };
        }
    }
    let mut schema = None;
    if let Some(h) = &f.heads {
        total += h.ms;
        let (passed, detail, verdict) = match &h.value {
            Err(e) => (false, format!("cannot read alembic_version: {e}"), None),
            Ok(found) => {
                let v = compare_heads(&plan.expected_heads, found);
                let detail = if v.passed {
                    format!(
                        "alembic_version {} matches the expected heads",
                        found.join(",")
                    )
                } else {
                    let mut parts = vec![];
                    if !v.missing.is_empty() {
                        parts.push(format!("missing head(s) {}", v.missing.join(",")));
                    }
                    if !v.extra.is_empty() {
                        parts.push(format!(
                            "extra head(s) {} not in the expected heads",
                            v.extra.join(",")
                        ));
                    }
                    if plan.expected_heads.is_empty() {
                        parts.push("no expected heads configured".into());
                    }
                    format!(
                        "{} (expected {}, found {})",
                        parts.join("; "),
                        list_or_none(&v.expected),
                        list_or_none(&v.found)
                    )
                };
                (v.passed, detail, Some(v))
            }
        };
        schema = verdict;
        push(
            CheckResult {
                name: "alembic_version".into(),
                kind: "schema".into(),
                passed,
                detail,
                duration_ms: h.ms,
            },
            &mut failures,
        );
    }
    for (name, t) in &f.sanity {
        total += t.ms;
        let q = plan.sanity.iter().find(|q| &q.name == name);
        let (passed, detail) = match (&t.value, q) {
            (Err(e), _) => (false, format!("query failed: {e}")),
            (Ok(n), Some(q)) => {
                let low = q.min.is_some_and(|m| *n < m);
                let high = q.max.is_some_and(|m| *n > m);
                let bounds = format!(
                    "[{}, {}]",
                    q.min.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
                    q.max.map(|m| m.to_string()).unwrap_or_else(|| "-".into())
                );
                if low || high {
                    (false, format!("{n} is outside {bounds}"))
                } else {
                    (true, format!("{n} within {bounds}"))
                }
            }
            (Ok(n), None) => (true, format!("{n}")),
        };
        push(
            CheckResult {
                name: name.clone(),
                kind: "sanity".into(),
                passed,
                detail,
                duration_ms: t.ms,
            },
            &mut failures,
        );
    }
    for (table, t) in &f.smoke {
        total += t.ms;
        let (passed, detail) = match &t.value {
            Ok(()) => (true, "readable".to_string()),
            Err(e) => (false, format!("smoke query failed: {e}")),
        };
        push(
            CheckResult {
                name: table.clone(),
                kind: "smoke".into(),
                passed,
                detail,
                duration_ms: t.ms,
            },
            &mut failures,
        );
    }
    let mut newest: Option<(String, DateTime<Utc>)> = None;
    for (label, t) in &f.currency {
        total += t.ms;
        let (passed, detail) = match &t.value {
            Err(e) => (false, format!("query failed: {e}")),
            Ok(None) => (true, "no rows".to_string()),
            Ok(Some(at)) => {
                if newest.as_ref().is_none_or(|(_, n)| at > n) {
                    newest = Some((label.clone(), *at));
                }
                (true, format!("newest {}", fmt_t(Some(*at))))
            }
        };
        push(
            CheckResult {
                name: label.clone(),
                kind: "currency".into(),
                passed,
                detail,
                duration_ms: t.ms,
            },
            &mut failures,
        );
    }
    let mut rpo = None;
    if !plan.currency.is_empty() {
        let m = measure_rpo(reference_time, target_time, newest, plan.rpo);
        push(
            CheckResult {
                name: "rpo".into(),
                kind: "rpo".into(),
                passed: m.verdict != RpoVerdict::Missed,
                detail: m.detail.clone(),
                duration_ms: 0.0,
            },
            &mut failures,
        );
        rpo = Some(m);
    }
    Verification {
        passed: failures.is_empty(),
        checks,
        schema,
        rpo,
        failures,
        duration_ms: total,
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn ok<T>(v: T) -> Timed<T> {
        Timed {
            value: Ok(v),
            ms: 2.0,
        }
    }

    fn plan() -> CheckPlan {
        CheckPlan {
            expected_heads: vec!["a1".into(), "b2".into()],
            sanity: vec![SanityQuery {
                name: "orders".into(),
                sql: "select count(*) from orders".into(),
                min: Some(10),
                max: Some(1000),
            }],
            critical_tables: vec!["orders".into()],
            currency: vec![CurrencyColumn {
                table: "orders".into(),
                column: "updated_at".into(),
            }],
            rpo: RpoPolicy::default(),
        }
    }

    fn findings(heads: &[&str], count: i64, newest: DateTime<Utc>) -> DbFindings {
        DbFindings {
            connect: ok(()),
            heads: Some(ok(heads.iter().map(|s| s.to_string()).collect())),
            sanity: vec![("orders".into(), ok(count))],
            smoke: vec![("orders".into(), ok(()))],
            currency: vec![("orders.updated_at".into(), ok(Some(newest)))],
        }
    }

    #[test]
    fn all_good_passes_and_times_every_check() {
        let v = judge(
            &plan(),
            &findings(&["b2", "a1"], 50, t0() - Duration::seconds(40)),
            t0(),
            Some(t0() - Duration::seconds(30)),
        );
        assert!(v.passed, "{:?}", v.failures);
        assert_eq!(v.checks.len(), 6);
        let rpo = v.rpo.unwrap();
        assert_eq!(rpo.rpo_seconds, Some(40.0));
        assert_eq!(rpo.recovery_point_age_seconds, Some(30.0));
        assert_eq!(rpo.verdict, RpoVerdict::Met);
        assert!(v.duration_ms >= 10.0);
    }

    #[test]
    fn missing_and_extra_heads_fail_with_the_revision() {
        let v = judge(&plan(), &findings(&["a1"], 50, t0()), t0(), None);
        assert!(!v.passed);
        assert!(
            v.failures[0].contains("missing head(s) b2"),
            "{:?}",
            v.failures
        );
        let v = judge(
            &plan(),
            &findings(&["a1", "b2", "c3"], 50, t0()),
            t0(),
            None,
        );
        assert!(
            v.failures[0].contains("extra head(s) c3"),
            "{:?}",
            v.failures
        );
        assert_eq!(v.schema.unwrap().extra, vec!["c3".to_string()]);
    }

    #[test]
    fn sanity_bounds() {
        let v = judge(&plan(), &findings(&["a1", "b2"], 5, t0()), t0(), None);
        assert_eq!(
            v.failures,
            vec!["sanity orders: 5 is outside [10, 1000]".to_string()]
        );
    }

    /// The tolerance band: 6 minutes passes (flagged), 8 minutes fails with the reason.
    #[test]
    fn rpo_tolerance_band() {
        let p = RpoPolicy::default();
        let m = measure_rpo(
            t0(),
            None,
            Some(("t.c".into(), t0() - Duration::seconds(360))),
            p,
        );
        assert_eq!(m.verdict, RpoVerdict::WithinTolerance);
        let m = measure_rpo(
            t0(),
            None,
            Some(("t.c".into(), t0() - Duration::seconds(480))),
            p,
        );
        assert_eq!(m.verdict, RpoVerdict::Missed);
        assert!(
            m.detail.starts_with("stale data: newest write t.c"),
            "{}",
            m.detail
        );
        // A write after the reference (clock skew) counts as 0, not negative.
        let m = measure_rpo(
            t0(),
            None,
            Some(("t.c".into(), t0() + Duration::seconds(5))),
            p,
        );
        assert_eq!(m.rpo_seconds, Some(0.0));
        let m = measure_rpo(t0(), None, None, p);
        assert_eq!(m.verdict, RpoVerdict::Missed);
    }

    #[test]
    fn unreachable_database_fails_clearly_and_runs_nothing_else() {
        let f = DbFindings::unreachable("connection refused (127.0.0.1:1)".into(), 3.0);
        let v = judge(&plan(), &f, t0(), None);
        assert!(!v.passed);
        assert_eq!(v.checks.len(), 1);
        assert!(
            v.failures[0].contains("database unreachable: connection refused"),
            "{:?}",
            v.failures
        );
    }

    #[test]
    fn no_expected_heads_never_passes() {
        let v = compare_heads(&[], &["a".into()]);
        assert!(!v.passed);
    }
}
