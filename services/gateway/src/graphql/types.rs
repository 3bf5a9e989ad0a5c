//! The GraphQL object types: the REST answers as the schema shows them.

use async_graphql::{ComplexObject, Context, InputObject, SimpleObject};
use serde::Deserialize;

use super::rest::{encode, page_query, rest};

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
