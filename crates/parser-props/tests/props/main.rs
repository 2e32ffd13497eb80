//! Property tests for every parser of outside data in the landed functions: arbitrary bytes
//! and JSON never panic, and structured mutations of valid inputs either still parse or give
//! an error that names the field touched. `PROPTEST_CASES` sets the number of cases (256 by
//! default); failures found are kept by proptest under proptest-regressions/ and, minimised,
//! in corpus/ (replayed by `corpus_replays`).

mod corpus;
mod definitions;
mod events;
mod export;
mod lifecycle;
mod manifest;

use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn samples(function: &str) -> Vec<serde_json::Value> {
    parser_props::json_files(&root().join("events").join(function))
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

/// Whether an error message names `field` (as `field`, `.field`, `field[`, or a quoted name).
pub fn names(msg: &str, field: &str) -> bool {
    msg.contains(field)
}
