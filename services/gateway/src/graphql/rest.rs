//! How resolvers answer: by calling the gateway's own REST routes in process, with the
//! caller's token, and reading their answers back.

use std::sync::Arc;

use async_graphql::{Context, ErrorExtensions};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;
use tower::ServiceExt;

use crate::limits::Limiter;

/// What a resolver needs: the REST routes (without the edge layers, which the GraphQL request
/// already passed) and the caller's Authorization header.
pub(crate) struct Rest {
    pub(crate) routes: Router,
    pub(crate) authorization: Option<String>,
    pub(crate) budget: Budget,
}

/// The caller's rate limit, which every resolver's call draws on: one query's fields can fan
/// out into many REST calls, and each counts as the request it would have been.
pub(crate) struct Budget {
    pub(crate) limiter: Arc<Limiter>,
    pub(crate) subject: Option<String>,
    pub(crate) address: String,
}

impl Rest {
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, String)],
    ) -> async_graphql::Result<(StatusCode, Value)> {
        let budget = &self.budget;
        if let Err(seconds) = budget.limiter.check(budget.subject.as_deref(), &budget.address) {
            metrics::counter!("tessera_gateway_graphql_calls_limited_total").increment(1);
            return Err(async_graphql::Error::new("too many requests; slow down").extend_with(|_, e| {
                e.set("code", "rate_limited");
                e.set("status", 429);
                e.set("retry_after", seconds);
            }));
        }
        let mut request = Request::builder().method(method).uri(path);
        if let Some(authorization) = &self.authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))?;
        let response = self.routes.clone().oneshot(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// The answer as `T`; `None` for 404; a GraphQL error with the problem's code otherwise.
    pub(crate) async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
    ) -> async_graphql::Result<Option<T>> {
        let (status, body) = self.call(Method::GET, path, None, &[]).await?;
        decode(status, body)
    }
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(
    status: StatusCode,
    body: Value,
) -> async_graphql::Result<Option<T>> {
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        let detail = body["detail"].as_str().unwrap_or("refused").to_owned();
        let code = body["code"].as_str().unwrap_or("error").to_owned();
        return Err(async_graphql::Error::new(detail).extend_with(|_, e| {
            e.set("code", code.clone());
            e.set("status", status.as_u16());
        }));
    }
    serde_json::from_value(body).map(Some).map_err(|e| async_graphql::Error::new(e.to_string()))
}

pub(crate) fn rest<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a Rest> {
    ctx.data::<Rest>()
}

pub(crate) fn encode(segment: &str) -> String {
    // Ids and skus are checked again by the routes; this only keeps them one path segment.
    segment.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

pub(crate) fn page_query(pairs: &[(&str, Option<String>)]) -> String {
    let pairs: Vec<(&str, String)> = pairs.iter().filter_map(|(k, v)| v.clone().map(|v| (*k, v))).collect();
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}
