//! Every public endpoint of API.md: who may call it, what the gateway adds or checks, and
//! which service answers. Services trust the gateway's calls; the gateway trusts no client.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_kernel::Timestamp;
use tessera_web::{ApiResult, FieldError, Json, Path, Problem};

use crate::Gateway;
use crate::access::{Caller, MaybeCaller, forbidden, require};
use crate::auth::Role;
use crate::catalogue::{CacheKey, CachedReply};
use crate::clients::{ClientError, Reply, ServiceClient, call};

pub(crate) mod orders;

pub(crate) fn router() -> Router<Gateway> {
    let api = Router::new()
        .merge(orders::router())
        .route("/auth/token", post(issue_token))
        .route("/products", get(list_products).post(create_product))
        .route("/products/{sku}", get(get_product).patch(update_product))
        .route("/products/{sku}/stock", post(adjust_stock))
        .route("/customers", post(register_customer))
        .route("/customers/{id}", get(get_customer).patch(update_customer).delete(erase_customer))
        .route("/customers/{id}/erasure", get(erasure_progress))
        .route("/customers/{id}/export", get(export_customer))
        .route("/payment-methods", post(add_payment_method))
        .route("/payments", get(list_payments))
        .route("/tickets", get(list_tickets).post(open_ticket))
        .route("/tickets/{id}", get(get_ticket))
        .route("/tickets/{id}/messages", post(add_ticket_message))
        .route("/tickets/{id}/close", post(close_ticket))
        .route("/tickets/{id}/attachments", crate::attachments::collection())
        .route("/tickets/{id}/attachments/{attachment_id}", crate::attachments::item())
        .route("/admin/services", get(crate::admin::services))
        .route("/admin/dlq", get(crate::admin::dead_letters))
        .route("/admin/dlq/{id}/retry", post(crate::admin::retry))
        .route("/admin/dlq/{id}", axum::routing::delete(crate::admin::drop_letter))
        .route("/admin/sagas", get(crate::admin::sagas))
        .route("/admin/projections/{name}/rebuild", post(crate::admin::rebuild))
        .route("/admin/audit/verify", post(crate::audit::verify))
        .route("/admin/analytics/sales", get(crate::admin::sales));
    Router::new()
        .nest("/api/v1", api)
        .route("/.well-known/jwks.json", get(jwks))
        .route("/health", get(tessera_web::health))
}

pub(crate) fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

/// A service that did not answer becomes 503 (unreachable) or 504 (too slow).
pub(crate) fn unavailable(error: &ClientError) -> Problem {
    match error {
        ClientError::Timeout { .. } => {
            tracing::warn!(%error, "dependency too slow");
            Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "dependency_timeout",
                "a service did not answer in time; retry",
            )
        }
        ClientError::Unreachable { .. } => Problem::unavailable(error),
    }
}

/// Passes a service's answer on as it is (status, body, and the headers a client uses).
pub(crate) fn pass_on(reply: Reply) -> Response {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = reply.status;
    for name in [header::CONTENT_TYPE, header::ETAG, header::LOCATION] {
        if let Some(value) = reply.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

impl Gateway {
    /// Calls a service with the gateway's call timeout.
    pub(crate) async fn call(
        &self,
        service: &Arc<dyn ServiceClient>,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(header::HeaderName, String)],
    ) -> ApiResult<Reply> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        call(service, method, path, body, headers, self.config.call_timeout)
            .await
            .map_err(|e| unavailable(&e))
    }

    async fn forward(
        &self,
        service: &Arc<dyn ServiceClient>,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(header::HeaderName, String)],
    ) -> ApiResult<Response> {
        self.call(service, method, path, body, headers).await.map(pass_on)
    }

    /// A product read (`/products/{sku}` or a list), from the catalogue cache when the
    /// gateway has one.
    pub(crate) async fn catalogue_read(
        &self,
        path: String,
        key: CacheKey,
        timeout: std::time::Duration,
    ) -> Result<Reply, ClientError> {
        let Some(catalogue) = &self.catalogue else {
            return call(&self.services.inventory, Method::GET, &path, None, &[], timeout).await;
        };
        let inventory = self.services.inventory.clone();
        let load = move || async move {
            call(&inventory, Method::GET, &path, None, &[], timeout)
                .await
                .map(|r| CachedReply::from_reply(&r))
        };
        // The load has the deadline; this one only bounds the wait for the cache itself.
        let wait = timeout + 2 * crate::catalogue::BACKEND_DEADLINE;
        match tokio::time::timeout(wait, catalogue.get(&key, load)).await {
            Ok(answer) => answer.map(CachedReply::into_reply),
            Err(_) => Err(ClientError::Timeout { service: "inventory", timeout }),
        }
    }

    /// After a change made through this gateway, its caller reads it back at once: the entries
    /// are emptied now, not only when inventory's event arrives.
    async fn saw_product_change(&self, changed: bool, sku: &str) {
        if let Some(catalogue) = &self.catalogue
            && changed
        {
            catalogue.invalidate(crate::catalogue::groups_for(sku)).await;
        }
    }

    /// The customer who owns an order, or 404 (also when the caller may not know it exists).
    async fn order_owner(&self, caller: &Caller, order_id: uuid::Uuid) -> ApiResult<String> {
        let reply =
            self.call(&self.services.orders, Method::GET, &format!("/orders/{order_id}"), None, &[]).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(Problem::not_found("no such order"));
        }
        if !reply.is_success() {
            return pass_on_error(reply);
        }
        let owner = reply.json()["customer_id"].as_str().unwrap_or_default().to_owned();
        if caller.may_see(&owner) { Ok(owner) } else { Err(Problem::not_found("no such order")) }
    }
}

/// A service's error answer, returned as the client's error.
fn pass_on_error<T>(reply: Reply) -> ApiResult<T> {
    let body = reply.json();
    let code = body["code"].as_str().unwrap_or("upstream_error");
    let detail = body["detail"].as_str().unwrap_or("a service refused the request");
    let mut problem = Problem::new(reply.status, code, detail);
    if let Some(errors) = body["errors"].as_array() {
        problem.errors = errors
            .iter()
            .map(|e| {
                FieldError::new(
                    e["field"].as_str().unwrap_or_default(),
                    e["message"].as_str().unwrap_or_default(),
                )
            })
            .collect();
    }
    Err(problem)
}

/// A path id the gateway will put into a service's path: a UUID, or the object does not exist.
/// Parsing it (rather than passing text on) keeps `/`, `?`, `#` and `..` out of forwarded paths.
pub(crate) fn uuid(text: &str, what: &str) -> ApiResult<uuid::Uuid> {
    uuid::Uuid::parse_str(text).map_err(|_| Problem::not_found(format!("no such {what}")))
}

fn sku(text: &str) -> ApiResult<tessera_contracts::Sku> {
    tessera_contracts::Sku::parse(text).map_err(|_| Problem::not_found(format!("no product {text}")))
}

/// Payment tokens are `tok_` and hex; anything else names no token (and never reaches a path).
fn plausible_token(token: &str) -> bool {
    (1..=100).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn if_match(headers: &HeaderMap) -> Vec<(header::HeaderName, String)> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| vec![(header::IF_MATCH, v.to_owned())])
        .unwrap_or_default()
}

fn with_query(path: &str, query: Option<&str>) -> String {
    match query {
        Some(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_owned(),
    }
}

/// The body as a JSON object (the services check its fields; the gateway only reads or sets
/// the caller-owned ones).
fn object(body: Value) -> ApiResult<serde_json::Map<String, Value>> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(Problem::invalid_field("", "the body must be a JSON object")),
    }
}

/// Sets `customer_id` to the calling customer's id; a different one is someone else's.
fn own_customer_id(caller: &Caller, body: &mut serde_json::Map<String, Value>) -> ApiResult<()> {
    match body.get("customer_id") {
        Some(Value::String(id)) if id == &caller.sub => Ok(()),
        None | Some(Value::Null) => {
            body.insert("customer_id".into(), Value::String(caller.sub.clone()));
            Ok(())
        }
        Some(Value::String(_)) => Err(forbidden("customer_id names another customer")),
        Some(_) => Err(Problem::invalid_field("customer_id", "must be your customer id, as a string")),
    }
}

/// The public keys that verify the gateway's tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", security(()),
    responses((status = 200, body = crate::openapi::Jwks)))]
pub(crate) async fn jwks(State(gateway): State<Gateway>) -> impl IntoResponse {
    axum::Json(gateway.keys.jwks(now()))
}

/// `GET /ready`: the gateway's store and whatever `readiness` checks answer.
pub(crate) async fn ready(gateway: &Gateway, readiness: Option<&dyn tessera_web::Readiness>) -> Response {
    let own = GatewayStore(gateway.store.clone());
    if let Err(failing) = tessera_web::Readiness::check(&own).await {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("not answering: {}", failing.join(", ")),
        )
        .into_response();
    }
    match readiness {
        Some(readiness) => tessera_web::ready(readiness).await,
        None => axum::Json(json!({"status": "ready"})).into_response(),
    }
}

struct GatewayStore(tessera_store::Store);

impl tessera_web::Readiness for GatewayStore {
    fn check(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), Vec<String>>> + Send + '_>> {
        Box::pin(async move {
            let answered =
                tokio::time::timeout(std::time::Duration::from_secs(1), self.0.head_position()).await;
            if matches!(answered, Ok(Ok(_))) { Ok(()) } else { Err(vec![crate::SERVICE.to_owned()]) }
        })
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Credentials {
    email: String,
    password: String,
}

/// `POST /auth/token`: the same 401 for an unknown email and a wrong password.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", security(()), request_body = Credentials,
    responses((status = 200, body = crate::openapi::TokenAnswer), (status = 401, body = Problem)))]
pub(crate) async fn issue_token(
    State(gateway): State<Gateway>,
    Json(credentials): Json<Credentials>,
) -> ApiResult<Response> {
    let refused = || {
        Problem::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "the email or the password is wrong")
    };
    let email = credentials.email.trim().to_ascii_lowercase();
    let staff = gateway.staff.iter().find(|(known, _, _)| *known == email).cloned();
    let (sub, role) = if let Some((email, hash, role)) = staff {
        let password = credentials.password;
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .unwrap_or(false);
        if !matches {
            return Err(refused());
        }
        (email, role)
    } else {
        let body = json!({"email": credentials.email, "password": credentials.password});
        let reply = gateway
            .call(&gateway.services.customers, Method::POST, "/customers/credentials", Some(body), &[])
            .await?;
        // Wrong credentials (or a malformed email) are 401; a customers outage is not.
        if matches!(reply.status, StatusCode::UNAUTHORIZED | StatusCode::UNPROCESSABLE_ENTITY) {
            return Err(refused());
        }
        if !reply.is_success() {
            return pass_on_error(reply);
        }
        let id = reply.json()["customer_id"].as_str().unwrap_or_default().to_owned();
        if id.is_empty() {
            return Err(refused());
        }
        (id, Role::Customer)
    };
    let token = gateway.keys.issue(&sub, role, now()).map_err(|e| Problem::internal(&e))?;
    Ok(axum::Json(json!({
        "access_token": token, "token_type": "Bearer", "expires_in": gateway.keys.settings.ttl.as_secs(),
    }))
    .into_response())
}

// ---- products (inventory) ----

async fn list_products(
    State(g): State<Gateway>,
    _caller: MaybeCaller,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query = query.unwrap_or_default();
    match list_page(&query) {
        Some(page) => g
            .catalogue_read(
                with_query("/products", Some(&page)),
                CacheKey::list(&page),
                g.config.call_timeout,
            )
            .await
            .map(pass_on)
            .map_err(|e| unavailable(&e)),
        // Anything but a plain page is inventory's to answer (or refuse), uncached.
        None => {
            g.forward(&g.services.inventory, Method::GET, &with_query("/products", Some(&query)), None, &[])
                .await
        }
    }
}

/// A list query in one canonical form (`cursor`, then `limit` as a number), so that one page
/// is one cache entry however a client spells it; `None` for any other query.
fn list_page(query: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    let (mut limit, mut cursor) = (None, None);
    for (name, value) in pairs {
        match name.as_str() {
            "limit" if limit.is_none() => limit = Some(value.parse::<u32>().ok()?.to_string()),
            "cursor" if cursor.is_none() => cursor = Some(value),
            _ => return None,
        }
    }
    let canonical: Vec<(&str, String)> = [("cursor", cursor), ("limit", limit)]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect();
    serde_urlencoded::to_string(canonical).ok()
}

async fn get_product(
    State(g): State<Gateway>,
    _caller: MaybeCaller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    let sku = sku(&text)?;
    g.catalogue_read(format!("/products/{sku}"), CacheKey::product(sku.as_str()), g.config.call_timeout)
        .await
        .map(pass_on)
        .map_err(|e| unavailable(&e))
}

async fn create_product(
    State(g): State<Gateway>,
    caller: Caller,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let sku = body.get("sku").and_then(Value::as_str).map(str::to_owned);
    let answer = g.forward(&g.services.inventory, Method::POST, "/products", Some(body), &[]).await?;
    if let Some(sku) = sku {
        g.saw_product_change(answer.status().is_success(), &sku).await;
    }
    Ok(answer)
}

async fn update_product(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let sku = sku(&text)?;
    let answer = g
        .forward(
            &g.services.inventory,
            Method::PATCH,
            &format!("/products/{sku}"),
            Some(body),
            &if_match(&headers),
        )
        .await?;
    g.saw_product_change(answer.status().is_success(), sku.as_str()).await;
    Ok(answer)
}

async fn adjust_stock(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Admin])?;
    let sku = sku(&text)?;
    let answer = g
        .forward(&g.services.inventory, Method::POST, &format!("/products/{sku}/stock"), Some(body), &[])
        .await?;
    g.saw_product_change(answer.status().is_success(), sku.as_str()).await;
    Ok(answer)
}

// ---- customers ----

async fn register_customer(
    State(g): State<Gateway>,
    _caller: MaybeCaller,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    g.forward(&g.services.customers, Method::POST, "/customers", Some(body), &[]).await
}

/// Masks all but the first character of each part of an email, and the address but its country.
fn mask(profile: &mut Value) {
    if let Some(email) = profile["email"].as_str() {
        let masked = match email.split_once('@') {
            Some((local, domain)) => format!("{}***@{}", local.chars().next().unwrap_or('*'), domain),
            None => "***".to_owned(),
        };
        profile["email"] = Value::String(masked);
    }
    if let Some(address) = profile.get_mut("address").and_then(Value::as_object_mut) {
        for (field, value) in address.iter_mut() {
            if field != "country" {
                *value = Value::String("***".into());
            }
        }
    }
}

async fn get_customer(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    let id = uuid(&text, "customer")?.to_string();
    if !caller.may_see(&id) {
        return Err(Problem::not_found("no such customer"));
    }
    let reply = g.call(&g.services.customers, Method::GET, &format!("/customers/{id}"), None, &[]).await?;
    if caller.role == Role::Support && reply.is_success() {
        let mut profile = reply.json();
        mask(&mut profile);
        let mut response = axum::Json(profile).into_response();
        if let Some(tag) = reply.headers.get(header::ETAG) {
            response.headers_mut().insert(header::ETAG, tag.clone());
        }
        return Ok(response);
    }
    Ok(pass_on(reply))
}

/// Only the person themself or an admin may erase a person, or follow the erasure; support
/// gets 403, another customer 404 (they may not learn the id exists).
fn may_erase(caller: &Caller, id: &str) -> ApiResult<()> {
    if caller.is(id) || caller.role == Role::Admin {
        Ok(())
    } else if caller.role == Role::Support {
        Err(forbidden("support may not erase a person"))
    } else {
        Err(Problem::not_found("no such customer"))
    }
}

/// Forwards an erasure request (`DELETE /customers/{id}`) or the question how far it got
/// (`GET /customers/{id}/erasure`) for whoever may erase that person.
async fn erasure(
    g: Gateway,
    caller: Caller,
    text: String,
    method: Method,
    suffix: &str,
) -> ApiResult<Response> {
    let id = uuid(&text, "customer")?.to_string();
    may_erase(&caller, &id)?;
    g.forward(&g.services.customers, method, &format!("/customers/{id}{suffix}"), None, &[]).await
}

async fn erase_customer(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    erasure(g, caller, text, Method::DELETE, "").await
}

async fn erasure_progress(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    erasure(g, caller, text, Method::GET, "/erasure").await
}

async fn update_customer(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let id = uuid(&text, "customer")?.to_string();
    if !(caller.is(&id) || caller.role == Role::Admin) {
        return Err(if caller.role == Role::Support {
            forbidden("support may not change profiles")
        } else {
            Problem::not_found("no such customer")
        });
    }
    g.forward(
        &g.services.customers,
        Method::PATCH,
        &format!("/customers/{id}"),
        Some(body),
        &if_match(&headers),
    )
    .await
}

/// Every page of a list, or the first failing answer as the error.
async fn all_pages(g: &Gateway, service: &Arc<dyn ServiceClient>, path: &str) -> ApiResult<Vec<Value>> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let reply =
            g.call(service, Method::GET, &format!("{path}&limit=200&cursor={cursor}"), None, &[]).await?;
        if !reply.is_success() {
            return Err(Problem::unavailable(&format!("{} answered {}", service.name(), reply.status)));
        }
        let page = reply.json();
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) if !next.is_empty() => cursor = next.to_owned(),
            _ => return Ok(items),
        }
    }
}

/// Everything the services hold about one person.
/// Everything every service holds about one person (the person themself or an admin).
#[utoipa::path(get, path = "/api/v1/customers/{id}/export", tag = "customers",
    params(("id" = uuid::Uuid, Path, description = "the customer id")),
    responses((status = 200, body = crate::openapi::Export), (status = 404, body = Problem)))]
pub(crate) async fn export_customer(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    let id = uuid(&text, "customer")?;
    if !(caller.is(&id.to_string()) || caller.role == Role::Admin) {
        return Err(if caller.role == Role::Support {
            forbidden("support may not export a person")
        } else {
            Problem::not_found("no such customer")
        });
    }
    let profile = g.call(&g.services.customers, Method::GET, &format!("/customers/{id}"), None, &[]).await?;
    if !profile.is_success() {
        return pass_on_error(profile);
    }
    let orders = all_pages(&g, &g.services.orders, &format!("/orders?customer_id={id}")).await?;
    let tickets = all_pages(&g, &g.services.support, &format!("/tickets?customer_id={id}")).await?;
    let order_ids: Vec<uuid::Uuid> = orders.iter().filter_map(|o| o["id"].as_str()?.parse().ok()).collect();
    let lookups = futures_util::stream::iter(order_ids.into_iter().map(|order_id| {
        let g = &g;
        async move {
            g.call(&g.services.payments, Method::GET, &format!("/payments?order_id={order_id}"), None, &[])
                .await
        }
    }))
    .buffered(8)
    .collect::<Vec<_>>()
    .await;
    let mut payments = Vec::new();
    for reply in lookups {
        let reply = reply?;
        if !reply.is_success() {
            return Err(Problem::unavailable(&format!("payments answered {}", reply.status)));
        }
        payments.extend(reply.json().as_array().cloned().unwrap_or_default());
    }
    Ok(axum::Json(
        json!({"customer": profile.json(), "orders": orders, "payments": payments, "tickets": tickets}),
    )
    .into_response())
}

// ---- payments ----

async fn add_payment_method(
    State(g): State<Gateway>,
    caller: Caller,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Customer])?;
    let mut body = object(body)?;
    own_customer_id(&caller, &mut body)?;
    g.forward(&g.services.payments, Method::POST, "/payment-methods", Some(Value::Object(body)), &[]).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentsQuery {
    order_id: uuid::Uuid,
}

async fn list_payments(
    State(g): State<Gateway>,
    caller: Caller,
    tessera_web::Query(query): tessera_web::Query<PaymentsQuery>,
) -> ApiResult<Response> {
    let order_id = query.order_id;
    g.order_owner(&caller, order_id).await?;
    g.forward(&g.services.payments, Method::GET, &format!("/payments?order_id={order_id}"), None, &[]).await
}

// ---- orders ----

/// The query of a list of a customer's objects (orders, tickets).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    customer_id: Option<uuid::Uuid>,
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The service path for a list: a customer sees only their own objects (the filter is forced
/// to their id; another id is refused), staff filter as they ask.
fn owned_list_path(caller: &Caller, query: ListQuery, base: &str, what: &str) -> ApiResult<String> {
    let customer = match (caller.role, query.customer_id) {
        (Role::Customer, Some(id)) if id.to_string() != caller.sub => {
            return Err(forbidden(&format!("a customer lists only their own {what}")));
        }
        (Role::Customer, _) => Some(caller.sub.clone()),
        (_, id) => id.map(|id| id.to_string()),
    };
    let pairs: Vec<(&str, String)> = [
        ("customer_id", customer),
        ("status", query.status),
        ("cursor", query.cursor),
        ("limit", query.limit.map(|l| l.to_string())),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|value| (name, value)))
    .collect();
    let query = serde_urlencoded::to_string(&pairs).map_err(|e| Problem::internal(&e))?;
    Ok(with_query(base, Some(&query)))
}

// ---- tickets (support) ----

async fn open_ticket(
    State(g): State<Gateway>,
    caller: Caller,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Customer])?;
    let mut body = object(body)?;
    own_customer_id(&caller, &mut body)?;
    match body.get("order_id") {
        None | Some(Value::Null) => {}
        Some(value) => {
            let not_yours = || Problem::invalid_field("order_id", "no order of yours has this id");
            let order_id =
                value.as_str().and_then(|v| uuid::Uuid::parse_str(v).ok()).ok_or_else(not_yours)?;
            match g.order_owner(&caller, order_id).await {
                Ok(_) => {}
                Err(problem) if problem.status == StatusCode::NOT_FOUND => return Err(not_yours()),
                Err(problem) => return Err(problem),
            }
        }
    }
    g.forward(&g.services.support, Method::POST, "/tickets", Some(Value::Object(body)), &[]).await
}

/// The ticket, if the caller may see it (its owner or staff); 404 otherwise.
pub(crate) async fn visible_ticket(g: &Gateway, caller: &Caller, id: uuid::Uuid) -> ApiResult<Reply> {
    let reply = g.call(&g.services.support, Method::GET, &format!("/tickets/{id}"), None, &[]).await?;
    if !reply.is_success() {
        return pass_on_error(reply);
    }
    let owner = reply.json()["customer_id"].as_str().unwrap_or_default().to_owned();
    if caller.may_see(&owner) { Ok(reply) } else { Err(Problem::not_found("no such ticket")) }
}

async fn get_ticket(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    visible_ticket(&g, &caller, uuid(&text, "ticket")?).await.map(pass_on)
}

async fn list_tickets(
    State(g): State<Gateway>,
    caller: Caller,
    tessera_web::Query(query): tessera_web::Query<ListQuery>,
) -> ApiResult<Response> {
    let path = owned_list_path(&caller, query, "/tickets", "tickets")?;
    g.forward(&g.services.support, Method::GET, &path, None, &[]).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketMessage {
    message: String,
}

async fn add_ticket_message(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
    Json(body): Json<TicketMessage>,
) -> ApiResult<Response> {
    let id = uuid(&text, "ticket")?;
    let author = match caller.role {
        Role::Customer => "customer",
        Role::Support => "support",
        Role::Admin | Role::Service => {
            return Err(forbidden("messages come from the ticket's customer or from support"));
        }
    };
    visible_ticket(&g, &caller, id).await?;
    let body = json!({"author": author, "message": body.message});
    g.forward(&g.services.support, Method::POST, &format!("/tickets/{id}/messages"), Some(body), &[]).await
}

async fn close_ticket(
    State(g): State<Gateway>,
    caller: Caller,
    Path(text): Path<String>,
) -> ApiResult<Response> {
    require(&caller, &[Role::Support, Role::Admin])?;
    let id = uuid(&text, "ticket")?;
    g.forward(&g.services.support, Method::POST, &format!("/tickets/{id}/close"), None, &[]).await
}

#[cfg(test)]
mod tests {
    use super::list_page;

    #[test]
    fn one_page_is_one_cache_key_however_it_is_spelt() {
        assert_eq!(list_page("").as_deref(), Some(""));
        assert_eq!(list_page("limit=05&cursor=TEA-1").as_deref(), Some("cursor=TEA-1&limit=5"));
        assert_eq!(list_page("cursor=TEA%2D1&limit=5").as_deref(), Some("cursor=TEA-1&limit=5"));
        // Anything else is forwarded as it is, uncached.
        for other in ["limit=x", "limit=1&limit=2", "color=red", "cursor=a&extra=1"] {
            assert_eq!(list_page(other), None, "{other}");
        }
    }
}
