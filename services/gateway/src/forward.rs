//! Forwarding to the services: calls with the gateway's timeout, a service's answer passed on
//! or turned into the client's error, and the path ids parsed before they go into a path.
//! Every resource's routes use it; it uses none of them.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tessera_web::{ApiResult, FieldError, Problem};

use crate::catalogue::{BACKEND_DEADLINE, CacheKey, CachedReply};
use crate::clients::{ClientError, Reply, ServiceClient, call};
use crate::state::Gateway;

/// A service that did not answer becomes 503 (unreachable) or 504 (too slow).
pub(crate) fn unavailable(error: &ClientError) -> Problem {
    match error {
        ClientError::Timeout { .. } => {
            tracing::warn!(%error, "dependency too slow");
            Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "dependency_timeout",
                "a service did not answer in time; retry",
            )
        }
        ClientError::Unreachable { .. } => Problem::unavailable(error),
    }
}

/// Passes a service's answer on as it is (status, body, and the headers a client uses).
pub(crate) fn pass_on(reply: Reply) -> Response {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = reply.status;
    for name in [header::CONTENT_TYPE, header::ETAG, header::LOCATION, header::RETRY_AFTER, REPLAYED] {
        if let Some(value) = reply.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// A service's error answer, returned as the client's error.
pub(crate) fn pass_on_error<T>(reply: Reply) -> ApiResult<T> {
    let body = reply.json();
    let code = body["code"].as_str().unwrap_or("upstream_error");
    let detail = body["detail"].as_str().unwrap_or("a service refused the request");
    let mut problem = Problem::new(reply.status, code, detail);
    problem.retry_after =
        reply.headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if let Some(errors) = body["errors"].as_array() {
        problem.errors = errors
            .iter()
            .map(|e| {
                FieldError::new(
                    e["field"].as_str().unwrap_or_default(),
                    e["message"].as_str().unwrap_or_default(),
                )
            })
            .collect();
    }
    Err(problem)
}

/// A path id the gateway will put into a service's path: a UUID, or the object does not exist.
/// Parsing it (rather than passing text on) keeps `/`, `?`, `#` and `..` out of forwarded paths.
pub(crate) fn uuid(text: &str, what: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(text).map_err(|_| Problem::not_found(format!("no such {what}")))
}

pub(crate) fn sku(text: &str) -> ApiResult<tessera_contracts::Sku> {
    tessera_contracts::Sku::parse(text).map_err(|_| Problem::not_found(format!("no product {text}")))
}

/// Payment tokens are `tok_` and hex; anything else names no token (and never reaches a path).
pub(crate) fn plausible_token(token: &str) -> bool {
    (1..=100).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub(crate) fn if_match(headers: &HeaderMap) -> Vec<(header::HeaderName, String)> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| vec![(header::IF_MATCH, v.to_owned())])
        .unwrap_or_default()
}

pub(crate) fn with_query(path: &str, query: Option<&str>) -> String {
    match query {
        Some(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_owned(),
    }
}

/// A client's JSON body as the contract type `T`, read only once the caller may make the
/// request at all: a refused caller hears 403 whatever they sent, as for every other route.
pub(crate) fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<T> {
    if !tessera_web::is_json(headers.get(header::CONTENT_TYPE)) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        ));
    }
    let body = body.map_err(|rejection| tessera_web::body_problem(&rejection))?;
    tessera_web::parse_json(&body)
}

/// A typed body as the JSON a service reads.
pub(crate) fn to_json<T: Serialize>(body: &T) -> ApiResult<Value> {
    serde_json::to_value(body).map_err(|e| Problem::internal(&e))
}

/// Set by orders on the answer to a placement that an earlier request with the same key made.
pub(crate) const REPLAYED: header::HeaderName = header::HeaderName::from_static("idempotent-replayed");

impl Gateway {
    /// Calls a service with the gateway's call timeout.
    pub(crate) async fn call(
        &self,
        service: &Arc<dyn ServiceClient>,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(header::HeaderName, String)],
    ) -> ApiResult<Reply> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        call(service, method, path, body, headers, self.config.call_timeout)
            .await
            .map_err(|e| unavailable(&e))
    }

    pub(crate) async fn forward(
        &self,
        service: &Arc<dyn ServiceClient>,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(header::HeaderName, String)],
    ) -> ApiResult<Response> {
        self.call(service, method, path, body, headers).await.map(pass_on)
    }

    /// A product read (`/products/{sku}` or a list), from the catalogue cache when the
    /// gateway has one.
    pub(crate) async fn catalogue_read(
        &self,
        path: String,
        key: CacheKey,
        timeout: std::time::Duration,
    ) -> Result<Reply, ClientError> {
        let Some(catalogue) = &self.catalogue else {
            return call(&self.services.inventory, Method::GET, &path, None, &[], timeout).await;
        };
        let inventory = self.services.inventory.clone();
        let load = move || async move {
            call(&inventory, Method::GET, &path, None, &[], timeout)
                .await
                .map(|r| CachedReply::from_reply(&r))
        };
        // The load has the deadline; this one only bounds the wait for the cache itself.
        let wait = timeout + 2 * BACKEND_DEADLINE;
        match tokio::time::timeout(wait, catalogue.get(&key, load)).await {
            Ok(answer) => answer.map(CachedReply::into_reply),
            Err(_) => Err(ClientError::Timeout { service: "inventory", timeout }),
        }
    }
}
