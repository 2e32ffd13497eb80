//! The scaling policy as a pure function: an observation (backlog, the target's desired count,
//! the time) and the stored state in, a decision with its reason and the next state out. No I/O,
//! no clock: tests drive it over a simulated night.

use chrono::{DateTime, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// A daily UTC window `[start, end)`; when `end <= start` it crosses midnight (20:00-02:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Window {
    /// Parses `HH:MM-HH:MM`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not HH:MM-HH:MM"))?;
        let t = |x: &str| {
            NaiveTime::parse_from_str(x.trim(), "%H:%M")
                .map_err(|e| format!("{x:?} is not HH:MM ({e})"))
        };
        let w = Window {
            start: t(a)?,
            end: t(b)?,
        };
        if w.start == w.end {
            return Err(format!("{s:?} is empty: start and end are equal"));
        }
        Ok(w)
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let t = at.time().with_nanosecond(0).unwrap_or(at.time());
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            // Crosses midnight: 20:00-02:00 is [20:00, 24:00) plus [00:00, 02:00).
            t >= self.start || t < self.end
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub window: Window,
    /// Workers outside the window and after a drain.
    pub base: u32,
    /// Never more than this (the cap).
    pub max: u32,
    /// Scale up when the backlog is above this...
    pub high_backlog: u64,
    /// ...for this many consecutive checks.
    pub consecutive_checks: u32,
    /// Back to base inside the window only when the backlog is at or below this (hysteresis:
    /// between `low_backlog` and `high_backlog` the count holds).
    pub low_backlog: u64,
    /// No change within this many seconds of the previous one.
    pub cooldown_seconds: i64,
}

/// What is kept between checks (in Redis, under the lock; see store.rs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Consecutive checks with the backlog above `high_backlog`.
    pub consecutive_high: u32,
    /// When the scaler last changed the desired count.
    pub last_change: Option<DateTime<Utc>>,
    /// The id of the last check counted (the schedule's time): a repeated delivery of the same
    /// check does not count twice.
    pub last_check_id: Option<String>,
    pub last_check_at: Option<DateTime<Utc>>,
    pub last_desired: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub now: DateTime<Utc>,
    pub backlog: u64,
    /// The target's desired count as read from ECS / Auto Scaling.
    pub current_desired: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    ScaleUp,
    ScaleDown,
    Hold,
}

/// Why: a stable code (log field `reason`, response) documented in docs/worker-scaler.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Backlog above the threshold for N consecutive checks in the window: doubled (capped).
    BacklogHigh,
    /// Backlog high but fewer than N consecutive checks so far.
    BacklogBuilding,
    /// Already at the cap.
    AtCap,
    /// Outside the window: back to base.
    OutsideWindow,
    /// In the window, backlog at or below the low-water mark: back to base.
    Drained,
    /// Between the low and high marks: hold (hysteresis).
    WithinBand,
    /// Already where the policy wants it.
    Steady,
    /// A change is due but the previous one is younger than the cool-down.
    Cooldown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub action: Action,
    pub reason: Reason,
    pub from: u32,
    pub to: u32,
    pub in_window: bool,
    pub consecutive_high: u32,
    /// Seconds of cool-down left when `reason` is `cooldown`.
    pub cooldown_left_seconds: i64,
}

impl Policy {
    /// The doubled count from `current` (at least base × 2), capped.
    fn doubled(&self, current: u32) -> u32 {
        current
            .max(self.base)
            .saturating_mul(2)
            .min(self.max)
            .max(self.base)
    }

    /// One check. Returns the decision and the state to store.
    pub fn decide(&self, state: &State, obs: &Observation) -> (Decision, State) {
        let in_window = self.window.contains(obs.now);
        let high = obs.backlog > self.high_backlog;
        let consecutive_high = if high && in_window {
            state.consecutive_high.saturating_add(1)
        } else {
            0
        };
        let current = obs.current_desired;
        let (wanted, reason) = if !in_window {
            (self.base, Reason::OutsideWindow)
        } else if high {
            if consecutive_high >= self.consecutive_checks {
                let to = self.doubled(current);
                if to == current && current >= self.max {
                    (current, Reason::AtCap)
                } else {
                    (to, Reason::BacklogHigh)
                }
            } else {
                (current, Reason::BacklogBuilding)
            }
        } else if obs.backlog <= self.low_backlog {
            (self.base, Reason::Drained)
        } else {
            (current, Reason::WithinBand)
        };
        // A desired count above the cap (set by hand) is brought back under it.
        let wanted = wanted.min(self.max);
        let mut next = state.clone();
        next.consecutive_high = consecutive_high;
        next.last_check_at = Some(obs.now);
        let mut decision = Decision {
            action: Action::Hold,
            reason,
            from: current,
            to: current,
            in_window,
            consecutive_high,
            cooldown_left_seconds: 0,
        };
        if wanted == current {
            if matches!(reason, Reason::OutsideWindow | Reason::Drained) {
                decision.reason = Reason::Steady;
            }
            next.last_desired = Some(current);
            return (decision, next);
        }
        if let Some(last) = state.last_change {
            let left = self.cooldown_seconds - (obs.now - last).num_seconds();
            if left > 0 {
                decision.reason = Reason::Cooldown;
                decision.cooldown_left_seconds = left;
                next.last_desired = Some(current);
                return (decision, next);
            }
        }
        decision.to = wanted;
        decision.action = if wanted > current {
            Action::ScaleUp
        } else {
            Action::ScaleDown
        };
        decision.reason = reason;
        // A doubling needs N fresh consecutive checks before the next one.
        next.consecutive_high = 0;
        next.last_change = Some(obs.now);
        next.last_desired = Some(wanted);
        (decision, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn policy() -> Policy {
        Policy {
            window: Window::parse("20:00-02:00").unwrap(),
            base: 2,
            max: 8,
            high_backlog: 100,
            consecutive_checks: 3,
            low_backlog: 10,
            cooldown_seconds: 900,
        }
    }

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        let day = if h < 12 { 2 } else { 1 };
        Utc.with_ymd_and_hms(2026, 11, day, h, m, 0).unwrap()
    }

    #[test]
    fn window_crosses_midnight() {
        let w = Window::parse("20:00-02:00").unwrap();
        for (h, m, inside) in [
            (19, 59, false),
            (20, 0, true),
            (23, 59, true),
            (0, 0, true),
            (1, 59, true),
            (2, 0, false),
            (12, 0, false),
        ] {
            assert_eq!(w.contains(at(h, m)), inside, "{h}:{m}");
        }
        let day = Window::parse("09:00-17:00").unwrap();
        assert!(day.contains(at(9, 0)) && !day.contains(at(17, 0)) && !day.contains(at(20, 0)));
        assert!(Window::parse("20:00").is_err());
        assert!(Window::parse("25:00-02:00").is_err());
        assert!(Window::parse("02:00-02:00").is_err());
    }

    /// A simulated night, one check every 5 minutes from 19:00 to 03:00: the backlog builds
    /// after 20:00, the scaler doubles after 3 checks, doubles again after the cool-down, holds
    /// at the cap, holds in the hysteresis band, and goes back to base at 02:00.
    #[test]
    fn a_night_across_midnight() {
        let p = policy();
        let mut state = State::default();
        let mut desired = 2u32;
        let mut t = at(19, 0);
        let end = at(3, 0);
        let mut log = vec![];
        while t <= end {
            let hm = (t.hour(), t.minute());
            let backlog = match hm {
                (19, _) => 500, // high but outside the window: nothing happens
                (20, _) | (21, _) | (22, _) => 400,
                (23, _) => 50, // in the band: hold
                (0, _) => 300,
                _ => 300, // still high at 02:00: the window closes anyway
            };
            let (d, next) = p.decide(
                &state,
                &Observation {
                    now: t,
                    backlog,
                    current_desired: desired,
                },
            );
            state = next;
            if d.action != Action::Hold {
                log.push((t.format("%H:%M").to_string(), d.from, d.to, d.reason));
                desired = d.to;
            }
            assert!(desired <= p.max && desired >= p.base);
            t += chrono::Duration::minutes(5);
        }
        assert_eq!(
            log,
            vec![
                ("20:10".to_string(), 2, 4, Reason::BacklogHigh),
                // 3 more checks (20:15, 20:20, 20:25) counted, but the cool-down runs to 20:25.
                ("20:25".to_string(), 4, 8, Reason::BacklogHigh),
                ("02:00".to_string(), 8, 2, Reason::OutsideWindow),
            ]
        );
    }

    #[test]
    fn hysteresis_cooldown_and_cap() {
        let p = policy();
        let s = State {
            consecutive_high: 2,
            ..State::default()
        };
        let obs = |backlog, desired| Observation {
            now: at(21, 0),
            backlog,
            current_desired: desired,
        };
        // Exactly 100 is not "above 100": the counter resets.
        let (d, n) = p.decide(&s, &obs(100, 4));
        assert_eq!(
            (d.action, d.reason, n.consecutive_high),
            (Action::Hold, Reason::WithinBand, 0)
        );
        // At or below the low mark: back to base.
        let (d, _) = p.decide(&s, &obs(10, 4));
        assert_eq!(
            (d.action, d.to, d.reason),
            (Action::ScaleDown, 2, Reason::Drained)
        );
        // Third high check: double.
        let (d, n) = p.decide(&s, &obs(101, 2));
        assert_eq!((d.action, d.to), (Action::ScaleUp, 4));
        assert_eq!(n.consecutive_high, 0);
        assert_eq!(n.last_change, Some(at(21, 0)));
        // At the cap: hold.
        let (d, _) = p.decide(&s, &obs(5000, 8));
        assert_eq!((d.action, d.reason), (Action::Hold, Reason::AtCap));
        // 6 doubles to 8, not 12.
        let (d, _) = p.decide(&s, &obs(5000, 6));
        assert_eq!(d.to, 8);
        // A drain 5 minutes after a change waits for the cool-down.
        let recent = State {
            last_change: Some(at(20, 55)),
            ..State::default()
        };
        let (d, n) = p.decide(&recent, &obs(0, 8));
        assert_eq!(
            (d.action, d.reason, d.cooldown_left_seconds),
            (Action::Hold, Reason::Cooldown, 600)
        );
        assert_eq!(n.last_change, Some(at(20, 55)));
        // Outside the window at base: steady.
        let (d, _) = p.decide(
            &State::default(),
            &Observation {
                now: at(12, 0),
                backlog: 9999,
                current_desired: 2,
            },
        );
        assert_eq!((d.action, d.reason), (Action::Hold, Reason::Steady));
        // A hand-set count above the cap comes back to it.
        let (d, _) = p.decide(&s, &obs(50, 20));
        assert_eq!((d.action, d.to), (Action::ScaleDown, 8));
    }
}
