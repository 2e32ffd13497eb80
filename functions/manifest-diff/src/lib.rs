//! manifest-diff: does the DR bucket really mirror the primary? Compares the two buckets'
//! object manifests (ListObjectsV2 or S3 Inventory) under the replicated prefixes, classifies
//! every key, and flags drift above a threshold (0.1 % by default).
//!
//! The pure core (`model`, `diff`, `inventory`, `extsort`, `request`, `summary`) has no AWS
//! types; `run` is written against the object-store port; `handler` is the Lambda adapter.

pub mod diff;
pub mod drift_csv;
pub mod extsort;
pub mod handler;
pub mod inventory;
pub mod inventory_csv;
pub mod inventory_load;
pub mod model;
pub mod partition;
pub mod request;
pub mod run;
pub mod summary;
