//! Merging shard results: histograms are ADDED (bucket counts), never percentiles averaged,
//! and a shard that failed or timed out is counted (failed shard, its scheduled requests
//! dropped), never lost. Then the numbers: percentiles, error rate, throughput, each with its
//! sample count.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use loadtest_core::{
    decode_histogram, encode_histogram, new_histogram, ErrorCounts, HistoError, ShardResult,
    TimelineStep,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedShard {
    pub slice: u32,
    pub shard: u32,
    /// Requests (SSE: streams) the shard was scheduled and that are counted as dropped.
    pub scheduled: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SseTotals {
    pub clients: u64,
    pub streams_opened: u64,
    pub streams_failed: u64,
    pub reconnects: u64,
    pub events_received: u64,
}

/// Everything merged so far (one slice, or the whole run).
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub latency: Histogram<u64>,
    pub latency_uncorrected: Histogram<u64>,
    pub scheduler_lag: Histogram<u64>,
    pub sse_handshake: Histogram<u64>,
    pub sse_reconnect: Histogram<u64>,
    /// SSE event sent → received (the server's stamp).
    pub sse_delivery_lag: Histogram<u64>,
    pub scheduled: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: ErrorCounts,
    pub dropped: u64,
    pub bytes_received: u64,
    pub shards_ok: u64,
    pub failed_shards: Vec<FailedShard>,
    pub stopped_early: Vec<String>,
    pub sse: Option<SseTotals>,
    /// The shards' per-step counts (remote write during the run), by step number.
    pub timeline: BTreeMap<u64, TimelineStep>,
}

impl Default for Aggregate {
    fn default() -> Self {
        Aggregate {
            latency: new_histogram(),
            latency_uncorrected: new_histogram(),
            scheduler_lag: new_histogram(),
            sse_handshake: new_histogram(),
            sse_reconnect: new_histogram(),
            sse_delivery_lag: new_histogram(),
            scheduled: 0,
            sent: 0,
            ok: 0,
            errors: ErrorCounts::default(),
            dropped: 0,
            bytes_received: 0,
            shards_ok: 0,
            failed_shards: vec![],
            stopped_early: vec![],
            sse: None,
            timeline: BTreeMap::new(),
        }
    }
}

fn add_steps<'a>(
    into: &mut BTreeMap<u64, TimelineStep>,
    from: impl IntoIterator<Item = &'a TimelineStep>,
) {
    for s in from {
        into.entry(s.step)
            .or_insert_with(|| TimelineStep::new(s.step))
            .add(s);
    }
}

fn add_hist(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // Same bounds on both sides (loadtest_core::new_histogram); `add` only fails when the
    // source holds values beyond the destination's range, which auto-resize avoids.
    if into.add(from).is_err() {
        for v in from.iter_recorded() {
            into.saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
    }
}

impl Aggregate {
    /// Adds one shard's result. `expected` is what the coordinator's own copy of the schedule
    /// says this stripe held: a shard that reports fewer scheduled requests has the difference
    /// counted as dropped (nothing scheduled goes missing).
    pub fn add_result(&mut self, r: &ShardResult, expected: u64) -> Result<(), HistoError> {
        // Decode everything first: a bad histogram leaves the aggregate untouched.
        let lat = decode_histogram(&r.latency_us)?;
        let unc = decode_histogram(&r.latency_uncorrected_us)?;
        let lag = decode_histogram(&r.scheduler_lag_us)?;
        let sse_h = match &r.sse {
            Some(s) => Some((
                decode_histogram(&s.handshake_us)?,
                decode_histogram(&s.reconnect_us)?,
                decode_histogram(&s.delivery_lag_us)?,
            )),
            None => None,
        };
        add_hist(&mut self.latency, &lat);
        add_hist(&mut self.latency_uncorrected, &unc);
        add_hist(&mut self.scheduler_lag, &lag);
        if let (Some(sse), Some((hs, rc, lag))) = (&r.sse, &sse_h) {
            add_hist(&mut self.sse_handshake, hs);
            add_hist(&mut self.sse_reconnect, rc);
            add_hist(&mut self.sse_delivery_lag, lag);
            let t = self.sse.get_or_insert_with(SseTotals::default);
            t.clients += sse.clients.max(expected);
            t.streams_opened += sse.streams_opened;
            t.streams_failed += sse.streams_failed + expected.saturating_sub(sse.clients);
            t.reconnects += sse.reconnects;
            t.events_received += sse.events_received;
        }
        let scheduled = r.scheduled.max(expected);
        self.scheduled += scheduled;
        self.sent += r.sent;
        self.ok += r.ok;
        self.errors.merge(&r.errors);
        self.dropped += r.dropped + scheduled.saturating_sub(r.scheduled);
        self.bytes_received += r.bytes_received;
        self.shards_ok += 1;
        add_steps(&mut self.timeline, &r.timeline);
        if let Some(why) = &r.stopped_early {
            self.stopped_early.push(format!(
                "slice {} shard {}: {why}",
                r.slice_index, r.shard_index
            ));
        }
        Ok(())
    }

    /// A shard that failed, timed out or returned garbage: all it was scheduled is dropped.
    pub fn add_failed(&mut self, slice: u32, shard: u32, scheduled: u64, sse: bool, reason: &str) {
        self.scheduled += scheduled;
        self.dropped += scheduled;
        if sse {
            let t = self.sse.get_or_insert_with(SseTotals::default);
            t.clients += scheduled;
            t.streams_failed += scheduled;
        }
        self.failed_shards.push(FailedShard {
            slice,
            shard,
            scheduled,
            reason: reason.to_string(),
        });
    }

    pub fn merge(&mut self, o: &Aggregate) {
        add_hist(&mut self.latency, &o.latency);
        add_hist(&mut self.latency_uncorrected, &o.latency_uncorrected);
        add_hist(&mut self.scheduler_lag, &o.scheduler_lag);
        add_hist(&mut self.sse_handshake, &o.sse_handshake);
        add_hist(&mut self.sse_reconnect, &o.sse_reconnect);
        add_hist(&mut self.sse_delivery_lag, &o.sse_delivery_lag);
        self.scheduled += o.scheduled;
        self.sent += o.sent;
        self.ok += o.ok;
        self.errors.merge(&o.errors);
        self.dropped += o.dropped;
        self.bytes_received += o.bytes_received;
        self.shards_ok += o.shards_ok;
        self.failed_shards.extend(o.failed_shards.iter().cloned());
        self.stopped_early.extend(o.stopped_early.iter().cloned());
        add_steps(&mut self.timeline, o.timeline.values());
        if let Some(s) = &o.sse {
            let t = self.sse.get_or_insert_with(SseTotals::default);
            t.clients += s.clients;
            t.streams_opened += s.streams_opened;
            t.streams_failed += s.streams_failed;
            t.reconnects += s.reconnects;
            t.events_received += s.events_received;
        }
    }

    pub fn to_doc(&self) -> Result<AggregateDoc, HistoError> {
        Ok(AggregateDoc {
            latency_us: encode_histogram(&self.latency)?,
            latency_uncorrected_us: encode_histogram(&self.latency_uncorrected)?,
            scheduler_lag_us: encode_histogram(&self.scheduler_lag)?,
            sse_handshake_us: encode_histogram(&self.sse_handshake)?,
            sse_reconnect_us: encode_histogram(&self.sse_reconnect)?,
            sse_delivery_lag_us: encode_histogram(&self.sse_delivery_lag)?,
            scheduled: self.scheduled,
            sent: self.sent,
            ok: self.ok,
            errors: self.errors.clone(),
            dropped: self.dropped,
            bytes_received: self.bytes_received,
            shards_ok: self.shards_ok,
            failed_shards: self.failed_shards.clone(),
            stopped_early: self.stopped_early.clone(),
            sse: self.sse.clone(),
            timeline: self.timeline.values().cloned().collect(),
        })
    }

    pub fn from_doc(d: &AggregateDoc) -> Result<Aggregate, HistoError> {
        Ok(Aggregate {
            latency: decode_histogram(&d.latency_us)?,
            latency_uncorrected: decode_histogram(&d.latency_uncorrected_us)?,
            scheduler_lag: decode_histogram(&d.scheduler_lag_us)?,
            sse_handshake: decode_histogram(&d.sse_handshake_us)?,
            sse_reconnect: decode_histogram(&d.sse_reconnect_us)?,
            sse_delivery_lag: decode_histogram(&d.sse_delivery_lag_us)?,
            scheduled: d.scheduled,
            sent: d.sent,
            ok: d.ok,
            errors: d.errors.clone(),
            dropped: d.dropped,
            bytes_received: d.bytes_received,
            shards_ok: d.shards_ok,
            failed_shards: d.failed_shards.clone(),
            stopped_early: d.stopped_early.clone(),
            sse: d.sse.clone(),
            timeline: {
                let mut t = BTreeMap::new();
                add_steps(&mut t, &d.timeline);
                t
            },
        })
    }
}

/// The serialized aggregate (slice partials in S3, the merged histogram artifact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateDoc {
    pub latency_us: String,
    pub latency_uncorrected_us: String,
    pub scheduler_lag_us: String,
    #[serde(default)]
    pub sse_handshake_us: String,
    #[serde(default)]
    pub sse_reconnect_us: String,
    #[serde(default)]
    pub sse_delivery_lag_us: String,
    pub scheduled: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: ErrorCounts,
    pub dropped: u64,
    #[serde(default)]
    pub bytes_received: u64,
    pub shards_ok: u64,
    #[serde(default)]
    pub failed_shards: Vec<FailedShard>,
    #[serde(default)]
    pub stopped_early: Vec<String>,
    #[serde(default)]
    pub sse: Option<SseTotals>,
    /// Per-step counts for remote write (empty when it is off), in step order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<TimelineStep>,
}

/// A latency distribution's numbers, in milliseconds, with the sample count behind them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub med: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Stats {
    pub fn of(h: &Histogram<u64>) -> Stats {
        if h.is_empty() {
            return Stats::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Stats {
            count: h.len(),
            min: ms(h.min()),
            max: ms(h.max()),
            avg: h.mean() / 1000.0,
            med: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
        }
    }

    /// Any percentile (0-100), in ms.
    pub fn percentile(h: &Histogram<u64>, p: f64) -> f64 {
        if h.is_empty() {
            return 0.0;
        }
        h.value_at_quantile((p / 100.0).clamp(0.0, 1.0)) as f64 / 1000.0
    }
}

/// The run's headline numbers. Rates are 0-1 fractions; `*_samples` say how many
/// observations each number stands on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Numbers {
    /// Coordinated-omission corrected (from the intended send time).
    pub latency_ms: Stats,
    pub latency_uncorrected_ms: Stats,
    pub scheduler_lag_ms: Stats,
    pub scheduled: u64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub dropped: u64,
    /// (errors + dropped) ÷ scheduled.
    pub error_rate: f64,
    pub error_rate_samples: u64,
    /// Successful responses per second of scheduled test time.
    pub throughput_rps: f64,
    pub throughput_samples: u64,
    /// Requests sent per second (k6's http_reqs rate).
    pub request_rate: f64,
    pub duration_s: f64,
    pub shards_total: u64,
    pub shards_failed: u64,
    pub sse: Option<SseNumbers>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SseNumbers {
    pub handshake_ms: Stats,
    pub reconnect_ms: Stats,
    /// Event sent (the server's stamp) → received.
    #[serde(default)]
    pub delivery_lag_ms: Stats,
    pub totals: SseTotals,
}

/// (errors + dropped) ÷ scheduled; 0 when nothing was scheduled.
pub fn error_rate(errors: u64, dropped: u64, scheduled: u64) -> f64 {
    if scheduled == 0 {
        0.0
    } else {
        (errors + dropped) as f64 / scheduled as f64
    }
}

impl Numbers {
    pub fn of(a: &Aggregate, duration_s: f64) -> Numbers {
        let errors = a.errors.total();
        let per_s = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        Numbers {
            latency_ms: Stats::of(&a.latency),
            latency_uncorrected_ms: Stats::of(&a.latency_uncorrected),
            scheduler_lag_ms: Stats::of(&a.scheduler_lag),
            scheduled: a.scheduled,
            sent: a.sent,
            ok: a.ok,
            errors,
            dropped: a.dropped,
            error_rate: error_rate(errors, a.dropped, a.scheduled),
            error_rate_samples: a.scheduled,
            throughput_rps: per_s(a.ok),
            throughput_samples: a.ok,
            request_rate: per_s(a.sent),
            duration_s,
            shards_total: a.shards_ok + a.failed_shards.len() as u64,
            shards_failed: a.failed_shards.len() as u64,
            sse: a.sse.as_ref().map(|t| SseNumbers {
                handshake_ms: Stats::of(&a.sse_handshake),
                reconnect_ms: Stats::of(&a.sse_reconnect),
                delivery_lag_ms: Stats::of(&a.sse_delivery_lag),
                totals: t.clone(),
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A shard result whose latencies are the given values (ms).
    pub fn result(
        slice: u32,
        shard: u32,
        latencies_ms: &[u64],
        errors_500: u64,
        dropped: u64,
    ) -> ShardResult {
        let mut h = new_histogram();
        for &v in latencies_ms {
            h.saturating_record(v * 1000);
        }
        let sent = latencies_ms.len() as u64;
        let mut errors = ErrorCounts::default();
        if errors_500 > 0 {
            errors.status.insert("500".into(), errors_500);
        }
        ShardResult {
            run_id: "r".into(),
            slice_index: slice,
            shard_index: shard,
            scheduled: sent + dropped,
            sent,
            ok: sent - errors_500,
            errors,
            dropped,
            latency_us: encode_histogram(&h).unwrap(),
            latency_uncorrected_us: encode_histogram(&h).unwrap(),
            scheduler_lag_us: String::new(),
            ..Default::default()
        }
    }

    /// The mistake of AWS's Distributed Load Testing and Goad: averaging each worker's p95.
    /// One fast shard (990 requests at 10 ms) and one slow shard (10 requests at 1,000 ms):
    /// 1 % of all requests are slow, so the true p95 is 10 ms; the average of the shards' p95s
    /// says 505 ms. The merged histogram gets it right.
    #[test]
    fn merging_histograms_is_right_and_averaging_percentiles_is_wrong() {
        let fast = result(0, 0, &[10; 990], 0, 0);
        let slow = result(0, 1, &[1000; 10], 0, 0);
        let p95_of = |r: &ShardResult| {
            decode_histogram(&r.latency_us)
                .unwrap()
                .value_at_quantile(0.95) as f64
                / 1000.0
        };
        let averaged = (p95_of(&fast) + p95_of(&slow)) / 2.0;
        let mut a = Aggregate::default();
        a.add_result(&fast, 990).unwrap();
        a.add_result(&slow, 10).unwrap();
        let n = Numbers::of(&a, 10.0);
        assert!(
            (n.latency_ms.p95 - 10.0).abs() < 0.05,
            "{}",
            n.latency_ms.p95
        );
        assert!((averaged - 505.0).abs() < 1.0, "{averaged}");
        // p99 sits exactly at the edge: the 990th of 1000 values is still 10 ms.
        assert!(n.latency_ms.max >= 999.0);
        assert_eq!(n.latency_ms.count, 1000);
    }

    #[test]
    fn error_rate_counts_errors_and_dropped_over_scheduled() {
        let mut a = Aggregate::default();
        // 100 scheduled: 95 sent (3 of them 500s), 5 dropped.
        a.add_result(&result(0, 0, &[20; 95], 3, 5), 100).unwrap();
        // A shard that reports only 40 of its 50 scheduled: 10 more dropped.
        let mut short = result(0, 1, &[20; 40], 0, 0);
        short.scheduled = 40;
        a.add_result(&short, 50).unwrap();
        // A shard that failed: its 50 count as scheduled and dropped.
        a.add_failed(0, 2, 50, false, "timed out");
        let n = Numbers::of(&a, 100.0);
        assert_eq!(n.scheduled, 200);
        assert_eq!(n.dropped, 5 + 10 + 50);
        assert_eq!(n.errors, 3);
        assert!((n.error_rate - 68.0 / 200.0).abs() < 1e-12);
        assert_eq!(n.error_rate_samples, 200);
        assert_eq!(n.shards_failed, 1);
        assert_eq!(n.shards_total, 3);
        assert!((n.throughput_rps - (92.0 + 40.0) / 100.0).abs() < 1e-12);
        assert_eq!(n.throughput_samples, 132);
        assert_eq!(error_rate(0, 0, 0), 0.0);
    }

    #[test]
    fn doc_round_trip_and_merge_of_slices() {
        let mut s0 = Aggregate::default();
        s0.add_result(&result(0, 0, &[5; 100], 0, 0), 100).unwrap();
        let mut s1 = Aggregate::default();
        s1.add_result(&result(1, 0, &[50; 100], 1, 0), 100).unwrap();
        let back = Aggregate::from_doc(&s1.to_doc().unwrap()).unwrap();
        let mut all = Aggregate::from_doc(&s0.to_doc().unwrap()).unwrap();
        all.merge(&back);
        let n = Numbers::of(&all, 20.0);
        assert_eq!(n.latency_ms.count, 200);
        assert_eq!(n.scheduled, 200);
        assert_eq!(n.errors, 1);
        assert!((n.latency_ms.med - 5.0).abs() < 0.01);
        assert!((n.latency_ms.p95 - 50.0).abs() < 0.1);
    }

    #[test]
    fn garbage_histogram_is_an_error() {
        let mut r = result(0, 0, &[1], 0, 0);
        r.latency_us = "!!".into();
        assert!(Aggregate::default().add_result(&r, 1).is_err());
    }
}
