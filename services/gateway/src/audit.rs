//! `POST /admin/audit/verify`: every service walks its own audit chain; the gateway keeps the
//! newest head each service showed it (in its own database) and hands it back on the next
//! check, so a service whose chain was cut short or rewritten at the end cannot hide it.
//! Heads are witnessed on every check and by a background task between checks.

use std::time::Duration;

use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tessera_store::{Statement, Store};
use tessera_web::{ApiResult, Problem};

use crate::access::{Caller, require};
use crate::auth::Role;
use crate::clients::{ServiceClient, call};
use crate::state::Gateway;

/// How often the gateway asks each service for its chain's head between checks.
pub(crate) const WITNESS_EVERY: Duration = Duration::from_secs(30);

async fn witnessed(store: &Store, service: &str) -> Result<Option<(i64, String)>, tessera_store::StoreError> {
    let rows = store
        .query(Statement::new("SELECT idx, hash FROM gateway_audit_heads WHERE service = $1").bind(service))
        .await?;
    Ok(match rows.first() {
        Some(row) => Some((row.int("idx")?, row.text("hash")?.to_owned())),
        None => None,
    })
}

/// Keeps `index, hash` as the service's head if it is newer than the one kept.
async fn witness(
    store: &Store,
    service: &str,
    index: i64,
    hash: &str,
) -> Result<(), tessera_store::StoreError> {
    let now = i64::try_from(store.clock().now().as_micros()).unwrap_or(i64::MAX);
    let mut unit = store.begin();
    unit.execute(
        Statement::new(
            "INSERT INTO gateway_audit_heads (service, idx, hash, seen_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (service) DO UPDATE SET idx = excluded.idx, hash = excluded.hash, seen_at = excluded.seen_at
             WHERE excluded.idx > gateway_audit_heads.idx",
        )
        .bind(service)
        .bind(index)
        .bind(hash)
        .bind(now),
    );
    unit.commit().await.map(|_| ())
}

/// Asks `service` for its head and keeps it.
async fn witness_head(g: &Gateway, service: &std::sync::Arc<dyn ServiceClient>) -> Result<(), String> {
    let reply = call(service, Method::GET, "/admin/audit/head", None, &[], g.config.call_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let head = reply.json();
    if let (Some(index), Some(hash)) = (head["index"].as_i64(), head["hash"].as_str()) {
        witness(&g.store, service.name(), index, hash).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Witnesses every service's head now and then, until the process ends.
pub(crate) async fn witness_heads(g: Gateway) {
    // The first round waits: the gateway is not listening yet, and services that check tokens
    // fetch its keys from it.
    loop {
        tokio::time::sleep(WITNESS_EVERY).await;
        for service in g.services.all() {
            if let Err(error) = witness_head(&g, service).await {
                tracing::debug!(service = service.name(), %error, "audit head not witnessed this round");
            }
        }
    }
}

/// Per service: `{service, records, ok, first_bad_index?, problem?}`; 200 even when a chain is
/// broken (the body says where), 503 if a service cannot be checked.
#[utoipa::path(post, path = "/api/v1/admin/audit/verify", tag = "admin",
    responses((status = 200, description = "per service: records checked, ok, and the first bad index", body = Object)))]
pub(crate) async fn verify(State(g): State<Gateway>, caller: Caller) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let mut results = Vec::new();
    for service in g.services.all() {
        let kept = witnessed(&g.store, service.name()).await.map_err(|e| Problem::unavailable(&e))?;
        let path = match &kept {
            Some((index, hash)) => format!("/admin/audit/verify?head_index={index}&head_hash={hash}"),
            None => "/admin/audit/verify".to_owned(),
        };
        let reply = g.call(service, Method::POST, &path, None, &[]).await?;
        if !reply.is_success() {
            return Err(Problem::unavailable(&format!("{} answered {}", service.name(), reply.status)));
        }
        let result = reply.json();
        // Only a chain that verifies is a head worth keeping.
        if result["ok"] == json!(true)
            && let Err(error) = witness_head(&g, service).await
        {
            tracing::warn!(service = service.name(), %error, "audit head not witnessed");
        }
        results.push(result);
    }
    let ok = results.iter().all(|r| r["ok"] == json!(true));
    Ok(axum::Json(json!({"ok": ok, "services": Value::Array(results)})).into_response())
}
