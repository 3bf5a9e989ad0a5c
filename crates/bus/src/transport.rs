//! The port between relays, subscribers and a message broker.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tessera_kernel::Envelope;

use crate::error::Result;

/// Resolves once the transport holds the message durably; only then may the relay mark the
/// outbox row sent.
pub type AckFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug {
    /// Starts publishing `envelope`; returns once it is on its way, with a future for its
    /// acknowledgement, so a relay can keep a window of publishes in flight.
    async fn publish(&self, envelope: &Envelope) -> Result<AckFuture>;

    /// Opens (creating if needed) the durable consumer `spec.subscriber` of `spec.source`.
    async fn consume(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>>;

    /// Declares a consumer ahead of `consume`, synchronously, so that messages published from
    /// now on are kept for it. `Subscriber::new` calls it; a transport whose server keeps
    /// messages anyway (NATS) has nothing to do.
    fn declare(&self, _spec: &ConsumerSpec) {}

    /// Every message `source` publishes from now on, as it is published, to every watcher
    /// (each process that watches sees all of them, unlike a consumer's replicas).
    async fn watch(&self, source: &str) -> Result<Watch>;
}

/// What a [`Transport::watch`] yields.
#[derive(Clone, Debug)]
pub enum Watched {
    /// A message of the watched source, published after its commit was durable.
    Message(Arc<Envelope>),
    /// Messages may have been missed (the watcher fell behind, or the connection to the broker
    /// was lost and made again): whoever waits on the source should read its state again.
    Gap,
}

/// A live view of one source's messages from the moment it is opened: nothing is kept for it
/// and nothing is acknowledged, so it costs the broker no consumer state. It is for waking
/// waiters (a client waiting for an order to settle), never for effects: those go through a
/// [`Consumer`] and an inbox.
pub type Watch = Pin<Box<dyn futures_util::Stream<Item = Watched> + Send>>;

/// One durable consumer: a subscribing service reading one source service's messages. Replicas
/// of the subscriber share it, so each message goes to one of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerSpec {
    pub subscriber: String,
    pub source: String,
    /// Most messages handed out and not yet acknowledged.
    pub max_in_flight: usize,
    /// How long a handed-out message may stay unacknowledged before it is redelivered.
    pub ack_wait: Duration,
}

impl ConsumerSpec {
    pub fn new(subscriber: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            subscriber: subscriber.into(),
            source: source.into(),
            max_in_flight: 4096,
            ack_wait: Duration::from_secs(30),
        }
    }
}

#[async_trait]
pub trait Consumer: Send + fmt::Debug {
    /// Up to `max` messages, waiting at most `wait` for the first.
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>>;

    /// Messages this consumer has not acknowledged yet (waiting or in flight), if the
    /// transport can tell.
    async fn pending(&mut self) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// A delivered message. Acknowledge it after the effect is committed; dropping it without an
/// acknowledgement means it will be delivered again.
pub struct Delivery {
    /// Shared, not copied: the in-process transport keeps the same envelope for a redelivery.
    pub envelope: Arc<Envelope>,
    /// 1 on first delivery.
    pub delivered: u64,
    pub(crate) acker: Box<dyn Acker>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery").field("id", &self.envelope.id).field("delivered", &self.delivered).finish()
    }
}

impl Delivery {
    pub async fn ack(self) -> Result<()> {
        self.acker.ack().await
    }

    /// Tells the transport the message is still being worked on (retries in progress).
    pub async fn in_progress(&self) {
        self.acker.in_progress().await;
    }
}

#[async_trait]
pub(crate) trait Acker: Send + Sync {
    async fn ack(self: Box<Self>) -> Result<()>;
    async fn in_progress(&self);
}
