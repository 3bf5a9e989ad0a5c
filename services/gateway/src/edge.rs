//! The edge's protections, applied to every request: a request id (kept if the client sent a
//! sane one), rate limits per token and per client address (429 with `Retry-After`), CORS for
//! the configured origins only, and security headers.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tessera_web::Problem;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::Gateway;

/// Requests allowed per second, and the burst above that rate, per bearer token and per
/// client address.
#[derive(Clone, Debug)]
pub struct RateLimits {
    pub per_token: NonZeroU32,
    pub token_burst: NonZeroU32,
    pub per_address: NonZeroU32,
    pub address_burst: NonZeroU32,
}

impl Default for RateLimits {
    fn default() -> Self {
        let n = |value| NonZeroU32::new(value).unwrap_or(NonZeroU32::MIN);
        Self { per_token: n(200), token_burst: n(400), per_address: n(2000), address_burst: n(4000) }
    }
}

pub(crate) struct Limiter {
    tokens: DefaultKeyedRateLimiter<String>,
    addresses: DefaultKeyedRateLimiter<String>,
}

impl Limiter {
    pub(crate) fn new(limits: &RateLimits) -> Self {
        Self {
            tokens: RateLimiter::keyed(Quota::per_second(limits.per_token).allow_burst(limits.token_burst)),
            addresses: RateLimiter::keyed(
                Quota::per_second(limits.per_address).allow_burst(limits.address_burst),
            ),
        }
    }

    /// `Err(seconds to wait)` when either key is over its limit.
    fn check(&self, token: Option<&str>, address: &str) -> Result<(), u64> {
        let wait = |outcome: Result<(), governor::NotUntil<governor::clock::QuantaInstant>>| {
            outcome.map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()).as_secs() + 1)
        };
        wait(self.addresses.check_key(&address.to_owned()))?;
        if let Some(token) = token {
            wait(self.tokens.check_key(&token.to_owned()))?;
        }
        Ok(())
    }
}

async fn rate_limit(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "local".to_owned(), |info| info.0.ip().to_string());
    // Limited per presented token, valid or not: a flood of bad tokens is a flood too.
    let token = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Err(seconds) = gateway.limiter.check(token.as_deref(), &address) {
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
        .expose_headers([header::ETAG, REQUEST_ID, header::RETRY_AFTER]);
    let security = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
    ];
    let mut router =
        router.layer(axum::middleware::from_fn_with_state(gateway.clone(), rate_limit)).layer(cors);
    for (name, value) in security {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)));
    }
    router
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
