//! Customers: sign-up, profiles (masked for support), erasure and the export of everything the
//! services hold about a person.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tessera_contracts::customers::profile;
use tessera_kernel::personal::Location;
use tessera_web::{ApiResult, Json, Path, Problem};

use crate::access::{Caller, MaybeCaller};
use crate::access_report::Commit;
use crate::auth::Role;
use crate::clients::ServiceClient;
use crate::forward::{if_match, pass_on, pass_on_error, uuid};
use crate::state::Gateway;

pub(super) fn router() -> Router<Gateway> {
    Router::new()
        .route("/customers", post(register_customer))
        .route("/customers/{id}", get(get_customer).patch(update_customer).delete(erase_customer))
        .route("/customers/{id}/erasure", get(erasure_progress))
        .route("/customers/{id}/export", get(export_customer))
        .route("/customers/{id}/accesses", get(customer_accesses))
}

async fn register_customer(
    State(g): State<Gateway>,
    _caller: MaybeCaller,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    g.forward(&g.services.customers, Method::POST, "/customers", Some(body), &[]).await
}

/// Masks each profile field the customers' declarations say support sees masked (the email
/// but its first character and domain, the address but its country).
fn mask(profile: &mut Value) {
    for field in &profile::FIELDS {
        let Some(mask) = field.mask() else { continue };
        for location in field.locations {
            if let Location::Response { route: profile::ROUTE, field: path } = location
                && let Some(value) = profile.pointer_mut(&format!("/{}", path.replace('.', "/")))
                && let Some(text) = value.as_str()
            {
                *value = Value::String(mask.apply(text));
            }
        }
    }
}

async fn get_customer(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    let id = uuid(&text, "customer")?.to_string();
    if !caller.may_see(&id) {
        return Err(Problem::not_found("no such customer"));
    }
    let reply = g.call(&g.services.customers, Method::GET, &format!("/customers/{id}"), None, &[]).await?;
    if caller.role == Role::Support && reply.is_success() {
        let mut profile = reply.json();
        mask(&mut profile);
        let mut response = axum::Json(profile).into_response();
        if let Some(tag) = reply.headers.get(header::ETAG) {
            response.headers_mut().insert(header::ETAG, tag.clone());
        }
        return Ok(response);
    }
    Ok(pass_on(reply))
}

/// Only the person themself or an admin may erase a person, or follow the erasure; support
/// gets 403, another customer 404 (they may not learn the id exists).
fn may_erase(caller: &Caller, id: &str) -> ApiResult<()> {
    may_change_person(caller, id, "erase a person")
}

/// The shared rule for changing a person (`tessera_web::access`), which customers applies
/// again to the token it is shown.
fn may_change_person(caller: &Caller, id: &str, what: &str) -> ApiResult<()> {
    let role = caller.role.as_str();
    if tessera_web::access::may_change_person(role, &caller.sub, id) {
        Ok(())
    } else {
        Err(tessera_web::access::refuse_person_change(role, what))
    }
}

/// Forwards an erasure request (`DELETE /customers/{id}`) or the question how far it got
/// (`GET /customers/{id}/erasure`) for whoever may erase that person.
async fn erasure(
    g: Gateway,
    caller: Caller,
    text: String,
    method: Method,
    suffix: &str,
) -> ApiResult<Response> {
    let id = uuid(&text, "customer")?.to_string();
    may_erase(&caller, &id)?;
    g.forward(&g.services.customers, method, &format!("/customers/{id}{suffix}"), None, &[]).await
}

async fn erase_customer(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    erasure(g, caller, text, Method::DELETE, "").await
}

async fn erasure_progress(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    erasure(g, caller, text, Method::GET, "/erasure").await
}

async fn update_customer(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let id = uuid(&text, "customer")?.to_string();
    may_change_person(&caller, &id, "change profiles")?;
    g.forward(
        &g.services.customers,
        Method::PATCH,
        &format!("/customers/{id}"),
        Some(body),
        &if_match(&headers),
    )
    .await
}

/// Every page of a list, or the first failing answer as the error.
async fn all_pages(g: &Gateway, service: &Arc<dyn ServiceClient>, path: &str) -> ApiResult<Vec<Value>> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let reply =
            g.call(service, Method::GET, &format!("{path}&limit=200&cursor={cursor}"), None, &[]).await?;
        if !reply.is_success() {
            return Err(Problem::unavailable(&format!("{} answered {}", service.name(), reply.status)));
        }
        let page = reply.json();
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) if !next.is_empty() => cursor = next.to_owned(),
            _ => return Ok(items),
        }
    }
}

/// Everything every service holds about one person (the person themself or an admin).
#[utoipa::path(get, path = "/api/v1/customers/{id}/export", tag = "customers",
    params(("id" = uuid::Uuid, Path, description = "the customer id")),
    responses((status = 200, body = crate::schemas::Export), (status = 404, body = Problem)))]
pub(crate) async fn export_customer(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    let id = uuid(&text, "customer")?;
    may_change_person(&caller, &id.to_string(), "export a person")?;
    let profile = g.call(&g.services.customers, Method::GET, &format!("/customers/{id}"), None, &[]).await?;
    if !profile.is_success() {
        return pass_on_error(profile);
    }
    let orders = all_pages(&g, &g.services.orders, &format!("/orders?customer_id={id}")).await?;
    let tickets = all_pages(&g, &g.services.support, &format!("/tickets?customer_id={id}")).await?;
    let order_ids: Vec<uuid::Uuid> = orders.iter().filter_map(|o| o["id"].as_str()?.parse().ok()).collect();
    let lookups = futures_util::stream::iter(order_ids.into_iter().map(|order_id| {
        let g = &g;
        async move {
            g.call(&g.services.payments, Method::GET, &format!("/payments?order_id={order_id}"), None, &[])
                .await
        }
    }))
    .buffered(8)
    .collect::<Vec<_>>()
    .await;
    let mut payments = Vec::new();
    for reply in lookups {
        let reply = reply?;
        if !reply.is_success() {
            return Err(Problem::unavailable(&format!("payments answered {}", reply.status)));
        }
        payments.extend(reply.json().as_array().cloned().unwrap_or_default());
    }
    let resource = format!("customer/{id}");
    crate::access_report::note(
        &g.store,
        Commit::Waited,
        &caller.sub,
        caller.role.as_str(),
        "customer.export",
        resource,
    )
    .await
    .map_err(|e| Problem::unavailable(&e))?;
    let accesses =
        crate::access_report::person_report(&g, &id.to_string(), theirs(&orders, &tickets)).await?;
    Ok(axum::Json(json!({
        "customer": profile.json(), "orders": orders, "payments": payments, "tickets": tickets,
        "accesses": accesses,
    }))
    .into_response())
}

/// The resources one service knows as the person's, for the others' trails: their orders and
/// their tickets.
fn theirs(orders: &[Value], tickets: &[Value]) -> Vec<String> {
    let named = |kind: &'static str| move |item: &Value| Some(format!("{kind}/{}", item["id"].as_str()?));
    orders.iter().filter_map(named("order")).chain(tickets.iter().filter_map(named("ticket"))).collect()
}

/// Who read or changed one person's data (the person themself or an admin): the access report
/// alone, without the data the export carries.
#[utoipa::path(get, path = "/api/v1/customers/{id}/accesses", tag = "customers",
    params(("id" = uuid::Uuid, Path, description = "the customer id")),
    responses((status = 200, description = "`{items}`: `{service, index, at, actor, role, action, resource, outcome}`, oldest first",
        body = Object), (status = 403, body = Problem)))]
pub(crate) async fn customer_accesses(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    let id = uuid(&text, "customer")?;
    may_change_person(&caller, &id.to_string(), "see who read a person's data")?;
    let orders = all_pages(&g, &g.services.orders, &format!("/orders?customer_id={id}")).await?;
    let tickets = all_pages(&g, &g.services.support, &format!("/tickets?customer_id={id}")).await?;
    let accesses =
        crate::access_report::person_report(&g, &id.to_string(), theirs(&orders, &tickets)).await?;
    Ok(axum::Json(json!({ "items": accesses })).into_response())
}
