//! How requests reach the target.
//!
//! - `http://`: raw `hyper::client::conn::http1` keep-alive connections in our own pool (one
//!   thread, no locks): idle connections are reused LIFO; at most `max` are open; a request
//!   that finds none idle and the pool full waits in FIFO order for the next one released.
//! - `https://`: reqwest (rustls, already in the tree): slower, its own pool; documented.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use loadtest_core::Scenario;
use shared::SuiteError;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::body::BodyTemplate;

/// Why a request failed (the result's error classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Connect,
    Other,
}

pub type Conn = SendRequest<Full<Bytes>>;

/// What every request of the scenario shares, parsed once.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub method: Method,
    /// Origin form (`/base/path?q`) for hyper.
    pub path: http::Uri,
    /// Absolute URL for reqwest.
    pub url: String,
    pub headers: HeaderMap,
    pub body: BodyTemplate,
    pub https: bool,
    /// `host:port` to resolve.
    pub authority: String,
}

impl RequestTemplate {
    pub fn from_scenario(s: &Scenario, traceparent: Option<&str>) -> Result<Self, SuiteError> {
        let base = s.target.base_url.trim_end_matches('/');
        let https = base.starts_with("https://");
        let rest = base.split_once("://").map(|x| x.1).unwrap_or(base);
        let (authority, base_path) = match rest.find('/') {
            Some(p) => (&rest[..p], &rest[p..]),
            None => (rest, ""),
        };
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let bad_url = |p: String| {
            SuiteError::invalid(
                "scenario.target.base_url",
                p,
                "use http(s)://host[:port][/base-path]",
            )
        };
        let host_port = if authority.starts_with('[') {
            if authority.contains("]:") {
                authority.to_string()
            } else {
                format!("{authority}:{}", if https { 443 } else { 80 })
            }
        } else if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        let path_str = format!("{base_path}{}", s.request.path);
        let path: http::Uri = path_str.parse().map_err(|e| {
            SuiteError::invalid(
                "scenario.request.path",
                format!("{path_str:?}: {e}"),
                "a path like /api/v1/quotes/generate",
            )
        })?;
        let method =
            Method::from_bytes(s.request.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
                SuiteError::invalid(
                    "scenario.request.method",
                    format!("{:?} is not an HTTP method", s.request.method),
                    "GET, POST, PUT, PATCH or DELETE",
                )
            })?;
        let mut headers = HeaderMap::new();
        headers.insert(
            HOST,
            HeaderValue::from_str(authority).map_err(|e| bad_url(e.to_string()))?,
        );
        for (k, v) in &s.request.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                SuiteError::invalid(
                    format!("scenario.request.headers.{k}"),
                    "is not a valid header name",
                    "use a token like x-api-key",
                )
            })?;
            let value = HeaderValue::from_str(v).map_err(|_| {
                SuiteError::invalid(
                    format!("scenario.request.headers.{k}"),
                    "the value has characters not allowed in a header",
                    "use visible ASCII",
                )
            })?;
            headers.insert(name, value);
        }
        if !headers.contains_key(CONTENT_TYPE) {
            if let Some(ct) = BodyTemplate::default_content_type(s.request.body.as_ref()) {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            }
        }
        if let Some(tp) = traceparent {
            let v = HeaderValue::from_str(tp).map_err(|_| {
                SuiteError::invalid(
                    "traceparent",
                    "not a valid header value",
                    "send a W3C traceparent like 00-<32 hex>-<16 hex>-01",
                )
            })?;
            headers.insert(HeaderName::from_static("traceparent"), v);
        }
        Ok(RequestTemplate {
            method,
            path,
            url: format!("{}{}", base.trim_end_matches('/'), s.request.path),
            headers,
            body: BodyTemplate::from_spec(s.request.body.as_ref())?,
            https,
            authority: host_port,
        })
    }

    pub fn hyper_request(&self, i: u64) -> Request<Full<Bytes>> {
        let mut r = Request::new(Full::new(self.body.render(i)));
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = self.path.clone();
        *r.headers_mut() = self.headers.clone();
        r
    }
}

/// Opens one HTTP/1.1 connection; its driver runs as a local task.
pub async fn connect(addrs: &[SocketAddr]) -> Result<Conn, Failure> {
    if addrs.is_empty() {
        return Err(Failure::Connect);
    }
    let stream = TcpStream::connect(addrs)
        .await
        .map_err(|_| Failure::Connect)?;
    let _ = stream.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Failure::Connect)?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Ok(send)
}

pub enum Lease {
    Conn(Conn),
    /// The right to open a new connection (counted in `open`).
    Slot,
}

pub struct Pool {
    pub addrs: Vec<SocketAddr>,
    idle: RefCell<Vec<Conn>>,
    open: Cell<usize>,
    max: usize,
    waiters: RefCell<VecDeque<oneshot::Sender<Lease>>>,
}

impl Pool {
    pub fn new(addrs: Vec<SocketAddr>, max: usize) -> Rc<Pool> {
        Rc::new(Pool {
            addrs,
            idle: RefCell::new(Vec::with_capacity(max)),
            open: Cell::new(0),
            max: max.max(1),
            waiters: RefCell::new(VecDeque::new()),
        })
    }

    /// Connections open or being opened.
    pub fn open(&self) -> usize {
        self.open.get()
    }

    /// A lease; dropping the guard without [`Guard::release`] gives the slot back as lost.
    pub async fn acquire(self: &Rc<Self>) -> Guard {
        let lease = loop {
            let popped = self.idle.borrow_mut().pop();
            match popped {
                Some(c) if c.is_closed() => self.open.set(self.open.get() - 1),
                Some(c) => break Lease::Conn(c),
                None => {
                    if self.open.get() < self.max {
                        self.open.set(self.open.get() + 1);
                        break Lease::Slot;
                    }
                    let (tx, rx) = oneshot::channel();
                    self.waiters.borrow_mut().push_back(tx);
                    match rx.await {
                        Ok(l) => break l,
                        // The pool never drops waiters while alive; be safe anyway.
                        Err(_) => continue,
                    }
                }
            }
        };
        Guard {
            pool: self.clone(),
            lease: Some(lease),
            holds_slot: true,
        }
    }

    fn give(&self, mut lease: Lease) -> Option<Lease> {
        loop {
            let w = self.waiters.borrow_mut().pop_front();
            match w {
                None => return Some(lease),
                Some(tx) => match tx.send(lease) {
                    Ok(()) => return None,
                    // That waiter gave up (its request timed out): try the next one.
                    Err(back) => lease = back,
                },
            }
        }
    }

    fn put_back(&self, c: Conn) {
        if c.is_closed() {
            self.lost();
            return;
        }
        if let Some(Lease::Conn(c)) = self.give(Lease::Conn(c)) {
            self.idle.borrow_mut().push(c);
        }
    }

    /// A connection (or the right to open one) is gone: free its slot for a waiter.
    fn lost(&self) {
        if self.give(Lease::Slot).is_some() {
            self.open.set(self.open.get().saturating_sub(1));
        }
    }
}

pub struct Guard {
    pool: Rc<Pool>,
    lease: Option<Lease>,
    holds_slot: bool,
}

impl Guard {
    pub fn take(&mut self) -> Option<Lease> {
        self.lease.take()
    }
    /// The connection is healthy and idle again.
    pub fn release(mut self, c: Conn) {
        self.holds_slot = false;
        self.pool.put_back(c);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.holds_slot {
            // Whatever lease is left (or the connection the caller dropped) is lost.
            self.lease = None;
            self.pool.lost();
        }
    }
}

/// One request on the pool. `sent_at` is set when the request gets its connection (or the
/// right to open one): the actual send time.
pub async fn exchange_plain(
    pool: &Rc<Pool>,
    req: Request<Full<Bytes>>,
    sent_at: &Cell<Option<std::time::Instant>>,
) -> Result<(u16, u64), Failure> {
    let mut guard = pool.acquire().await;
    sent_at.set(Some(std::time::Instant::now()));
    let mut conn = match guard.take() {
        Some(Lease::Conn(mut c)) => {
            // Idle connections are ready at once; one the server closed is replaced.
            if c.ready().await.is_err() {
                c = connect(&pool.addrs).await?;
            }
            c
        }
        _ => connect(&pool.addrs).await?,
    };
    let resp = match conn.try_send_request(req).await {
        Ok(r) => r,
        Err(mut e) => match e.take_message() {
            // A kept-alive connection the server closed under us: the request was not
            // written, so one retry on a fresh connection is safe.
            Some(req) => {
                conn = connect(&pool.addrs).await?;
                conn.send_request(req).await.map_err(|_| Failure::Other)?
            }
            None => return Err(Failure::Other),
        },
    };
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    bytes += d.len() as u64;
                }
            }
            Err(_) => return Err(Failure::Other),
        }
    }
    guard.release(conn);
    Ok((status, bytes))
}

/// The https path (reqwest).
pub async fn exchange_tls(
    client: &reqwest::Client,
    t: &RequestTemplate,
    i: u64,
    sent_at: &Cell<Option<std::time::Instant>>,
) -> Result<(u16, u64), Failure> {
    sent_at.set(Some(std::time::Instant::now()));
    let mut headers = t.headers.clone();
    headers.remove(HOST);
    let classify = |e: reqwest::Error| {
        if e.is_timeout() {
            Failure::Timeout
        } else if e.is_connect() {
            Failure::Connect
        } else {
            Failure::Other
        }
    };
    let mut resp = client
        .request(t.method.clone(), &t.url)
        .headers(headers)
        .body(t.body.render(i))
        .send()
        .await
        .map_err(classify)?;
    let status = resp.status().as_u16();
    let mut bytes = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(classify)? {
        bytes += chunk.len() as u64;
    }
    Ok((status, bytes))
}

pub fn tls_client(max_idle: usize) -> Result<reqwest::Client, SuiteError> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(max_idle)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| SuiteError::Internal(format!("https client: {e}")))
}
