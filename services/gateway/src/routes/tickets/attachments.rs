//! Tickets' attachments at the edge. Who may touch them is who may see the ticket (its
//! customer, support, admins; anyone else gets 404), checked exactly as for `GET
//! /tickets/{id}`; support sniffs, seals and stores the files.
//!
//! The upload route alone takes a body over 1 MiB: up to [`UPLOAD_BODY_LIMIT`]. Files stream
//! through in both directions, never held whole here: an upload's body is passed on to
//! support as it arrives, through a count that stops it at the limit (413), and a download's
//! bytes are passed back as support opens them. So the gateway holds no more per upload than
//! the pieces in flight, and needs no cap of its own on concurrent uploads: support's answers
//! 503 with `Retry-After`, passed on as it is.

// utoipa's path macro writes fully qualified paths into the code it generates.
#![allow(unused_qualifications)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Limited};
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
/// How long a file may take to stream through: far longer than a call (10 MiB at 1 Mbit/s is
/// some 80 seconds), yet bounded, so a stalled transfer does not hold its connection forever.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);

/// The upload body was cut at [`UPLOAD_BODY_LIMIT`].
#[derive(Debug, thiserror::Error)]
#[error("the upload body is over {UPLOAD_BODY_LIMIT} bytes")]
struct OverLimit;

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

/// The upload form: one file part, named `file`, and nothing else.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the form; the body is passed on as it came
pub(crate) struct UploadForm {
    /// PNG, JPEG, GIF, WebP, PDF or UTF-8 text, 1 byte to 10 MiB; the type is read from the bytes.
    #[schema(value_type = String, format = Binary, min_length = 1)]
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

/// Sends `request` to support within `timeout`; the answer's head, its body unread.
async fn send(g: &Gateway, request: Request<Body>, timeout: Duration) -> ApiResult<Response> {
    let client = &g.services.support;
    match tokio::time::timeout(timeout, client.send(request)).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) => Err(unavailable(&error)),
        Err(_) => Err(unavailable(&ClientError::Timeout { service: client.name(), timeout })),
    }
}

/// Support's answer read whole (a problem or a small JSON document), within the call timeout.
async fn read_whole(g: &Gateway, response: Response) -> ApiResult<Reply> {
    let service = g.services.support.name();
    let (status, headers) = (response.status(), response.headers().clone());
    let reading = Limited::new(response.into_body(), tessera_web::BODY_LIMIT_BYTES).collect();
    let timeout = g.config.call_timeout;
    let body = match tokio::time::timeout(timeout, reading).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) => {
            return Err(unavailable(&ClientError::Unreachable { service, reason: error.to_string() }));
        }
        Err(_) => return Err(unavailable(&ClientError::Timeout { service, timeout })),
    };
    Ok(Reply { status, headers, body })
}

/// Attach a file to a ticket (its customer, support or an admin).
#[utoipa::path(post, path = "/api/v1/tickets/{id}/attachments", tag = "support",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    params(("id" = Uuid, Path, description = "the ticket id")),
    responses((status = 201, body = AttachmentView),
        (status = 404, body = Problem, description = "No such ticket, or not one the caller may see."),
        (status = 409, body = Problem,
            description = "Over a quota: the ticket holds as many files, or as many bytes, as it may (20 files, 50 MiB by default), or the customer's tickets do (200 MiB). `code` says which: ticket_file_quota_exceeded, ticket_byte_quota_exceeded, customer_byte_quota_exceeded."),
        (status = 413, body = Problem, description = "The file is over 10 MiB."),
        (status = 415, body = Problem,
            description = "The body is not multipart/form-data, or the file is none of PNG, JPEG, GIF, WebP, PDF or UTF-8 text."),
        (status = 422, body = Problem, description = "Not exactly one file part, or an empty file."),
        (status = 503, body = Problem,
            description = "As many uploads as support takes at once are under way (`uploads_busy`); retry after the `Retry-After` seconds.")))]
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
    // Passed on as it comes, counted: past the limit the stream fails (whatever
    // Content-Length said, or did not say), which ends the upload at support too.
    let over_limit = Arc::new(AtomicBool::new(false));
    let mut seen = 0usize;
    let flag = over_limit.clone();
    let counted = body.into_data_stream().map(move |piece| -> Result<Bytes, axum::BoxError> {
        let piece = piece?;
        seen += piece.len();
        if seen > UPLOAD_BODY_LIMIT {
            flag.store(true, Ordering::Relaxed);
            return Err(axum::BoxError::from(OverLimit));
        }
        Ok(piece)
    });
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("/tickets/{id}/attachments"))
        .header(header::CONTENT_TYPE, content_type);
    if let Some(length) = declared {
        // Support reserves the file's room in the quotas by it.
        request = request.header(header::CONTENT_LENGTH, length);
    }
    let request = request.body(Body::from_stream(counted)).map_err(|e| Problem::internal(&e))?;
    let answer = send(&g, request, TRANSFER_TIMEOUT).await;
    if over_limit.load(Ordering::Relaxed) {
        return Err(too_large());
    }
    read_whole(&g, answer?).await.map(pass_on)
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
    responses((status = 200, description = "The file, with the Content-Type sniffed at upload.",
            content((FileBytes = "image/png"), (FileBytes = "image/jpeg"), (FileBytes = "image/gif"),
                (FileBytes = "image/webp"), (FileBytes = "application/pdf"),
                (FileBytes = "text/plain; charset=utf-8"))),
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
    let answer = send(&g, request, g.config.call_timeout).await?;
    if !answer.status().is_success() {
        return read_whole(&g, answer).await.map(pass_on);
    }
    // The bytes pass through as support opens them, never held here.
    let (parts, body) = answer.into_parts();
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    for name in [header::CONTENT_TYPE, header::CONTENT_DISPOSITION, header::CONTENT_LENGTH] {
        if let Some(value) = parts.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}
