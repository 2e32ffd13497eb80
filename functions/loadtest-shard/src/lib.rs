//! loadtest-shard (skeleton: being built).
