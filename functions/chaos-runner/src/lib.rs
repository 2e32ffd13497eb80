//! chaos-runner: runs the pre-registered AWS FIS experiments on their calendar (first Friday
//! of the month in UTC; the database quarterly) with the safety rules (stop conditions, no
//! production unless allowed twice, error-budget gate, blast radius), steady-state probes
//! before/during/after, following the experiment across invocations, and a Chaos Toolkit style
//! journal plus a monthly postmortem skeleton in S3.
//!
//! Pure core: `calendar`, `registry` (parse + validate), `journal` (tolerances, journal,
//! postmortem), `gate` (the refusal rules). `run` is written against the `port::ChaosPort`
//! port (FIS, CloudWatch, HTTP) and `shared::store::ObjectStore`; `handler` is the Lambda
//! adapter.

pub mod calendar;
pub mod config;
pub mod gate;
pub mod handler;
pub mod journal;
pub mod port;
pub mod registry;
pub mod run;
