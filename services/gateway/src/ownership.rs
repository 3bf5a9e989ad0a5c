//! Who owns what: the caller-owned fields of a body, a customer's lists forced to their own
//! id, and the owners of orders and tickets looked up before anything is done to them.

use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use tessera_web::{ApiResult, Problem};

use crate::access::{Caller, forbidden};
use crate::auth::Role;
use crate::clients::Reply;
use crate::forward::{pass_on_error, with_query};
use crate::state::Gateway;

/// The body as a JSON object (the services check its fields; the gateway only reads or sets
/// the caller-owned ones).
pub(crate) fn object(body: Value) -> ApiResult<serde_json::Map<String, Value>> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(Problem::invalid_field("", "the body must be a JSON object")),
    }
}

/// Sets `customer_id` to the calling customer's id; a different one is someone else's.
pub(crate) fn own_customer_id(caller: &Caller, body: &mut serde_json::Map<String, Value>) -> ApiResult<()> {
    match body.get("customer_id") {
        Some(Value::String(id)) if id == &caller.sub => Ok(()),
        None | Some(Value::Null) => {
            body.insert("customer_id".into(), Value::String(caller.sub.clone()));
            Ok(())
        }
        Some(Value::String(_)) => Err(forbidden("customer_id names another customer")),
        Some(_) => Err(Problem::invalid_field("customer_id", "must be your customer id, as a string")),
    }
}

/// The query of a list of a customer's objects (orders, tickets).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    customer_id: Option<uuid::Uuid>,
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The service path for a list: a customer sees only their own objects (the filter is forced
/// to their id; another id is refused), staff filter as they ask.
pub(crate) fn owned_list_path(
    caller: &Caller,
    query: ListQuery,
    base: &str,
    what: &str,
) -> ApiResult<String> {
    let customer = match (caller.role, query.customer_id) {
        (Role::Customer, Some(id)) if id.to_string() != caller.sub => {
            return Err(forbidden(&format!("a customer lists only their own {what}")));
        }
        (Role::Customer, _) => Some(caller.sub.clone()),
        (_, id) => id.map(|id| id.to_string()),
    };
    let pairs: Vec<(&str, String)> = [
        ("customer_id", customer),
        ("status", query.status),
        ("cursor", query.cursor),
        ("limit", query.limit.map(|l| l.to_string())),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|value| (name, value)))
    .collect();
    let query = serde_urlencoded::to_string(&pairs).map_err(|e| Problem::internal(&e))?;
    Ok(with_query(base, Some(&query)))
}

/// The ticket, if the caller may see it (its owner or staff); 404 otherwise.
pub(crate) async fn visible_ticket(g: &Gateway, caller: &Caller, id: uuid::Uuid) -> ApiResult<Reply> {
    let reply = g.call(&g.services.support, Method::GET, &format!("/tickets/{id}"), None, &[]).await?;
    if !reply.is_success() {
        return pass_on_error(reply);
    }
    let owner = reply.json()["customer_id"].as_str().unwrap_or_default().to_owned();
    if caller.may_see(&owner) { Ok(reply) } else { Err(Problem::not_found("no such ticket")) }
}

impl Gateway {
    /// The customer who owns an order, or 404 (also when the caller may not know it exists).
    pub(crate) async fn order_owner(&self, caller: &Caller, order_id: uuid::Uuid) -> ApiResult<String> {
        let reply =
            self.call(&self.services.orders, Method::GET, &format!("/orders/{order_id}"), None, &[]).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(Problem::not_found("no such order"));
        }
        if !reply.is_success() {
            return pass_on_error(reply);
        }
        let owner = reply.json()["customer_id"].as_str().unwrap_or_default().to_owned();
        if caller.may_see(&owner) { Ok(owner) } else { Err(Problem::not_found("no such order")) }
    }
}
