//! fault-proxy (skeleton: being built).
