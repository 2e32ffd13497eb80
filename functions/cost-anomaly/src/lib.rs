//! cost-anomaly (skeleton: being built).
