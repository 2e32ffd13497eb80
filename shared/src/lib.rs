//! The common crate of the suite. Every function builds on it:
//!
//! - [`config`]: typed configuration from the environment, failing at cold start with the name
//!   of the variable at fault;
//! - [`aws`]: the one place that builds AWS clients (endpoint override, path-style, retries,
//!   timeouts, checksum policy);
//! - [`telemetry`]: JSON `tracing` logs with request/trace/span ids and field masking;
//! - [`otel`]: OpenTelemetry spans (invocation, AWS calls) exported over OTLP/HTTP JSON;
//! - [`metrics`]: CloudWatch Embedded Metric Format lines;
//! - [`store`] and [`report`]: the object-store port, its S3 adapter, and the report writer;
//! - [`error`]: the classified error every handler returns;
//! - [`events`]: helpers for the outside event shapes (S3 keys, schedules).

pub mod aws;
pub mod config;
pub mod error;
pub mod events;
pub mod metrics;
pub mod otel;
pub mod report;
pub mod store;
pub mod telemetry;

pub use error::{SuiteError, SuiteResult};
