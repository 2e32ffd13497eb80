//! slo (skeleton: being built).
