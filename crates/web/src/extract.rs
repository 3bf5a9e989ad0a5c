//! Extractors that turn every malformed request into a problem: a body that is not JSON (400),
//! JSON of the wrong shape (422 naming the field), the wrong media type (415), a body over the
//! limit (413), a bad path segment or query string (400/422). axum's own rejections are plain
//! text; these are not.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::field_error_words::field_error;
use crate::problem::Problem;

/// A JSON body, parsed strictly; the type decides what is allowed (`deny_unknown_fields`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Json<T>(pub T);

/// Whether a `Content-Type` names JSON (`application/json` or `application/*+json`).
pub fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(Ok(value)) = content_type.map(|v| v.to_str()) else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The problem for a body that could not be read (413 over the limit, 400 otherwise).
pub fn body_problem(rejection: &BytesRejection) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the request body is over 1 MiB")
    } else {
        Problem::new(StatusCode::BAD_REQUEST, "unreadable_body", rejection.body_text())
    }
}

/// Turns a JSON path from serde_path_to_error (`items[0].quantity`, `?` at the root) into the
/// field name a client sees.
fn field_name(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." || text == "?" { String::new() } else { text }
}

/// Parses `bytes` as `T`, naming the failing field, in the API's words, when the JSON is
/// well-formed but wrong.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let inner = error.inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                Problem::invalid(vec![field_error(&field_name(error.path()), &inner.to_string())])
            }
            _ => malformed(inner),
        }
    })?;
    deserializer.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn malformed(error: &serde_json::Error) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "malformed_json", format!("the body is not valid JSON: {error}"))
}

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers().get(header::CONTENT_TYPE)) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|r| body_problem(&r))?;
        // Every body this API takes is an object. serde would also read a struct from an array
        // of its fields in order (`[null, null]`), which no client means and the document
        // does not allow.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(Problem::invalid_field("body", "must be a JSON object"));
        }
        parse_json(&bytes).map(Json)
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters; a segment of the wrong type is a 400 naming the parameter.
#[derive(Clone, Copy, Debug)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => {
                Err(Problem::new(StatusCode::BAD_REQUEST, "invalid_path", rejection.body_text()))
            }
        }
    }
}

/// The query string; unknown or malformed parameters are a 422 naming the parameter.
#[derive(Clone, Copy, Debug, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Parses a query string as `T`, naming the failing parameter.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, Problem> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        Problem::invalid(vec![field_error(&field_name(error.path()), &error.inner().to_string())])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Line {
        sku: String,
        quantity: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        items: Vec<Line>,
    }

    #[test]
    fn a_wrong_type_names_its_field_in_the_apis_words() {
        let problem = parse_json::<Body>(br#"{"items":[{"sku":"A","quantity":"x"}]}"#).unwrap_err();
        assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem.errors[0].field, "items[0].quantity");
        assert_eq!(problem.detail, "items[0].quantity: must be an integer");
    }

    #[test]
    fn an_unknown_field_is_named_itself() {
        let problem =
            parse_json::<Body>(br#"{"items":[{"sku":"A","quantity":1,"colour":"red"}]}"#).unwrap_err();
        assert_eq!(problem.detail, "items[0].colour: is not a field of this request", "{problem:?}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let problem = parse_json::<Body>(br#"{"items":[{"sku":"A"}]}"#).unwrap_err();
        assert_eq!(problem.errors[0].field, "items[0].quantity", "{problem:?}");
        let problem = parse_json::<Body>(br#"{}"#).unwrap_err();
        assert_eq!(problem.errors[0].field, "items", "{problem:?}");
    }

    #[test]
    fn unknown_fields_and_trailing_garbage_are_refused() {
        let problem = parse_json::<Body>(br#"{"items":[],"admin":true}"#).unwrap_err();
        assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY);
        let problem = parse_json::<Body>(br#"{"items":[]} x"#).unwrap_err();
        assert_eq!(problem.status, StatusCode::BAD_REQUEST);
        let problem = parse_json::<Body>(br#"{"items":"#).unwrap_err();
        assert_eq!(problem.code, "malformed_json");
    }

    #[test]
    fn query_values_are_decoded_and_typed() {
        #[derive(Debug, serde::Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct Page {
            limit: Option<u32>,
            cursor: Option<String>,
        }
        let value: Page = parse_query("limit=5&cursor=a%2Bb+c").expect("parses");
        assert_eq!(value, Page { limit: Some(5), cursor: Some("a+b c".into()) });
        assert_eq!(parse_query::<Page>("limit=x").unwrap_err().errors[0].field, "limit");
        assert_eq!(parse_query::<Page>("other=1").unwrap_err().status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
