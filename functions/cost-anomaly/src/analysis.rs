//! From daily cost rows to what the run reports (pure): the (env, service) series, their
//! anomalies with expected / actual / impact / contributors / delay, the month-end forecast
//! (own model), budget status and the monthly delta.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Days, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::config::BudgetSpec;
use crate::detect::{detect_with_expected, model_at, Params};

/// The spend of one day as Cost Explorer gave it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DayCost {
    pub day: NaiveDate,
    /// Cost Explorer marks days still being billed `Estimated`; they are never cached.
    pub estimated: bool,
    /// (env, service) → unblended USD.
    pub rows: BTreeMap<String, BTreeMap<String, f64>>,
}

pub fn parse_month(s: &str) -> Result<NaiveDate, String> {
    let s = s.trim();
    NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d")
        .ok()
        .filter(|_| s.len() == 7)
        .ok_or_else(|| format!("{s:?} is not a month like 2026-11"))
}

pub fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

pub fn next_month(d: NaiveDate) -> NaiveDate {
    month_start(d)
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(d)
}

pub fn prev_month(d: NaiveDate) -> NaiveDate {
    month_start(d)
        .checked_sub_months(chrono::Months::new(1))
        .unwrap_or(d)
}

pub fn month_label(d: NaiveDate) -> String {
    d.format("%Y-%m").to_string()
}

pub fn days_between(a: NaiveDate, b: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    let n = (b - a).num_days().max(0) as u64;
    (0..n).filter_map(move |i| a.checked_add_days(Days::new(i)))
}

/// Consecutive days and one value a day per (env, service).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    pub days: Vec<NaiveDate>,
    pub series: BTreeMap<(String, String), Vec<f64>>,
    pub estimated: BTreeSet<NaiveDate>,
    /// Days of the wanted range with no data (request budget exhausted).
    pub missing: Vec<NaiveDate>,
}

impl Table {
    /// The longest run of consecutive available days ending at the newest one in
    /// `[from, to)` (recent days matter most for detection); earlier gaps are reported.
    pub fn build(from: NaiveDate, to: NaiveDate, data: &BTreeMap<NaiveDate, DayCost>) -> Table {
        let wanted: Vec<NaiveDate> = days_between(from, to).collect();
        let missing: Vec<NaiveDate> = wanted
            .iter()
            .copied()
            .filter(|d| !data.contains_key(d))
            .collect();
        let last = wanted.iter().rposition(|d| data.contains_key(d));
        let Some(last) = last else {
            return Table {
                missing,
                ..Table::default()
            };
        };
        let mut first = last;
        while first > 0 && data.contains_key(&wanted[first - 1]) {
            first -= 1;
        }
        let days = wanted[first..=last].to_vec();
        let mut series: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        let mut estimated = BTreeSet::new();
        for (i, d) in days.iter().enumerate() {
            let Some(dc) = data.get(d) else { continue };
            if dc.estimated {
                estimated.insert(*d);
            }
            for (env, svcs) in &dc.rows {
                for (svc, amount) in svcs {
                    let v = series
                        .entry((env.clone(), svc.clone()))
                        .or_insert_with(|| vec![0.0; days.len()]);
                    v[i] += amount;
                }
            }
        }
        Table {
            days,
            series,
            estimated,
            missing,
        }
    }

    pub fn envs(&self) -> BTreeSet<String> {
        self.series.keys().map(|(e, _)| e.clone()).collect()
    }

    /// Total of the series matching `env` (all when `None`) over `[from, to)`.
    pub fn total(&self, env: Option<&str>, from: NaiveDate, to: NaiveDate) -> f64 {
        self.series
            .iter()
            .filter(|((e, _), _)| env.is_none_or(|x| x == e))
            .map(|(_, v)| {
                v.iter()
                    .zip(&self.days)
                    .filter(|(_, d)| **d >= from && **d < to)
                    .map(|(x, _)| x)
                    .sum::<f64>()
            })
            .sum()
    }

    /// Per-day totals over the table's days.
    pub fn daily_totals(&self, env: Option<&str>) -> Vec<f64> {
        let mut out = vec![0.0; self.days.len()];
        for ((e, _), v) in &self.series {
            if env.is_none_or(|x| x == e) {
                for (o, x) in out.iter_mut().zip(v) {
                    *o += x;
                }
            }
        }
        out
    }

    /// The day after the newest day with data.
    pub fn as_of(&self) -> Option<NaiveDate> {
        self.days.last().and_then(|d| d.succ_opt())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contributor {
    pub env: String,
    pub service: String,
    pub excess_dollars: f64,
    pub share_percent: f64,
}

/// One anomaly as alerted and reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Stable across runs: `env/service/start`.
    pub key: String,
    pub env: String,
    pub service: String,
    pub kind: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// The day whose data raised it.
    pub flagged_on_data_of: NaiveDate,
    /// flagged_on_data_of − start, in days (0: raised by the first anomalous day's own data).
    pub detection_delay_days: i64,
    pub open: bool,
    pub expected: f64,
    pub actual: f64,
    pub impact: f64,
    pub impact_percent: f64,
    pub contributors: Vec<Contributor>,
    pub explanation: String,
}

pub fn anomaly_key(env: &str, service: &str, start: NaiveDate) -> String {
    format!("{env}/{service}/{start}")
}

/// Runs the detectors on every series and explains each finding.
pub fn find_anomalies(t: &Table, p: &Params) -> Vec<Anomaly> {
    let mut expected: BTreeMap<&(String, String), Vec<f64>> = BTreeMap::new();
    let mut findings = vec![];
    for (k, v) in &t.series {
        let (f, e) = detect_with_expected(&t.days, v, p);
        expected.insert(k, e);
        findings.extend(f.into_iter().map(|f| (k, f)));
    }
    let mut out = vec![];
    for ((env, svc), f) in findings {
        let range = f.start..=f.end;
        let mut movers: Vec<(String, f64)> = t
            .series
            .iter()
            .filter(|((e, _), _)| e == env)
            .map(|(k, v)| {
                let ex = &expected[k];
                let excess: f64 = range.clone().map(|i| v[i] - ex[i]).sum();
                (k.1.clone(), excess)
            })
            .filter(|(_, x)| *x > 0.0)
            .collect();
        movers.sort_by(|a, b| b.1.total_cmp(&a.1));
        let rise: f64 = movers.iter().map(|(_, x)| x).sum();
        let contributors: Vec<Contributor> = movers
            .iter()
            .take(5)
            .map(|(s, x)| Contributor {
                env: env.clone(),
                service: s.clone(),
                excess_dollars: round2(*x),
                share_percent: if rise > 0.0 {
                    round2(x / rise * 100.0)
                } else {
                    0.0
                },
            })
            .collect();
        let impact = f.impact();
        let impact_percent = if f.expected > 0.0 {
            impact / f.expected * 100.0
        } else {
            0.0
        };
        let share = contributors
            .iter()
            .find(|c| &c.service == svc)
            .map(|c| c.share_percent)
            .unwrap_or(0.0);
        let others: Vec<String> = contributors
            .iter()
            .filter(|c| &c.service != svc)
            .take(2)
            .map(|c| format!("{} +${:.0}", c.service, c.excess_dollars))
            .collect();
        let days = f.end - f.start + 1;
        let mut explanation = format!(
            "{svc} in {env}: ${:.2} against ${:.2} expected over {days} day{} (+{:.0} %), a {} from {}; {:.0} % of {env}'s rise over those days",
            f.actual,
            f.expected,
            if days == 1 { "" } else { "s" },
            impact_percent,
            f.kind.as_str().replace('_', " "),
            t.days[f.start],
            share
        );
        if !others.is_empty() {
            explanation.push_str(&format!("; also rising: {}", others.join(", ")));
        }
        out.push(Anomaly {
            key: anomaly_key(env, svc, t.days[f.start]),
            env: env.clone(),
            service: svc.clone(),
            kind: f.kind.as_str().to_string(),
            start: t.days[f.start],
            end: t.days[f.end],
            flagged_on_data_of: t.days[f.first_flag],
            detection_delay_days: (f.first_flag - f.start) as i64,
            open: f.open,
            expected: round2(f.expected),
            actual: round2(f.actual),
            impact: round2(impact),
            impact_percent: round2(impact_percent),
            contributors,
            explanation,
        });
    }
    out.sort_by(|a, b| b.start.cmp(&a.start).then(b.impact.total_cmp(&a.impact)));
    out
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Month-end projection for one scope (an env, or everything).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    pub month: String,
    /// First day without data.
    pub as_of: NaiveDate,
    pub month_to_date: f64,
    /// The suite's model: each series' current level × its weekday factor, per remaining day.
    pub remaining_own: f64,
    pub projected_own: f64,
    /// Cost Explorer's GetCostForecast for the remaining days (None: not asked or failed).
    pub remaining_ce: Option<f64>,
    pub projected_ce: Option<f64>,
}

/// The own model's forecast of `[from, to)` for the series matching `env`.
pub fn own_forecast(t: &Table, env: Option<&str>, from: NaiveDate, to: NaiveDate) -> f64 {
    let n = t.days.len();
    if n == 0 {
        return 0.0;
    }
    let mut total = 0.0;
    for ((e, _), x) in &t.series {
        if env.is_some_and(|want| want != e) {
            continue;
        }
        let cm: Vec<f64> = (0..n)
            .map(|s| {
                let mut w = x[s.saturating_sub(3)..(s + 4).min(n)].to_vec();
                crate::detect::median(&mut w).unwrap_or(0.0)
            })
            .collect();
        // The model for "the day after the last one": index n over a series extended by one.
        let mut days = t.days.clone();
        days.push(days[n - 1].succ_opt().unwrap_or(days[n - 1]));
        let mut xs = x.clone();
        xs.push(0.0);
        let mut cms = cm;
        cms.push(0.0);
        let m = model_at(&days, &xs, &cms, n);
        for d in days_between(from, to) {
            let f = m.factors[d.weekday().num_days_from_monday() as usize];
            let mut v = m.level * f;
            if d.day() == 1 {
                // A month-start charge seen on the last day 1 in the table recurs.
                if let Some(i) = t.days.iter().rposition(|x| x.day() == 1) {
                    v = v.max(x[i]);
                }
            }
            total += v;
        }
    }
    total
}

/// Projection of `month` (its first day) for `env`, with data up to the table's end.
pub fn project(t: &Table, env: Option<&str>, month: NaiveDate) -> Projection {
    let end = next_month(month);
    let as_of = t.as_of().unwrap_or(month).clamp(month, end);
    let mtd = t.total(env, month, as_of);
    let remaining = own_forecast(t, env, as_of, end);
    Projection {
        month: month_label(month),
        as_of,
        month_to_date: round2(mtd),
        remaining_own: round2(remaining),
        projected_own: round2(mtd + remaining),
        remaining_ce: None,
        projected_ce: None,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub budget: String,
    pub env: Option<String>,
    pub limit: f64,
    pub month_to_date: f64,
    pub utilisation_percent: f64,
    pub projected_own: f64,
    pub projected_ce: Option<f64>,
    pub projected_percent: f64,
    /// `ok`, `warning` (≥ 80 % used), `forecast_over` (projected above the limit), `over`.
    pub status: String,
}

pub fn budget_status(b: &BudgetSpec, p: &Projection) -> BudgetStatus {
    let util = p.month_to_date / b.limit * 100.0;
    let projected = p
        .projected_ce
        .unwrap_or(p.projected_own)
        .max(p.projected_own);
    let proj_pct = projected / b.limit * 100.0;
    let status = if util >= 100.0 {
        "over"
    } else if proj_pct > 100.0 {
        "forecast_over"
    } else if util >= 80.0 {
        "warning"
    } else {
        "ok"
    };
    BudgetStatus {
        budget: b.name.clone(),
        env: b.env.clone(),
        limit: b.limit,
        month_to_date: p.month_to_date,
        utilisation_percent: round2(util),
        projected_own: p.projected_own,
        projected_ce: p.projected_ce,
        projected_percent: round2(proj_pct),
        status: status.into(),
    }
}

/// `finops_monthly_delta_percent`: (projected month end − baseline month actual) / baseline.
pub fn delta_percent(projected: f64, baseline: f64) -> Option<f64> {
    (baseline > 0.0).then(|| round2((projected - baseline) / baseline * 100.0))
}

/// Services whose average daily spend moved most between the baseline month and `month`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mover {
    pub env: String,
    pub service: String,
    pub baseline_daily: f64,
    pub daily: f64,
    pub change_daily: f64,
}

pub fn top_movers(t: &Table, month: NaiveDate, baseline: NaiveDate, n: usize) -> Vec<Mover> {
    let avg = |v: &Vec<f64>, from: NaiveDate, to: NaiveDate| {
        let xs: Vec<f64> = v
            .iter()
            .zip(&t.days)
            .filter(|(_, d)| **d >= from && **d < to)
            .map(|(x, _)| *x)
            .collect();
        if xs.is_empty() {
            0.0
        } else {
            xs.iter().sum::<f64>() / xs.len() as f64
        }
    };
    let mut out: Vec<Mover> = t
        .series
        .iter()
        .map(|((e, s), v)| {
            let b = avg(v, baseline, next_month(baseline));
            let m = avg(v, month, next_month(month));
            Mover {
                env: e.clone(),
                service: s.clone(),
                baseline_daily: round2(b),
                daily: round2(m),
                change_daily: round2(m - b),
            }
        })
        .collect();
    out.sort_by(|a, b| b.change_daily.abs().total_cmp(&a.change_daily.abs()));
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn data(from: &str, n: usize, f: impl Fn(usize) -> f64) -> BTreeMap<NaiveDate, DayCost> {
        (0..n)
            .map(|i| {
                let day = d(from) + Days::new(i as u64);
                let mut rows = BTreeMap::new();
                rows.insert(
                    "prod".to_string(),
                    BTreeMap::from([("EC2".to_string(), f(i)), ("S3".to_string(), 10.0)]),
                );
                rows.insert(
                    "dev".to_string(),
                    BTreeMap::from([("EC2".to_string(), 5.0)]),
                );
                (
                    day,
                    DayCost {
                        day,
                        estimated: i + 1 == n,
                        rows,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn months() {
        assert_eq!(parse_month("2026-11").unwrap(), d("2026-11-01"));
        assert!(parse_month("2026-1").is_err());
        assert!(parse_month("Nov").is_err());
        assert_eq!(next_month(d("2026-12-15")), d("2027-01-01"));
        assert_eq!(prev_month(d("2026-01-15")), d("2025-12-01"));
    }

    #[test]
    fn table_keeps_the_newest_consecutive_days() {
        let mut m = data("2026-10-01", 40, |_| 100.0);
        m.remove(&d("2026-10-05"));
        let t = Table::build(d("2026-09-25"), d("2026-11-10"), &m);
        assert_eq!(t.days.first(), Some(&d("2026-10-06")));
        assert_eq!(t.days.last(), Some(&d("2026-11-09")));
        assert_eq!(t.as_of(), Some(d("2026-11-10")));
        assert!(t.missing.contains(&d("2026-10-05")) && t.missing.contains(&d("2026-09-30")));
        assert_eq!(t.series.len(), 3);
        assert_eq!(t.total(Some("dev"), d("2026-11-01"), d("2026-11-10")), 45.0);
        assert!(t.estimated.contains(&d("2026-11-09")));
    }

    #[test]
    fn anomaly_is_explained_with_contributors() {
        let m = data("2026-09-01", 70, |i| if i == 60 { 400.0 } else { 100.0 });
        let t = Table::build(d("2026-09-01"), d("2026-11-10"), &m);
        let a = find_anomalies(&t, &Params::default());
        assert_eq!(a.len(), 1, "{a:?}");
        let a = &a[0];
        assert_eq!(a.key, "prod/EC2/2026-10-31");
        assert_eq!((a.expected, a.actual, a.impact), (100.0, 400.0, 300.0));
        assert_eq!(a.detection_delay_days, 0);
        assert_eq!(a.contributors[0].service, "EC2");
        assert_eq!(a.contributors[0].share_percent, 100.0);
        assert!(a.explanation.contains("EC2 in prod"), "{}", a.explanation);
    }

    #[test]
    fn projection_and_budget() {
        let m = data("2026-09-01", 70, |_| 100.0); // through 2026-11-09
        let t = Table::build(d("2026-09-01"), d("2026-11-10"), &m);
        let p = project(&t, Some("prod"), d("2026-11-01"));
        assert_eq!(p.as_of, d("2026-11-10"));
        assert_eq!(p.month_to_date, 990.0);
        assert_eq!(p.remaining_own, 21.0 * 110.0);
        assert_eq!(p.projected_own, 3300.0);
        let b = BudgetSpec {
            name: "prod".into(),
            limit: 3000.0,
            env: Some("prod".into()),
        };
        let s = budget_status(&b, &p);
        assert_eq!(s.status, "forecast_over");
        assert_eq!(s.utilisation_percent, 33.0);
        assert_eq!(delta_percent(3300.0, 3000.0), Some(10.0));
        assert_eq!(delta_percent(1.0, 0.0), None);
        let movers = top_movers(&t, d("2026-10-01"), d("2026-09-01"), 2);
        assert_eq!(movers.len(), 2);
    }
}
