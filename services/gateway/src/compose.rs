//! `GET /orders/{id}`: one view from four services. The order comes first (it decides whether
//! the caller may see it); then the customer's name, the payment and any missing product names
//! are asked for in parallel, each with its own deadline. A part that does not answer in time
//! is named in `degraded` and left out; the request still succeeds.

use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tessera_web::{ApiResult, Path, Problem};

use crate::access::Caller;
use crate::clients::{Reply, call};
use crate::forward::unavailable;
use crate::state::Gateway;
use crate::waiting;

/// One order composed from orders, customers, payments and inventory; a service that does not
/// answer in time is named in `degraded` and its part is null.
/// With `Prefer: wait=N` it answers once the order is no longer pending, or after N seconds.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "the order id"),
        ("Prefer" = Option<String>, Header, description = "`wait=N` (seconds, at most 30): answer once the order is no longer pending, or after N seconds (RFC 7240)")),
    responses((status = 200, body = crate::schemas::ComposedOrder, headers(("ETag" = String),
            ("Preference-Applied" = String, description = "`wait=N` when the wait was applied"))),
        (status = 404, body = Problem)))]
pub(crate) async fn order_view(
    State(g): State<Gateway>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    let id = uuid::Uuid::parse_str(&text).map_err(|_| Problem::not_found("no such order"))?;
    let wait = waiting::preferred_wait(&headers).filter(|_| g.waiters.is_watching());
    let order = match wait {
        Some(wait) => settled_order(&g, &caller, id, wait).await?,
        None => visible_order(&g, &caller, id).await?,
    };
    let mut response = composed(&g, order).await?;
    if let Some(wait) = wait {
        let (name, value) = waiting::applied(wait);
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}

/// The order as orders answers for it, if the caller may see it.
pub(crate) async fn visible_order(g: &Gateway, caller: &Caller, id: uuid::Uuid) -> ApiResult<Reply> {
    let order =
        call(&g.services.orders, Method::GET, &format!("/orders/{id}"), None, &[], g.config.call_timeout)
            .await
            .map_err(|e| unavailable(&e))?;
    if order.status == StatusCode::NOT_FOUND {
        return Err(Problem::not_found("no such order"));
    }
    if !order.is_success() {
        return Err(Problem::unavailable(&format!("orders answered {}", order.status)));
    }
    let customer_id = order.json()["customer_id"].as_str().unwrap_or_default().to_owned();
    if !caller.may_see(&customer_id) {
        return Err(Problem::not_found("no such order"));
    }
    Ok(order)
}

/// Whether orders' answer says the order is still being placed.
pub(crate) fn is_pending(order: &Reply) -> bool {
    order.json()["status"].as_str().is_none_or(|status| status == "pending")
}

/// The order once it is no longer pending, or as it is when `wait` has passed: read again each
/// time the orders service publishes an event about it, never on a timer.
pub(crate) async fn settled_order(
    g: &Gateway,
    caller: &Caller,
    id: uuid::Uuid,
    wait: std::time::Duration,
) -> ApiResult<Reply> {
    let deadline = tokio::time::Instant::now() + wait;
    let Some(waiter) = g.waiters.register(id) else {
        // Too many waiters in this process: answered at once.
        return visible_order(g, caller, id).await;
    };
    loop {
        let woken = waiter.notified();
        tokio::pin!(woken);
        // Registered before the read: an event published between the read and the wait
        // still wakes this waiter.
        woken.as_mut().enable();
        let order = visible_order(g, caller, id).await?;
        if !is_pending(&order) || tokio::time::Instant::now() >= deadline {
            return Ok(order);
        }
        if tokio::time::timeout_at(deadline, woken).await.is_err() {
            // The deadline passed with no event: one last read, in case of a missed wake-up.
            return visible_order(g, caller, id).await;
        }
    }
}

/// The composed view of an order that orders answered with (see [`visible_order`]).
pub(crate) async fn composed(g: &Gateway, order: Reply) -> ApiResult<Response> {
    let (body, etag) = composed_body(g, &order).await?;
    let mut response = axum::Json(body).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// The composed view's body, and the order's ETag.
pub(crate) async fn composed_body(
    g: &Gateway,
    order: &Reply,
) -> ApiResult<(Value, Option<axum::http::HeaderValue>)> {
    let view = order.json();
    let id = view["id"].as_str().unwrap_or_default().to_owned();
    let timeout = g.config.dependency_timeout;
    let customer_id =
        view["customer_id"].as_str().and_then(|c| uuid::Uuid::parse_str(c).ok()).map(|c| c.to_string());
    let customer_id =
        customer_id.ok_or_else(|| Problem::unavailable(&"orders answered without a customer"))?;
    let etag = order.headers.get(header::ETAG).cloned();

    let (customer_path, payment_path) =
        (format!("/customers/{customer_id}"), format!("/payments?order_id={id}"));
    let customer = call(&g.services.customers, Method::GET, &customer_path, None, &[], timeout);
    let payment = call(&g.services.payments, Method::GET, &payment_path, None, &[], timeout);
    let unnamed: Vec<String> = view["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|i| i["name"].is_null())
                .filter_map(|i| i["sku"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let products = futures_util::future::join_all(unnamed.iter().map(|sku| {
        g.catalogue_read(format!("/products/{sku}"), crate::catalogue::CacheKey::product(sku), timeout)
    }));
    let (customer, payment, products) = tokio::join!(customer, payment, products);

    let mut degraded = Vec::new();
    let customer = match customer {
        Ok(reply) if reply.is_success() => json!({"id": customer_id, "name": reply.json()["name"]}),
        // A customer who is gone (erased) is shown as such; a silent service is degraded.
        Ok(reply) if reply.status == StatusCode::NOT_FOUND => json!({"id": customer_id, "name": "[erased]"}),
        _ => {
            degraded.push("customers");
            json!({"id": customer_id, "name": null})
        }
    };
    let payment = match payment {
        Ok(reply) if reply.is_success() => {
            let first = reply.json().as_array().and_then(|p| p.first().cloned()).unwrap_or(Value::Null);
            let last4 = if first["last4"].is_null() {
                view["payment"]["last4"].clone()
            } else {
                first["last4"].clone()
            };
            json!({"status": first["status"], "last4": last4})
        }
        _ => {
            degraded.push("payments");
            json!({"status": null, "last4": view["payment"]["last4"]})
        }
    };
    let mut names = std::collections::HashMap::new();
    let mut inventory_silent = false;
    for (sku, reply) in unnamed.iter().zip(products) {
        match reply {
            Ok(reply) if reply.is_success() => {
                names.insert(sku.clone(), reply.json()["name"].clone());
            }
            Ok(reply) if reply.status == StatusCode::NOT_FOUND => {}
            _ => inventory_silent = true,
        }
    }
    if inventory_silent {
        degraded.push("inventory");
    }
    let items: Vec<Value> = view["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|item| {
            let sku = item["sku"].as_str().unwrap_or_default().to_owned();
            let name = if item["name"].is_null() {
                names.get(&sku).cloned().unwrap_or(Value::Null)
            } else {
                item["name"].clone()
            };
            json!({"sku": sku, "name": name, "quantity": item["quantity"], "unit_price": item["unit_price"]})
        })
        .collect();
    let mut body = json!({
        "id": view["id"], "status": view["status"], "customer": customer, "items": items,
        "total": view["total"], "payment": payment, "created_at": view["created_at"],
        "updated_at": view["updated_at"], "degraded": degraded,
    });
    if !view["reason"].is_null() {
        body["reason"] = view["reason"].clone();
    }
    Ok((body, etag))
}
