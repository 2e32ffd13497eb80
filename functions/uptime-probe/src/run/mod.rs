//! The use cases beyond the probes themselves (which live in `handler`), one a file.

pub mod error_budget;
