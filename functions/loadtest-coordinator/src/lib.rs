//! loadtest-coordinator (skeleton: being built).
