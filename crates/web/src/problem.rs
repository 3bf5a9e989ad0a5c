//! RFC 9457 problem details: the one shape every error takes on the wire. Each problem carries
//! a stable machine `code`; the human `detail` may change between releases, the code may not.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field that failed validation, named by its JSON path (`items[0].quantity`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// An error as a client sees it. `type` and `title` follow from `code` and `status`, so they
/// are computed when the problem is written out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub detail: String,
    /// Stable machine code, e.g. `out_of_stock`.
    pub code: String,
    pub errors: Vec<FieldError>,
    /// Seconds after which a retry may succeed, sent as `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

/// The wire form (RFC 9457 members plus `code` and `errors`).
#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

/// The document's description of the wire form.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ProblemSchema {
    /// `urn:tessera:problem:<code>`.
    #[schema(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    /// Stable machine code, e.g. `out_of_stock`.
    code: String,
    /// Field errors, when the request had invalid fields.
    #[schema(nullable = false)]
    errors: Option<Vec<FieldError>>,
}

impl utoipa::PartialSchema for Problem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        ProblemSchema::schema()
    }
}

impl ToSchema for Problem {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Problem")
    }

    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push((FieldError::name().into_owned(), <FieldError as utoipa::PartialSchema>::schema()));
    }
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ProblemBody {
            kind: format!("urn:tessera:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &self.detail,
            code: &self.code,
            errors: &self.errors,
        }
        .serialize(serializer)
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self { status, detail: detail.into(), code: code.to_owned(), errors: Vec::new(), retry_after: None }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// 503 `busy`: this process is doing as much of some costly work as it may at once (a
    /// password hash); a retry in a second may find room.
    pub fn busy(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", detail).with_retry_after(1)
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// 422 `validation_failed` listing every field that is wrong.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", detail).with_errors(errors)
    }

    /// 422 for a single field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(field, message)])
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn conflict(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// 500 with a fixed text: the cause goes to the log, never to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the request could not be completed; it has been logged",
        )
    }

    /// 503: a dependency (the database, the bus) is not answering; the client may retry.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(%cause, "dependency unavailable");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "a dependency is unavailable; retry later")
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The result of a handler: a response or a problem.
pub type ApiResult<T> = Result<T, Problem>;

/// A store failure as a client sees it: 503 when a retry may succeed (the database is
/// unreachable), 500 otherwise. The cause is logged, not shown.
pub fn store_problem(error: &tessera_store::StoreError) -> Problem {
    if error.is_transient() { Problem::unavailable(error) } else { Problem::internal(error) }
}
