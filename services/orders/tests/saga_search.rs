//! Operators' saga search through orders' own routes (`/admin/sagas`), on SQLite and, with
//! `TESSERA_TEST_POSTGRES` set, on PostgreSQL: every saga newest first, found by an order's id
//! or a customer's (read out of the sagas' JSON data in each backend's dialect), filtered by
//! state and type, paged by cursor, each with its steps' durations; bad parameters are 422s
//! and an unknown id a 404. The sagas are moved by their participants' replies, handed to
//! orders' handler as its subscriber would.

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_bus::Handler;
use tessera_kernel::{Envelope, HlcTimestamp, MessageKind, SystemClock, UuidV7Gen};
use tessera_orders::{CANCEL_ORDER, Orders, OrdersSettings, PLACE_ORDER};
use tessera_store::{PostgresOptions, SqliteOptions, Store, StoreConfig};
use tessera_testkit::http::{Answer, call};
use tessera_testkit::{TempDataDir, TempPostgres};
use tessera_web::token::Actor;
use uuid::Uuid;

/// Keeps the SQLite folder or the PostgreSQL database while the test runs.
#[allow(dead_code)]
enum Storage {
    Files(TempDataDir),
    Database(TempPostgres),
}

struct Shop {
    _storage: Storage,
    orders: Orders,
    router: Router,
}

async fn shop(config: StoreConfig, storage: Storage) -> Shop {
    let store = Store::open(&config, &tessera_orders::migrations()).await.expect("open the store");
    let orders = Orders::new(store, &OrdersSettings::default(), Arc::new(UuidV7Gen), Arc::new(SystemClock));
    let (router, _) = tessera_orders::http::router().split_for_parts();
    let router = tessera_web::standard_layers(router.with_state(orders.clone()));
    Shop { _storage: storage, orders, router }
}

async fn on_sqlite() -> Shop {
    let data = TempDataDir::new();
    let config = StoreConfig::Sqlite { path: data.file("orders.db"), options: SqliteOptions::default() };
    shop(config, Storage::Files(data)).await
}

async fn on_postgres() -> Option<Shop> {
    let database = TempPostgres::create().await?;
    let config =
        StoreConfig::Postgres { url: database.url().to_owned(), options: PostgresOptions::default() };
    Some(shop(config, Storage::Database(database)).await)
}

fn reserved() -> Value {
    json!({"ok": true, "data": {"reserved": {"lines": [{"name": "Tea", "quantity": 2, "sku": "TEA-001",
        "unit_price": {"amount": 450, "currency": "EUR"}}], "total": {"amount": 900, "currency": "EUR"}}}})
}

fn authorised() -> Value {
    json!({"ok": true, "data": {"payment": {"last4": "4242", "payment_id": Uuid::now_v7()}}})
}

fn done() -> Value {
    json!({"ok": true})
}

impl Shop {
    async fn place(&self, customer: Uuid) -> Uuid {
        let lines = serde_json::from_value(json!([{"sku": "TEA-001", "quantity": 2}])).expect("lines");
        self.orders.place(customer, lines, "tok_1", None, None, &Actor::system("test")).await.expect("place")
    }

    /// A participant's reply to step `step` of the saga `saga` of `order`.
    async fn reply(&self, saga: &str, order: Uuid, step: u64, compensation: bool, name: &str, body: Value) {
        let mut payload = body;
        payload["saga"] =
            json!({ "compensation": compensation, "id": order.to_string(), "name": saga, "step": step });
        let source = name.split('.').next().expect("owner");
        let reply = Envelope::new(
            &UuidV7Gen,
            MessageKind::Reply,
            name,
            source,
            order.to_string(),
            HlcTimestamp::default(),
            payload,
        )
        .to_target("orders");
        let mut unit = self.orders.store().begin();
        self.orders.handle(&reply, &mut unit).await.expect("handle");
        unit.commit().await.expect("commit");
    }

    async fn get(&self, path: &str) -> Answer {
        call(&self.router, Method::GET, path, None).await
    }

    /// The `(saga, id)` of each saga a search finds, in its order.
    async fn found(&self, query: &str) -> Vec<(String, Uuid)> {
        let answer = self.get(&format!("/admin/sagas?{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.body);
        ids(&answer.body["items"])
    }
}

fn ids(items: &Value) -> Vec<(String, Uuid)> {
    items
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let id = item["id"].as_str().and_then(|id| id.parse().ok()).expect("an order's id");
            (item["saga"].as_str().expect("a type").to_owned(), id)
        })
        .collect()
}

fn place(order: Uuid) -> (String, Uuid) {
    (PLACE_ORDER.to_owned(), order)
}

fn cancel(order: Uuid) -> (String, Uuid) {
    (CANCEL_ORDER.to_owned(), order)
}

/// `(name, kind, outcome)` of each timed step of `saga`, checking that each ended step has a
/// duration and each waiting one none.
fn steps(saga: &Value) -> Vec<(String, String, Option<String>)> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    saga["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| {
            let ended = !step["ended_at"].is_null();
            assert_eq!(step["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0), ended, "{step}");
            (text(&step["name"]).expect("name"), text(&step["kind"]).expect("kind"), text(&step["outcome"]))
        })
        .collect()
}

async fn search_finds_sagas_by_order_customer_state_and_type_page_by_page(shop: Shop) {
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let a1 = shop.place(alice).await;
    let b1 = shop.place(bob).await;
    let a2 = shop.place(alice).await;
    let b2 = shop.place(bob).await;
    let a3 = shop.place(alice).await;
    // a1 is confirmed and completes, then is cancelled; b1's card is declined and its stock
    // released; the others wait for their stock.
    shop.reply(PLACE_ORDER, a1, 0, false, "inventory.ReserveStockReplied", reserved()).await;
    shop.reply(PLACE_ORDER, a1, 1, false, "payments.AuthorisePaymentReplied", authorised()).await;
    shop.reply(PLACE_ORDER, a1, 2, false, "inventory.CommitReservationReplied", done()).await;
    shop.reply(PLACE_ORDER, a1, 3, false, "payments.CapturePaymentReplied", done()).await;
    shop.orders.cancel(a1, &Actor::system("test")).await.expect("cancel");
    shop.reply(PLACE_ORDER, b1, 0, false, "inventory.ReserveStockReplied", reserved()).await;
    let declined = json!({"ok": false, "reason": "card_declined"});
    shop.reply(PLACE_ORDER, b1, 1, false, "payments.AuthorisePaymentReplied", declined).await;
    shop.reply(PLACE_ORDER, b1, 0, true, "inventory.ReleaseStockReplied", done()).await;

    let newest_first = vec![cancel(a1), place(a3), place(b2), place(a2), place(b1), place(a1)];
    assert_eq!(shop.found("").await, newest_first, "every saga, running and finished");

    let mut paged = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page = shop.get(&format!("/admin/sagas?limit=4&cursor={cursor}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        paged.extend(ids(&page.body["items"]));
        pages += 1;
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!((paged, pages), (newest_first.clone(), 2), "each saga once, in order, over two pages");
    let last_full_page = shop.get("/admin/sagas?limit=6").await;
    assert!(last_full_page.body["next_cursor"].is_null(), "no cursor when nothing follows");

    assert_eq!(shop.found(&format!("q={a1}")).await, vec![cancel(a1), place(a1)], "by order id");
    assert_eq!(
        shop.found(&format!("q={alice}")).await,
        vec![cancel(a1), place(a3), place(a2), place(a1)],
        "by customer id, the cancellation included"
    );
    assert_eq!(shop.found(&format!("q={bob}")).await, vec![place(b2), place(b1)]);
    assert_eq!(shop.found(&format!("q={}", Uuid::now_v7())).await, vec![], "nobody's id finds nothing");
    assert_eq!(shop.found("state=completed").await, vec![place(a1)]);
    assert_eq!(shop.found("state=compensated").await, vec![place(b1)]);
    assert_eq!(shop.found("state=failed").await, vec![place(b1)]);
    assert_eq!(shop.found("state=running").await, vec![cancel(a1), place(a3), place(b2), place(a2)]);
    assert_eq!(shop.found("state=stuck").await, vec![]);
    assert_eq!(shop.found("type=cancel_order").await, vec![cancel(a1)]);
    assert_eq!(
        shop.found(&format!("q={alice}&state=running&type=place_order")).await,
        vec![place(a3), place(a2)]
    );

    let rejected = shop.get(&format!("/admin/sagas?q={b1}")).await.body["items"][0].clone();
    assert_eq!(
        (rejected["status"].as_str(), rejected["reason"].as_str()),
        (Some("compensated"), Some("card_declined"))
    );
    assert!(rejected["duration_ms"].as_f64().is_some(), "a finished saga's duration: {rejected}");
    let outcome = |o: &str| Some(o.to_owned());
    assert_eq!(
        steps(&rejected),
        vec![
            ("reserve_stock".into(), "forward".into(), outcome("succeeded")),
            ("authorise_payment".into(), "forward".into(), outcome("failed")),
            ("reserve_stock".into(), "compensation".into(), outcome("compensated")),
        ]
    );
    let waiting = shop.get(&format!("/admin/sagas?q={a2}")).await.body["items"][0].clone();
    assert!(waiting["duration_ms"].is_null(), "a running saga has no duration yet: {waiting}");
    assert_eq!(steps(&waiting), vec![("reserve_stock".into(), "forward".into(), None)]);

    let both = shop.get(&format!("/admin/sagas/{a1}")).await;
    assert_eq!(both.status, StatusCode::OK, "{}", both.body);
    assert_eq!(ids(&both.body["items"]), vec![place(a1), cancel(a1)], "in the order they started");
    let completed = &both.body["items"][0];
    assert_eq!(steps(completed).len(), 4, "{completed}");
    assert!(
        steps(completed)
            .iter()
            .all(|(_, kind, outcome)| kind == "forward" && outcome.as_deref() == Some("succeeded"))
    );
    let unknown = shop.get(&format!("/admin/sagas/{}", Uuid::now_v7())).await;
    assert_eq!((unknown.status, unknown.problem_code()), (StatusCode::NOT_FOUND, "not_found"));

    for (query, field) in [
        ("state=lost", "state"),
        ("type=ship_order", "type"),
        ("cursor=zz", "cursor"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("sort=oldest", "sort"),
    ] {
        let answer = shop.get(&format!("/admin/sagas?{query}")).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {}", answer.body);
        assert_eq!(answer.problem_code(), "validation_failed", "{query}");
        assert_eq!(answer.body["errors"][0]["field"], field, "{query}: {}", answer.body);
    }
}

#[tokio::test]
async fn saga_search_on_sqlite() {
    search_finds_sagas_by_order_customer_state_and_type_page_by_page(on_sqlite().await).await;
}

#[tokio::test]
async fn saga_search_on_postgres() {
    let Some(shop) = on_postgres().await else { return };
    search_finds_sagas_by_order_customer_state_and_type_page_by_page(shop).await;
}
