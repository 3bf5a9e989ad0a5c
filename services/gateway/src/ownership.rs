//! Who owns what: the customer a body is for, a customer's lists forced to their own
//! id, and the owners of orders and tickets looked up before anything is done to them.

use axum::http::{Method, StatusCode};
use serde::Deserialize;
use tessera_web::{ApiResult, Problem};
use uuid::Uuid;

use crate::access::{Caller, forbidden};
use crate::auth::Role;
use crate::clients::Reply;
use crate::forward::{pass_on_error, with_query};
use crate::state::Gateway;

/// The customer a body is for: the caller, whether the body names them or leaves it out; a
/// body naming someone else is refused.
pub(crate) fn own_customer(caller: &Caller, named: Option<Uuid>) -> ApiResult<Uuid> {
    let me = Uuid::parse_str(&caller.sub).map_err(|_| forbidden("only a customer acts for themself"))?;
    match named {
        None => Ok(me),
        Some(id) if id == me => Ok(me),
        Some(_) => Err(forbidden("customer_id names another customer")),
    }
}

/// The query of a list of a customer's objects (orders, tickets).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    customer_id: Option<Uuid>,
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
pub(crate) async fn visible_ticket(g: &Gateway, caller: &Caller, id: Uuid) -> ApiResult<Reply> {
    let reply = g.call(&g.services.support, Method::GET, &format!("/tickets/{id}"), None, &[]).await?;
    if !reply.is_success() {
        return pass_on_error(reply);
    }
    let owner = reply.json()["customer_id"].as_str().unwrap_or_default().to_owned();
    if caller.may_see(&owner) { Ok(reply) } else { Err(Problem::not_found("no such ticket")) }
}

impl Gateway {
    /// The customer who owns an order, or 404 (also when the caller may not know it exists).
    pub(crate) async fn order_owner(&self, caller: &Caller, order_id: Uuid) -> ApiResult<String> {
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
