//! Planning: a scenario becomes consecutive time slices (each run by one coordinator
//! invocation and its shards, so no invocation outlives Lambda's 15 minutes), and each slice
//! gets enough shards for its peak arrival rate, its in-flight cap and, for SSE, its streams
//! (each shard stays under ~900 file descriptors of Lambda's 1,024). Pure: no clock, no AWS.

use std::time::Duration;

use loadtest_core::{Executor, Scenario, Schedule, Window};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq)]
pub struct PlanSettings {
    /// Length of one slice (the last one may be shorter).
    pub slice: Duration,
    /// Requests per second one shard sustains while recording every latency.
    pub shard_rps: f64,
    /// Requests in flight one shard may hold (one socket each).
    pub shard_max_in_flight: u32,
    /// SSE streams one shard holds (one socket each, plus reconnect overlap).
    pub sse_clients_per_shard: u32,
    /// Refuse plans wider than this (a typo in `rate` must not launch 10,000 Lambdas).
    pub max_shards: u32,
}

impl Default for PlanSettings {
    fn default() -> Self {
        PlanSettings {
            slice: Duration::from_secs(600),
            shard_rps: 50.0,
            shard_max_in_flight: 800,
            sse_clients_per_shard: 800,
            max_shards: 200,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Http,
    Sse,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlicePlan {
    pub index: u32,
    pub window: Window,
    pub shards: u32,
    /// Requests the global schedule puts in this window (SSE: streams held).
    pub scheduled: u64,
    /// The highest arrival rate inside the window, per second (SSE: 0).
    pub peak_rps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub mode: Mode,
    pub duration_ms: u64,
    pub slices: Vec<SlicePlan>,
}

impl Plan {
    pub fn total_scheduled(&self) -> u64 {
        match self.mode {
            Mode::Http => self.slices.iter().map(|s| s.scheduled).sum(),
            // The same streams are held in every slice.
            Mode::Sse => self.slices.first().map(|s| s.scheduled).unwrap_or(0),
        }
    }

    pub fn max_shards(&self) -> u32 {
        self.slices.iter().map(|s| s.shards).max().unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct PlanError {
    pub field: String,
    pub problem: String,
}

fn err(field: &str, problem: impl Into<String>) -> PlanError {
    PlanError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Splits the scenario into slices and sizes each slice's shard count.
pub fn plan(s: &Scenario, ps: &PlanSettings) -> Result<Plan, PlanError> {
    let total = s.duration();
    if total.is_zero() {
        return Err(err("executor.duration", "the scenario lasts 0 s"));
    }
    if ps.slice < Duration::from_secs(1) {
        return Err(err("slice", "a slice must last at least 1 s"));
    }
    let slice_ms = ps.slice.as_millis() as u64;
    let total_ms = total.as_millis() as u64;
    let n = total_ms.div_ceil(slice_ms);
    let mut slices = Vec::with_capacity(n as usize);
    match &s.executor {
        Executor::SseClients(e) => {
            let shards = (e.clients.div_ceil(ps.sse_clients_per_shard.max(1))).max(1);
            check_width(shards, ps)?;
            for k in 0..n {
                let from = k * slice_ms;
                let to = ((k + 1) * slice_ms).min(total_ms);
                slices.push(SlicePlan {
                    index: k as u32,
                    window: Window {
                        from_ms: from,
                        to_ms: to,
                    },
                    shards,
                    scheduled: u64::from(e.clients),
                    peak_rps: 0.0,
                });
            }
            Ok(Plan {
                mode: Mode::Sse,
                duration_ms: total_ms,
                slices,
            })
        }
        _ => {
            let sched = Schedule::from_scenario(s)
                .ok_or_else(|| err("executor", "has no arrival schedule"))?;
            let in_flight = s.executor.max_in_flight();
            let by_fds = in_flight.div_ceil(ps.shard_max_in_flight.max(1));
            for k in 0..n {
                let from = k * slice_ms;
                let to = ((k + 1) * slice_ms).min(total_ms);
                let scheduled = {
                    let r = sched.indices_in(ms(from), ms(to));
                    r.end - r.start
                };
                let peak = peak_rps(&sched, from, to);
                let by_rate = (peak / ps.shard_rps.max(0.001)).ceil() as u32;
                let shards = if scheduled == 0 {
                    0
                } else {
                    by_rate.max(by_fds).max(1)
                };
                check_width(shards, ps)?;
                slices.push(SlicePlan {
                    index: k as u32,
                    window: Window {
                        from_ms: from,
                        to_ms: to,
                    },
                    shards,
                    scheduled,
                    peak_rps: peak,
                });
            }
            Ok(Plan {
                mode: Mode::Http,
                duration_ms: total_ms,
                slices,
            })
        }
    }
}

fn check_width(shards: u32, ps: &PlanSettings) -> Result<(), PlanError> {
    if shards > ps.max_shards {
        return Err(err(
            "executor",
            format!(
                "needs {shards} shards per slice, above LOADTEST_COORD_MAX_SHARDS={}; lower the rate or clients, or raise the limit",
                ps.max_shards
            ),
        ));
    }
    Ok(())
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// The highest count of arrivals in any 1-second step of `[from, to)` (the rate a ramp
/// reaches inside the window, not its average).
fn peak_rps(s: &Schedule, from_ms: u64, to_ms: u64) -> f64 {
    let mut peak = 0f64;
    let mut t = from_ms;
    while t < to_ms {
        let end = (t + 1000).min(to_ms);
        let r = s.indices_in(ms(t), ms(end));
        // A partial trailing step counts as a full second (never overstates one arrival).
        let rate = (r.end - r.start) as f64;
        peak = peak.max(rate);
        t = end;
    }
    peak
}

/// How many of `total` SSE clients stripe `k` of `n` holds (clients c with c % n == k).
pub fn sse_clients_of(total: u64, k: u32, n: u32) -> u64 {
    let n = u64::from(n.max(1));
    let k = u64::from(k);
    if k >= total {
        0
    } else {
        (total - k).div_ceil(n)
    }
}

/// How many requests shard `k` of `n` is scheduled in `window`.
pub fn stripe_scheduled(sched: &Schedule, window: Window, k: u32, n: u32) -> u64 {
    sched
        .stripe_in(ms(window.from_ms), ms(window.to_ms), k, n)
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadtest_core::parse_scenario;
    use serde_json::json;

    fn scenario(executor: serde_json::Value) -> Scenario {
        parse_scenario(
            json!({
                "name": "t", "target": {"base_url": "http://127.0.0.1:1"},
                "executor": executor,
                "request": {"method": "GET", "path": "/"}
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn twenty_minutes_at_60_per_minute_is_two_ten_minute_slices() {
        let s = scenario(
            json!({"type": "constant-arrival-rate", "rate": 60, "time_unit": "1m", "duration": "20m", "max_in_flight": 50}),
        );
        let p = plan(&s, &PlanSettings::default()).unwrap();
        assert_eq!(p.slices.len(), 2);
        assert_eq!(
            p.slices[0].window,
            Window {
                from_ms: 0,
                to_ms: 600_000
            }
        );
        assert_eq!(
            p.slices[1].window,
            Window {
                from_ms: 600_000,
                to_ms: 1_200_000
            }
        );
        assert_eq!(p.slices[0].scheduled + p.slices[1].scheduled, 1200);
        assert_eq!(p.total_scheduled(), 1200);
        assert!(p.slices.iter().all(|s| s.shards == 1));
        // Every slice fits a Lambda invocation with room for lead, grace and finalizing.
        assert!(p
            .slices
            .iter()
            .all(|s| s.window.to_ms - s.window.from_ms <= 600_000));
    }

    #[test]
    fn fifteen_minutes_with_ten_minute_slices_leaves_a_short_last_slice() {
        let s = scenario(
            json!({"type": "constant-arrival-rate", "rate": 40, "time_unit": "1m", "duration": "15m"}),
        );
        let p = plan(&s, &PlanSettings::default()).unwrap();
        assert_eq!(p.slices.len(), 2);
        assert_eq!(
            p.slices[1].window.to_ms - p.slices[1].window.from_ms,
            300_000
        );
        assert_eq!(p.slices[0].scheduled, 400);
        assert_eq!(p.slices[1].scheduled, 200);
    }

    #[test]
    fn shards_follow_the_peak_rate_and_the_in_flight_cap() {
        let s = scenario(
            json!({"type": "constant-arrival-rate", "rate": 500, "duration": "30s", "max_in_flight": 100}),
        );
        let p = plan(&s, &PlanSettings::default()).unwrap();
        assert_eq!(p.slices[0].shards, 10, "500 rps / 50 per shard");
        let s = scenario(
            json!({"type": "constant-arrival-rate", "rate": 1, "duration": "30s", "max_in_flight": 2000}),
        );
        let p = plan(&s, &PlanSettings::default()).unwrap();
        assert_eq!(
            p.slices[0].shards, 3,
            "2000 in flight / 800 sockets per shard"
        );
        // A ramp is sized by the rate it reaches, not its average.
        let s = scenario(
            json!({"type": "ramping-arrival-rate", "start_rate": 0, "stages": [{"target": 200, "duration": "20s"}]}),
        );
        let p = plan(&s, &PlanSettings::default()).unwrap();
        assert!(p.slices[0].peak_rps >= 190.0, "{}", p.slices[0].peak_rps);
        assert_eq!(p.slices[0].shards, 4);
    }

    #[test]
    fn sse_2000_clients_stay_under_900_sockets_per_shard() {
        let s = scenario(json!({"type": "sse-clients", "clients": 2000, "duration": "15m"}));
        let p = plan(&s, &PlanSettings::default()).unwrap();
        assert_eq!(p.mode, Mode::Sse);
        assert_eq!(p.slices.len(), 2);
        let n = p.slices[0].shards;
        assert_eq!(n, 3);
        let per: Vec<u64> = (0..n).map(|k| sse_clients_of(2000, k, n)).collect();
        assert_eq!(per.iter().sum::<u64>(), 2000);
        assert!(per.iter().all(|&c| c < 900), "{per:?}");
    }

    #[test]
    fn absurd_widths_are_refused_and_empty_windows_get_no_shards() {
        let s =
            scenario(json!({"type": "constant-arrival-rate", "rate": 1000000, "duration": "10s"}));
        let e = plan(&s, &PlanSettings::default()).unwrap_err();
        assert!(e.problem.contains("LOADTEST_COORD_MAX_SHARDS"), "{e}");
        let s = scenario(
            json!({"type": "ramping-arrival-rate", "start_rate": 0, "stages": [{"target": 0, "duration": "5s"}, {"target": 10, "duration": "5s"}]}),
        );
        let ps = PlanSettings {
            slice: Duration::from_secs(5),
            ..PlanSettings::default()
        };
        let p = plan(&s, &ps).unwrap();
        assert_eq!(p.slices[0].scheduled, 0);
        assert_eq!(p.slices[0].shards, 0);
        assert!(p.slices[1].shards >= 1);
    }

    #[test]
    fn stripes_add_up_to_the_slice() {
        let s = scenario(json!({"type": "constant-arrival-rate", "rate": 7, "duration": "9s"}));
        let ps = PlanSettings {
            slice: Duration::from_secs(4),
            shard_rps: 2.0,
            ..PlanSettings::default()
        };
        let p = plan(&s, &ps).unwrap();
        let sched = Schedule::from_scenario(&s).unwrap();
        assert_eq!(p.slices.len(), 3);
        for sl in &p.slices {
            let sum: u64 = (0..sl.shards)
                .map(|k| stripe_scheduled(&sched, sl.window, k, sl.shards))
                .sum();
            assert_eq!(sum, sl.scheduled);
        }
        assert_eq!(p.total_scheduled(), 63);
    }
}
