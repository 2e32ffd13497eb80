//! worker-scaler (skeleton: being built).
