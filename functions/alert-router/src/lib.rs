//! alert-router: every alert reaches a person on the playbook's channel and resolves there.
//! SNS notifications (CloudWatch alarms, AWS Budgets, Cost Anomaly Detection, the release
//! gate's incidents, the suite's own alerts) are routed by the topic they came in on:
//! critical → PagerDuty (Events API v2) and OpsGenie; info → the daily e-mail digest;
//! finops → the FinOps Slack channel and Jira project FINOPS; release → Jira project REL.
//! (docs/alert-router.md)
//!
//! Pure core (no AWS types): `model`, `classify`, `format`, `run::digest::render`. Ports and
//! adapters: `port`. Use cases: `run`. Lambda adapter: `handler`.

pub mod classify;
pub mod config;
pub mod format;
pub mod handler;
pub mod model;
pub mod port;
pub mod run;
