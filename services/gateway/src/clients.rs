//! How the gateway reaches a service: a call into its router in the same process (embedded),
//! or an HTTP request (distributed). The gateway's code is the same either way.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{service} did not answer within {timeout:?}")]
    Timeout { service: &'static str, timeout: Duration },
    #[error("{service} is unreachable: {reason}")]
    Unreachable { service: &'static str, reason: String },
}

/// One service as the gateway sees it.
#[async_trait]
pub trait ServiceClient: Send + Sync {
    fn name(&self) -> &'static str;
    async fn send(&self, request: Request<Body>) -> Result<axum::response::Response, ClientError>;
}

/// A service in this process: its router, called without a socket.
#[derive(Clone)]
pub struct InProcess {
    name: &'static str,
    router: Router,
}

impl InProcess {
    pub fn new(name: &'static str, router: Router) -> Self {
        Self { name, router }
    }
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").field("name", &self.name).finish_non_exhaustive()
    }
}

#[async_trait]
impl ServiceClient for InProcess {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn send(&self, request: Request<Body>) -> Result<axum::response::Response, ClientError> {
        self.router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| ClientError::Unreachable { service: self.name, reason: e.to_string() })
    }
}

/// A service's answer, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }
}

/// Calls `client` and reads the whole answer within `timeout`.
pub async fn call(
    client: &Arc<dyn ServiceClient>,
    method: Method,
    path: &str,
    body: Option<Bytes>,
    headers: &[(header::HeaderName, String)],
    timeout: Duration,
) -> Result<Reply, ClientError> {
    let mut request = Request::builder().method(method).uri(path);
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(body.map_or_else(Body::empty, Body::from))
        .map_err(|e| ClientError::Unreachable { service: client.name(), reason: e.to_string() })?;
    let service = client.name();
    let exchange = async {
        let response = client.send(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Unreachable { service, reason: e.to_string() })?
            .to_bytes();
        Ok(Reply { status, headers, body })
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| ClientError::Timeout { service, timeout })?
}

/// The services behind the gateway.
#[derive(Clone)]
pub struct Services {
    pub inventory: Arc<dyn ServiceClient>,
    pub orders: Arc<dyn ServiceClient>,
    pub payments: Arc<dyn ServiceClient>,
    pub customers: Arc<dyn ServiceClient>,
    pub support: Arc<dyn ServiceClient>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}
