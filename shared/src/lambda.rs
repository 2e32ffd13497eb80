//! The Lambda adapter every function shares. A function's `handle(&deps, event)` is
//! [`invoke`] around its own business logic, and its `main` is [`serve`] around `handle`:
//!
//! ```ignore
//! pub async fn handle(deps: &Deps, event: LambdaEvent<Value>) -> Result<Value, SuiteError> {
//!     shared::lambda::invoke(&deps.common, event, |event| handle_inner(deps, event)).await
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), lambda_runtime::Error> {
//!     let deps = Deps::from_env().await?;
//!     shared::lambda::serve(|event| handle(&deps, event)).await
//! }
//! ```
//!
//! [`invoke`] owns what every invocation does around the logic (docs/observability.md):
//! the `invocation` span (continuing a payload's W3C `traceparent`, else the X-Ray trace),
//! and on failure one `ERROR` line `invocation failed` with `error_class`, `error` and
//! `retryable` inside that span, plus one `function_errors` EMF document. [`serve`] hands the
//! [`SuiteError`] to the runtime as it is, which turns it into the Lambda `errorType` and
//! `errorMessage` through `From<SuiteError> for Diagnostic` (crate::error) and logs its
//! `Debug` form, as it did before this module existed.

use std::future::Future;

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use tracing::Instrument;

use crate::config::CommonConfig;
use crate::metrics::Emf;
use crate::SuiteError;

/// What happens to a payload's W3C trace context (`traceparent`, `tracestate`) once the
/// invocation span has read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TraceContext {
    /// Taken out of the payload (`telemetry::invocation_span_taking_context`): it belongs to
    /// tracing, and the functions' payload parsers refuse unknown fields.
    #[default]
    Take,
    /// Left in the payload (`telemetry::invocation_span_from`): loadtest-shard's
    /// `traceparent` is part of its request and goes on to the target.
    Keep,
}

/// Runs the Lambda runtime with `handler` (a function's `handle`, built on [`invoke`]) until
/// the runtime stops. A handler's `SuiteError` reaches the runtime unchanged, so its class is
/// the invocation's `errorType`.
pub async fn serve<F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: FnMut(LambdaEvent<Value>) -> Fut,
    Fut: Future<Output = Result<Value, SuiteError>>,
{
    lambda_runtime::run(service_fn(handler)).await
}

/// One invocation: `inner` (the function's logic) runs in the invocation span, with the
/// payload's trace context taken out of the payload it receives; a failure is logged and
/// counted (`function_errors`), then returned as it is. `inner`'s future is boxed, so a deep
/// one needs no `Box::pin` of its own.
pub async fn invoke<F, Fut, T>(
    common: &CommonConfig,
    event: LambdaEvent<Value>,
    inner: F,
) -> Result<T, SuiteError>
where
    F: FnOnce(LambdaEvent<Value>) -> Fut,
    Fut: Future<Output = Result<T, SuiteError>>,
{
    invoke_with(common, TraceContext::Take, event, inner).await
}

/// [`invoke`], choosing what happens to the payload's trace context.
pub async fn invoke_with<F, Fut, T>(
    common: &CommonConfig,
    trace: TraceContext,
    event: LambdaEvent<Value>,
    inner: F,
) -> Result<T, SuiteError>
where
    F: FnOnce(LambdaEvent<Value>) -> Fut,
    Fut: Future<Output = Result<T, SuiteError>>,
{
    invoke_emitting(common, trace, event, inner, Emf::emit).await
}

/// The adapter, with the sink of the `function_errors` document as a parameter (stdout in
/// production, a vector in the tests).
async fn invoke_emitting<F, Fut, T, M>(
    common: &CommonConfig,
    trace: TraceContext,
    mut event: LambdaEvent<Value>,
    inner: F,
    emit: M,
) -> Result<T, SuiteError>
where
    F: FnOnce(LambdaEvent<Value>) -> Fut,
    Fut: Future<Output = Result<T, SuiteError>>,
    M: FnOnce(&Emf),
{
    let span = match trace {
        TraceContext::Take => {
            crate::telemetry::invocation_span_taking_context(&event.context, &mut event.payload)
        }
        TraceContext::Keep => {
            crate::telemetry::invocation_span_from(&event.context, &event.payload)
        }
    };
    async move {
        // Boxed: a function's logic nests futures deeply (a sweep, a run's slices), and the
        // runtime's futures around this one would otherwise exceed the compiler's layout
        // depth limit in `main`.
        let result = Box::pin(inner(event)).await;
        if let Err(e) = &result {
            tracing::error!(error_class = e.class(), error = %e, retryable = e.retryable(), "invocation failed");
            emit(&crate::metrics::error_document(common, e));
        }
        result
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Diagnostic;
    use serde_json::json;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::prelude::*;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

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
            function_name: "worker-scaler".into(),
            environment: "prod".into(),
            deployment: "d".into(),
            report_bucket: "r".into(),
            report_prefix: "reports/".into(),
            metrics_namespace: "PlatformPlaybook".into(),
            log_mask_fields: vec![],
        }
    }

    fn event(payload: Value) -> LambdaEvent<Value> {
        let mut ctx = lambda_runtime::Context::default();
        ctx.request_id = "req-1".into();
        LambdaEvent::new(payload, ctx)
    }

    /// What one invocation left behind.
    struct Seen<T> {
        result: Result<T, SuiteError>,
        /// The JSON log lines, in order.
        logs: Vec<Value>,
        /// The EMF documents emitted by the adapter.
        metrics: Vec<Value>,
    }

    /// Runs the adapter under the production layers (JSON logs and OpenTelemetry ids).
    async fn run<F, Fut, T>(trace: TraceContext, event: LambdaEvent<Value>, inner: F) -> Seen<T>
    where
        F: FnOnce(LambdaEvent<Value>) -> Fut,
        Fut: Future<Output = Result<T, SuiteError>>,
    {
        let cap = Capture::default();
        let subscriber = tracing_subscriber::registry()
            .with(crate::telemetry::JsonLayer::new(cap.clone(), &common()))
            .with(crate::otel::OtelLayer::new(None));
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut metrics = vec![];
        let result = invoke_emitting(&common(), trace, event, inner, |d| {
            metrics.push(d.to_json(0))
        })
        .await;
        let out = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
        let logs = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        Seen {
            result,
            logs,
            metrics,
        }
    }

    fn errors(logs: &[Value]) -> Vec<&Value> {
        logs.iter().filter(|l| l["level"] == "ERROR").collect()
    }

    #[tokio::test]
    async fn an_error_is_logged_with_its_class_and_counted_once() {
        for (err, class, retryable) in [
            (
                SuiteError::invalid("scenario", "is missing", "send one"),
                "InvalidInput",
                false,
            ),
            (
                SuiteError::Aws {
                    service: "S3",
                    operation: "GetObject",
                    message: "throttled".into(),
                },
                "AwsError",
                true,
            ),
        ] {
            let message = err.to_string();
            let seen = run(TraceContext::Take, event(json!({})), |_| async move {
                tracing::info!("working");
                Err::<Value, _>(err)
            })
            .await;

            let errors = errors(&seen.logs);
            assert_eq!(errors.len(), 1, "{:?}", seen.logs);
            let line = errors[0];
            assert_eq!(line["message"], "invocation failed");
            assert_eq!(line["error_class"], class);
            assert_eq!(line["error"], message.as_str());
            assert_eq!(line["retryable"], retryable);
            // Inside the invocation span: its request id and the same trace as the work.
            assert_eq!(line["request_id"], "req-1");
            assert_eq!(line["function"], "worker-scaler");
            assert_eq!(line["trace_id"].as_str().unwrap().len(), 32);
            assert_eq!(line["trace_id"], seen.logs[0]["trace_id"]);

            assert_eq!(seen.metrics.len(), 1, "{:?}", seen.metrics);
            let m = &seen.metrics[0];
            assert_eq!(m["function_errors"], 1.0);
            assert_eq!(m["error_class"], class);
            let cw = &m["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(
                cw["Metrics"],
                json!([{"Name": "function_errors", "Unit": "Count"}])
            );
            assert_eq!(cw["Dimensions"], json!([["function", "environment"]]));
            assert_eq!(cw["Namespace"], "PlatformPlaybook");

            // The error comes back unchanged; the runtime makes its class the errorType.
            let e = seen.result.unwrap_err();
            assert_eq!(e.class(), class);
            let d: Diagnostic = e.into();
            assert_eq!(d.error_type, class);
            assert_eq!(d.error_message, message);
        }
    }

    #[tokio::test]
    async fn a_success_logs_no_error_and_counts_nothing() {
        let seen = run(TraceContext::Take, event(json!({"a": 1})), |e| async move {
            tracing::info!("working");
            Ok::<_, SuiteError>(e.payload)
        })
        .await;
        assert_eq!(seen.result.unwrap(), json!({"a": 1}));
        assert!(errors(&seen.logs).is_empty(), "{:?}", seen.logs);
        assert_eq!(seen.logs.len(), 1, "{:?}", seen.logs);
        assert_eq!(seen.logs[0]["request_id"], "req-1");
        assert!(seen.metrics.is_empty(), "{:?}", seen.metrics);
    }

    /// The logic runs in a span continuing the payload's trace, and sees the payload without
    /// the trace context (or with it, for the shard).
    #[tokio::test]
    async fn a_payload_traceparent_is_continued() {
        let payload = json!({"source": "list", "traceparent": TRACEPARENT, "tracestate": "a=b"});
        for (trace, want) in [
            (TraceContext::Take, json!({"source": "list"})),
            (TraceContext::Keep, payload.clone()),
        ] {
            let seen = run(trace, event(payload.clone()), |e| async move {
                tracing::info!("working");
                let handed_on = crate::otel::current_traceparent();
                Ok::<_, SuiteError>((e.payload, handed_on))
            })
            .await;
            let (got, handed_on) = seen.result.unwrap();
            assert_eq!(got, want, "{trace:?}");
            let line = &seen.logs[0];
            assert_eq!(line["trace_id"], TRACE_ID, "{trace:?}: {line}");
            assert_ne!(line["span_id"], "00f067aa0ba902b7", "a span of its own");
            assert!(line.get("traceparent").is_none(), "{line}");
            let handed_on = handed_on.unwrap();
            assert!(
                handed_on.starts_with(&format!("00-{TRACE_ID}-")) && handed_on != TRACEPARENT,
                "{handed_on}"
            );
        }
    }

    #[tokio::test]
    async fn without_a_traceparent_the_xray_trace_is_used() {
        let mut ev = event(json!({}));
        ev.context.xray_trace_id = Some(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
        );
        let seen = run(TraceContext::Take, ev, |_| async {
            tracing::info!("working");
            Ok::<_, SuiteError>(())
        })
        .await;
        assert!(seen.result.is_ok());
        assert_eq!(seen.logs[0]["trace_id"], "5759e988bd862e3fe1be46a994272793");
    }
}
