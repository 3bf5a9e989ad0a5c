//! `tessera keys rotate`: a new signing key for the gateway's tokens, on a running system,
//! through the gateway's admin API. The new key signs at once on the replica that answers and
//! on every other within its reload interval; the old one verifies until the last token it
//! signed expires, so nobody signed in is signed out.

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::{Method, Request};
use clap::Args;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tessera_gateway::{Http, ServiceClient};

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    action: KeysAction,
    /// The gateway's address.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080", env = "TESSERA_URL")]
    url: String,
    /// An admin's sign-in.
    #[arg(long, global = true, default_value = "admin@tessera.local", env = "TESSERA_ADMIN_EMAIL")]
    admin_email: String,
    #[arg(
        long,
        global = true,
        default_value = "admin",
        env = "TESSERA_ADMIN_PASSWORD",
        hide_default_value = true
    )]
    admin_password: String,
    /// Print the answer as JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum KeysAction {
    /// Sign tokens with a new key from now on.
    Rotate,
}

async fn exchange(
    http: &Http,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = Request::builder().method(method.clone()).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))?;
    let response = http.send(request).await.with_context(|| format!("{method} {path}"))?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let KeysAction::Rotate = args.action;
    let http = Http::new("gateway", &args.url);
    let credentials = json!({"email": args.admin_email, "password": args.admin_password});
    let (status, answer) =
        exchange(&http, Method::POST, "/api/v1/auth/token", None, Some(credentials)).await?;
    if status != 200 {
        bail!("signing in as {} answered {status}: {}", args.admin_email, answer["detail"]);
    }
    let token = answer["access_token"].as_str().context("no access_token in the answer")?;
    let (status, rotated) =
        exchange(&http, Method::POST, "/api/v1/admin/keys/rotate", Some(token), None).await?;
    if status != 200 {
        bail!("the rotation answered {status}: {}", rotated["detail"]);
    }
    if args.json {
        println!("{rotated}");
    } else {
        println!("signing with {}", rotated["kid"].as_str().unwrap_or("?"));
        for kid in rotated["previous"].as_array().into_iter().flatten() {
            println!("still verifying {} until its tokens expire", kid.as_str().unwrap_or("?"));
        }
        println!(
            "every gateway replica signs with the new key within {} s",
            rotated["replicas_within_seconds"].as_u64().unwrap_or(0)
        );
    }
    Ok(())
}
