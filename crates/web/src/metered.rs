//! Request metrics and spans: count, status and latency of every request, by service and
//! route pattern (never by raw path, so an id in a URL cannot multiply the series), and a span
//! per request that continues the caller's trace.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// Counts, times and traces every request `router` serves as `service`.
pub fn metered<S: Clone + Send + Sync + 'static>(router: Router<S>, service: &'static str) -> Router<S> {
    router
        .layer(axum::middleware::from_fn(move |request: Request, next: Next| record(service, request, next)))
}

async fn record(service: &'static str, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    // Extension methods would each make new series: only the standard ones are named.
    let method = match *request.method() {
        axum::http::Method::GET
        | axum::http::Method::POST
        | axum::http::Method::PUT
        | axum::http::Method::PATCH
        | axum::http::Method::DELETE
        | axum::http::Method::HEAD
        | axum::http::Method::OPTIONS => request.method().as_str().to_owned(),
        _ => "other".to_owned(),
    };
    let span = tessera_telemetry::http_span(service, &method, &route, request.headers());
    let started = Instant::now();
    let response = next.run(request).instrument(span).await;
    let status = response.status();
    metrics::histogram!(
        "tessera_http_request_duration_seconds",
        "service" => service, "route" => route.clone(), "method" => method.clone()
    )
    .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        "tessera_http_requests_total",
        "service" => service, "route" => route, "method" => method, "status" => status.as_str().to_owned()
    )
    .increment(1);
    response
}
