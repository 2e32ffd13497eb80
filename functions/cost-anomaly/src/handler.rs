//! The Lambda adapter: SNS alerts, the daily detection schedule, the monthly report schedule
//! and the budget check → the run, EMF metrics, and the response.

use chrono::{NaiveDate, Utc};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::aws::{AwsClients, AwsSettings};
use shared::config::{CommonConfig, Vars};
use shared::metrics::{Emf, Unit};
use shared::sns::{Publisher, SnsPublisher};
use shared::store::{ObjectStore, S3Store};
use shared::SuiteError;

use crate::analysis::{parse_month, prev_month};
use crate::config::Settings;
use crate::parse::{is_sns_event, parse_sns_event, SnsEnvelope};
use crate::port::{AwsBudgets, AwsCostExplorer, BudgetsApi, CostSource};
use crate::run::{
    AlertAction, BudgetOutcome, DetectOutcome, Engine, MessageOutcome, CE_REQUEST_DOLLARS,
};

pub struct Deps<S: ObjectStore, C: CostSource, B: BudgetsApi, P: Publisher> {
    pub common: CommonConfig,
    pub settings: Settings,
    pub store: S,
    pub ce: C,
    pub budgets: B,
    pub publisher: P,
}

impl Deps<S3Store, AwsCostExplorer, AwsBudgets, SnsPublisher> {
    /// Reads the configuration and builds the clients: once per cold start.
    pub async fn from_env() -> Result<Self, SuiteError> {
        let vars = Vars::from_process();
        let common = CommonConfig::from_vars(&vars, "cost-anomaly")?;
        shared::telemetry::init(&common);
        let settings = Settings::from_vars(&vars)?;
        let clients = AwsClients::load(AwsSettings::from_vars(&vars)?).await;
        Ok(Deps {
            common,
            settings,
            store: S3Store::new(clients.s3()),
            ce: AwsCostExplorer::new(aws_sdk_costexplorer::Client::new(&clients.sdk)),
            budgets: AwsBudgets::new(aws_sdk_budgets::Client::new(&clients.sdk)),
            publisher: clients.sns_publisher(),
        })
    }
}

/// The scheduled and manual payloads.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// `detect` (daily), `report` (monthly) or `budgets`.
    pub job: String,
    /// detect / report: judge data before this day (default today, UTC).
    pub as_of: Option<String>,
    /// report: `YYYY-MM` (default the previous month).
    pub month: Option<String>,
    /// budgets: report drift without fixing it.
    pub dry_run: Option<bool>,
    /// Scheduler's placeholders, accepted and logged.
    pub scheduled_time: Option<String>,
}

#[derive(Debug, PartialEq)]
pub enum Job {
    Messages(Vec<SnsEnvelope>),
    Detect { as_of: NaiveDate },
    Report { month: NaiveDate, as_of: NaiveDate },
    Budgets { dry_run: bool },
}

fn day(field: &str, s: &str) -> Result<NaiveDate, SuiteError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
        SuiteError::invalid(
            field,
            format!("{s:?} is not a date"),
            "send a day like \"2026-11-27\"",
        )
    })
}

pub fn parse_event(event: &Value, today: NaiveDate) -> Result<Job, SuiteError> {
    if is_sns_event(event) {
        return parse_sns_event(event).map(Job::Messages).map_err(|p| {
            SuiteError::invalid("Records", p, "send an SNS event (Records[].Sns.Message)")
        });
    }
    let r: Request = serde_json::from_value(event.clone()).map_err(|e| {
        SuiteError::invalid(
            "payload",
            e.to_string(),
            "send an SNS event, {\"job\": \"detect\"}, {\"job\": \"report\", \"month\": \"2026-11\"} or {\"job\": \"budgets\", \"dry_run\": true}",
        )
    })?;
    let as_of = r
        .as_of
        .as_deref()
        .map(|s| day("as_of", s))
        .transpose()?
        .unwrap_or(today);
    let check_unused = |name: &str, present: bool| {
        if present {
            Err(SuiteError::invalid(
                name,
                format!("not used by job {:?}", r.job),
                "leave it out",
            ))
        } else {
            Ok(())
        }
    };
    match r.job.as_str() {
        "detect" => {
            check_unused("month", r.month.is_some())?;
            check_unused("dry_run", r.dry_run.is_some())?;
            Ok(Job::Detect { as_of })
        }
        "report" => {
            check_unused("dry_run", r.dry_run.is_some())?;
            let month = match &r.month {
                Some(m) => parse_month(m).map_err(|p| {
                    SuiteError::invalid("month", p, "send a month like \"2026-11\"")
                })?,
                None => prev_month(as_of),
            };
            Ok(Job::Report { month, as_of })
        }
        "budgets" => {
            check_unused("month", r.month.is_some())?;
            check_unused("as_of", r.as_of.is_some())?;
            Ok(Job::Budgets {
                dry_run: r.dry_run.unwrap_or(false),
            })
        }
        other => Err(SuiteError::invalid(
            "job",
            format!("{other:?} is not a job"),
            "send detect, report or budgets",
        )),
    }
}

/// The EMF documents of a detection run (docs/cost-anomaly.md lists them; a test holds them to it).
pub fn detect_metrics(common: &CommonConfig, o: &DetectOutcome) -> Vec<Emf> {
    let mut docs = vec![];
    for (scope, p) in &o.projections {
        let is_budget_env = scope != "all" && !o.last_day_spend.contains_key(scope);
        if is_budget_env {
            continue;
        }
        let mut e = Emf::new(common).dimension("env", scope);
        if let Some(v) = o.last_day_spend.get(scope) {
            e.metric("finops_daily_spend_dollars", *v, Unit::None);
        } else if scope == "all" {
            e.metric(
                "finops_daily_spend_dollars",
                o.last_day_spend.values().sum(),
                Unit::None,
            );
        }
        e.metric("finops_month_to_date_dollars", p.month_to_date, Unit::None)
            .metric(
                "finops_projected_month_end_dollars",
                p.projected_own,
                Unit::None,
            );
        if let Some(ce) = p.projected_ce {
            e.metric("finops_projected_month_end_ce_dollars", ce, Unit::None);
        }
        if let Some(Some(d)) = o.delta_percent.get(scope) {
            e.metric("finops_monthly_delta_percent", *d, Unit::Percent);
        }
        e.property("month", o.month.clone());
        docs.push(e);
    }
    for b in &o.budgets {
        let mut e = Emf::new(common).dimension("budget", &b.budget);
        e.metric(
            "finops_budget_utilisation_percent",
            b.utilisation_percent,
            Unit::Percent,
        )
        .metric(
            "finops_budget_projected_percent",
            b.projected_percent,
            Unit::Percent,
        )
        .property("status", b.status.clone());
        docs.push(e);
    }
    let mut e = Emf::new(common);
    let count = |a: AlertAction| o.alerts.iter().filter(|x| x.action == a).count() as f64;
    e.metric("finops_anomalies", o.open_anomalies as f64, Unit::Count)
        .metric(
            "finops_anomaly_alerts_new",
            count(AlertAction::New),
            Unit::Count,
        )
        .metric(
            "finops_anomaly_alerts_updated",
            count(AlertAction::Updated),
            Unit::Count,
        )
        .metric(
            "finops_ce_requests",
            (o.fetch.requests + o.fetch.forecast_requests) as f64,
            Unit::Count,
        )
        .metric(
            "finops_ce_request_dollars",
            (o.fetch.requests + o.fetch.forecast_requests) as f64 * CE_REQUEST_DOLLARS,
            Unit::None,
        )
        .metric(
            "finops_ce_cached_days",
            o.fetch.cached_days as f64,
            Unit::Count,
        )
        .property("as_of", o.as_of.to_string());
    docs.push(e);
    docs
}

pub fn message_metrics(common: &CommonConfig, out: &[MessageOutcome]) -> Vec<Emf> {
    out.iter()
        .map(|m| {
            let mut e = Emf::new(common).dimension("kind", &m.kind);
            e.metric("finops_messages", 1.0, Unit::Count);
            if m.action == "duplicate" || m.action == "repeat_delivery" {
                e.metric("finops_duplicate_messages", 1.0, Unit::Count);
            }
            e.property("message_id", m.message_id.clone());
            e
        })
        .collect()
}

pub fn budget_metrics(common: &CommonConfig, out: &[BudgetOutcome], dry_run: bool) -> Vec<Emf> {
    out.iter()
        .map(|b| {
            let mut e = Emf::new(common).dimension("budget", &b.budget);
            e.metric("finops_budget_drift", b.drift.len() as f64, Unit::Count)
                .metric("finops_budget_fixes", b.fixed.len() as f64, Unit::Count)
                .property("dry_run", dry_run);
            e
        })
        .collect()
}

/// The handler `main` registers.
pub async fn handle<S: ObjectStore, C: CostSource, B: BudgetsApi, P: Publisher>(
    deps: &Deps<S, C, B, P>,
    event: LambdaEvent<Value>,
) -> Result<Value, SuiteError> {
    shared::lambda::invoke(&deps.common, event, |event| {
        handle_inner(deps, event.payload)
    })
    .await
}

async fn handle_inner<S: ObjectStore, C: CostSource, B: BudgetsApi, P: Publisher>(
    deps: &Deps<S, C, B, P>,
    payload: Value,
) -> Result<Value, SuiteError> {
    let now = Utc::now();
    let engine = Engine {
        store: &deps.store,
        ce: &deps.ce,
        budgets: &deps.budgets,
        publisher: &deps.publisher,
        common: &deps.common,
        settings: &deps.settings,
    };
    let bucket = &deps.common.report_bucket;
    match parse_event(&payload, now.date_naive())? {
        Job::Messages(envs) => {
            let out = engine.messages(&envs, now).await?;
            for d in message_metrics(&deps.common, &out) {
                d.emit();
            }
            let unrecognised = out.iter().filter(|m| m.kind == "unrecognised").count();
            Ok(json!({"status": "RECORDED", "unrecognised": unrecognised, "messages": out}))
        }
        Job::Detect { as_of } => {
            let o = engine.detect(as_of, now).await?;
            tracing::info!(as_of = %as_of, days = o.days, series = o.series, open_anomalies = o.open_anomalies, ce_requests = o.fetch.requests, "detection done");
            for d in detect_metrics(&deps.common, &o) {
                d.emit();
            }
            let mut v =
                serde_json::to_value(&o).map_err(|e| SuiteError::Internal(e.to_string()))?;
            v["status"] = json!("DETECTED");
            v["report"] = json!(format!("s3://{bucket}/{}", o.report));
            Ok(v)
        }
        Job::Report { month, as_of } => {
            let (a, key) = engine.monthly(month, as_of, now).await?;
            tracing::info!(month = %month, anomalies = a.anomalies.len(), "monthly report written");
            Ok(json!({
                "status": "REPORTED",
                "month": crate::analysis::month_label(month),
                "report": format!("s3://{bucket}/{key}"),
                "markdown": format!("s3://{bucket}/{}", engine.report_key(month, "md")),
                "chart": format!("s3://{bucket}/{}", engine.report_key(month, "svg")),
                "anomalies": a.anomalies.len(),
                "delta_percent": a.delta_percent,
                "budgets": a.budgets,
                "ce_requests": a.fetch.requests,
            }))
        }
        Job::Budgets { dry_run } => {
            if deps.settings.budgets.is_empty() {
                return Ok(json!({"status": "NOTHING_TO_DO", "reason": "FINOPS_BUDGETS is empty"}));
            }
            let out = engine.ensure_budgets(dry_run).await?;
            for d in budget_metrics(&deps.common, &out, dry_run) {
                d.emit();
            }
            let drift: usize = out.iter().map(|b| b.drift.len()).sum();
            let errors: usize = out.iter().map(|b| b.errors.len()).sum();
            if errors > 0 {
                return Err(SuiteError::Aws {
                    service: "budgets",
                    operation: "fix",
                    message: out
                        .iter()
                        .flat_map(|b| b.errors.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                });
            }
            Ok(json!({
                "status": if drift == 0 { "IN_PLACE" } else if dry_run { "DRIFT" } else { "FIXED" },
                "dry_run": dry_run,
                "budgets": out,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{BudgetStatus, Projection};
    use crate::run::FetchStats;
    use std::collections::BTreeMap;

    fn common() -> CommonConfig {
        CommonConfig::from_vars(
            &Vars::from_pairs([("ENVIRONMENT", "prod"), ("REPORT_BUCKET", "r")]),
            "cost-anomaly",
        )
        .unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// Every emitted metric is documented in docs/cost-anomaly.md with its unit and dimensions.
    #[test]
    fn emitted_metrics_are_documented() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cost-anomaly.md"),
        )
        .expect("docs/cost-anomaly.md");
        let c = common();
        let p = Projection {
            month: "2026-11".into(),
            as_of: d("2026-11-10"),
            month_to_date: 100.0,
            remaining_own: 200.0,
            projected_own: 300.0,
            remaining_ce: Some(210.0),
            projected_ce: Some(310.0),
        };
        let o = DetectOutcome {
            as_of: d("2026-11-10"),
            month: "2026-11".into(),
            fetch: FetchStats {
                requests: 2,
                ..FetchStats::default()
            },
            days: 90,
            series: 4,
            alerts: vec![],
            resolved: vec![],
            open_anomalies: 1,
            projections: BTreeMap::from([("all".to_string(), p.clone()), ("prod".to_string(), p)]),
            budgets: vec![BudgetStatus {
                budget: "prod-monthly".into(),
                env: Some("prod".into()),
                limit: 1000.0,
                month_to_date: 100.0,
                utilisation_percent: 10.0,
                projected_own: 300.0,
                projected_ce: None,
                projected_percent: 30.0,
                status: "ok".into(),
            }],
            delta_percent: BTreeMap::from([
                ("all".to_string(), Some(5.0)),
                ("prod".to_string(), Some(4.0)),
            ]),
            ce_forecast_note: None,
            last_day: Some(d("2026-11-09")),
            last_day_spend: BTreeMap::from([("prod".to_string(), 10.0)]),
            report: String::new(),
        };
        let mut docs = detect_metrics(&c, &o);
        docs.extend(message_metrics(
            &c,
            &[MessageOutcome {
                message_id: "m".into(),
                kind: "budget".into(),
                action: "duplicate".into(),
                dedup_key: None,
                reason: None,
                record: String::new(),
            }],
        ));
        docs.extend(budget_metrics(
            &c,
            &[BudgetOutcome {
                budget: "b".into(),
                drift: vec![],
                fixed: vec![],
                errors: vec![],
            }],
            true,
        ));
        let seen = shared::metrics::assert_documented(&doc, "docs/cost-anomaly.md", &docs);
        for must in [
            "finops_daily_spend_dollars",
            "finops_projected_month_end_dollars",
            "finops_budget_utilisation_percent",
            "finops_anomalies",
            "finops_monthly_delta_percent",
        ] {
            assert!(seen.contains(must), "{must} emitted");
        }
    }

    #[test]
    fn payloads() {
        let today = d("2026-12-01");
        assert_eq!(
            parse_event(&json!({"job": "detect"}), today).unwrap(),
            Job::Detect { as_of: today }
        );
        assert_eq!(
            parse_event(&json!({"job": "report"}), today).unwrap(),
            Job::Report {
                month: d("2026-11-01"),
                as_of: today
            }
        );
        assert_eq!(
            parse_event(&json!({"job": "budgets", "dry_run": true}), today).unwrap(),
            Job::Budgets { dry_run: true }
        );
        for (p, field) in [
            (json!({"job": "nope"}), "job"),
            (json!({"job": "detect", "as_of": "soon"}), "as_of"),
            (json!({"job": "report", "month": "Nov"}), "month"),
            (json!({"job": "detect", "dry_run": true}), "dry_run"),
            (json!({"job": "detect", "extra": 1}), "extra"),
            (
                json!({"Records": [{"EventSource": "aws:sns", "Sns": {}}]}),
                "Records",
            ),
            (json!(42), "payload"),
        ] {
            let e = parse_event(&p, today).unwrap_err().to_string();
            assert!(e.contains(field), "{p}: {e}");
        }
    }

    /// Every sample in events/cost-anomaly/ parses into the job it stands for, and each SNS
    /// message is classified as its file name says.
    #[test]
    fn samples_parse() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/cost-anomaly");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("events dir") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let job = parse_event(&v, d("2026-12-01")).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Job::Messages(m) = job {
                let kind = crate::parse::classify(&m[0].message).kind().to_string();
                let want = if name.contains("truncated") || name.contains("unrecognised") {
                    "unrecognised"
                } else if name.contains("budget") {
                    "budget"
                } else {
                    "cost_anomaly"
                };
                assert_eq!(kind, want, "{name}");
            }
            n += 1;
        }
        assert!(n >= 9, "expected the sample events, found {n}");
    }
}
