//! The HTTP edge every service shares. A service's routes use these extractors and return
//! [`Problem`]s, and `standard_layers` finishes its router, so that every answer a client can
//! provoke (a malformed body, an unknown route, a wrong method, a body over 1 MiB, a panic) is
//! problem+json with a stable code, never a bare 500 or plain text.

pub mod access;
pub mod bounded;
pub mod client;
mod extract;
mod field_error_words;
mod metered;
mod preconditions;
mod problem;
mod tls;
pub mod token;

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

pub use extract::{Json, Path, Query, body_problem, is_json, parse_json, parse_query};
pub use metered::metered;
pub use preconditions::{ETag, IfMatch, stale};
pub use problem::{ApiResult, FieldError, PROBLEM_JSON, Problem, store_problem};
pub use tls::{Identity, TlsError, serve_tls};

/// The largest request body any route accepts.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// The default and the largest page size of a list (`?limit=`).
pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

/// Checks a `?limit=`: absent means the default; outside 1..=200 is a field error.
pub fn page_limit(limit: Option<u32>) -> Result<u32, Problem> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Problem::invalid_field("limit", format!("must be between 1 and {MAX_PAGE}"))),
    }
}

async fn unknown_route() -> Problem {
    Problem::not_found("no such route")
}

async fn wrong_method() -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not take that method")
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    Problem::internal(&"a handler panicked").into_response()
}

/// Adds what every router needs: 404 and 405 as problems, the body limit (413), and a panic
/// turned into a logged 500 problem instead of a dropped connection.
pub fn standard_layers<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
}

/// Whether what a process depends on answers (its stores, say); `Err` names what does not.
pub trait Readiness: Send + Sync {
    fn check(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), Vec<String>>> + Send + '_>>;
}

/// `GET /ready` for a readiness check: 200, or 503 naming what does not answer.
pub async fn ready(readiness: &dyn Readiness) -> Response {
    match readiness.check().await {
        Ok(()) => axum::Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(failing) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("not answering: {}", failing.join(", ")),
        )
        .into_response(),
    }
}

/// `GET /health`: the process answers.
pub async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // With the peer's address in each request, so limits can be kept per client address.
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await
}
