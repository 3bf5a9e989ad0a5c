//! Orders' HTTP routes in-process on a real SQLite store: placing validates every field,
//! lists page newest first, unknown orders are 404 problems, and the history lists events.
//! (The sagas' outcomes through HTTP are covered end to end by the binary's tests.)

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::json;
use tessera_kernel::{SystemClock, UuidV7Gen};
use tessera_orders::{Orders, OrdersSettings};
use tessera_store::{SqliteOptions, Store, StoreConfig};
use tessera_testkit::TempDataDir;
use tessera_testkit::http::call;
use uuid::Uuid;

async fn app(data: &TempDataDir) -> Router {
    let config = StoreConfig::Sqlite { path: data.file("orders.db"), options: SqliteOptions::default() };
    let store = Store::open(&config, &tessera_orders::migrations()).await.expect("open the store");
    let orders = Orders::new(store, &OrdersSettings::default(), Arc::new(UuidV7Gen), Arc::new(SystemClock));
    let (router, _) = tessera_orders::http::router().split_for_parts();
    tessera_web::standard_layers(router.with_state(orders))
}

fn order(customer: Uuid, items: serde_json::Value) -> serde_json::Value {
    json!({"customer_id": customer, "items": items, "payment_token": "tok_x"})
}

#[tokio::test]
async fn placing_checks_every_field_and_names_the_bad_one() {
    let data = TempDataDir::new();
    let router = app(&data).await;
    let customer = Uuid::now_v7();
    let many: Vec<_> = (0..101).map(|n| json!({"sku": format!("SKU-{n:03}"), "quantity": 1})).collect();
    for (body, field) in [
        (order(customer, json!([])), "items"),
        (order(customer, json!([{"sku": "TEA-001", "quantity": 0}])), "items[0].quantity"),
        (order(customer, json!([{"sku": "TEA-001", "quantity": 1001}])), "items[0].quantity"),
        (order(customer, json!([{"sku": "tea", "quantity": 1}])), "items[0].sku"),
        (order(customer, json!([{"sku": "TEA-001", "quantity": 1, "price": 0}])), "items[0]"),
        (
            order(customer, json!([{"sku": "TEA-001", "quantity": 1}, {"sku": "TEA-001", "quantity": 2}])),
            "items[1].sku",
        ),
        (order(customer, json!(many)), "items"),
        (
            json!({"customer_id": customer, "items": [{"sku": "TEA-001", "quantity": 1}], "payment_token": ""}),
            "payment_token",
        ),
        (
            json!({"customer_id": customer, "items": [{"sku": "TEA-001", "quantity": 1}], "payment_token": "t", "status": "confirmed"}),
            "",
        ),
    ] {
        let answer = call(&router, Method::POST, "/orders", Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {}", answer.body);
        let field_named = answer.body["errors"][0]["field"].as_str().unwrap_or_default().to_owned();
        assert!(field_named.starts_with(field), "{body} → {field_named}");
    }
}

#[tokio::test]
async fn lists_page_newest_first_and_filter_by_customer_and_status() {
    let data = TempDataDir::new();
    let router = app(&data).await;
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let mut placed = Vec::new();
    for n in 0..5 {
        let customer = if n % 2 == 0 { alice } else { bob };
        let answer = call(
            &router,
            Method::POST,
            "/orders",
            Some(order(customer, json!([{"sku": "TEA-001", "quantity": 1}]))),
        )
        .await;
        assert_eq!((answer.status, answer.body["status"].clone()), (StatusCode::ACCEPTED, json!("pending")));
        placed.push(answer.body["id"].as_str().expect("id").to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = call(&router, Method::GET, &format!("/orders?limit=2&cursor={cursor}"), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        seen.extend(
            page.body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|i| i["id"].as_str().unwrap_or_default().to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    placed.reverse();
    assert_eq!(seen, placed, "every order once, newest first");

    let alices =
        call(&router, Method::GET, &format!("/orders?customer_id={alice}&status=pending"), None).await;
    assert_eq!(alices.body["items"].as_array().map(Vec::len), Some(3));
    let none =
        call(&router, Method::GET, &format!("/orders?customer_id={alice}&status=confirmed"), None).await;
    assert_eq!(none.body["items"], json!([]));
    let bad = call(&router, Method::GET, "/orders?status=lost", None).await;
    assert_eq!(bad.body["errors"][0]["field"], "status");
    let bad = call(&router, Method::GET, "/orders?cursor=zzz", None).await;
    assert_eq!(bad.body["errors"][0]["field"], "cursor");
}

#[tokio::test]
async fn an_order_reads_back_with_its_etag_history_and_cancel_rules() {
    let data = TempDataDir::new();
    let router = app(&data).await;
    let placed = call(
        &router,
        Method::POST,
        "/orders",
        Some(order(Uuid::now_v7(), json!([{"sku": "TEA-001", "quantity": 3}]))),
    )
    .await;
    let id = placed.body["id"].as_str().expect("id");
    let view = call(&router, Method::GET, &format!("/orders/{id}"), None).await;
    assert_eq!(view.status, StatusCode::OK);
    assert_eq!(view.header("etag"), Some("\"1\""));
    assert_eq!(
        view.body["items"],
        json!([{"sku": "TEA-001", "quantity": 3, "name": null, "unit_price": null}])
    );
    let history = call(&router, Method::GET, &format!("/orders/{id}/history"), None).await;
    assert_eq!(history.body["events"][0]["name"], "orders.Placed");
    assert_eq!(history.body["sagas"][0]["saga"], "place_order");

    let early = call(&router, Method::POST, &format!("/orders/{id}/cancel"), None).await;
    assert_eq!((early.status, early.problem_code()), (StatusCode::CONFLICT, "order_not_cancellable"));
    for path in [
        format!("/orders/{}", Uuid::now_v7()),
        "/orders/not-an-id".to_owned(),
        format!("/orders/{}/history", Uuid::now_v7()),
    ] {
        let missing = call(&router, Method::GET, &path, None).await;
        assert_eq!((missing.status, missing.problem_code()), (StatusCode::NOT_FOUND, "not_found"), "{path}");
    }
    let missing = call(&router, Method::POST, &format!("/orders/{}/cancel", Uuid::now_v7()), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
}

#[tokio::test]
async fn the_same_request_key_places_one_order() {
    let data = TempDataDir::new();
    let router = app(&data).await;
    let customer = Uuid::now_v7();
    let mut body = order(customer, json!([{"sku": "TEA-001", "quantity": 1}]));
    body["request_key"] = json!("retry-me");
    let (a, b) = tokio::join!(
        call(&router, Method::POST, "/orders", Some(body.clone())),
        call(&router, Method::POST, "/orders", Some(body.clone())),
    );
    let again = call(&router, Method::POST, "/orders", Some(body.clone())).await;
    assert_eq!(
        (a.status, b.status, again.status),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    assert_eq!(a.body["id"], b.body["id"]);
    assert_eq!(a.body["id"], again.body["id"]);
    let list = call(&router, Method::GET, &format!("/orders?customer_id={customer}"), None).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1), "one order: {}", list.body);
    let other = call(
        &router,
        Method::POST,
        "/orders",
        Some(order(Uuid::now_v7(), json!([{"sku": "TEA-001", "quantity": 1}]))),
    )
    .await;
    assert_ne!(other.body["id"], a.body["id"], "keys are per customer");
}
