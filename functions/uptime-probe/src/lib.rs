//! uptime-probe: every minute, probe the configured health endpoints (timeouts, TLS errors and
//! non-2xx are failures) and publish the `api_availability` SLI, error and latency metrics as
//! EMF; the SLO burn-rate alarms (crates/slo) are built on them (docs/uptime-probe.md).

pub mod config;
pub mod handler;
pub mod probe;
