//! Two replicas of one service on one PostgreSQL database: exactly one relay publishes, and
//! exactly one subscriber consumes, at a time; when the active one stops, the other takes over
//! within seconds.
//! Needs `TESSERA_TEST_POSTGRES`.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{TestHandler, World, fast_relay, fast_subscriber};
use tessera_bus::{InProcessTransport, RelayOptions, Transport, Upcasters};
use tessera_store::{PostgresOptions, Store, StoreConfig};
use tessera_testkit::{TempDataDir, TempPostgres};

fn counting(counter: &Arc<AtomicUsize>) -> RelayOptions {
    let counter = counter.clone();
    RelayOptions {
        after_publish: Some(Arc::new(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })),
        ..fast_relay()
    }
}

/// Waits (at most 5 s) until `counter` reaches `count`.
async fn wait_for_count(counter: &AtomicUsize, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while counter.load(Ordering::SeqCst) < count && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_relay_publishes_at_a_time_and_a_stopped_leader_is_replaced() {
    let Some(database) = TempPostgres::create().await else { return };
    let config =
        StoreConfig::Postgres { url: database.url().to_owned(), options: PostgresOptions::default() };
    let transport: Arc<dyn Transport> = Arc::new(InProcessTransport::new());
    let world =
        World::in_dir(common::Kind::InProcess, TempDataDir::new(), common::fresh_source(), transport).await;
    // The world's SQLite producer is replaced by two replicas on one PostgreSQL database.
    let replica_a = Store::open(&config, &[]).await.expect("replica a");
    let replica_b = Store::open(&config, &[]).await.expect("replica b");
    let subscriber = world.subscriber(TestHandler::new(), Upcasters::new(), fast_subscriber());

    let (published_a, published_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let relay_a =
        World { producer: replica_a.clone(), ..world.clone_handles() }.relay(counting(&published_a));
    tokio::time::sleep(Duration::from_millis(200)).await; // a takes the lease first
    let relay_b =
        World { producer: replica_b.clone(), ..world.clone_handles() }.relay(counting(&published_b));

    // Both replicas commit messages; only the leader publishes them all, in order per key.
    for i in 0..100u64 {
        let store = if i % 2 == 0 { &replica_a } else { &replica_b };
        let mut unit = store.begin();
        unit.send(&world.envelope(&format!("k{}", i % 3), i, false)).expect("send");
        unit.commit().await.expect("commit");
    }
    let effects = world.wait_for_effects(100, Duration::from_secs(20)).await;
    assert_eq!(effects.len(), 100);
    // An effect is visible at the consumer's commit, a moment before the relay hears of it.
    wait_for_count(&published_a, 100).await;
    assert_eq!((published_a.load(Ordering::SeqCst), published_b.load(Ordering::SeqCst)), (100, 0));
    let mut per_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for effect in &effects {
        per_key.entry(effect.key.clone()).or_default().push(effect.seq);
    }
    assert!(per_key.values().all(|seqs| seqs.windows(2).all(|w| w[0] < w[1])), "order per key");

    // The leader stops; its lease goes with it and the other replica carries on.
    relay_a.stop().await;
    let started = std::time::Instant::now();
    for i in 100..120u64 {
        let mut unit = replica_a.begin();
        unit.send(&world.envelope("after", i, false)).expect("send");
        unit.commit().await.expect("commit");
    }
    let effects = world.wait_for_effects(120, Duration::from_secs(20)).await;
    assert_eq!(effects.len(), 120);
    assert!(started.elapsed() < Duration::from_secs(5), "taken over in {:?}", started.elapsed());
    wait_for_count(&published_b, 20).await;
    assert_eq!(published_b.load(Ordering::SeqCst), 20);
    relay_b.stop().await;
    subscriber.stop().await;
}

/// Two replicas of a subscribing service, one PostgreSQL database: one consumes, the other
/// stands by; order per key holds; when the active one stops, the other carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_subscriber_replica_consumes_at_a_time_and_a_standby_takes_over() {
    let Some(database) = TempPostgres::create().await else { return };
    let config =
        StoreConfig::Postgres { url: database.url().to_owned(), options: PostgresOptions::default() };
    let transport: Arc<dyn Transport> = Arc::new(InProcessTransport::new());
    let world =
        World::in_dir(common::Kind::InProcess, TempDataDir::new(), common::fresh_source(), transport).await;
    let sets = [tessera_bus::MIGRATIONS, common::EFFECTS];
    let consumer_a = Store::open(&config, &sets).await.expect("replica a");
    let consumer_b = Store::open(&config, &sets).await.expect("replica b");
    let (handler_a, handler_b) = (TestHandler::new(), TestHandler::new());
    let replica_a = World { consumer: consumer_a.clone(), ..world.clone_handles() }.subscriber(
        handler_a.clone(),
        Upcasters::new(),
        fast_subscriber(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await; // a takes the lease first
    let replica_b = World { consumer: consumer_b.clone(), ..world.clone_handles() }.subscriber(
        handler_b.clone(),
        Upcasters::new(),
        fast_subscriber(),
    );
    let relay = world.relay(fast_relay());

    let messages: Vec<_> = (0..100).map(|i| world.envelope(&format!("k{}", i % 3), i, false)).collect();
    world.produce(&messages).await;
    let effects = common::wait_for_effects(&consumer_a, 100, Duration::from_secs(20)).await;
    assert_eq!(effects.len(), 100);
    assert_eq!(
        (handler_a.seen.lock().expect("seen").len(), handler_b.seen.lock().expect("seen").len()),
        (100, 0)
    );
    let mut per_key: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for effect in &effects {
        per_key.entry(effect.key.clone()).or_default().push(effect.seq);
    }
    assert!(per_key.values().all(|seqs| seqs.windows(2).all(|w| w[0] < w[1])), "order per key");

    replica_a.stop().await;
    let started = std::time::Instant::now();
    let more: Vec<_> = (100..120).map(|i| world.envelope("after", i, false)).collect();
    world.produce(&more).await;
    assert_eq!(common::wait_for_effects(&consumer_b, 120, Duration::from_secs(20)).await.len(), 120);
    assert!(started.elapsed() < Duration::from_secs(5), "taken over in {:?}", started.elapsed());
    assert_eq!(handler_b.seen.lock().expect("seen").len(), 20);
    relay.stop().await;
    replica_b.stop().await;
}
