//! Inventory's HTTP routes, called in-process on a real SQLite store: every answer a client
//! can provoke, good or bad, and the OpenAPI document that describes them.

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::json;
use tessera_inventory::Inventory;
use tessera_kernel::{HybridClock, SystemClock, UuidV7Gen};
use tessera_store::{SqliteOptions, Store, StoreConfig};
use tessera_testkit::TempDataDir;
use tessera_testkit::http::{call, call_raw};

struct App {
    router: Router,
    openapi: utoipa::openapi::OpenApi,
    _data: TempDataDir,
}

async fn app() -> App {
    let data = TempDataDir::new();
    let config = StoreConfig::Sqlite { path: data.file("inventory.db"), options: SqliteOptions::default() };
    let store = Store::open(&config, &tessera_inventory::migrations()).await.expect("open the store");
    let inventory =
        Inventory::new(store, Arc::new(UuidV7Gen), Arc::new(HybridClock::new(Arc::new(SystemClock))));
    let (router, openapi) = tessera_inventory::http::router().split_for_parts();
    App { router: tessera_web::standard_layers(router.with_state(inventory)), openapi, _data: data }
}

fn tea(sku: &str, stock: i64) -> serde_json::Value {
    json!({"sku": sku, "name": "Green tea", "description": "Sencha", "price": {"amount": 450, "currency": "EUR"}, "stock": stock})
}

#[tokio::test]
async fn a_created_product_is_served_with_its_etag_and_listed_in_pages() {
    let app = app().await;
    for n in 0..5 {
        let created =
            call(&app.router, Method::POST, "/products", Some(tea(&format!("TEA-00{n}"), 10))).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        assert_eq!(created.header("etag"), Some("\"1\""));
    }
    let product = call(&app.router, Method::GET, "/products/TEA-003", None).await;
    assert_eq!(product.status, StatusCode::OK);
    assert_eq!(
        product.body,
        json!({"sku": "TEA-003", "name": "Green tea", "description": "Sencha",
               "price": {"amount": 450, "currency": "EUR"}, "available": 10, "reserved": 0})
    );

    let first = call(&app.router, Method::GET, "/products?limit=2", None).await;
    assert_eq!(first.status, StatusCode::OK);
    let skus = |answer: &tessera_testkit::http::Answer| -> Vec<String> {
        answer.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["sku"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(skus(&first), ["TEA-000", "TEA-001"]);
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let second = call(&app.router, Method::GET, &format!("/products?limit=2&cursor={cursor}"), None).await;
    assert_eq!(skus(&second), ["TEA-002", "TEA-003"]);
    let last = call(
        &app.router,
        Method::GET,
        &format!("/products?limit=2&cursor={}", second.body["next_cursor"].as_str().expect("more")),
        None,
    )
    .await;
    assert_eq!(skus(&last), ["TEA-004"]);
    assert!(last.body["next_cursor"].is_null(), "the last page has no cursor");

    let duplicate = call(&app.router, Method::POST, "/products", Some(tea("TEA-001", 1))).await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.problem_code(), "duplicate_sku");
}

#[tokio::test]
async fn malformed_requests_get_problems_naming_what_is_wrong() {
    let app = app().await;
    let cases = [
        (json!({"sku": "tea", "name": "x", "price": {"amount": 1, "currency": "EUR"}, "stock": 1}), "sku"),
        (
            json!({"sku": "TEA-1", "name": "x", "price": {"amount": -1, "currency": "EUR"}, "stock": 1}),
            "price.amount",
        ),
        (
            json!({"sku": "TEA-1", "name": "x", "price": {"amount": 1, "currency": "eur"}, "stock": 1}),
            "price.currency",
        ),
        (json!({"sku": "TEA-1", "name": " ", "price": {"amount": 1, "currency": "EUR"}, "stock": 1}), "name"),
        (
            json!({"sku": "TEA-1", "name": "x", "price": {"amount": 1, "currency": "EUR"}, "stock": -5}),
            "stock",
        ),
        (
            json!({"sku": "TEA-1", "name": "x", "price": {"amount": 1, "currency": "EUR"}, "stock": "many"}),
            "stock",
        ),
        (json!({"sku": "TEA-1", "name": "x", "price": {"amount": 1, "currency": "EUR"}}), "stock"),
        (
            json!({"sku": "TEA-1", "name": "x", "price": {"amount": 1, "currency": "EUR"}, "stock": 1, "sold": 9}),
            "",
        ),
    ];
    for (body, field) in cases {
        let answer = call(&app.router, Method::POST, "/products", Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {}", answer.body);
        assert_eq!(answer.problem_code(), "validation_failed");
        if !field.is_empty() {
            assert_eq!(answer.body["errors"][0]["field"], field, "{body} → {}", answer.body);
        }
    }

    let garbage = call_raw(&app.router, Method::POST, "/products", Some(b"{\"sku\":".to_vec()), &[]).await;
    assert_eq!((garbage.status, garbage.problem_code()), (StatusCode::BAD_REQUEST, "malformed_json"));

    let huge = vec![b' '; 1024 * 1024 + 1];
    let too_large = call_raw(&app.router, Method::POST, "/products", Some(huge), &[]).await;
    assert_eq!(
        (too_large.status, too_large.problem_code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );

    let text =
        call_raw(&app.router, Method::POST, "/products", None, &[("content-type", "text/plain")]).await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    text.problem_code();

    let nowhere = call(&app.router, Method::GET, "/nowhere", None).await;
    assert_eq!((nowhere.status, nowhere.problem_code()), (StatusCode::NOT_FOUND, "not_found"));
    let wrong = call(&app.router, Method::DELETE, "/products", None).await;
    assert_eq!((wrong.status, wrong.problem_code()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    let unknown = call(&app.router, Method::GET, "/products/NOPE-1", None).await;
    assert_eq!((unknown.status, unknown.problem_code()), (StatusCode::NOT_FOUND, "not_found"));
    let bad_limit = call(&app.router, Method::GET, "/products?limit=0", None).await;
    assert_eq!(
        (bad_limit.status, bad_limit.problem_code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    );
    let bad_param = call(&app.router, Method::GET, "/products?limit=ten", None).await;
    assert_eq!(bad_param.body["errors"][0]["field"], "limit");
}

#[tokio::test]
async fn updates_need_the_current_etag_and_two_racing_writers_get_one_200_and_one_412() {
    let app = app().await;
    call(&app.router, Method::POST, "/products", Some(tea("TEA-100", 3))).await;
    let patch = json!({"name": "Gyokuro"});
    let missing = call(&app.router, Method::PATCH, "/products/TEA-100", Some(patch.clone())).await;
    assert_eq!(
        (missing.status, missing.problem_code()),
        (StatusCode::PRECONDITION_REQUIRED, "precondition_required")
    );

    let body = patch.to_string().into_bytes();
    let (a, b) = tokio::join!(
        call_raw(
            &app.router,
            Method::PATCH,
            "/products/TEA-100",
            Some(body.clone()),
            &[("if-match", "\"1\"")]
        ),
        call_raw(
            &app.router,
            Method::PATCH,
            "/products/TEA-100",
            Some(body.clone()),
            &[("if-match", "\"1\"")]
        ),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::PRECONDITION_FAILED], "{} / {}", a.body, b.body);
    let winner = if a.status == StatusCode::OK { &a } else { &b };
    assert_eq!(winner.header("etag"), Some("\"2\""));
    assert_eq!(winner.body["name"], "Gyokuro");

    let stale = call_raw(
        &app.router,
        Method::PATCH,
        "/products/TEA-100",
        Some(body.clone()),
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let price = json!({"price": {"amount": 990, "currency": "USD"}}).to_string().into_bytes();
    let currency =
        call_raw(&app.router, Method::PATCH, "/products/TEA-100", Some(price), &[("if-match", "\"2\"")])
            .await;
    assert_eq!(currency.body["errors"][0]["field"], "price.currency");
    let status = call_raw(
        &app.router,
        Method::PATCH,
        "/products/TEA-100",
        Some(br#"{"available": 100}"#.to_vec()),
        &[("if-match", "*")],
    )
    .await;
    assert_eq!(status.status, StatusCode::UNPROCESSABLE_ENTITY, "stock is not a patchable field");
}

#[tokio::test]
async fn stock_adjustments_never_go_below_zero() {
    let app = app().await;
    call(&app.router, Method::POST, "/products", Some(tea("TEA-200", 2))).await;
    let added = call(
        &app.router,
        Method::POST,
        "/products/TEA-200/stock",
        Some(json!({"delta": 5, "reason": "delivery"})),
    )
    .await;
    assert_eq!((added.status, added.body.clone()), (StatusCode::OK, json!({"available": 7})));
    let too_many = call(
        &app.router,
        Method::POST,
        "/products/TEA-200/stock",
        Some(json!({"delta": -8, "reason": "breakage"})),
    )
    .await;
    assert_eq!((too_many.status, too_many.problem_code()), (StatusCode::CONFLICT, "stock_below_zero"));
    let no_reason =
        call(&app.router, Method::POST, "/products/TEA-200/stock", Some(json!({"delta": -1, "reason": ""})))
            .await;
    assert_eq!(no_reason.body["errors"][0]["field"], "reason");
    let unknown =
        call(&app.router, Method::POST, "/products/NOPE-2/stock", Some(json!({"delta": 1, "reason": "x"})))
            .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let product = call(&app.router, Method::GET, "/products/TEA-200", None).await;
    assert_eq!(product.body["available"], 7);
}

#[test]
fn the_openapi_document_describes_every_route() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let app = runtime.block_on(app());
    let document = serde_json::to_value(&app.openapi).expect("serialises");
    let paths = document["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/products", &["get", "post"][..]),
        ("/products/{sku}", &["get", "patch"][..]),
        ("/products/{sku}/stock", &["post"][..]),
    ] {
        for method in methods {
            assert!(paths[path][method].is_object(), "{method} {path} is documented");
        }
    }
    for schema in ["NewProduct", "ProductView", "ProductPage", "Problem", "Money"] {
        assert!(document["components"]["schemas"][schema].is_object(), "schema {schema} is documented");
    }
}
