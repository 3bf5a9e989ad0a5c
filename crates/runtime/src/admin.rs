//! Every service's operator routes, added by the runtime to its router (internal: the gateway
//! exposes them to admins under `/api/v1/admin`): where its outbox, dead letters, sagas and
//! projections stand, the actions on them, and the process's metrics. Searching sagas is the
//! orchestrator's own route (orders' `/admin/sagas`): only it knows what its sagas' data holds.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_store::{SqlValue, Statement, Store};
use tessera_web::{ApiResult, Path, Problem, Query};

#[derive(Clone)]
struct Admin {
    service: &'static str,
    store: Store,
}

pub(crate) fn routes(service: &'static str, store: Store) -> Router {
    Router::new()
        .route("/admin/status", get(status))
        .route("/admin/metrics", get(metrics))
        .route("/admin/dlq", get(dead_letters))
        .route("/admin/dlq/{id}/retry", post(retry))
        .route("/admin/dlq/{id}", axum::routing::delete(drop_letter))
        .route("/admin/projections/{name}/rebuild", post(rebuild))
        .route("/admin/audit/head", get(audit_head))
        .route("/admin/audit/verify", post(audit_verify))
        .route("/admin/audit/accesses", post(person_accesses))
        .with_state(Admin { service, store })
}

fn failed(error: &dyn std::fmt::Display) -> Problem {
    Problem::unavailable(error)
}

fn micros_to_seconds(now: tessera_kernel::Timestamp, then: tessera_kernel::Timestamp) -> f64 {
    now.since(then).as_secs_f64()
}

async fn status(State(admin): State<Admin>) -> ApiResult<Response> {
    let now = admin.store.clock().now();
    let backlog = admin.store.outbox_backlog().await.map_err(|e| failed(&e))?;
    let head = admin.store.head_position().await.map_err(|e| failed(&e))?;
    let dead = tessera_bus::list_dead_letters(&admin.store, None).await.map_err(|e| failed(&e))?;
    let projections = tessera_projection::status(&admin.store).await.unwrap_or_default();
    let stuck = stuck_sagas(&admin.store).await.len();
    let started = std::time::Instant::now();
    admin.store.head_position().await.map_err(|e| failed(&e))?;
    Ok(axum::Json(json!({
        "service": admin.service,
        "health": "up",
        "events": head,
        "outbox": {
            "unsent": backlog.unsent,
            "oldest_unsent_seconds": backlog.oldest_unsent.map(|t| micros_to_seconds(now, t)),
        },
        "dead_letters": dead.iter().filter(|d| d.state == "parked").count(),
        "stuck_sagas": stuck,
        "store_read_ms": started.elapsed().as_secs_f64() * 1000.0,
        "store_commit_ms": admin.store.recent_commit_latency().as_secs_f64() * 1000.0,
        "consumer_lag": tessera_bus::consumer_lags(admin.service)
            .into_iter()
            .map(|lag| (lag.consumer, json!({"seconds": lag.seconds, "messages": lag.messages})))
            .collect::<serde_json::Map<_, _>>(),
        "projections": projections.iter().map(|p| json!({
            "name": p.name, "mode": p.mode, "position": p.position, "head": p.head,
            "lag_events": p.lag_events, "lag_seconds": p.lag_seconds,
            "rebuilding": p.rebuilding, "rebuilds": p.rebuilds,
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// The process's metrics, for the gateway's `GET /api/v1/admin/metrics`: a service's own
/// `/metrics` answers only its host, and an operator's `tessera top` may be anywhere the gateway
/// is reachable from. (Embedded, every service's process is the same one: the figures of all.)
async fn metrics() -> Response {
    crate::metrics::render(&crate::metrics::prometheus())
}

async fn dead_letters(State(admin): State<Admin>) -> ApiResult<Response> {
    let letters = tessera_bus::list_dead_letters(&admin.store, None).await.map_err(|e| failed(&e))?;
    let items: Vec<Value> = letters
        .iter()
        .map(|d| {
            json!({
                "id": d.id, "consumer": d.consumer, "message_id": d.envelope.id.to_string(),
                "name": d.envelope.name, "key": d.envelope.key, "error": d.error,
                "attempts": d.attempts, "state": d.state, "failed_at": d.failed_at.to_rfc3339(),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

async fn retry(State(admin): State<Admin>, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    if tessera_bus::request_retry(&admin.store, id).await.map_err(|e| failed(&e))? {
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(Problem::not_found("no such dead letter"))
    }
}

async fn drop_letter(State(admin): State<Admin>, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    if tessera_bus::drop_dead_letter(&admin.store, id).await.map_err(|e| failed(&e))? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found("no such dead letter"))
    }
}

/// Sagas whose compensation keeps failing, from the saga table if this service runs sagas.
pub(crate) async fn stuck_sagas(store: &Store) -> Vec<Value> {
    let rows = store
        .query(Statement::new(
            "SELECT saga, saga_id, stuck, updated_at FROM tessera_sagas WHERE stuck IS NOT NULL ORDER BY updated_at",
        ))
        .await
        .unwrap_or_default();
    rows.iter()
        .map(|row| {
            let text = |column| row.text(column).map(str::to_owned).unwrap_or_default();
            let updated = match row.get("updated_at") {
                Ok(SqlValue::Int(v)) => tessera_kernel::Timestamp::from_micros(v.max(&0).unsigned_abs()).to_rfc3339(),
                _ => String::new(),
            };
            json!({"saga": text("saga"), "id": text("saga_id"), "reason": text("stuck"), "updated_at": updated})
        })
        .collect()
}

async fn rebuild(State(admin): State<Admin>, Path(name): Path<String>) -> ApiResult<Response> {
    match tessera_projection::request_rebuild(&admin.store, &name).await {
        Ok(()) => {
            Ok((StatusCode::ACCEPTED, axum::Json(json!({"service": admin.service, "projection": name})))
                .into_response())
        }
        Err(tessera_projection::ProjectionError::Unknown(_)) => Err(Problem::not_found("no such projection")),
        Err(error) => Err(failed(&error)),
    }
}

/// The newest link of this service's audit chain: witnesses keep it outside this database, so
/// a later truncation or rewrite of the tail is found.
async fn audit_head(State(admin): State<Admin>) -> ApiResult<Response> {
    let head = admin.store.audit_head().await.map_err(|e| failed(&e))?;
    Ok(axum::Json(json!({
        "service": admin.service,
        "index": head.map(|(index, _)| index),
        "hash": head.map(|(_, hash)| tessera_store::hash_to_hex(&hash)),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// A head witnessed earlier: the chain must still reach it, unchanged.
    head_index: Option<u64>,
    head_hash: Option<String>,
}

/// Walks the whole chain: `{service, records, ok, first_bad_index?, problem?}`.
async fn audit_verify(State(admin): State<Admin>, Query(query): Query<AuditQuery>) -> ApiResult<Response> {
    let head = match (query.head_index, query.head_hash.as_deref()) {
        (None, None) => None,
        (Some(index), Some(hash)) => Some((
            index,
            tessera_store::hash_from_hex(hash)
                .ok_or_else(|| Problem::invalid_field("head_hash", "must be 64 hex digits"))?,
        )),
        _ => return Err(Problem::invalid_field("head_index", "give head_index and head_hash together")),
    };
    let verification = admin.store.verify_audit(head).await.map_err(|e| failed(&e))?;
    let mut body = json!({
        "service": admin.service,
        "records": verification.records,
        "ok": verification.ok,
    });
    if let Some(index) = verification.first_bad_index {
        body["first_bad_index"] = json!(index);
    }
    if let Some(problem) = &verification.problem {
        body["problem"] = json!(problem.to_string());
    }
    Ok(axum::Json(body).into_response())
}

/// The most resources a caller may name as the person's: an export names their orders and
/// tickets, and a body this size stays far below the services' body limit.
const MAX_OWNED_RESOURCES: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessesQuery {
    /// The person: a customer id, or a staff member's subject.
    person: String,
    /// Resources known to be theirs from other services (`order/<id>`): parts of them kept
    /// here count as theirs.
    #[serde(default)]
    resources: Vec<String>,
}

/// `POST /admin/audit/accesses`: the records of this service's trail that concern one person
/// (what they did, and what anyone did to their data): `{service, items: [Access]}`.
async fn person_accesses(
    State(admin): State<Admin>,
    tessera_web::Json(query): tessera_web::Json<AccessesQuery>,
) -> ApiResult<Response> {
    if query.person.is_empty() || query.person.len() > 320 {
        return Err(Problem::invalid_field("person", "must be 1 to 320 characters"));
    }
    if query.resources.len() > MAX_OWNED_RESOURCES {
        return Err(Problem::invalid_field("resources", "at most 10000"));
    }
    let mut filter = tessera_store::audit_access::PersonFilter::new(&query.person);
    query.resources.into_iter().for_each(|resource| filter.own(resource));
    let items = admin.store.person_accesses(admin.service, filter).await.map_err(|e| failed(&e))?;
    Ok(axum::Json(json!({ "service": admin.service, "items": items })).into_response())
}
