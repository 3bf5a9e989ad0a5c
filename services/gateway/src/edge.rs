//! The edge's protections, applied to every request: a request id (kept if the client sent a
//! sane one), rate limits per token and per client address (429 with `Retry-After`), CORS for
//! the configured origins only, and security headers.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tessera_web::Problem;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::client_address::{address_key, client_address};
use crate::state::Gateway;

async fn rate_limit(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    let address = address_key(client_address(peer, request.headers(), &gateway.config.trusted_proxies));
    // Limited per subject of a valid token (new tokens for the same person share one
    // allowance); a bad token counts against its address only, so it cannot grow the table.
    let subject = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(tessera_web::token::bearer_token)
        .and_then(|token| {
            let now = tessera_kernel::Timestamp::from_system_time(std::time::SystemTime::now());
            gateway.keys.verify(token, now).ok()
        })
        .map(|claims| claims.sub);
    if let Err(seconds) = gateway.limiter.check(subject.as_deref(), &address) {
        let mut response =
            Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down")
                .into_response();
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    next.run(request).await
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client's request id is kept only if it is a sane token (it goes into logs and responses);
/// otherwise a fresh one is made.
async fn drop_odd_request_id(mut request: Request, next: Next) -> Response {
    let sane = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).is_none_or(|id| {
        (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    });
    if !sane {
        request.headers_mut().remove(&REQUEST_ID);
    }
    next.run(request).await
}

pub(crate) fn layers(router: Router, gateway: &Gateway) -> Router {
    let origins: Vec<HeaderValue> =
        gateway.config.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            axum::http::Method::GET,
            axum::http::Method::POST,
            axum::http::Method::PATCH,
            axum::http::Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([
            header::ETAG,
            REQUEST_ID,
            header::RETRY_AFTER,
            HeaderName::from_static("idempotent-replayed"),
        ]);
    let security = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
    ];
    let mut router = router
        .layer(axum::middleware::from_fn(crate::delegation::remember_caller))
        .layer(axum::middleware::from_fn_with_state(gateway.clone(), rate_limit))
        .layer(cors);
    for (name, value) in security {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)));
    }
    if gateway.config.hsts {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    router
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::from_fn(drop_odd_request_id))
}
