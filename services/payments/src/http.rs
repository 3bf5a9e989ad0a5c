//! Payments' HTTP routes: tokenising a card, reading a payment method, and the payments of an
//! order. The card number and CVC live only in the request being handled: they are parsed
//! into a type without `Debug` output and dropped after validation.
//!
//! The acting customer comes in the body, filled in by the gateway from the caller's token;
//! each route applies the shared access rules (`tessera_web::access`) to the token it is
//! shown, so a customer tokenises cards for themself and reads only their own cards and
//! payments.

// utoipa's path macro writes fully qualified paths into the code it generates.
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tessera_contracts::Money;
use tessera_contracts::requests::NewCard;
use tessera_web::access::{Access, CUSTOMER};
use tessera_web::token::Actor;
use tessera_web::{ApiResult, Json, Path, Problem, Query, store_problem};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::{AppError, Payment, PaymentMethod, Payments};

pub fn router() -> OpenApiRouter<Payments> {
    OpenApiRouter::new()
        .routes(routes!(tokenise_card))
        .routes(routes!(get_payment_method))
        .routes(routes!(list_payments))
}

impl From<AppError> for Problem {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Card(card) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, card.code(), card.to_string())
                    .with_errors(vec![tessera_web::FieldError::new(card.field(), card.to_string())])
            }
            AppError::Store(error) => store_problem(&error),
        }
    }
}

/// A stored payment method as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentMethodView {
    pub token: String,
    pub customer_id: Uuid,
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
}

impl From<PaymentMethod> for PaymentMethodView {
    fn from(m: PaymentMethod) -> Self {
        Self {
            token: m.token,
            customer_id: m.customer_id,
            brand: m.brand,
            last4: m.last4,
            exp_month: m.exp_month,
            exp_year: m.exp_year,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    pub order_id: Uuid,
    /// authorising, authorised, declined, voided, captured or refunded.
    pub status: String,
    pub amount: Money,
    pub last4: String,
    pub reason: Option<String>,
}

impl From<Payment> for PaymentView {
    fn from(p: Payment) -> Self {
        Self {
            id: p.id,
            order_id: p.order_id,
            status: p.status,
            amount: p.amount,
            last4: p.last4,
            reason: p.reason,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PaymentsQuery {
    pub order_id: Uuid,
}

/// Exchange a card for a token bound to the customer; Luhn-invalid or expired cards → 422.
#[utoipa::path(post, path = "/payment-methods", tag = "payments", request_body = NewCard,
    responses((status = 201, body = PaymentMethodView), (status = 422, body = Problem)))]
async fn tokenise_card(
    State(payments): State<Payments>,
    actor: Actor,
    access: Access,
    Json(card): Json<NewCard>,
) -> ApiResult<(StatusCode, Json<PaymentMethodView>)> {
    access.require(&[CUSTOMER])?;
    let customer_id = card
        .customer_id
        .ok_or_else(|| Problem::invalid_field("customer_id", "missing field `customer_id`"))?;
    access.act_for(&customer_id.to_string())?;
    let method = payments
        .tokenise(customer_id, &card.card_number, card.exp_month, card.exp_year, &card.cvc, &actor)
        .await?;
    Ok((StatusCode::CREATED, Json(method.into())))
}

/// A payment method by its token (the gateway checks a token's owner before an order uses it).
#[utoipa::path(get, path = "/payment-methods/{token}", tag = "payments",
    params(("token" = String, Path, description = "the token")),
    responses((status = 200, body = PaymentMethodView), (status = 404, body = Problem)))]
async fn get_payment_method(
    State(payments): State<Payments>,
    actor: Actor,
    access: Access,
    Path(token): Path<String>,
) -> ApiResult<Json<PaymentMethodView>> {
    let method =
        payments.payment_method(&token).await?.ok_or_else(|| Problem::not_found("no such payment method"))?;
    access.see(&method.customer_id.to_string(), "payment method")?;
    payments.audit_read("payment_method.read", format!("payment_method/{token}"), &actor).await;
    Ok(Json(method.into()))
}

/// The payments of an order (at most one per order).
#[utoipa::path(get, path = "/payments", tag = "payments", params(PaymentsQuery),
    responses((status = 200, body = Vec<PaymentView>), (status = 422, body = Problem)))]
async fn list_payments(
    State(payments): State<Payments>,
    actor: Actor,
    access: Access,
    Query(query): Query<PaymentsQuery>,
) -> ApiResult<Json<Vec<PaymentView>>> {
    let payment = payments.payment(query.order_id).await.map_err(|e| Problem::internal(&e))?;
    // Another customer's order has no payments, as far as this caller learns.
    let payment = payment.filter(|p| access.may_see(&p.customer_id.to_string()));
    if payment.is_some() {
        payments.audit_read("payment.read", format!("order/{}/payment", query.order_id), &actor).await;
    }
    Ok(Json(payment.into_iter().map(PaymentView::from).collect()))
}
