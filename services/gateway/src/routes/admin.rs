//! `/api/v1/admin/...`: the operators' view across every service, for admins only. Each
//! service answers for itself (its internal `/admin` routes); the gateway gathers the answers,
//! and a service that does not answer in time is reported as down rather than failing the page.

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};
use tessera_web::{ApiResult, Path, Problem};

use crate::access::{Caller, require};
use crate::auth::Role;
use crate::clients::{ServiceClient, call};
use crate::forward::{pass_on, unavailable};
use crate::state::Gateway;

pub(crate) mod sagas;

pub(super) fn router() -> Router<Gateway> {
    Router::new()
        .route("/admin/services", get(services))
        .route("/admin/metrics", get(metrics))
        .route("/admin/dlq", get(dead_letters))
        .route("/admin/dlq/{id}/retry", post(retry))
        .route("/admin/dlq/{id}", delete(drop_letter))
        .route("/admin/sagas", get(sagas::list))
        .route("/admin/sagas/{id}", get(sagas::with_id))
        .route("/admin/projections/{name}/rebuild", post(rebuild))
        .route("/admin/audit/verify", post(crate::audit::verify))
        .route("/admin/analytics/sales", get(sales))
        .route("/admin/keys/rotate", post(rotate_keys))
}

/// `POST /admin/keys/rotate`: a new signing key signs from now on, on every replica within
/// the reload interval; the old one verifies until the last token it signed expires.
#[utoipa::path(post, path = "/api/v1/admin/keys/rotate", tag = "admin",
    responses((status = 200, description = "the key that signs now and those still honoured", body = Object),
              (status = 403, body = Problem)))]
pub(crate) async fn rotate_keys(State(g): State<Gateway>, caller: Caller) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let keys = crate::storage::KeyStore { store: g.store.clone(), sealer: g.config.key_sealer.clone() };
    let added = keys.add_key().await.map_err(|e| Problem::internal(&e))?;
    let now = g.store.clock().now();
    keys.load_keys(&g.keys, now).await.map_err(|e| Problem::internal(&e))?;
    tracing::info!(kid = %added.kid, actor = %caller.sub, "the signing key was rotated");
    Ok(axum::Json(json!({
        "kid": g.keys.current_kid(),
        "previous": g.keys.previous_kids(),
        "replicas_within_seconds": crate::storage::KEY_RELOAD_EVERY.as_secs(),
    }))
    .into_response())
}

fn all(g: &Gateway) -> [&std::sync::Arc<dyn ServiceClient>; 5] {
    g.services.all()
}

/// `GET /admin/services`: per service, health, outbox backlog, dead letters, stuck sagas,
/// projection lag and the store's read latency.
#[utoipa::path(get, path = "/api/v1/admin/services", tag = "admin",
    responses((status = 200, description = "per service: health, backlog, lag, dead letters, projections", body = Object)))]
pub(crate) async fn services(State(g): State<Gateway>, caller: Caller) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let timeout = g.config.dependency_timeout * 5;
    let answers = futures_util::future::join_all(all(&g).map(|service| async move {
        (service.name(), call(service, Method::GET, "/admin/status", None, &[], timeout).await)
    }))
    .await;
    let services: Vec<Value> = answers
        .into_iter()
        .map(|(name, answer)| match answer {
            Ok(reply) if reply.is_success() => reply.json(),
            Ok(reply) => json!({"service": name, "health": "failing", "status": reply.status.as_u16()}),
            Err(error) => json!({"service": name, "health": "down", "error": error.to_string()}),
        })
        .collect();
    Ok(axum::Json(json!({ "services": services })).into_response())
}

/// `GET /admin/metrics`: every process's metrics in Prometheus' text format, the gateway's own
/// and each service's, for `tessera top`: a process's `/metrics` answers only its own host, and
/// in the distributed topology each holds only its own figures. A service that does not answer
/// is reported down, as in `/admin/services`. (Embedded, each answer is the one process's
/// figures of every service.)
#[utoipa::path(get, path = "/api/v1/admin/metrics", tag = "admin",
    responses((status = 200, description = "`{services: [{service, health, metrics?, error?}]}`: each process's metrics as Prometheus' text format", body = Object),
              (status = 403, body = Problem)))]
pub(crate) async fn metrics(State(g): State<Gateway>, caller: Caller) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let timeout = g.config.dependency_timeout * 5;
    let answers = futures_util::future::join_all(all(&g).map(|service| async move {
        (service.name(), call(service, Method::GET, "/admin/metrics", None, &[], timeout).await)
    }))
    .await;
    let own = tessera_runtime::metrics::prometheus().render();
    let mut services = vec![json!({"service": crate::config::SERVICE, "health": "up", "metrics": own})];
    services.extend(answers.into_iter().map(|(name, answer)| match answer {
        Ok(reply) if reply.is_success() => {
            json!({"service": name, "health": "up", "metrics": String::from_utf8_lossy(&reply.body)})
        }
        Ok(reply) => json!({"service": name, "health": "failing", "status": reply.status.as_u16()}),
        Err(error) => json!({"service": name, "health": "down", "error": error.to_string()}),
    }));
    Ok(axum::Json(json!({ "services": services })).into_response())
}

/// `GET /admin/dlq`: every service's dead letters; ids are `<service>:<id>`.
#[utoipa::path(get, path = "/api/v1/admin/dlq", tag = "admin",
    responses((status = 200, description = "every service's dead letters; ids are `<service>:<id>`", body = Object)))]
pub(crate) async fn dead_letters(State(g): State<Gateway>, caller: Caller) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let mut items = Vec::new();
    for service in all(&g) {
        let reply = g.call(service, Method::GET, "/admin/dlq", None, &[]).await?;
        if !reply.is_success() {
            return Err(Problem::unavailable(&format!("{} answered {}", service.name(), reply.status)));
        }
        for mut letter in reply.json()["items"].as_array().cloned().unwrap_or_default() {
            letter["id"] = json!(format!("{}:{}", service.name(), letter["id"]));
            letter["service"] = json!(service.name());
            items.push(letter);
        }
    }
    Ok(axum::Json(json!({ "items": items })).into_response())
}

fn letter<'a>(g: &'a Gateway, id: &str) -> ApiResult<(&'a std::sync::Arc<dyn ServiceClient>, i64)> {
    let missing = || Problem::not_found("no such dead letter");
    let (service, number) = id.split_once(':').ok_or_else(missing)?;
    let number: i64 = number.parse().map_err(|_| missing())?;
    let client = all(g).into_iter().find(|s| s.name() == service).ok_or_else(missing)?;
    Ok((client, number))
}

#[utoipa::path(post, path = "/api/v1/admin/dlq/{id}/retry", tag = "admin",
    params(("id" = String, Path, description = "`<service>:<id>`")),
    responses((status = 202, description = "queued for another delivery", body = Object), (status = 404, body = Problem)))]
pub(crate) async fn retry(
    State(g): State<Gateway>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let (service, number) = letter(&g, &id)?;
    g.call(service, Method::POST, &format!("/admin/dlq/{number}/retry"), None, &[]).await.map(pass_on)
}

#[utoipa::path(delete, path = "/api/v1/admin/dlq/{id}", tag = "admin",
    params(("id" = String, Path, description = "`<service>:<id>`")),
    responses((status = 204, description = "dropped"), (status = 404, body = Problem)))]
pub(crate) async fn drop_letter(
    State(g): State<Gateway>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let (service, number) = letter(&g, &id)?;
    g.call(service, Method::DELETE, &format!("/admin/dlq/{number}"), None, &[]).await.map(pass_on)
}

/// `POST /admin/projections/{name}/rebuild`: asks the service that has it; 202, progress in
/// `/admin/services`.
#[utoipa::path(post, path = "/api/v1/admin/projections/{name}/rebuild", tag = "admin",
    params(("name" = String, Path, description = "the projection")),
    responses((status = 202, description = "rebuilding; progress in /admin/services", body = Object),
        (status = 404, body = Problem)))]
pub(crate) async fn rebuild(
    State(g): State<Gateway>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit());
    if !valid {
        return Err(Problem::not_found("no such projection"));
    }
    for service in all(&g) {
        let answer = call(
            service,
            Method::POST,
            &format!("/admin/projections/{name}/rebuild"),
            None,
            &[],
            g.config.call_timeout,
        )
        .await
        .map_err(|e| unavailable(&e))?;
        if answer.status == StatusCode::ACCEPTED {
            return Ok(pass_on(answer));
        }
    }
    Err(Problem::not_found("no such projection"))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SalesQuery {
    /// First day, `YYYY-MM-DD`.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    from: Option<String>,
    /// Last day, `YYYY-MM-DD`.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    to: Option<String>,
}

/// `GET /admin/analytics/sales`: sales per day, product and market; buyers and orders are
/// counted by pseudonym, and no customer id or personal data is in the answer.
#[utoipa::path(get, path = "/api/v1/admin/analytics/sales", tag = "admin", params(SalesQuery),
    responses((status = 200, description = "`{items: [{day, sku, country, currency, units, revenue, orders, buyers}]}`", body = Object)))]
pub(crate) async fn sales(
    State(g): State<Gateway>,
    caller: Caller,
    tessera_web::Query(query): tessera_web::Query<SalesQuery>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let pairs: Vec<(&str, String)> =
        [("from", query.from), ("to", query.to)].into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
    let encoded = serde_urlencoded::to_string(&pairs).map_err(|e| Problem::internal(&e))?;
    let path = if encoded.is_empty() {
        "/analytics/sales".to_owned()
    } else {
        format!("/analytics/sales?{encoded}")
    };
    g.call(&g.services.orders, Method::GET, &path, None, &[]).await.map(pass_on)
}
