//! A saga participant under test, wired for real: an "orders" store sends commands through its
//! outbox, relay and the in-process transport; the participant's subscriber applies them with
//! its handler and answers in its own outbox, where the test reads the replies.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_bus::{
    Handler, InProcessTransport, Relay, RelayOptions, Subscriber, SubscriberOptions, Transport, Upcasters,
};
use tessera_kernel::{Envelope, HlcTimestamp, MessageKind, UuidV7Gen};
use tessera_store::{MigrationSet, SqliteOptions, Store, StoreConfig};
use tokio::sync::watch;

use crate::TempDataDir;

#[derive(Debug)]
pub struct Participant {
    _dir: TempDataDir,
    /// The participant's own store (it must hold `tessera_bus::MIGRATIONS`).
    pub store: Store,
    orders: Store,
    service: String,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Participant {
    /// Opens `<service>.db` with `migrations`, builds the handler on that store, and starts the
    /// orders relay and the participant's subscriber.
    pub async fn start<H, F>(service: &str, migrations: &[MigrationSet], handler: F) -> (Self, Arc<H>)
    where
        H: Handler,
        F: FnOnce(Store) -> H,
    {
        let dir = TempDataDir::new();
        let open = |name: &str| StoreConfig::Sqlite {
            path: dir.file(&format!("{name}.db")),
            options: SqliteOptions::default(),
        };
        let orders = Store::open(&open("orders"), &[]).await.expect("orders store");
        let store = Store::open(&open(service), migrations).await.expect("participant store");
        let handler = Arc::new(handler(store.clone()));
        let transport: Arc<dyn Transport> = Arc::new(InProcessTransport::new());
        let (stop, stopped) = watch::channel(false);
        let subscriber = Subscriber::new(
            service,
            "orders",
            store.clone(),
            transport.clone(),
            handler.clone(),
            Arc::new(Upcasters::new()),
            SubscriberOptions {
                backoff_base: Duration::from_millis(2),
                max_attempts: 10,
                ..SubscriberOptions::default()
            },
        );
        let relay = Relay::new(
            "orders",
            orders.clone(),
            transport,
            RelayOptions { poll: Duration::from_millis(20), ..RelayOptions::default() },
        );
        let tasks = vec![
            tokio::spawn({
                let stopped = stopped.clone();
                async move { subscriber.run(stopped).await.expect("subscriber") }
            }),
            tokio::spawn(async move { relay.run(stopped).await.expect("relay") }),
        ];
        (Self { _dir: dir, store, orders, service: service.to_owned(), stop, tasks }, handler)
    }

    /// Sends `name` with `payload` as step `step` of a place-order saga for `order`.
    pub async fn send(
        &self,
        order: &str,
        step: usize,
        compensation: bool,
        name: &str,
        mut payload: Value,
    ) -> Envelope {
        payload["saga"] =
            json!({ "name": "place_order", "id": order, "step": step, "compensation": compensation });
        let envelope = Envelope::new(
            &UuidV7Gen,
            MessageKind::Command,
            name,
            "orders",
            order,
            HlcTimestamp::default(),
            payload,
        )
        .to_target(self.service.clone());
        let mut unit = self.orders.begin();
        unit.send(&envelope).expect("send");
        unit.commit().await.expect("commit");
        envelope
    }

    /// Publishes `envelope` as a message of the orders service (an event, say).
    pub async fn publish(&self, envelope: &Envelope) {
        let mut unit = self.orders.begin();
        unit.send(envelope).expect("send");
        unit.commit().await.expect("commit");
    }

    /// The participant's reply to `command`, once it is in the participant's outbox.
    pub async fn reply_to(&self, command: &Envelope) -> Value {
        for _ in 0..2000 {
            let messages = self.store.outbox_unsent(0, 100_000).await.expect("outbox");
            if let Some(reply) = messages.iter().find(|m| {
                m.envelope.kind == MessageKind::Reply && m.envelope.causation_id == Some(command.id)
            }) {
                return reply.envelope.payload.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no reply to {}", command.name);
    }

    pub async fn stop(self) {
        self.stop.send(true).expect("stop");
        for task in self.tasks {
            task.await.expect("task");
        }
    }
}
