//! The queries and mutations, each one REST call.

use async_graphql::{Context, Object};
use axum::http::Method;
use serde_json::{Value, json};

use super::rest::{decode, encode, page_query, rest};
use super::types::{Accepted, Customer, LineInput, Order, OrderPage, Product, ProductPage, Ticket};

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
