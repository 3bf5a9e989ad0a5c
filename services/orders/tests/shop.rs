//! The shop end to end, in one process: orders, inventory and payments, each with its own
//! SQLite store, talking only through relays, the in-process transport and subscribers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_bus::{
    InProcessTransport, NatsOptions, NatsTransport, Relay, RelayOptions, Subscriber, SubscriberOptions,
    Transport, Upcasters,
};
use tessera_contracts::{Money, OrderLine, Quantity, Sku};
use tessera_inventory::Inventory;
use tessera_kernel::{HybridClock, SystemClock, UuidV7Gen};
use tessera_orders::domain::{Order, OrderEvent};
use tessera_orders::{OrderSummaries, Orders, OrdersSettings};
use tessera_payments::{NetworkSettings, Payments, SimulatedNetwork};
use tessera_projection::{Mode, ProjectionRunner, RunnerOptions, request_rebuild, status, table_digest};
use tessera_store::{PostgresOptions, SqliteOptions, Statement, Store, StoreConfig};
use tessera_support::Support;
use tessera_testkit::{TempDataDir, TempPostgres};
use tokio::sync::watch;
use uuid::Uuid;

/// Where the shop runs: SQLite files and the in-process transport (embedded), or PostgreSQL
/// databases and NATS JetStream (distributed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Topology {
    Embedded,
    Distributed,
}

/// Keeps the temporary folder or databases alive while the shop runs.
#[allow(dead_code)]
enum Storage {
    Files(TempDataDir),
    Databases(Vec<TempPostgres>),
}

struct Shop {
    _storage: Storage,
    orders: Orders,
    inventory: Inventory,
    payments: Arc<Payments>,
    support: Support,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// One store per service, on the topology's backend.
async fn stores(topology: Topology) -> Option<(Storage, [Store; 4])> {
    let sets = [
        tessera_orders::migrations(),
        tessera_inventory::migrations(),
        tessera_payments::migrations(),
        tessera_support::migrations(),
    ];
    match topology {
        Topology::Embedded => {
            let dir = TempDataDir::new();
            let mut stores = Vec::new();
            for (name, migrations) in ["orders", "inventory", "payments", "support"].iter().zip(&sets) {
                let path = dir.file(&format!("{name}.db"));
                let config = StoreConfig::Sqlite { path, options: SqliteOptions::default() };
                stores.push(Store::open(&config, migrations).await.expect("open store"));
            }
            Some((Storage::Files(dir), stores.try_into().ok()?))
        }
        Topology::Distributed => {
            let mut databases = Vec::new();
            let mut stores = Vec::new();
            for migrations in &sets {
                let database = TempPostgres::create().await?;
                let url = database.url().to_owned();
                let config = StoreConfig::Postgres { url, options: PostgresOptions::default() };
                stores.push(Store::open(&config, migrations).await.expect("open store"));
                databases.push(database);
            }
            Some((Storage::Databases(databases), stores.try_into().ok()?))
        }
    }
}

async fn transport(topology: Topology) -> Option<Arc<dyn Transport>> {
    match topology {
        Topology::Embedded => Some(Arc::new(InProcessTransport::new())),
        Topology::Distributed => {
            let url = tessera_testkit::server_url("TESSERA_TEST_NATS", "NATS")?;
            // A namespace of its own: this run's streams never meet another run's.
            let namespace = format!("shop{}", &Uuid::now_v7().simple().to_string()[20..]);
            let options =
                NatsOptions { namespace, max_age: Duration::from_secs(3600), ..NatsOptions::default() };
            Some(Arc::new(NatsTransport::connect(&url, options).await.expect("connect to NATS")))
        }
    }
}

async fn shop(topology: Topology, settings: OrdersSettings, network: NetworkSettings) -> Option<Shop> {
    let (storage, [orders_store, inventory_store, payments_store, support_store]) = stores(topology).await?;
    let transport = transport(topology).await?;
    let clock = Arc::new(SystemClock);
    let ids = Arc::new(UuidV7Gen);
    let orders = Orders::new(orders_store, &settings, ids.clone(), clock.clone());
    let inventory = Inventory::new(inventory_store, ids.clone(), Arc::new(HybridClock::new(clock.clone())));
    let support = Support::new(
        support_store,
        tessera_testkit::temporary_vault().await,
        tessera_support::AttachmentStore::in_memory(),
        ids.clone(),
        clock.clone(),
    );
    let payments =
        Arc::new(Payments::new(payments_store, Arc::new(SimulatedNetwork::new(network)), ids, clock));
    let (stop, stopped) = watch::channel(false);
    let options = SubscriberOptions {
        backoff_base: Duration::from_millis(5),
        max_attempts: 20,
        ..SubscriberOptions::default()
    };
    // Subscribers first (they declare their queues), then relays.
    let subscribers = [
        Subscriber::new(
            "support",
            "orders",
            support.store().clone(),
            transport.clone(),
            Arc::new(support.clone()),
            Arc::new(Upcasters::new()),
            options.clone(),
        ),
        Subscriber::new(
            "inventory",
            "orders",
            inventory.store().clone(),
            transport.clone(),
            Arc::new(inventory.clone()),
            Arc::new(Upcasters::new()),
            options.clone(),
        ),
        Subscriber::new(
            "payments",
            "orders",
            payments.store().clone(),
            transport.clone(),
            payments.clone(),
            Arc::new(Upcasters::new()),
            options.clone(),
        ),
        Subscriber::new(
            "orders",
            "inventory",
            orders.store().clone(),
            transport.clone(),
            Arc::new(orders.clone()),
            Arc::new(Upcasters::new()),
            options.clone(),
        ),
        Subscriber::new(
            "orders",
            "payments",
            orders.store().clone(),
            transport.clone(),
            Arc::new(orders.clone()),
            Arc::new(Upcasters::new()),
            options,
        ),
    ];
    let mut tasks = Vec::new();
    for subscriber in subscribers {
        let stopped = stopped.clone();
        tasks.push(tokio::spawn(async move { subscriber.run(stopped).await.expect("subscriber") }));
    }
    for (service, store) in
        [("orders", orders.store()), ("inventory", inventory.store()), ("payments", payments.store())]
    {
        let relay = Relay::new(
            service,
            store.clone(),
            transport.clone(),
            RelayOptions { poll: Duration::from_millis(50), ..RelayOptions::default() },
        );
        let stopped = stopped.clone();
        tasks.push(tokio::spawn(async move { relay.run(stopped).await.expect("relay") }));
    }
    tasks.push(tokio::spawn(payments.as_ref().clone().run_authorisations(256, stopped.clone())));
    tasks.push(tokio::spawn(orders.clone().run_timers(Duration::from_millis(50), stopped)));
    Some(Shop { _storage: storage, orders, inventory, payments, support, stop, tasks })
}

fn sku(s: &str) -> Sku {
    Sku::parse(s).expect("sku")
}

fn line(s: &str, quantity: i64) -> OrderLine {
    OrderLine { sku: sku(s), quantity: Quantity::new(quantity).expect("quantity") }
}

const CARDS: [(&str, &str); 5] = [
    ("4242424242424242", "approved"),
    ("4000000000000002", "declined"),
    ("4000000000009995", "insufficient_funds"),
    ("4000000000000119", "transient"),
    ("4000000000003220", "slow"),
];

impl Shop {
    async fn rows(store: &Store, sql: &str) -> Vec<tessera_store::Row> {
        store.query(Statement::new(sql)).await.expect("query")
    }

    async fn wait_until_settled(&self, orders: &[Uuid], deadline: Duration) {
        let started = Instant::now();
        loop {
            let pending = Self::rows(
                self.orders.store(),
                "SELECT count(*) AS n FROM order_summaries WHERE status = 'pending'",
            )
            .await[0]
                .int("n")
                .expect("n");
            let open_sagas = Self::rows(
                self.orders.store(),
                "SELECT count(*) AS n FROM tessera_sagas WHERE status IN ('running', 'compensating')",
            )
            .await[0]
                .int("n")
                .expect("n");
            if pending == 0 && open_sagas == 0 {
                return;
            }
            assert!(
                started.elapsed() < deadline,
                "{pending} orders pending and {open_sagas} sagas open after {deadline:?} ({} orders)",
                orders.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) {
        self.stop.send(true).expect("stop");
        for task in self.tasks {
            task.await.expect("task");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_thousand_orders_settle_with_exactly_the_right_money_and_stock() {
    a_thousand_orders_settle(Topology::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_a_thousand_orders_settle_with_exactly_the_right_money_and_stock() {
    a_thousand_orders_settle(Topology::Distributed).await;
}

async fn a_thousand_orders_settle(topology: Topology) {
    let count: usize = std::env::var("TESSERA_SHOP_ORDERS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000);
    // A slow card answers after 3 s, so it always misses a 2.5 s deadline (a late answer counts
    // as the timeout, however late the timer fires); the others have 2.5 s for the round trip.
    let settings =
        OrdersSettings { payment_timeout: Duration::from_millis(2500), ..OrdersSettings::default() };
    let network = NetworkSettings { slow_delay: Duration::from_secs(3), ..NetworkSettings::default() };
    let Some(shop) = shop(topology, settings, network).await else { return };
    let price = |cents| Money::eur(cents).expect("money");
    shop.inventory
        .create_product(
            &sku("MUG-1"),
            "Mug",
            "",
            &price(900),
            5_000,
            &tessera_web::token::Actor::system("test"),
        )
        .await
        .expect("mug");
    shop.inventory
        .create_product(
            &sku("TEE-1"),
            "T-shirt",
            "",
            &price(1500),
            120,
            &tessera_web::token::Actor::system("test"),
        )
        .await
        .expect("tee");
    shop.inventory
        .create_product(
            &sku("RARE-1"),
            "Rare print",
            "",
            &price(5000),
            3,
            &tessera_web::token::Actor::system("test"),
        )
        .await
        .expect("rare");

    // Ten customers, each with one card of every kind.
    let mut customers = Vec::new();
    for _ in 0..10 {
        let customer = Uuid::now_v7();
        let mut tokens = HashMap::new();
        for (number, kind) in CARDS {
            tokens.insert(
                kind,
                shop.payments
                    .tokenise(customer, number, 12, 2030, "123", &tessera_web::token::Actor::system("test"))
                    .await
                    .expect("tokenise")
                    .token,
            );
        }
        customers.push((customer, tokens));
    }

    let mut placed: Vec<(Uuid, &str)> = Vec::new();
    for i in 0..count {
        let (customer, tokens) = &customers[i % customers.len()];
        let kind = match i % 10 {
            0..=5 => "approved",
            6 => "declined",
            7 => "insufficient_funds",
            8 => "transient",
            _ => "slow",
        };
        let lines = match i % 7 {
            0 => vec![line("RARE-1", 1)],
            1 | 2 => vec![line("MUG-1", 1 + (i % 3) as i64), line("TEE-1", 1)],
            _ => vec![line("MUG-1", 1 + (i % 3) as i64)],
        };
        placed.push((
            shop.orders
                .place(
                    *customer,
                    lines,
                    &tokens[kind],
                    None,
                    Some("NO"),
                    &tessera_web::token::Actor::system("test"),
                )
                .await
                .expect("place"),
            kind,
        ));
    }
    shop.wait_until_settled(&placed.iter().map(|(id, _)| *id).collect::<Vec<_>>(), Duration::from_secs(240))
        .await;

    // Cancel the first 25 confirmed orders.
    let mut cancelled = Vec::new();
    for (id, _) in &placed {
        if cancelled.len() == 25 {
            break;
        }
        if shop
            .orders
            .order(*id)
            .await
            .expect("order")
            .is_some_and(|o| o.status == tessera_orders::domain::OrderStatus::Confirmed)
        {
            shop.orders.cancel(*id, &tessera_web::token::Actor::system("test")).await.expect("cancel");
            cancelled.push(*id);
        }
    }
    shop.wait_until_settled(&cancelled, Duration::from_secs(60)).await;
    // Give the last settle commands (capture, void of late authorisations) time to land.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let captures: HashMap<String, i64> =
        Shop::rows(shop.payments.store(), "SELECT order_id, amount FROM captures")
            .await
            .iter()
            .map(|r| (r.text("order_id").expect("id").to_owned(), r.int("amount").expect("amount")))
            .collect();
    let refunds: HashMap<String, i64> =
        Shop::rows(shop.payments.store(), "SELECT order_id, amount FROM refunds")
            .await
            .iter()
            .map(|r| (r.text("order_id").expect("id").to_owned(), r.int("amount").expect("amount")))
            .collect();
    let payments: HashMap<String, String> =
        Shop::rows(shop.payments.store(), "SELECT order_id, status FROM payments")
            .await
            .iter()
            .map(|r| {
                (r.text("order_id").expect("id").to_owned(), r.text("status").expect("status").to_owned())
            })
            .collect();
    let reservations: HashMap<String, Vec<String>> =
        Shop::rows(shop.inventory.store(), "SELECT order_id, state FROM reservations").await.iter().fold(
            HashMap::new(),
            |mut map, r| {
                map.entry(r.text("order_id").expect("id").to_owned())
                    .or_default()
                    .push(r.text("state").expect("state").to_owned());
                map
            },
        );

    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for (id, kind) in &placed {
        let order = shop.orders.order(*id).await.expect("order").expect("exists");
        let key = id.to_string();
        let status = order.status.public();
        *outcomes.entry(format!("{status}/{kind}")).or_default() += 1;
        match status {
            "confirmed" => {
                let total = order.total.as_ref().expect("total").amount;
                assert_eq!(captures.get(&key), Some(&total), "order {key}: one capture of its total");
                assert!(reservations[&key].iter().all(|s| s == "committed"), "order {key}: stock sold");
                assert!(
                    matches!(*kind, "approved" | "transient"),
                    "order {key} confirmed with a {kind} card"
                );
            }
            "rejected" => {
                assert!(!captures.contains_key(&key), "rejected order {key} was captured");
                let states = reservations.get(&key).cloned().unwrap_or_default();
                assert!(
                    states.iter().all(|s| s == "released"),
                    "rejected order {key}: stock released, not {states:?}"
                );
                let reason = order.reason.map(|r| serde_json::to_value(r).expect("json"));
                // Rejected at the reservation: no stock, or (since the reason became true)
                // inventory not answering in time.
                let at_reservation =
                    reason == Some("out_of_stock".into()) || reason == Some("inventory_timeout".into());
                match *kind {
                    "declined" | "insufficient_funds" => assert!(
                        reason == Some("payment_declined".into()) || at_reservation,
                        "{key}: {reason:?}"
                    ),
                    "slow" => {
                        assert!(
                            reason == Some("payment_timeout".into()) || at_reservation,
                            "{key}: {reason:?}"
                        );
                        if reason == Some("payment_timeout".into()) {
                            assert_ne!(
                                payments.get(&key).map(String::as_str),
                                Some("authorised"),
                                "{key}: the late authorisation was not voided"
                            );
                        }
                    }
                    _ => assert!(at_reservation, "{key} with a {kind} card: {reason:?}"),
                }
            }
            "cancelled" => {
                let total = order.total.as_ref().expect("total").amount;
                assert_eq!(captures.get(&key), Some(&total), "cancelled order {key} had been captured once");
                assert_eq!(refunds.get(&key), Some(&total), "cancelled order {key}: refunded in full");
                assert!(
                    reservations[&key].iter().all(|s| s == "restocked"),
                    "cancelled order {key}: restocked"
                );
            }
            other => panic!("order {key} is {other}"),
        }
    }
    assert_eq!(cancelled.len(), 25);
    assert_eq!(
        outcomes.iter().filter(|(k, _)| k.starts_with("cancelled")).map(|(_, n)| n).sum::<usize>(),
        25
    );
    for (sku, (adjusted, level)) in shop.inventory.conservation().await.expect("conservation") {
        assert_eq!(adjusted, level.total(), "{sku}: stock not conserved: {level:?}");
        assert_eq!(level.reserved, 0, "{sku}: units still held after everything settled");
    }
    let rare = shop.inventory.product(&sku("RARE-1")).await.expect("rare").expect("exists").level;
    assert!(rare.sold <= 3, "never oversold: {rare:?}");
    read_models_agree_with_the_event_store(&shop).await;
    support_replica_matches_the_summaries(&shop).await;
    eprintln!("shop ({topology:?}): {count} orders settled: {outcomes:?}");
    shop.stop().await;
}

/// Support's replica, fed through the bus, ends equal to the orders service's own summaries.
async fn support_replica_matches_the_summaries(shop: &Shop) {
    let summaries = |rows: Vec<tessera_store::Row>| -> Vec<(String, String, Option<String>, i64)> {
        rows.iter()
            .map(|r| {
                (
                    r.text("order_id").expect("id").to_owned(),
                    r.text("status").expect("status").to_owned(),
                    r.opt_text("reason").expect("reason").map(str::to_owned),
                    r.int("item_count").expect("items"),
                )
            })
            .collect()
    };
    let expected = summaries(
        Shop::rows(
            shop.orders.store(),
            "SELECT order_id, status, reason, item_count FROM order_summaries ORDER BY order_id",
        )
        .await,
    );
    let started = Instant::now();
    loop {
        let replica = summaries(
            Shop::rows(
                shop.support.store(),
                "SELECT order_id, status, reason, item_count FROM order_replicas ORDER BY order_id",
            )
            .await,
        );
        if replica == expected {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "support's replica differs: {} rows vs {}",
            replica.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Orders with snapshots load the same from snapshot + tail as from the whole stream, and the
/// summaries rebuilt from the event store equal the ones kept inline.
async fn read_models_agree_with_the_event_store(shop: &Shop) {
    let store = shop.orders.store();
    let snapshots = Shop::rows(store, "SELECT stream_id FROM tessera_snapshots").await;
    assert!(snapshots.len() > 100, "orders of 4+ events have snapshots: {}", snapshots.len());
    for row in snapshots.iter().take(200) {
        let stream =
            tessera_kernel::StreamId::parse(row.text("stream_id").expect("stream")).expect("stream id");
        let (from_snapshot, _) = store.begin().load::<Order>(&stream).await.expect("load");
        let full = store
            .read_stream(&stream, 0)
            .await
            .expect("read")
            .iter()
            .fold(Order::default(), |order, event| {
                order.evolve(&event.decode::<OrderEvent>().expect("decode"))
            });
        assert_eq!(from_snapshot, full, "{stream}: snapshot + tail = the whole fold");
    }

    let before = table_digest(store, "order_summaries", "order_id").await.expect("digest");
    let (stop, stopped) = watch::channel(false);
    let runner = ProjectionRunner::new(
        store.clone(),
        Arc::new(OrderSummaries),
        Mode::Inline,
        RunnerOptions { batch: 500, poll: Duration::from_millis(10) },
    );
    let running = tokio::spawn(runner.run(stopped));
    // The migration asked for a first rebuild; ask for another and wait for both.
    let started = Instant::now();
    while status(store)
        .await
        .expect("status")
        .first()
        .is_none_or(|s| s.rebuilds < 1 || s.rebuilding.is_some())
    {
        assert!(started.elapsed() < Duration::from_secs(60), "the summaries rebuild");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    request_rebuild(store, "order_summaries").await.expect("request");
    while status(store).await.expect("status").first().is_none_or(|s| s.rebuilds < 2) {
        assert!(started.elapsed() < Duration::from_secs(60), "the summaries rebuild again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).expect("stop");
    running.await.expect("runner");
    assert_eq!(table_digest(store, "order_summaries", "order_id").await.expect("digest"), before);
}
