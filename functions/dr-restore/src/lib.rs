//! dr-restore (skeleton: being built).
