//! Calling a router in-process, without a socket (`tower::ServiceExt::oneshot`), with the
//! request and answer as JSON values.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// An answer: its status, headers and body (JSON when it parses, else a string).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem's code, asserting the body is problem+json.
    pub fn problem_code(&self) -> &str {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "not a problem: {} {}",
            self.status,
            self.body
        );
        self.body["code"].as_str().unwrap_or_default()
    }
}

/// Sends one request; `body` is sent raw with `content-type: application/json` when given.
pub async fn call_raw(
    router: &Router,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body.map_or_else(Body::empty, Body::from)).expect("a valid request");
    let response = router.clone().oneshot(request).await.expect("routers are infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("read the body").to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer { status, headers, body }
}

/// Sends one request with an optional JSON body.
pub async fn call(router: &Router, method: Method, path: &str, body: Option<Value>) -> Answer {
    call_raw(router, method, path, body.map(|b| b.to_string().into_bytes()), &[]).await
}
