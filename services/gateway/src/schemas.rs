//! The bodies only the gateway answers with, described for the OpenAPI document.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `POST /auth/token`'s answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenAnswer {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Jwk {
    pub kty: String,
    pub crv: String,
    pub alg: String,
    #[serde(rename = "use")]
    #[schema(rename = "use")]
    pub usage: String,
    pub kid: String,
    pub x: String,
}

/// The public keys that verify tokens now (the current one and those retiring).
#[derive(Serialize, ToSchema)]
pub(crate) struct Jwks {
    pub keys: Vec<Jwk>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ComposedCustomer {
    pub id: String,
    /// `[erased]` after an erasure; null when customers did not answer in time.
    pub name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ComposedPayment {
    /// Null when payments did not answer in time or nothing was authorised yet.
    pub status: Option<String>,
    pub last4: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ComposedItem {
    pub sku: String,
    /// Null when inventory did not answer in time.
    pub name: Option<String>,
    pub quantity: u32,
    #[schema(value_type = Object)]
    pub unit_price: Value,
}

/// One order as the gateway composes it from orders, customers, payments and inventory.
#[derive(Serialize, ToSchema)]
pub(crate) struct ComposedOrder {
    pub id: String,
    pub status: String,
    pub customer: ComposedCustomer,
    pub items: Vec<ComposedItem>,
    #[schema(value_type = Object)]
    pub total: Value,
    pub payment: ComposedPayment,
    pub created_at: String,
    pub updated_at: String,
    /// Why it was rejected or cancelled.
    #[schema(nullable = false)]
    pub reason: Option<String>,
    /// The services that did not answer in time; their parts are null.
    pub degraded: Vec<String>,
}

/// Everything every service holds about one person.
#[derive(Serialize, ToSchema)]
pub(crate) struct Export {
    #[schema(value_type = Object)]
    pub customer: Value,
    #[schema(value_type = Vec<Object>)]
    pub orders: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub payments: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub tickets: Vec<Value>,
    /// Who read or changed the person's data, from every service's audit trail, oldest first:
    /// `{service, index, at, actor, role, action, resource, outcome}`.
    #[schema(value_type = Vec<Object>)]
    pub accesses: Vec<Value>,
}
