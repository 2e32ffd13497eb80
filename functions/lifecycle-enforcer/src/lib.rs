//! lifecycle-enforcer: keeps the objects' lifecycle tags and the buckets' lifecycle rules true
//! to the storage policy (`attachments/` to Standard-IA and Glacier, `exports/` expire),
//! honouring the legal-hold and long-retention exception tags.
//!
//! S3 lifecycle filters cannot say NOT, so the rules filter on prefix AND a positive tag the
//! suite manages (`lifecycle=managed`): set on objects without an exception tag, removed when
//! one appears, restored when it goes. See docs/lifecycle-enforcer.md.
//!
//! The pure core (`policy`, `tags`, `sequencer`, `rules`, `request`) has no AWS types; `run`
//! is written against the ports (`port::LifecyclePort`, `shared::store::ObjectStore`);
//! `port::S3Lifecycle` is the S3 adapter and `handler` the Lambda adapter.

pub mod error;
pub mod handler;
pub mod policy;
pub mod port;
pub mod request;
pub mod rules;
pub mod run;
pub mod sequencer;
pub mod tags;
