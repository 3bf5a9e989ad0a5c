//! GraphQL at `/graphql`, over the same routes and the same rules: every resolver, nested ones
//! included, calls the gateway's own REST routes in process with the caller's token, so roles,
//! ownership, masking and idempotency are decided in one place. Abusive queries are refused
//! before anything runs: depth, complexity and alias limits; every operation of a batch counts
//! against the caller's rate limit; introspection is off unless configured.

use std::net::SocketAddr;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{
    ComplexObject, Context, EmptySubscription, ErrorExtensions, InputObject, Object, Schema, SimpleObject,
};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_web::Problem;
use tower::ServiceExt;

use crate::Gateway;

/// Deepest nesting a query may have.
pub const MAX_DEPTH: usize = 8;
/// Most work a query may ask for (fields, lists weighted by their size).
pub const MAX_COMPLEXITY: usize = 500;
/// Most aliased fields in one operation (aliases multiply work without deepening a query).
pub const MAX_ALIASES: usize = 16;
/// Most operations in one batch.
pub const MAX_BATCH: usize = 10;

pub type ShopSchema = Schema<Query, Mutation, EmptySubscription>;

/// What a resolver needs: the REST routes (without the edge layers, which the GraphQL request
/// already passed) and the caller's Authorization header.
struct Rest {
    routes: Router,
    authorization: Option<String>,
}

impl Rest {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, String)],
    ) -> async_graphql::Result<(StatusCode, Value)> {
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
    async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> async_graphql::Result<Option<T>> {
        let (status, body) = self.call(Method::GET, path, None, &[]).await?;
        decode(status, body)
    }
}

fn decode<T: for<'de> Deserialize<'de>>(status: StatusCode, body: Value) -> async_graphql::Result<Option<T>> {
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

fn rest<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a Rest> {
    ctx.data::<Rest>()
}

fn encode(segment: &str) -> String {
    // Ids and skus are checked again by the routes; this only keeps them one path segment.
    segment.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

#[derive(Clone, Debug, Deserialize, SimpleObject)]
pub struct Money {
    pub amount: i64,
    pub currency: String,
}

#[derive(Clone, Debug, Deserialize, SimpleObject)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub description: Option<String>,
    pub price: Money,
    pub available: i64,
}

#[derive(Clone, Debug, Deserialize, SimpleObject)]
pub struct ProductPage {
    pub items: Vec<Product>,
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, Deserialize, SimpleObject)]
pub struct Address {
    pub line1: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(Clone, Debug, Deserialize, SimpleObject)]
#[graphql(complex)]
pub struct Customer {
    pub id: String,
    pub email: String,
    pub name: String,
    pub address: Address,
}

#[ComplexObject]
impl Customer {
    /// The customer's orders (the same rules as `GET /orders?customer_id=`).
    #[graphql(complexity = "(limit.unwrap_or(50).clamp(1, 200) as usize) * child_complexity")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        limit: Option<i32>,
    ) -> async_graphql::Result<Option<OrderPage>> {
        let query =
            page_query(&[("customer_id", Some(self.id.clone())), ("limit", limit.map(|l| l.to_string()))]);
        rest(ctx)?.get(&format!("/api/v1/orders?{query}")).await
    }
}

#[derive(Clone, Debug, Deserialize, SimpleObject)]
pub struct OrderItem {
    pub sku: String,
    pub name: Option<String>,
    pub quantity: i64,
    pub unit_price: Option<Money>,
}

#[derive(Clone, Debug, Deserialize, SimpleObject)]
pub struct PaymentInfo {
    pub status: Option<String>,
    pub last4: Option<String>,
}

#[derive(Clone, Debug, Deserialize, SimpleObject)]
#[graphql(complex)]
pub struct CustomerRef {
    pub id: String,
    pub name: Option<String>,
}

#[ComplexObject]
impl CustomerRef {
    /// The customer's profile, if the caller may read it.
    async fn profile(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Customer>> {
        rest(ctx)?.get(&format!("/api/v1/customers/{}", encode(&self.id))).await
    }
}

#[derive(Clone, Debug, Deserialize, SimpleObject)]
pub struct Order {
    pub id: String,
    pub status: String,
    pub reason: Option<String>,
    pub customer: CustomerRef,
    pub items: Vec<OrderItem>,
    pub total: Option<Money>,
    pub payment: PaymentInfo,
    pub created_at: String,
    pub updated_at: String,
    /// The parts whose service did not answer in time.
    pub degraded: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, SimpleObject)]
#[graphql(complex)]
pub struct OrderSummary {
    pub id: String,
    pub customer_id: String,
    pub status: String,
    pub reason: Option<String>,
    pub total: Option<i64>,
    pub item_count: i64,
}

#[ComplexObject]
impl OrderSummary {
    /// The whole order, composed.
    #[graphql(complexity = "10 + child_complexity")]
    async fn order(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Order>> {
        rest(ctx)?.get(&format!("/api/v1/orders/{}", encode(&self.id))).await
    }
}

#[derive(Clone, Debug, Deserialize, SimpleObject)]
pub struct OrderPage {
    pub items: Vec<OrderSummary>,
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, Deserialize, SimpleObject)]
pub struct TicketMessage {
    pub id: String,
    pub author: String,
    pub message: String,
    pub at: String,
}

#[derive(Clone, Debug, Deserialize, SimpleObject)]
pub struct Ticket {
    pub id: String,
    pub customer_id: String,
    pub order_id: Option<String>,
    pub subject: String,
    pub status: String,
    pub messages: Option<Vec<TicketMessage>>,
}

#[derive(Clone, Debug, Deserialize, SimpleObject)]
pub struct Accepted {
    pub id: String,
    pub status: String,
}

#[derive(Clone, Debug, InputObject)]
pub struct LineInput {
    pub sku: String,
    pub quantity: i64,
}

fn page_query(pairs: &[(&str, Option<String>)]) -> String {
    let pairs: Vec<(&str, String)> = pairs.iter().filter_map(|(k, v)| v.clone().map(|v| (*k, v))).collect();
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

#[derive(Debug)]
pub struct Query;

#[Object]
impl Query {
    async fn product(&self, ctx: &Context<'_>, sku: String) -> async_graphql::Result<Option<Product>> {
        rest(ctx)?.get(&format!("/api/v1/products/{}", encode(&sku))).await
    }

    #[graphql(complexity = "(limit.unwrap_or(50).clamp(1, 200) as usize) * child_complexity")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        limit: Option<i32>,
        cursor: Option<String>,
    ) -> async_graphql::Result<Option<ProductPage>> {
        let query = page_query(&[("limit", limit.map(|l| l.to_string())), ("cursor", cursor)]);
        rest(ctx)?.get(&format!("/api/v1/products?{query}")).await
    }

    #[graphql(complexity = "10 + child_complexity")]
    async fn order(&self, ctx: &Context<'_>, id: String) -> async_graphql::Result<Option<Order>> {
        rest(ctx)?.get(&format!("/api/v1/orders/{}", encode(&id))).await
    }

    #[graphql(complexity = "(limit.unwrap_or(50).clamp(1, 200) as usize) * child_complexity")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        customer_id: Option<String>,
        status: Option<String>,
        limit: Option<i32>,
        cursor: Option<String>,
    ) -> async_graphql::Result<Option<OrderPage>> {
        let query = page_query(&[
            ("customer_id", customer_id),
            ("status", status),
            ("limit", limit.map(|l| l.to_string())),
            ("cursor", cursor),
        ]);
        rest(ctx)?.get(&format!("/api/v1/orders?{query}")).await
    }

    async fn customer(&self, ctx: &Context<'_>, id: String) -> async_graphql::Result<Option<Customer>> {
        rest(ctx)?.get(&format!("/api/v1/customers/{}", encode(&id))).await
    }

    async fn ticket(&self, ctx: &Context<'_>, id: String) -> async_graphql::Result<Option<Ticket>> {
        rest(ctx)?.get(&format!("/api/v1/tickets/{}", encode(&id))).await
    }
}

#[derive(Debug)]
pub struct Mutation;

#[Object]
impl Mutation {
    /// Places an order; `idempotencyKey` plays the role of the `Idempotency-Key` header.
    async fn place_order(
        &self,
        ctx: &Context<'_>,
        items: Vec<LineInput>,
        payment_token: String,
        idempotency_key: String,
    ) -> async_graphql::Result<Option<Accepted>> {
        let items: Vec<Value> = items.iter().map(|l| json!({"sku": l.sku, "quantity": l.quantity})).collect();
        let body = json!({"items": items, "payment_token": payment_token});
        let (status, answer) = rest(ctx)?
            .call(Method::POST, "/api/v1/orders", Some(body), &[("idempotency-key", idempotency_key)])
            .await?;
        decode(status, answer)
    }

    async fn cancel_order(&self, ctx: &Context<'_>, id: String) -> async_graphql::Result<Option<Accepted>> {
        let (status, answer) = rest(ctx)?
            .call(Method::POST, &format!("/api/v1/orders/{}/cancel", encode(&id)), None, &[])
            .await?;
        decode(status, answer)
    }
}

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

/// `POST /graphql`: one operation or a batch (a JSON array).
/// GraphQL over the same services and rules; introspection only when configured.
#[utoipa::path(post, path = "/graphql", tag = "graphql",
    request_body(content = Object, description = "`{query, variables?, operationName?}` or a batch of them"),
    responses((status = 200, description = "`{data, errors?}`", body = Object)))]
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
    let batch: async_graphql::BatchRequest = match tessera_web::parse_json(&body) {
        Ok(batch) => batch,
        Err(problem) => return problem.into_response(),
    };
    let requests: Vec<async_graphql::Request> = match batch {
        async_graphql::BatchRequest::Single(request) => vec![request],
        async_graphql::BatchRequest::Batch(requests) => requests,
    };
    if requests.is_empty() || requests.len() > MAX_BATCH {
        return too_many(format!("a batch holds 1 to {MAX_BATCH} operations"));
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
    let address = connection.map_or_else(|| "local".to_owned(), |c| c.0.ip().to_string());
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let subject = authorization
        .as_deref()
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|t| {
            let now = tessera_kernel::Timestamp::from_system_time(std::time::SystemTime::now());
            gateway.keys.verify(t.trim(), now).ok()
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
        let request = request.data(Rest { routes: state.rest.clone(), authorization: authorization.clone() });
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
