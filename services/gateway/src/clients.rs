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

#[derive(Debug, Clone, thiserror::Error)]
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
    /// Where the bearer token for calls over the network comes from; a client in the same
    /// process needs none and ignores it.
    fn use_credentials(&self, _credentials: Arc<dyn Credentials>) {}
}

/// The bearer token to show a service on the current call.
pub trait Credentials: Send + Sync {
    /// The token for a call to `service`, whose audience is that service alone.
    fn bearer(&self, service: &'static str) -> Option<String>;
    /// `role:subject` of the verified caller being served, if any.
    fn actor(&self) -> Option<String>;
}

/// A service in this process: its router, called without a socket.
#[derive(Clone)]
pub struct InProcess {
    name: &'static str,
    router: Router,
    credentials: Arc<std::sync::OnceLock<Arc<dyn Credentials>>>,
}

impl InProcess {
    pub fn new(name: &'static str, router: Router) -> Self {
        Self { name, router, credentials: Arc::new(std::sync::OnceLock::new()) }
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

    async fn send(&self, mut request: Request<Body>) -> Result<axum::response::Response, ClientError> {
        // In one process the gateway's word on who is asking is enough for the audit trail.
        let actor = self.credentials.get().and_then(|c| c.actor());
        if let Some(value) = actor.and_then(|a| header::HeaderValue::from_str(&a).ok()) {
            request.headers_mut().insert(tessera_web::token::ACTOR_HEADER, value);
        }
        self.router
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| ClientError::Unreachable { service: self.name, reason: e.to_string() })
    }

    fn use_credentials(&self, credentials: Arc<dyn Credentials>) {
        let _ = self.credentials.set(credentials);
    }
}

/// A service in another process, over http:// or https:// with pooled keep-alive
/// connections (reqwest, rustls).
#[derive(Clone)]
pub struct Http {
    name: &'static str,
    base: String,
    client: reqwest::Client,
    credentials: Arc<std::sync::OnceLock<Arc<dyn Credentials>>>,
}

/// A body this small is read before sending, so that a call whose connection could not be
/// opened is sent again on a fresh one; a larger body (an attachment) streams and is sent once.
const RETRIABLE_BODY: u64 = 64 * 1024;

impl Http {
    /// `base` is the service's root, `http://host:port` or `https://host:port` (checked against
    /// the system's roots). Like `reqwest::Client::new`, it can fail only if the TLS library
    /// cannot start, which no input causes.
    pub fn new(name: &'static str, base: &str) -> Self {
        let client = tessera_web::client::client(None, base.starts_with("https://"))
            .unwrap_or_else(|_| reqwest::Client::new());
        Self::with_client(name, base, client)
    }

    /// As [`Http::new`], also trusting the CA certificates of `ca_pem` (a cluster's own CA).
    pub fn trusting(
        name: &'static str,
        base: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<Self, tessera_web::client::ClientBuildError> {
        Ok(Self::with_client(name, base, tessera_web::client::client(ca_pem, base.starts_with("https://"))?))
    }

    fn with_client(name: &'static str, base: &str, client: reqwest::Client) -> Self {
        Self {
            name,
            base: base.trim_end_matches('/').to_owned(),
            client,
            credentials: Arc::new(std::sync::OnceLock::new()),
        }
    }

    fn request(&self, parts: &axum::http::request::Parts, body: reqwest::Body) -> reqwest::RequestBuilder {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        self.client
            .request(parts.method.clone(), format!("{}{path}", self.base))
            .headers(parts.headers.clone())
            .body(body)
    }
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("name", &self.name).field("base", &self.base).finish_non_exhaustive()
    }
}

#[async_trait]
impl ServiceClient for Http {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn send(&self, request: Request<Body>) -> Result<axum::response::Response, ClientError> {
        let unreachable = |error: &dyn std::fmt::Display| ClientError::Unreachable {
            service: self.name,
            reason: error.to_string(),
        };
        let (mut parts, body) = request.into_parts();
        // As the gateway's client, a client's own token never travels on: each service sees a
        // token minted for it. (Without credentials this is a plain client, as the CLI uses.)
        if let Some(credentials) = self.credentials.get() {
            parts.headers.remove(header::AUTHORIZATION);
            if let Some(token) = credentials.bearer(self.name) {
                let value =
                    header::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| unreachable(&e))?;
                parts.headers.insert(header::AUTHORIZATION, value);
            }
        }
        let small = axum::body::HttpBody::size_hint(&body).upper().is_some_and(|n| n <= RETRIABLE_BODY);
        let response = if small {
            let bytes = body.collect().await.map_err(|e| unreachable(&e))?.to_bytes();
            match self.request(&parts, bytes.clone().into()).send().await {
                // Nothing reached the service: a pooled connection it had closed, or a restart.
                Err(error) if error.is_connect() => self.request(&parts, bytes.into()).send().await,
                other => other,
            }
        } else {
            self.request(&parts, reqwest::Body::wrap_stream(body.into_data_stream())).send().await
        }
        .map_err(|e| unreachable(&e))?;
        let response: axum::http::Response<reqwest::Body> = response.into();
        Ok(response.map(Body::new))
    }

    fn use_credentials(&self, credentials: Arc<dyn Credentials>) {
        // Set once, when the gateway is built; a second gateway on the same clients keeps the first.
        let _ = self.credentials.set(credentials);
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
    let mut request = request
        .body(body.map_or_else(Body::empty, Body::from))
        .map_err(|e| ClientError::Unreachable { service: client.name(), reason: e.to_string() })?;
    // The service continues this request's trace.
    tessera_telemetry::inject(request.headers_mut());
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

impl Services {
    pub fn all(&self) -> [&Arc<dyn ServiceClient>; 5] {
        [&self.inventory, &self.orders, &self.payments, &self.customers, &self.support]
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}
