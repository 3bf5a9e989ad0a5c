//! A client of a running system's public API (the embedded `up`, or a distributed gateway), for
//! the commands that work through it as a user would: `demo`, `orders`, `sagas`. It imports
//! none of them.

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::{Method, Request};
use clap::Args;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tessera_gateway::{Http, ServiceClient};

pub struct ApiClient {
    http: Http,
}

impl ApiClient {
    /// A client of the system at `url` (`http://127.0.0.1:8080`).
    pub fn new(url: &str) -> Self {
        Self { http: Http::new("tessera", url) }
    }

    /// One call: the status and the JSON body (`null` when the body is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = Request::builder().method(method.clone()).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))?;
        let response = self.http.send(request).await.with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// One call that must succeed; a problem's `detail` is the error otherwise.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> anyhow::Result<Value> {
        let (status, answer) = self.call(method.clone(), path, token, body, key).await?;
        if !(200..300).contains(&status) {
            match answer["detail"].as_str() {
                Some(detail) => bail!("{method} {path} answered {status}: {detail}"),
                None => bail!("{method} {path} answered {status}: {answer}"),
            }
        }
        Ok(answer)
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let answer = self
            .expect(
                Method::POST,
                "/api/v1/auth/token",
                None,
                Some(json!({"email": email, "password": password})),
                None,
            )
            .await?;
        answer["access_token"].as_str().map(str::to_owned).context("no access_token in the answer")
    }
}

/// How an operator's command reaches a deployment through its public API: the gateway's (or
/// `up`'s) address, and a token, or a staff sign-in to get one.
#[derive(Clone, Debug, Args)]
pub struct GatewayTarget {
    /// The system's address: `up`'s, or the distributed gateway's.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "TESSERA_URL")]
    pub url: String,
    /// An access token of a member of staff; without it, the command signs in with --email and
    /// --password.
    #[arg(long, env = "TESSERA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The staff sign-in (the embedded demo's admin by default).
    #[arg(long, default_value = "admin@tessera.local", env = "TESSERA_ADMIN_EMAIL")]
    pub email: String,
    #[arg(long, default_value = "admin", env = "TESSERA_ADMIN_PASSWORD", hide_env_values = true)]
    pub password: String,
}

impl GatewayTarget {
    /// The client and the token its calls carry.
    pub async fn connect(&self) -> anyhow::Result<(ApiClient, String)> {
        let client = ApiClient::new(&self.url);
        let token = match &self.token {
            Some(token) => token.clone(),
            None => client.sign_in(&self.email, &self.password).await.with_context(|| {
                format!(
                    "cannot sign in to {} as {}: give --token, or --email and --password",
                    self.url, self.email
                )
            })?,
        };
        Ok((client, token))
    }
}
