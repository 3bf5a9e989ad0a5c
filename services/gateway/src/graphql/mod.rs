//! GraphQL at `/graphql`, over the same routes and the same rules: every resolver, nested ones
//! included, calls the gateway's own REST routes in process with the caller's token, so roles,
//! ownership, masking and idempotency are decided in one place. Abusive queries are refused
//! before anything runs: depth, complexity and alias limits; every operation of a batch counts
//! against the caller's rate limit; introspection is off unless configured.

use std::net::SocketAddr;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{EmptySubscription, Schema};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tessera_web::Problem;

use crate::client_address::{address_key, client_address};
use crate::state::Gateway;

/// Deepest nesting a query may have.
pub const MAX_DEPTH: usize = 8;
/// Most work a query may ask for (fields, lists weighted by their size).
pub const MAX_COMPLEXITY: usize = 500;
/// Most aliased fields in one operation (aliases multiply work without deepening a query).
pub const MAX_ALIASES: usize = 16;
/// Most operations in one batch.
pub const MAX_BATCH: usize = 10;

mod operations;
mod rest;
mod types;

pub use operations::{Mutation, Query};
use rest::{Budget, Rest};

pub type ShopSchema = Schema<Query, Mutation, EmptySubscription>;
/// The schema, with its limits.
pub fn schema(introspection: bool) -> ShopSchema {
    let builder = Schema::build(Query, Mutation, EmptySubscription)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(32);
    let builder = if introspection { builder } else { builder.disable_introspection() };
    builder.finish()
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + count_aliases(&field.node.selection_set.node)
            }
            Selection::FragmentSpread(_) => 0,
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set.node),
        })
        .sum()
}

fn aliases(document: &ExecutableDocument) -> usize {
    let operations: usize = document
        .operations
        .iter()
        .map(|(_, operation)| count_aliases(&operation.node.selection_set.node))
        .sum();
    let fragments: usize =
        document.fragments.values().map(|f| count_aliases(&f.node.selection_set.node)).sum();
    operations + fragments
}

fn too_many(detail: String) -> Response {
    Problem::new(StatusCode::BAD_REQUEST, "query_too_complex", detail).into_response()
}

/// What `/graphql` runs with: the gateway, its REST routes without the edge layers, the schema.
#[derive(Clone)]
pub(crate) struct GraphqlState {
    pub gateway: Gateway,
    pub rest: Router,
    pub schema: ShopSchema,
}

/// `GET /graphql/schema.graphql`: the schema in GraphQL SDL, for any signed-in caller. With
/// introspection off (the default) this is how a client developer or a code generator reads
/// the types; it says nothing a caller could not learn by trying queries.
#[utoipa::path(get, path = "/graphql/schema.graphql", tag = "graphql",
    responses((status = 200, description = "The schema in GraphQL SDL", content_type = "text/plain", body = String)))]
pub(crate) async fn schema_sdl(
    State(state): State<GraphqlState>,
    request: axum::extract::Request,
) -> Response {
    use axum::extract::FromRequestParts;
    let (mut parts, _) = request.into_parts();
    if let Err(refused) = crate::access::Caller::from_request_parts(&mut parts, &state.gateway).await {
        return refused.into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], state.schema.sdl()).into_response()
}

/// `POST /graphql`: one operation or a batch (a JSON array).
/// GraphQL over the same services and rules; introspection only when configured.
#[utoipa::path(post, path = "/graphql", tag = "graphql",
    request_body(content = Object, description = "`{query, variables?, operationName?}` or a batch of them"),
    responses((status = 200, description = "`{data, errors?}`", body = Object),
        (status = 422, description = "no `query` in a request", body = Problem)))]
pub(crate) async fn serve(State(state): State<GraphqlState>, request: axum::extract::Request) -> Response {
    let gateway = &state.gateway;
    let connection = request.extensions().get::<ConnectInfo<SocketAddr>>().copied();
    let headers: HeaderMap = request.headers().clone();
    if !tessera_web::is_json(headers.get(header::CONTENT_TYPE)) {
        return Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as application/json",
        )
        .into_response();
    }
    let body: Bytes = match axum::body::to_bytes(request.into_body(), tessera_web::BODY_LIMIT_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is over 1 MiB",
            )
            .into_response();
        }
    };
    let value: Value = match tessera_web::parse_json(&body) {
        Ok(value) => value,
        Err(problem) => return problem.into_response(),
    };
    // async-graphql would take a bare string for a document; GraphQL over HTTP sends objects.
    let operations = match &value {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    if operations.iter().any(|o| !o.is_object()) {
        return Problem::invalid_field("query", "send {\"query\": …} or an array of them").into_response();
    }
    let batch: async_graphql::BatchRequest = match serde_json::from_value(value) {
        Ok(batch) => batch,
        Err(error) => return Problem::invalid_field("query", error.to_string()).into_response(),
    };
    let requests: Vec<async_graphql::Request> = match batch {
        async_graphql::BatchRequest::Single(request) => vec![request],
        async_graphql::BatchRequest::Batch(requests) => requests,
    };
    if requests.is_empty() || requests.len() > MAX_BATCH {
        return too_many(format!("a batch holds 1 to {MAX_BATCH} operations"));
    }
    // A request without a document is malformed, not a query that fails (GraphQL over HTTP).
    if requests.iter().any(|request| request.query.trim().is_empty()) {
        return Problem::invalid_field("query", "give the operation as a GraphQL document").into_response();
    }
    for request in &requests {
        match async_graphql::parser::parse_query(&request.query) {
            Ok(document) if aliases(&document) > MAX_ALIASES => {
                return too_many(format!("at most {MAX_ALIASES} aliased fields per operation"));
            }
            _ => {}
        }
    }
    // The edge counted this request once; each further operation of a batch counts too.
    let address =
        address_key(client_address(connection.map(|c| c.0.ip()), &headers, &gateway.config.trusted_proxies));
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let subject = authorization
        .as_deref()
        .and_then(tessera_web::token::bearer_token)
        .and_then(|t| {
            let now = tessera_kernel::Timestamp::from_system_time(std::time::SystemTime::now());
            gateway.keys.verify(t, now).ok()
        })
        .map(|claims| claims.sub);
    for _ in 1..requests.len() {
        if let Err(seconds) = gateway.limiter.check(subject.as_deref(), &address) {
            let mut response =
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many operations; slow down")
                    .into_response();
            if let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
    }
    let single = requests.len() == 1;
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        let request = request.data(Rest {
            routes: state.rest.clone(),
            authorization: authorization.clone(),
            budget: Budget {
                limiter: gateway.limiter.clone(),
                subject: subject.clone(),
                address: address.clone(),
            },
        });
        answers.push(state.schema.execute(request).await);
    }
    let body = if single { serde_json::to_value(&answers[0]) } else { serde_json::to_value(&answers) };
    axum::Json(body.unwrap_or(Value::Null)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_counted_in_operations_and_fragments() {
        let document = async_graphql::parser::parse_query(
            "query { a: product(sku: \"A\") { name } b: product(sku: \"B\") { n: name } ...F } fragment F on Query { c: product(sku: \"C\") { name } }",
        )
        .expect("parses");
        assert_eq!(aliases(&document), 4);
    }
}
