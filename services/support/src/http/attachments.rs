//! A ticket's attachments: upload (multipart/form-data, one file part), list, download.
//! Whether the caller may touch the ticket is the gateway's check, as for the ticket itself.

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_web::access::Access;
use tessera_web::token::Actor;
use tessera_web::{ApiResult, Json, Path, Problem};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{paced, ticket_id, visible_ticket};
use crate::app::{Attachment, Support, Upload};
use crate::domain::MAX_ATTACHMENT_BYTES;

/// The largest upload body: the largest file and room for the multipart framing around it.
pub const UPLOAD_BODY_LIMIT: usize = MAX_ATTACHMENT_BYTES + 64 * 1024;

pub fn router() -> OpenApiRouter<Support> {
    OpenApiRouter::new()
        .routes(routes!(list_attachments, upload_attachment))
        // Above the 1 MiB every other route takes; only these routes take bodies this large,
        // and axum's multipart reader stops at the limit instead of buffering what comes.
        .layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT))
        // ... and reads the body a piece at a time (see `paced`).
        .layer(axum::middleware::map_request(paced::pace))
        .routes(routes!(download_attachment))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentView {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub file_name: String,
    /// The type sniffed from the bytes at upload.
    pub content_type: String,
    pub size: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    pub created_at: String,
}

impl From<Attachment> for AttachmentView {
    fn from(a: Attachment) -> Self {
        Self {
            id: a.id,
            ticket_id: a.ticket_id,
            file_name: a.file_name,
            content_type: a.content_type.as_mime().to_owned(),
            size: a.size,
            sha256: a.sha256,
            created_at: a.created_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentList {
    pub items: Vec<AttachmentView>,
}

/// The upload form: one file part, named `file`, and nothing else.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the form; the handler reads the parts as they stream
pub struct UploadForm {
    /// PNG, JPEG, GIF, WebP, PDF or UTF-8 text, 1 byte to 10 MiB; the type is read from the bytes.
    #[schema(value_type = String, format = Binary, min_length = 1)]
    pub file: Vec<u8>,
}

fn too_large() -> Problem {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "an attachment is at most 10 MiB")
}

fn one_file_part() -> Problem {
    Problem::invalid_field("file", "send exactly one part, named file")
}

fn multipart_problem(error: &MultipartError) -> Problem {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            format!("the multipart body is malformed: {error}"),
        )
    }
}

/// Attach a file to a ticket. The file streams through: it is sniffed, hashed, sealed and
/// stored as it arrives, never held whole.
#[utoipa::path(post, path = "/tickets/{id}/attachments", tag = "support",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    params(("id" = Uuid, Path, description = "the ticket id")),
    responses((status = 201, body = AttachmentView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem,
            description = "Over a quota: the ticket's files (count or bytes) or the customer's bytes."),
        (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem),
        (status = 503, body = Problem,
            description = "As many uploads as support takes at once are under way; retry after `Retry-After` seconds.")))]
async fn upload_attachment(
    State(support): State<Support>,
    actor: Actor,
    access: Access,
    Path(id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<AttachmentView>)> {
    let id = ticket_id(&id)?;
    visible_ticket(&support, &access, id).await?;
    let permit = support.upload_permit()?;
    let mut multipart = multipart.map_err(|_| {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send multipart/form-data with one file part",
        )
    })?;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    // The room is reserved before any byte is read, by the body's declared length.
    let mut upload = support.begin_upload(id, declared, permit, &actor).await?;
    let name = match stream_file(&mut multipart, &mut upload).await {
        Ok(name) => name,
        Err(problem) => {
            upload.abort().await;
            return Err(problem);
        }
    };
    let attachment = upload.finish(name.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(AttachmentView::from(attachment))))
}

/// Streams the one file part of `multipart` into `upload`; answers the client's file name.
async fn stream_file(multipart: &mut Multipart, upload: &mut Upload) -> ApiResult<Option<String>> {
    let mut field =
        multipart.next_field().await.map_err(|e| multipart_problem(&e))?.ok_or_else(one_file_part)?;
    if field.name() != Some("file") {
        return Err(one_file_part());
    }
    let name = field.file_name().map(str::to_owned);
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_problem(&e))? {
        upload.write(&chunk).await?;
    }
    drop(field);
    match multipart.next_field().await.map_err(|e| multipart_problem(&e))? {
        Some(_) => Err(one_file_part()),
        None => Ok(name),
    }
}

/// A ticket's attachments (metadata), oldest first.
#[utoipa::path(get, path = "/tickets/{id}/attachments", tag = "support",
    params(("id" = Uuid, Path, description = "the ticket id")),
    responses((status = 200, body = AttachmentList), (status = 404, body = Problem)))]
async fn list_attachments(
    State(support): State<Support>,
    access: Access,
    Path(id): Path<String>,
) -> ApiResult<Json<AttachmentList>> {
    let id = ticket_id(&id)?;
    visible_ticket(&support, &access, id).await?;
    let items = support.attachments(id).await?.into_iter().map(AttachmentView::from).collect();
    Ok(Json(AttachmentList { items }))
}

/// The file's bytes, as sent.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documents the body; the handler answers the bytes themselves
pub struct FileBytes(Vec<u8>);

/// Download an attachment: its bytes with the type sniffed at upload, as a download. The
/// bytes are opened as they stream out; one that fails its check mid-way cuts the body short.
#[utoipa::path(get, path = "/tickets/{id}/attachments/{attachment_id}", tag = "support",
    params(("id" = Uuid, Path, description = "the ticket id"),
        ("attachment_id" = Uuid, Path, description = "the attachment id")),
    responses((status = 200, body = FileBytes, content_type = "application/octet-stream",
            description = "the file, with its sniffed Content-Type and Content-Disposition: attachment"),
        (status = 404, body = Problem)))]
async fn download_attachment(
    State(support): State<Support>,
    actor: Actor,
    access: Access,
    Path((id, attachment)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = ticket_id(&id)?;
    visible_ticket(&support, &access, id).await?;
    let attachment: Uuid = attachment.parse().map_err(|_| Problem::not_found("no such attachment"))?;
    let (found, file) = support.download(id, attachment, &actor).await?;
    let mut response = Body::from_stream(file).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(found.size));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(found.content_type.as_mime()));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(value) = HeaderValue::from_str(&content_disposition(&found.file_name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `attachment` with the file name twice (RFC 6266): a plain ASCII one for old clients and
/// the exact one percent-encoded (RFC 8187).
fn content_disposition(name: &str) -> String {
    let plain: String = name
        .chars()
        .map(|c| if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' { c } else { '_' })
        .collect();
    let mut exact = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            exact.push(char::from(byte));
        } else {
            exact.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}")
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn a_file_name_is_quoted_safely_in_both_forms() {
        assert_eq!(
            content_disposition("Rechnung März \"1\".pdf"),
            "attachment; filename=\"Rechnung M_rz _1_.pdf\"; filename*=UTF-8''Rechnung%20M%C3%A4rz%20%221%22.pdf"
        );
    }
}
