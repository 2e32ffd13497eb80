//! Runs one shard: its stripe of its window of the global schedule (open model), or its share
//! of SSE clients. Pure of AWS: the Lambda adapter (handler.rs), the tests and the bench call
//! [`run_shard`] / [`run_shard_blocking`] directly.
//!
//! One OS thread, a current-thread tokio runtime and a `LocalSet`: no locks or atomics on the
//! hot path, and the load generator does not compete with the Lambda runtime's own tasks.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use loadtest_core::{
    encode_histogram, new_histogram, timeline_bucket, ErrorCounts, Executor, Schedule,
    ShardRequest, ShardResult, SseResult, TimelineStep,
};
use shared::SuiteError;
use tokio::sync::Notify;

use crate::config::{host_allowed, Settings};
use crate::timer::PreciseTimer;
use crate::transport::{
    connect, exchange_plain, exchange_tls, tls_client, Failure, Pool, RequestTemplate,
};

/// The result plus what only local callers (bench, tests) need.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub result: ShardResult,
    /// Actual send time of the first and last request (rate accuracy).
    pub first_send: Option<Instant>,
    pub last_send: Option<Instant>,
    /// Sends per second: the least-squares slope of actual send times over send order (one
    /// late first or last send does not skew it as (n − 1) / (last − first) would).
    pub achieved_rate: Option<f64>,
    /// Requests dropped because the in-flight cap was reached (the rest of `dropped` is
    /// the deadline's).
    pub dropped_at_cap: u64,
    /// The per-shard in-flight cap used.
    pub in_flight_cap: u32,
    /// Whether the microsecond timer (timerfd) was used.
    pub precise_timer: bool,
}

pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The `Instant` of a Unix time in ms, given a simultaneous reading of both clocks.
pub fn instant_of(unix_ms: u64, now: Instant, now_unix_ms: u64) -> Instant {
    if unix_ms >= now_unix_ms {
        now + Duration::from_millis(unix_ms - now_unix_ms)
    } else {
        now.checked_sub(Duration::from_millis(now_unix_ms - unix_ms))
            .unwrap_or(now)
    }
}

/// Per-shard in-flight cap: ceil(max_in_flight / shard_count), at least 1.
pub fn per_shard_cap(max_in_flight: u32, shard_count: u32) -> u32 {
    max_in_flight.div_ceil(shard_count.max(1)).max(1)
}

/// Checks everything that does not need the network; errors name the field.
pub fn validate(req: &ShardRequest, settings: &Settings) -> Result<RequestTemplate, SuiteError> {
    if req.run_id.trim().is_empty() {
        return Err(SuiteError::invalid(
            "run_id",
            "is empty",
            "send the coordinator's run id",
        ));
    }
    if req.shard_count == 0 {
        return Err(SuiteError::invalid(
            "shard_count",
            "is 0",
            "send at least 1",
        ));
    }
    if req.shard_index >= req.shard_count {
        return Err(SuiteError::invalid(
            "shard_index",
            format!(
                "{} is not below shard_count {}",
                req.shard_index, req.shard_count
            ),
            "shard_index runs from 0 to shard_count - 1",
        ));
    }
    if req.window.from_ms >= req.window.to_ms {
        return Err(SuiteError::invalid(
            "window",
            format!(
                "from_ms {} is not before to_ms {}",
                req.window.from_ms, req.window.to_ms
            ),
            "send a window [from_ms, to_ms) with from_ms < to_ms, relative to t0_unix_ms",
        ));
    }
    req.scenario.validate().map_err(|e| match e {
        loadtest_core::ScenarioError::Field { field, message } => SuiteError::invalid(
            format!("scenario.{field}"),
            message,
            "see docs/loadtest-scenarios.md",
        ),
    })?;
    let host = req.scenario.target_host().unwrap_or_default();
    if !host_allowed(&host, &settings.allowed_hosts) {
        return Err(SuiteError::invalid(
            "scenario.target.base_url",
            format!(
                "host {host:?} of {} is not in LOADTEST_ALLOWED_HOSTS ({}); the shard never loads a host it was not told to",
                req.scenario.target.base_url,
                if settings.allowed_hosts.is_empty() {
                    "empty".to_string()
                } else {
                    settings.allowed_hosts.join(",")
                }
            ),
            "add the host (or *.its-domain) to LOADTEST_ALLOWED_HOSTS if it is yours to load-test",
        ));
    }
    if let Executor::SseClients(e) = &req.scenario.executor {
        let mine = sse_clients_of(e.clients, req.shard_index, req.shard_count);
        if mine > u64::from(settings.max_streams) {
            let need = u64::from(e.clients).div_ceil(u64::from(settings.max_streams));
            return Err(SuiteError::invalid(
                "shard_count",
                format!(
                    "this shard would hold {mine} SSE streams, over LOADTEST_MAX_STREAMS={} (Lambda allows 1,024 file descriptors)",
                    settings.max_streams
                ),
                format!("spread {} clients over at least {need} shards", e.clients),
            ));
        }
    }
    RequestTemplate::from_scenario(&req.scenario, req.traceparent.as_deref())
}

fn sse_clients_of(clients: u32, k: u32, n: u32) -> u64 {
    if k >= clients {
        0
    } else {
        u64::from((clients - k).div_ceil(n.max(1)))
    }
}

/// Runs the shard on its own thread and waits for it. `deadline` is when the invocation must
/// have returned (the Lambda deadline); the shard stops `settings.deadline_margin` before.
pub async fn run_shard(
    req: ShardRequest,
    settings: Settings,
    deadline: Instant,
) -> Result<RunReport, SuiteError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("loadgen".into())
        .spawn(move || {
            let _ = tx.send(run_shard_blocking(req, &settings, deadline));
        })
        .map_err(SuiteError::Io)?;
    rx.await
        .map_err(|_| SuiteError::Internal("the load generator thread died".into()))?
}

/// [`run_shard`] on the calling thread (which must not be inside a tokio runtime).
pub fn run_shard_blocking(
    req: ShardRequest,
    settings: &Settings,
    deadline: Instant,
) -> Result<RunReport, SuiteError> {
    let template = validate(&req, settings)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SuiteError::Io)?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        match &req.scenario.executor {
            Executor::SseClients(_) => run_sse(&req, settings, template, deadline).await,
            _ => run_http(&req, settings, template, deadline).await,
        }
    })
}

fn us(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

fn encode(h: &Histogram<u64>) -> Result<String, SuiteError> {
    encode_histogram(h).map_err(|e| SuiteError::Internal(e.to_string()))
}

struct Stats {
    latency: Histogram<u64>,
    uncorrected: Histogram<u64>,
    lag: Histogram<u64>,
    ok: u64,
    errors: ErrorCounts,
    bytes: u64,
    completed: u64,
    first_send: Option<Instant>,
    last_send: Option<Instant>,
    /// Least-squares sums of (send order, seconds since the first send).
    fit: [f64; 5],
    /// Per-step counts (`ShardRequest::timeline_step_ms`), by step number.
    steps: std::collections::BTreeMap<u64, TimelineStep>,
}

/// Where a request falls in the timeline: t0 and the step length.
#[derive(Clone, Copy)]
struct Timeline {
    t0: Instant,
    step_ms: u64,
}

impl Timeline {
    fn step_of(&self, due: Instant) -> u64 {
        due.saturating_duration_since(self.t0).as_millis() as u64 / self.step_ms.max(1)
    }
}

impl Stats {
    fn note_send(&mut self, actual: Instant) {
        let first = *self.first_send.get_or_insert(actual);
        self.last_send = Some(actual);
        let x = self.fit[0];
        let y = actual.saturating_duration_since(first).as_secs_f64();
        self.fit[0] += 1.0;
        self.fit[1] += x;
        self.fit[2] += y;
        self.fit[3] += x * y;
        self.fit[4] += x * x;
    }

    fn achieved_rate(&self) -> Option<f64> {
        let [n, sx, sy, sxy, sxx] = self.fit;
        let den = n * sxx - sx * sx;
        if n < 2.0 || den <= 0.0 {
            return None;
        }
        let slope = (n * sxy - sx * sy) / den;
        (slope > 0.0).then(|| 1.0 / slope)
    }

    fn new() -> Self {
        Stats {
            latency: new_histogram(),
            uncorrected: new_histogram(),
            lag: new_histogram(),
            ok: 0,
            errors: ErrorCounts::default(),
            bytes: 0,
            completed: 0,
            first_send: None,
            last_send: None,
            fit: [0.0; 5],
            steps: Default::default(),
        }
    }

    fn step(&mut self, tl: Option<Timeline>, due: Instant) -> Option<&mut TimelineStep> {
        let n = tl?.step_of(due);
        Some(self.steps.entry(n).or_insert_with(|| TimelineStep::new(n)))
    }

    fn failure(&mut self, f: Failure) {
        match f {
            Failure::Timeout => self.errors.timeout += 1,
            Failure::Connect => self.errors.connect += 1,
            Failure::Other => self.errors.other += 1,
        }
    }
}

enum Transport {
    Plain(Rc<Pool>),
    Tls(reqwest::Client),
}

struct Ctx {
    stats: RefCell<Stats>,
    in_flight: Cell<u32>,
    drained: Notify,
    template: RequestTemplate,
    transport: Transport,
    timeout: Duration,
    timeline: Option<Timeline>,
}

async fn resolve(authority: &str) -> Vec<SocketAddr> {
    // Resolved once per invocation; a failure shows as connect errors on every request.
    match tokio::net::lookup_host(authority).await {
        Ok(a) => a.collect(),
        Err(e) => {
            tracing::warn!(authority, error = %e, "target does not resolve");
            vec![]
        }
    }
}

fn base_result(req: &ShardRequest) -> ShardResult {
    ShardResult {
        run_id: req.run_id.clone(),
        slice_index: req.slice_index,
        shard_index: req.shard_index,
        started_unix_ms: unix_ms_now(),
        ..Default::default()
    }
}

/// Everything in the stripe dropped: the window is over (a repeated invocation) or the
/// deadline falls before it starts.
fn all_dropped(
    req: &ShardRequest,
    scheduled: u64,
    why: &str,
    sse: Option<SseResult>,
) -> Result<RunReport, SuiteError> {
    let empty = encode(&new_histogram())?;
    let mut r = base_result(req);
    r.scheduled = scheduled;
    r.dropped = scheduled;
    r.latency_us = empty.clone();
    r.latency_uncorrected_us = empty.clone();
    r.scheduler_lag_us = empty;
    r.stopped_early = Some(why.to_string());
    r.sse = sse;
    r.finished_unix_ms = unix_ms_now();
    Ok(RunReport {
        result: r,
        first_send: None,
        last_send: None,
        achieved_rate: None,
        dropped_at_cap: 0,
        in_flight_cap: 0,
        precise_timer: false,
    })
}

async fn run_http(
    req: &ShardRequest,
    settings: &Settings,
    template: RequestTemplate,
    deadline: Instant,
) -> Result<RunReport, SuiteError> {
    let sc = &req.scenario;
    let schedule = Schedule::from_scenario(sc).ok_or_else(|| {
        SuiteError::invalid(
            "scenario.executor",
            "has no arrival schedule",
            "use constant-arrival-rate or ramping-arrival-rate",
        )
    })?;
    let from = Duration::from_millis(req.window.from_ms);
    let to = Duration::from_millis(req.window.to_ms);
    let stripe = || schedule.stripe_in(from, to, req.shard_index, req.shard_count);
    let scheduled = stripe().count() as u64;

    let (now, now_unix) = (Instant::now(), unix_ms_now());
    let t0 = instant_of(req.t0_unix_ms, now, now_unix);
    let window_end = t0 + to;
    if now >= window_end {
        return all_dropped(req, scheduled, "window already over", None);
    }
    let stop_at = window_end.min(
        deadline
            .checked_sub(settings.deadline_margin)
            .unwrap_or(now),
    );
    let drain_until = deadline
        .checked_sub(settings.deadline_margin / 2)
        .unwrap_or(now);

    let cap = per_shard_cap(sc.executor.max_in_flight(), req.shard_count);
    let connections = settings
        .max_connections
        .unwrap_or(cap)
        .min(cap)
        .min(settings.max_streams) as usize;
    let transport = if template.https {
        Transport::Tls(tls_client(connections)?)
    } else {
        Transport::Plain(Pool::new(resolve(&template.authority).await, connections))
    };
    let ctx = Rc::new(Ctx {
        stats: RefCell::new(Stats::new()),
        in_flight: Cell::new(0),
        drained: Notify::new(),
        template,
        transport,
        timeout: sc.request_timeout(),
        timeline: req
            .timeline_step_ms
            .filter(|s| *s > 0)
            .map(|step_ms| Timeline { t0, step_ms }),
    });
    let mut result = base_result(req);
    let mut timer = PreciseTimer::new();
    let mut sent = 0u64;
    let mut dropped = 0u64;
    let mut dropped_at_cap = 0u64;
    let mut stopped_early = None;

    for (n, i) in stripe().enumerate() {
        let Some(offset) = schedule.offset(i) else {
            break;
        };
        let due = t0 + offset;
        if due >= stop_at {
            let left = scheduled - n as u64;
            dropped += left;
            if let Some(tl) = ctx.timeline {
                let mut st = ctx.stats.borrow_mut();
                for j in stripe().skip(n) {
                    if let Some(o) = schedule.offset(j) {
                        if let Some(s) = st.step(Some(tl), t0 + o) {
                            s.dropped += 1;
                        }
                    }
                }
            }
            stopped_early = Some(format!(
                "deadline: stopped {} ms before the invocation deadline; {left} requests of the window not sent",
                settings.deadline_margin.as_millis()
            ));
            break;
        }
        timer.sleep_until(due).await;
        if ctx.in_flight.get() >= cap {
            dropped += 1;
            dropped_at_cap += 1;
            if let Some(s) = ctx.stats.borrow_mut().step(ctx.timeline, due) {
                s.dropped += 1;
            }
            continue;
        }
        ctx.in_flight.set(ctx.in_flight.get() + 1);
        sent += 1;
        if let Some(s) = ctx.stats.borrow_mut().step(ctx.timeline, due) {
            s.sent += 1;
        }
        tokio::task::spawn_local(one_request(ctx.clone(), i, due));
    }

    // Drain: requests in flight end by their own timeout, or at half the margin.
    loop {
        if ctx.in_flight.get() == 0 {
            break;
        }
        let notified = ctx.drained.notified();
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(drain_until.into()) => break,
        }
    }
    let mut st = ctx.stats.borrow_mut();
    let abandoned = sent.saturating_sub(st.completed);
    if abandoned > 0 {
        // Sent but unanswered when the shard had to return: they did not answer in time.
        st.errors.timeout += abandoned;
        stopped_early.get_or_insert_with(|| {
            format!("deadline: {abandoned} requests still in flight were abandoned (counted as timeouts)")
        });
    }
    result.scheduled = scheduled;
    result.sent = sent;
    result.ok = st.ok;
    result.errors = std::mem::take(&mut st.errors);
    result.dropped = dropped;
    result.latency_us = encode(&st.latency)?;
    result.latency_uncorrected_us = encode(&st.uncorrected)?;
    result.scheduler_lag_us = encode(&st.lag)?;
    result.bytes_received = st.bytes;
    result.stopped_early = stopped_early;
    result.timeline = std::mem::take(&mut st.steps).into_values().collect();
    result.finished_unix_ms = unix_ms_now();
    Ok(RunReport {
        result,
        first_send: st.first_send,
        last_send: st.last_send,
        achieved_rate: st.achieved_rate(),
        dropped_at_cap,
        in_flight_cap: cap,
        precise_timer: timer.is_precise(),
    })
}

async fn one_request(ctx: Rc<Ctx>, i: u64, intended: Instant) {
    let sent_at = Cell::new(None);
    let fut = async {
        match &ctx.transport {
            Transport::Plain(pool) => {
                exchange_plain(pool, ctx.template.hyper_request(i), &sent_at).await
            }
            Transport::Tls(client) => exchange_tls(client, &ctx.template, i, &sent_at).await,
        }
    };
    let r = tokio::time::timeout_at((intended + ctx.timeout).into(), fut).await;
    let done = Instant::now();
    {
        let mut st = ctx.stats.borrow_mut();
        if let Some(actual) = sent_at.get() {
            st.lag
                .saturating_record(us(actual.saturating_duration_since(intended)));
            st.note_send(actual);
        }
        match r {
            Ok(Ok((status, bytes))) => {
                // Every answered request is in the latency histograms, errors included (as
                // k6's http_req_duration); timeouts and connect failures are not.
                let latency = us(done - intended).max(1);
                st.latency.saturating_record(latency);
                if let Some(actual) = sent_at.get() {
                    st.uncorrected.saturating_record(us(done - actual).max(1));
                }
                st.bytes += bytes;
                let ok = (200..400).contains(&status);
                if let Some(s) = st.step(ctx.timeline, intended) {
                    s.buckets[timeline_bucket(latency)] += 1;
                    s.latency_sum_us += latency;
                    s.ok += u64::from(ok);
                }
                if ok {
                    st.ok += 1;
                } else {
                    *st.errors.status.entry(status.to_string()).or_default() += 1;
                }
            }
            Ok(Err(f)) => st.failure(f),
            Err(_) => st.failure(Failure::Timeout),
        }
        st.completed += 1;
    }
    let n = ctx.in_flight.get() - 1;
    ctx.in_flight.set(n);
    if n == 0 {
        ctx.drained.notify_one();
    }
}

// ---- Closed loop (the bench's maximum throughput) -------------------------------------------

/// What a closed-loop run measured.
#[derive(Debug)]
pub struct ClosedLoopReport {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Every response's latency, µs.
    pub latency: Histogram<u64>,
}

/// `connections` loops, each sending the next request when the previous answered, for
/// `duration`, through the same pool, request path and histogram recording as the open
/// model. Blocking: runs its own current-thread runtime.
pub fn closed_loop(
    url: &str,
    connections: usize,
    duration: Duration,
) -> Result<ClosedLoopReport, SuiteError> {
    let scenario = loadtest_core::parse_scenario(
        serde_json::json!({
            "name": "closed-loop",
            "target": {"base_url": url},
            "executor": {"type": "constant-arrival-rate", "rate": 1, "duration": "1s"},
            "request": {"method": "GET", "path": "/"},
        })
        .to_string()
        .as_bytes(),
    )
    .map_err(|e| SuiteError::invalid("url", e.to_string(), "http://host:port"))?;
    let template = RequestTemplate::from_scenario(&scenario, None)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SuiteError::Io)?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let pool = Pool::new(resolve(&template.authority).await, connections);
        let stats = Rc::new(RefCell::new((new_histogram(), 0u64, 0u64)));
        let start = Instant::now();
        let end = start + duration;
        let template = Rc::new(template);
        let mut tasks = vec![];
        for _ in 0..connections {
            let (pool, stats, template) = (pool.clone(), stats.clone(), template.clone());
            tasks.push(tokio::task::spawn_local(async move {
                let mut i = 0u64;
                let sent_at = Cell::new(None);
                while Instant::now() < end {
                    let t = Instant::now();
                    let r = exchange_plain(&pool, template.hyper_request(i), &sent_at).await;
                    let mut s = stats.borrow_mut();
                    match r {
                        Ok((status, _)) if (200..400).contains(&status) => {
                            s.0.saturating_record(us(t.elapsed()).max(1));
                            s.1 += 1;
                        }
                        _ => s.2 += 1,
                    }
                    i += 1;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let elapsed = start.elapsed();
        let (latency, requests, errors) = Rc::try_unwrap(stats)
            .map(|c| c.into_inner())
            .unwrap_or_else(|rc| {
                let b = rc.borrow();
                (b.0.clone(), b.1, b.2)
            });
        Ok(ClosedLoopReport {
            requests,
            errors,
            elapsed,
            latency,
        })
    })
}

// ---- SSE -----------------------------------------------------------------------------------

struct SseStats {
    handshake: Histogram<u64>,
    reconnect: Histogram<u64>,
    delivery_lag: Histogram<u64>,
    opened: u64,
    failed: u64,
    reconnects: u64,
    events: u64,
    bytes: u64,
    errors: ErrorCounts,
    never_opened: u64,
}

/// The event-stream parser of the HTML standard ("Interpreting an event stream"), as an
/// `EventSource` runs it, fed in chunks: lines end in LF, CR or CRLF; `data:` lines append to
/// the data buffer; a blank line dispatches an event only when the buffer is not empty (a block
/// with only `id:`, `event:` or `retry:` is no event, and `: comment` lines are ignored); `id:`
/// sets the last event id (unless it holds NUL), kept across events for `Last-Event-ID`;
/// `retry:` of ASCII digits only sets the reconnection time. Field values lose one leading
/// space. Only counts are kept, never the data.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous byte was CR: a following LF belongs to the same line end.
    after_cr: bool,
    has_data: bool,
    pending_id: Option<String>,
    /// The send time the current event's data carries (`"server_unix_us": <µs>`).
    pending_stamp: Option<u64>,
    /// Send times of the events dispatched since the caller last took them.
    pub stamps: Vec<u64>,
    /// Events dispatched.
    pub events: u64,
    /// The last event id a dispatched (or id-only) block set: sent as `Last-Event-ID`.
    pub last_event_id: Option<String>,
    /// The reconnection time the server asked for with `retry:`.
    pub retry: Option<Duration>,
}

impl SseParser {
    pub fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line);
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
    }

    fn line_done(&mut self, line: &[u8]) {
        if line.is_empty() {
            // The id is the stream's last event id whether or not data followed it.
            if let Some(id) = self.pending_id.take() {
                self.last_event_id = Some(id);
            }
            if self.has_data {
                self.events += 1;
                self.has_data = false;
                if let Some(t) = self.pending_stamp.take() {
                    self.stamps.push(t);
                }
            }
            self.pending_stamp = None;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.has_data = true;
                if let Some(t) = stamp_in(value) {
                    self.pending_stamp = Some(t);
                }
            }
            b"id" if !value.contains(&0) => {
                self.pending_id = Some(String::from_utf8_lossy(value).into_owned())
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                if let Ok(ms) = std::str::from_utf8(value).unwrap_or("").parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
    }
}

/// The digits after `"server_unix_us":` in an event's data, if any (a substring scan: the
/// data is not otherwise parsed, so a stream costs no JSON work).
fn stamp_in(data: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"server_unix_us\":";
    let at = data.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &data[at..];
    let digits: Vec<u8> = rest
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn unix_us_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

enum Stream {
    /// The sender is held so the connection lives as long as the stream.
    Plain {
        body: hyper::body::Incoming,
        _conn: crate::transport::Conn,
    },
    Tls(reqwest::Response),
}

impl Stream {
    /// The next chunk; `None` at the end of the stream, `Err` on a broken one.
    async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, ()> {
        match self {
            Stream::Plain { body, .. } => {
                use http_body_util::BodyExt;
                loop {
                    match body.frame().await {
                        None => return Ok(None),
                        Some(Err(_)) => return Err(()),
                        Some(Ok(f)) => {
                            if let Ok(d) = f.into_data() {
                                return Ok(Some(d));
                            }
                        }
                    }
                }
            }
            Stream::Tls(r) => r.chunk().await.map_err(|_| ()),
        }
    }
}

enum OpenError {
    Fail(Failure),
    Status(u16),
    NotEventStream,
}

async fn open_stream(
    template: &RequestTemplate,
    addrs: &[SocketAddr],
    tls: Option<&reqwest::Client>,
    last_event_id: Option<&str>,
) -> Result<Stream, OpenError> {
    // A reconnecting EventSource tells the server where it stopped.
    let resume = last_event_id.and_then(|id| http::HeaderValue::from_str(id).ok());
    let is_sse = |ct: Option<&http::HeaderValue>| {
        ct.and_then(|v| v.to_str().ok())
            .map(|s| s.to_ascii_lowercase().starts_with("text/event-stream"))
            .unwrap_or(false)
    };
    match tls {
        None => {
            let mut conn = connect(addrs).await.map_err(OpenError::Fail)?;
            let mut r = template.hyper_request(0);
            r.headers_mut().insert(
                http::header::ACCEPT,
                http::HeaderValue::from_static("text/event-stream"),
            );
            if let Some(v) = &resume {
                r.headers_mut().insert("last-event-id", v.clone());
            }
            let resp = conn
                .send_request(r)
                .await
                .map_err(|_| OpenError::Fail(Failure::Other))?;
            if resp.status() != http::StatusCode::OK {
                return Err(OpenError::Status(resp.status().as_u16()));
            }
            if !is_sse(resp.headers().get(http::header::CONTENT_TYPE)) {
                return Err(OpenError::NotEventStream);
            }
            Ok(Stream::Plain {
                body: resp.into_body(),
                _conn: conn,
            })
        }
        Some(client) => {
            let mut headers = template.headers.clone();
            headers.remove(http::header::HOST);
            headers.insert(
                http::header::ACCEPT,
                http::HeaderValue::from_static("text/event-stream"),
            );
            if let Some(v) = &resume {
                headers.insert("last-event-id", v.clone());
            }
            let resp = client
                .request(template.method.clone(), &template.url)
                .headers(headers)
                .send()
                .await
                .map_err(|e| {
                    OpenError::Fail(if e.is_connect() {
                        Failure::Connect
                    } else {
                        Failure::Other
                    })
                })?;
            if resp.status() != reqwest::StatusCode::OK {
                return Err(OpenError::Status(resp.status().as_u16()));
            }
            if !is_sse(resp.headers().get(http::header::CONTENT_TYPE)) {
                return Err(OpenError::NotEventStream);
            }
            Ok(Stream::Tls(resp))
        }
    }
}

async fn run_sse(
    req: &ShardRequest,
    settings: &Settings,
    template: RequestTemplate,
    deadline: Instant,
) -> Result<RunReport, SuiteError> {
    let Executor::SseClients(e) = &req.scenario.executor else {
        return Err(SuiteError::Internal("run_sse on a non-SSE scenario".into()));
    };
    let clients = e.clients;
    let ramp = e
        .ramp_up
        .as_deref()
        .and_then(|r| loadtest_core::parse_duration(r).ok())
        .unwrap_or(Duration::from_secs(10));
    let mine: Vec<u32> = (req.shard_index..clients)
        .step_by(req.shard_count.max(1) as usize)
        .collect();
    let n = mine.len() as u64;
    let empty_sse = |failed: u64| -> Result<SseResult, SuiteError> {
        let empty = encode(&new_histogram())?;
        Ok(SseResult {
            clients: n,
            handshake_us: empty.clone(),
            reconnect_us: empty,
            streams_failed: failed,
            ..Default::default()
        })
    };
    let (now, now_unix) = (Instant::now(), unix_ms_now());
    let t0 = instant_of(req.t0_unix_ms, now, now_unix);
    let window_start = t0 + Duration::from_millis(req.window.from_ms);
    let window_end = t0 + Duration::from_millis(req.window.to_ms);
    if now >= window_end {
        return all_dropped(req, n, "window already over", Some(empty_sse(0)?));
    }
    let stop_at = window_end.min(
        deadline
            .checked_sub(settings.deadline_margin)
            .unwrap_or(now),
    );
    let timeout = req.scenario.request_timeout();
    let tls = if template.https {
        Some(tls_client(1)?)
    } else {
        None
    };
    let addrs = if template.https {
        vec![]
    } else {
        resolve(&template.authority).await
    };
    let shared = Rc::new((
        RefCell::new(SseStats {
            handshake: new_histogram(),
            reconnect: new_histogram(),
            delivery_lag: new_histogram(),
            opened: 0,
            failed: 0,
            reconnects: 0,
            events: 0,
            bytes: 0,
            errors: ErrorCounts::default(),
            never_opened: 0,
        }),
        template,
        addrs,
        tls,
    ));
    let mut result = base_result(req);
    let mut tasks = Vec::with_capacity(mine.len());
    for c in mine {
        // Client c opens at its place in the global ramp, or at the window start when the
        // ramp lies in an earlier slice.
        let open_at =
            (t0 + ramp.mul_f64(f64::from(c) / f64::from(clients.max(1)))).max(window_start);
        let sh = shared.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let (stats, template, addrs, tls) = &*sh;
            tokio::time::sleep_until(open_at.into()).await;
            let mut opened_any = false;
            let mut dropped_at: Option<Instant> = None;
            // Kept across reconnects, as an EventSource keeps them.
            let mut parser = SseParser::default();
            while Instant::now() < stop_at {
                let start = Instant::now();
                let limit = (start + timeout).min(stop_at);
                let opened = tokio::time::timeout_at(
                    limit.into(),
                    open_stream(
                        template,
                        addrs,
                        tls.as_ref(),
                        parser.last_event_id.as_deref(),
                    ),
                )
                .await;
                let mut stream = match opened {
                    Ok(Ok(s)) => s,
                    // Still connecting when the window closed, within its timeout: not a
                    // failed stream (the next window's client opens it).
                    Err(_) if limit == stop_at && start + timeout > stop_at => break,
                    failed => {
                        {
                            let mut st = stats.borrow_mut();
                            st.failed += 1;
                            match failed {
                                Ok(Err(OpenError::Fail(f))) => match f {
                                    Failure::Timeout => st.errors.timeout += 1,
                                    Failure::Connect => st.errors.connect += 1,
                                    Failure::Other => st.errors.other += 1,
                                },
                                Ok(Err(OpenError::Status(s))) => {
                                    *st.errors.status.entry(s.to_string()).or_default() += 1
                                }
                                Ok(Err(OpenError::NotEventStream)) => st.errors.other += 1,
                                _ => st.errors.timeout += 1,
                            }
                        }
                        // Back off before retrying, as browsers' EventSource does.
                        tokio::time::sleep_until(
                            (Instant::now() + Duration::from_millis(250))
                                .min(stop_at)
                                .into(),
                        )
                        .await;
                        continue;
                    }
                };
                let headers_at = Instant::now();
                {
                    let mut st = stats.borrow_mut();
                    st.opened += 1;
                    st.handshake
                        .saturating_record(us(headers_at - start).max(1));
                    if let Some(d) = dropped_at.take() {
                        st.reconnects += 1;
                        st.reconnect.saturating_record(us(headers_at - d).max(1));
                    }
                }
                opened_any = true;
                let before = parser.events;
                let ended = loop {
                    tokio::select! {
                        c = stream.chunk() => match c {
                            Ok(Some(b)) => {
                                parser.feed(&b);
                                let mut st = stats.borrow_mut();
                                st.bytes += b.len() as u64;
                                if !parser.stamps.is_empty() {
                                    let now = unix_us_now();
                                    for t in parser.stamps.drain(..) {
                                        st.delivery_lag.saturating_record(now.saturating_sub(t).max(1));
                                    }
                                }
                            }
                            _ => break true,
                        },
                        _ = tokio::time::sleep_until(stop_at.into()) => break false,
                    }
                };
                stats.borrow_mut().events += parser.events - before;
                if !ended {
                    break;
                }
                // The server dropped the stream: reconnect after the reconnection time it
                // asked for with `retry:` (at once when it asked for none), sending the last
                // event id. The reconnect duration counts from the drop, wait included, as a
                // user waits it.
                dropped_at = Some(Instant::now());
                if let Some(wait) = parser.retry {
                    tokio::time::sleep_until((Instant::now() + wait).min(stop_at).into()).await;
                }
            }
            if !opened_any {
                stats.borrow_mut().never_opened += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let (stats, _, _, _) = &*shared;
    let st = stats.borrow();
    let handshake = encode(&st.handshake)?;
    result.scheduled = n;
    result.dropped = st.never_opened;
    result.sent = n - st.never_opened;
    result.ok = result.sent;
    result.errors = st.errors.clone();
    result.latency_us = handshake.clone();
    result.latency_uncorrected_us = handshake.clone();
    result.scheduler_lag_us = encode(&new_histogram())?;
    result.bytes_received = st.bytes;
    if stop_at < window_end {
        result.stopped_early = Some(format!(
            "deadline: streams closed {} ms before the invocation deadline, before the window ended",
            settings.deadline_margin.as_millis()
        ));
    }
    result.sse = Some(SseResult {
        clients: n,
        handshake_us: handshake,
        reconnect_us: encode(&st.reconnect)?,
        delivery_lag_us: encode(&st.delivery_lag)?,
        streams_opened: st.opened,
        streams_failed: st.failed,
        reconnects: st.reconnects,
        events_received: st.events,
    });
    result.finished_unix_ms = unix_ms_now();
    Ok(RunReport {
        result,
        first_send: None,
        last_send: None,
        achieved_rate: None,
        dropped_at_cap: 0,
        in_flight_cap: n as u32,
        precise_timer: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_clocks() {
        assert_eq!(per_shard_cap(50, 4), 13);
        assert_eq!(per_shard_cap(1, 4), 1);
        assert_eq!(per_shard_cap(100, 1), 100);
        let now = Instant::now();
        assert_eq!(
            instant_of(10_500, now, 10_000),
            now + Duration::from_millis(500)
        );
        assert_eq!(sse_clients_of(2000, 0, 3), 667);
        assert_eq!(sse_clients_of(2000, 2, 3), 666);
        assert_eq!(sse_clients_of(2, 5, 8), 0);
    }

    #[test]
    fn sse_events_are_counted_across_chunks() {
        let mut c = SseParser::default();
        c.feed(b"id: 1\ndata: {\"n\": 1}\n");
        c.feed(b"\n: keep-alive\n\nda");
        c.feed(b"ta: x\r\n\r\n");
        assert_eq!(c.events, 2);
        assert_eq!(c.last_event_id.as_deref(), Some("1"));
    }

    /// What an EventSource counts: no `data:`, no event (a `retry:`-only or `id:`-only block,
    /// an `event:` without data); CR, LF and CRLF line ends, split anywhere; `id:` kept for
    /// `Last-Event-ID` (not one with NUL); `retry:` only when all digits.
    #[test]
    fn the_sse_parser_counts_as_an_event_source_does() {
        let mut p = SseParser::default();
        p.feed(b"retry: 1500\n\n");
        assert_eq!((p.events, p.retry), (0, Some(Duration::from_millis(1500))));
        p.feed(b"event: tick\n\n: comment\n\nid: 7\n\n");
        assert_eq!(p.events, 0, "no data, no event");
        assert_eq!(p.last_event_id.as_deref(), Some("7"));
        p.feed(b"id: 8\revent: tick\rdata: a\r\rdata:b\r");
        p.feed(b"\ndata: c\r\n\r");
        p.feed(b"\n");
        assert_eq!(p.events, 2);
        assert_eq!(p.last_event_id.as_deref(), Some("8"));
        p.feed(b"retry: 2s\nid: bad\0id\ndata: x\n\n");
        assert_eq!(
            p.retry,
            Some(Duration::from_millis(1500)),
            "not digits: ignored"
        );
        assert_eq!(
            p.last_event_id.as_deref(),
            Some("8"),
            "an id with NUL is ignored"
        );
        assert_eq!(p.events, 3);
        // The send time an event's data carries is taken once the event is dispatched.
        let mut t = SseParser::default();
        t.feed(b"data: {\"n\": 1, \"server_unix_us\": 1700000000123456}\n");
        assert!(t.stamps.is_empty(), "not dispatched yet");
        t.feed(b"\ndata: {\"n\": 2}\n\n");
        assert_eq!(t.stamps, [1_700_000_000_123_456]);
        // The target's own events: id, event, data; 20 of them are 20 events.
        let mut q = SseParser::default();
        for n in 0..20 {
            q.feed(format!("id: {n}\nevent: tick\ndata: {{\"n\": {n}}}\n\n").as_bytes());
        }
        assert_eq!((q.events, q.last_event_id.as_deref()), (20, Some("19")));
    }
}
