//! Support's HTTP routes: tickets and their messages, with the order summary support holds;
//! `attachments` has their files.
//!
//! The acting customer (and whether a message comes from the customer or from support) is set
//! by the gateway from the caller's token; each route applies the shared access rules
//! (`tessera_web::access`) to the token it is shown: a customer reaches only their own tickets
//! and writes only as the customer, and only staff write as support or close a ticket.

// utoipa's path macro writes fully qualified paths into the code it generates.
#![allow(unused_qualifications)]

pub mod attachments;
mod paced;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tessera_contracts::Money;
use tessera_contracts::requests::{MessageAuthor, NewMessage, NewTicket};
use tessera_web::access::{ADMIN, Access, CUSTOMER, SUPPORT};
use tessera_web::token::Actor;
use tessera_web::{ApiResult, FieldError, Json, Path, Problem, Query, page_limit, store_problem};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::{AppError, Author, Support, Ticket};
use crate::domain::{AttachmentError, OrderReplica, TicketError, TicketStatus};

pub fn router() -> OpenApiRouter<Support> {
    OpenApiRouter::new()
        .routes(routes!(list_tickets, open_ticket))
        .routes(routes!(get_ticket))
        .routes(routes!(add_message))
        .routes(routes!(close_ticket))
        .merge(attachments::router())
}

impl From<AppError> for Problem {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Ticket(TicketError::Closed) => {
                Problem::conflict("ticket_closed", "the ticket is closed")
            }
            AppError::Ticket(error @ (TicketError::Empty { field } | TicketError::TooLong { field, .. })) => {
                Problem::invalid(vec![FieldError::new(field, error.to_string())])
            }
            AppError::UnknownTicket(_) => Problem::not_found("no such ticket"),
            AppError::Store(error) => store_problem(&error),
            // A ticket for someone erased meanwhile: they are gone.
            AppError::Vault(tessera_vault::VaultError::Shredded) => Problem::not_found("no such customer"),
            AppError::Vault(_) => Problem::unavailable(&error),
            AppError::Corrupt(_) => Problem::internal(&error),
            AppError::Attachment(AttachmentError::Empty) => {
                Problem::invalid(vec![FieldError::new("file", error.to_string())])
            }
            AppError::Attachment(AttachmentError::TooLarge) => {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", error.to_string())
            }
            AppError::Attachment(AttachmentError::Unsupported) => {
                Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", error.to_string())
            }
            AppError::Attachment(AttachmentError::LongerThanDeclared) => {
                Problem::new(StatusCode::BAD_REQUEST, "malformed_body", error.to_string())
            }
            AppError::UnknownAttachment(_) => Problem::not_found("no such attachment"),
            AppError::Objects(_) => Problem::unavailable(&error),
            // 409: the ticket's (or customer's) files as they stand leave no room for this one,
            // and sending it again will not change that. 413 stays for a file too large on its
            // own.
            AppError::Quota(exceeded) => Problem::conflict(exceeded.code(), exceeded.to_string()),
            AppError::Busy => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "uploads_busy",
                "as many uploads as support takes at once are under way; retry shortly",
            )
            .with_retry_after(1),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    pub author: String,
    pub message: String,
    pub at: String,
}

/// The order as support knows it, from its replica.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderSummaryView {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub status: String,
    pub reason: Option<String>,
    pub total: Option<Money>,
    pub item_count: Option<i64>,
    /// The order stream version this copy reflects.
    pub source_version: u64,
}

impl From<OrderReplica> for OrderSummaryView {
    fn from(r: OrderReplica) -> Self {
        Self {
            order_id: r.order_id,
            customer_id: r.customer_id,
            status: r.status,
            reason: r.reason,
            total: r.total,
            item_count: r.item_count,
            source_version: r.source_version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketView {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub order_id: Option<Uuid>,
    pub subject: String,
    /// open or closed.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<MessageView>>,
    /// Present when the ticket names an order support has heard of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderSummaryView>,
}

impl From<Ticket> for TicketView {
    fn from(t: Ticket) -> Self {
        Self {
            id: t.id,
            customer_id: t.customer_id,
            order_id: t.order_id,
            subject: t.subject,
            status: t.status.as_str().to_owned(),
            created_at: t.created_at.to_rfc3339(),
            updated_at: t.updated_at.to_rfc3339(),
            messages: None,
            order: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketPage {
    pub items: Vec<TicketView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub customer_id: Option<Uuid>,
    /// open or closed.
    #[param(pattern = "^(open|closed)$")]
    pub status: Option<String>,
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$")]
    pub cursor: Option<String>,
}

fn ticket_id(text: &str) -> ApiResult<Uuid> {
    text.parse().map_err(|_| Problem::not_found("no such ticket"))
}

/// The ticket `id`, if the caller may see it; 404 as for an unknown ticket otherwise.
async fn visible_ticket(support: &Support, access: &Access, id: Uuid) -> ApiResult<Ticket> {
    let ticket = support.ticket(id).await?.ok_or_else(|| Problem::not_found("no such ticket"))?;
    access.see(&ticket.customer_id.to_string(), "ticket")?;
    Ok(ticket)
}

/// Open a ticket with its first message.
#[utoipa::path(post, path = "/tickets", tag = "support", request_body = NewTicket,
    responses((status = 201, body = Created), (status = 422, body = Problem)))]
async fn open_ticket(
    State(support): State<Support>,
    actor: Actor,
    access: Access,
    Json(body): Json<NewTicket>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    access.require(&[CUSTOMER])?;
    let customer_id = body
        .customer_id
        .ok_or_else(|| Problem::invalid_field("customer_id", "missing field `customer_id`"))?;
    access.act_for(&customer_id.to_string())?;
    // A ticket shows the order it is about: only one's own order may be named.
    if let (Some(order_id), Access::Token(_)) = (body.order_id, &access)
        && let Some(order) = support.replica(order_id).await?
        && !access.may_see(&order.customer_id.to_string())
    {
        return Err(Problem::invalid_field("order_id", "no order of yours has this id"));
    }
    let id = support.open(customer_id, body.order_id, &body.subject, &body.message, &actor).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// A ticket with its messages and support's copy of the order it is about.
#[utoipa::path(get, path = "/tickets/{id}", tag = "support",
    params(("id" = Uuid, Path, description = "the ticket id")),
    responses((status = 200, body = TicketView), (status = 404, body = Problem)))]
async fn get_ticket(
    State(support): State<Support>,
    actor: Actor,
    access: Access,
    Path(id): Path<String>,
) -> ApiResult<Json<TicketView>> {
    let id = ticket_id(&id)?;
    let ticket = visible_ticket(&support, &access, id).await?;
    let order = match ticket.order_id {
        Some(order_id) => support.replica(order_id).await?.map(OrderSummaryView::from),
        None => None,
    };
    let messages = support
        .messages(id)
        .await?
        .into_iter()
        .map(|m| MessageView { id: m.id, author: m.author, message: m.body, at: m.at.to_rfc3339() })
        .collect();
    // What the customer wrote is personal data: its reading is on the audit trail.
    support.audit_read(id, &actor).await?;
    let mut view = TicketView::from(ticket);
    view.messages = Some(messages);
    view.order = order;
    Ok(Json(view))
}

/// Tickets, newest first.
#[utoipa::path(get, path = "/tickets", tag = "support", params(ListQuery),
    responses((status = 200, body = TicketPage), (status = 422, body = Problem)))]
async fn list_tickets(
    State(support): State<Support>,
    access: Access,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<TicketPage>> {
    let customer_id = access
        .list_filter(query.customer_id.map(|id| id.to_string()).as_deref())?
        .map(|id| id.parse::<Uuid>().map_err(|_| Problem::invalid_field("customer_id", "not a customer id")))
        .transpose()?;
    let limit = page_limit(query.limit)?;
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(
            TicketStatus::parse(text)
                .ok_or_else(|| Problem::invalid_field("status", "must be open or closed"))?,
        ),
    };
    let before = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(cursor) => Some(
            cursor
                .parse::<Uuid>()
                .map_err(|_| Problem::invalid_field("cursor", "not a cursor of this list"))?,
        ),
    };
    let mut tickets = support.tickets(customer_id, status, before, limit + 1).await?;
    let more = tickets.len() > limit as usize;
    tickets.truncate(limit as usize);
    let next_cursor = if more { tickets.last().map(|t| t.id.to_string()) } else { None };
    Ok(Json(TicketPage { items: tickets.into_iter().map(TicketView::from).collect(), next_cursor }))
}

/// Add a message to an open ticket.
#[utoipa::path(post, path = "/tickets/{id}/messages", tag = "support", request_body = NewMessage,
    params(("id" = Uuid, Path, description = "the ticket id")),
    responses((status = 201), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn add_message(
    State(support): State<Support>,
    actor: Actor,
    access: Access,
    Path(id): Path<String>,
    Json(body): Json<NewMessage>,
) -> ApiResult<StatusCode> {
    let id = ticket_id(&id)?;
    visible_ticket(&support, &access, id).await?;
    let author = match body.author {
        Some(MessageAuthor::Customer) => {
            access.require(&[CUSTOMER])?;
            Author::Customer
        }
        Some(MessageAuthor::Support) => {
            access.require(&[SUPPORT, ADMIN])?;
            Author::Support
        }
        None => return Err(Problem::invalid_field("author", "must be customer or support")),
    };
    support.reply(id, author, &body.message, &actor).await?;
    Ok(StatusCode::CREATED)
}

/// Close an open ticket.
#[utoipa::path(post, path = "/tickets/{id}/close", tag = "support",
    params(("id" = Uuid, Path, description = "the ticket id")),
    responses((status = 200, body = TicketView), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn close_ticket(
    State(support): State<Support>,
    actor: Actor,
    access: Access,
    Path(id): Path<String>,
) -> ApiResult<Json<TicketView>> {
    let id = ticket_id(&id)?;
    access.require(&[SUPPORT, ADMIN])?;
    support.close(id, &actor).await?;
    let ticket = support.ticket(id).await?.ok_or_else(|| Problem::not_found("no such ticket"))?;
    Ok(Json(TicketView::from(ticket)))
}
