//! Orders through the gateway: placing (idempotent, optionally waiting for the outcome),
//! reading, listing, cancelling, an order's history and its live event stream.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use futures_util::StreamExt;
use tessera_contracts::Sku;
use tessera_contracts::orders::MAX_ORDER_LINES as MAX_LINES;
use tessera_contracts::requests::NewOrder;
use tessera_web::{ApiResult, FieldError, Path, Problem};

use crate::access::{Caller, forbidden, require};
use crate::auth::Role;
use crate::catalogue::CacheKey;
use crate::clients::Reply;
use crate::forward::{REPLAYED, json_body, pass_on, plausible_token, to_json, unavailable, uuid};
use crate::idempotency::{self, IdempotencyKey, KeyedRequest};
use crate::ownership::{ListQuery, own_customer, owned_list_path};
use crate::state::Gateway;
use crate::{compose, waiting};

pub(crate) mod events;

pub(super) fn router() -> Router<Gateway> {
    Router::new()
        .route("/orders", get(list_orders).post(place_order))
        .route("/orders/{id}", get(compose::order_view))
        .route("/orders/{id}/cancel", post(cancel_order))
        .route("/orders/{id}/history", get(order_history))
        .route("/orders/{id}/events", get(events::order_events))
}

async fn list_orders(
    State(g): State<Gateway>,
    caller: Caller,
    tessera_web::Query(query): tessera_web::Query<ListQuery>,
) -> ApiResult<Response> {
    let path = owned_list_path(&caller, query, "/orders", "orders")?;
    g.forward(&g.services.orders, Method::GET, &path, None, &[]).await
}

/// Checks the lines' skus and the payment token before the order is placed: an unknown sku or
/// a token that is not the caller's is a 422 now, not a rejection later. A service that cannot
/// answer makes it a 503, never a field error.
async fn check_order(g: &Gateway, caller: &Caller, order: &NewOrder) -> ApiResult<()> {
    if order.items.len() > MAX_LINES {
        return Err(Problem::invalid_field("items", format!("must hold at most {MAX_LINES} lines")));
    }
    let mut skus: Vec<(usize, Sku)> = Vec::new();
    for (index, line) in order.items.iter().enumerate() {
        if !skus.iter().any(|(_, seen)| *seen == line.sku) {
            skus.push((index, line.sku.clone()));
        }
    }
    let lookups = futures_util::stream::iter(skus.into_iter().map(|(index, sku)| async move {
        // Only whether the product exists: what is in stock is inventory's to decide.
        let reply = g
            .catalogue_read(
                format!("/products/{sku}"),
                CacheKey::product(sku.as_str()),
                g.config.call_timeout,
            )
            .await
            .map_err(|e| unavailable(&e));
        (index, sku, reply)
    }))
    .buffered(8)
    .collect::<Vec<_>>()
    .await;
    let mut errors = Vec::new();
    for (index, sku, reply) in lookups {
        let reply = reply?;
        match reply.status {
            status if status.is_success() => {}
            StatusCode::NOT_FOUND => {
                errors.push(FieldError::new(format!("items[{index}].sku"), format!("no product {sku}")))
            }
            status => return Err(Problem::unavailable(&format!("inventory answered {status}"))),
        }
    }
    let token = order.payment_token.trim();
    if plausible_token(token) {
        let path = format!("/payment-methods/{token}");
        let reply = g.call(&g.services.payments, Method::GET, &path, None, &[]).await?;
        let mine = reply.json()["customer_id"].as_str() == Some(caller.sub.as_str());
        match reply.status {
            status if status.is_success() && mine => {}
            status if status.is_success() || status == StatusCode::NOT_FOUND => {
                errors.push(FieldError::new("payment_token", "no payment method of yours has this token"));
            }
            status => return Err(Problem::unavailable(&format!("payments answered {status}"))),
        }
    } else {
        errors.push(FieldError::new("payment_token", "no payment method of yours has this token"));
    }
    if errors.is_empty() { Ok(()) } else { Err(Problem::invalid(errors)) }
}

/// `POST /orders`: customers only, with an `Idempotency-Key`; the same key and body answer as
/// the first time, the same key with another body is refused. With `Prefer: wait=N` the answer
/// waits for the order to settle: 201 with the composed order if it did in time, else 202.
async fn place_order(
    State(g): State<Gateway>,
    caller: Caller,
    key: Result<IdempotencyKey, Problem>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Customer])?;
    let IdempotencyKey(key) = key?;
    let bytes = body.map_err(|rejection| tessera_web::body_problem(&rejection))?;
    let order: NewOrder = json_body(&headers, Ok(bytes.clone()))?;
    let wait = waiting::preferred_wait(&headers).filter(|_| g.waiters.is_watching());
    // Orders keeps the key with the order it placed, in one unit: the same key and body answer
    // with that order from any gateway replica, another body under the key is refused.
    let request = KeyedRequest { key, body_hash: idempotency::body_hash(&bytes) };
    let mut response = pass_on(place_and_settle(&g, &caller, order, request, wait).await?);
    if let Some(wait) = wait {
        let (name, value) = waiting::applied(wait);
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}

/// Places the order and, when the client prefers to wait, waits for it to settle: 201 with the
/// composed order if it did within `wait`, otherwise orders' own 202. A replay (the key placed
/// the order before) answers with the order as it is now: 201 once it has settled. Once the
/// order is placed the answer is never an error: a service that fails meanwhile leaves the 202.
async fn place_and_settle(
    g: &Gateway,
    caller: &Caller,
    order: NewOrder,
    request: KeyedRequest,
    wait: Option<std::time::Duration>,
) -> ApiResult<Reply> {
    let placed = place_checked(g, caller, order, request).await?;
    let replayed = placed.headers.contains_key(REPLAYED);
    let Some(wait) = wait.or(replayed.then_some(std::time::Duration::ZERO)) else { return Ok(placed) };
    if placed.status != StatusCode::ACCEPTED {
        return Ok(placed);
    }
    let Some(id) = placed.json()["id"].as_str().and_then(|id| uuid::Uuid::parse_str(id).ok()) else {
        return Ok(placed);
    };
    let Ok(order) = compose::settled_order(g, caller, id, wait).await else { return Ok(placed) };
    if compose::is_pending(&order) {
        return Ok(placed);
    }
    let Ok((view, etag)) = compose::composed_body(g, &order).await else { return Ok(placed) };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(etag) = etag {
        headers.insert(header::ETAG, etag);
    }
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/orders/{id}")) {
        headers.insert(header::LOCATION, location);
    }
    if let Some(replayed) = placed.headers.get(REPLAYED) {
        headers.insert(REPLAYED, replayed.clone());
    }
    Ok(Reply { status: StatusCode::CREATED, headers, body: Bytes::from(view.to_string()) })
}

/// Whether orders holds an order this caller placed with `key`: a retry of it answers with that
/// order (or, with another body, is refused by orders) even when a product or a card is gone
/// since, or a service the checks ask is down.
async fn placed_by_key(g: &Gateway, caller: &Caller, key: &str) -> bool {
    let Ok(query) = serde_urlencoded::to_string([("customer_id", caller.sub.as_str()), ("request_key", key)])
    else {
        return false;
    };
    let path = format!("/order-requests?{query}");
    g.call(&g.services.orders, Method::GET, &path, None, &[]).await.is_ok_and(|reply| reply.is_success())
}

/// The country of the customer's address; `None` if customers cannot say right now (the sale
/// is then counted under an unknown market rather than refused).
async fn customer_country(g: &Gateway, customer: &str) -> Option<String> {
    let reply = g
        .call(&g.services.customers, Method::GET, &format!("/customers/{customer}"), None, &[])
        .await
        .ok()?;
    if !reply.is_success() {
        return None;
    }
    reply.json()["address"]["country"].as_str().map(str::to_owned)
}

async fn place_checked(
    g: &Gateway,
    caller: &Caller,
    mut order: NewOrder,
    request: KeyedRequest,
) -> ApiResult<Reply> {
    order.customer_id = Some(own_customer(caller, order.customer_id)?);
    if order.request_key.is_some() || order.request_hash.is_some() {
        return Err(Problem::invalid_field("request_key", "unknown field; send Idempotency-Key instead"));
    }
    if let Err(problem) = check_order(g, caller, &order).await
        && !placed_by_key(g, caller, &request.key).await
    {
        return Err(problem);
    }
    order.request_key = Some(request.key);
    order.request_hash = Some(request.body_hash);
    // The market of the sale, for the analytics: the customer's country, never the client's say.
    order.country = customer_country(g, &caller.sub).await;
    g.call(&g.services.orders, Method::POST, "/orders", Some(to_json(&order)?), &[]).await
}

async fn cancel_order(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    let id = uuid(&text, "order")?;
    g.order_owner(&caller, id).await?;
    g.forward(&g.services.orders, Method::POST, &format!("/orders/{id}/cancel"), None, &[]).await
}

async fn order_history(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    if !caller.is_staff() {
        return Err(forbidden("an order's history is for support and admins"));
    }
    let id = uuid(&text, "order")?;
    g.forward(&g.services.orders, Method::GET, &format!("/orders/{id}/history"), None, &[]).await
}
