//! loadtest-target (skeleton: being built).
