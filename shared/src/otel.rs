//! OpenTelemetry traces: one span per invocation, one per AWS call (the SDK's own
//! `S3.GetObject`-style spans, which carry `rpc.system = "aws-api"`), and the functions' own
//! spans; W3C trace context taken from the incoming event (`traceparent`) or from the X-Ray
//! header, and handed on ([`current_traceparent`]) to shard invocations and to the load-test
//! target. Log lines carry the same `trace_id` and `span_id` (the JSON layer reads the ids
//! this layer stores on each span).
//!
//! Export: OTLP/HTTP with the JSON encoding to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces` (the ADOT Lambda layer's collector listens
//! on `http://localhost:4318`). When neither is set nothing is buffered or sent.
//!
//! Hand-written rather than `opentelemetry-otlp` + `tracing-opentelemetry` because in Lambda
//! the spans must leave before the response is returned (the sandbox freezes right after),
//! which a batch processor on a background thread does not guarantee without a flush call in
//! every handler, and because those crates add a second HTTP stack and their own runtime
//! hooks to every cold start. Here the root span's close sends the finished trace
//! synchronously to the local collector (about a millisecond on loopback, bounded by a
//! 1-second timeout), so no handler has to remember to flush. The OTLP JSON encoding is a
//! stable part of the OTLP 1.x specification (hex ids, nanosecond times as strings).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Spans kept per trace before the oldest are dropped (and counted): bounds memory when a
/// long run makes many AWS calls.
const MAX_BUFFERED: usize = 20_000;

/// The W3C ids of a span, stored in its extensions for the log layer and for propagation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtelIds {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
}

impl OtelIds {
    pub fn trace_hex(&self) -> String {
        hex::encode(self.trace_id)
    }
    pub fn span_hex(&self) -> String {
        hex::encode(self.span_id)
    }
    /// `00-<trace>-<span>-01`.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_hex(), self.span_hex())
    }
}

/// Parses a W3C `traceparent` header: `00-<32 hex>-<16 hex>-<2 hex>`; all-zero ids are
/// invalid per the specification.
pub fn parse_traceparent(s: &str) -> Option<([u8; 16], [u8; 8])> {
    let mut parts = s.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2
        || version == "ff"
        || flags.len() != 2
        || trace.len() != 32
        || span.len() != 16
    {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let mut t = [0u8; 16];
    let mut p = [0u8; 8];
    hex::decode_to_slice(trace, &mut t).ok()?;
    hex::decode_to_slice(span, &mut p).ok()?;
    hex::decode_to_slice(flags, &mut [0u8; 1]).ok()?;
    if t == [0; 16] || p == [0; 8] {
        return None;
    }
    Some((t, p))
}

/// The current span's `traceparent`, to hand on to a shard invocation or an HTTP request.
pub fn current_traceparent() -> Option<String> {
    let span = tracing::Span::current();
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let data = registry.span(id)?;
        let ext = data.extensions();
        ext.get::<OtelIds>().map(|ids| ids.traceparent())
    })
    .flatten()
}

/// Where finished spans go.
#[derive(Debug)]
pub struct Exporter {
    host: String,
    port: u16,
    path: String,
    resource: Vec<(String, String)>,
    buffer: Mutex<Vec<Value>>,
    dropped: Mutex<u64>,
}

impl Exporter {
    /// From `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`; `None` when
    /// neither is set. Only `http://` endpoints: the collector runs beside the function.
    pub fn from_env(
        vars: &crate::config::Vars,
        resource: Vec<(String, String)>,
    ) -> Result<Option<Exporter>, crate::SuiteError> {
        let url = match (
            vars.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            vars.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(u), _) if !u.is_empty() => u.to_string(),
            (_, Some(u)) if !u.is_empty() => format!("{}/v1/traces", u.trim_end_matches('/')),
            _ => return Ok(None),
        };
        let bad = |why: &str| {
            crate::SuiteError::Config {
            var: "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
            problem: format!("{url:?} {why}; expected http://host:port (the local collector, e.g. http://localhost:4318)"),
        }
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("is not an http:// URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/v1/traces".to_string()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>().map_err(|_| bad("has a bad port"))?,
            ),
            None => (authority.to_string(), 80),
        };
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        Ok(Some(Exporter {
            host,
            port,
            path,
            resource,
            buffer: Mutex::new(Vec::new()),
            dropped: Mutex::new(0),
        }))
    }

    fn push(&self, span: Value) {
        if let Ok(mut b) = self.buffer.lock() {
            if b.len() >= MAX_BUFFERED {
                b.remove(0);
                if let Ok(mut d) = self.dropped.lock() {
                    *d += 1;
                }
            }
            b.push(span);
        }
    }

    /// Sends what is buffered; errors are reported on stderr, never raised (tracing must not
    /// fail an invocation).
    pub fn flush(&self) {
        let spans = match self.buffer.lock() {
            Ok(mut b) if !b.is_empty() => std::mem::take(&mut *b),
            _ => return,
        };
        let body = self.encode(spans);
        if let Err(e) = self.post(&body) {
            eprintln!(
                "{}",
                json!({"level": "WARN", "message": "OTLP export failed", "error": e.to_string(), "endpoint": format!("http://{}:{}{}", self.host, self.port, self.path)})
            );
        }
    }

    fn encode(&self, spans: Vec<Value>) -> Vec<u8> {
        let attrs: Vec<Value> = self
            .resource
            .iter()
            .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
            .collect();
        let doc = json!({"resourceSpans": [{
            "resource": {"attributes": attrs},
            "scopeSpans": [{"scope": {"name": "playbook-suite", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}]
        }]});
        serde_json::to_vec(&doc).unwrap_or_default()
    }

    fn post(&self, body: &[u8]) -> std::io::Result<()> {
        let addr = (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("collector host does not resolve"))?;
        let timeout = Duration::from_secs(1);
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_write_timeout(Some(timeout))?;
        s.set_read_timeout(Some(timeout))?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.host,
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut status = [0u8; 12];
        s.read_exact(&mut status)?;
        // "HTTP/1.1 200"
        match &status[9..12] {
            b"200" | b"202" | b"204" => Ok(()),
            other => Err(std::io::Error::other(format!(
                "collector answered {}",
                String::from_utf8_lossy(other)
            ))),
        }
    }
}

/// Start time, attributes and error flag of an open span (only when exporting).
struct Open {
    start_ns: u128,
    attrs: Map<String, Value>,
    error: bool,
}

/// The layer: gives every span W3C ids (always: the log lines use them) and, with an
/// exporter, records spans and exports each trace when its root span closes.
pub struct OtelLayer {
    exporter: Option<Arc<Exporter>>,
}

impl OtelLayer {
    pub fn new(exporter: Option<Arc<Exporter>>) -> Self {
        OtelLayer { exporter }
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    loop {
        for x in b.iter_mut() {
            *x = rand::random::<u8>();
        }
        if b != [0u8; N] {
            return b;
        }
    }
}

/// Reads the fields a root span may carry to continue a trace: `traceparent`, or `trace_id`
/// (32 hex) with an optional `parent_span_id`.
#[derive(Default)]
struct Incoming {
    traceparent: Option<String>,
    trace_id: Option<String>,
    parent_span_id: Option<String>,
}

impl Visit for Incoming {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field.name(), format!("{value:?}"));
    }
}

impl Incoming {
    fn set(&mut self, name: &str, v: String) {
        match name {
            "traceparent" => self.traceparent = Some(v),
            "trace_id" => self.trace_id = Some(v),
            "parent_span_id" => self.parent_span_id = Some(v),
            _ => {}
        }
    }
}

struct AttrVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for AttrVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_string(), Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), json!(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), json!(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), json!(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), json!(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            Value::String(format!("{value:?}")),
        );
    }
}

fn otlp_value(v: &Value) -> Value {
    match v {
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n.as_f64()}),
        Value::String(s) => json!({"stringValue": s}),
        other => json!({"stringValue": other.to_string()}),
    }
}

/// Marks the invocation span: the root of the function's part of the trace.
struct InvocationRoot;

impl<S> Layer<S> for OtelLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // The invocation span is the local root even inside the Lambda runtime's own span
        // ("Lambda runtime invoke"): it carries the caller's context (traceparent, or the
        // X-Ray trace), which a parent's random ids must not replace.
        let invocation = attrs.metadata().name() == "invocation";
        let parent_ids = span
            .parent()
            .filter(|_| !invocation)
            .and_then(|p| p.extensions().get::<OtelIds>().copied());
        let ids = match parent_ids {
            Some(p) => OtelIds {
                trace_id: p.trace_id,
                span_id: random_bytes(),
                parent_span_id: Some(p.span_id),
            },
            None => {
                let mut inc = Incoming::default();
                attrs.record(&mut inc);
                if let Some((t, p)) = inc.traceparent.as_deref().and_then(parse_traceparent) {
                    OtelIds {
                        trace_id: t,
                        span_id: random_bytes(),
                        parent_span_id: Some(p),
                    }
                } else {
                    let mut t = [0u8; 16];
                    let trace = inc
                        .trace_id
                        .filter(|s| hex::decode_to_slice(s, &mut t).is_ok() && t != [0; 16])
                        .map(|_| t)
                        .unwrap_or_else(random_bytes);
                    let mut p = [0u8; 8];
                    let parent = inc
                        .parent_span_id
                        .filter(|s| hex::decode_to_slice(s, &mut p).is_ok() && p != [0; 8])
                        .map(|_| p);
                    OtelIds {
                        trace_id: trace,
                        span_id: random_bytes(),
                        parent_span_id: parent,
                    }
                }
            }
        };
        let mut ext = span.extensions_mut();
        ext.insert(ids);
        if invocation {
            ext.insert(InvocationRoot);
        }
        // The runtime's own spans are not part of the function's trace: not exported.
        if self.exporter.is_some() && !attrs.metadata().target().starts_with("lambda_runtime") {
            let mut map = Map::new();
            attrs.record(&mut AttrVisitor(&mut map));
            ext.insert(Open {
                start_ns: now_ns(),
                attrs: map,
                error: false,
            });
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if self.exporter.is_none() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(open) = ext.get_mut::<Open>() {
            values.record(&mut AttrVisitor(&mut open.attrs));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if self.exporter.is_none() || *event.metadata().level() != Level::ERROR {
            return;
        }
        if let Some(span) = ctx.event_span(event) {
            let mut ext = span.extensions_mut();
            if let Some(open) = ext.get_mut::<Open>() {
                open.error = true;
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(exporter) = &self.exporter else {
            return;
        };
        let Some(span) = ctx.span(&id) else { return };
        let ext = span.extensions();
        let is_root = span.parent().is_none() || ext.get::<InvocationRoot>().is_some();
        let (Some(ids), Some(open)) = (ext.get::<OtelIds>(), ext.get::<Open>()) else {
            return;
        };
        let meta = span.metadata();
        // An AWS SDK operation span is a client call; a root span is the invocation (server).
        let kind = if open.attrs.contains_key("rpc.system") {
            3
        } else if is_root {
            2
        } else {
            1
        };
        let attributes: Vec<Value> = open
            .attrs
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "traceparent" | "trace_id" | "span_id" | "parent_span_id"
                )
            })
            .map(|(k, v)| json!({"key": k, "value": otlp_value(v)}))
            .collect();
        let mut s = json!({
            "traceId": ids.trace_hex(),
            "spanId": ids.span_hex(),
            "name": meta.name(),
            "kind": kind,
            "startTimeUnixNano": open.start_ns.to_string(),
            "endTimeUnixNano": now_ns().to_string(),
            "attributes": attributes,
            "status": {"code": if open.error { 2 } else { 0 }},
        });
        if let Some(p) = ids.parent_span_id {
            s["parentSpanId"] = Value::String(hex::encode(p));
        }
        drop(ext);
        exporter.push(s);
        if is_root {
            exporter.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing() {
        let (t, p) =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(hex::encode(t), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex::encode(p), "00f067aa0ba902b7");
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none()
        );
        assert!(
            parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none()
        );
        assert!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7").is_none()
        );
        assert!(parse_traceparent("00-xyz-00f067aa0ba902b7-01").is_none());
        assert!(parse_traceparent("").is_none());
    }

    #[test]
    fn endpoint_from_env() {
        use crate::config::Vars;
        let v = Vars::from_pairs([("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318/")]);
        let e = Exporter::from_env(&v, vec![]).unwrap().unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("localhost", 4318, "/v1/traces")
        );
        let v = Vars::from_pairs([(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:9/x/traces",
        )]);
        let e = Exporter::from_env(&v, vec![]).unwrap().unwrap();
        assert_eq!((e.port, e.path.as_str()), (9, "/x/traces"));
        assert!(Exporter::from_env(
            &Vars::from_pairs([("OTEL_EXPORTER_OTLP_ENDPOINT", "https://x")]),
            vec![]
        )
        .is_err());
        assert!(
            Exporter::from_env(&Vars::from_pairs::<[(&str, &str); 0], _, _>([]), vec![])
                .unwrap()
                .is_none()
        );
    }

    /// Spans through a real subscriber to a real loopback HTTP receiver: parent-child ids,
    /// the incoming traceparent continued, an SDK-style client span, and the error status.
    #[test]
    fn exports_a_trace_with_its_structure() {
        use std::net::TcpListener;
        use tracing_subscriber::prelude::*;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                let n = s.read(&mut chunk).unwrap();
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap();
                    if buf.len() >= i + 4 + len {
                        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .unwrap();
                        return (
                            head,
                            serde_json::from_slice::<Value>(&buf[i + 4..i + 4 + len]).unwrap(),
                        );
                    }
                }
                if n == 0 {
                    panic!("closed early");
                }
            }
        });
        let v = crate::config::Vars::from_pairs([(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        )]);
        let exporter = Arc::new(
            Exporter::from_env(&v, vec![("service.name".into(), "unit".into())])
                .unwrap()
                .unwrap(),
        );
        let subscriber = tracing_subscriber::registry().with(OtelLayer::new(Some(exporter)));
        tracing::subscriber::with_default(subscriber, || {
            // As in Lambda: the runtime's own span is current when the handler starts.
            let runtime = tracing::info_span!(target: "lambda_runtime", "Lambda runtime invoke");
            let _r = runtime.enter();
            let root = tracing::info_span!(
                "invocation",
                traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                request_id = "r-1"
            );
            let _g = root.enter();
            let handed_on = current_traceparent().unwrap();
            assert!(handed_on.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
            let call = tracing::debug_span!(
                "S3.GetObject",
                "rpc.system" = "aws-api",
                "rpc.method" = "GetObject"
            );
            {
                let _c = call.enter();
                tracing::error!("boom");
            }
            drop(call);
            drop(_g);
            drop(root);
        });
        let (head, doc) = got.join().unwrap();
        assert!(head.starts_with("POST /v1/traces HTTP/1.1"), "{head}");
        let spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(spans.len(), 2);
        let root = spans.iter().find(|s| s["name"] == "invocation").unwrap();
        let call = spans.iter().find(|s| s["name"] == "S3.GetObject").unwrap();
        assert_eq!(root["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            root["parentSpanId"], "00f067aa0ba902b7",
            "continues the caller's trace"
        );
        assert_eq!(call["traceId"], root["traceId"]);
        assert_eq!(call["parentSpanId"], root["spanId"]);
        assert_eq!(call["kind"], 3);
        assert_eq!(root["kind"], 2);
        assert_eq!(call["status"]["code"], 2, "an error event marks its span");
        assert_eq!(
            doc["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "unit"
        );
    }
}
