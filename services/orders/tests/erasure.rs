//! Orders' part of an erasure, wired as the runtime wires it: `OrdersService`'s own
//! subscriptions, each fed by the real relay of a stand-in source store, the in-process
//! transport and the real subscriber (inbox, retries, dead letters). Orders hold nothing
//! personal about a customer (only their id), so an erasure changes no order: it is answered
//! with one `ErasureDone`, however often it arrives, and the sagas' replies still flow beside it.

use std::sync::Arc;
use tessera_contracts::testing::{erased, message};
use tessera_testkit::sources::Sources;

use serde_json::json;
use tessera_bus::list_dead_letters;
use tessera_contracts::customers::{CustomerUpdated, ErasureDone};
use tessera_contracts::inventory::ReserveStock;
use tessera_contracts::{Message, OrderLine, Quantity, Sku};
use tessera_kernel::{Envelope, HlcTimestamp, SubjectId, SystemClock, UuidV7Gen};
use tessera_orders::domain::OrderStatus;
use tessera_orders::{OrdersService, OrdersSettings};
use tessera_runtime::Service;
use tessera_saga::SagaEngine;
use tessera_store::{SqliteOptions, Store, StoreConfig};
use tessera_testkit::TempDataDir;
use uuid::Uuid;

/// The messages in orders' outbox.
async fn outbox(store: &Store) -> Vec<Envelope> {
    store.outbox_unsent(0, 100_000).await.expect("outbox").into_iter().map(|m| m.envelope).collect()
}

/// Every `ErasureDone` in the outbox.
async fn erasures_done(store: &Store) -> Vec<(Envelope, ErasureDone)> {
    outbox(store)
        .await
        .into_iter()
        .filter(|m| m.name == ErasureDone::NAME)
        .map(|m| {
            let done = serde_json::from_value(m.payload.clone()).expect("ErasureDone");
            (m, done)
        })
        .collect()
}

async fn service(data: &TempDataDir) -> OrdersService {
    let config = StoreConfig::Sqlite { path: data.file("orders.db"), options: SqliteOptions::default() };
    let store = Store::open(&config, &tessera_orders::migrations()).await.expect("orders store");
    OrdersService::new(
        store,
        &OrdersSettings::default(),
        tessera_testkit::temporary_vault().await,
        Arc::new(UuidV7Gen),
        Arc::new(SystemClock),
    )
}

fn lines() -> Vec<OrderLine> {
    vec![OrderLine {
        sku: Sku::parse("TEA-001").expect("sku"),
        quantity: Quantity::new(2).expect("quantity"),
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_is_answered_once_and_changes_no_order() {
    let data = TempDataDir::new();
    let service = service(&data).await;
    let sources = Sources::start(
        service.name(),
        service.store(),
        service.subscriptions().into_iter().map(|s| (s.source, s.handler)).collect(),
    )
    .await;
    let orders = service.orders();
    let customer = Uuid::now_v7();
    let order = orders
        .place(
            customer,
            lines(),
            "tok_erased",
            Some("request-1"),
            Some("GB"),
            &tessera_web::token::Actor::system("test"),
        )
        .await
        .expect("place");
    let before = orders.record(order).await.expect("record").expect("exists");

    let (envelope, erasure_id) = erased(customer);
    sources.deliver("customers", &envelope, false).await;
    // The same message again, from a relay that never learned it was sent.
    sources.deliver("customers", &envelope, true).await;

    let done = erasures_done(service.store()).await;
    assert_eq!(done.len(), 1, "one answer, however often the erasure arrives: {done:?}");
    let (answer, payload) = &done[0];
    assert_eq!(payload, &ErasureDone { customer_id: customer, erasure_id, service: "orders".into() });
    assert_eq!((answer.source.as_str(), answer.key.clone()), ("orders", customer.to_string()));
    assert_eq!(answer.subject, Some(SubjectId::from(customer)));
    assert_eq!((answer.causation_id, answer.correlation_id), (Some(envelope.id), envelope.correlation_id));
    assert_eq!(orders.record(order).await.expect("record"), Some(before), "the order is untouched");
    let audited: Vec<_> = service
        .store()
        .audit_records(None, 100)
        .await
        .expect("audit")
        .into_iter()
        .filter(|r| r.record.action == "customer.erase")
        .map(|r| r.record.resource)
        .collect();
    assert_eq!(audited, [format!("customer/{customer}")]);

    // The sagas' replies still arrive through their own subscription: inventory refuses the
    // stock, and the order is rejected.
    let reserve = outbox(service.store())
        .await
        .into_iter()
        .find(|m| m.name == ReserveStock::NAME)
        .expect("the saga asked for stock");
    let refused =
        SagaEngine::reply(&reserve, &UuidV7Gen, HlcTimestamp::default(), Err("out_of_stock".into()))
            .expect("a saga command");
    sources.deliver("inventory", &refused, false).await;
    let rejected = orders.order(order).await.expect("order").expect("exists");
    assert_eq!(rejected.status, OrderStatus::Rejected);
    assert_eq!(rejected.customer_id, Some(customer));
    assert!(list_dead_letters(service.store(), None).await.expect("dead letters").is_empty());
    sources.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_customers_messages_are_ignored_and_a_malformed_erasure_is_dead_lettered() {
    let data = TempDataDir::new();
    let service = service(&data).await;
    let sources: Vec<_> = service.subscriptions().iter().map(|s| s.source).collect();
    assert_eq!(sources, ["inventory", "payments", "customers"]);
    let sources = Sources::start(
        service.name(),
        service.store(),
        service.subscriptions().into_iter().map(|s| (s.source, s.handler)).collect(),
    )
    .await;
    let customer = Uuid::now_v7();

    let updated: CustomerUpdated = serde_json::from_value(json!({
        "customer_id": customer, "name": "Ada", "version": 2,
        "address": {"line1": "Hauptstraße 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}}))
    .expect("updated");
    sources.deliver("customers", &message("customers", customer, &updated), false).await;
    let mut malformed = erased(customer).0;
    malformed.payload = json!({ "erasure_id": Uuid::now_v7() });
    sources.deliver("customers", &malformed, false).await;
    // Another participant's answer, met on the payments subscription: not orders' business.
    let theirs =
        ErasureDone { customer_id: customer, erasure_id: Uuid::now_v7(), service: "payments".into() };
    sources.deliver("payments", &message("payments", customer, &theirs), false).await;

    assert!(erasures_done(service.store()).await.is_empty(), "nothing answered");
    let dead = list_dead_letters(service.store(), None).await.expect("dead letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0].consumer.as_str(), dead[0].envelope.id), ("orders__customers", malformed.id));
    assert!(dead[0].error.contains("malformed message: customers.CustomerErased"), "{}", dead[0].error);
    assert_eq!(dead[0].attempts, 1, "a malformed message is parked at once, not retried");
    sources.stop().await;
}
