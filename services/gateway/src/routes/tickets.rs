//! Support tickets: opened by customers about their own orders, answered by support, with
//! attachments in the object store.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use tessera_contracts::requests::{MessageAuthor, NewMessage, NewTicket};
use tessera_web::{ApiResult, Json, Path, Problem};

use crate::access::{Caller, forbidden, require};
use crate::auth::Role;
use crate::forward::{json_body, pass_on, to_json, uuid};
use crate::ownership::{ListQuery, own_customer, owned_list_path, visible_ticket};
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
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Customer])?;
    let mut ticket: NewTicket = json_body(&headers, body)?;
    ticket.customer_id = Some(own_customer(&caller, ticket.customer_id)?);
    if let Some(order_id) = ticket.order_id {
        match g.order_owner(&caller, order_id).await {
            Ok(_) => {}
            Err(problem) if problem.status == StatusCode::NOT_FOUND => {
                return Err(Problem::invalid_field("order_id", "no order of yours has this id"));
            }
            Err(problem) => return Err(problem),
        }
    }
    g.forward(&g.services.support, Method::POST, "/tickets", Some(to_json(&ticket)?), &[]).await
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

async fn add_ticket_message(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
    Json(mut body): Json<NewMessage>,
) -> ApiResult<Response> {
    if body.author.is_some() {
        // A client does not say who wrote it; its role does.
        return Err(Problem::invalid_field("author", "unknown field; the author is your role"));
    }
    let id = uuid(&text, "ticket")?;
    body.author = match caller.role {
        Role::Customer => Some(MessageAuthor::Customer),
        Role::Support => Some(MessageAuthor::Support),
        Role::Admin | Role::Service => {
            return Err(forbidden("messages come from the ticket's customer or from support"));
        }
    };
    visible_ticket(&g, &caller, id).await?;
    g.forward(
        &g.services.support,
        Method::POST,
        &format!("/tickets/{id}/messages"),
        Some(to_json(&body)?),
        &[],
    )
    .await
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
