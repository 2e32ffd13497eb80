//! The jobs, written against the ports: pull cost (cache first, request budget, pagination),
//! detect and deduplicate anomalies, forecast, write the monthly report, record SNS alerts,
//! keep budgets in place. Everything the run keeps between invocations lives in S3 under
//! `<REPORT_PREFIX>cost-anomaly/`, the report under `<REPORT_PREFIX>finops/`.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shared::config::CommonConfig;
use shared::notifications::{Action, PlaybookAlert, PLAYBOOK_ALERT_VERSION};
use shared::sns::{publish_alert, Publisher};
use shared::store::ObjectStore;
use shared::{SuiteError, SuiteResult};

use crate::analysis::{
    budget_status, days_between, delta_percent, find_anomalies, month_label, month_start,
    next_month, own_forecast, prev_month, project, round2, top_movers, Anomaly, BudgetStatus,
    DayCost, Projection, Table,
};
use crate::budgets::{plan, Drift};
use crate::config::Settings;
use crate::parse::{classify, Message, SnsEnvelope};
use crate::port::{BudgetsApi, CostQuery, CostSource};
use crate::report::{chart_svg, markdown, DataNote, EnvLine, MonthlyReport, ServiceLine, Snapshot};

/// Cost Explorer bills each request (each page) $0.01.
pub const CE_REQUEST_DOLLARS: f64 = 0.01;

pub struct Engine<'a, S: ObjectStore, C: CostSource, B: BudgetsApi, P: Publisher> {
    pub store: &'a S,
    pub ce: &'a C,
    pub budgets: &'a B,
    /// Where anomaly alerts go: `FINOPS_TOPIC_ARN`, the FinOps channel alert-router reads.
    pub publisher: &'a P,
    pub common: &'a CommonConfig,
    pub settings: &'a Settings,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FetchStats {
    /// GetCostAndUsage pages.
    pub requests: u32,
    /// GetCostForecast calls.
    pub forecast_requests: u32,
    pub cached_days: usize,
    pub fetched_days: usize,
    pub estimated_days: usize,
    pub budget_exhausted: bool,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CacheMonth {
    days: BTreeMap<NaiveDate, DayCost>,
}

/// What an anomaly alert looked like when last sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    pub first_seen_at: String,
    pub last_sent_at: String,
    pub impact: f64,
    pub end: NaiveDate,
    pub updates: u32,
    /// A trigger was published for it (stale ones never are): only those are resolved.
    #[serde(default)]
    pub notified: bool,
    /// When its resolve was published (a later growth re-opens it).
    #[serde(default)]
    pub resolved_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertAction {
    New,
    Updated,
    Unchanged,
    /// First seen long after it ended (a first run backfilling 90 days of history): recorded
    /// and reported, never paged: nobody can act on a two-month-old spike.
    Stale,
}

/// An anomaly that ended more than this many days before the run's `as_of` is stale when first
/// seen. Three days cover Cost Explorer's lag (up to 24 h) plus a missed daily run.
pub const STALE_AFTER_DAYS: i64 = 3;

/// Send again only when the anomaly grew: 10 % more impact, or more days.
pub fn alert_action(prev: Option<&AlertState>, a: &Anomaly, as_of: NaiveDate) -> AlertAction {
    match prev {
        None if (as_of - a.end).num_days() > STALE_AFTER_DAYS => AlertAction::Stale,
        None => AlertAction::New,
        Some(p) if a.impact > p.impact * 1.1 + 0.01 || a.end > p.end => AlertAction::Updated,
        Some(_) => AlertAction::Unchanged,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertOut {
    pub action: AlertAction,
    /// The SNS message id of the alert published for it this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    #[serde(flatten)]
    pub anomaly: Anomaly,
}

/// Everything one analysis found (the detect job's response and the report's source).
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub as_of: NaiveDate,
    pub fetch: FetchStats,
    #[serde(skip)]
    pub table: Table,
    pub anomalies: Vec<Anomaly>,
    /// Projection of the month of the newest day, per env and `all`.
    pub projections: BTreeMap<String, Projection>,
    pub budgets: Vec<BudgetStatus>,
    pub ce_forecast_note: Option<String>,
    pub month: NaiveDate,
    pub baseline_month: NaiveDate,
    pub baseline: BTreeMap<String, f64>,
    pub delta_percent: BTreeMap<String, Option<f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DetectOutcome {
    pub as_of: NaiveDate,
    pub month: String,
    pub fetch: FetchStats,
    pub days: usize,
    pub series: usize,
    pub alerts: Vec<AlertOut>,
    /// Anomalies alerted earlier and over now: a resolve was published for each.
    pub resolved: Vec<String>,
    pub open_anomalies: usize,
    pub projections: BTreeMap<String, Projection>,
    pub budgets: Vec<BudgetStatus>,
    pub delta_percent: BTreeMap<String, Option<f64>>,
    pub ce_forecast_note: Option<String>,
    /// Spend of the newest day per env.
    pub last_day: Option<NaiveDate>,
    pub last_day_spend: BTreeMap<String, f64>,
    pub report: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageOutcome {
    pub message_id: String,
    pub kind: String,
    /// `new`, `duplicate` (same budget/threshold/month or same anomaly and impact),
    /// `updated` (a Cost Anomaly Detection alert whose impact changed), `repeat_delivery`
    /// (the same SNS message again), `recorded` (unrecognised).
    pub action: String,
    pub dedup_key: Option<String>,
    pub reason: Option<String>,
    pub record: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BudgetOutcome {
    pub budget: String,
    pub drift: Vec<Drift>,
    pub fixed: Vec<String>,
    pub errors: Vec<String>,
}

/// The alert alert-router routes to the FinOps Slack channel and Jira `FINOPS`: one key per
/// anomaly (a growth re-notifies the same ticket), one idempotency id per publish.
/// `grew`: an earlier trigger for it went out (one first seen stale and growing now is new to
/// its readers).
pub fn anomaly_alert(
    an: &Anomaly,
    updates: u32,
    grew: bool,
    environment: &str,
    report: &str,
) -> PlaybookAlert {
    let kind = if grew { "grew" } else { "new" };
    let mut fields = vec![
        ("Environment".to_string(), an.env.clone()),
        ("Service".to_string(), an.service.clone()),
        ("Kind".to_string(), an.kind.clone()),
        ("Days".to_string(), format!("{} to {}", an.start, an.end)),
        ("Impact".to_string(), format!("${:.2}", an.impact)),
        (
            "Actual / expected".to_string(),
            format!("${:.2} / ${:.2}", an.actual, an.expected),
        ),
        (
            "Detected after".to_string(),
            format!("{} day(s)", an.detection_delay_days),
        ),
    ];
    if !an.contributors.is_empty() {
        fields.push((
            "Contributors".to_string(),
            an.contributors
                .iter()
                .take(3)
                .map(|c| format!("{} +${:.2}", c.service, c.excess_dollars))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    PlaybookAlert {
        playbook_alert: PLAYBOOK_ALERT_VERSION,
        id: Some(format!("cost-anomaly/{}/trigger/{updates}", an.key)),
        key: format!("cost-anomaly/{}", an.key),
        action: Action::Trigger,
        title: format!(
            "FinOps anomaly ({kind}): {} {} ${:.2} above expected ({:+.0} %)",
            an.env, an.service, an.impact, an.impact_percent
        ),
        summary: format!("{} [{environment}]", an.explanation),
        source: "cost-anomaly".into(),
        at: Some(format!("{}T00:00:00Z", an.flagged_on_data_of)),
        link: Some(report.to_string()),
        fields,
    }
}

/// The resolve of an anomaly alerted earlier: same key, its own idempotency id. `now` is the
/// anomaly as this run sees it (closed), `None` when it left the analysed window.
pub fn anomaly_resolved(
    key: &str,
    now: Option<&Anomaly>,
    st: &AlertState,
    report: &str,
) -> PlaybookAlert {
    let summary = match now {
        Some(an) => format!(
            "Spend is back to the expected level since {}: ${:.2} above expected over {} to {}.",
            an.end + Days::new(1),
            an.impact,
            an.start,
            an.end
        ),
        None => format!(
            "No longer in the analysed window; last seen ending {} with ${:.2} above expected.",
            st.end, st.impact
        ),
    };
    PlaybookAlert {
        playbook_alert: PLAYBOOK_ALERT_VERSION,
        id: Some(format!("cost-anomaly/{key}/resolve/{}", st.updates)),
        key: format!("cost-anomaly/{key}"),
        action: Action::Resolve,
        title: format!("FinOps anomaly over: {key}"),
        summary,
        source: "cost-anomaly".into(),
        at: None,
        link: Some(report.to_string()),
        fields: vec![],
    }
}

fn internal<E: std::fmt::Display>(e: E) -> SuiteError {
    SuiteError::Internal(e.to_string())
}

impl<S: ObjectStore, C: CostSource, B: BudgetsApi, P: Publisher> Engine<'_, S, C, B, P> {
    fn base(&self) -> String {
        format!("{}cost-anomaly/", self.common.report_prefix)
    }

    pub fn report_key(&self, month: NaiveDate, ext: &str) -> String {
        format!(
            "{}finops/{}.{ext}",
            self.common.report_prefix,
            month_label(month)
        )
    }

    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> SuiteResult<Option<T>> {
        let Some(b) = self
            .store
            .get_bytes(&self.common.report_bucket, key)
            .await?
        else {
            return Ok(None);
        };
        match serde_json::from_slice(&b) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                // State we cannot read is rebuilt rather than failing every run.
                tracing::warn!(key = %key, error = %e, "unreadable state object ignored");
                Ok(None)
            }
        }
    }

    async fn put_json<T: Serialize>(&self, key: &str, v: &T) -> SuiteResult<()> {
        let body = serde_json::to_vec_pretty(v).map_err(internal)?;
        self.store
            .put_bytes(
                &self.common.report_bucket,
                key,
                Bytes::from(body),
                "application/json",
            )
            .await
    }

    /// Daily cost over `[from, to)`: final days from the S3 cache, the rest from Cost
    /// Explorer (newest range first) within the run's request budget. A range whose pages
    /// were not all read is dropped (its days could be partial).
    pub async fn fetch(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        requests_left: &mut u32,
    ) -> SuiteResult<(BTreeMap<NaiveDate, DayCost>, FetchStats)> {
        let mut stats = FetchStats::default();
        let mut months: BTreeMap<NaiveDate, CacheMonth> = BTreeMap::new();
        let mut m = month_start(from);
        while m < to {
            let key = format!("{}cache/ce/{}.json", self.base(), month_label(m));
            months.insert(m, self.get_json(&key).await?.unwrap_or_default());
            m = next_month(m);
        }
        let mut data: BTreeMap<NaiveDate, DayCost> = BTreeMap::new();
        let mut missing = vec![];
        for d in days_between(from, to) {
            match months.get(&month_start(d)).and_then(|c| c.days.get(&d)) {
                Some(dc) => {
                    data.insert(d, dc.clone());
                    stats.cached_days += 1;
                }
                None => missing.push(d),
            }
        }
        // Contiguous ranges of missing days, newest first.
        let mut ranges: Vec<(NaiveDate, NaiveDate)> = vec![];
        for d in missing {
            match ranges.last_mut() {
                Some((_, end)) if *end == d => *end = d + Days::new(1),
                _ => ranges.push((d, d + Days::new(1))),
            }
        }
        ranges.reverse();
        let mut changed = BTreeSet::new();
        'ranges: for (start, end) in ranges {
            let q = CostQuery {
                start,
                end,
                tag_key: self.settings.tag_key.clone(),
            };
            let mut token: Option<String> = None;
            let mut got: BTreeMap<NaiveDate, DayCost> = BTreeMap::new();
            loop {
                if *requests_left == 0 {
                    stats.budget_exhausted = true;
                    stats.warnings.push(format!(
                        "request budget (FINOPS_CE_MAX_REQUESTS={}) exhausted: {start} to {end} not fetched",
                        self.settings.max_requests
                    ));
                    break 'ranges;
                }
                *requests_left -= 1;
                stats.requests += 1;
                let page = self.ce.cost_page(&q, token.as_deref()).await?;
                for dc in page.days {
                    if dc.day < start || dc.day >= end {
                        continue;
                    }
                    let e = got.entry(dc.day).or_insert_with(|| DayCost {
                        day: dc.day,
                        ..DayCost::default()
                    });
                    e.estimated |= dc.estimated;
                    for (env, svcs) in dc.rows {
                        for (svc, v) in svcs {
                            *e.rows
                                .entry(env.clone())
                                .or_default()
                                .entry(svc)
                                .or_default() += v;
                        }
                    }
                }
                match page.next_token {
                    Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                    _ => break,
                }
            }
            for (d, dc) in got {
                stats.fetched_days += 1;
                if dc.estimated {
                    stats.estimated_days += 1;
                } else if let Some(c) = months.get_mut(&month_start(d)) {
                    c.days.insert(d, dc.clone());
                    changed.insert(month_start(d));
                }
                data.insert(d, dc);
            }
        }
        for m in changed {
            if let Some(c) = months.get(&m) {
                self.put_json(
                    &format!("{}cache/ce/{}.json", self.base(), month_label(m)),
                    c,
                )
                .await?;
            }
        }
        Ok((data, stats))
    }

    /// Pulls, detects and projects with data before `as_of`; `month` is the month reported.
    pub async fn analyse(
        &self,
        as_of: NaiveDate,
        month: Option<NaiveDate>,
    ) -> SuiteResult<Analysis> {
        let s = self.settings;
        let from = as_of - Days::new(s.history_days as u64);
        let mut left = s.max_requests;
        let (data, mut fetch) = self.fetch(from, as_of, &mut left).await?;
        let table = Table::build(from, as_of, &data);
        let anomalies = find_anomalies(&table, &s.params);
        let newest = table.days.last().copied().unwrap_or(as_of - Days::new(1));
        let month = month.unwrap_or_else(|| month_start(newest));
        let baseline_month = match &s.baseline_month {
            Some(b) => crate::analysis::parse_month(b).map_err(internal)?,
            None => prev_month(month),
        };
        let mut scopes: Vec<Option<String>> = vec![None];
        scopes.extend(table.envs().into_iter().map(Some));
        for b in &s.budgets {
            if !scopes.contains(&b.env) {
                scopes.push(b.env.clone());
            }
        }
        let month_end = next_month(month);
        let mut projections = BTreeMap::new();
        let mut note = None;
        let mut ce_failed = false;
        for scope in &scopes {
            let mut p = project(&table, scope.as_deref(), month);
            if p.as_of < month_end && s.ce_forecast {
                if ce_failed {
                    // One failure says enough for this run; the rest would fail the same way.
                } else if left == 0 {
                    note = Some("not asked: request budget exhausted".to_string());
                } else {
                    left -= 1;
                    fetch.forecast_requests += 1;
                    match self
                        .ce
                        .forecast(p.as_of, month_end, &s.tag_key, scope.as_deref())
                        .await
                    {
                        Ok(v) => {
                            p.remaining_ce = Some(round2(v));
                            p.projected_ce = Some(round2(p.month_to_date + v));
                        }
                        Err(e) => {
                            ce_failed = true;
                            tracing::warn!(error = %e, scope = scope.as_deref().unwrap_or("all"), "GetCostForecast failed; own model only");
                            note = Some(format!("GetCostForecast unavailable: {e}"));
                        }
                    }
                }
            }
            projections.insert(scope.clone().unwrap_or_else(|| "all".into()), p);
        }
        let budgets = s
            .budgets
            .iter()
            .filter_map(|b| {
                let p = projections.get(b.env.as_deref().unwrap_or("all"))?;
                Some(budget_status(b, p))
            })
            .collect();
        let mut baseline = BTreeMap::new();
        let mut delta = BTreeMap::new();
        for (scope, p) in &projections {
            let env = (scope != "all").then_some(scope.as_str());
            let b = round2(table.total(env, baseline_month, next_month(baseline_month)));
            baseline.insert(scope.clone(), b);
            delta.insert(scope.clone(), delta_percent(p.projected_own, b));
        }
        Ok(Analysis {
            as_of,
            fetch,
            table,
            anomalies,
            projections,
            budgets,
            ce_forecast_note: note,
            month,
            baseline_month,
            baseline,
            delta_percent: delta,
        })
    }

    /// Publishes one playbook alert to the FinOps topic (`Ok(None)` when none is set).
    async fn publish(&self, alert: &PlaybookAlert) -> SuiteResult<Option<String>> {
        let Some(topic) = self.settings.topic_arn.as_deref() else {
            return Ok(None);
        };
        publish_alert(self.publisher, topic, "cost-anomaly", alert)
            .await
            .map(Some)
    }

    async fn publish_alert(
        &self,
        an: &Anomaly,
        updates: u32,
        grew: bool,
    ) -> SuiteResult<Option<String>> {
        self.publish(&anomaly_alert(
            an,
            updates,
            grew,
            &self.common.environment,
            &self.report_link(an.end),
        ))
        .await
    }

    async fn publish_resolve(
        &self,
        key: &str,
        now: Option<&Anomaly>,
        st: &AlertState,
    ) -> SuiteResult<Option<String>> {
        self.publish(&anomaly_resolved(key, now, st, &self.report_link(st.end)))
            .await
    }

    /// The monthly report the anomaly shows in, as an S3 URI a person can open.
    fn report_link(&self, day: NaiveDate) -> String {
        format!(
            "s3://{}/{}",
            self.common.report_bucket,
            self.report_key(month_start(day), "md")
        )
    }

    /// The daily job: analyse, send new / grown anomaly alerts once, keep a forecast snapshot,
    /// refresh the month's report.
    pub async fn detect(&self, as_of: NaiveDate, now: DateTime<Utc>) -> SuiteResult<DetectOutcome> {
        let a = self.analyse(as_of, None).await?;
        let state_key = format!("{}state/anomalies.json", self.base());
        let mut state: BTreeMap<String, AlertState> =
            self.get_json(&state_key).await?.unwrap_or_default();
        let mut alerts = vec![];
        let stamp = now.to_rfc3339();
        // Publish first, then keep the state: a run that dies between the two publishes the
        // same alert again on its retry, with the same idempotency id (alert-router delivers
        // it once); the other order could lose an alert.
        for an in &a.anomalies {
            let action = alert_action(state.get(&an.key), an, as_of);
            let mut published = None;
            match action {
                AlertAction::New | AlertAction::Stale => {
                    let notified = action == AlertAction::New;
                    if notified {
                        published = self.publish_alert(an, 0, false).await?;
                    }
                    state.insert(
                        an.key.clone(),
                        AlertState {
                            first_seen_at: stamp.clone(),
                            last_sent_at: stamp.clone(),
                            impact: an.impact,
                            end: an.end,
                            updates: 0,
                            notified,
                            resolved_at: None,
                        },
                    );
                }
                AlertAction::Updated => {
                    let prev = state.get(&an.key);
                    let updates = prev.map_or(0, |p| p.updates) + 1;
                    let grew = prev.is_some_and(|p| p.notified);
                    published = self.publish_alert(an, updates, grew).await?;
                    if let Some(p) = state.get_mut(&an.key) {
                        p.last_sent_at = stamp.clone();
                        p.impact = an.impact;
                        p.end = an.end;
                        p.updates = updates;
                        p.notified = true;
                        p.resolved_at = None;
                    }
                }
                AlertAction::Unchanged => {}
            }
            if matches!(action, AlertAction::New | AlertAction::Updated) {
                tracing::warn!(
                    alert = "cost_anomaly",
                    action = ?action,
                    key = %an.key,
                    env = %an.env,
                    service = %an.service,
                    kind = %an.kind,
                    impact = an.impact,
                    detection_delay_days = an.detection_delay_days,
                    explanation = %an.explanation,
                    published = ?published,
                    "FinOps anomaly alert"
                );
            }
            alerts.push(AlertOut {
                action,
                published,
                anomaly: an.clone(),
            });
        }
        // Over: alerted, not resolved, and now closed, or gone from the analysis (it ended
        // before the window). One triggered in this run waits for the next.
        let mut resolved = vec![];
        let current: BTreeMap<&str, &Anomaly> =
            a.anomalies.iter().map(|x| (x.key.as_str(), x)).collect();
        let triggered: BTreeSet<&str> = alerts
            .iter()
            .filter(|x| x.published.is_some())
            .map(|x| x.anomaly.key.as_str())
            .collect();
        for (key, st) in state.iter_mut() {
            if !st.notified || st.resolved_at.is_some() || triggered.contains(key.as_str()) {
                continue;
            }
            let over = match current.get(key.as_str()) {
                Some(an) => !an.open,
                None => true,
            };
            if !over {
                continue;
            }
            self.publish_resolve(key, current.get(key.as_str()).copied(), st)
                .await?;
            st.resolved_at = Some(stamp.clone());
            tracing::info!(alert = "cost_anomaly", key = %key, "FinOps anomaly over: resolve published");
            resolved.push(key.clone());
        }
        self.put_json(&state_key, &state).await?;

        // One forecast snapshot per data day, so the report can show forecast against actual.
        let snap_key = format!(
            "{}state/forecasts/{}.json",
            self.base(),
            month_label(a.month)
        );
        let mut snaps: BTreeMap<NaiveDate, Snapshot> =
            self.get_json(&snap_key).await?.unwrap_or_default();
        if let Some(p) = a.projections.get("all") {
            snaps.insert(
                p.as_of,
                Snapshot {
                    as_of: p.as_of,
                    month_to_date: p.month_to_date,
                    projected_own: p.projected_own,
                    projected_ce: p.projected_ce,
                },
            );
            self.put_json(&snap_key, &snaps).await?;
        }
        let report = self.write_report(&a, now).await?;
        let last_day = a.table.days.last().copied();
        let mut last_day_spend = BTreeMap::new();
        if let Some(d) = last_day {
            for env in a.table.envs() {
                last_day_spend.insert(
                    env.clone(),
                    round2(a.table.total(Some(&env), d, d + Days::new(1))),
                );
            }
        }
        Ok(DetectOutcome {
            as_of,
            month: month_label(a.month),
            days: a.table.days.len(),
            series: a.table.series.len(),
            open_anomalies: a.anomalies.iter().filter(|x| x.open).count(),
            alerts,
            resolved,
            projections: a.projections.clone(),
            budgets: a.budgets.clone(),
            delta_percent: a.delta_percent.clone(),
            ce_forecast_note: a.ce_forecast_note.clone(),
            fetch: a.fetch.clone(),
            last_day,
            last_day_spend,
            report,
        })
    }

    /// The monthly job: the report of `month` with data up to `as_of` (normally the 1st of
    /// the next month, so the report is final).
    pub async fn monthly(
        &self,
        month: NaiveDate,
        as_of: NaiveDate,
        now: DateTime<Utc>,
    ) -> SuiteResult<(Analysis, String)> {
        let as_of = as_of.min(next_month(month));
        let a = self.analyse(as_of, Some(month)).await?;
        let key = self.write_report(&a, now).await?;
        Ok((a, key))
    }

    /// Writes `finops/YYYY-MM.svg`, `.md`, then `.json` (the completion marker).
    pub async fn write_report(&self, a: &Analysis, now: DateTime<Utc>) -> SuiteResult<String> {
        let month = a.month;
        let end = next_month(month);
        let t = &a.table;
        let totals = t.daily_totals(None);
        let daily: Vec<(NaiveDate, f64)> = t
            .days
            .iter()
            .zip(&totals)
            .filter(|(d, _)| **d >= month && **d < end)
            .map(|(d, v)| (*d, round2(*v)))
            .collect();
        let proj = a.projections.get("all");
        let projected_daily: Vec<(NaiveDate, f64)> = match proj {
            Some(p) if p.as_of < end => days_between(p.as_of, end)
                .map(|d| (d, round2(own_forecast(t, None, d, d + Days::new(1)))))
                .collect(),
            _ => vec![],
        };
        let in_month: Vec<Anomaly> = a
            .anomalies
            .iter()
            .filter(|x| x.end >= month && x.start < end)
            .cloned()
            .collect();
        let anomaly_days: Vec<NaiveDate> = in_month
            .iter()
            .flat_map(|x| days_between(x.start.max(month), (x.end + Days::new(1)).min(end)))
            .collect();
        let account_budget = self
            .settings
            .budgets
            .iter()
            .find(|b| b.env.is_none())
            .map(|b| b.limit)
            .or_else(|| {
                let s: f64 = self.settings.budgets.iter().map(|b| b.limit).sum();
                (s > 0.0).then_some(s)
            });
        let chart_key = self.report_key(month, "svg");
        let chart = match chart_svg(
            month,
            &daily,
            &projected_daily,
            account_budget,
            &anomaly_days,
        ) {
            Ok(svg) => {
                self.store
                    .put_bytes(
                        &self.common.report_bucket,
                        &chart_key,
                        Bytes::from(svg),
                        "image/svg+xml",
                    )
                    .await?;
                Some(chart_key)
            }
            Err(e) => {
                tracing::warn!(error = %e, "chart not drawn");
                None
            }
        };
        let actual = round2(t.total(None, month, end));
        let mut by_env = vec![];
        for env in t.envs() {
            let p = a.projections.get(&env);
            by_env.push(EnvLine {
                actual: round2(t.total(Some(&env), month, end)),
                baseline: a.baseline.get(&env).copied().unwrap_or(0.0),
                projected_own: p.map(|p| p.projected_own).unwrap_or(0.0),
                projected_ce: p.and_then(|p| p.projected_ce),
                delta_percent: a.delta_percent.get(&env).copied().flatten(),
                env,
            });
        }
        let mut svc: BTreeMap<String, f64> = BTreeMap::new();
        for ((_, s), v) in &t.series {
            let x: f64 = v
                .iter()
                .zip(&t.days)
                .filter(|(_, d)| **d >= month && **d < end)
                .map(|(x, _)| x)
                .sum();
            *svc.entry(s.clone()).or_default() += x;
        }
        let mut by_service: Vec<ServiceLine> = svc
            .into_iter()
            .map(|(service, x)| ServiceLine {
                service,
                actual: round2(x),
                share_percent: if actual > 0.0 {
                    round2(x / actual * 100.0)
                } else {
                    0.0
                },
            })
            .collect();
        by_service.sort_by(|a, b| b.actual.total_cmp(&a.actual));
        let snaps: BTreeMap<NaiveDate, Snapshot> = self
            .get_json(&format!(
                "{}state/forecasts/{}.json",
                self.base(),
                month_label(month)
            ))
            .await?
            .unwrap_or_default();
        let messages: BTreeMap<String, u64> = self
            .get_json(&format!(
                "{}state/messages-{}.json",
                self.base(),
                month_label(month)
            ))
            .await?
            .unwrap_or_default();
        let p_all = proj.cloned();
        let r = MonthlyReport {
            month: month_label(month),
            generated_at: now.to_rfc3339(),
            environment: self.common.environment.clone(),
            deployment: self.common.deployment.clone(),
            complete: t.days.last().is_some_and(|d| *d + Days::new(1) >= end)
                && days_between(month, end).all(|d| t.days.contains(&d)),
            data: DataNote {
                first_day: t.days.first().copied(),
                last_day: t.days.last().copied(),
                estimated_days: t.estimated.len(),
                missing_days: t.missing.len(),
                ce_requests: a.fetch.requests,
                request_budget_exhausted: a.fetch.budget_exhausted,
            },
            actual,
            projected_own: p_all.as_ref().map(|p| p.projected_own).unwrap_or(actual),
            projected_ce: p_all.as_ref().and_then(|p| p.projected_ce),
            ce_forecast_note: a.ce_forecast_note.clone(),
            baseline_month: month_label(a.baseline_month),
            baseline_actual: a.baseline.get("all").copied().unwrap_or(0.0),
            monthly_delta_percent: a.delta_percent.get("all").copied().flatten(),
            by_env,
            by_service,
            budgets: a.budgets.clone(),
            forecast_history: snaps.into_values().collect(),
            anomalies: in_month,
            movers: top_movers(t, month, a.baseline_month, 8),
            messages,
            chart_key: chart,
            daily,
        };
        let md = markdown(&r);
        self.store
            .put_bytes(
                &self.common.report_bucket,
                &self.report_key(month, "md"),
                Bytes::from(md),
                "text/markdown; charset=utf-8",
            )
            .await?;
        let key = self.report_key(month, "json");
        self.put_json(&key, &r).await?;
        Ok(key)
    }

    /// Records each SNS message (raw text kept) and deduplicates alerts.
    pub async fn messages(
        &self,
        envs: &[SnsEnvelope],
        now: DateTime<Utc>,
    ) -> SuiteResult<Vec<MessageOutcome>> {
        let mut out = vec![];
        for e in envs {
            let when = e
                .timestamp
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(now);
            let month = when.format("%Y-%m").to_string();
            let safe_id: String = e
                .message_id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(80)
                .collect();
            let record_key = format!(
                "{}messages/{}/{}.json",
                self.base(),
                when.format("%Y-%m-%d"),
                safe_id
            );
            let msg = classify(&e.message);
            let kind = msg.kind().to_string();
            if self
                .store
                .get_bytes(&self.common.report_bucket, &record_key)
                .await?
                .is_some()
            {
                out.push(MessageOutcome {
                    message_id: e.message_id.clone(),
                    kind,
                    action: "repeat_delivery".into(),
                    dedup_key: None,
                    reason: None,
                    record: record_key,
                });
                continue;
            }
            let (action, dedup_key, reason) = match &msg {
                Message::Budget(b) => {
                    let key = format!("{}state/budget-alerts-{month}.json", self.base());
                    let mut seen: BTreeMap<String, String> =
                        self.get_json(&key).await?.unwrap_or_default();
                    let k = b.dedup_key(&month);
                    let action = if seen.contains_key(&k) {
                        "duplicate"
                    } else {
                        seen.insert(k.clone(), e.message_id.clone());
                        self.put_json(&key, &seen).await?;
                        tracing::warn!(alert = "budget", budget = %b.budget_name, alert_type = ?b.alert_type, threshold_percent = b.threshold_percent.unwrap_or(0.0), amount = b.amount.unwrap_or(0.0), "FinOps budget alert");
                        "new"
                    };
                    (action.to_string(), Some(k), None)
                }
                Message::CostAnomaly(c) => {
                    let key = format!("{}state/cad-alerts.json", self.base());
                    let mut seen: BTreeMap<String, Option<f64>> =
                        self.get_json(&key).await?.unwrap_or_default();
                    let action = match seen.get(&c.anomaly_id) {
                        None => "new",
                        Some(prev) if *prev != c.total_impact => "updated",
                        Some(_) => "duplicate",
                    };
                    if action != "duplicate" {
                        seen.insert(c.anomaly_id.clone(), c.total_impact);
                        self.put_json(&key, &seen).await?;
                        tracing::warn!(alert = "cost_anomaly_detection", anomaly_id = %c.anomaly_id, impact = c.total_impact.unwrap_or(0.0), action = action, "AWS Cost Anomaly Detection alert");
                    }
                    (action.to_string(), Some(c.anomaly_id.clone()), None)
                }
                Message::Playbook(p) => {
                    // The subscription's filter policy keeps the suite's own alerts away; one
                    // that arrives anyway is alert-router's to route, not an AWS alert.
                    tracing::info!(message_id = %e.message_id, key = %p.key, source = %p.source, "playbook alert recorded, not acted on");
                    (
                        "ignored".to_string(),
                        Some(p.key.clone()),
                        Some("a playbook alert: alert-router routes it".to_string()),
                    )
                }
                Message::Unrecognised { reason, .. } => {
                    tracing::warn!(message_id = %e.message_id, topic = %e.topic_arn, reason = %reason, "unrecognised SNS message recorded");
                    ("recorded".to_string(), None, Some(reason.clone()))
                }
            };
            let record = serde_json::json!({
                "message_id": e.message_id,
                "topic_arn": e.topic_arn,
                "subject": e.subject,
                "timestamp": e.timestamp,
                "received_at": now.to_rfc3339(),
                "action": action,
                "message": msg,
                "raw": e.message,
            });
            self.put_json(&record_key, &record).await?;
            let counts_key = format!("{}state/messages-{month}.json", self.base());
            let mut counts: BTreeMap<String, u64> =
                self.get_json(&counts_key).await?.unwrap_or_default();
            *counts.entry(kind.clone()).or_default() += 1;
            self.put_json(&counts_key, &counts).await?;
            out.push(MessageOutcome {
                message_id: e.message_id.clone(),
                kind,
                action,
                dedup_key,
                reason,
                record: record_key,
            });
        }
        Ok(out)
    }

    /// Checks every configured budget; fixes what drifted unless `dry_run`.
    pub async fn ensure_budgets(&self, dry_run: bool) -> SuiteResult<Vec<BudgetOutcome>> {
        let s = self.settings;
        let (Some(account), Some(topic)) = (s.account_id.as_deref(), s.topic_arn.as_deref()) else {
            return Ok(vec![]);
        };
        let mut out = vec![];
        for spec in &s.budgets {
            let observed = self.budgets.describe(account, &spec.name).await?;
            let drift = plan(spec, &s.thresholds, topic, &s.tag_key, observed.as_ref());
            let mut fixed = vec![];
            let mut errors = vec![];
            if !dry_run {
                let mut limit_done = false;
                for d in &drift {
                    let r = match d {
                        Drift::Missing => {
                            self.budgets
                                .create(account, spec, &s.tag_key, &s.thresholds, topic)
                                .await
                        }
                        Drift::LimitDiffers { .. } | Drift::FilterDiffers { .. } if !limit_done => {
                            limit_done = true;
                            self.budgets.update_limit(account, spec, &s.tag_key).await
                        }
                        Drift::NotificationMissing { kind, percent }
                        | Drift::SubscriberMissing { kind, percent } => {
                            let Some(t) = s
                                .thresholds
                                .iter()
                                .find(|t| t.kind.as_str() == kind && t.percent == *percent)
                            else {
                                continue;
                            };
                            if matches!(d, Drift::NotificationMissing { .. }) {
                                self.budgets
                                    .add_notification(account, &spec.name, t, topic)
                                    .await
                            } else {
                                self.budgets
                                    .add_subscriber(account, &spec.name, t, topic)
                                    .await
                            }
                        }
                        _ => continue,
                    };
                    match r {
                        Ok(()) => fixed.push(serde_json::to_string(d).unwrap_or_default()),
                        Err(e) => {
                            tracing::error!(budget = %spec.name, error = %e, "budget fix failed");
                            errors.push(e.to_string());
                        }
                    }
                }
            }
            tracing::info!(budget = %spec.name, drift = drift.len(), fixed = fixed.len(), dry_run, "budget checked");
            out.push(BudgetOutcome {
                budget: spec.name.clone(),
                drift,
                fixed,
                errors,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_are_sent_once_and_again_only_when_grown() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let mut a = Anomaly {
            key: "prod/EC2/2026-10-01".into(),
            env: "prod".into(),
            service: "EC2".into(),
            kind: "drift".into(),
            start: d("2026-10-01"),
            end: d("2026-10-03"),
            flagged_on_data_of: d("2026-10-03"),
            detection_delay_days: 2,
            open: true,
            expected: 100.0,
            actual: 200.0,
            impact: 100.0,
            impact_percent: 100.0,
            contributors: vec![],
            explanation: String::new(),
        };
        let today = a.end + Days::new(1);
        assert_eq!(alert_action(None, &a, today), AlertAction::New);
        // First seen weeks after it ended (a first run's backfill): recorded, not paged.
        assert_eq!(
            alert_action(None, &a, a.end + Days::new(30)),
            AlertAction::Stale
        );
        let st = AlertState {
            first_seen_at: "t".into(),
            last_sent_at: "t".into(),
            impact: 100.0,
            end: a.end,
            updates: 0,
            notified: true,
            resolved_at: None,
        };
        assert_eq!(alert_action(Some(&st), &a, today), AlertAction::Unchanged);
        a.impact = 105.0;
        assert_eq!(alert_action(Some(&st), &a, today), AlertAction::Unchanged);
        a.end = d("2026-10-04");
        assert_eq!(alert_action(Some(&st), &a, today), AlertAction::Updated);
    }
}
