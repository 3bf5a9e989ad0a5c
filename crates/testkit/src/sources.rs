//! Messages from other services, delivered to one service's real subscribers through the
//! in-process transport by real relays, for tests of message handlers. Each source has two
//! stand-in stores, so a message can be published a second time under the same id, as a
//! relay does that crashed before it marked the message sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_bus::{
    Handler, InProcessTransport, Relay, RelayOptions, Subscriber, SubscriberOptions, Transport, Upcasters,
};
use tessera_kernel::Envelope;
use tessera_store::{SqliteOptions, Store, StoreConfig};
use tokio::sync::watch;

use crate::TempDataDir;

/// A service's subscriptions, each with the real subscriber, fed through the in-process
/// transport by the real relays of two stand-in stores of the source service: the second
/// publishes a message again, as a relay does that crashed before it marked the message sent.
#[derive(Debug)]
pub struct Sources {
    _dir: TempDataDir,
    stores: HashMap<&'static str, [Store; 2]>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Sources {
    /// `subscriptions`: the service's `(source, handler)` pairs, consuming into `store`.
    pub async fn start(
        service: &'static str,
        store: &Store,
        subscriptions: Vec<(&'static str, Arc<dyn Handler>)>,
    ) -> Self {
        let dir = TempDataDir::new();
        let transport: Arc<dyn Transport> = Arc::new(InProcessTransport::new());
        let (stop, stopped) = watch::channel(false);
        let mut stores = HashMap::new();
        let mut tasks = Vec::new();
        // Subscribers first: they declare their queues before any relay publishes.
        for (source, handler) in subscriptions {
            let subscriber = Subscriber::new(
                service,
                source,
                store.clone(),
                transport.clone(),
                handler,
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
                let path = dir.file(&format!("{}-{copy}.db", source));
                let config = StoreConfig::Sqlite { path, options: SqliteOptions::default() };
                pair.push(Store::open(&config, &[]).await.expect("source store"));
            }
            let pair: [Store; 2] = pair.try_into().expect("two stores");
            for store in &pair {
                let relay = Relay::new(
                    source,
                    store.clone(),
                    transport.clone(),
                    RelayOptions { poll: Duration::from_millis(10), ..RelayOptions::default() },
                );
                let stop_relay = stopped.clone();
                tasks.push(tokio::spawn(async move { relay.run(stop_relay).await.expect("relay") }));
            }
            stores.insert(source, pair);
        }
        Self { _dir: dir, stores, stop, tasks }
    }

    /// Publishes `envelope` as a message of `source` (a second time with `again`) and waits
    /// until the service has applied it (or parked it as a dead letter).
    pub async fn deliver(&self, source: &str, envelope: &Envelope, again: bool) {
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

    pub async fn stop(self) {
        self.stop.send(true).expect("stop");
        for task in self.tasks {
            task.await.expect("task");
        }
    }
}

/// The messages waiting in `store`'s outbox.
pub async fn outbox(store: &Store) -> Vec<Envelope> {
    store.outbox_unsent(0, 100_000).await.expect("outbox").into_iter().map(|m| m.envelope).collect()
}
