//! The DR report: one JSON and one Markdown document per month (`reports/dr/YYYY-MM.{json,md}`)
//! holding every drill and failover rehearsal of the month, with phase timings, RPO, schema
//! verdict, checks, trigger, and a failure summary. Pure: rendering and merging only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::check::{CheckResult, RpoMeasurement, SchemaVerdict, Verification};
use crate::drill::{timings, DrillState, Mode, Timings};
use crate::smoke::SmokeResult;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillSummary {
    pub drill_id: String,
    pub success: bool,
    pub phase: String,
    pub environment: String,
    pub deployment: String,
    pub triggered_by: String,
    pub mode: Mode,
    pub source: String,
    pub restored_instance: String,
    pub kept: bool,
    pub restore_time_requested: Option<DateTime<Utc>>,
    pub target_time: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub timings: Timings,
    pub rpo: Option<RpoMeasurement>,
    pub schema: Option<SchemaVerdict>,
    pub checks: Vec<CheckResult>,
    pub failures: Vec<String>,
}

pub fn summarize(s: &DrillState, environment: &str, deployment: &str) -> DrillSummary {
    let v = s.verification.clone().unwrap_or_default();
    let mut failures = v.failures.clone();
    if let Some(f) = &s.failure {
        if !f.starts_with("restore check failed") || failures.is_empty() {
            failures.insert(0, f.clone());
        }
    }
    DrillSummary {
        drill_id: s.drill_id.clone(),
        success: s.phase == crate::drill::Phase::Done && s.failure.is_none(),
        phase: s.phase.as_str().into(),
        environment: environment.into(),
        deployment: deployment.into(),
        triggered_by: s.triggered_by.clone(),
        mode: s.mode,
        source: s.source.clone(),
        restored_instance: s.instance_id.clone(),
        kept: s.keep,
        restore_time_requested: s.restore_time,
        target_time: s.target_time,
        started_at: s.created_at,
        finished_at: s.finished_at,
        timings: timings(s),
        rpo: v.rpo,
        schema: v.schema,
        checks: v.checks,
        failures,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverStep {
    pub name: String,
    pub passed: bool,
    pub detail: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverRecord {
    pub rehearsal_id: String,
    pub success: bool,
    pub environment: String,
    pub deployment: String,
    pub triggered_by: String,
    pub target: String,
    pub plan: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Failover start to the promoted database answering and the flags switched.
    pub failover_seconds: Option<f64>,
    pub steps: Vec<FailoverStep>,
    pub smoke: Vec<SmokeResult>,
    pub data_currency: Option<Verification>,
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MonthlyReport {
    pub month: String,
    pub drills: Vec<DrillSummary>,
    pub failovers: Vec<FailoverRecord>,
}

impl MonthlyReport {
    /// Adds or replaces (same id) a drill: re-reporting a drill is idempotent.
    pub fn upsert_drill(&mut self, d: DrillSummary) {
        self.drills.retain(|x| x.drill_id != d.drill_id);
        self.drills.push(d);
        self.drills.sort_by_key(|x| x.started_at);
    }
    pub fn upsert_failover(&mut self, f: FailoverRecord) {
        self.failovers.retain(|x| x.rehearsal_id != f.rehearsal_id);
        self.failovers.push(f);
        self.failovers.sort_by_key(|x| x.started_at);
    }
}

fn t(x: Option<DateTime<Utc>>) -> String {
    x.map(|x| x.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "-".into())
}

fn s(x: Option<f64>) -> String {
    x.map(|x| format!("{x:.1} s")).unwrap_or_else(|| "-".into())
}

fn cell(x: &str) -> String {
    x.replace('|', "\\|").replace('\n', " ")
}

pub fn render_markdown(r: &MonthlyReport) -> String {
    let mut m = String::new();
    m.push_str(&format!("# Database DR report {}\n\n", r.month));
    let ok = r.drills.iter().filter(|d| d.success).count();
    let fok = r.failovers.iter().filter(|d| d.success).count();
    m.push_str(&format!(
        "Restore drills: {} ({} passed, {} failed). Failover rehearsals: {} ({} passed, {} failed).\n\n",
        r.drills.len(),
        ok,
        r.drills.len() - ok,
        r.failovers.len(),
        fok,
        r.failovers.len() - fok
    ));
    for d in &r.drills {
        m.push_str(&format!(
            "## Restore drill `{}`: {}\n\n",
            d.drill_id,
            if d.success { "PASSED" } else { "FAILED" }
        ));
        if !d.failures.is_empty() {
            m.push_str("**Failure summary**\n\n");
            for f in &d.failures {
                m.push_str(&format!("- {}\n", cell(f)));
            }
            m.push('\n');
        }
        m.push_str("| | |\n| --- | --- |\n");
        m.push_str(&format!("| triggered by | {} |\n", cell(&d.triggered_by)));
        m.push_str(&format!(
            "| environment / deployment | {} / {} |\n",
            d.environment, d.deployment
        ));
        m.push_str(&format!("| source ({:?}) | `{}` |\n", d.mode, d.source));
        m.push_str(&format!(
            "| restored instance | `{}`{} |\n",
            d.restored_instance,
            if d.kept {
                " (kept)"
            } else {
                " (deleted after the checks)"
            }
        ));
        m.push_str(&format!(
            "| restore target | {} ({}) |\n",
            t(d.target_time),
            if d.restore_time_requested.is_some() {
                "requested time"
            } else {
                "latest restorable time"
            }
        ));
        m.push_str(&format!(
            "| started / finished | {} / {} |\n",
            t(Some(d.started_at)),
            t(d.finished_at)
        ));
        m.push_str(&format!("| final phase | {} |\n\n", d.phase));
        m.push_str("| phase | duration |\n| --- | --- |\n");
        m.push_str(&format!(
            "| restore (request to available) | {} |\n",
            s(d.timings.restore_seconds)
        ));
        m.push_str(&format!(
            "| available to verification | {} |\n",
            s(d.timings.wait_for_verify_seconds)
        ));
        m.push_str(&format!(
            "| verification | {} |\n",
            s(d.timings.verify_seconds)
        ));
        m.push_str(&format!(
            "| clean-up | {} |\n",
            s(d.timings.cleanup_seconds)
        ));
        m.push_str(&format!("| total | {} |\n\n", s(d.timings.total_seconds)));
        if let Some(r) = &d.rpo {
            m.push_str(&format!(
                "**RPO**: {} against the {:.0} s objective (tolerance {:.0} s): **{:?}**. Recovery point age {}; newest write {} ({}).\n\n",
                s(r.rpo_seconds),
                r.objective_seconds,
                r.tolerance_seconds,
                r.verdict,
                s(r.recovery_point_age_seconds),
                t(r.newest_write),
                r.newest_write_column.as_deref().unwrap_or("-")
            ));
        }
        if let Some(sv) = &d.schema {
            m.push_str(&format!(
                "**Schema**: {}: expected heads `{}`, found `{}`.\n\n",
                if sv.passed { "matches" } else { "MISMATCH" },
                sv.expected.join(","),
                sv.found.join(",")
            ));
        }
        if !d.checks.is_empty() {
            m.push_str(
                "| check | kind | result | time | detail |\n| --- | --- | --- | --- | --- |\n",
            );
            for c in &d.checks {
                m.push_str(&format!(
                    "| {} | {} | {} | {:.1} ms | {} |\n",
                    cell(&c.name),
                    c.kind,
                    if c.passed { "pass" } else { "FAIL" },
                    c.duration_ms,
                    cell(&c.detail)
                ));
            }
            m.push('\n');
        }
    }
    for f in &r.failovers {
        m.push_str(&format!(
            "## Failover rehearsal `{}`: {}\n\n",
            f.rehearsal_id,
            if f.success { "PASSED" } else { "FAILED" }
        ));
        if !f.failures.is_empty() {
            m.push_str("**Failure summary**\n\n");
            for x in &f.failures {
                m.push_str(&format!("- {}\n", cell(x)));
            }
            m.push('\n');
        }
        m.push_str(&format!(
            "Target `{}`, triggered by {}, {} / {}. Started {}, finished {}; failover took {}.\n\n",
            f.target,
            cell(&f.triggered_by),
            f.environment,
            f.deployment,
            t(Some(f.started_at)),
            t(f.finished_at),
            s(f.failover_seconds)
        ));
        m.push_str(
            "| step | result | started | time | detail |\n| --- | --- | --- | --- | --- |\n",
        );
        for st in &f.steps {
            m.push_str(&format!(
                "| {} | {} | {} | {:.1} ms | {} |\n",
                cell(&st.name),
                if st.passed { "pass" } else { "FAIL" },
                t(Some(st.started_at)),
                st.duration_ms,
                cell(&st.detail)
            ));
        }
        for sm in &f.smoke {
            m.push_str(&format!(
                "| smoke GET {} | {} | | {:.1} ms | {} |\n",
                cell(&sm.url),
                if sm.passed { "pass" } else { "FAIL" },
                sm.duration_ms,
                sm.status
                    .map(|x| format!("HTTP {x}"))
                    .unwrap_or_else(|| sm.error.clone().unwrap_or_default())
            ));
        }
        m.push('\n');
        if let Some(r) = f.data_currency.as_ref().and_then(|v| v.rpo.as_ref()) {
            m.push_str(&format!(
                "**Data currency of the promoted database**: {}\n\n",
                cell(&r.detail)
            ));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::{new_drill, StartSpec};

    #[test]
    fn upsert_is_idempotent_and_markdown_has_the_failure_summary() {
        let now = Utc::now();
        let mut st = new_drill(
            &StartSpec {
                drill_id: "q4".into(),
                mode: Mode::Instance,
                source: "app-db".into(),
                instance_id: "dr-drill-q4".into(),
                cluster_id: None,
                restore_time: None,
                keep: false,
                triggered_by: "ops|alice".into(),
            },
            now,
        );
        st.phase = crate::drill::Phase::Failed;
        st.failure = Some("restore request rejected: DBInstanceNotFound".into());
        let mut r = MonthlyReport {
            month: "2026-11".into(),
            ..Default::default()
        };
        r.upsert_drill(summarize(&st, "local", "d"));
        r.upsert_drill(summarize(&st, "local", "d"));
        assert_eq!(r.drills.len(), 1);
        let md = render_markdown(&r);
        assert!(md.contains("## Restore drill `q4`: FAILED"), "{md}");
        assert!(
            md.contains("- restore request rejected: DBInstanceNotFound"),
            "{md}"
        );
        assert!(md.contains("ops\\|alice"), "{md}");
    }
}
