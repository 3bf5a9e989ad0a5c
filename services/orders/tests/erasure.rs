//! Orders' part of an erasure, wired as the runtime wires it: `OrdersService`'s own
//! subscriptions, each fed by the real relay of a stand-in source store, the in-process
//! transport and the real subscriber (inbox, retries, dead letters). Orders hold nothing
//! personal about a customer (only their id), so an erasure changes no order: it is answered
//! with one `ErasureDone`, however often it arrives, and the sagas' replies still flow beside it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_bus::{
    InProcessTransport, Relay, RelayOptions, Subscriber, SubscriberOptions, Transport, Upcasters,
    list_dead_letters,
};
use tessera_contracts::customers::{CustomerErased, CustomerUpdated, ErasureDone};
use tessera_contracts::inventory::ReserveStock;
use tessera_contracts::{Message, OrderLine, Quantity, Sku};
use tessera_kernel::{Envelope, HlcTimestamp, MessageKind, SubjectId, SystemClock, UuidV7Gen};
use tessera_orders::domain::OrderStatus;
use tessera_orders::{OrdersService, OrdersSettings};
use tessera_runtime::Service;
use tessera_saga::SagaEngine;
use tessera_store::{SqliteOptions, Store, StoreConfig};
use tessera_testkit::TempDataDir;
use tokio::sync::watch;
use uuid::Uuid;

/// A service's subscriptions, each with the real subscriber, fed through the in-process
/// transport by the real relays of two stand-in stores of the source service: the second
/// publishes a message again, as a relay does that crashed before it marked the message sent.
struct Sources {
    _dir: TempDataDir,
    stores: HashMap<&'static str, [Store; 2]>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Sources {
    async fn start(service: &dyn Service) -> Self {
        let dir = TempDataDir::new();
        let transport: Arc<dyn Transport> = Arc::new(InProcessTransport::new());
        let (stop, stopped) = watch::channel(false);
        let mut stores = HashMap::new();
        let mut tasks = Vec::new();
        // Subscribers first: they declare their queues before any relay publishes.
        for subscription in service.subscriptions() {
            let subscriber = Subscriber::new(
                service.name(),
                subscription.source,
                service.store().clone(),
                transport.clone(),
                subscription.handler,
                Arc::new(Upcasters::new()),
                SubscriberOptions {
                    backoff_base: Duration::from_millis(2),
                    max_attempts: 3,
                    ..SubscriberOptions::default()
                },
            );
            let stop_subscriber = stopped.clone();
            tasks.push(tokio::spawn(
                async move { subscriber.run(stop_subscriber).await.expect("subscriber") },
            ));
            let mut pair = Vec::new();
            for copy in ["first", "again"] {
                let path = dir.file(&format!("{}-{copy}.db", subscription.source));
                let config = StoreConfig::Sqlite { path, options: SqliteOptions::default() };
                pair.push(Store::open(&config, &[]).await.expect("source store"));
            }
            let pair: [Store; 2] = pair.try_into().expect("two stores");
            for store in &pair {
                let relay = Relay::new(
                    subscription.source,
                    store.clone(),
                    transport.clone(),
                    RelayOptions { poll: Duration::from_millis(10), ..RelayOptions::default() },
                );
                let stop_relay = stopped.clone();
                tasks.push(tokio::spawn(async move { relay.run(stop_relay).await.expect("relay") }));
            }
            stores.insert(subscription.source, pair);
        }
        Self { _dir: dir, stores, stop, tasks }
    }

    /// Publishes `envelope` as a message of `source` (a second time with `again`) and waits
    /// until the service has applied it (or parked it as a dead letter).
    async fn deliver(&self, source: &str, envelope: &Envelope, again: bool) {
        let store = &self.stores[source][usize::from(again)];
        let mut unit = store.begin();
        unit.send(envelope).expect("send");
        unit.commit().await.expect("commit");
        // The in-process transport confirms a publish only once every consumer acknowledged
        // it, after its commit; only then does the relay mark the row sent.
        let started = Instant::now();
        while !store.outbox_unsent(0, 1).await.expect("outbox").is_empty() {
            assert!(started.elapsed() < Duration::from_secs(10), "{} was not delivered", envelope.name);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) {
        self.stop.send(true).expect("stop");
        for task in self.tasks {
            task.await.expect("task");
        }
    }
}

fn message<M: Message>(source: &str, key: Uuid, payload: &M) -> Envelope {
    Envelope::new(
        &UuidV7Gen,
        MessageKind::Event,
        M::NAME,
        source,
        key.to_string(),
        HlcTimestamp::default(),
        serde_json::to_value(payload).expect("payload"),
    )
    .with_version(M::VERSION)
}

fn erased(customer_id: Uuid) -> (Envelope, Uuid) {
    let erasure_id = Uuid::now_v7();
    let envelope = message("customers", customer_id, &CustomerErased { customer_id, erasure_id })
        .about(SubjectId::from(customer_id));
    (envelope, erasure_id)
}

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
    let sources = Sources::start(&service).await;
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
        SagaEngine::reply(&reserve, &UuidV7Gen, HlcTimestamp::default(), Err("out_of_stock".into()));
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
    let sources = Sources::start(&service).await;
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
    assert!(dead[0].error.contains("malformed customers.CustomerErased"), "{}", dead[0].error);
    sources.stop().await;
}
