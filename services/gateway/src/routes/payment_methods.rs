//! Payment methods (cards, tokenised by payments) and the payments made for an order.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use tessera_contracts::requests::NewCard;
use tessera_web::ApiResult;

use crate::access::{Caller, require};
use crate::auth::Role;
use crate::forward::{json_body, to_json};
use crate::ownership::own_customer;
use crate::state::Gateway;

pub(super) fn router() -> Router<Gateway> {
    Router::new().route("/payment-methods", post(add_payment_method)).route("/payments", get(list_payments))
}

async fn add_payment_method(
    State(g): State<Gateway>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Customer])?;
    let mut card: NewCard = json_body(&headers, body)?;
    card.customer_id = Some(own_customer(&caller, card.customer_id)?);
    g.forward(&g.services.payments, Method::POST, "/payment-methods", Some(to_json(&card)?), &[]).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentsQuery {
    order_id: uuid::Uuid,
}

async fn list_payments(
    State(g): State<Gateway>,
    caller: Caller,
    tessera_web::Query(query): tessera_web::Query<PaymentsQuery>,
) -> ApiResult<Response> {
    let order_id = query.order_id;
    g.order_owner(&caller, order_id).await?;
    g.forward(&g.services.payments, Method::GET, &format!("/payments?order_id={order_id}"), None, &[]).await
}
