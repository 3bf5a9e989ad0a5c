//! One HTTP call as the load sees it: an answer (status and JSON body, whatever the body was)
//! or a transport failure named by a short code, never a panic; and the identities the load
//! acts as, whose tokens are renewed when the system answers 401.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tessera_gateway::{Http, ServiceClient};
use tokio::sync::{Mutex, RwLock};

/// What came back from one request.
#[derive(Debug)]
pub enum Outcome {
    Answer {
        status: u16,
        body: Value,
    },
    /// No HTTP answer: `connect`, `timeout`, `transport` (the connection broke), `request`
    /// (the request could not be built).
    Failed(&'static str),
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Answer { status, .. } if (200..300).contains(status))
    }

    /// The code errors are counted under: the status, or the transport failure's name.
    pub fn code(&self) -> String {
        match self {
            Self::Answer { status, .. } => status.to_string(),
            Self::Failed(code) => (*code).to_owned(),
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Answer { status, .. } => Some(*status),
            Self::Failed(_) => None,
        }
    }

    pub fn body(&self) -> &Value {
        match self {
            Self::Answer { body, .. } => body,
            Self::Failed(_) => &Value::Null,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Client {
    http: Http,
    timeout: Duration,
    /// Shared by the clones, so that the run's requests are counted wherever they are sent.
    sent: Arc<AtomicU64>,
}

impl Client {
    pub fn new(url: &str, timeout: Duration) -> Self {
        Self { http: Http::new("tessera", url), timeout, sent: Arc::default() }
    }

    /// Requests sent so far, answered or not, by this client and its clones.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Outcome {
        self.call_preferring(method, path, token, body, idempotency_key, None).await
    }

    /// A call with a `Prefer` header (RFC 7240), such as `wait=10`.
    pub async fn call_preferring(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
        prefer: Option<&str>,
    ) -> Outcome {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(prefer) = prefer {
            request = request.header("prefer", prefer);
        }
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let Ok(request) = request.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string()))) else {
            return Outcome::Failed("request");
        };
        self.sent.fetch_add(1, Ordering::Relaxed);
        let exchange = async {
            let response = match self.http.send(request).await {
                Ok(response) => response,
                Err(error) => return Outcome::Failed(transport_code(&error.to_string())),
            };
            let status = response.status().as_u16();
            match response.into_body().collect().await {
                // A body that is not JSON (a proxy's error page, an empty 502) is kept as Null.
                Ok(bytes) => Outcome::Answer {
                    status,
                    body: serde_json::from_slice(&bytes.to_bytes()).unwrap_or(Value::Null),
                },
                Err(_) => Outcome::Failed("transport"),
            }
        };
        tokio::time::timeout(self.timeout, exchange).await.unwrap_or(Outcome::Failed("timeout"))
    }

    /// A bearer token for `email`, or why not.
    pub async fn sign_in(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let body = json!({"email": email, "password": password});
        match self.call(Method::POST, "/api/v1/auth/token", None, Some(&body), None).await {
            Outcome::Answer { status: 200..=299, body } => {
                body["access_token"].as_str().map(str::to_owned).context("no access_token in the answer")
            }
            outcome => anyhow::bail!("signing in as {email} answered {}: {}", outcome.code(), outcome.body()),
        }
    }
}

/// The hyper client's error text is all the gateway's `Http` passes on; a refused or reset
/// connection is told apart from one that broke mid-answer by it.
fn transport_code(reason: &str) -> &'static str {
    let reason = reason.to_ascii_lowercase();
    if ["(connect)", "tcp connect", "trying to connect", "refused"].iter().any(|c| reason.contains(c)) {
        "connect"
    } else {
        "transport"
    }
}

/// Someone the load acts as, with a token renewed on 401 (a restarted gateway may have new
/// keys; tokens expire).
#[derive(Debug)]
pub struct Identity {
    pub email: String,
    password: String,
    /// The token and how many times it was renewed, to renew only the token that was refused.
    token: RwLock<(String, u64)>,
    /// Held while signing in again, so that a burst of 401s signs in once.
    renewing: Mutex<()>,
}

impl Identity {
    pub fn new(email: String, password: String, token: String) -> Arc<Self> {
        Arc::new(Self { email, password, token: RwLock::new((token, 0)), renewing: Mutex::new(()) })
    }

    /// Signs in again unless someone already replaced the token of `generation`.
    async fn renew(&self, client: &Client, generation: u64) -> anyhow::Result<()> {
        let _renewing = self.renewing.lock().await;
        if self.token.read().await.1 != generation {
            return Ok(());
        }
        let token = client.sign_in(&self.email, &self.password).await?;
        *self.token.write().await = (token, generation + 1);
        Ok(())
    }

    /// A call with this identity's token, signing in again and repeating it once on 401.
    pub async fn call(
        &self,
        client: &Client,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Outcome {
        self.call_preferring(client, method, path, body, idempotency_key, None).await
    }

    /// [`Identity::call`] with a `Prefer` header.
    pub async fn call_preferring(
        &self,
        client: &Client,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
        prefer: Option<&str>,
    ) -> Outcome {
        let (token, generation) = self.token.read().await.clone();
        let outcome =
            client.call_preferring(method.clone(), path, Some(&token), body, idempotency_key, prefer).await;
        if outcome.status() != Some(401) || self.renew(client, generation).await.is_err() {
            return outcome;
        }
        let token = self.token.read().await.0.clone();
        client.call_preferring(method, path, Some(&token), body, idempotency_key, prefer).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_counted_as_connect() {
        assert_eq!(
            transport_code("client error (Connect): tcp connect error: Connection refused"),
            "connect"
        );
        assert_eq!(transport_code("connection closed before message completed"), "transport");
        assert_eq!(transport_code("error reading a body from connection"), "transport");
    }
}
