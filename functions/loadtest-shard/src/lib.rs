//! loadtest-shard: runs one stripe of one time slice of a load-test scenario (open-model HTTP
//! or SSE clients) and returns mergeable HDR histograms and counts (docs/loadtest-shard.md).
//!
//! - [`engine`]: the run (schedule, in-flight cap, drops, deadline, SSE), no AWS types;
//! - [`transport`]: the HTTP/1.1 keep-alive pool on raw hyper connections (https: reqwest);
//! - [`timer`]: microsecond sleeps to absolute instants (timerfd);
//! - [`body`]: request bodies per index; [`config`]: settings and the host allowlist;
//! - [`handler`]: the Lambda adapter, logs and EMF metrics.

pub mod body;
pub mod config;
pub mod engine;
pub mod handler;
pub mod timer;
pub mod transport;

pub use config::Settings;
pub use engine::{closed_loop, run_shard, run_shard_blocking, ClosedLoopReport, RunReport};
