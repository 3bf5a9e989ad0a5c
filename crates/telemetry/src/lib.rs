//! Traces and logs for every process.
//!
//! [`init`] installs the `tracing` subscriber: log lines as JSON (one object per line, with the
//! fields of the spans they happen in, `trace_id` and `service` among them) or for a human in a
//! terminal; and, with an OTLP endpoint, an OpenTelemetry layer that exports every span.
//!
//! Trace context crosses process and message boundaries in the W3C `traceparent` form: the
//! gateway's calls carry it as a header ([`inject`]), a service's request span continues it
//! ([`http_span`]), a message records the span that emitted it ([`current_traceparent`]) and
//! the subscriber's span for that message continues it ([`message_span`]). So one order's
//! saga, across every service and message, is one trace.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub const TRACEPARENT: &str = "traceparent";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Human,
    /// Human in a terminal, JSON otherwise.
    Auto,
}

#[derive(Clone, Debug)]
pub struct TelemetrySettings {
    /// `service.name` of the exported spans: the process (`tessera` embedded, the service's
    /// name distributed). Each span also names the service it ran in.
    pub process: String,
    pub log_format: LogFormat,
    /// `RUST_LOG`-style filter when `RUST_LOG` is unset.
    pub default_filter: String,
    /// The OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`; spans go to `<it>/v1/traces`.
    pub otlp_endpoint: Option<String>,
    /// How long spans wait to be exported in a batch.
    pub export_delay: Duration,
}

impl TelemetrySettings {
    pub fn new(process: &str) -> Self {
        Self {
            process: process.to_owned(),
            log_format: LogFormat::Auto,
            default_filter: "warn".to_owned(),
            otlp_endpoint: None,
            export_delay: Duration::from_millis(500),
        }
    }
}

/// Flushes the spans still buffered when dropped (keep it alive for the process's life).
#[must_use = "spans still buffered are lost if the guard is dropped early"]
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is buffered now.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        }
    }
}

/// Installs the subscriber (once per process). Must run inside the Tokio runtime when an
/// OTLP endpoint is set (the exporter runs on it).
pub fn init(settings: &TelemetrySettings) -> Result<Telemetry, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.default_filter));
    let json = match settings.log_format {
        LogFormat::Json => true,
        LogFormat::Human => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let lines = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed()
    };
    let (provider, export) = match &settings.otlp_endpoint {
        Some(endpoint) => {
            let failed = |reason: String| TelemetryError::Exporter { endpoint: endpoint.clone(), reason };
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .with_timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| failed(e.to_string()))?;
            let config = opentelemetry_sdk::trace::BatchConfigBuilder::default()
                .with_scheduled_delay(settings.export_delay)
                .build();
            let processor =
                opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                    exporter,
                    opentelemetry_sdk::runtime::Tokio,
                )
                .with_batch_config(config)
                .build();
            let resource =
                opentelemetry_sdk::Resource::builder().with_service_name(settings.process.clone()).build();
            let provider =
                SdkTracerProvider::builder().with_span_processor(processor).with_resource(resource).build();
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("tessera"))
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
            (Some(provider), Some(layer))
        }
        None => (None, None),
    };
    // The filter (RUST_LOG) chooses log lines only: spans are exported from `info` whatever
    // it says, so that a quiet log does not cost the traces.
    // RUST_LOG chooses log lines only: spans are exported from `info` whatever it says. A
    // line names its request's trace when the filter lets that request's span through too
    // (`RUST_LOG=info`, or the targets at hand).
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(export)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(Telemetry { provider })
}

struct HeaderWriter<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderWriter<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

struct HeaderReader<'a>(&'a http::HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Adds the current span's `traceparent` to an outgoing request's headers.
pub fn inject(headers: &mut http::HeaderMap) {
    let context = Span::current().context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut HeaderWriter(headers));
    }
}

/// The current span's W3C `traceparent`, if it has a valid context (spans are exported).
pub fn current_traceparent() -> Option<String> {
    let context = Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Continues the trace named by `traceparent` in `span`, and records its trace id on it.
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    if span.is_disabled() {
        // No layer records it (no exporter, and logs filtered above its level): nothing to
        // continue, and the subscriber calls this once per message.
        return;
    }
    let carrier: HashMap<String, String> =
        traceparent.map(|t| (TRACEPARENT.to_owned(), t.to_owned())).into_iter().collect();
    adopt(span, &TraceContextPropagator::new().extract(&carrier));
}

/// Makes `parent` (if it names a span) the parent of `span`, and records the trace id on it.
fn adopt(span: &Span, parent: &opentelemetry::Context) {
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent.clone());
    }
    record_trace_id(span);
}

fn record_trace_id(span: &Span) {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", span_context.trace_id().to_string());
    }
}

/// The span of one request a service (or the gateway) serves, continuing the caller's trace.
pub fn http_span(service: &'static str, method: &str, route: &str, headers: &http::HeaderMap) -> Span {
    let span = tracing::info_span!(
        "http",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        service,
        http.method = method,
        http.route = route,
        trace_id = tracing::field::Empty,
    );
    adopt(&span, &TraceContextPropagator::new().extract(&HeaderReader(headers)));
    span
}

/// The span of one message a subscriber applies, continuing the trace of the span that
/// emitted it.
pub fn message_span(consumer: &str, message: &str, traceparent: Option<&str>) -> Span {
    let span = tracing::info_span!(
        "message",
        otel.name = format!("handle {message}"),
        otel.kind = "consumer",
        service = consumer.split("__").next().unwrap_or(consumer),
        consumer,
        message,
        trace_id = tracing::field::Empty,
    );
    continue_trace(&span, traceparent);
    span
}
