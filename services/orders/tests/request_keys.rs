//! Idempotency keys kept by orders: a key answers with its order for a day, and the records of
//! keys past their day are pruned.

use std::sync::Arc;

use tessera_contracts::{OrderLine, Quantity, Sku};
use tessera_kernel::{SystemClock, UuidV7Gen};
use tessera_orders::{OrdersService, OrdersSettings, RequestKey};
use tessera_store::{SqliteOptions, Statement, Store, StoreConfig};
use tessera_testkit::TempDataDir;
use tessera_web::token::Actor;
use uuid::Uuid;

fn lines() -> Vec<OrderLine> {
    vec![OrderLine {
        sku: Sku::parse("TEA-001").expect("sku"),
        quantity: Quantity::new(1).expect("quantity"),
    }]
}

async fn keys(store: &Store) -> i64 {
    store.query(Statement::new("SELECT count(*) AS n FROM order_requests")).await.expect("count")[0]
        .int("n")
        .expect("n")
}

#[tokio::test]
async fn keys_past_their_day_are_pruned_and_live_ones_kept() {
    let data = TempDataDir::new();
    let config = StoreConfig::Sqlite { path: data.file("orders.db"), options: SqliteOptions::default() };
    let store = Store::open(&config, &tessera_orders::migrations()).await.expect("orders store");
    let service = OrdersService::new(
        store.clone(),
        &OrdersSettings::default(),
        tessera_testkit::temporary_vault().await,
        Arc::new(UuidV7Gen),
        Arc::new(SystemClock),
    );
    let orders = service.orders();
    let customer = Uuid::now_v7();
    let actor = Actor::system("test");
    for key in ["old", "fresh"] {
        let request = RequestKey { key, body_hash: Some("h") };
        orders.place_request(customer, lines(), "tok_1", Some(request), None, &actor).await.expect("place");
    }
    let mut unit = store.begin();
    unit.execute(
        Statement::new("UPDATE order_requests SET kept_at = kept_at - $1 WHERE request_key = 'old'")
            .bind(25 * 3_600_000_000_i64),
    );
    unit.commit().await.expect("age a key");
    assert_eq!(orders.prune_request_keys().await.expect("prune"), 1);
    assert_eq!(keys(&store).await, 1, "the live key stays");
    let again = orders
        .place_request(
            customer,
            lines(),
            "tok_1",
            Some(RequestKey { key: "fresh", body_hash: Some("h") }),
            None,
            &actor,
        )
        .await
        .expect("replay");
    assert!(again.replayed, "the live key still answers with its order");
}
