//! `GET /orders/{id}`: one view from four services. The order comes first (it decides whether
//! the caller may see it); then the customer's name, the payment and any missing product names
//! are asked for in parallel, each with its own deadline. A part that does not answer in time
//! is named in `degraded` and left out; the request still succeeds.

use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tessera_web::{ApiResult, Path, Problem};

use crate::Gateway;
use crate::access::Caller;
use crate::clients::call;
use crate::routes::unavailable;

/// One order composed from orders, customers, payments and inventory; a service that does not
/// answer in time is named in `degraded` and its part is null.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "the order id")),
    responses((status = 200, body = crate::openapi::ComposedOrder, headers(("ETag" = String))),
        (status = 404, body = Problem)))]
pub(crate) async fn order_view(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    let id = uuid::Uuid::parse_str(&text).map_err(|_| Problem::not_found("no such order"))?;
    let timeout = g.config.dependency_timeout;
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
    let view = order.json();
    let customer_id =
        view["customer_id"].as_str().and_then(|c| uuid::Uuid::parse_str(c).ok()).map(|c| c.to_string());
    let customer_id =
        customer_id.ok_or_else(|| Problem::unavailable(&"orders answered without a customer"))?;
    if !caller.may_see(&customer_id) {
        return Err(Problem::not_found("no such order"));
    }
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
    let mut response = axum::Json(body).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}
