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

/// An error as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank`-style tags under `urn:tessera:problem:`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    #[schema(value_type = u16)]
    #[serde(serialize_with = "status_code")]
    pub status: StatusCode,
    pub detail: String,
    /// Stable machine code, e.g. `out_of_stock`.
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

fn status_code<S: serde::Serializer>(status: &StatusCode, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u16(status.as_u16())
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:tessera:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status,
            detail: detail.into(),
            code: code.to_owned(),
            errors: Vec::new(),
        }
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
