//! loadtest-shard against the real local target (crates/loadtest-target) over TCP.
//!
//! Each test starts its own target on a free port, runs one or two shards for a second or
//! two, and checks what a user of the results would check.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use loadtest_core::{decode_histogram, ShardRequest};
use loadtest_shard::engine::unix_ms_now;
use loadtest_shard::{run_shard, RunReport, Settings};
use loadtest_target::{start, Latency, TargetConfig, TargetHandle};
use serde_json::{json, Value};

fn settings() -> Settings {
    Settings {
        allowed_hosts: vec!["127.0.0.1".into()],
        deadline_margin: Duration::from_millis(500),
        ..Default::default()
    }
}

/// A ShardRequest for `executor` against `addr`, starting `lead` from now.
fn request(
    addr: SocketAddr,
    path: &str,
    executor: Value,
    window_ms: (u64, u64),
    shard: (u32, u32),
) -> ShardRequest {
    request_with(
        addr,
        path,
        executor,
        window_ms,
        shard,
        json!(null),
        "5s",
        Duration::from_millis(300),
    )
}

#[allow(clippy::too_many_arguments)]
fn request_with(
    addr: SocketAddr,
    path: &str,
    executor: Value,
    window_ms: (u64, u64),
    shard: (u32, u32),
    body: Value,
    timeout: &str,
    lead: Duration,
) -> ShardRequest {
    let method = if path.ends_with("/stream") || path == "/" {
        "GET"
    } else {
        "POST"
    };
    let mut request = json!({"method": method, "path": path});
    if !body.is_null() {
        request["body"] = body;
    }
    serde_json::from_value(json!({
        "run_id": "it",
        "scenario": {
            "name": "it",
            "target": {"base_url": format!("http://{addr}")},
            "executor": executor,
            "request": request,
            "timeout": timeout,
        },
        "t0_unix_ms": unix_ms_now() + lead.as_millis() as u64,
        "window": {"from_ms": window_ms.0, "to_ms": window_ms.1},
        "shard_index": shard.0,
        "shard_count": shard.1,
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }))
    .unwrap()
}

fn rate(per_s: u32, duration: &str, max_in_flight: u32) -> Value {
    json!({"type": "constant-arrival-rate", "rate": per_s, "time_unit": "1s", "duration": duration, "max_in_flight": max_in_flight})
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn h(s: &str) -> Histogram<u64> {
    decode_histogram(s).unwrap()
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// The books balance: every scheduled request is sent or dropped, every sent one is ok or an
/// error of exactly one class.
fn balanced(r: &RunReport) {
    let x = &r.result;
    assert_eq!(x.sent + x.dropped, x.scheduled, "{x:?}");
    assert_eq!(x.ok + x.errors.total(), x.sent, "{x:?}");
}

async fn target(cfg: TargetConfig) -> (SocketAddr, TargetHandle) {
    start(cfg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrected_p95_matches_a_known_injected_distribution() {
    // p95 of this distribution is 50 ms exactly (linear from 40 ms at p90 to 60 ms at p100).
    let latency: Latency = "quantiles:0=10ms,0.5=20ms,0.9=40ms,1=60ms".parse().unwrap();
    let (addr, handle) = target(TargetConfig {
        latency: latency.clone(),
        ..Default::default()
    })
    .await;
    // Two shards of the same window, run at once, merged as the coordinator merges them.
    let ex = rate(200, "2s", 100);
    let a = run_shard(
        request(
            addr,
            "/api/v1/quotes/generate",
            ex.clone(),
            (0, 2000),
            (0, 2),
        ),
        settings(),
        far(),
    );
    let b = run_shard(
        request(addr, "/api/v1/quotes/generate", ex, (0, 2000), (1, 2)),
        settings(),
        far(),
    );
    let (a, b) = tokio::join!(a, b);
    let (a, b) = (a.unwrap(), b.unwrap());
    balanced(&a);
    balanced(&b);
    assert_eq!(a.result.scheduled, 200);
    assert_eq!(b.result.scheduled, 200);
    assert_eq!(
        a.result.ok + b.result.ok,
        400,
        "{:?} {:?}",
        a.result,
        b.result
    );
    let mut merged = h(&a.result.latency_us);
    merged.add(h(&b.result.latency_us)).unwrap();
    assert_eq!(merged.len(), 400);

    // What the target served, exactly: the stratified quantiles of requests 0..400.
    let mut served = loadtest_core::new_histogram();
    for k in 0..handle.api_requests() {
        let v = latency.at(loadtest_target::stratified_quantile(k));
        served.saturating_record(v.as_micros() as u64);
    }
    let expected = ms(&served, 0.95);
    let got = ms(&merged, 0.95);
    // Tolerance: HDR's 3 significant figures (±0.1 %) below. Above: the target's tokio sleep
    // rounds up to its 1 ms tick, loopback and hyper add well under 1 ms (2 ms together), and
    // whatever our own scheduler was late, which the shard measured (lag p99; near zero on
    // an idle machine, a few ms when other builds share the two cores). Capped at 10 ms so
    // a wrong measurement still fails.
    let lag_p99 =
        ms(&h(&a.result.scheduler_lag_us), 0.99).max(ms(&h(&b.result.scheduler_lag_us), 0.99));
    let slack = (2.0 + lag_p99).min(10.0);
    assert!(
        got >= expected * 0.999 && got <= expected + slack,
        "corrected p95 {got} ms, served p95 {expected} ms (distribution p95 50 ms), lag p99 {lag_p99} ms"
    );
    assert!(
        (expected - 50.0).abs() < 1.0,
        "stratified sample p95 {expected}"
    );
    let lag = h(&a.result.scheduler_lag_us);
    assert_eq!(lag.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncorrected_latency_hides_a_stall_the_corrected_one_shows() {
    let (addr, handle) = target(TargetConfig {
        latency: Latency::Fixed(Duration::from_millis(5)),
        ..Default::default()
    })
    .await;
    // Two connections: during the stall due requests wait for one (in flight, up to 40) and
    // go out late when it ends: from their actual send they look fast.
    let s = Settings {
        max_connections: Some(2),
        ..settings()
    };
    let req = request(
        addr,
        "/api/v1/quotes/generate",
        rate(100, "2s", 40),
        (0, 2000),
        (0, 1),
    );
    let run = tokio::spawn(run_shard(req, s, far()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    handle.stall_for(Duration::from_millis(600));
    let r = run.await.unwrap().unwrap();
    balanced(&r);
    let x = &r.result;
    assert_eq!(x.errors.total(), 0, "{x:?}");
    let corrected = h(&x.latency_us);
    let uncorrected = h(&x.latency_uncorrected_us);
    assert_eq!(corrected.len(), uncorrected.len());
    let (c90, u90) = (ms(&corrected, 0.90), ms(&uncorrected, 0.90));
    assert!(c90 > 200.0, "corrected p90 {c90} ms shows the 600 ms stall");
    assert!(u90 < 50.0, "uncorrected p90 {u90} ms hides it");
    assert!(ms(&corrected, 1.0) > 500.0);
    // Lag includes the wait for a connection: the requests really went out late.
    assert!(ms(&h(&x.scheduler_lag_us), 0.95) > 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_past_the_in_flight_cap_is_counted_as_dropped() {
    // The target stalls 0.3 s → 1.1 s; 10 requests in flight at most; 100 due per second.
    let (addr, _handle) = target(TargetConfig {
        latency: Latency::Fixed(Duration::from_millis(2)),
        stall: Some((Duration::from_millis(300), Duration::from_millis(800))),
        ..Default::default()
    })
    .await;
    let req = request_with(
        addr,
        "/api/v1/quotes/generate",
        rate(100, "1500ms", 10),
        (0, 1500),
        (0, 1),
        json!(null),
        "5s",
        Duration::ZERO,
    );
    let r = run_shard(req, settings(), far()).await.unwrap();
    balanced(&r);
    let x = &r.result;
    assert_eq!(x.scheduled, 150);
    // ~80 due during the stall, 10 of them hold the slots: ~70 dropped, never silently.
    assert!(
        (60..=76).contains(&x.dropped),
        "dropped {} {x:?}",
        x.dropped
    );
    assert_eq!(r.dropped_at_cap, x.dropped);
    assert_eq!(r.in_flight_cap, 10);
    assert_eq!(x.ok, x.sent);
    assert!(x.stopped_early.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_classified_status_timeout_connect_other() {
    // Status: exactly 20 % of API requests answer 503 (stratified sampling).
    let (addr, _h) = target(TargetConfig {
        error_rate: 0.2,
        error_status: 503,
        ..Default::default()
    })
    .await;
    let r = run_shard(
        request(
            addr,
            "/api/v1/quotes/generate",
            rate(200, "500ms", 50),
            (0, 500),
            (0, 1),
        ),
        settings(),
        far(),
    )
    .await
    .unwrap();
    balanced(&r);
    let e = &r.result.errors;
    assert_eq!(r.result.scheduled, 100);
    assert_eq!(e.status.get("503").copied(), Some(20), "{e:?}");
    assert_eq!(r.result.ok, 80);
    assert_eq!(
        h(&r.result.latency_us).len(),
        100,
        "answered errors have a latency too"
    );

    // Other: 10 % of connections closed without an answer.
    let (addr, _h) = target(TargetConfig {
        drop_rate: 0.1,
        ..Default::default()
    })
    .await;
    let r = run_shard(
        request(
            addr,
            "/api/v1/quotes/generate",
            rate(200, "500ms", 50),
            (0, 500),
            (0, 1),
        ),
        settings(),
        far(),
    )
    .await
    .unwrap();
    balanced(&r);
    assert_eq!(r.result.errors.other, 10, "{:?}", r.result.errors);
    assert_eq!(r.result.ok, 90);

    // Timeout: the target answers after 1 s, the scenario allows 150 ms.
    let (slow, _h2) = target(TargetConfig {
        latency: Latency::Fixed(Duration::from_secs(1)),
        ..Default::default()
    })
    .await;
    let req = request_with(
        slow,
        "/api/v1/quotes/generate",
        rate(40, "500ms", 50),
        (0, 500),
        (0, 1),
        json!(null),
        "150ms",
        Duration::from_millis(200),
    );
    let t = Instant::now();
    let r = run_shard(req, settings(), far()).await.unwrap();
    balanced(&r);
    assert_eq!(r.result.errors.timeout, 20, "{:?}", r.result.errors);
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "timeouts do not wait for the answer"
    );

    // Connect: nothing listens on the port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let r = run_shard(
        request(
            closed,
            "/api/v1/quotes/generate",
            rate(40, "500ms", 50),
            (0, 500),
            (0, 1),
        ),
        settings(),
        far(),
    )
    .await
    .unwrap();
    balanced(&r);
    assert_eq!(r.result.errors.connect, 20, "{:?}", r.result.errors);
    assert_eq!(h(&r.result.latency_us).len(), 0, "no response, no latency");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_outside_the_allowlist_is_refused() {
    let (addr, handle) = target(TargetConfig::default()).await;
    let s = Settings {
        allowed_hosts: vec!["*.staging.example.com".into(), "localhost".into()],
        ..settings()
    };
    let req = request(
        addr,
        "/api/v1/quotes/generate",
        rate(100, "1s", 10),
        (0, 1000),
        (0, 1),
    );
    let e = run_shard(req, s, far()).await.unwrap_err().to_string();
    assert!(e.contains("LOADTEST_ALLOWED_HOSTS"), "{e}");
    assert!(
        e.contains(&format!("http://{addr}")),
        "names target.base_url: {e}"
    );
    assert!(e.contains("scenario.target.base_url"), "{e}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(handle.api_requests(), 0, "not one request sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_rate_is_held_within_half_a_percent() {
    let (addr, handle) = target(TargetConfig::default()).await;
    let req = request(addr, "/", rate(500, "2s", 100), (0, 2000), (0, 1));
    let r = run_shard(req, settings(), far()).await.unwrap();
    balanced(&r);
    assert_eq!(r.result.scheduled, 1000);
    assert_eq!(r.result.ok, 1000);
    assert_eq!(handle.served(), 1000);
    let achieved = r.achieved_rate.unwrap();
    assert!(
        (achieved / 500.0 - 1.0).abs() < 0.005,
        "achieved {achieved:.2}/s for 500/s"
    );
    let lag = h(&r.result.scheduler_lag_us);
    assert_eq!(lag.len(), 1000);
    // The bench checks p99 < 1 ms on a quiet machine; here other builds share the cores.
    assert!(ms(&lag, 0.99) < 5.0, "lag p99 {} ms", ms(&lag, 0.99));
    assert!(r.precise_timer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_and_traceparent_reach_the_target() {
    let (addr, handle) = target(TargetConfig::default()).await;
    let body = json!({"csv_records": {"records": 200, "header": ["order_id", "sku", "quantity", "unit_price"]}});
    let req = request_with(
        addr,
        "/api/v1/import/bulk",
        rate(20, "500ms", 10),
        (0, 500),
        (0, 1),
        body,
        "5s",
        Duration::from_millis(200),
    );
    let r = run_shard(req, settings(), far()).await.unwrap();
    balanced(&r);
    assert_eq!(r.result.ok, 10);
    assert_eq!(
        handle.records_accepted(),
        2000,
        "200 CSV records per request"
    );
    assert_eq!(
        handle.last_traceparent().as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_handshakes_reconnects_and_events_with_server_drops() {
    // An event every 50 ms, the server ends each stream after 5 events.
    let (addr, handle) = target(TargetConfig {
        sse_interval: Duration::from_millis(50),
        sse_drop_after: Some(5),
        ..Default::default()
    })
    .await;
    let ex = json!({"type": "sse-clients", "clients": 20, "duration": "2s", "ramp_up": "200ms"});
    let r = run_shard(
        request(addr, "/api/v1/events/stream", ex, (0, 2000), (1, 2)),
        settings(),
        far(),
    )
    .await
    .unwrap();
    let x = &r.result;
    let sse = x.sse.as_ref().unwrap();
    assert_eq!(sse.clients, 10);
    assert_eq!(x.scheduled, 10);
    assert_eq!(x.dropped, 0);
    assert_eq!(sse.streams_failed, 0, "{x:?}");
    // Each stream lives ~200 ms: about 8 streams per client in ~1.8 s.
    assert!(sse.streams_opened >= 50, "{sse:?}");
    assert_eq!(sse.reconnects, sse.streams_opened - 10);
    assert_eq!(h(&sse.handshake_us).len(), sse.streams_opened);
    assert_eq!(h(&sse.reconnect_us).len(), sse.reconnects);
    // Every completed stream delivered its 5 events; the last one per client may be partial.
    assert!(sse.events_received >= 5 * sse.reconnects, "{sse:?}");
    assert!(sse.events_received <= handle.sse_events());
    assert!(ms(&h(&sse.reconnect_us), 0.95) < 100.0);
    assert!(ms(&h(&sse.handshake_us), 0.95) < 100.0);
    // The target stamps each event's send time: every event received has its delivery lag.
    let lag = h(&sse.delivery_lag_us);
    assert_eq!(lag.len(), sse.events_received, "{sse:?}");
    assert!(
        ms(&lag, 0.95) < 50.0,
        "delivery lag p95 {} ms on one machine",
        ms(&lag, 0.95)
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(handle.sse_open(), 0, "streams closed at the window end");
}

/// As an EventSource: the server's `retry: 300` (a block with no data, so no event) sets the
/// wait before each reconnect, and each reconnect sends `Last-Event-ID`, from which the server
/// resumes; the events counted are exactly the data events the server sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_reconnects_honour_retry_and_resume_from_the_last_event_id() {
    let (addr, handle) = target(TargetConfig {
        sse_interval: Duration::from_millis(40),
        sse_drop_after: Some(3),
        sse_retry: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let ex = json!({"type": "sse-clients", "clients": 4, "duration": "2s", "ramp_up": "100ms"});
    let r = run_shard(
        request(addr, "/api/v1/events/stream", ex, (0, 2000), (0, 1)),
        settings(),
        far(),
    )
    .await
    .unwrap();
    let sse = r.result.sse.as_ref().unwrap();
    assert_eq!(sse.streams_failed, 0, "{sse:?}");
    assert!(sse.reconnects >= 4, "{sse:?}");
    // Each reconnect waited the server's 300 ms (a stream lasts ~120 ms, so about 4 streams a
    // client in 2 s, not the ~16 an immediate reconnect gives).
    let reconnect = h(&sse.reconnect_us);
    assert!(
        ms(&reconnect, 0.0) >= 299.0,
        "reconnect min {} ms",
        ms(&reconnect, 0.0)
    );
    assert!(sse.streams_opened <= 4 * 6, "{sse:?}");
    assert_eq!(
        handle.sse_resumed(),
        sse.reconnects,
        "every reconnect sent Last-Event-ID"
    );
    // retry-only blocks are not events: what was received is at most what was sent as data.
    assert!(sse.events_received <= handle.sse_events(), "{sse:?}");
    assert!(sse.events_received >= 3 * sse.reconnects, "{sse:?}");
}

/// A handshake still in flight when the window closes (within its timeout) is not a failed
/// stream: the target takes 2 s to answer, the window is 0.5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_handshake_cut_by_the_window_end_is_not_a_failure() {
    let (addr, _h) = target(TargetConfig {
        latency: "fixed:2s".parse().unwrap(),
        ..Default::default()
    })
    .await;
    let ex = json!({"type": "sse-clients", "clients": 3, "duration": "500ms", "ramp_up": "10ms"});
    let r = run_shard(
        request(addr, "/api/v1/events/stream", ex, (0, 500), (0, 1)),
        settings(),
        far(),
    )
    .await
    .unwrap();
    let sse = r.result.sse.as_ref().unwrap();
    assert_eq!(sse.streams_failed, 0, "{sse:?}");
    assert_eq!(r.result.errors.total(), 0, "{:?}", r.result);
    assert_eq!(sse.streams_opened, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_beyond_the_descriptor_budget_is_refused() {
    let (addr, _h) = target(TargetConfig::default()).await;
    let ex = json!({"type": "sse-clients", "clients": 2000, "duration": "10m"});
    let e = run_shard(
        request(addr, "/api/v1/events/stream", ex, (0, 600_000), (0, 2)),
        settings(),
        far(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("shard_count") && e.contains("1000") && e.contains("at least 3 shards"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_before_the_deadline_and_counts_the_rest_as_dropped() {
    let (addr, _h) = target(TargetConfig::default()).await;
    // A 5 s window, but the invocation must return within 1.5 s (margin 0.5 s).
    let req = request_with(
        addr,
        "/",
        rate(100, "5s", 10),
        (0, 5000),
        (0, 1),
        json!(null),
        "5s",
        Duration::ZERO,
    );
    let t = Instant::now();
    let deadline = t + Duration::from_millis(1500);
    let r = run_shard(req, settings(), deadline).await.unwrap();
    assert!(Instant::now() < deadline, "returned before the deadline");
    balanced(&r);
    let x = &r.result;
    assert_eq!(x.scheduled, 500);
    assert!((95..=105).contains(&x.sent), "{x:?}");
    assert_eq!(x.dropped, 500 - x.sent);
    assert!(
        x.stopped_early
            .as_deref()
            .unwrap_or("")
            .starts_with("deadline"),
        "{x:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_invocation_after_the_window_sends_nothing() {
    let (addr, handle) = target(TargetConfig::default()).await;
    let mut req = request(addr, "/", rate(100, "5s", 10), (0, 2000), (0, 1));
    req.t0_unix_ms = unix_ms_now() - 10_000;
    let r = run_shard(req, settings(), far()).await.unwrap();
    assert_eq!(r.result.scheduled, 200);
    assert_eq!(r.result.dropped, 200);
    assert_eq!(r.result.sent, 0);
    assert_eq!(
        r.result.stopped_early.as_deref(),
        Some("window already over")
    );
    assert_eq!(handle.served(), 0);
}

/// Asked for a timeline, the shard counts its requests per step of their intended send time,
/// and the steps add up to the totals it reports: sent, ok, dropped (an in-flight cap of 2
/// against a 40 ms target at 100/s drops), and every answered latency in exactly one bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_adds_up_to_the_totals_step_by_step() {
    let (addr, _handle) = target(TargetConfig {
        latency: "fixed:40ms".parse().unwrap(),
        error_rate: 0.1,
        ..Default::default()
    })
    .await;
    let mut req = request(
        addr,
        "/api/v1/quotes/generate",
        rate(100, "2s", 2),
        (0, 2000),
        (0, 1),
    );
    req.timeline_step_ms = Some(500);
    let r = run_shard(req, settings(), far()).await.unwrap();
    balanced(&r);
    let x = &r.result;
    assert!(x.dropped > 0 && x.ok > 0 && x.errors.total() > 0, "{x:?}");
    let steps: Vec<u64> = x.timeline.iter().map(|s| s.step).collect();
    assert_eq!(steps, [0, 1, 2, 3], "{:?}", x.timeline);
    for s in &x.timeline {
        assert_eq!(s.sent + s.dropped, 50, "100/s over 500 ms: {s:?}");
        assert_eq!(s.buckets.len(), loadtest_core::TIMELINE_LE_S.len() + 1);
    }
    let sum = |f: fn(&loadtest_core::TimelineStep) -> u64| x.timeline.iter().map(f).sum::<u64>();
    assert_eq!(sum(|s| s.sent), x.sent);
    assert_eq!(sum(|s| s.ok), x.ok);
    assert_eq!(sum(|s| s.dropped), x.dropped);
    assert_eq!(sum(|s| s.errors()), x.errors.total());
    assert_eq!(sum(|s| s.buckets.iter().sum()), h(&x.latency_us).len());
    // 40 ms answers (from the intended send time) sit in le=0.05 or just above, never below 25 ms.
    let below_25ms: u64 = x
        .timeline
        .iter()
        .map(|s| s.buckets[..3].iter().sum::<u64>())
        .sum();
    assert_eq!(below_25ms, 0, "{:?}", x.timeline);
    // Without the field, no timeline (the response stays as small as before).
    let r = run_shard(
        request(
            addr,
            "/api/v1/quotes/generate",
            rate(20, "1s", 10),
            (0, 1000),
            (0, 1),
        ),
        settings(),
        far(),
    )
    .await
    .unwrap();
    assert!(r.result.timeline.is_empty());
}
