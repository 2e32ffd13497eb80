//! worker-scaler: every few minutes, read the RQ backlog from Redis and size the worker
//! fleet (ECS service or Auto Scaling group): doubled in the evening window when the backlog
//! stays high, back to base otherwise (docs/worker-scaler.md).
//!
//! - [`policy`]: the pure policy (window across midnight, N consecutive checks, hysteresis,
//!   cap, cool-down);
//! - [`rq`]: RQ's keys in Redis, and the scaler's lock and state;
//! - [`target`]: the ECS / Auto Scaling port;
//! - [`run`]: one check under the lock; [`handler`]: the Lambda adapter.

pub mod config;
pub mod handler;
pub mod policy;
pub mod rq;
pub mod run;
pub mod target;
