//! The load-test target: a small hyper 1 server with the three endpoints the scenarios hit,
//! whose latency, errors, dropped connections and stalls are configured, so tests can inject a
//! KNOWN latency distribution and check what a shard measures against it.
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `POST /api/v1/import/bulk` | `202 {"accepted": <CSV records>}` |
//! | `POST /api/v1/quotes/generate` | `200 {"quote_id": "q-<n>", "items": <items>, "total": …}` |
//! | `GET /api/v1/events/stream` | Server-Sent Events, one `data:` event every `sse_interval`, the stream ends after `sse_drop_after` events |
//! | `POST /api/v1/timeline/events` | `201 {"event_id": "e-<n>"}` (the timeline updates the realtime scenario sends) |
//! | `POST /api/v1/auth/token` | `200 {"access_token", "token_type": "Bearer", "expires_in"}`, immediately (a k6 script's `setup()`) |
//! | `GET /` | `200 ok`, immediately: no latency, errors or stalls (benchmarks) |
//!
//! A request to the API endpoints that carries `Authorization: Bearer <token>` must name a
//! token this target issued (else `401`); one without the header is served as before. Bulk
//! imports' first CSV column is an id: a repeated id is counted (`duplicate_ids`).
//!
//! Latency, error rate, connection drops and stalls apply to the three API endpoints.
//! Sampling is stratified by default: request `k` gets the latency at quantile
//! `frac(0.5 + k·φ⁻¹)` (a golden-ratio sequence), so the first `n` requests' latencies follow the
//! configured distribution to within O(log n / n), not within random sampling noise; errors and
//! drops hit exactly `⌊k·rate⌋` of the first `k` requests.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;

/// A latency distribution, sampled through its inverse CDF.
#[derive(Debug, Clone, PartialEq)]
pub enum Latency {
    Fixed(Duration),
    Uniform(Duration, Duration),
    /// Log-normal with this median and σ of the underlying normal.
    LogNormal {
        median: Duration,
        sigma: f64,
    },
    /// Piecewise-linear inverse CDF through `(quantile, value)` points (sorted by quantile;
    /// below the first point the first value holds). E.g. `[(0, 10ms), (0.9, 40ms), (1, 60ms)]`
    /// has p95 = 50 ms exactly.
    Quantiles(Vec<(f64, Duration)>),
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Fixed(Duration::ZERO)
    }
}

impl Latency {
    /// The value at quantile `u` in [0, 1].
    pub fn at(&self, u: f64) -> Duration {
        let u = u.clamp(0.0, 1.0);
        match self {
            Latency::Fixed(d) => *d,
            Latency::Uniform(a, b) => a.mul_f64(1.0 - u) + b.mul_f64(u),
            Latency::LogNormal { median, sigma } => {
                let z = normal_quantile(u.clamp(1e-9, 1.0 - 1e-9));
                Duration::from_secs_f64(median.as_secs_f64() * (sigma * z).exp())
            }
            Latency::Quantiles(points) => {
                let Some(first) = points.first() else {
                    return Duration::ZERO;
                };
                if u <= first.0 {
                    return first.1;
                }
                for w in points.windows(2) {
                    let ((q0, v0), (q1, v1)) = (w[0], w[1]);
                    if u <= q1 {
                        let f = if q1 > q0 { (u - q0) / (q1 - q0) } else { 1.0 };
                        let s = v0.as_secs_f64() + f * (v1.as_secs_f64() - v0.as_secs_f64());
                        return Duration::from_secs_f64(s.max(0.0));
                    }
                }
                points.last().map(|p| p.1).unwrap_or_default()
            }
        }
    }
}

/// Acklam's rational approximation of the standard normal quantile (relative error < 1.2e-9).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// `fixed:20ms`, `uniform:10ms..50ms`, `lognormal:100ms,0.5` (median, σ),
/// `quantiles:0=10ms,0.9=40ms,1=60ms`.
impl FromStr for Latency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        let dur = |x: &str| parse_duration(x.trim());
        match kind.trim() {
            "fixed" => Ok(Latency::Fixed(dur(rest)?)),
            "uniform" => {
                let (a, b) = rest
                    .split_once("..")
                    .ok_or("uniform latency is `uniform:MIN..MAX`, e.g. uniform:10ms..50ms")?;
                Ok(Latency::Uniform(dur(a)?, dur(b)?))
            }
            "lognormal" => {
                let (m, s) = rest.split_once(',').ok_or(
                    "lognormal latency is `lognormal:MEDIAN,SIGMA`, e.g. lognormal:100ms,0.5",
                )?;
                let sigma: f64 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("lognormal sigma {s:?} is not a number"))?;
                Ok(Latency::LogNormal {
                    median: dur(m)?,
                    sigma,
                })
            }
            "quantiles" => {
                let mut points = vec![];
                for p in rest.split(',').filter(|p| !p.trim().is_empty()) {
                    let (q, v) = p
                        .split_once('=')
                        .ok_or("quantiles latency is `quantiles:Q=VALUE,…`, e.g. quantiles:0=10ms,0.9=40ms,1=60ms")?;
                    let q: f64 = q
                        .trim()
                        .parse()
                        .map_err(|_| format!("quantile {q:?} is not a number"))?;
                    if !(0.0..=1.0).contains(&q) {
                        return Err(format!("quantile {q} is outside [0, 1]"));
                    }
                    points.push((q, dur(v)?));
                }
                if points.is_empty() || points.windows(2).any(|w| w[1].0 < w[0].0) {
                    return Err("quantiles must be non-empty and in increasing order".into());
                }
                Ok(Latency::Quantiles(points))
            }
            other => Err(format!(
                "unknown latency kind {other:?}; use fixed:, uniform:, lognormal: or quantiles:"
            )),
        }
    }
}

/// `250ms`, `2s`, `1.5s`, `500us`, or a bare number of milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1e-3)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {s:?}; write e.g. 250ms or 2s"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Golden-ratio sequence over quantiles; exact fractions for errors and drops.
    Stratified,
    /// Independent random draws from this seed.
    Random(u64),
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub latency: Latency,
    /// Fraction of API requests answered with `error_status`.
    pub error_rate: f64,
    pub error_status: u16,
    /// Fraction of API requests whose connection is closed without a response.
    pub drop_rate: f64,
    /// One SSE event every this often.
    pub sse_interval: Duration,
    /// End each SSE stream after this many events (a server-side drop); `None` never.
    pub sse_drop_after: Option<u64>,
    /// Start each SSE stream with `retry: <ms>` (the client's reconnection time).
    pub sse_retry: Option<Duration>,
    /// `(after, length)`: from `after` past start, API requests wait until `after + length`
    /// (a GC pause, a stuck database). More stalls: [`TargetHandle::stall_for`].
    pub stall: Option<(Duration, Duration)>,
    pub sampling: Sampling,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            latency: Latency::default(),
            error_rate: 0.0,
            error_status: 503,
            drop_rate: 0.0,
            sse_interval: Duration::from_millis(1000),
            sse_drop_after: None,
            sse_retry: None,
            stall: None,
            sampling: Sampling::Stratified,
        }
    }
}

struct State {
    config: TargetConfig,
    started: Instant,
    counter: AtomicU64,
    served: AtomicU64,
    sse_open: AtomicU64,
    sse_events: AtomicU64,
    stall_until: Mutex<Option<Instant>>,
    records: AtomicU64,
    traceparent: Mutex<Option<String>>,
    rng: Mutex<rand::rngs::SmallRng>,
    tokens: Mutex<std::collections::HashSet<String>>,
    authorized: AtomicU64,
    bulk_ids: Mutex<std::collections::HashSet<Vec<u8>>>,
    duplicate_ids: AtomicU64,
    timeline_events: AtomicU64,
    resumed: AtomicU64,
}

/// Controls a running target. Dropping it leaves the server running (tests often hold only
/// the address); call [`TargetHandle::shutdown`] to stop accepting.
#[derive(Clone)]
pub struct TargetHandle {
    state: Arc<State>,
    accept: Arc<Mutex<Option<tokio::task::AbortHandle>>>,
}

impl TargetHandle {
    /// API requests arriving or in progress now wait until `now + d`.
    pub fn stall_for(&self, d: Duration) {
        if let Ok(mut s) = self.state.stall_until.lock() {
            *s = Some(Instant::now() + d);
        }
    }
    /// API requests counted so far (all endpoints but `GET /`).
    pub fn api_requests(&self) -> u64 {
        self.state.counter.load(Ordering::Relaxed)
    }
    /// Responses written (any endpoint).
    pub fn served(&self) -> u64 {
        self.state.served.load(Ordering::Relaxed)
    }
    /// SSE streams open now.
    pub fn sse_open(&self) -> u64 {
        self.state.sse_open.load(Ordering::Relaxed)
    }
    /// SSE events sent so far.
    pub fn sse_events(&self) -> u64 {
        self.state.sse_events.load(Ordering::Relaxed)
    }
    /// CSV records accepted by `POST /api/v1/import/bulk` so far.
    pub fn records_accepted(&self) -> u64 {
        self.state.records.load(Ordering::Relaxed)
    }
    /// The `traceparent` header of the latest API request that had one.
    /// API requests that carried a token this target issued.
    pub fn authorized(&self) -> u64 {
        self.state.authorized.load(Ordering::Relaxed)
    }

    /// Bulk-import records whose id (first CSV column) had been seen before.
    pub fn duplicate_ids(&self) -> u64 {
        self.state.duplicate_ids.load(Ordering::Relaxed)
    }

    /// SSE streams opened with `Last-Event-ID` (a client resuming after a drop).
    pub fn sse_resumed(&self) -> u64 {
        self.state.resumed.load(Ordering::Relaxed)
    }

    pub fn timeline_events(&self) -> u64 {
        self.state.timeline_events.load(Ordering::Relaxed)
    }

    pub fn last_traceparent(&self) -> Option<String> {
        self.state.traceparent.lock().ok().and_then(|t| t.clone())
    }
    /// Stops accepting connections (open ones finish their current exchange).
    pub fn shutdown(&self) {
        if let Ok(mut a) = self.accept.lock() {
            if let Some(h) = a.take() {
                h.abort();
            }
        }
    }
}

/// Binds `addr` (use `127.0.0.1:0` for a free port) and serves on the current tokio runtime.
pub async fn start_on(
    addr: SocketAddr,
    config: TargetConfig,
) -> std::io::Result<(SocketAddr, TargetHandle)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let seed = match config.sampling {
        Sampling::Random(s) => s,
        Sampling::Stratified => 0,
    };
    let now = Instant::now();
    let stall_until = config
        .stall
        .map(|(after, len)| (now + after, now + after + len));
    let state = Arc::new(State {
        config,
        started: now,
        counter: AtomicU64::new(0),
        served: AtomicU64::new(0),
        sse_open: AtomicU64::new(0),
        sse_events: AtomicU64::new(0),
        stall_until: Mutex::new(None),
        records: AtomicU64::new(0),
        traceparent: Mutex::new(None),
        rng: Mutex::new(rand::rngs::SmallRng::seed_from_u64(seed)),
        tokens: Mutex::new(Default::default()),
        authorized: AtomicU64::new(0),
        bulk_ids: Mutex::new(Default::default()),
        duplicate_ids: AtomicU64::new(0),
        timeline_events: AtomicU64::new(0),
        resumed: AtomicU64::new(0),
    });
    if let Some((from, until)) = stall_until {
        // The configured stall is armed when it begins (requests before `from` are unaffected).
        let st = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(from.into()).await;
            if let Ok(mut s) = st.stall_until.lock() {
                *s = Some(until);
            }
        });
    }
    let st = state.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // EMFILE and friends: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let st = st.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((
        local,
        TargetHandle {
            state,
            accept: Arc::new(Mutex::new(Some(task.abort_handle()))),
        },
    ))
}

/// [`start_on`] 127.0.0.1 on a free port.
pub async fn start(config: TargetConfig) -> std::io::Result<(SocketAddr, TargetHandle)> {
    start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
}

type Body = Either<Full<Bytes>, SseBody>;

#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}
impl std::error::Error for Dropped {}

fn full(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Either::Left(Full::new(body.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    r
}

const GOLDEN: f64 = 0.618_033_988_749_894_9;

fn frac(x: f64) -> f64 {
    x - x.floor()
}

/// The quantile the `k`-th API request's latency is drawn at under stratified sampling, so a
/// test can compute the exact latencies the target served.
pub fn stratified_quantile(k: u64) -> f64 {
    frac(0.5 + k as f64 * GOLDEN)
}

/// Whether the `k`-th request (0-based) falls in the `rate` fraction: exactly ⌊(k+1)·rate⌋
/// of the first k+1 do.
fn hits(k: u64, rate: f64) -> bool {
    // The epsilon keeps 5 × 0.2 at 1, not 0.999….
    rate > 0.0 && ((k + 1) as f64 * rate + 1e-9).floor() > (k as f64 * rate + 1e-9).floor()
}

async fn wait_stall(st: &State) {
    loop {
        let until = st.stall_until.lock().ok().and_then(|s| *s);
        match until {
            Some(u) if u > Instant::now() => tokio::time::sleep_until(u.into()).await,
            _ => return,
        }
    }
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Dropped> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if method == Method::GET && path == "/" {
        st.served.fetch_add(1, Ordering::Relaxed);
        return Ok(full(
            StatusCode::OK,
            "text/plain",
            Bytes::from_static(b"ok"),
        ));
    }
    if method == Method::POST && path == "/api/v1/auth/token" {
        let n = st.counter.fetch_add(1, Ordering::Relaxed);
        let token = format!("tok-{n}-{:016x}", rand::random::<u64>());
        if let Ok(mut t) = st.tokens.lock() {
            t.insert(token.clone());
        }
        return Ok(full(
            StatusCode::OK,
            "application/json",
            format!("{{\"access_token\": \"{token}\", \"token_type\": \"Bearer\", \"expires_in\": 3600}}"),
        ));
    }
    let known = matches!(
        (&method, path.as_str()),
        (&Method::POST, "/api/v1/import/bulk")
            | (&Method::POST, "/api/v1/quotes/generate")
            | (&Method::POST, "/api/v1/timeline/events")
            | (&Method::GET, "/api/v1/events/stream")
    );
    if !known {
        return Ok(full(
            StatusCode::NOT_FOUND,
            "application/json",
            format!("{{\"error\": \"no route {method} {path}\"}}"),
        ));
    }
    if let Some(auth) = req.headers().get(hyper::header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or("");
        let issued = st.tokens.lock().map(|t| t.contains(token)).unwrap_or(false);
        if !issued {
            return Ok(full(
                StatusCode::UNAUTHORIZED,
                "application/json",
                "{\"error\": \"invalid token\"}",
            ));
        }
        st.authorized.fetch_add(1, Ordering::Relaxed);
    }
    let k = st.counter.fetch_add(1, Ordering::Relaxed);
    // A resuming EventSource: the stream continues after the id it names.
    let resume_after = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(tp) = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        if let Ok(mut t) = st.traceparent.lock() {
            *t = Some(tp.to_string());
        }
    }
    let cfg = &st.config;
    let (u, is_error, is_drop) = match cfg.sampling {
        Sampling::Stratified => (
            stratified_quantile(k),
            hits(k, cfg.error_rate),
            hits(k, cfg.drop_rate),
        ),
        Sampling::Random(_) => match st.rng.lock() {
            Ok(mut r) => (
                r.random::<f64>(),
                r.random::<f64>() < cfg.error_rate,
                r.random::<f64>() < cfg.drop_rate,
            ),
            Err(_) => (0.5, false, false),
        },
    };
    wait_stall(&st).await;
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Dropped),
    };
    let delay = cfg.latency.at(u);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    // A stall that began while this request was "working" holds it too.
    wait_stall(&st).await;
    if is_drop {
        return Err(Dropped);
    }
    st.served.fetch_add(1, Ordering::Relaxed);
    if is_error {
        let status =
            StatusCode::from_u16(cfg.error_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Ok(full(
            status,
            "application/json",
            "{\"error\": \"injected failure\"}",
        ));
    }
    Ok(match path.as_str() {
        "/api/v1/import/bulk" => {
            // Records = non-empty lines after the header; the first column is the record's id.
            let lines: Vec<&[u8]> = body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty() && *l != b"\r")
                .collect();
            let records = lines.len().saturating_sub(1);
            st.records.fetch_add(records as u64, Ordering::Relaxed);
            if let Ok(mut seen) = st.bulk_ids.lock() {
                for l in lines.iter().skip(1) {
                    let id = l.split(|b| *b == b',').next().unwrap_or_default().to_vec();
                    if !seen.insert(id) {
                        st.duplicate_ids.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            full(
                StatusCode::ACCEPTED,
                "application/json",
                format!("{{\"accepted\": {records}, \"bytes\": {}}}", body.len()),
            )
        }
        "/api/v1/timeline/events" => {
            st.timeline_events.fetch_add(1, Ordering::Relaxed);
            full(
                StatusCode::CREATED,
                "application/json",
                format!("{{\"event_id\": \"e-{k}\"}}"),
            )
        }
        "/api/v1/quotes/generate" => {
            let items = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("items").and_then(|i| i.as_array().map(|a| a.len())))
                .unwrap_or(0);
            full(
                StatusCode::OK,
                "application/json",
                format!(
                    "{{\"quote_id\": \"q-{k}\", \"items\": {items}, \"total\": {}.{:02}, \"currency\": \"EUR\"}}",
                    100 + k % 900,
                    k % 100
                ),
            )
        }
        _ => {
            st.sse_open.fetch_add(1, Ordering::Relaxed);
            let mut r = Response::new(Either::Right(SseBody {
                st: st.clone(),
                sent: 0,
                first_id: match resume_after {
                    Some(id) => {
                        st.resumed.fetch_add(1, Ordering::Relaxed);
                        id + 1
                    }
                    None => 0,
                },
                retry_sent: st.config.sse_retry.is_none(),
                // The first event goes out at once so a client sees data promptly.
                sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
                done: false,
            }));
            let h = r.headers_mut();
            h.insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/event-stream"),
            );
            h.insert(
                hyper::header::CACHE_CONTROL,
                hyper::header::HeaderValue::from_static("no-cache"),
            );
            r
        }
    })
}

/// The SSE stream: an event every `sse_interval`; ends after `sse_drop_after` events.
pub struct SseBody {
    st: Arc<State>,
    sent: u64,
    /// The id of this stream's first event (after a resume: the one after `Last-Event-ID`).
    first_id: u64,
    /// `retry:` went out (or none is configured).
    retry_sent: bool,
    sleep: Pin<Box<tokio::time::Sleep>>,
    done: bool,
}

impl Drop for SseBody {
    fn drop(&mut self) {
        self.st.sse_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl hyper::body::Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.retry_sent {
            self.retry_sent = true;
            let ms = self.st.config.sse_retry.unwrap_or_default().as_millis();
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(format!(
                "retry: {ms}\n\n"
            ))))));
        }
        if let Some(n) = self.st.config.sse_drop_after {
            if self.sent >= n {
                self.done = true;
                return Poll::Ready(None);
            }
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                let interval = self.st.config.sse_interval;
                let next = self.sleep.deadline() + interval;
                self.sleep.as_mut().reset(next);
                let n = self.first_id + self.sent;
                self.sent += 1;
                self.st.sse_events.fetch_add(1, Ordering::Relaxed);
                let ms = self.st.started.elapsed().as_millis();
                // Wall-clock µs when the event left: the client's delivery lag.
                let unix_us = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros())
                    .unwrap_or(0);
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(format!(
                    "id: {n}\nevent: tick\ndata: {{\"n\": {n}, \"server_ms\": {ms}, \"server_unix_us\": {unix_us}}}\n\n"
                ))))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn quantile_latency_is_piecewise_linear() {
        let l: Latency = "quantiles:0=10ms,0.9=40ms,1=60ms".parse().unwrap();
        assert_eq!(l.at(0.0), ms(10));
        assert_eq!(l.at(0.9), ms(40));
        let p95 = l.at(0.95).as_secs_f64();
        assert!((p95 - 0.050).abs() < 1e-9, "{p95}");
        assert_eq!(l.at(1.0), ms(60));
    }

    #[test]
    fn other_distributions() {
        assert_eq!("fixed:20ms".parse::<Latency>().unwrap().at(0.3), ms(20));
        let u: Latency = "uniform:10ms..30ms".parse().unwrap();
        assert_eq!(u.at(0.5), ms(20));
        let l: Latency = "lognormal:100ms,0.5".parse().unwrap();
        let med = l.at(0.5).as_secs_f64();
        assert!((med - 0.1).abs() < 1e-6, "{med}");
        // p84.13 of a lognormal is median·e^σ.
        let p84 = l.at(0.841_344_746).as_secs_f64();
        assert!((p84 - 0.1 * 0.5f64.exp()).abs() < 1e-4, "{p84}");
        assert!("gaussian:1ms".parse::<Latency>().is_err());
        assert!("quantiles:0.9=1ms,0.5=2ms".parse::<Latency>().is_err());
    }

    #[test]
    fn stratified_fractions_are_exact() {
        let n = (0..1000).filter(|k| hits(*k, 0.005)).count();
        assert_eq!(n, 5);
        let n = (0..1000).filter(|k| hits(*k, 0.0)).count();
        assert_eq!(n, 0);
        // The golden-ratio sequence fills [0,1) evenly: 10 % of 1000 draws below 0.1.
        let below = (0..1000)
            .filter(|k| frac(0.5 + *k as f64 * GOLDEN) < 0.1)
            .count();
        assert!((98..=102).contains(&below), "{below}");
    }
}
