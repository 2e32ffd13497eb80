//! fault-proxy: a small toxiproxy-like HTTP/1.1 proxy for fault-injection tests.
//!
//! Put it between a function and a dependency (moto, or any HTTP/1.1 service) and switch faults
//! on and off while the test runs:
//!
//! - added latency on every request;
//! - bursts of S3 errors (`503 SlowDown`, `500 InternalError`, or a mix) for a fraction of the
//!   requests during a time window, answered by the proxy in the upstream's place with the
//!   XML body S3 sends;
//! - connection resets (TCP RST) for a fraction of the requests during a window, either before
//!   the request reaches the upstream or after the upstream has acted on it and before the
//!   client sees the answer (the case that tests "done twice");
//! - the upstream down (every connection reset at once) and back.
//!
//! Why not toxiproxy itself: it is a Go binary (not installable from the registries this project
//! may use), and it works on TCP only, so it cannot answer with an S3 error document. The Rust
//! toxiproxy crates are clients for that server. This proxy parses just enough HTTP/1.1 (heads,
//! Content-Length and chunked bodies) to relay one message at a time over keep-alive
//! connections, and answers in place of the upstream when a fault says so.
//!
//! Requests for `/__fault` on the proxy's own port are its control API (the standalone binary
//! uses it; S3 bucket names cannot start with `_`, so no S3 request is taken for it).

pub mod http;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::http::{request_framing, response_framing, s3_error, Head, Reader};

/// Which error a burst answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// `503 Slow Down`, code `SlowDown` (S3 throttling).
    SlowDown,
    /// `500 Internal Server Error`, code `InternalError`.
    InternalError,
    /// Each injected error is one or the other at random.
    Mixed,
}

impl std::str::FromStr for ErrorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "slowdown" | "slow_down" | "503" => Ok(ErrorKind::SlowDown),
            "internal" | "internal_error" | "500" => Ok(ErrorKind::InternalError),
            "mixed" => Ok(ErrorKind::Mixed),
            _ => Err(format!(
                "unknown error kind {s:?}: use slowdown, internal or mixed"
            )),
        }
    }
}

/// Where a reset hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetPoint {
    /// The request never reaches the upstream.
    BeforeUpstream,
    /// The upstream acted on the request; its answer is lost.
    AfterUpstream,
    /// Either, at random.
    Mixed,
}

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    None,
    SlowDown,
    InternalError,
    ResetBeforeUpstream,
    ResetAfterUpstream,
    /// The upstream was down (switched off, or unreachable).
    Down,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub method: String,
    pub target: String,
    pub fault: Fault,
    /// The upstream's status, when it answered.
    pub status: Option<u16>,
}

/// Counters since start (or the last `reset_stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub requests: u64,
    pub forwarded: u64,
    pub slow_down: u64,
    pub internal_error: u64,
    pub resets: u64,
    pub down: u64,
    pub connections: u64,
}

impl Stats {
    pub fn injected_errors(&self) -> u64 {
        self.slow_down + self.internal_error
    }
}

#[derive(Debug, Clone, Copy)]
struct Burst {
    fraction: f64,
    kind: ErrorKind,
    until: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Resets {
    fraction: f64,
    point: ResetPoint,
    until: Instant,
}

struct Faults {
    latency: Duration,
    burst: Option<Burst>,
    resets: Option<Resets>,
    /// Faults apply only to requests whose `METHOD target` contains this (None = all).
    only: Option<String>,
    rng: rand::rngs::StdRng,
}

struct Inner {
    upstream: String,
    faults: Mutex<Faults>,
    down: AtomicBool,
    /// Bumped on `set_down(true)` so connections opened before it are cut too.
    epoch: AtomicU64,
    stats: Mutex<Stats>,
    records: Mutex<Vec<Record>>,
    next_id: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread must not wedge the proxy for the others.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running proxy. Dropping it stops accepting connections.
pub struct FaultProxy {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (`host:port`).
    pub async fn start(upstream: impl Into<String>) -> std::io::Result<FaultProxy> {
        Self::start_on("127.0.0.1:0".parse().expect("literal address"), upstream).await
    }

    /// Starts a proxy listening on `listen`.
    pub async fn start_on(
        listen: SocketAddr,
        upstream: impl Into<String>,
    ) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            upstream: upstream.into(),
            faults: Mutex::new(Faults {
                latency: Duration::ZERO,
                burst: None,
                resets: None,
                only: None,
                rng: rand::rngs::StdRng::seed_from_u64(0x5EED),
            }),
            down: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            stats: Mutex::new(Stats::default()),
            records: Mutex::new(vec![]),
            next_id: AtomicU64::new(1),
        });
        let shared = inner.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let inner = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(inner, sock).await {
                        tracing::debug!(error = %e, "fault-proxy connection ended");
                    }
                });
            }
        });
        tracing::info!(%addr, "fault-proxy listening");
        Ok(FaultProxy { addr, inner, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn upstream(&self) -> &str {
        &self.inner.upstream
    }

    /// Added latency before every request is handled (zero to stop).
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.inner.faults).latency = latency;
    }

    /// For the next `duration`, answer `fraction` (0..=1) of requests with `kind`.
    pub fn error_burst(&self, fraction: f64, duration: Duration, kind: ErrorKind) {
        lock(&self.inner.faults).burst = Some(Burst {
            fraction: fraction.clamp(0.0, 1.0),
            kind,
            until: Instant::now() + duration,
        });
    }

    /// For the next `duration`, reset the connection on `fraction` of requests at `point`.
    pub fn connection_resets(&self, fraction: f64, duration: Duration, point: ResetPoint) {
        lock(&self.inner.faults).resets = Some(Resets {
            fraction: fraction.clamp(0.0, 1.0),
            point,
            until: Instant::now() + duration,
        });
    }

    /// Restrict faults to requests whose `METHOD target` contains `needle` (None: all).
    pub fn only_matching(&self, needle: Option<&str>) {
        lock(&self.inner.faults).only = needle.map(str::to_string);
    }

    /// Seeds the choice of which requests are hit (for reproducible runs).
    pub fn seed(&self, seed: u64) {
        lock(&self.inner.faults).rng = rand::rngs::StdRng::seed_from_u64(seed);
    }

    /// The upstream down (every connection, open or new, is reset) or back up.
    pub fn set_down(&self, down: bool) {
        if down {
            self.inner.epoch.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// Schedules an outage: the upstream goes down `after` from now and comes back `length`
    /// later (runs on the current Tokio runtime).
    pub fn outage(&self, after: Duration, length: Duration) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            inner.epoch.fetch_add(1, Ordering::SeqCst);
            inner.down.store(true, Ordering::SeqCst);
            tokio::time::sleep(length).await;
            inner.down.store(false, Ordering::SeqCst);
        });
    }

    /// Removes every fault (latency, bursts, resets, down, filter).
    pub fn clear(&self) {
        let mut f = lock(&self.inner.faults);
        f.latency = Duration::ZERO;
        f.burst = None;
        f.resets = None;
        f.only = None;
        drop(f);
        self.set_down(false);
    }

    pub fn stats(&self) -> Stats {
        lock(&self.inner.stats).clone()
    }

    /// Every request seen, in order.
    pub fn records(&self) -> Vec<Record> {
        lock(&self.inner.records).clone()
    }

    pub fn reset_stats(&self) {
        *lock(&self.inner.stats) = Stats::default();
        lock(&self.inner.records).clear();
    }

    /// Applies a control query (`latency_ms=..&error_rate=..&error_kind=..&window_ms=..&
    /// reset_rate=..&reset_point=..&down=..&only=..&seed=..&clear=1`), as the `/__fault` API does.
    pub fn apply_query(&self, query: &str) -> Result<(), String> {
        apply_query(&self.inner, query)
    }
}

fn control_json(inner: &Inner) -> serde_json::Value {
    let f = lock(&inner.faults);
    let now = Instant::now();
    let remaining = |u: Instant| u.saturating_duration_since(now).as_millis() as u64;
    serde_json::json!({
        "upstream": inner.upstream,
        "down": inner.down.load(Ordering::SeqCst),
        "latency_ms": f.latency.as_millis() as u64,
        "burst": f.burst.filter(|b| b.until > now).map(|b| serde_json::json!({
            "fraction": b.fraction, "kind": b.kind, "remaining_ms": remaining(b.until)})),
        "resets": f.resets.filter(|r| r.until > now).map(|r| serde_json::json!({
            "fraction": r.fraction, "point": r.point, "remaining_ms": remaining(r.until)})),
        "only": f.only,
        "stats": lock(&inner.stats).clone(),
    })
}

fn apply_query(inner: &Inner, query: &str) -> Result<(), String> {
    let mut window = Duration::from_secs(10);
    let mut pairs: Vec<(String, String)> = vec![];
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k == "window_ms" {
            window = Duration::from_millis(v.parse().map_err(|_| format!("window_ms: {v:?}"))?);
        } else {
            pairs.push((k.into_owned(), v.into_owned()));
        }
    }
    let num = |k: &str, v: &str| -> Result<f64, String> {
        v.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| format!("{k}: expected a non-negative number, got {v:?}"))
    };
    let mut error_kind = ErrorKind::SlowDown;
    let mut reset_point = ResetPoint::BeforeUpstream;
    for (k, v) in &pairs {
        match k.as_str() {
            "error_kind" => error_kind = v.parse()?,
            "reset_point" => {
                reset_point = match v.as_str() {
                    "before" => ResetPoint::BeforeUpstream,
                    "after" => ResetPoint::AfterUpstream,
                    "mixed" => ResetPoint::Mixed,
                    _ => {
                        return Err(format!(
                            "reset_point: use before, after or mixed, got {v:?}"
                        ))
                    }
                }
            }
            _ => {}
        }
    }
    let mut f = lock(&inner.faults);
    for (k, v) in &pairs {
        match k.as_str() {
            "latency_ms" => f.latency = Duration::from_millis(num(k, v)? as u64),
            "error_rate" => {
                f.burst = Some(Burst {
                    fraction: num(k, v)?.min(1.0),
                    kind: error_kind,
                    until: Instant::now() + window,
                })
            }
            "reset_rate" => {
                f.resets = Some(Resets {
                    fraction: num(k, v)?.min(1.0),
                    point: reset_point,
                    until: Instant::now() + window,
                })
            }
            "down" => {
                let down = matches!(v.as_str(), "1" | "true" | "yes");
                if down {
                    inner.epoch.fetch_add(1, Ordering::SeqCst);
                }
                inner.down.store(down, Ordering::SeqCst);
            }
            "only" => f.only = Some(v.clone()).filter(|s| !s.is_empty()),
            "seed" => {
                f.rng = rand::rngs::StdRng::seed_from_u64(
                    v.parse().map_err(|_| format!("seed: {v:?}"))?,
                )
            }
            "clear" => {
                f.latency = Duration::ZERO;
                f.burst = None;
                f.resets = None;
                f.only = None;
                inner.down.store(false, Ordering::SeqCst);
            }
            "error_kind" | "reset_point" => {}
            other => return Err(format!("unknown control parameter {other:?}")),
        }
    }
    Ok(())
}

/// Decides the fault for one request (and the latency to add first).
fn decide(inner: &Inner, method: &str, target: &str) -> (Duration, Fault) {
    let mut f = lock(&inner.faults);
    let latency = f.latency;
    if inner.down.load(Ordering::SeqCst) {
        return (latency, Fault::Down);
    }
    if let Some(only) = &f.only {
        if !format!("{method} {target}").contains(only.as_str()) {
            return (latency, Fault::None);
        }
    }
    let now = Instant::now();
    if let Some(r) = f.resets.filter(|r| r.until > now) {
        if f.rng.random_bool(r.fraction) {
            let after = match r.point {
                ResetPoint::BeforeUpstream => false,
                ResetPoint::AfterUpstream => true,
                ResetPoint::Mixed => f.rng.random_bool(0.5),
            };
            return (
                latency,
                if after {
                    Fault::ResetAfterUpstream
                } else {
                    Fault::ResetBeforeUpstream
                },
            );
        }
    }
    if let Some(b) = f.burst.filter(|b| b.until > now) {
        if f.rng.random_bool(b.fraction) {
            let slow = match b.kind {
                ErrorKind::SlowDown => true,
                ErrorKind::InternalError => false,
                ErrorKind::Mixed => f.rng.random_bool(0.5),
            };
            return (
                latency,
                if slow {
                    Fault::SlowDown
                } else {
                    Fault::InternalError
                },
            );
        }
    }
    (latency, Fault::None)
}

/// Cuts the connection with a TCP RST (what a crashed peer or a middlebox looks like).
fn reset(sock: TcpStream) {
    let _ = sock.set_zero_linger();
    drop(sock);
}

fn record(inner: &Inner, method: &str, target: &str, fault: Fault, status: Option<u16>) {
    {
        let mut s = lock(&inner.stats);
        s.requests += 1;
        match fault {
            Fault::None => s.forwarded += 1,
            Fault::SlowDown => s.slow_down += 1,
            Fault::InternalError => s.internal_error += 1,
            Fault::ResetBeforeUpstream => s.resets += 1,
            Fault::ResetAfterUpstream => {
                s.resets += 1;
                s.forwarded += 1;
            }
            Fault::Down => s.down += 1,
        }
    }
    lock(&inner.records).push(Record {
        method: method.to_string(),
        target: target.to_string(),
        fault,
        status,
    });
}

/// One client connection: request after request (keep-alive), each relayed to an upstream
/// connection that is reused while the upstream keeps it open.
async fn serve(inner: Arc<Inner>, sock: TcpStream) -> std::io::Result<()> {
    lock(&inner.stats).connections += 1;
    let epoch = inner.epoch.load(Ordering::SeqCst);
    if inner.down.load(Ordering::SeqCst) {
        // Refused before a request is read: counted as down, not as a request.
        lock(&inner.stats).down += 1;
        reset(sock);
        return Ok(());
    }
    let _ = sock.set_nodelay(true);
    let mut client = Reader::new(sock);
    let mut upstream: Option<Reader<TcpStream>> = None;
    loop {
        let Some(raw) = client.read_head().await? else {
            return Ok(());
        };
        let head = Head::parse(&raw)?;
        let (method, target) = {
            let (m, t) = head.request_line();
            (m.to_string(), t.to_string())
        };
        if head
            .get("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            client
                .inner
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        let body = client.read_body(request_framing(&head)?).await?;
        let client_close = head.wants_close(true);

        if target.starts_with("/__fault") {
            let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
            let (status, doc) = if method == "GET" && query.is_empty() {
                (200, control_json(&inner))
            } else {
                match apply_query(&inner, query) {
                    Ok(()) => (200, control_json(&inner)),
                    Err(e) => (400, serde_json::json!({ "error": e })),
                }
            };
            let body = doc.to_string();
            let resp = format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                if status == 200 { "OK" } else { "Bad Request" },
                body.len()
            );
            client.inner.write_all(resp.as_bytes()).await?;
            if client_close {
                return Ok(());
            }
            continue;
        }

        let (latency, mut fault) = decide(&inner, &method, &target);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if inner.epoch.load(Ordering::SeqCst) != epoch {
            // The upstream went down (and maybe up) since this connection opened: a real
            // outage would have killed it.
            fault = Fault::Down;
        }
        let id = inner.next_id.fetch_add(1, Ordering::SeqCst);
        let request_id = format!("FAULTPROXY{id:010}");
        match fault {
            Fault::Down | Fault::ResetBeforeUpstream => {
                record(&inner, &method, &target, fault, None);
                tracing::debug!(%method, %target, ?fault, "reset");
                reset(client.inner);
                return Ok(());
            }
            Fault::SlowDown | Fault::InternalError => {
                let resp = if fault == Fault::SlowDown {
                    s3_error(
                        503,
                        "Slow Down",
                        "SlowDown",
                        "Please reduce your request rate.",
                        &request_id,
                        method == "HEAD",
                    )
                } else {
                    s3_error(
                        500,
                        "Internal Server Error",
                        "InternalError",
                        "We encountered an internal error. Please try again.",
                        &request_id,
                        method == "HEAD",
                    )
                };
                record(&inner, &method, &target, fault, None);
                client.inner.write_all(&resp).await?;
                if client_close {
                    return Ok(());
                }
                continue;
            }
            Fault::None | Fault::ResetAfterUpstream => {}
        }

        // Relay. A reused upstream connection may have been closed while idle: if it yields
        // nothing at all, open a fresh one and send again (nothing reached the upstream).
        let req_bytes = {
            let mut b = head.to_bytes(&[]);
            b.extend_from_slice(&body);
            b
        };
        let mut attempt = 0;
        let (resp_head, resp_body, _upstream_close) = loop {
            attempt += 1;
            let reused = upstream.is_some();
            let conn = match upstream.take() {
                Some(c) => c,
                None => match TcpStream::connect(&inner.upstream).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        Reader::new(s)
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, upstream = %inner.upstream, "upstream unreachable");
                        record(&inner, &method, &target, Fault::Down, None);
                        reset(client.inner);
                        return Ok(());
                    }
                },
            };
            let mut conn = conn;
            match relay_once(&mut conn, &req_bytes, &method).await {
                Ok(Some(r)) => {
                    if !r.2 {
                        upstream = Some(conn);
                    }
                    break r;
                }
                Ok(None) | Err(_) if reused && attempt == 1 => continue,
                Ok(None) => {
                    record(&inner, &method, &target, Fault::Down, None);
                    reset(client.inner);
                    return Ok(());
                }
                Err(e) => {
                    record(&inner, &method, &target, Fault::Down, None);
                    reset(client.inner);
                    return Err(e);
                }
            }
        };
        record(&inner, &method, &target, fault, Some(resp_head.status()));
        if fault == Fault::ResetAfterUpstream {
            tracing::debug!(%method, %target, "reset after the upstream answered");
            reset(client.inner);
            return Ok(());
        }
        // A close-delimited body can only be relayed the same way.
        let until_close = response_framing(&resp_head, &method)? == http::Framing::UntilClose;
        let close = client_close || until_close;
        let extra: &[(&str, &str)] = if close {
            &[("Connection", "close")]
        } else {
            &[]
        };
        let mut out = resp_head.to_bytes(extra);
        out.extend_from_slice(&resp_body);
        client.inner.write_all(&out).await?;
        if close {
            client.inner.shutdown().await.ok();
            return Ok(());
        }
    }
}

/// Sends one request and reads its response (skipping `1xx` interim answers). `Ok(None)`: the
/// upstream closed without a byte of answer.
async fn relay_once(
    conn: &mut Reader<TcpStream>,
    req: &[u8],
    method: &str,
) -> std::io::Result<Option<(Head, Vec<u8>, bool)>> {
    conn.inner.write_all(req).await?;
    loop {
        let Some(raw) = conn.read_head().await? else {
            return Ok(None);
        };
        let head = Head::parse(&raw)?;
        if (100..200).contains(&head.status()) {
            continue;
        }
        let framing = response_framing(&head, method)?;
        let body = conn.read_body(framing).await?;
        let close = head.wants_close(false) || framing == http::Framing::UntilClose;
        return Ok(Some((head, body, close)));
    }
}
