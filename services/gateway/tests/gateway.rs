//! The gateway in process over the real services on SQLite files: composition with a silent
//! service, idempotent order placement under a race, rate limits, and the edge's headers.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::json;
use tessera_gateway::{
    Gateway, GatewayConfig, InProcess, RateLimits, Role, ServiceClient, Services, TokenSettings,
};
use tessera_kernel::{Clock, IdGen, SystemClock, Timestamp, UuidV7Gen};
use tessera_runtime::{Service, Storage, open_store};
use tessera_testkit::TempDataDir;
use tessera_testkit::http::call_raw;
use uuid::Uuid;

struct Shop {
    router: Router,
    gateway: Gateway,
    payments: tessera_payments::PaymentsService,
    _data: TempDataDir,
}

fn service_router(service: &dyn Service) -> Router {
    let (router, _) = service.routes().split_for_parts();
    tessera_web::standard_layers(router)
}

/// A customers service that accepts requests and never answers: what a stuck dependency looks
/// like from the gateway.
fn silent_service() -> Router {
    Router::new().fallback(std::future::pending::<()>)
}

async fn shop(config: GatewayConfig, customers_silent: bool) -> Shop {
    let data = TempDataDir::new();
    let storage = Storage::Files(data.path().to_path_buf());
    let ids: Arc<dyn IdGen> = Arc::new(UuidV7Gen);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let open = async |name: &str, migrations: Vec<tessera_store::MigrationSet>| {
        open_store(&storage, name, &migrations).await.expect("open store")
    };
    let inventory = tessera_inventory::InventoryService::new(
        open("inventory", tessera_inventory::migrations()).await,
        ids.clone(),
        clock.clone(),
    );
    let network =
        Arc::new(tessera_payments::SimulatedNetwork::new(tessera_payments::NetworkSettings::default()));
    let payments = tessera_payments::PaymentsService::new(
        open("payments", tessera_payments::migrations()).await,
        network,
        ids.clone(),
        clock.clone(),
    );
    let orders = tessera_orders::OrdersService::new(
        open("orders", tessera_orders::migrations()).await,
        &tessera_orders::OrdersSettings::default(),
        tessera_testkit::temporary_vault().await,
        ids.clone(),
        clock.clone(),
    );
    let customers_store = open("customers", tessera_customers::migrations()).await;
    let vault = tessera_testkit::temporary_vault().await;
    let customers =
        tessera_customers::CustomersService::new(customers_store, vault.clone(), ids.clone(), clock.clone());
    let support = tessera_support::SupportService::new(
        open("support", tessera_support::migrations()).await,
        vault.clone(),
        tessera_support::AttachmentStore::local(&data.path().join("attachments")).expect("attachments"),
        ids,
        clock,
    );
    inventory
        .inventory()
        .create_product(
            &tessera_contracts::Sku::parse("TEA-001").expect("sku"),
            "Sencha",
            "Green tea",
            &tessera_contracts::Money::eur(850).expect("money"),
            100,
            &tessera_web::token::Actor::system("test"),
        )
        .await
        .expect("product");
    let client = |name: &'static str, router: Router| -> Arc<dyn ServiceClient> {
        Arc::new(InProcess::new(name, router))
    };
    let services = Services {
        inventory: client("inventory", service_router(&inventory)),
        orders: client("orders", service_router(&orders)),
        payments: client("payments", service_router(&payments)),
        customers: client(
            "customers",
            if customers_silent { silent_service() } else { service_router(&customers) },
        ),
        support: client("support", service_router(&support)),
    };
    let gateway_store = open("gateway", vec![tessera_gateway::MIGRATIONS]).await;
    let gateway =
        Gateway::new(services, gateway_store, config, TokenSettings::default()).await.expect("gateway");
    let router = gateway.router(utoipa::openapi::OpenApi::default(), None);
    Shop { router, gateway, payments, _data: data }
}

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

impl Shop {
    fn customer(&self) -> (Uuid, String) {
        let id = Uuid::now_v7();
        (id, self.gateway.keys().issue(&id.to_string(), Role::Customer, now()).expect("token"))
    }

    async fn card(&self, customer: Uuid) -> String {
        self.payments
            .payments()
            .tokenise(
                customer,
                "4242424242424242",
                12,
                2031,
                "123",
                &tessera_web::token::Actor::system("test"),
            )
            .await
            .expect("card")
            .token
    }

    async fn place(&self, token: &str, key: &str, body: &serde_json::Value) -> tessera_testkit::http::Answer {
        let bearer = format!("Bearer {token}");
        call_raw(
            &self.router,
            Method::POST,
            "/api/v1/orders",
            Some(body.to_string().into_bytes()),
            &[("authorization", &bearer), ("idempotency-key", key)],
        )
        .await
    }
}

#[tokio::test]
async fn a_silent_service_is_named_in_degraded_and_the_view_still_answers_in_time() {
    let shop = shop(GatewayConfig::default(), true).await;
    let (customer, token) = shop.customer();
    let card = shop.card(customer).await;
    let body = json!({"items": [{"sku": "TEA-001", "quantity": 2}], "payment_token": card});
    let placed = shop.place(&token, "k-1", &body).await;
    assert_eq!(placed.status, StatusCode::ACCEPTED, "{}", placed.body);
    let id = placed.body["id"].as_str().expect("id");

    let started = Instant::now();
    let bearer = format!("Bearer {token}");
    let view = call_raw(
        &shop.router,
        Method::GET,
        &format!("/api/v1/orders/{id}"),
        None,
        &[("authorization", &bearer)],
    )
    .await;
    let took = started.elapsed();
    assert_eq!(view.status, StatusCode::OK, "{}", view.body);
    assert_eq!(view.body["degraded"], json!(["customers"]));
    assert_eq!(view.body["items"][0]["name"], "Sencha", "the other parts are there");
    assert_eq!(view.body["customer"]["id"], customer.to_string());
    assert!(
        took < Duration::from_secs(3),
        "bounded by the 200 ms dependency deadline, not by the silent service: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_places_one_order_even_when_two_requests_race() {
    let shop = shop(GatewayConfig::default(), false).await;
    let (customer, token) = shop.customer();
    let card = shop.card(customer).await;
    let body = json!({"items": [{"sku": "TEA-001", "quantity": 1}], "payment_token": card});
    let (a, b) = tokio::join!(shop.place(&token, "race", &body), shop.place(&token, "race", &body));
    let statuses = [a.status, b.status];
    assert!(statuses.contains(&StatusCode::ACCEPTED), "one of them placed it: {statuses:?}");
    assert_eq!(
        a.body["id"], b.body["id"],
        "the loser answers with the winner's order: {} / {}",
        a.body, b.body
    );
    assert_eq!(
        [a.header("idempotent-replayed"), b.header("idempotent-replayed")].iter().flatten().count(),
        1,
        "exactly one of them is a replay"
    );
    let first = if a.header("idempotent-replayed").is_none() { &a } else { &b };
    let again = shop.place(&token, "race", &body).await;
    assert_eq!(again.body["id"], first.body["id"], "the same order again: {}", again.body);
    assert!(
        [StatusCode::ACCEPTED, StatusCode::CREATED].contains(&again.status),
        "as it is now, settled (201) or not yet (202): {}",
        again.status
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = shop
        .place(&token, "race", &json!({"items": [{"sku": "TEA-001", "quantity": 2}], "payment_token": card}))
        .await;
    assert_eq!(
        (other.status, other.problem_code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );

    let bearer = format!("Bearer {token}");
    let list =
        call_raw(&shop.router, Method::GET, "/api/v1/orders", None, &[("authorization", &bearer)]).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1), "one order: {}", list.body);

    let missing = call_raw(
        &shop.router,
        Method::POST,
        "/api/v1/orders",
        Some(body.to_string().into_bytes()),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(
        (missing.status, missing.problem_code()),
        (StatusCode::BAD_REQUEST, "idempotency_key_required")
    );
    let unknown = shop
        .place(
            &token,
            "k-2",
            &json!({"items": [{"sku": "NOPE-001", "quantity": 1}], "payment_token": "tok_nothing"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<_> =
        unknown.body["errors"].as_array().expect("errors").iter().map(|e| e["field"].clone()).collect();
    assert_eq!(fields, [json!("items[0].sku"), json!("payment_token")]);
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after() {
    let n = |value| NonZeroU32::new(value).expect("non-zero");
    let limits =
        RateLimits { per_token: n(1), token_burst: n(3), per_address: n(1000), address_burst: n(1000) };
    let shop = shop(GatewayConfig { rate_limits: limits, ..GatewayConfig::default() }, false).await;
    let (_, token) = shop.customer();
    let bearer = format!("Bearer {token}");
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..5 {
        let answer =
            call_raw(&shop.router, Method::GET, "/api/v1/orders", None, &[("authorization", &bearer)]).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(answer.problem_code(), "rate_limited");
            retry_after = answer.header("retry-after").map(str::to_owned);
        }
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert!(retry_after.and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s >= 1));
    let (_, other) = shop.customer();
    let answer = call_raw(
        &shop.router,
        Method::GET,
        "/api/v1/orders",
        None,
        &[("authorization", &format!("Bearer {other}"))],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "another token has its own allowance");
    // The scheme's case changes nothing: authentication accepts `BEARER`, so the limit counts it.
    let shouting = format!("BEARER {token}");
    let answer =
        call_raw(&shop.router, Method::GET, "/api/v1/orders", None, &[("authorization", &shouting)]).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "the same token's allowance, spelt otherwise");
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_the_security_headers() {
    let shop = shop(GatewayConfig::default(), false).await;
    for (path, status) in [("/api/v1/products", 200), ("/api/v1/nowhere", 404), ("/api/v1/orders", 401)] {
        let answer = call_raw(&shop.router, Method::GET, path, None, &[]).await;
        assert_eq!(answer.status.as_u16(), status, "{path}");
        assert!(answer.header("x-request-id").is_some_and(|id| id.len() >= 32), "{path}: a request id");
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{path}");
        assert!(answer.header("content-security-policy").is_some(), "{path}");
    }
    let answer =
        call_raw(&shop.router, Method::GET, "/api/v1/products", None, &[("x-request-id", "trace-me-42")])
            .await;
    assert_eq!(answer.header("x-request-id"), Some("trace-me-42"), "a client's id is kept");
    let odd = "x".repeat(300);
    let answer =
        call_raw(&shop.router, Method::GET, "/api/v1/products", None, &[("x-request-id", &odd)]).await;
    assert!(answer.header("x-request-id").is_some_and(|id| id.len() == 36), "an odd id is replaced");
    let challenge = call_raw(&shop.router, Method::GET, "/api/v1/orders", None, &[]).await;
    assert_eq!(challenge.header("www-authenticate"), Some("Bearer"));
}

async fn graphql(shop: &Shop, token: Option<&str>, body: serde_json::Value) -> tessera_testkit::http::Answer {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("authorization", b.as_str())).collect();
    call_raw(&shop.router, Method::POST, "/graphql", Some(body.to_string().into_bytes()), &headers).await
}

#[tokio::test]
async fn graphql_follows_the_same_rules_by_id_through_aliases_and_nested_fields() {
    let shop = shop(GatewayConfig::default(), false).await;
    let (alice, alice_token) = shop.customer();
    let (_, bob_token) = shop.customer();
    let card = shop.card(alice).await;
    let placed = graphql(
        &shop,
        Some(&alice_token),
        json!({"query": format!(
            "mutation {{ placeOrder(items: [{{sku: \"TEA-001\", quantity: 2}}], paymentToken: \"{card}\", idempotencyKey: \"g-1\") {{ id status }} }}"
        )}),
    )
    .await;
    assert_eq!(placed.status, StatusCode::OK);
    let order = placed.body["data"]["placeOrder"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", placed.body))
        .to_owned();

    let query = json!({"query": format!("{{ mine: order(id: \"{order}\") {{ id status items {{ sku name quantity }} }} product(sku: \"TEA-001\") {{ name }} }}")});
    let answer = graphql(&shop, Some(&alice_token), query.clone()).await;
    assert_eq!(answer.body["data"]["mine"]["id"], order, "{}", answer.body);
    assert_eq!(answer.body["data"]["mine"]["items"][0]["name"], "Sencha");
    let answer = graphql(&shop, Some(&bob_token), query).await;
    assert!(answer.body["data"]["mine"].is_null(), "bob cannot reach alice's order: {}", answer.body);
    assert_eq!(answer.body["data"]["product"]["name"], "Sencha", "public fields still answer");

    // A customer listing someone else's orders, directly or through an alias, is refused.
    let theirs = json!({"query": format!("{{ x: orders(customerId: \"{alice}\") {{ items {{ id }} }} }}")});
    let answer = graphql(&shop, Some(&bob_token), theirs).await;
    assert!(answer.body["data"]["x"].is_null(), "{}", answer.body);
    assert_eq!(answer.body["errors"][0]["extensions"]["code"], "forbidden");
    let anonymous =
        graphql(&shop, None, json!({"query": format!("{{ order(id: \"{order}\") {{ id }} }}")})).await;
    assert_eq!(anonymous.body["errors"][0]["extensions"]["status"], 401, "{}", anonymous.body);
}

#[tokio::test]
async fn abusive_graphql_is_refused_before_it_runs() {
    let shop = shop(GatewayConfig::default(), false).await;
    let (customer, token) = shop.customer();
    // Deep: the customer → orders → order → customer cycle, eleven levels down.
    let deep = format!(
        "{{ customer(id: \"{customer}\") {{ orders(limit: 1) {{ items {{ order {{ customer {{ profile {{ orders(limit: 1) {{ items {{ order {{ customer {{ id }} }} }} }} }} }} }} }} }} }} }}"
    );
    let answer = graphql(&shop, Some(&token), json!({"query": deep})).await;
    assert!(
        answer.body["data"].is_null()
            && answer.body["errors"][0]["message"].as_str().is_some_and(|m| m.contains("nested too deep")),
        "{}",
        answer.body
    );
    // No document at all, alone or in a batch: a malformed request, not a failed query.
    for body in [
        json!({}),
        json!({"query": "  "}),
        json!([{"query": "{ __typename }"}, {}]),
        json!(["{ __typename }"]),
    ] {
        let answer = graphql(&shop, Some(&token), body.clone()).await;
        assert_eq!(
            (answer.status.as_u16(), answer.body["errors"][0]["field"].clone()),
            (422, json!("query")),
            "{body}: {}",
            answer.body
        );
    }
    // Costly: 200 composed orders each with its customer's profile.
    let costly =
        "{ orders(limit: 200) { items { order { items { name } customer { profile { email } } } } } }";
    let answer = graphql(&shop, Some(&token), json!({"query": costly})).await;
    assert!(
        answer.body["errors"][0]["message"].as_str().is_some_and(|m| m.contains("too complex")),
        "{}",
        answer.body
    );
    // Wide: many aliases of one field.
    let wide: String = (0..20).map(|n| format!("p{n}: product(sku: \"TEA-001\") {{ name }} ")).collect();
    let answer = graphql(&shop, Some(&token), json!({"query": format!("{{ {wide} }}")})).await;
    assert_eq!((answer.status, answer.problem_code()), (StatusCode::BAD_REQUEST, "query_too_complex"));
    // Large batches, and introspection.
    let batch: Vec<_> = (0..11).map(|_| json!({"query": "{ product(sku: \"TEA-001\") { name } }"})).collect();
    let answer = graphql(&shop, Some(&token), json!(batch)).await;
    assert_eq!((answer.status, answer.problem_code()), (StatusCode::BAD_REQUEST, "query_too_complex"));
    let answer = graphql(&shop, Some(&token), json!({"query": "{ __schema { types { name } } }"})).await;
    assert!(answer.body["data"]["__schema"].is_null(), "introspection is off: {}", answer.body);
    let answer = graphql(&shop, Some(&token), json!({"query": "{"})).await;
    assert!(
        answer.body["errors"].is_array() && answer.status == StatusCode::OK,
        "a syntax error is a GraphQL error"
    );
}

#[tokio::test]
async fn every_operation_of_a_batch_counts_against_the_rate_limit() {
    let n = |value| NonZeroU32::new(value).expect("non-zero");
    let limits =
        RateLimits { per_token: n(1), token_burst: n(3), per_address: n(1000), address_burst: n(1000) };
    let shop = shop(GatewayConfig { rate_limits: limits, ..GatewayConfig::default() }, false).await;
    let (_, token) = shop.customer();
    let batch: Vec<_> = (0..5).map(|_| json!({"query": "{ product(sku: \"TEA-001\") { name } }"})).collect();
    let answer = graphql(&shop, Some(&token), json!(batch)).await;
    assert_eq!((answer.status, answer.problem_code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
    assert!(answer.header("retry-after").is_some());
}

#[test]
fn the_graphql_schema_matches_its_snapshot() {
    let sdl = tessera_gateway::graphql::schema(false).sdl();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/schema.graphql");
    if std::env::var("TESSERA_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &sdl).expect("write the snapshot");
    }
    let snapshot =
        std::fs::read_to_string(&path).expect("the snapshot exists (TESSERA_UPDATE_SNAPSHOTS=1 writes it)");
    assert_eq!(sdl, snapshot, "the schema changed: review it, then run with TESSERA_UPDATE_SNAPSHOTS=1");
}

#[tokio::test]
async fn signed_in_callers_read_the_graphql_schema_as_sdl_while_introspection_is_off() {
    let shop = shop(GatewayConfig::default(), false).await;
    let path = "/graphql/schema.graphql";
    let anonymous = call_raw(&shop.router, Method::GET, path, None, &[]).await;
    assert_eq!((anonymous.status, anonymous.problem_code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (_, token) = shop.customer();
    let bearer = format!("Bearer {token}");
    let answer = call_raw(&shop.router, Method::GET, path, None, &[("authorization", &bearer)]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.header("content-type").is_some_and(|t| t.starts_with("text/plain")));
    assert_eq!(answer.body.as_str(), Some(tessera_gateway::graphql::schema(false).sdl().as_str()));
    let document = call_raw(&shop.router, Method::GET, "/openapi.json", None, &[]).await;
    assert!(document.body["paths"][path]["get"].is_object(), "documented: {}", document.body["paths"]);
}

#[tokio::test]
async fn a_key_answers_for_a_day_and_then_places_a_new_order() {
    let shop = shop(GatewayConfig::default(), false).await;
    let (customer, token) = shop.customer();
    let card = shop.card(customer).await;
    let body = json!({"items": [{"sku": "TEA-001", "quantity": 1}], "payment_token": card});
    let first = shop.place(&token, "daily", &body).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let other = json!({"items": [{"sku": "TEA-001", "quantity": 2}], "payment_token": card});
    let reused = shop.place(&token, "daily", &other).await;
    assert_eq!(reused.problem_code(), "idempotency_key_reused", "{}", reused.body);
    // A body the checks refuse (a product that does not exist) under a key that placed an order
    // is still a reused key: orders, which keeps it, decides.
    let unknown = json!({"items": [{"sku": "NOPE-001", "quantity": 1}], "payment_token": card});
    let refused = shop.place(&token, "daily", &unknown).await;
    assert_eq!(refused.problem_code(), "idempotency_key_reused", "{}", refused.body);
    let fresh = shop.place(&token, "never-used", &unknown).await;
    assert_eq!(fresh.problem_code(), "validation_failed", "a new key is checked as before: {}", fresh.body);

    // A day and an hour later (orders keeps the key with the time it placed the order).
    let config = tessera_store::StoreConfig::Sqlite {
        path: shop._data.file("orders.db"),
        options: tessera_store::SqliteOptions::default(),
    };
    let store = tessera_store::Store::open(&config, &[]).await.expect("open orders' store");
    let mut unit = store.begin();
    unit.execute(
        tessera_store::Statement::new(
            "UPDATE order_requests SET kept_at = kept_at - $1 WHERE request_key = $2",
        )
        .bind(25 * 3_600_000_000_i64)
        .bind("daily"),
    );
    unit.commit().await.expect("age the key");
    let later = shop.place(&token, "daily", &other).await;
    assert_eq!(later.status, StatusCode::ACCEPTED, "{}", later.body);
    assert_ne!(later.body["id"], first.body["id"], "an expired key places a new order");
    assert_eq!(later.header("idempotent-replayed"), None);
    let again = shop.place(&token, "daily", &other).await;
    assert_eq!(
        (again.body["id"].clone(), again.header("idempotent-replayed")),
        (later.body["id"].clone(), Some("true"))
    );
}

/// SHA-256, as the gateway hashes a request body.
fn ring_digest(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes).as_ref().to_vec()
}

// ---- tickets' attachments ----

const BOUNDARY: &str = "gateway-test-boundary-3b9a";

/// A multipart/form-data body with one file part.
fn form(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Sends `request` to the gateway; the answer's body as bytes.
async fn send(
    shop: &Shop,
    request: axum::http::Request<axum::body::Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = shop.router.clone().oneshot(request).await.expect("routers are infallible");
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.into_body().collect().await.expect("read the body").to_bytes().to_vec();
    (status, headers, body)
}

async fn upload(
    shop: &Shop,
    token: &str,
    ticket: &str,
    body: Vec<u8>,
    content_length: bool,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut request = axum::http::Request::post(format!("/api/v1/tickets/{ticket}/attachments"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"));
    if content_length {
        request = request.header("content-length", body.len());
    }
    send(shop, request.body(axum::body::Body::from(body)).expect("request")).await
}

async fn fetch(shop: &Shop, token: &str, path: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let request = axum::http::Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .expect("request");
    send(shop, request).await
}

fn hex_sha256(bytes: &[u8]) -> String {
    ring_digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn problem(answer: &(StatusCode, axum::http::HeaderMap, Vec<u8>)) -> (StatusCode, String) {
    assert_eq!(
        answer.1.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{} {}",
        answer.0,
        String::from_utf8_lossy(&answer.2[..answer.2.len().min(300)])
    );
    let body: serde_json::Value = serde_json::from_slice(&answer.2).expect("problem json");
    (answer.0, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn ticket_of(shop: &Shop, token: &str) -> String {
    let opened = call_raw(
        &shop.router,
        Method::POST,
        "/api/v1/tickets",
        Some(json!({"subject": "Damaged parcel", "message": "Photo attached"}).to_string().into_bytes()),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    opened.body["id"].as_str().expect("ticket id").to_owned()
}

#[tokio::test]
async fn an_attachment_reaches_its_owner_and_support_intact_and_nobody_else() {
    let shop = shop(GatewayConfig::default(), false).await;
    let (_, owner) = shop.customer();
    let (_, stranger) = shop.customer();
    let support =
        shop.gateway.keys().issue(&Uuid::now_v7().to_string(), Role::Support, now()).expect("token");
    let ticket = ticket_of(&shop, &owner).await;

    // Over the 1 MiB every other route takes, under the 10 MiB an attachment may be.
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend((0..3 * 1024 * 1024).map(|i: u32| b"0123456789abcdef \n"[(i % 18) as usize]));
    let uploaded = upload(&shop, &owner, &ticket, form("scan.pdf", &pdf), true).await;
    assert_eq!(uploaded.0, StatusCode::CREATED, "{}", String::from_utf8_lossy(&uploaded.2));
    let view: serde_json::Value = serde_json::from_slice(&uploaded.2).expect("json");
    assert_eq!(
        (view["content_type"].as_str(), view["sha256"].as_str()),
        (Some("application/pdf"), Some(hex_sha256(&pdf).as_str()))
    );
    let id = view["id"].as_str().expect("id");
    let file = format!("/api/v1/tickets/{ticket}/attachments/{id}");
    let list = format!("/api/v1/tickets/{ticket}/attachments");

    for token in [&owner, &support] {
        let (status, headers, body) = fetch(&shop, token, &file).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(hex_sha256(&body), hex_sha256(&pdf), "the bytes arrive as sent");
        assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/pdf"));
        assert_eq!(headers.get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"));
        let disposition =
            headers.get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(disposition.starts_with("attachment;") && disposition.contains("scan.pdf"), "{disposition}");
        let (status, _, body) = fetch(&shop, token, &list).await;
        assert_eq!(status, StatusCode::OK);
        let items: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(items["items"][0]["id"], id);
    }

    // Another customer meets the ticket's own answer: it does not exist for them.
    for answer in [
        fetch(&shop, &stranger, &file).await,
        fetch(&shop, &stranger, &list).await,
        upload(&shop, &stranger, &ticket, form("x.txt", b"mine now"), true).await,
    ] {
        assert_eq!(problem(&answer), (StatusCode::NOT_FOUND, "not_found".to_owned()));
    }
    let anonymous =
        send(&shop, axum::http::Request::get(&file).body(axum::body::Body::empty()).expect("request")).await;
    assert_eq!(anonymous.0, StatusCode::UNAUTHORIZED);
    let (status, _, body) = fetch(&shop, &owner, &list).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).expect("json")["items"].as_array().map(Vec::len),
        Some(1)
    );

    // The public document describes the three routes, the upload as a multipart form.
    let document = call_raw(&shop.router, Method::GET, "/openapi.json", None, &[]).await.body;
    let paths = &document["paths"];
    let upload = &paths["/api/v1/tickets/{id}/attachments"]["post"];
    assert!(upload["requestBody"]["content"]["multipart/form-data"].is_object(), "{upload}");
    assert_eq!(upload["responses"]["413"]["description"], "The file is over 10 MiB.");
    assert!(paths["/api/v1/tickets/{id}/attachments"]["get"].is_object());
    assert!(paths["/api/v1/tickets/{id}/attachments/{attachment_id}"]["get"].is_object());
}

#[tokio::test]
async fn an_upload_over_10_mib_is_413_whether_or_not_it_says_its_length() {
    let shop = shop(GatewayConfig::default(), false).await;
    let (_, owner) = shop.customer();
    let ticket = ticket_of(&shop, &owner).await;
    let big = vec![b'a'; 11 * 1024 * 1024];
    for declared in [true, false] {
        let answer = upload(&shop, &owner, &ticket, form("big.txt", &big), declared).await;
        assert_eq!(
            problem(&answer),
            (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".to_owned()),
            "declared: {declared}"
        );
    }
    // A declared length over the limit is refused before anything is read or asked of support.
    let (_, stranger) = shop.customer();
    let answer = upload(&shop, &stranger, &ticket, form("big.txt", &big), true).await;
    assert_eq!(problem(&answer), (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".to_owned()));
    // Just over the file limit, inside the body limit: support's own check answers.
    let answer =
        upload(&shop, &owner, &ticket, form("big.txt", &vec![b'a'; 10 * 1024 * 1024 + 1]), true).await;
    assert_eq!(problem(&answer), (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large".to_owned()));
    let (status, _, body) = fetch(&shop, &owner, &format!("/api/v1/tickets/{ticket}/attachments")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).expect("json")["items"], json!([]));
}

/// An upload whose body is `head` now and `tail` when the returned sender is used, declaring
/// its whole length (so support reserves only that much of the quotas).
fn stalled_upload(
    token: &str,
    ticket: &str,
    body: &[u8],
    split: usize,
) -> (axum::http::Request<axum::body::Body>, tokio::sync::mpsc::Sender<bytes::Bytes>, bytes::Bytes) {
    let (more, pieces) = tokio::sync::mpsc::channel::<bytes::Bytes>(2);
    more.try_send(bytes::Bytes::copy_from_slice(&body[..split])).expect("the first piece");
    let stream = futures_util::stream::unfold(pieces, |mut pieces| async move {
        pieces.recv().await.map(|piece| (Ok::<_, std::convert::Infallible>(piece), pieces))
    });
    let request = axum::http::Request::post(format!("/api/v1/tickets/{ticket}/attachments"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .header("content-length", body.len())
        .body(axum::body::Body::from_stream(stream))
        .expect("request");
    (request, more, bytes::Bytes::copy_from_slice(&body[split..]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stream_through_so_a_full_house_and_a_quota_reach_the_client_as_support_answers() {
    let shop = shop(GatewayConfig::default(), false).await;
    let (_, owner) = shop.customer();
    let (slow_ticket, quick_ticket) = (ticket_of(&shop, &owner).await, ticket_of(&shop, &owner).await);
    // Support's 16 upload slots, held by uploads whose bodies stall after their first piece.
    // They reach support before their bodies end: a gateway that read bodies whole first
    // would never let them, and the 17th would not be refused.
    let mut stalled = Vec::new();
    for n in 0..16 {
        let body = form(&format!("{n}.txt"), &vec![b'a'; 1_000]);
        let (request, more, tail) = stalled_upload(&owner, &slow_ticket, &body, 300);
        let router = shop.router.clone();
        let answer = tokio::spawn(async move {
            use tower::ServiceExt;
            router.oneshot(request).await.expect("routers are infallible").status()
        });
        stalled.push((answer, more, tail));
    }
    let mut busy = None;
    for _ in 0..20 {
        // Until they have all taken their slots, a quick upload may take one first.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            stalled.iter().all(|(answer, _, _)| !answer.is_finished()),
            "every stalled upload holds a slot"
        );
        let answer = upload(&shop, &owner, &quick_ticket, form("quick.txt", b"quick"), true).await;
        if answer.0 == StatusCode::SERVICE_UNAVAILABLE {
            busy = Some(answer);
            break;
        }
        assert_eq!(answer.0, StatusCode::CREATED, "{}", String::from_utf8_lossy(&answer.2));
    }
    let busy = busy.expect("a full house");
    assert_eq!(problem(&busy), (StatusCode::SERVICE_UNAVAILABLE, "uploads_busy".to_owned()));
    assert_eq!(busy.1.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    for (answer, more, tail) in stalled {
        more.send(tail).await.expect("the rest");
        drop(more);
        assert_eq!(answer.await.expect("an upload"), StatusCode::CREATED);
    }

    // The slow ticket holds 16 files; a ticket holds 20 by default.
    for n in 0..4 {
        let answer = upload(&shop, &owner, &slow_ticket, form(&format!("more{n}.txt"), b"more"), true).await;
        assert_eq!(answer.0, StatusCode::CREATED, "{}", String::from_utf8_lossy(&answer.2));
    }
    let over = upload(&shop, &owner, &slow_ticket, form("one-too-many.txt", b"x"), false).await;
    assert_eq!(problem(&over), (StatusCode::CONFLICT, "ticket_file_quota_exceeded".to_owned()));

    let document = call_raw(&shop.router, Method::GET, "/openapi.json", None, &[]).await.body;
    let responses = &document["paths"]["/api/v1/tickets/{id}/attachments"]["post"]["responses"];
    for status in ["409", "413", "503"] {
        assert!(responses[status]["description"].is_string(), "{status}: {responses}");
    }
}

/// Peak memory of the whole process (gateway and support in it) while ten customers upload
/// 10 MiB each at once, the bodies made as they are sent. A measurement, not a check: run it
/// alone (`cargo test -p tessera-gateway --test gateway -- --ignored --exact
/// peak_memory_of_ten_concurrent_10_mib_uploads --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it alone"]
async fn peak_memory_of_ten_concurrent_10_mib_uploads() {
    fn kib(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_default();
        line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or_default()
    }
    let shop = shop(GatewayConfig::default(), false).await;
    let piece = bytes::Bytes::from(vec![b'a'; 64 * 1024]);
    let mut uploads = Vec::new();
    let mut tickets = Vec::new();
    for _ in 0..10 {
        let (_, token) = shop.customer();
        let ticket = ticket_of(&shop, &token).await;
        tickets.push((token, ticket));
    }
    let (before_rss, before_peak) = (kib("VmRSS:"), kib("VmHWM:"));
    for (token, ticket) in tickets {
        let head = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n\r\n"
        );
        let tail = format!("\r\n--{BOUNDARY}--\r\n");
        let mut pieces = vec![bytes::Bytes::from(head)];
        pieces.extend(std::iter::repeat_n(piece.clone(), 160));
        pieces.push(bytes::Bytes::from(tail));
        let length: usize = pieces.iter().map(bytes::Bytes::len).sum();
        let stream = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, std::convert::Infallible>));
        let request = axum::http::Request::post(format!("/api/v1/tickets/{ticket}/attachments"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
            .header("content-length", length)
            .body(axum::body::Body::from_stream(stream))
            .expect("request");
        let router = shop.router.clone();
        uploads.push(tokio::spawn(async move {
            use tower::ServiceExt;
            router.oneshot(request).await.expect("routers are infallible").status()
        }));
    }
    for upload in uploads {
        assert_eq!(upload.await.expect("an upload"), StatusCode::CREATED);
    }
    let peak = kib("VmHWM:");
    println!(
        "RSS before: {} MiB (peak so far {} MiB); peak during 10 concurrent 10 MiB uploads: {} MiB (+{} MiB)",
        before_rss / 1024,
        before_peak / 1024,
        peak / 1024,
        peak.saturating_sub(before_rss) / 1024
    );
}

#[tokio::test]
async fn failed_sign_ins_keep_the_account_out_for_longer_each_time_and_a_success_clears_them() {
    let shop = shop(GatewayConfig::default(), false).await;
    let sign_in = |password: &'static str| {
        let router = shop.router.clone();
        async move {
            let body = json!({"email": "admin@tessera.local", "password": password}).to_string();
            call_raw(&router, Method::POST, "/api/v1/auth/token", Some(body.into_bytes()), &[]).await
        }
    };
    // Five failures are free; the sixth keeps the account out for a second.
    for attempt in 1..=6 {
        let answer = sign_in("wrong").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "attempt {attempt}: {}", answer.body);
    }
    let kept_out = sign_in("admin").await;
    assert_eq!(
        (kept_out.status, kept_out.problem_code()),
        (StatusCode::TOO_MANY_REQUESTS, "sign_in_throttled"),
        "even the right password waits"
    );
    assert_eq!(kept_out.header("retry-after"), Some("1"));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let wrong_again = sign_in("wrong").await;
    assert_eq!(wrong_again.status, StatusCode::UNAUTHORIZED);
    let longer = sign_in("admin").await;
    assert_eq!(longer.header("retry-after"), Some("2"), "the seventh failure earned two seconds");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(sign_in("admin").await.status, StatusCode::OK, "then the right password signs in");
    for attempt in 1..=5 {
        assert_eq!(
            sign_in("wrong").await.status,
            StatusCode::UNAUTHORIZED,
            "cleared: attempt {attempt} is free"
        );
    }
}

#[tokio::test]
async fn every_call_a_graphql_query_fans_out_into_counts_against_the_callers_rate() {
    let n = |value| NonZeroU32::new(value).expect("non-zero");
    let limits =
        RateLimits { per_token: n(1), token_burst: n(4), per_address: n(1000), address_burst: n(1000) };
    let shop = shop(GatewayConfig { rate_limits: limits, ..GatewayConfig::default() }, false).await;
    let (_, token) = shop.customer();
    let query = |count: usize| {
        let fields: String =
            (0..count).map(|i| format!("p{i}: product(sku: \"TEA-001\") {{ name }} ")).collect();
        json!({"query": format!("query {{ {fields} }}")})
    };
    // The edge takes one of the burst of four, the two fields two more: within the budget.
    let within = graphql(&shop, Some(&token), query(2)).await;
    assert!(within.body["errors"].is_null(), "{}", within.body);
    assert!(within.body["data"]["p1"]["name"].is_string(), "{}", within.body);
    // Six more fields are past it: refused, as the six REST calls would have been.
    let past = graphql(&shop, Some(&token), query(6)).await;
    let limited = past.body["errors"]
        .as_array()
        .is_some_and(|errors| errors.iter().any(|e| e["extensions"]["code"] == "rate_limited"));
    assert!(limited, "{}", past.body);
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_and_anyone_else_is_their_own_address() {
    let n = |value| NonZeroU32::new(value).expect("non-zero");
    let limits =
        RateLimits { per_token: n(1000), token_burst: n(1000), per_address: n(1), address_burst: n(2) };
    let config = GatewayConfig {
        rate_limits: limits,
        trusted_proxies: vec!["10.0.0.0/8".parse().expect("a net")],
        ..GatewayConfig::default()
    };
    let shop = shop(config, false).await;
    let from = |peer: &str, forwarded: &str| {
        let mut request = axum::http::Request::builder().method(Method::GET).uri("/api/v1/products");
        if !forwarded.is_empty() {
            request = request.header("x-forwarded-for", forwarded);
        }
        let mut request = request.body(axum::body::Body::empty()).expect("a request");
        let peer: std::net::SocketAddr = format!("{peer}:40000").parse().expect("an address");
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        let router = shop.router.clone();
        async move { tower::ServiceExt::oneshot(router, request).await.expect("an answer").status() }
    };
    // Two clients behind the ingress each get their own allowance of two.
    for _ in 0..2 {
        assert_eq!(from("10.0.0.5", "203.0.113.1").await, StatusCode::OK);
        assert_eq!(from("10.0.0.5", "203.0.113.2").await, StatusCode::OK);
    }
    assert_eq!(from("10.0.0.5", "203.0.113.1").await, StatusCode::TOO_MANY_REQUESTS);
    // A client that is not a trusted proxy cannot choose its address by the header.
    assert_eq!(from("192.0.2.7", "203.0.113.50").await, StatusCode::OK);
    assert_eq!(from("192.0.2.7", "203.0.113.51").await, StatusCode::OK);
    assert_eq!(from("192.0.2.7", "203.0.113.52").await, StatusCode::TOO_MANY_REQUESTS);
}
