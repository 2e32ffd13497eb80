//! The load-test contract shared by `loadtest-coordinator` and `loadtest-shard`.
//!
//! - [`scenario`]: the scenario file (open model first: constant / ramping arrival rate, or
//!   SSE clients), parsed with errors that name the field.
//! - [`schedule`]: the one global arrival schedule (request `i` is due at `t0 + offset(i)`),
//!   time windows (slices) and deterministic stripes (shards), so the coordinator and every
//!   shard agree on which request is whose without talking to each other.
//! - [`protocol`]: the shard invocation payload and its response.
//! - [`histo`]: HDR histograms in microseconds and their compact wire encoding (merge
//!   histograms, never percentiles).

pub mod histo;
pub mod protocol;
pub mod scenario;
pub mod schedule;

pub use histo::{decode_histogram, encode_histogram, new_histogram, HistoError};
pub use protocol::{
    timeline_bucket, ErrorCounts, ShardRequest, ShardResult, SseResult, TimelineStep, Window,
    TIMELINE_LE_S,
};
pub use scenario::{
    host_of, parse_duration, parse_scenario, BodySpec, ConstantArrivalRate, Executor,
    RampingArrivalRate, RequestSpec, Scenario, ScenarioError, SseClients, Stage,
};
pub use schedule::Schedule;
