//! The shard invocation: what the coordinator sends (`ShardRequest`) and what a shard returns
//! (`ShardResult`). Both are JSON over the Lambda Invoke API; a result stays well under the
//! 6 MB response limit (three encoded histograms of a few kB each plus counters).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scenario::Scenario;

/// The part of the global schedule one invocation runs: offsets relative to `t0_unix_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from_ms: u64,
    pub to_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRequest {
    /// The run this shard belongs to (idempotency and artifact paths).
    pub run_id: String,
    /// The scenario, with any `body.file` already inlined by the coordinator.
    pub scenario: Scenario,
    /// Absolute start of the global schedule (Unix ms); request i is due at
    /// t0 + offset(i), wherever the slice boundaries fall.
    pub t0_unix_ms: u64,
    /// Which part of the schedule this invocation runs (slice).
    pub window: Window,
    /// The slice's number (0-based), for the merge and the logs.
    #[serde(default)]
    pub slice_index: u32,
    /// The stripe: this shard takes indices with i % shard_count == shard_index. For SSE it
    /// holds the clients c with c % shard_count == shard_index.
    pub shard_index: u32,
    pub shard_count: u32,
    /// W3C trace context to continue (propagated to the target as `traceparent`).
    #[serde(default)]
    pub traceparent: Option<String>,
    /// When set, the shard also counts its requests per step of this many ms after t0
    /// (`ShardResult::timeline`): the coordinator turns the steps into remote-write samples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline_step_ms: Option<u64>,
}

/// Upper bounds (seconds) of the timeline's latency buckets, Prometheus `le` style; a last
/// `+Inf` bucket is implied. k6's own trend boundaries are not fixed; these cover 5 ms to 10 s
/// with about three buckets per decade.
pub const TIMELINE_LE_S: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The bucket (index into `TIMELINE_LE_S`, or its length for `+Inf`) a latency falls in.
pub fn timeline_bucket(latency_us: u64) -> usize {
    TIMELINE_LE_S
        .iter()
        .position(|le| latency_us as f64 <= le * 1e6)
        .unwrap_or(TIMELINE_LE_S.len())
}

/// The requests due in one step `[step·step_ms, (step+1)·step_ms)` after t0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineStep {
    pub step: u64,
    pub sent: u64,
    /// Answered 2xx/3xx. Every other sent request (error status, timeout, connect failure,
    /// abandoned at the deadline) is an error: errors = sent − ok.
    pub ok: u64,
    pub dropped: u64,
    /// Answered requests' corrected latency by bucket, not cumulative: one count per
    /// `TIMELINE_LE_S` bound, then `+Inf`.
    pub buckets: Vec<u64>,
    pub latency_sum_us: u64,
}

impl TimelineStep {
    pub fn new(step: u64) -> Self {
        TimelineStep {
            step,
            buckets: vec![0; TIMELINE_LE_S.len() + 1],
            ..Default::default()
        }
    }

    pub fn errors(&self) -> u64 {
        self.sent.saturating_sub(self.ok)
    }

    /// Adds another shard's (or slice's) counts of the same step.
    pub fn add(&mut self, o: &TimelineStep) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.dropped += o.dropped;
        self.latency_sum_us += o.latency_sum_us;
        if self.buckets.len() < o.buckets.len() {
            self.buckets.resize(o.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
    }
}

/// Errors by class. `status` maps an HTTP status (as a string key, JSON-friendly) to its count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    #[serde(default)]
    pub status: BTreeMap<String, u64>,
    #[serde(default)]
    pub timeout: u64,
    #[serde(default)]
    pub connect: u64,
    /// Anything else (protocol errors, resets mid-response, body read failures).
    #[serde(default)]
    pub other: u64,
}

impl ErrorCounts {
    pub fn total(&self) -> u64 {
        self.status.values().sum::<u64>() + self.timeout + self.connect + self.other
    }

    pub fn merge(&mut self, o: &ErrorCounts) {
        for (k, v) in &o.status {
            *self.status.entry(k.clone()).or_default() += v;
        }
        self.timeout += o.timeout;
        self.connect += o.connect;
        self.other += o.other;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SseResult {
    /// Streams this shard was asked to hold.
    pub clients: u64,
    /// Connect → `200` with `content-type: text/event-stream`, µs histogram (encoded).
    pub handshake_us: String,
    /// Drop → the next stream's headers, µs histogram (encoded).
    pub reconnect_us: String,
    /// Event sent (the server's `"server_unix_us"` in the event's data) → received, µs
    /// histogram (encoded); empty when the server stamps no time.
    #[serde(default)]
    pub delivery_lag_us: String,
    pub streams_opened: u64,
    pub streams_failed: u64,
    pub reconnects: u64,
    pub events_received: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardResult {
    pub run_id: String,
    pub slice_index: u32,
    pub shard_index: u32,
    /// Requests this shard's stripe of the window scheduled.
    pub scheduled: u64,
    /// Requests actually sent (scheduled − dropped).
    pub sent: u64,
    /// Responses that were not errors (2xx/3xx).
    pub ok: u64,
    pub errors: ErrorCounts,
    /// Scheduled but never sent: the in-flight cap was reached, or the shard stopped before
    /// its deadline. Counted, never silently skipped (k6 drops iterations silently).
    pub dropped: u64,
    /// Latency from the INTENDED send time (coordinated-omission corrected), µs, encoded.
    pub latency_us: String,
    /// Latency from the actual send time (uncorrected), µs, encoded.
    pub latency_uncorrected_us: String,
    /// Actual send − intended send, µs, encoded: how late the shard's scheduler was.
    pub scheduler_lag_us: String,
    #[serde(default)]
    pub bytes_received: u64,
    pub started_unix_ms: u64,
    pub finished_unix_ms: u64,
    /// Why the shard stopped before its window ended (deadline, abort), if it did.
    #[serde(default)]
    pub stopped_early: Option<String>,
    #[serde(default)]
    pub sse: Option<SseResult>,
    /// Per-step counts when the request asked for them (`timeline_step_ms`), in step order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineStep>,
}
