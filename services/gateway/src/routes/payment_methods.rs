//! Payment methods (cards, tokenised by payments) and the payments made for an order.

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;
use tessera_web::{ApiResult, Json};

use crate::access::{Caller, require};
use crate::auth::Role;
use crate::ownership::{object, own_customer_id};
use crate::state::Gateway;

pub(super) fn router() -> Router<Gateway> {
    Router::new().route("/payment-methods", post(add_payment_method)).route("/payments", get(list_payments))
}

async fn add_payment_method(
    State(g): State<Gateway>,
    caller: Caller,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Customer])?;
    let mut body = object(body)?;
    own_customer_id(&caller, &mut body)?;
    g.forward(&g.services.payments, Method::POST, "/payment-methods", Some(Value::Object(body)), &[]).await
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
