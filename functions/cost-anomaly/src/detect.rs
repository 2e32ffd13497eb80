//! Anomaly detection on one daily cost series (pure). Two detectors, both causal (the decision
//! about day `t` uses days `..=t` only, so a replay over history is what the daily run would
//! have said on each day):
//!
//! - **seasonal robust** (spikes, the first days of level shifts): multiplicative weekly
//!   factors from the median ratio of each weekday to a centred 7-day median over the last 8
//!   weeks; level = median of the last 7 deseasonalised days; scale = median |first
//!   difference| / 0.954 (a Gaussian σ estimate that level shifts and drifts do not inflate).
//!   A day is anomalous when its excess is above `spike_sigmas`·σ AND above the dollar floor
//!   AND above the percentage gate. Month-start charges (day 1) are expected when the previous
//!   month's day 1 carried them too.
//! - **drift / level shift**: a one-sided CUSUM (Page 1954) on robust residuals against a
//!   reference level frozen when the excursion starts, with residuals capped at ±3σ so one
//!   spike cannot raise it alone (robust CUSUM). An alarm also needs the run's dollar excess
//!   above the floor and the recent mean above the drift percentage gate. The anomaly stays
//!   open (and grows) while spend stays above the reference; after 28 days the new level is
//!   accepted as normal.
//!
//! Overlapping findings of the two detectors are merged into one anomaly (one alert).
//! [`zscore_baseline`] is the plain z-score detector the evaluation compares against.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// An anomaly must cost at least this many dollars (a day for spikes, the run for drifts).
    pub dollar_floor: f64,
    /// A spike day must be at least this many percent above expected.
    pub percent_gate: f64,
    /// A drift's recent mean must be at least this many percent above its reference.
    pub drift_percent_gate: f64,
    pub spike_sigmas: f64,
    pub cusum_k: f64,
    pub cusum_h: f64,
    /// Days of non-zero history a series needs before it is judged.
    pub warmup_days: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            dollar_floor: 10.0,
            percent_gate: 20.0,
            drift_percent_gate: 10.0,
            spike_sigmas: 4.0,
            cusum_k: 0.75,
            cusum_h: 5.0,
            warmup_days: 14,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Spike,
    LevelShift,
    Drift,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Spike => "spike",
            Kind::LevelShift => "level_shift",
            Kind::Drift => "drift",
        }
    }
}

/// One anomaly on one series, by day index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: Kind,
    /// First anomalous day.
    pub start: usize,
    /// The day whose data raised it (detection delay = first_flag - start).
    pub first_flag: usize,
    /// Last anomalous day so far.
    pub end: usize,
    /// Whether it was still anomalous on the last day of the series.
    pub open: bool,
    pub expected: f64,
    pub actual: f64,
}

impl Finding {
    /// Dollars above expected over the anomaly's days.
    pub fn impact(&self) -> f64 {
        (self.actual - self.expected).max(0.0)
    }
}

pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The per-day model the detectors share (exposed for the forecast and the report).
#[derive(Debug, Clone)]
pub struct Model {
    /// Weekly factors (Monday = 0) as estimated with data before `t`.
    pub factors: [f64; 7],
    pub level: f64,
    pub sigma: f64,
}

fn wd(d: NaiveDate) -> usize {
    d.weekday().num_days_from_monday() as usize
}

/// Centred 7-day medians (index s uses s-3..=s+3; only read for s + 3 < t).
fn centred_medians(x: &[f64]) -> Vec<f64> {
    (0..x.len())
        .map(|s| {
            let lo = s.saturating_sub(3);
            let hi = (s + 4).min(x.len());
            median(&mut x[lo..hi].to_vec()).unwrap_or(0.0)
        })
        .collect()
}

/// The model for day `t`, from days before `t` only.
pub fn model_at(days: &[NaiveDate], x: &[f64], cm: &[f64], t: usize) -> Model {
    let mut per_wd: [Vec<f64>; 7] = Default::default();
    let lo = t.saturating_sub(56);
    for s in lo..t.saturating_sub(3) {
        if days[s].day() == 1 || cm[s] <= 0.0 {
            continue;
        }
        per_wd[wd(days[s])].push(x[s] / cm[s]);
    }
    let mut factors = [1.0; 7];
    for (i, v) in per_wd.iter_mut().enumerate() {
        if v.len() >= 2 {
            factors[i] = median(v).unwrap_or(1.0).clamp(0.2, 5.0);
        }
    }
    let des = |s: usize| x[s] / factors[wd(days[s])];
    let mut recent: Vec<f64> = (t.saturating_sub(7)..t)
        .filter(|&s| days[s].day() != 1)
        .map(des)
        .collect();
    let level = median(&mut recent).unwrap_or(0.0);
    let mut diffs: Vec<f64> = (t.saturating_sub(28).max(1)..t)
        .map(|s| (des(s) - des(s - 1)).abs())
        .collect();
    let sigma = (median(&mut diffs).unwrap_or(0.0) / 0.954)
        .max(0.01 * level)
        .max(0.01);
    Model {
        factors,
        level,
        sigma,
    }
}

/// The previous month's day 1 before `t`, if `t` is a day 1 and it is in the series.
fn previous_month_start(days: &[NaiveDate], t: usize) -> Option<usize> {
    if days[t].day() != 1 {
        return None;
    }
    let prev = days[t].checked_sub_months(chrono::Months::new(1))?;
    let back = (days[t] - prev).num_days() as usize;
    t.checked_sub(back).filter(|&i| days[i] == prev)
}

/// Expected spend on day `t` given a level: the weekly factor, or the month-start charge seen
/// on the previous month's day 1 when that is higher.
fn expected_with(days: &[NaiveDate], x: &[f64], m: &Model, level: f64, t: usize) -> f64 {
    let base = level * m.factors[wd(days[t])];
    match previous_month_start(days, t) {
        Some(p) => base.max(x[p]),
        None => base,
    }
}

struct Run {
    start: usize,
    first_flag: usize,
    end: usize,
    kind: Kind,
}

/// Runs both detectors over the series (`days` consecutive, one value each) and returns the
/// merged anomalies, oldest first.
pub fn detect(days: &[NaiveDate], x: &[f64], p: &Params) -> Vec<Finding> {
    detect_with_expected(days, x, p).0
}

/// [`detect`], plus the expected value of every day (the actual value before the warm-up).
pub fn detect_with_expected(days: &[NaiveDate], x: &[f64], p: &Params) -> (Vec<Finding>, Vec<f64>) {
    let n = x.len().min(days.len());
    let x = &x[..n];
    let Some(first_spend) = x.iter().position(|v| *v > 0.0) else {
        return (vec![], x.to_vec());
    };
    let begin = first_spend + p.warmup_days.max(8);
    if n <= begin {
        return (vec![], x.to_vec());
    }
    let cm = centred_medians(x);
    let mut expected = x.to_vec();
    let mut spike_days = vec![false; n];
    let mut runs: Vec<Run> = vec![];

    // CUSUM state.
    let mut s_sum = 0.0;
    let mut frozen: Option<(f64, f64, usize)> = None; // (reference level, sigma, run start)
    let mut open_drift: Option<(usize, usize, usize, usize)> = None; // (start, flag, end, quiet)

    for t in begin..n {
        let m = model_at(days, x, &cm, t);
        let f = m.factors[wd(days[t])];
        let e = expected_with(days, x, &m, m.level, t);
        expected[t] = e;
        let excess = x[t] - e;
        if excess > p.spike_sigmas * m.sigma * f
            && excess >= p.dollar_floor
            && excess >= p.percent_gate / 100.0 * e
        {
            spike_days[t] = true;
        }

        // Reference: the median of the last 14 deseasonalised days, frozen during a run.
        let (ref_level, ref_sigma, run_start) = match frozen {
            Some(fz) => fz,
            None => {
                let mut v: Vec<f64> = (t.saturating_sub(14)..t)
                    .filter(|&s| days[s].day() != 1)
                    .map(|s| x[s] / m.factors[wd(days[s])])
                    .collect();
                (median(&mut v).unwrap_or(m.level), m.sigma, t)
            }
        };
        let e_ref = expected_with(days, x, &m, ref_level, t);
        let z = ((x[t] - e_ref) / (ref_sigma * f)).clamp(-3.0, 3.0);
        s_sum = (s_sum + z - p.cusum_k).max(0.0);
        if s_sum > 0.0 && frozen.is_none() {
            frozen = Some((ref_level, ref_sigma, run_start));
        }
        if open_drift.is_none() && (s_sum == 0.0 || t - run_start > 14) {
            // A run that has not alarmed within two weeks is noise around a stale reference:
            // start again from the current level.
            if s_sum > 0.0 && t - run_start > 14 {
                s_sum = 0.0;
            }
            frozen = None;
        }
        let mut close = false;
        match open_drift.as_mut() {
            Some((start, _, end, quiet)) => {
                expected[t] = expected[t].min(e_ref);
                if x[t] - e_ref > ref_sigma * f {
                    *end = t;
                    *quiet = 0;
                } else {
                    *quiet += 1;
                }
                close = *quiet >= 3 || t - *start >= 28;
            }
            None if s_sum > p.cusum_h => {
                let (rl, _, rs) = frozen.unwrap_or((ref_level, ref_sigma, t));
                let run_excess: f64 = (rs..=t)
                    .map(|s| x[s] - expected_with(days, x, &m, rl, s))
                    .sum();
                let k = t.saturating_sub(2).max(rs);
                let recent_actual: f64 = x[k..=t].iter().sum();
                let recent_ref: f64 = (k..=t).map(|s| expected_with(days, x, &m, rl, s)).sum();
                let gate = 1.0 + p.drift_percent_gate / 100.0;
                if run_excess >= p.dollar_floor
                    && recent_actual >= recent_ref * gate
                    && x[t] >= expected_with(days, x, &m, rl, t) * gate
                {
                    // The run starts on the first day above the reference.
                    let start = (rs..=t)
                        .find(|&s| x[s] > expected_with(days, x, &m, rl, s))
                        .unwrap_or(rs);
                    for (s, ex) in expected.iter_mut().enumerate().take(t + 1).skip(start) {
                        *ex = ex.min(expected_with(days, x, &m, rl, s));
                    }
                    open_drift = Some((start, t, t, 0));
                }
            }
            None => {}
        }
        if close {
            if let Some((st, fl, en, _)) = open_drift.take() {
                runs.push(Run {
                    start: st,
                    first_flag: fl,
                    end: en,
                    kind: Kind::Drift,
                });
            }
            s_sum = 0.0;
            frozen = None;
        }
    }
    if let Some((st, fl, en, _)) = open_drift {
        runs.push(Run {
            start: st,
            first_flag: fl,
            end: en,
            kind: Kind::Drift,
        });
    }
    // Spike runs: consecutive flagged days (a one-day gap joins them).
    let mut t = begin;
    while t < n {
        if spike_days[t] {
            let start = t;
            let mut end = t;
            let mut u = t + 1;
            while u < n && (spike_days[u] || (u + 1 < n && spike_days[u + 1] && u == end + 1)) {
                if spike_days[u] {
                    end = u;
                }
                u += 1;
            }
            runs.push(Run {
                start,
                first_flag: start,
                end,
                kind: if end - start >= 3 {
                    Kind::LevelShift
                } else {
                    Kind::Spike
                },
            });
            t = end + 1;
        } else {
            t += 1;
        }
    }
    let findings = merge(runs, x, &expected, n);
    (findings, expected)
}

fn merge(mut runs: Vec<Run>, x: &[f64], expected: &[f64], n: usize) -> Vec<Finding> {
    runs.sort_by_key(|r| (r.start, r.first_flag));
    let mut out: Vec<Run> = vec![];
    for r in runs {
        match out.last_mut() {
            Some(last) if r.start <= last.end + 2 => {
                // The detector that fired first names the anomaly; a spike that lasts is a shift.
                if r.first_flag < last.first_flag {
                    last.kind = r.kind;
                    last.first_flag = r.first_flag;
                }
                last.end = last.end.max(r.end);
                last.start = last.start.min(r.start);
                if last.kind == Kind::Spike && last.end - last.start >= 3 {
                    last.kind = Kind::LevelShift;
                }
            }
            _ => out.push(r),
        }
    }
    out.into_iter()
        .map(|r| Finding {
            kind: r.kind,
            start: r.start,
            first_flag: r.first_flag,
            end: r.end,
            open: r.end + 3 >= n,
            expected: expected[r.start..=r.end].iter().sum(),
            actual: x[r.start..=r.end].iter().sum(),
        })
        .collect()
}

/// The plain baseline: z = (x - mean of the last 28 days) / their standard deviation, a day
/// flagged when z > 3 (with the same dollar floor and percentage gate), consecutive flagged
/// days grouped into one anomaly.
pub fn zscore_baseline(x: &[f64], p: &Params) -> Vec<Finding> {
    let n = x.len();
    let Some(first) = x.iter().position(|v| *v > 0.0) else {
        return vec![];
    };
    let begin = first + p.warmup_days.max(8);
    let mut runs = vec![];
    let mut expected = vec![0.0; n];
    let mut flagged = vec![false; n];
    for t in begin.min(n)..n {
        let w = &x[t.saturating_sub(28)..t];
        let mean = w.iter().sum::<f64>() / w.len() as f64;
        let var = w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / w.len() as f64;
        let sd = var.sqrt().max(0.01);
        expected[t] = mean;
        let excess = x[t] - mean;
        flagged[t] = excess / sd > 3.0
            && excess >= p.dollar_floor
            && excess >= p.percent_gate / 100.0 * mean;
    }
    let mut t = begin;
    while t < n {
        if flagged[t] {
            let start = t;
            while t + 1 < n && flagged[t + 1] {
                t += 1;
            }
            runs.push(Run {
                start,
                first_flag: start,
                end: t,
                kind: Kind::Spike,
            });
        }
        t += 1;
    }
    merge(runs, x, &expected, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: usize) -> Vec<NaiveDate> {
        let d0 = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        (0..n).map(|i| d0 + chrono::Days::new(i as u64)).collect()
    }

    /// A weekly pattern (weekends at 60 %) with small deterministic noise.
    fn seasonal(n: usize, level: f64) -> (Vec<NaiveDate>, Vec<f64>) {
        let d = days(n);
        let x = d
            .iter()
            .enumerate()
            .map(|(i, day)| {
                let w = if day.weekday().num_days_from_monday() >= 5 {
                    0.6
                } else {
                    1.0
                };
                level * w * (1.0 + 0.02 * ((i * 7919 % 13) as f64 / 6.0 - 1.0))
            })
            .collect();
        (d, x)
    }

    #[test]
    fn weekly_seasonality_alone_is_not_anomalous() {
        let (d, x) = seasonal(120, 500.0);
        assert_eq!(detect(&d, &x, &Params::default()), vec![]);
    }

    #[test]
    fn spike_is_found_on_its_day_with_expected_and_impact() {
        let (d, mut x) = seasonal(120, 500.0);
        x[80] *= 3.0;
        let f = detect(&d, &x, &Params::default());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].kind, f[0].start, f[0].first_flag, f[0].end),
            (Kind::Spike, 80, 80, 80)
        );
        assert!(
            (f[0].impact() - x[80] * 2.0 / 3.0).abs() < 0.05 * x[80],
            "{f:?}"
        );
    }

    #[test]
    fn cents_do_not_page() {
        let (d, mut x) = seasonal(120, 2.0);
        x[80] *= 4.0; // +$6: under the $10 floor
        assert_eq!(detect(&d, &x, &Params::default()), vec![]);
    }

    #[test]
    fn slow_drift_is_found_within_days_and_reported_once() {
        let (d, mut x) = seasonal(150, 1000.0);
        for (i, v) in x.iter_mut().enumerate().skip(70) {
            *v *= 1.0 + 0.05 * ((i - 69).min(15) as f64);
        }
        let f = detect(&d, &x, &Params::default());
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].first_flag <= 73, "{f:?}");
        assert!(f[0].start >= 68 && f[0].start <= 71, "{f:?}");
    }

    #[test]
    fn recurring_month_start_charges_are_expected() {
        let (d, mut x) = seasonal(150, 500.0);
        for (i, day) in d.iter().enumerate() {
            if day.day() == 1 {
                x[i] += 1500.0;
            }
        }
        let f = detect(&d, &x, &Params::default());
        assert!(
            f.iter()
                .all(|f| d[f.start] < NaiveDate::from_ymd_opt(2026, 2, 2).unwrap()),
            "{f:?}"
        );
    }

    #[test]
    fn short_or_empty_series_give_nothing() {
        assert!(detect(&days(5), &[1.0; 5], &Params::default()).is_empty());
        assert!(detect(&days(50), &[0.0; 50], &Params::default()).is_empty());
        assert!(zscore_baseline(&[0.0; 50], &Params::default()).is_empty());
    }
}
