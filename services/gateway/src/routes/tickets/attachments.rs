//! Tickets' attachments at the edge. Who may touch them is who may see the ticket (its
//! customer, support, admins; anyone else gets 404), checked exactly as for `GET
//! /tickets/{id}`; support sniffs, seals and stores the files.
//!
//! The upload route alone takes a body over 1 MiB: up to [`UPLOAD_BODY_LIMIT`], read through a
//! length limit that stops at it (413), so an endless body is never buffered.

// utoipa's path macro writes fully qualified paths into the code it generates.
#![allow(unused_qualifications)]

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use tessera_web::{ApiResult, Path, Problem};
use utoipa::ToSchema;

use crate::access::Caller;
use crate::clients::{ClientError, Reply};
use crate::forward::{pass_on, unavailable, uuid};
use crate::ownership::visible_ticket;
use crate::state::Gateway;

/// The largest file support takes.
const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
/// The largest upload body: the largest file and room for the multipart framing around it.
pub(crate) const UPLOAD_BODY_LIMIT: usize = MAX_FILE_BYTES + 64 * 1024;

/// `GET` (list) and `POST` (upload) on `/tickets/{id}/attachments`.
pub(crate) fn collection() -> MethodRouter<Gateway> {
    get(list_attachments).merge(post(upload_attachment))
}

/// `GET` (download) on `/tickets/{id}/attachments/{attachment_id}`.
pub(crate) fn item() -> MethodRouter<Gateway> {
    get(download_attachment)
}

/// An attachment's metadata (as support answers it).
#[derive(Serialize, ToSchema)]
pub(crate) struct AttachmentView {
    pub id: String,
    pub ticket_id: String,
    pub file_name: String,
    /// The type sniffed from the bytes at upload, never the client's word.
    pub content_type: String,
    pub size: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AttachmentList {
    pub items: Vec<AttachmentView>,
}

/// The upload form: one file part.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the form; the body is passed on as it came
pub(crate) struct UploadForm {
    /// PNG, JPEG, GIF, WebP, PDF or UTF-8 text, at most 10 MiB; the type is read from the bytes.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// The file's bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documents the body; the handler answers the bytes themselves
pub(crate) struct FileBytes(Vec<u8>);

fn too_large() -> Problem {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "an attachment is at most 10 MiB")
}

/// Calls support with `request` within the call timeout, reading at most `limit` bytes back.
async fn exchange(g: &Gateway, request: Request<Body>, limit: usize) -> ApiResult<Reply> {
    let client = &g.services.support;
    let (service, timeout) = (client.name(), g.config.call_timeout);
    let work = async {
        let response = client.send(request).await?;
        let (status, headers) = (response.status(), response.headers().clone());
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| ClientError::Unreachable { service, reason: e.to_string() })?
            .to_bytes();
        Ok(Reply { status, headers, body })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(error)) => Err(unavailable(&error)),
        Err(_) => Err(unavailable(&ClientError::Timeout { service, timeout })),
    }
}

/// Attach a file to a ticket (its customer, support or an admin).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/attachments", tag = "support",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    params(("id" = Uuid, Path, description = "the ticket id")),
    responses((status = 201, body = AttachmentView),
        (status = 404, body = Problem, description = "No such ticket, or not one the caller may see."),
        (status = 413, body = Problem, description = "The file is over 10 MiB."),
        (status = 415, body = Problem,
            description = "The body is not multipart/form-data, or the file is none of PNG, JPEG, GIF, WebP, PDF or UTF-8 text."),
        (status = 422, body = Problem, description = "Not exactly one file part, or an empty file.")))]
pub(crate) async fn upload_attachment(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let id = uuid(&text, "ticket")?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .filter(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
        })
        .cloned()
        .ok_or_else(|| {
            Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send multipart/form-data with one file part",
            )
        })?;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > UPLOAD_BODY_LIMIT as u64) {
        return Err(too_large());
    }
    visible_ticket(&g, &caller, id).await?;
    // Read up to the limit and no further, whatever Content-Length said (or did not say).
    let bytes: Bytes = match Limited::new(body, UPLOAD_BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Err(error) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed_body",
                format!("the body could not be read: {error}"),
            ));
        }
    };
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/tickets/{id}/attachments"))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(bytes))
        .map_err(|e| Problem::internal(&e))?;
    exchange(&g, request, tessera_web::BODY_LIMIT_BYTES).await.map(pass_on)
}

/// A ticket's attachments (metadata), oldest first.
#[utoipa::path(get, path = "/api/v1/tickets/{id}/attachments", tag = "support",
    params(("id" = Uuid, Path, description = "the ticket id")),
    responses((status = 200, body = AttachmentList),
        (status = 404, body = Problem, description = "No such ticket, or not one the caller may see.")))]
pub(crate) async fn list_attachments(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    let id = uuid(&text, "ticket")?;
    visible_ticket(&g, &caller, id).await?;
    let reply =
        g.call(&g.services.support, Method::GET, &format!("/tickets/{id}/attachments"), None, &[]).await?;
    Ok(pass_on(reply))
}

/// Download an attachment: its bytes with the type sniffed at upload, as a download
/// (`Content-Disposition: attachment`, `X-Content-Type-Options: nosniff`).
#[utoipa::path(get, path = "/api/v1/tickets/{id}/attachments/{attachment_id}", tag = "support",
    params(("id" = Uuid, Path, description = "the ticket id"),
        ("attachment_id" = Uuid, Path, description = "the attachment id")),
    responses((status = 200, body = FileBytes, content_type = "application/octet-stream",
            description = "The file, with its sniffed Content-Type."),
        (status = 404, body = Problem, description = "No such ticket or attachment, or not one the caller may see.")))]
pub(crate) async fn download_attachment(
    State(g): State<Gateway>,
    caller: Caller,
    Path((text, attachment)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = uuid(&text, "ticket")?;
    let attachment = uuid(&attachment, "attachment")?;
    visible_ticket(&g, &caller, id).await?;
    let request = Request::builder()
        .method(Method::GET)
        .uri(format!("/tickets/{id}/attachments/{attachment}"))
        .body(Body::empty())
        .map_err(|e| Problem::internal(&e))?;
    let reply = exchange(&g, request, UPLOAD_BODY_LIMIT).await?;
    if !reply.is_success() {
        return Ok(pass_on(reply));
    }
    let mut response = Response::new(Body::from(reply.body));
    let headers = response.headers_mut();
    for name in [header::CONTENT_TYPE, header::CONTENT_DISPOSITION] {
        if let Some(value) = reply.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}
