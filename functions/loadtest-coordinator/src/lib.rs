//! loadtest-coordinator: plans a scenario into time slices and shards, fans the shards out
//! with the Lambda Invoke API, merges their HDR histograms (never their percentiles), judges
//! k6-style thresholds, keeps the release gate and the baseline, and writes k6-shaped
//! artifacts, Prometheus remote write and EMF. See docs/loadtest-coordinator.md.

pub mod ab;
pub mod aggregate;
pub mod config;
pub mod gate;
pub mod handler;
pub mod plan;
pub mod port;
pub mod release;
pub mod remote_write;
pub mod report;
pub mod run;
pub mod summary;
pub mod threshold;
