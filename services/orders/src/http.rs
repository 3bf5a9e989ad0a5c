//! Orders' HTTP routes: place, read, list, cancel, and an order's history. Placing answers 202
//! at once: the saga decides the outcome, which a client reads back.
//!
//! The acting customer comes in the body, filled in by the gateway from the caller's token, and
//! each route applies the shared access rules to the token it is shown (`tessera_web::access`):
//! a customer places, reads, lists and cancels only their own orders, and the sales analytics
//! and the operators' saga search (`sagas`) are for admins. Checks that need other services
//! (the sku exists, the payment token belongs to the customer) are the gateway's, before it
//! calls here.

// utoipa's path macro writes fully qualified paths into the code it generates.
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use tessera_contracts::Money;
use tessera_contracts::orders::MAX_ORDER_LINES as MAX_LINES;
use tessera_contracts::requests::NewOrder;
use tessera_web::access::{ADMIN, Access, CUSTOMER};
use tessera_web::token::Actor;
use tessera_web::{ApiResult, ETag, FieldError, Json, Path, Problem, Query, page_limit, store_problem};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::{AppError, OrderRecord, Orders, RequestKey};
use crate::domain::{OrderError, OrderStatus};

mod sagas;

pub use sagas::{SagaList, SagaPageView, SagaQuery, SagaStepView, SagaView};

const MAX_TOKEN: usize = 100;

pub fn router() -> OpenApiRouter<Orders> {
    OpenApiRouter::new()
        .routes(routes!(list_orders, place_order))
        .routes(routes!(get_order))
        .routes(routes!(cancel_order))
        .routes(routes!(order_history))
        .routes(routes!(sales_analytics))
        .routes(routes!(placed_by_key))
        .merge(sagas::router())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RequestKeyQuery {
    pub customer_id: Uuid,
    pub request_key: String,
}

/// The order a customer's idempotency key placed, while the key is live: the gateway asks
/// when a retried placement fails its checks (a product or a card gone since, a service down),
/// so that the retry still answers with its order.
#[utoipa::path(get, path = "/order-requests", tag = "orders", params(RequestKeyQuery),
    responses((status = 200, body = Accepted), (status = 404, body = Problem)))]
async fn placed_by_key(
    State(orders): State<Orders>,
    access: Access,
    Query(query): Query<RequestKeyQuery>,
) -> ApiResult<Json<Accepted>> {
    access.see(&query.customer_id.to_string(), "order")?;
    let placed = orders.placed_by_key(query.customer_id, &query.request_key).await?;
    let id = placed.ok_or_else(|| Problem::not_found("no order placed with this key"))?;
    Ok(Json(Accepted { id, status: "pending".into() }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SalesQuery {
    /// First day, `YYYY-MM-DD` (default: the beginning).
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (default: today).
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub to: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SalesReport {
    pub items: Vec<crate::SalesRow>,
}

fn day(value: Option<&str>, field: &str, default: &str) -> Result<String, Problem> {
    let Some(value) = value else { return Ok(default.to_owned()) };
    let b = value.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if shaped {
        Ok(value.to_owned())
    } else {
        Err(Problem::invalid_field(field, "must be a day, YYYY-MM-DD"))
    }
}

/// Sales per day, product and market, with buyers and orders only as pseudonyms.
#[utoipa::path(get, path = "/analytics/sales", tag = "orders", params(SalesQuery),
    responses((status = 200, body = SalesReport), (status = 422, body = Problem)))]
async fn sales_analytics(
    State(orders): State<Orders>,
    access: Access,
    Query(query): Query<SalesQuery>,
) -> ApiResult<Json<SalesReport>> {
    access.require(&[ADMIN])?;
    let from = day(query.from.as_deref(), "from", "0000-01-01")?;
    let to = day(query.to.as_deref(), "to", "9999-12-31")?;
    let items =
        crate::app::analytics::sales(orders.store(), &from, &to).await.map_err(|e| store_problem(&e))?;
    Ok(Json(SalesReport { items }))
}

impl From<AppError> for Problem {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Order(OrderError::NotCancellable(OrderStatus::Cancelled | OrderStatus::Cancelling)) => {
                Problem::conflict("already_cancelled", "the order is cancelled or being cancelled already")
            }
            AppError::Order(error @ OrderError::NotCancellable(_)) => {
                Problem::conflict(error.code(), format!("{error}; only a confirmed order can be cancelled"))
            }
            AppError::Order(OrderError::NotPlaced) => Problem::not_found("no such order"),
            AppError::Order(error) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, error.code(), error.to_string())
            }
            AppError::Store(error) => store_problem(&error),
            AppError::Saga(error) => Problem::internal(&error),
            AppError::Reaction(error) => Problem::internal(&error),
            AppError::RequestKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used with another request body",
            ),
            AppError::Internal(error) => Problem::internal(&error),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub id: Uuid,
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderItem {
    pub sku: String,
    pub quantity: u32,
    /// Known once stock is reserved.
    pub name: Option<String>,
    pub unit_price: Option<Money>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPayment {
    pub id: Option<Uuid>,
    pub last4: Option<String>,
}

/// An order as its service holds it; the gateway composes names and payment status around it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    /// pending, confirmed, rejected or cancelled.
    pub status: String,
    /// out_of_stock, payment_declined, payment_timeout or inventory_timeout when rejected.
    pub reason: Option<String>,
    pub customer_id: Uuid,
    pub items: Vec<OrderItem>,
    pub total: Option<Money>,
    pub payment: OrderPayment,
    /// True while a cancellation's refund and restock are under way.
    pub cancelling: bool,
    pub created_at: String,
    pub updated_at: String,
}

fn reason_text(record: &OrderRecord) -> Option<String> {
    let reason = record.order.reason?;
    serde_json::to_value(reason).ok().and_then(|v| v.as_str().map(str::to_owned))
}

impl From<&OrderRecord> for OrderView {
    fn from(record: &OrderRecord) -> Self {
        let order = &record.order;
        let items = if order.priced.is_empty() {
            order
                .lines
                .iter()
                .map(|l| OrderItem {
                    sku: l.sku.to_string(),
                    quantity: l.quantity.get(),
                    name: None,
                    unit_price: None,
                })
                .collect()
        } else {
            order
                .priced
                .iter()
                .map(|l| OrderItem {
                    sku: l.sku.to_string(),
                    quantity: l.quantity.get(),
                    name: Some(l.name.clone()),
                    unit_price: Some(l.unit_price.clone()),
                })
                .collect()
        };
        Self {
            id: order.id.unwrap_or_default(),
            status: order.status.public().to_owned(),
            reason: reason_text(record),
            customer_id: order.customer_id.unwrap_or_default(),
            items,
            total: order.total.clone(),
            payment: OrderPayment { id: order.payment_id, last4: order.last4.clone() },
            cancelling: order.status == OrderStatus::Cancelling,
            created_at: record.created_at.to_rfc3339(),
            updated_at: record.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryView {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub status: String,
    pub reason: Option<String>,
    /// In minor units of the order's currency, once known.
    pub total: Option<i64>,
    pub item_count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SummaryPage {
    pub items: Vec<SummaryView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub customer_id: Option<Uuid>,
    /// pending, confirmed, rejected or cancelled.
    #[param(pattern = "^(pending|confirmed|rejected|cancelled)$")]
    pub status: Option<String>,
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEvent {
    /// 1 for the first event of the order.
    pub version: u64,
    pub name: String,
    pub at: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistorySaga {
    pub saga: String,
    /// running, completed, compensating, compensated or failed.
    #[schema(value_type = String)]
    pub status: serde_json::Value,
    pub step: usize,
    pub reason: Option<String>,
    pub stuck: Option<String>,
    pub started_at: String,
    pub updated_at: String,
    /// Its steps and compensations in the order they started, each with its duration.
    pub steps: Vec<SagaStepView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    pub id: Uuid,
    pub events: Vec<HistoryEvent>,
    pub sagas: Vec<HistorySaga>,
}

fn order_id(text: &str) -> ApiResult<Uuid> {
    // A malformed id names no order: the same answer as an unknown one.
    text.parse().map_err(|_| Problem::not_found("no such order"))
}

/// The order `id`, if the caller may see it; 404 as for an unknown order otherwise.
async fn visible_order(orders: &Orders, access: &Access, id: Uuid) -> ApiResult<OrderRecord> {
    let record = orders.record(id).await?.ok_or_else(|| Problem::not_found("no such order"))?;
    let owner = record.order.customer_id.map(|id| id.to_string()).unwrap_or_default();
    access.see(&owner, "order")?;
    Ok(record)
}

/// Place an order; the answer comes before the outcome (202).
#[utoipa::path(post, path = "/orders", tag = "orders", request_body = NewOrder,
    responses((status = 202, body = Accepted), (status = 422, body = Problem)))]
async fn place_order(
    State(orders): State<Orders>,
    actor: Actor,
    access: Access,
    Json(body): Json<NewOrder>,
) -> ApiResult<impl IntoResponse> {
    access.require(&[CUSTOMER])?;
    if let Some(customer) = body.customer_id {
        access.act_for(&customer.to_string())?;
    }
    let mut errors = Vec::new();
    if body.customer_id.is_none() {
        errors.push(FieldError::new("customer_id", "missing field `customer_id`"));
    }
    if body.items.is_empty() {
        errors.push(FieldError::new("items", "must hold at least one line"));
    } else if body.items.len() > MAX_LINES {
        errors.push(FieldError::new("items", format!("must hold at most {MAX_LINES} lines")));
    }
    for (index, line) in body.items.iter().enumerate() {
        if body.items[..index].iter().any(|earlier| earlier.sku == line.sku) {
            errors.push(FieldError::new(
                format!("items[{index}].sku"),
                "appears twice; order it once with the sum",
            ));
        }
    }
    let token = body.payment_token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN {
        errors.push(FieldError::new("payment_token", format!("must be 1 to {MAX_TOKEN} characters")));
    }
    if body.request_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 255) {
        errors.push(FieldError::new("request_key", "must be 1 to 255 characters"));
    }
    if body.request_hash.as_ref().is_some_and(|h| h.is_empty() || h.len() > 128) {
        errors.push(FieldError::new("request_hash", "must be 1 to 128 characters"));
    }
    if body.country.as_ref().is_some_and(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase())) {
        errors.push(FieldError::new("country", "must be an ISO 3166-1 alpha-2 code such as GB"));
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let Some(customer_id) = body.customer_id else { return Err(Problem::invalid(errors)) };
    let request =
        body.request_key.as_deref().map(|key| RequestKey { key, body_hash: body.request_hash.as_deref() });
    let placement = orders
        .place_request(customer_id, body.items, token, request, body.country.as_deref(), &actor)
        .await?;
    let accepted = Json(Accepted { id: placement.order_id, status: "pending".into() });
    // A replay answers as the first request was answered, and says it is one.
    let replayed = placement.replayed.then_some([("idempotent-replayed", "true")]);
    Ok((StatusCode::ACCEPTED, replayed, accepted))
}

/// One order with its ETag (the stream version).
#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    params(("id" = Uuid, Path, description = "the order id")),
    responses((status = 200, body = OrderView, headers(("ETag" = String))), (status = 404, body = Problem)))]
async fn get_order(
    State(orders): State<Orders>,
    actor: Actor,
    access: Access,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = order_id(&id)?;
    let record = visible_order(&orders, &access, id).await?;
    orders.audit_read("order.read", format!("order/{id}"), &actor).await;
    let version = i64::try_from(record.version).unwrap_or(i64::MAX);
    Ok((ETag(version), Json(OrderView::from(&record))))
}

/// Order summaries, newest first.
#[utoipa::path(get, path = "/orders", tag = "orders", params(ListQuery),
    responses((status = 200, body = SummaryPage), (status = 422, body = Problem)))]
async fn list_orders(
    State(orders): State<Orders>,
    access: Access,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<SummaryPage>> {
    let customer_id = access
        .list_filter(query.customer_id.map(|id| id.to_string()).as_deref())?
        .map(|id| id.parse::<Uuid>().map_err(|_| Problem::invalid_field("customer_id", "not a customer id")))
        .transpose()?;
    let limit = page_limit(query.limit)?;
    if let Some(status) = query.status.as_deref()
        && !["pending", "confirmed", "rejected", "cancelled"].contains(&status)
    {
        return Err(Problem::invalid_field("status", "must be pending, confirmed, rejected or cancelled"));
    }
    let before = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(cursor) => Some(
            cursor
                .parse::<Uuid>()
                .map_err(|_| Problem::invalid_field("cursor", "not a cursor of this list"))?,
        ),
    };
    let limit = limit as usize;
    let mut summaries = orders.summaries(customer_id, query.status.as_deref(), before, limit + 1).await?;
    let more = summaries.len() > limit;
    summaries.truncate(limit);
    let next_cursor = if more { summaries.last().map(|s| s.order_id.to_string()) } else { None };
    let items = summaries
        .into_iter()
        .map(|s| SummaryView {
            id: s.order_id,
            customer_id: s.customer_id,
            status: s.status,
            reason: s.reason,
            total: s.total,
            item_count: s.item_count,
        })
        .collect();
    Ok(Json(SummaryPage { items, next_cursor }))
}

/// Cancel a confirmed order: refund and restock follow (202).
#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "orders",
    params(("id" = Uuid, Path, description = "the order id")),
    responses((status = 202, body = Accepted), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn cancel_order(
    State(orders): State<Orders>,
    actor: Actor,
    access: Access,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = order_id(&id)?;
    visible_order(&orders, &access, id).await?;
    orders.cancel(id, &actor).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { id, status: "cancelling".into() })))
}

/// The order's events and the sagas that worked on it, in order.
#[utoipa::path(get, path = "/orders/{id}/history", tag = "orders",
    params(("id" = Uuid, Path, description = "the order id")),
    responses((status = 200, body = HistoryView), (status = 404, body = Problem)))]
async fn order_history(
    State(orders): State<Orders>,
    actor: Actor,
    access: Access,
    Path(id): Path<String>,
) -> ApiResult<Json<HistoryView>> {
    let id = order_id(&id)?;
    visible_order(&orders, &access, id).await?;
    orders.audit_read("order.history", format!("order/{id}"), &actor).await;
    let history = orders.history(id).await?.ok_or_else(|| Problem::not_found("no such order"))?;
    let events = history
        .events
        .iter()
        .map(|event| HistoryEvent {
            version: event.version,
            name: event.name.clone(),
            at: event.recorded_at.to_rfc3339(),
            data: serde_json::from_str(&event.payload).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    let sagas = history
        .sagas
        .into_iter()
        .map(|saga| HistorySaga {
            saga: saga.saga,
            status: serde_json::to_value(saga.status).unwrap_or_default(),
            step: saga.step,
            reason: saga.reason,
            stuck: saga.stuck,
            started_at: saga.started_at.to_rfc3339(),
            updated_at: saga.updated_at.to_rfc3339(),
            steps: saga.timings.into_iter().map(sagas::step_view).collect(),
        })
        .collect();
    Ok(Json(HistoryView { id, events, sagas }))
}
