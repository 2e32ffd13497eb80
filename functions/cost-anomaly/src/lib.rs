//! cost-anomaly: FinOps for the suite. Pulls daily unblended cost from Cost Explorer by `env`
//! tag and service (paginated, budgeted, cached in S3), detects anomalies per series (seasonal
//! robust + CUSUM drift detectors), forecasts the month end (own model and GetCostForecast),
//! keeps AWS Budgets at 80/100/120 % notifications, records Budgets and Cost Anomaly Detection
//! alerts from SNS, and writes the monthly FinOps report (Markdown, JSON, SVG chart).
//!
//! Pure core (no AWS types): `parse`, `detect`, `synth`, `analysis`, `budgets`, `report`.
//! Ports and adapters: `port`. Orchestration: `run`. Lambda adapter: `handler`.

pub mod analysis;
pub mod budgets;
pub mod config;
pub mod detect;
pub mod handler;
pub use shared::notifications as parse;
pub mod port;
pub mod report;
pub mod run;
pub mod synth;
