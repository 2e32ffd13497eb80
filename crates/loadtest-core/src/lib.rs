//! loadtest-core (skeleton: being built).
