//! uptime-probe: every minute, probe the configured health endpoints (timeouts, TLS errors and
//! non-2xx are failures) and publish the `api_availability` SLI, error and latency metrics as
//! EMF; the SLO burn-rate alarms (crates/slo) are built on them (docs/uptime-probe.md). With
//! `{"kind": "error_budget"}` it reads those metrics back (CloudWatch GetMetricData) and
//! publishes each SLO's `error_budget_remaining_percent`, which chaos-runner's gate reads.

pub mod budget;
pub mod config;
pub mod handler;
pub mod port;
pub mod probe;
pub mod run;
