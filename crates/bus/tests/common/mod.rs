//! The world the bus suites run in: a producing service's store with its relay, a consuming
//! service's store with its subscriber, and one transport between them (in-process, or NATS
//! when `TESSERA_TEST_NATS` names a server).

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tessera_bus::{
    Handler, HandlerError, InProcessTransport, NatsOptions, NatsTransport, Relay, RelayOptions, Subscriber,
    SubscriberOptions, Transport, Upcasters,
};
use tessera_kernel::{Envelope, HlcTimestamp, MessageKind, UuidV7Gen};
use tessera_store::{Migration, MigrationSet, SqliteOptions, Statement, Store, StoreConfig, UnitOfWork};
use tessera_testkit::TempDataDir;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const NATS_ENV: &str = "TESSERA_TEST_NATS";

pub const EFFECTS: MigrationSet = MigrationSet {
    scope: "test.consumer",
    migrations: &[Migration {
        version: 1,
        name: "effects",
        sqlite: "CREATE TABLE effects (id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL, key TEXT NOT NULL, seq BIGINT NOT NULL, payload TEXT NOT NULL, previous BIGINT NOT NULL);",
        postgres: "CREATE TABLE effects (id BIGSERIAL PRIMARY KEY, message_id TEXT NOT NULL, key TEXT NOT NULL, seq BIGINT NOT NULL, payload TEXT NOT NULL, previous BIGINT NOT NULL);",
    }],
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    InProcess,
    Nats,
}

impl Kind {
    pub fn from_env() -> Kind {
        match std::env::var("TESSERA_TEST_TRANSPORT").as_deref() {
            Ok("nats") => Kind::Nats,
            Ok("in_process") => Kind::InProcess,
            _ => Kind::InProcess,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::InProcess => "in-process",
            Kind::Nats => "nats",
        }
    }
}

/// A fresh source name per test, so NATS streams of different tests never meet.
pub fn fresh_source() -> String {
    format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

pub async fn transport(kind: Kind) -> Option<Arc<dyn Transport>> {
    match kind {
        Kind::InProcess => Some(Arc::new(InProcessTransport::new())),
        Kind::Nats => {
            let url = tessera_testkit::server_url(NATS_ENV, "NATS")?;
            Some(Arc::new(
                NatsTransport::connect(&url, NatsOptions::default()).await.expect("connect to NATS"),
            ))
        }
    }
}

pub async fn open_store(dir: &std::path::Path, name: &str, sets: &[MigrationSet]) -> Store {
    let config =
        StoreConfig::Sqlite { path: dir.join(format!("{name}.db")), options: SqliteOptions::default() };
    Store::open(&config, sets).await.expect("open store")
}

pub struct World {
    pub kind: Kind,
    pub dir: TempDataDir,
    pub source: String,
    pub producer: Store,
    pub consumer: Store,
    pub transport: Arc<dyn Transport>,
}

impl World {
    pub async fn new(kind: Kind) -> Option<World> {
        let transport = transport(kind).await?;
        let dir = TempDataDir::new();
        Some(Self::in_dir(kind, dir, fresh_source(), transport).await)
    }

    pub async fn in_dir(
        kind: Kind,
        dir: TempDataDir,
        source: String,
        transport: Arc<dyn Transport>,
    ) -> World {
        let producer = open_store(dir.path(), "producer", &[]).await;
        let consumer = open_store(dir.path(), "consumer", &[tessera_bus::MIGRATIONS, EFFECTS]).await;
        World { kind, dir, source, producer, consumer, transport }
    }

    /// Another handle on the same stores and transport (the folder stays with `self`).
    pub fn clone_handles(&self) -> World {
        World {
            kind: self.kind,
            dir: TempDataDir::at(self.dir.path().to_path_buf()),
            source: self.source.clone(),
            producer: self.producer.clone(),
            consumer: self.consumer.clone(),
            transport: self.transport.clone(),
        }
    }

    pub fn envelope(&self, key: &str, seq: u64, poison: bool) -> Envelope {
        Envelope::new(
            &UuidV7Gen,
            MessageKind::Event,
            format!("{}.Happened", self.source),
            self.source.clone(),
            key,
            HlcTimestamp::default(),
            serde_json::json!({ "seq": seq, "poison": poison }),
        )
    }

    /// Commits one unit per message, each putting it in the producer's outbox.
    pub async fn produce(&self, messages: &[Envelope]) {
        for message in messages {
            let mut unit = self.producer.begin();
            unit.send(message).expect("send");
            unit.commit().await.expect("commit");
        }
    }

    pub fn relay(&self, options: RelayOptions) -> Running {
        let (stop, stopped) = watch::channel(false);
        let relay = Relay::new(self.source.clone(), self.producer.clone(), self.transport.clone(), options);
        Running { stop, task: tokio::spawn(async move { relay.run(stopped).await.expect("relay") }) }
    }

    pub fn subscriber(
        &self,
        handler: Arc<TestHandler>,
        upcasters: Upcasters,
        options: SubscriberOptions,
    ) -> Running {
        let (stop, stopped) = watch::channel(false);
        let subscriber = Subscriber::new(
            "consumer",
            self.source.clone(),
            self.consumer.clone(),
            self.transport.clone(),
            handler,
            Arc::new(upcasters),
            options,
        );
        Running {
            stop,
            task: tokio::spawn(async move { subscriber.run(stopped).await.expect("subscriber") }),
        }
    }

    pub async fn effects(&self) -> Vec<Effect> {
        effects(&self.consumer).await
    }

    /// Waits until `count` effects exist (or fails after `timeout`).
    pub async fn wait_for_effects(&self, count: usize, timeout: Duration) -> Vec<Effect> {
        wait_for_effects(&self.consumer, count, timeout).await
    }
}

pub async fn effects(store: &Store) -> Vec<Effect> {
    store
        .query(Statement::new("SELECT message_id, key, seq, payload, previous FROM effects ORDER BY id"))
        .await
        .expect("effects")
        .iter()
        .map(|row| Effect {
            message_id: row.text("message_id").expect("id").to_owned(),
            key: row.text("key").expect("key").to_owned(),
            seq: row.int("seq").expect("seq"),
            payload: row.text("payload").expect("payload").to_owned(),
            previous: row.int("previous").expect("previous"),
        })
        .collect()
}

pub async fn wait_for_effects(store: &Store, count: usize, timeout: Duration) -> Vec<Effect> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let effects = effects(store).await;
        if effects.len() >= count || tokio::time::Instant::now() > deadline {
            return effects;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect {
    pub message_id: String,
    pub key: String,
    pub seq: i64,
    pub payload: String,
    /// How many effects of the same key the handler saw committed before this one.
    pub previous: i64,
}

/// Records one effect row per message; refuses "poison" messages until cured; can fail the
/// first N attempts of every message.
#[derive(Debug, Default)]
pub struct TestHandler {
    pub cured: AtomicBool,
    pub fail_first: u32,
    attempts: Mutex<HashMap<String, u32>>,
    pub seen: Mutex<Vec<Envelope>>,
    /// When set, the only message name the handler wants (`Handler::wants`).
    pub only: Option<String>,
}

impl TestHandler {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn failing_first(attempts: u32) -> Arc<Self> {
        Arc::new(Self { fail_first: attempts, ..Self::default() })
    }

    pub fn wanting_only(name: &str) -> Arc<Self> {
        Arc::new(Self { only: Some(name.to_owned()), ..Self::default() })
    }

    pub fn cure(&self) {
        self.cured.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl Handler for TestHandler {
    fn wants(&self, message: &Envelope) -> bool {
        self.only.as_ref().is_none_or(|name| *name == message.name)
    }

    async fn handle(&self, message: &Envelope, unit: &mut UnitOfWork) -> Result<(), HandlerError> {
        self.seen.lock().expect("seen").push(message.clone());
        if message.payload["poison"].as_bool() == Some(true) && !self.cured.load(Ordering::SeqCst) {
            return Err(HandlerError::rejected("poison message: the handler cannot apply it"));
        }
        if let Some(value) = message.payload.get("seq_as_text") {
            // The payload's shape is wrong, whatever the state: the contract says a number.
            let _: u64 = serde_json::from_value(value.clone()).map_err(HandlerError::malformed)?;
        }
        if message.payload["panic"].as_bool() == Some(true) {
            panic!("the handler fell over");
        }
        let attempt = {
            let mut attempts = self.attempts.lock().expect("attempts");
            let n = attempts.entry(message.id.to_string()).or_default();
            *n += 1;
            *n
        };
        if attempt <= self.fail_first {
            return Err(HandlerError::Transient(format!("induced failure {attempt}").into()));
        }
        // A read-then-write handler: it must see the effect of the previous message of its key.
        let previous = unit
            .query(
                Statement::new("SELECT count(*) AS n FROM effects WHERE key = $1").bind(message.key.as_str()),
            )
            .await?[0]
            .int("n")?;
        unit.execute(
            Statement::new(
                "INSERT INTO effects (message_id, key, seq, payload, previous) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(message.id.to_string())
            .bind(message.key.as_str())
            .bind(message.payload["seq"].as_i64().unwrap_or(-1))
            .bind(message.payload.to_string())
            .bind(previous),
        );
        Ok(())
    }
}

pub struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("stops within 10 s")
            .expect("task");
    }
}

pub fn fast_subscriber() -> SubscriberOptions {
    SubscriberOptions {
        max_attempts: 3,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        dead_letter_poll: Duration::from_millis(100),
        ..SubscriberOptions::default()
    }
}

pub fn fast_relay() -> RelayOptions {
    RelayOptions { poll: Duration::from_millis(50), ..RelayOptions::default() }
}
