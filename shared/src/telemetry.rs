//! Structured JSON logs. Every line carries the invocation's `request_id`, `trace_id` and
//! `span_id` (from the invocation span), the `function`, `environment` and `deployment`, and
//! never the value of a field named in `LOG_MASK_FIELDS` (matched case-insensitively, also
//! inside span fields).
//!
//! Hand-written rather than `tracing-subscriber`'s `json` formatter because that formatter
//! cannot mask fields and nests span fields where CloudWatch Logs Insights wants them flat.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::CommonConfig;

pub const MASK: &str = "***";

/// Installs the global subscriber: JSON logs on stdout (level from `RUST_LOG` or
/// `AWS_LAMBDA_LOG_LEVEL`, default info) and OpenTelemetry spans ([`crate::otel`]: ids
/// always, export when an OTLP endpoint is configured). Call once, first thing in `main`.
pub fn init(common: &CommonConfig) {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_from_env("AWS_LAMBDA_LOG_LEVEL"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let layer = JsonLayer::new(std::io::stdout, common);
    let vars = crate::config::Vars::from_process();
    let resource = vec![
        ("service.name".to_string(), common.function_name.clone()),
        (
            "deployment.environment".to_string(),
            common.environment.clone(),
        ),
        ("service.version".to_string(), common.deployment.clone()),
        ("cloud.provider".to_string(), "aws".to_string()),
        (
            "faas.name".to_string(),
            vars.or("AWS_LAMBDA_FUNCTION_NAME", &common.function_name),
        ),
    ];
    let exporter = match crate::otel::Exporter::from_env(&vars, resource) {
        Ok(e) => e.map(std::sync::Arc::new),
        Err(e) => {
            // Tracing must not stop the function: say what is wrong and run without export.
            eprintln!(
                "{}",
                serde_json::json!({"level": "ERROR", "message": "OpenTelemetry export disabled", "error": e.to_string()})
            );
            None
        }
    };
    // The OTel layer sees info-and-above spans plus the AWS SDK's per-operation spans (debug
    // level, marked by `rpc.system`), and error events (to set a span's status).
    let otel_filter = tracing_subscriber::filter::filter_fn(|m| {
        if m.is_span() {
            *m.level() <= tracing::Level::INFO || m.fields().field("rpc.system").is_some()
        } else {
            *m.level() == tracing::Level::ERROR
        }
    });
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .with(crate::otel::OtelLayer::new(exporter).with_filter(otel_filter))
        .try_init();
}

/// The span each invocation runs in; its fields appear on every log line inside it.
pub fn invocation_span(ctx: &lambda_runtime::Context) -> tracing::Span {
    invocation_span_from(ctx, &Value::Null)
}

/// [`invocation_span_from`], then removes the W3C trace context (`traceparent`,
/// `tracestate`) from the payload: it belongs to tracing, not to the function's own payload,
/// whose parsers refuse unknown fields (an engineer's `aws lambda invoke` with a
/// `traceparent` would otherwise fail as bad input). The shard keeps its `traceparent`: it is
/// part of its request and goes on to the target.
pub fn invocation_span_taking_context(
    ctx: &lambda_runtime::Context,
    payload: &mut Value,
) -> tracing::Span {
    let span = invocation_span_from(ctx, payload);
    if let Some(o) = payload.as_object_mut() {
        o.remove("traceparent");
        o.remove("tracestate");
    }
    span
}

/// The invocation span, continuing the caller's trace when the payload carries a W3C
/// `traceparent` (a coordinator's shard invocation, a manual invoke), else the X-Ray trace.
pub fn invocation_span_from(ctx: &lambda_runtime::Context, payload: &Value) -> tracing::Span {
    let incoming = payload
        .get("traceparent")
        .and_then(Value::as_str)
        .filter(|tp| crate::otel::parse_traceparent(tp).is_some());
    match incoming {
        Some(tp) => {
            let trace_id = tp.get(3..35).unwrap_or_default().to_string();
            tracing::info_span!(
                "invocation",
                request_id = %ctx.request_id,
                trace_id = %trace_id,
                span_id = %new_span_id(),
                traceparent = %tp,
            )
        }
        None => {
            let trace_id =
                trace_id_from_xray(ctx.xray_trace_id.as_deref()).unwrap_or_else(new_trace_id);
            tracing::info_span!(
                "invocation",
                request_id = %ctx.request_id,
                trace_id = %trace_id,
                span_id = %new_span_id(),
            )
        }
    }
}

/// Time left before the invocation's deadline. Lambda sends the deadline as epoch
/// milliseconds; `cargo lambda watch` sends the timeout itself (e.g. 600000), which no epoch
/// time can be (that would be 1970), so a small value is read as a duration.
pub fn time_left(deadline_ms: u64, now_ms: i64) -> std::time::Duration {
    use std::time::Duration;
    const YEAR_2001_MS: u64 = 978_307_200_000;
    if deadline_ms < YEAR_2001_MS {
        Duration::from_millis(deadline_ms)
    } else {
        Duration::from_millis((deadline_ms as i64 - now_ms).max(0) as u64)
    }
}

/// Extracts the W3C-style 32-hex trace id from an X-Ray header
/// (`Root=1-5759e988-bd862e3fe1be46a994272793;Parent=…;Sampled=1`).
pub fn trace_id_from_xray(header: Option<&str>) -> Option<String> {
    let header = header?;
    let root = header
        .split(';')
        .find_map(|p| p.trim().strip_prefix("Root="))?;
    let mut parts = root.split('-');
    let (version, time, rand) = (parts.next()?, parts.next()?, parts.next()?);
    if version != "1" || time.len() != 8 || rand.len() != 24 {
        return None;
    }
    let id = format!("{time}{rand}");
    id.chars().all(|c| c.is_ascii_hexdigit()).then_some(id)
}

pub fn new_trace_id() -> String {
    hex_id(16)
}

pub fn new_span_id() -> String {
    hex_id(8)
}

fn hex_id(bytes: usize) -> String {
    let mut s = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        let _ = write!(s, "{:02x}", rand::random::<u8>());
    }
    s
}

/// The JSON layer; generic over the writer so tests can capture lines.
pub struct JsonLayer<W> {
    make_writer: W,
    mask: HashSet<String>,
    statics: Map<String, Value>,
}

impl<W> JsonLayer<W> {
    pub fn new(make_writer: W, common: &CommonConfig) -> Self {
        let mut statics = Map::new();
        statics.insert(
            "function".into(),
            Value::String(common.function_name.clone()),
        );
        statics.insert(
            "environment".into(),
            Value::String(common.environment.clone()),
        );
        statics.insert(
            "deployment".into(),
            Value::String(common.deployment.clone()),
        );
        JsonLayer {
            make_writer,
            mask: common
                .log_mask_fields
                .iter()
                .map(|f| f.to_ascii_lowercase())
                .collect(),
            statics,
        }
    }
}

struct SpanFields(Map<String, Value>);

struct JsonVisitor<'a> {
    out: &'a mut Map<String, Value>,
    mask: &'a HashSet<String>,
}

impl JsonVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        let value = if self.mask.contains(&name.to_ascii_lowercase()) {
            Value::String(MASK.into())
        } else {
            value
        };
        self.out.insert(name.to_string(), value);
    }
}

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(
            field,
            serde_json::Number::from_f64(value)
                .map(Value::Number)
                .unwrap_or(Value::Null),
        );
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor {
            out: &mut fields,
            mask: &self.mask,
        });
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(SpanFields(fields)) = ext.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor {
                out: fields,
                mask: &self.mask,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = self.statics.clone();
        line.insert(
            "timestamp".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        line.insert(
            "level".into(),
            Value::String(event.metadata().level().to_string()),
        );
        line.insert(
            "target".into(),
            Value::String(event.metadata().target().to_string()),
        );
        // Outer spans first so inner spans' fields win on a clash.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    for (k, v) in fields {
                        line.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        // The innermost span's OpenTelemetry ids, so a log line and its span correlate.
        if let Some(ids) = ctx.event_scope(event).and_then(|mut scope| {
            scope.find_map(|span| span.extensions().get::<crate::otel::OtelIds>().copied())
        }) {
            line.insert("trace_id".into(), Value::String(ids.trace_hex()));
            line.insert("span_id".into(), Value::String(ids.span_hex()));
        }
        line.remove("traceparent");
        event.record(&mut JsonVisitor {
            out: &mut line,
            mask: &self.mask,
        });
        let mut buf = match serde_json::to_vec(&Value::Object(line)) {
            Ok(b) => b,
            Err(_) => return,
        };
        buf.push(b'\n');
        let _ = self.make_writer.make_writer().write_all(&buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn common() -> CommonConfig {
        CommonConfig {
            function_name: "manifest-diff".into(),
            environment: "staging".into(),
            deployment: "abc123".into(),
            report_bucket: "r".into(),
            report_prefix: "reports/".into(),
            metrics_namespace: "NS".into(),
            log_mask_fields: vec!["password".into(), "Email".into()],
        }
    }

    #[test]
    fn lines_carry_ids_and_mask_fields() {
        let cap = Capture::default();
        let subscriber =
            tracing_subscriber::registry().with(JsonLayer::new(cap.clone(), &common()));
        tracing::subscriber::with_default(subscriber, || {
            let mut ctx = lambda_runtime::Context::default();
            ctx.request_id = "req-1".into();
            ctx.xray_trace_id = Some(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
            );
            let span = invocation_span(&ctx);
            let _g = span.enter();
            let inner = tracing::info_span!("step", email = "a@b.c");
            let _i = inner.enter();
            tracing::info!(
                password = "hunter2",
                bucket = "prod",
                count = 3u64,
                "listed"
            );
        });
        let out = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
        assert!(!out.contains("hunter2") && !out.contains("a@b.c"), "{out}");
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["message"], "listed");
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v["trace_id"], "5759e988bd862e3fe1be46a994272793");
        assert_eq!(v["span_id"].as_str().unwrap().len(), 16);
        assert_eq!(v["function"], "manifest-diff");
        assert_eq!(v["environment"], "staging");
        assert_eq!(v["deployment"], "abc123");
        assert_eq!(v["password"], MASK);
        assert_eq!(v["email"], MASK);
        assert_eq!(v["bucket"], "prod");
        assert_eq!(v["count"], 3);
        assert_eq!(v["level"], "INFO");
    }

    #[test]
    fn deadline_from_lambda_and_from_the_emulator() {
        use std::time::Duration;
        let now = 1_795_750_000_000i64;
        assert_eq!(time_left(now as u64 + 90_000, now), Duration::from_secs(90));
        assert_eq!(time_left(now as u64 - 5, now), Duration::ZERO);
        assert_eq!(time_left(600_000, now), Duration::from_secs(600));
    }

    #[test]
    fn trace_context_is_continued_and_taken_out_of_the_payload() {
        let ctx = lambda_runtime::Context::default();
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut payload =
            serde_json::json!({"source": "list", "traceparent": tp, "tracestate": "a=b"});
        let _span = invocation_span_taking_context(&ctx, &mut payload);
        // Continuing the trace is checked end to end (tests/tests/manifest_diff.rs).
        assert_eq!(payload, serde_json::json!({"source": "list"}));
        // A payload that is not an object is left alone.
        let mut other = serde_json::json!(["x"]);
        let _ = invocation_span_taking_context(&ctx, &mut other);
        assert_eq!(other, serde_json::json!(["x"]));
    }

    #[test]
    fn xray_header_parsing() {
        assert_eq!(
            trace_id_from_xray(Some("Root=1-00000000-000000000000000000000001")).as_deref(),
            Some("00000000000000000000000000000001")
        );
        assert_eq!(trace_id_from_xray(Some("Root=garbage")), None);
        assert_eq!(trace_id_from_xray(Some("Parent=1")), None);
        assert_eq!(trace_id_from_xray(None), None);
        assert_eq!(new_trace_id().len(), 32);
    }
}
