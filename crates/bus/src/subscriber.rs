//! The subscriber: consumes one source service's messages and applies each inside a unit of
//! work that also records the message in the inbox, then commits, then acknowledges. A
//! redelivered message fails the inbox check and is simply acknowledged: one effect.
//!
//! Messages are spread over lanes by their ordering key; a lane handles its messages one after
//! another, so order holds per key while different keys proceed in parallel (and their units
//! share group commits). A failing message is retried with exponential backoff and jitter in
//! its lane; after `max_attempts` it is parked in the dead-letter table and acknowledged, and
//! the lane moves on.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tessera_kernel::Envelope;
use tessera_store::{Store, StoreError, UnitOfWork};
use tokio::sync::{mpsc, watch};

use crate::dead_letter::{self, DeadLetter};
use crate::error::Result;
use crate::handler::{Handler, HandlerError};
use crate::hook::Hook;
use crate::transport::{ConsumerSpec, Delivery, Transport};
use crate::upcast::Upcasters;

#[derive(Clone)]
pub struct SubscriberOptions {
    pub lanes: usize,
    /// Messages fetched from the transport at a time.
    pub batch: usize,
    /// Attempts before a message is parked as a dead letter.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How often to look for dead letters an operator asked to retry.
    pub dead_letter_poll: Duration,
    /// How long a fetched message may go unacknowledged before the transport redelivers it
    /// (to this or another replica). Retries keep extending it.
    pub ack_wait: Duration,
    /// Most messages of one lane applied in one unit of work when they queue up; a group
    /// that fails as a whole is retried message by message.
    pub group: usize,
    /// Called after a message's unit committed and before it is acknowledged.
    pub after_commit: Option<Hook>,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        Self {
            lanes: 32,
            batch: 256,
            max_attempts: 5,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            dead_letter_poll: Duration::from_secs(1),
            ack_wait: Duration::from_secs(30),
            group: 64,
            after_commit: None,
        }
    }
}

impl std::fmt::Debug for SubscriberOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriberOptions")
            .field("lanes", &self.lanes)
            .field("batch", &self.batch)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

pub struct Subscriber {
    spec: ConsumerSpec,
    transport: Arc<dyn Transport>,
    lane: Arc<Lane>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber").field("spec", &self.spec).finish_non_exhaustive()
    }
}

/// What every lane shares.
struct Lane {
    consumer: String,
    /// The service whose stream this lane reads: the only source its messages may declare.
    source: String,
    store: Store,
    handler: Arc<dyn Handler>,
    upcasters: Arc<Upcasters>,
    options: SubscriberOptions,
}

/// Why applying a message did not produce its effect this time.
enum Failure {
    /// The inbox already holds it: acknowledge and move on.
    AlreadyApplied,
    /// Worth retrying without counting an attempt (the database is away).
    Transient(String),
    /// Counts towards `max_attempts`.
    Failed(String),
    /// Can never be applied: parked at once.
    Malformed(String),
}

impl Subscriber {
    pub fn new(
        service: impl Into<String>,
        source: impl Into<String>,
        store: Store,
        transport: Arc<dyn Transport>,
        handler: Arc<dyn Handler>,
        upcasters: Arc<Upcasters>,
        options: SubscriberOptions,
    ) -> Self {
        let spec = ConsumerSpec { ack_wait: options.ack_wait, ..ConsumerSpec::new(service, source) };
        // Declared now, not when `run` gets going, so that nothing published in between is
        // missed (the in-process transport keeps messages only for declared consumers).
        transport.declare(&spec);
        let consumer = format!("{}__{}", spec.subscriber, spec.source);
        let source = spec.source.clone();
        Self {
            spec,
            transport,
            lane: Arc::new(Lane { consumer, source, store, handler, upcasters, options }),
        }
    }

    /// The name under which this subscription's dead letters are filed.
    pub fn consumer_name(&self) -> &str {
        &self.lane.consumer
    }

    /// Runs until `shutdown` becomes true. Among replicas of the service sharing a database,
    /// one consumes at a time (the others stand by and take over when its lease goes), so
    /// messages of one key are never handled by two processes at once.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let lease_name = format!("tessera.subscriber.{}", self.lane.consumer);
        while !*shutdown.borrow() {
            let lease = match self.lane.store.try_lease(&lease_name).await {
                Ok(lease) => lease,
                Err(error) => {
                    tracing::warn!(consumer = %self.lane.consumer, %error, "cannot ask for the subscriber lease");
                    None
                }
            };
            let Some(lease) = lease else {
                tokio::select! {
                    () = tokio::time::sleep(STANDBY_POLL) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            self.consume_while_leading(&lease, &mut shutdown).await?;
        }
        Ok(())
    }

    /// Consumes while this replica holds the lease, then lets the lanes finish what they hold.
    async fn consume_while_leading(
        &self,
        lease: &tessera_store::Lease,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let mut consumer = self.transport.consume(&self.spec).await?;
        let options = &self.lane.options;
        let lanes: Vec<_> = (0..options.lanes.max(1))
            .map(|_| {
                let (sender, mut receiver) = mpsc::unbounded_channel::<Delivery>();
                let lane = self.lane.clone();
                let stop = shutdown.clone();
                let task = tokio::spawn(async move {
                    let mut carried: Option<Delivery> = None;
                    loop {
                        let first = match carried.take() {
                            Some(delivery) => delivery,
                            None => match receiver.recv().await {
                                Some(delivery) => delivery,
                                None => break,
                            },
                        };
                        let mut group = vec![first];
                        // One message per key in a group: a handler must see the effects of
                        // the message before it, and a unit only reads committed data.
                        while group.len() < lane.options.group {
                            match receiver.try_recv() {
                                Ok(next) if group.iter().any(|d| d.envelope.key == next.envelope.key) => {
                                    carried = Some(next);
                                    break;
                                }
                                Ok(next) => group.push(next),
                                Err(_) => break,
                            }
                        }
                        lane.process_group(group, &stop).await;
                    }
                });
                (sender, task)
            })
            .collect();
        let mut last_dead_letter_poll = Instant::now();
        while !*shutdown.borrow() && lease.is_held() {
            let batch = tokio::select! {
                batch = consumer.next_batch(options.batch, Duration::from_millis(200)) => batch,
                _ = shutdown.changed() => break,
            };
            match batch {
                Ok(deliveries) => {
                    let mut unwanted = Vec::new();
                    for delivery in deliveries {
                        // A message from the wrong source is never skipped unread: the lane
                        // refuses it and parks it, so that someone sees the forgery.
                        let genuine = delivery.envelope.source == self.lane.source;
                        if genuine && !self.lane.handler.wants(&delivery.envelope) {
                            unwanted.push(delivery);
                            continue;
                        }
                        let lane = lane_of(&delivery.envelope.key, lanes.len());
                        // A lane stops only when its sender is dropped, below, or if its task
                        // died; then the delivery goes back unacknowledged and comes again.
                        if lanes[lane].0.send(delivery).is_err() {
                            return Err(crate::error::BusError::Closed);
                        }
                    }
                    if !unwanted.is_empty() {
                        metrics::counter!("tessera_consumer_skipped_total", "consumer" => self.lane.consumer.clone())
                            .increment(unwanted.len() as u64);
                        // Not through `Lane::acknowledge`: these were not worked on, and their
                        // age says nothing of how far behind the lanes are.
                        for delivery in unwanted {
                            if let Err(error) = delivery.ack().await {
                                tracing::warn!(consumer = %self.lane.consumer, %error, "ack of a skipped message failed");
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(consumer = %self.lane.consumer, %error, "fetch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            if last_dead_letter_poll.elapsed() >= options.dead_letter_poll {
                last_dead_letter_poll = Instant::now();
                // Lag in messages, as the transport counts them (sampled with the dead-letter
                // poll, about once a second).
                if let Ok(Some(pending)) = consumer.pending().await {
                    metrics::gauge!("tessera_consumer_pending_messages", "consumer" => self.lane.consumer.clone())
                        .set(pending as f64);
                    crate::lag::record_pending(&self.lane.consumer, pending);
                    if pending == 0 {
                        // Caught up: nothing is behind, whatever the last message's age was.
                        metrics::gauge!("tessera_consumer_lag_seconds", "consumer" => self.lane.consumer.clone())
                            .set(0.0);
                        crate::lag::record(&self.lane.consumer, 0.0);
                    }
                }
                if let Err(error) = self.lane.retry_dead_letters(shutdown).await {
                    tracing::warn!(consumer = %self.lane.consumer, %error, "dead-letter retry failed");
                }
            }
        }
        for (sender, task) in lanes {
            drop(sender);
            let _ = task.await;
        }
        Ok(())
    }
}

/// How often a standby replica asks for the lease.
const STANDBY_POLL: Duration = Duration::from_millis(250);

fn lane_of(key: &str, lanes: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    usize::try_from(hasher.finish() % lanes as u64).unwrap_or(0)
}

impl Lane {
    /// Applies queued messages of this lane in one unit: one commit instead of many. Any
    /// failure (a duplicate, a handler error, an upcasting error) sends the whole group down
    /// the one-by-one path, which sorts out each message; the group's unit is never committed,
    /// so nothing is applied twice.
    async fn process_group(&self, group: Vec<Delivery>, shutdown: &watch::Receiver<bool>) {
        if group.len() == 1 {
            for delivery in group {
                self.process(delivery, shutdown).await;
            }
            return;
        }
        let mut unit = self.store.begin();
        let mut applied = Vec::with_capacity(group.len());
        let mut whole = true;
        for delivery in &group {
            let Ok(envelope) = self.upcasters.upcast_ref(&delivery.envelope) else {
                whole = false;
                break;
            };
            unit.record_inbox(envelope.id);
            if self.handle(&envelope, &mut unit).await.is_err() {
                whole = false;
                break;
            }
            applied.push(envelope);
        }
        if whole && unit.commit().await.is_ok() {
            if let Some(hook) = &self.options.after_commit {
                applied.iter().for_each(|envelope| hook(envelope));
            }
            drop(applied);
            self.acknowledge(group).await;
            return;
        }
        drop(applied);
        for delivery in group {
            self.process(delivery, shutdown).await;
        }
    }

    /// The handler, with a panic turned into an ordinary failure: a panicking handler must
    /// not take its lane (and every key hashed to it) down with it.
    async fn handle(&self, envelope: &Envelope, unit: &mut UnitOfWork) -> Result<(), Failure> {
        // A service publishes only on its own stream, so a message that names another source
        // was put there by someone else: never applied, parked for an operator to see.
        if envelope.source != self.source {
            metrics::counter!("tessera_messages_refused_total", "consumer" => self.consumer.clone(), "reason" => "source")
                .increment(1);
            tracing::warn!(consumer = %self.consumer, id = %envelope.id, declared = %envelope.source, "a message declares a source other than its stream's");
            return Err(Failure::Malformed(format!(
                "declares the source {:?} but came on {:?}'s stream",
                envelope.source, self.source
            )));
        }
        let span =
            tessera_telemetry::message_span(&self.consumer, &envelope.name, envelope.traceparent.as_deref());
        let handled = tracing::Instrument::instrument(self.handler.handle(envelope, unit), span);
        match std::panic::AssertUnwindSafe(handled).catch_unwind().await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error @ HandlerError::Malformed(_))) => Err(Failure::Malformed(error.to_string())),
            Ok(Err(error)) => Err(Failure::Failed(error.to_string())),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                Err(Failure::Failed(format!("handler panicked: {what}")))
            }
        }
    }

    async fn process(&self, delivery: Delivery, shutdown: &watch::Receiver<bool>) {
        let envelope = match self.upcasters.upcast_ref(&delivery.envelope) {
            Ok(envelope) => envelope,
            Err(error) => {
                if self.park(&delivery.envelope, &error.to_string(), 1, shutdown).await {
                    self.acknowledge(vec![delivery]).await;
                }
                return;
            }
        };
        let mut attempts = 0u32;
        let mut transient_failures = 0u32;
        loop {
            let failure = match self.apply(&envelope, None).await {
                Ok(()) => {
                    if let Some(hook) = &self.options.after_commit {
                        hook(&envelope);
                    }
                    break;
                }
                Err(Failure::AlreadyApplied) => break,
                Err(Failure::Transient(error)) => {
                    transient_failures += 1;
                    tracing::warn!(consumer = %self.consumer, id = %envelope.id, %error, "transient failure; retrying");
                    transient_failures
                }
                // A handler's failure while its database is away (a restart, a failover) says
                // nothing about the message: it must not be parked for the outage.
                Err(Failure::Malformed(error)) => {
                    tracing::warn!(consumer = %self.consumer, id = %envelope.id, %error, "malformed; parking as a dead letter at once");
                    if !self.park(&envelope, &error, attempts + 1, shutdown).await {
                        return;
                    }
                    break;
                }
                Err(Failure::Failed(error)) if !self.store_reachable().await => {
                    transient_failures += 1;
                    tracing::warn!(consumer = %self.consumer, id = %envelope.id, %error, "failed while the store is unreachable; retrying");
                    transient_failures
                }
                Err(Failure::Failed(error)) => {
                    attempts += 1;
                    if attempts >= self.options.max_attempts {
                        tracing::warn!(consumer = %self.consumer, id = %envelope.id, %error, attempts, "parking as a dead letter");
                        if !self.park(&envelope, &error, attempts, shutdown).await {
                            return;
                        }
                        break;
                    }
                    tracing::debug!(consumer = %self.consumer, id = %envelope.id, %error, attempts, "handler failed; retrying");
                    attempts
                }
            };
            if *shutdown.borrow() {
                // Leave it unacknowledged: it is delivered again after the restart.
                return;
            }
            delivery.in_progress().await;
            tokio::time::sleep(self.backoff(failure)).await;
        }
        drop(envelope);
        self.acknowledge(vec![delivery]).await;
    }

    /// Acknowledges messages whose effects are committed (together, when they come from one
    /// group), and records the lag and the count once for them all: the metric lookups and
    /// the lag table's lock are per call, not per message.
    async fn acknowledge(&self, deliveries: Vec<Delivery>) {
        // How far behind its source this subscription runs: the age of the oldest message it
        // just finished.
        let now = self.store.clock().now().as_micros();
        let oldest = deliveries.iter().map(|d| d.envelope.at.wall().as_micros()).min().unwrap_or(now);
        let age = now.saturating_sub(oldest) as f64 / 1e6;
        metrics::gauge!("tessera_consumer_lag_seconds", "consumer" => self.consumer.clone()).set(age);
        crate::lag::record(&self.consumer, age);
        metrics::counter!("tessera_consumer_messages_total", "consumer" => self.consumer.clone())
            .increment(deliveries.len() as u64);
        for delivery in deliveries {
            let id = delivery.envelope.id;
            if let Err(error) = delivery.ack().await {
                // The effect is committed; a redelivery will meet the inbox record.
                tracing::warn!(consumer = %self.consumer, %id, %error, "ack failed");
            }
        }
    }

    async fn store_reachable(&self) -> bool {
        self.store.query(tessera_store::Statement::new("SELECT 1 AS reachable")).await.is_ok()
    }

    /// One attempt: inbox record, handler, (resolving a dead letter,) commit.
    async fn apply(&self, envelope: &Envelope, dead_letter: Option<i64>) -> Result<(), Failure> {
        let mut unit = self.store.begin();
        unit.record_inbox(envelope.id);
        self.handle(envelope, &mut unit).await?;
        if let Some(id) = dead_letter {
            dead_letter::resolve(&mut unit, id);
        }
        match unit.commit().await {
            Ok(_) => Ok(()),
            Err(StoreError::DuplicateMessage(_)) => Err(Failure::AlreadyApplied),
            Err(error) if error.is_transient() => Err(Failure::Transient(error.to_string())),
            Err(error) => Err(Failure::Failed(error.to_string())),
        }
    }

    /// Parks the message, retrying until the store takes it (dropping it would lose it) or
    /// shutdown begins; returns whether it was parked, that is, may be acknowledged.
    async fn park(
        &self,
        envelope: &Envelope,
        error: &str,
        attempts: u32,
        shutdown: &watch::Receiver<bool>,
    ) -> bool {
        let mut tries = 0;
        loop {
            let mut unit = self.store.begin();
            let parked = match dead_letter::park(
                &mut unit,
                &self.consumer,
                envelope,
                error,
                attempts,
                self.store.clock().now(),
            ) {
                Ok(()) => unit.commit().await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match parked {
                Ok(()) => {
                    metrics::counter!("tessera_dead_letters_parked_total", "consumer" => self.consumer.clone())
                        .increment(1);
                    return true;
                }
                Err(_) if *shutdown.borrow() => return false,
                Err(reason) => {
                    tries += 1;
                    tracing::error!(consumer = %self.consumer, id = %envelope.id, %reason, "cannot park dead letter; retrying");
                    tokio::time::sleep(self.backoff(tries)).await;
                }
            }
        }
    }

    async fn retry_dead_letters(&self, shutdown: &watch::Receiver<bool>) -> Result<()> {
        for letter in dead_letter::due_for_retry(&self.store, &self.consumer).await? {
            self.retry(letter, shutdown).await?;
        }
        Ok(())
    }

    async fn retry(&self, letter: DeadLetter, shutdown: &watch::Receiver<bool>) -> Result<()> {
        let outcome = match self.upcasters.upcast(letter.envelope.clone()) {
            Ok(envelope) => self.apply(&envelope, Some(letter.id)).await,
            Err(error) => Err(Failure::Failed(error.to_string())),
        };
        match outcome {
            Ok(()) => {}
            Err(Failure::AlreadyApplied) => {
                dead_letter::drop_dead_letter(&self.store, letter.id).await?;
            }
            Err(Failure::Transient(error) | Failure::Failed(error) | Failure::Malformed(error)) => {
                self.park(&letter.envelope, &error, 1, shutdown).await;
            }
        }
        Ok(())
    }

    /// Exponential backoff with jitter: half the step fixed, half random.
    fn backoff(&self, attempt: u32) -> Duration {
        let step = self
            .options
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)))
            .min(self.options.backoff_max);
        let half = step / 2;
        // The random bits of a UUID v7 are a good enough source of jitter.
        let random = uuid::Uuid::now_v7().as_u128() as u64;
        let jitter_micros = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_micros(random % jitter_micros)
    }
}
