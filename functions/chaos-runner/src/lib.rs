//! chaos-runner (skeleton: being built).
