//! The common crate of the suite. Every function builds on it:
//!
//! - [`config`]: typed configuration from the environment, failing at cold start with the name
//!   of the variable at fault;
//! - [`aws`]: the one place that builds AWS clients (endpoint override, path-style, retries,
//!   timeouts, checksum policy);
//! - [`telemetry`]: JSON `tracing` logs with request/trace/span ids and field masking;
//! - [`otel`]: OpenTelemetry spans (invocation, AWS calls) exported over OTLP/HTTP JSON;
//! - [`lambda`]: the Lambda adapter (invocation span, failure log and metric) and `serve`;
//! - [`metrics`]: CloudWatch Embedded Metric Format lines;
//! - [`store`] and [`report`]: the object-store port (with conditional writes), its S3
//!   adapter, the one classification of S3 errors, and the report writer;
//! - [`state`]: typed JSON state (checkpoints, run state, leases) on conditional writes;
//! - [`error`]: the classified error every handler returns;
//! - [`events`]: helpers for the outside event shapes (S3 keys, schedules);
//! - [`notifications`]: SNS envelopes, AWS Budgets and Cost Anomaly Detection messages,
//!   read by cost-anomaly (records them) and alert-router (routes them).

pub mod aws;
pub mod config;
pub mod error;
pub mod events;
pub mod lambda;
pub mod metrics;
pub mod notifications;
pub mod otel;
pub mod report;
pub mod sns;
pub mod state;
pub mod store;
pub mod telemetry;

pub use error::{SuiteError, SuiteResult};
