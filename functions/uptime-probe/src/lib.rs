//! uptime-probe (skeleton: being built).
