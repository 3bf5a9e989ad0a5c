//! Support tickets: opened by customers about their own orders, answered by support, with
//! attachments in the object store.

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_web::{ApiResult, Json, Path, Problem};

use crate::access::{Caller, forbidden, require};
use crate::auth::Role;
use crate::forward::{pass_on, uuid};
use crate::ownership::{ListQuery, object, own_customer_id, owned_list_path, visible_ticket};
use crate::state::Gateway;

pub(crate) mod attachments;

pub(super) fn router() -> Router<Gateway> {
    Router::new()
        .route("/tickets", get(list_tickets).post(open_ticket))
        .route("/tickets/{id}", get(get_ticket))
        .route("/tickets/{id}/messages", post(add_ticket_message))
        .route("/tickets/{id}/close", post(close_ticket))
        .route("/tickets/{id}/attachments", attachments::collection())
        .route("/tickets/{id}/attachments/{attachment_id}", attachments::item())
}

async fn open_ticket(
    State(g): State<Gateway>,
    caller: Caller,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Customer])?;
    let mut body = object(body)?;
    own_customer_id(&caller, &mut body)?;
    match body.get("order_id") {
        None | Some(Value::Null) => {}
        Some(value) => {
            let not_yours = || Problem::invalid_field("order_id", "no order of yours has this id");
            let order_id =
                value.as_str().and_then(|v| uuid::Uuid::parse_str(v).ok()).ok_or_else(not_yours)?;
            match g.order_owner(&caller, order_id).await {
                Ok(_) => {}
                Err(problem) if problem.status == StatusCode::NOT_FOUND => return Err(not_yours()),
                Err(problem) => return Err(problem),
            }
        }
    }
    g.forward(&g.services.support, Method::POST, "/tickets", Some(Value::Object(body)), &[]).await
}

async fn get_ticket(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    visible_ticket(&g, &caller, uuid(&text, "ticket")?).await.map(pass_on)
}

async fn list_tickets(
    State(g): State<Gateway>,
    caller: Caller,
    tessera_web::Query(query): tessera_web::Query<ListQuery>,
) -> ApiResult<Response> {
    let path = owned_list_path(&caller, query, "/tickets", "tickets")?;
    g.forward(&g.services.support, Method::GET, &path, None, &[]).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketMessage {
    message: String,
}

async fn add_ticket_message(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
    Json(body): Json<TicketMessage>,
) -> ApiResult<Response> {
    let id = uuid(&text, "ticket")?;
    let author = match caller.role {
        Role::Customer => "customer",
        Role::Support => "support",
        Role::Admin | Role::Service => {
            return Err(forbidden("messages come from the ticket's customer or from support"));
        }
    };
    visible_ticket(&g, &caller, id).await?;
    let body = json!({"author": author, "message": body.message});
    g.forward(&g.services.support, Method::POST, &format!("/tickets/{id}/messages"), Some(body), &[]).await
}

async fn close_ticket(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Support, Role::Admin])?;
    let id = uuid(&text, "ticket")?;
    g.forward(&g.services.support, Method::POST, &format!("/tickets/{id}/close"), None, &[]).await
}
