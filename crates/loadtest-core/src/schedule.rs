//! The one global arrival schedule. Request `i` (0-based) is due at `t0 + offset(i)`, where
//! `offset` inverts the cumulative arrival count N(t) = ∫ rate. A slice is a time window
//! `[from, to)` of the schedule; a shard of a slice takes the indices `i` in the window with
//! `i % shard_count == shard_index`. Coordinator and shards compute the same thing from the
//! same scenario, so nothing but (window, stripe) travels in the invocation.

use std::ops::Range;
use std::time::Duration;

use crate::scenario::{
    parse_duration, ConstantArrivalRate, Executor, RampingArrivalRate, Scenario,
};

/// One piece of the rate curve: the rate goes linearly from `r0` to `r1` (arrivals per µs)
/// over `[start_us, start_us + len_us)`; `n0` arrivals are due before it starts.
#[derive(Debug, Clone, PartialEq)]
struct Segment {
    start_us: f64,
    len_us: f64,
    r0: f64,
    r1: f64,
    n0: f64,
}

impl Segment {
    fn count_at(&self, t_us: f64) -> f64 {
        let t = (t_us - self.start_us).clamp(0.0, self.len_us);
        let slope = if self.len_us > 0.0 {
            (self.r1 - self.r0) / self.len_us
        } else {
            0.0
        };
        self.n0 + self.r0 * t + 0.5 * slope * t * t
    }

    /// The time at which the cumulative count reaches `n` (n0 ≤ n ≤ n0 + count).
    fn time_of(&self, n: f64) -> f64 {
        let m = n - self.n0;
        if m <= 0.0 {
            return self.start_us;
        }
        let slope = if self.len_us > 0.0 {
            (self.r1 - self.r0) / self.len_us
        } else {
            0.0
        };
        let t = if slope.abs() < 1e-18 {
            if self.r0 > 0.0 {
                m / self.r0
            } else {
                self.len_us
            }
        } else {
            // 0.5·slope·t² + r0·t − m = 0, the root in [0, len]; written to avoid cancellation.
            let disc = (self.r0 * self.r0 + 2.0 * slope * m).max(0.0);
            2.0 * m / (self.r0 + disc.sqrt())
        };
        self.start_us + t.clamp(0.0, self.len_us)
    }
}

/// The arrival schedule of an arrival-rate scenario (SSE scenarios have none: see
/// [`Schedule::from_scenario`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    segments: Vec<Segment>,
    total: u64,
    end_us: f64,
}

// Counts within this distance of an integer are that integer (float noise at boundaries).
const EPS: f64 = 1e-6;

impl Schedule {
    /// `None` for SSE scenarios (they hold streams; nothing is scheduled per request).
    pub fn from_scenario(s: &Scenario) -> Option<Schedule> {
        match &s.executor {
            Executor::ConstantArrivalRate(ConstantArrivalRate {
                rate,
                time_unit,
                duration,
                ..
            }) => {
                let unit = parse_duration(time_unit).ok()?.as_secs_f64() * 1e6;
                let r = rate / unit;
                let len = parse_duration(duration).ok()?.as_secs_f64() * 1e6;
                Some(Schedule::build(&[(len, r, r)]))
            }
            Executor::RampingArrivalRate(RampingArrivalRate {
                start_rate,
                time_unit,
                stages,
                ..
            }) => {
                let unit = parse_duration(time_unit).ok()?.as_secs_f64() * 1e6;
                let mut prev = start_rate / unit;
                let mut pieces = Vec::new();
                for st in stages {
                    let len = parse_duration(&st.duration).ok()?.as_secs_f64() * 1e6;
                    let next = st.target / unit;
                    pieces.push((len, prev, next));
                    prev = next;
                }
                Some(Schedule::build(&pieces))
            }
            Executor::SseClients(_) => None,
        }
    }

    /// A constant rate (arrivals per second) for `duration`: handy for tests and benches.
    pub fn constant(per_second: f64, duration: Duration) -> Schedule {
        let r = per_second / 1e6;
        Schedule::build(&[(duration.as_secs_f64() * 1e6, r, r)])
    }

    fn build(pieces: &[(f64, f64, f64)]) -> Schedule {
        let mut segments = Vec::with_capacity(pieces.len());
        let mut start = 0.0;
        let mut n0 = 0.0;
        for &(len, r0, r1) in pieces {
            let seg = Segment {
                start_us: start,
                len_us: len,
                r0,
                r1,
                n0,
            };
            n0 = seg.count_at(start + len);
            start += len;
            segments.push(seg);
        }
        // Indices i with N(offset) = i < N(end): ceil(N(end)), treating near-integers as exact.
        let total = ceil_eps(n0) as u64;
        Schedule {
            segments,
            total,
            end_us: start,
        }
    }

    /// How many requests the whole scenario schedules.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Length of the schedule.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.end_us as u64)
    }

    /// Cumulative arrivals due before `t` (fractional).
    fn count_at(&self, t_us: f64) -> f64 {
        let mut n = 0.0;
        for seg in &self.segments {
            if t_us < seg.start_us {
                break;
            }
            n = seg.count_at(t_us);
        }
        n
    }

    /// When request `i` is due, relative to t0; `None` past the end.
    pub fn offset(&self, i: u64) -> Option<Duration> {
        if i >= self.total {
            return None;
        }
        let n = i as f64;
        for seg in &self.segments {
            let end_n = seg.count_at(seg.start_us + seg.len_us);
            if n < end_n - EPS || std::ptr::eq(seg, self.segments.last()?) {
                return Some(Duration::from_nanos(
                    (seg.time_of(n) * 1000.0).round() as u64
                ));
            }
        }
        None
    }

    /// The indices due in `[from, to)`.
    pub fn indices_in(&self, from: Duration, to: Duration) -> Range<u64> {
        let a = ceil_eps(self.count_at(from.as_secs_f64() * 1e6)) as u64;
        let b = ceil_eps(self.count_at(to.as_secs_f64() * 1e6)) as u64;
        let b = if to.as_secs_f64() * 1e6 >= self.end_us {
            self.total
        } else {
            b
        };
        a.min(self.total)..b.min(self.total).max(a.min(self.total))
    }

    /// The indices of `stripe` (shard `k` of `n`) due in `[from, to)`.
    pub fn stripe_in(
        &self,
        from: Duration,
        to: Duration,
        k: u32,
        n: u32,
    ) -> impl Iterator<Item = u64> {
        let r = self.indices_in(from, to);
        let n = u64::from(n.max(1));
        let k = u64::from(k) % n;
        let first = r.start + (k + n - r.start % n) % n;
        (first..r.end).step_by(n as usize)
    }
}

fn ceil_eps(x: f64) -> f64 {
    let r = x.round();
    if (x - r).abs() < EPS {
        r
    } else {
        x.ceil()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Stage;

    #[test]
    fn constant_rate_is_exact() {
        // 40 req/min for 15 min = 600 requests, one every 1.5 s.
        let s = Schedule::constant(40.0 / 60.0, Duration::from_secs(900));
        assert_eq!(s.total(), 600);
        assert_eq!(s.offset(0), Some(Duration::ZERO));
        assert_eq!(s.offset(1), Some(Duration::from_millis(1500)));
        assert_eq!(s.offset(599), Some(Duration::from_millis(898_500)));
        assert_eq!(s.offset(600), None);
        assert_eq!(s.indices_in(Duration::ZERO, Duration::from_secs(3)), 0..2);
        assert_eq!(
            s.indices_in(Duration::from_secs(3), Duration::from_secs(900)),
            2..600
        );
    }

    #[test]
    fn slices_and_stripes_partition_the_schedule() {
        let s = Schedule::constant(1.0, Duration::from_secs(1200));
        let cuts = [0u64, 300, 600, 777, 1200];
        let mut seen = vec![0u32; s.total() as usize];
        for w in cuts.windows(2) {
            for k in 0..3 {
                for i in s.stripe_in(Duration::from_secs(w[0]), Duration::from_secs(w[1]), k, 3) {
                    assert_eq!(i % 3, u64::from(k));
                    seen[i as usize] += 1;
                }
            }
        }
        assert!(
            seen.iter().all(|&c| c == 1),
            "every request in exactly one (slice, shard)"
        );
    }

    #[test]
    fn ramping_offsets_are_monotonic_and_count_matches_the_area() {
        let sc = Scenario {
            name: "r".into(),
            description: None,
            target: crate::scenario::Target {
                base_url: "http://h".into(),
            },
            executor: Executor::RampingArrivalRate(RampingArrivalRate {
                start_rate: 0.0,
                time_unit: "1s".into(),
                stages: vec![
                    Stage {
                        target: 10.0,
                        duration: "10s".into(),
                    },
                    Stage {
                        target: 10.0,
                        duration: "10s".into(),
                    },
                    Stage {
                        target: 0.0,
                        duration: "10s".into(),
                    },
                ],
                max_in_flight: 10,
            }),
            request: crate::scenario::RequestSpec {
                method: "GET".into(),
                path: "/".into(),
                headers: Default::default(),
                body: None,
            },
            timeout: "1s".into(),
            thresholds: Default::default(),
            baseline: None,
            tags: Default::default(),
        };
        let s = Schedule::from_scenario(&sc).unwrap();
        // Area: 50 + 100 + 50.
        assert_eq!(s.total(), 200);
        let offs: Vec<_> = (0..200).map(|i| s.offset(i).unwrap()).collect();
        assert!(offs.windows(2).all(|w| w[0] <= w[1]));
        // Halfway through the ramp up (5 s) 12.5 arrivals are due.
        assert_eq!(s.indices_in(Duration::ZERO, Duration::from_secs(5)), 0..13);
        assert!(offs[199] < Duration::from_secs(30));
        // Index 50 is the first of the flat stage, due at 10 s.
        let d = offs[50].as_secs_f64();
        assert!((d - 10.0).abs() < 1e-6, "{d}");
    }
}
