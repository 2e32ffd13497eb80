//! export-compressor: on `ObjectCreated` under `exports/`, gzip JSON/CSV (or turn large CSV /
//! JSON lines into Parquet), read the output back from S3 and verify it, put it in place with
//! the original's tags and metadata, and only then delete the original. Counts the saving
//! (bytes and `s3_cost_estimate_dollars`) in EMF metrics and a monthly roll-up in S3.
//!
//! The pure core (`plan`: formats, skips, keys, cost, verification comparisons; `codec`:
//! local file transforms) has no AWS types; `run` is written against the `port::ExportStore`
//! port, whose S3 adapter is `port::S3ExportStore`; `handler` is the Lambda adapter.

pub mod codec;
pub mod config;
pub mod handler;
pub mod plan;
pub mod port;
pub mod run;
