//! Labelled synthetic daily cost series for the evaluation (`make bench`), the demo and tests:
//! weekly seasonality, multiplicative noise, month-start charges, and injected spikes, level
//! shifts and slow drifts, from a fixed seed. Also the scoring (precision, recall, delay).

use chrono::NaiveDate;
use serde::Serialize;

use crate::detect::Finding;

/// SplitMix64: small, fast, and the same numbers on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(1e-12);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Spike,
    LevelShift,
    Drift,
    /// Month-start charges only: any alarm is a false one.
    MonthStart,
    /// Weekly seasonality and noise only (some series worth cents): any alarm is false.
    Clean,
}

impl Class {
    pub const ALL: [Class; 5] = [
        Class::Spike,
        Class::LevelShift,
        Class::Drift,
        Class::MonthStart,
        Class::Clean,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Spike => "spike",
            Class::LevelShift => "level_shift",
            Class::Drift => "drift",
            Class::MonthStart => "month_start",
            Class::Clean => "clean",
        }
    }
    /// How late a detection may come and still count for the label.
    fn window(self, ramp: usize) -> usize {
        match self {
            Class::Spike => 2,
            Class::LevelShift => 7,
            _ => ramp.max(7),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Label {
    pub class: Class,
    pub start: usize,
    /// Days a drift ramps (1 for spikes and shifts).
    pub ramp: usize,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub class: Class,
    pub days: Vec<NaiveDate>,
    pub values: Vec<f64>,
    pub labels: Vec<Label>,
}

/// First day scored: detections and labels before it are warm-up.
pub const SCORED_FROM: usize = 42;

/// One series of `class`, `n` days from `start`.
pub fn series(rng: &mut Rng, class: Class, start: NaiveDate, n: usize) -> Series {
    let days: Vec<NaiveDate> = (0..n)
        .map(|i| start + chrono::Days::new(i as u64))
        .collect();
    let cheap = class == Class::Clean && rng.f64() < 0.3;
    let level = if cheap {
        rng.range(1.0, 20.0)
    } else {
        (rng.range(50f64.ln(), 5000f64.ln())).exp()
    };
    let weekend = rng.range(0.5, 1.0);
    let noise = if cheap { 0.12 } else { rng.range(0.02, 0.06) };
    let month_charge = if class == Class::MonthStart || rng.f64() < 0.2 {
        level * rng.range(1.0, 4.0)
    } else {
        0.0
    };
    let mut mult = vec![1.0; n];
    let mut labels = vec![];
    let mut t = SCORED_FROM + 7 + (rng.f64() * 10.0) as usize;
    while t + 20 < n {
        match class {
            Class::Spike => {
                let k = rng.range(0.6, 3.0);
                let len = if rng.f64() < 0.25 { 2 } else { 1 };
                for m in mult.iter_mut().skip(t).take(len) {
                    *m *= 1.0 + k;
                }
                labels.push(Label {
                    class,
                    start: t,
                    ramp: 1,
                });
                t += 25 + (rng.f64() * 10.0) as usize;
            }
            Class::LevelShift => {
                let k = rng.range(0.3, 1.0);
                for m in mult.iter_mut().skip(t) {
                    *m *= 1.0 + k;
                }
                labels.push(Label {
                    class,
                    start: t,
                    ramp: 1,
                });
                t += 40 + (rng.f64() * 10.0) as usize;
            }
            Class::Drift => {
                let slope = rng.range(0.04, 0.08);
                let ramp = 10 + (rng.f64() * 10.0) as usize;
                for (i, m) in mult.iter_mut().enumerate().skip(t) {
                    *m *= 1.0 + slope * ((i - t + 1).min(ramp) as f64);
                }
                labels.push(Label {
                    class,
                    start: t,
                    ramp,
                });
                t += 45 + (rng.f64() * 10.0) as usize;
            }
            Class::MonthStart | Class::Clean => break,
        }
    }
    let values = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            use chrono::Datelike;
            let w = if d.weekday().num_days_from_monday() >= 5 {
                weekend
            } else {
                1.0
            };
            let base = level * w * mult[i] * (1.0 + noise * rng.normal()).max(0.05);
            let ms = if d.day() == 1 {
                month_charge * (1.0 + 0.05 * rng.normal())
            } else {
                0.0
            };
            ((base + ms) * 100.0).round() / 100.0
        })
        .collect();
    Series {
        class,
        days,
        values,
        labels,
    }
}

/// `per_class` series of every class, `n` days each, from `seed`.
pub fn dataset(seed: u64, per_class: usize, n: usize) -> Vec<Series> {
    let mut rng = Rng::new(seed);
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default();
    let mut out = vec![];
    for class in Class::ALL {
        for _ in 0..per_class {
            out.push(series(&mut rng, class, start, n));
        }
    }
    out
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Score {
    pub labels: usize,
    pub detected: usize,
    pub alarms: usize,
    pub false_alarms: usize,
    pub delay_sum: usize,
    pub series: usize,
}

impl Score {
    pub fn recall(&self) -> Option<f64> {
        (self.labels > 0).then(|| self.detected as f64 / self.labels as f64)
    }
    pub fn precision(&self) -> Option<f64> {
        (self.alarms > 0).then(|| (self.alarms - self.false_alarms) as f64 / self.alarms as f64)
    }
    pub fn mean_delay(&self) -> Option<f64> {
        (self.detected > 0).then(|| self.delay_sum as f64 / self.detected as f64)
    }
    pub fn add(&mut self, o: &Score) {
        self.labels += o.labels;
        self.detected += o.detected;
        self.alarms += o.alarms;
        self.false_alarms += o.false_alarms;
        self.delay_sum += o.delay_sum;
        self.series += o.series;
    }
}

/// Scores one series' alarms against its labels. An alarm matches a label when the day that
/// raised it lies in `[label.start, label.start + window]`; an alarm that matches nothing, or
/// a label already matched, is false (so a duplicate alert counts against precision).
pub fn score(s: &Series, findings: &[Finding]) -> Score {
    let mut sc = Score {
        labels: s.labels.iter().filter(|l| l.start >= SCORED_FROM).count(),
        series: 1,
        ..Score::default()
    };
    let mut matched = vec![false; s.labels.len()];
    for f in findings.iter().filter(|f| f.first_flag >= SCORED_FROM) {
        sc.alarms += 1;
        let hit = s.labels.iter().enumerate().find(|(i, l)| {
            !matched[*i]
                && f.first_flag >= l.start
                && f.first_flag <= l.start + l.class.window(l.ramp)
        });
        match hit {
            Some((i, l)) => {
                matched[i] = true;
                sc.detected += 1;
                sc.delay_sum += f.first_flag - l.start;
            }
            None => sc.false_alarms += 1,
        }
    }
    sc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data() {
        let a = dataset(7, 2, 120);
        let b = dataset(7, 2, 120);
        assert_eq!(a.len(), 10);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.values, y.values);
            assert_eq!(x.labels, y.labels);
        }
        assert!(a
            .iter()
            .filter(|s| s.class == Class::Spike)
            .all(|s| !s.labels.is_empty()));
    }

    #[test]
    fn scoring_counts_duplicates_and_misses() {
        let s = Series {
            class: Class::Spike,
            days: vec![],
            values: vec![],
            labels: vec![
                Label {
                    class: Class::Spike,
                    start: 50,
                    ramp: 1,
                },
                Label {
                    class: Class::Spike,
                    start: 80,
                    ramp: 1,
                },
            ],
        };
        let f = |flag| Finding {
            kind: crate::detect::Kind::Spike,
            start: flag,
            first_flag: flag,
            end: flag,
            open: false,
            expected: 0.0,
            actual: 0.0,
        };
        let sc = score(&s, &[f(51), f(52), f(70)]);
        assert_eq!(
            (
                sc.labels,
                sc.detected,
                sc.alarms,
                sc.false_alarms,
                sc.delay_sum
            ),
            (2, 1, 3, 2, 1)
        );
        assert_eq!(sc.recall(), Some(0.5));
    }
}
