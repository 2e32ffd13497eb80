//! The crate's own errors. Pure functions return these; the adapter turns them into
//! [`shared::SuiteError`] (InvalidInput for a payload, Config for the environment).

use shared::SuiteError;

/// A policy that S3 (or the suite) would not accept, with the field at fault and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem} (fix: {fix})")]
pub struct PolicyError {
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl PolicyError {
    pub fn new(
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        PolicyError {
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// The policy came in the payload: `InvalidInput` naming `policy.<field>`.
    pub fn into_input(self, root: &str) -> SuiteError {
        SuiteError::invalid(format!("{root}.{}", self.field), self.problem, self.fix)
    }

    /// The policy came from the environment: a configuration error naming the variable.
    pub fn into_config(self, var: &str) -> SuiteError {
        SuiteError::Config {
            var: var.to_string(),
            problem: format!("{}: {} (fix: {})", self.field, self.problem, self.fix),
        }
    }
}

/// A sequencer that is not a hexadecimal string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sequencer {0:?} is not a hexadecimal string")]
pub struct SequencerError(pub String);
