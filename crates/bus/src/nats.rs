//! The distributed topology's transport: NATS JetStream.
//!
//! One stream per source service (`TESSERA_<SOURCE>`, subjects `tessera.<source>.>`, where
//! `tessera` is the configurable namespace), each message on `tessera.<source>.<name>` with `Nats-Msg-Id` set to the envelope id, so the
//! server drops a republished duplicate within its duplicate window. Consumers are durable pull
//! consumers named `<subscriber>__<source>`, acknowledged explicitly after the subscriber's
//! commit. Streams and consumers are created idempotently when first used.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use async_trait::async_trait;
use futures_util::StreamExt;
use tessera_kernel::Envelope;

use crate::error::{BusError, Result};
use crate::transport::{AckFuture, Acker, Consumer, ConsumerSpec, Delivery, Transport, Watch, Watched};

/// Stream settings; the defaults suit one server. Every stream this transport creates uses them.
#[derive(Clone, Debug)]
pub struct NatsOptions {
    /// Prefix of every subject and stream: one server can host several environments (or test
    /// runs) side by side. `tessera` by default.
    pub namespace: String,
    pub replicas: usize,
    pub storage: stream::StorageType,
    /// How long the server remembers message ids to drop duplicates.
    pub duplicate_window: Duration,
    /// How long messages are kept (zero: forever).
    pub max_age: Duration,
    /// The service this connection belongs to, in the distributed topology. It then creates
    /// only its own stream (its sources' streams are their owners' to create, and its
    /// credentials allow nothing else), waits for the streams it consumes, and takes its
    /// replies under its own inbox prefix ([`inbox_prefix`]).
    pub service: Option<String>,
    /// The nkey seed (`SU…`) the connection authenticates with.
    pub nkey_seed: Option<NkeySeed>,
    /// A PEM file of the certificate authorities to trust: the connection then requires TLS.
    pub tls_roots: Option<PathBuf>,
}

/// An nkey seed, kept out of logs and debug output.
#[derive(Clone)]
pub struct NkeySeed(pub String);

impl std::fmt::Debug for NkeySeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NkeySeed(..)")
    }
}

impl NatsOptions {
    /// The stream of `source`: `<NAMESPACE>_<SOURCE>`, upper case.
    pub fn stream_name(&self, source: &str) -> String {
        token(&format!("{}_{}", self.namespace, source)).to_ascii_uppercase()
    }
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            namespace: "tessera".to_owned(),
            replicas: 1,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(7 * 24 * 3600),
            service: None,
            nkey_seed: None,
            tls_roots: None,
        }
    }
}

#[derive(Debug)]
pub struct NatsTransport {
    jetstream: jetstream::Context,
    options: NatsOptions,
    /// Sources whose stream is known to exist.
    streams: Mutex<HashSet<String>>,
    /// Counts the times messages to plain subscriptions may have been lost: each (re)connection
    /// and each message the server dropped for a slow subscriber. Watchers report a gap on each.
    gaps: tokio::sync::watch::Receiver<u64>,
}

/// The header names carried besides `Nats-Msg-Id` (async-nats's own `NATS_MESSAGE_ID`), so
/// that tools can route and trace messages without parsing payloads.
pub(crate) mod header {
    use async_nats::HeaderName;

    pub const CORRELATION_ID: HeaderName = HeaderName::from_static("Tessera-Correlation-Id");
    pub const CAUSATION_ID: HeaderName = HeaderName::from_static("Tessera-Causation-Id");
    pub const SUBJECT: HeaderName = HeaderName::from_static("Tessera-Subject");
    pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
}

pub(crate) fn token(text: &str) -> String {
    text.replace(['.', ' ', '*', '>'], "_")
}

pub(crate) fn consumer_name_of(subscriber: &str, source: &str) -> String {
    token(&format!("{subscriber}__{source}"))
}

/// The inbox prefix of `service`'s connection: replies to its requests arrive under it.
pub fn inbox_prefix(service: &str) -> String {
    format!("_INBOX_{}", token(service))
}

fn consumer_name(spec: &ConsumerSpec) -> String {
    consumer_name_of(&spec.subscriber, &spec.source)
}

fn stream_missing(error: &jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(ref cause)
            if cause.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// How often a consumer looks again for a stream its owner has not created yet.
const STREAM_LOOKUP_EVERY: Duration = Duration::from_millis(500);

impl NatsTransport {
    pub async fn connect(url: &str, options: NatsOptions) -> Result<Self> {
        let (gap, gaps) = tokio::sync::watch::channel(0_u64);
        let mut connect = async_nats::ConnectOptions::new();
        if let Some(seed) = &options.nkey_seed {
            connect = connect.nkey(seed.0.clone());
        }
        if let Some(service) = &options.service {
            connect = connect.custom_inbox_prefix(inbox_prefix(service));
        }
        if let Some(roots) = &options.tls_roots {
            connect = connect.add_root_certificates(roots.clone()).require_tls(true);
        }
        let client = connect
            .event_callback(move |event| {
                if matches!(event, async_nats::Event::Connected | async_nats::Event::SlowConsumer(_)) {
                    gap.send_modify(|count| *count += 1);
                }
                // A refused key or a permission the service lacks would otherwise only show as
                // a connection that never comes up, or a consumer that never starts.
                if let async_nats::Event::ServerError(error) = &event {
                    tracing::error!(%error, "the NATS server refused this connection or one of its requests");
                }
                async {}
            })
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(BusError::nats)?;
        Ok(Self { jetstream: jetstream::new(client), options, streams: Mutex::new(HashSet::new()), gaps })
    }

    async fn ensure_stream(&self, source: &str) -> Result<stream::Stream> {
        let config = stream::Config {
            name: self.stream_name(source),
            subjects: vec![format!("{}.{source}.>", self.options.namespace)],
            num_replicas: self.options.replicas,
            storage: self.options.storage,
            duplicate_window: self.options.duplicate_window,
            max_age: self.options.max_age,
            ..Default::default()
        };
        let stream = self.jetstream.get_or_create_stream(config).await.map_err(BusError::nats)?;
        self.streams.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(source.to_owned());
        Ok(stream)
    }

    /// The stream of a source this connection consumes. A service's connection waits for its
    /// owner to create it; a tool's (no [`NatsOptions::service`]) creates it.
    async fn source_stream(&self, source: &str) -> Result<stream::Stream> {
        let owned_elsewhere = self.options.service.as_deref().is_some_and(|service| service != source);
        if !owned_elsewhere {
            return self.ensure_stream(source).await;
        }
        let name = self.stream_name(source);
        let mut waited = false;
        loop {
            match self.jetstream.get_stream(&name).await {
                Ok(stream) => return Ok(stream),
                Err(error) if stream_missing(&error) => {
                    if !waited {
                        tracing::info!(stream = %name, %error, "waiting for the stream's owner to create it");
                        waited = true;
                    }
                    tokio::time::sleep(STREAM_LOOKUP_EVERY).await;
                }
                Err(error) => return Err(BusError::nats(error)),
            }
        }
    }

    /// Creates the stream of this connection's own service, so that its consumers can start
    /// before it first publishes.
    pub async fn declare_own_stream(&self) -> Result<()> {
        if let Some(service) = self.options.service.clone() {
            self.ensure_stream(&service).await?;
        }
        Ok(())
    }

    /// `<NAMESPACE>_<SOURCE>`, upper case.
    pub fn stream_name(&self, source: &str) -> String {
        self.options.stream_name(source)
    }

    fn knows_stream(&self, source: &str) -> bool {
        self.streams.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains(source)
    }
}

#[async_trait]
impl Transport for NatsTransport {
    async fn publish(&self, envelope: &Envelope) -> Result<AckFuture> {
        if !self.knows_stream(&envelope.source) {
            self.ensure_stream(&envelope.source).await?;
        }
        // Values are handed over as owned strings and names as static ones: no copy of either.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, envelope.id.to_string());
        headers.insert(header::CORRELATION_ID, envelope.correlation_id.to_string());
        if let Some(causation) = envelope.causation_id {
            headers.insert(header::CAUSATION_ID, causation.to_string());
        }
        if let Some(subject) = envelope.subject {
            headers.insert(header::SUBJECT, subject.to_string());
        }
        if let Some(traceparent) = &envelope.traceparent {
            headers.insert(header::TRACEPARENT, traceparent.clone());
        }
        let payload = serde_json::to_vec(envelope)
            .map_err(|e| BusError::Malformed { id: envelope.id.to_string(), reason: e.to_string() })?;
        let subject = format!("{}.{}.{}", self.options.namespace, envelope.source, envelope.name);
        let ack = self
            .jetstream
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(BusError::nats)?;
        Ok(Box::pin(async move { ack.await.map(|_| ()).map_err(BusError::nats) }))
    }

    async fn consume(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>> {
        let stream = self.source_stream(&spec.source).await?;
        let name = consumer_name(spec);
        let config = consumer::pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: format!("{}.{}.>", self.options.namespace, spec.source),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::All,
            ack_wait: spec.ack_wait,
            max_ack_pending: i64::try_from(spec.max_in_flight).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let consumer = stream.get_or_create_consumer(&name, config).await.map_err(BusError::nats)?;
        Ok(Box::new(NatsConsumer { consumer, messages: None }))
    }

    /// A plain subscription to the source's subjects: the server hands each JetStream publish
    /// to it as well, keeping nothing for it, and the client subscribes again after a
    /// reconnection (reported as a gap, since messages published meanwhile are not seen).
    async fn watch(&self, source: &str) -> Result<Watch> {
        let subject = format!("{}.{source}.>", self.options.namespace);
        let subscription = self.jetstream.client().subscribe(subject).await.map_err(BusError::nats)?;
        let mut gaps = self.gaps.clone();
        gaps.mark_unchanged();
        Ok(Box::pin(futures_util::stream::unfold(
            (subscription, gaps),
            |(mut subscription, mut gaps)| async move {
                loop {
                    tokio::select! {
                        message = subscription.next() => {
                            let message = message?;
                            match serde_json::from_slice::<Envelope>(&message.payload) {
                                Ok(envelope) => {
                                    return Some((Watched::Message(Arc::new(envelope)), (subscription, gaps)));
                                }
                                // Not an envelope: nothing to wake anyone for.
                                Err(_) => continue,
                            }
                        }
                        changed = gaps.changed() => {
                            if changed.is_err() {
                                return None;
                            }
                            return Some((Watched::Gap, (subscription, gaps)));
                        }
                    }
                }
            },
        )))
    }
}

struct NatsConsumer {
    consumer: consumer::Consumer<consumer::pull::Config>,
    /// A continuous pull: the server pushes messages as they arrive, up to the consumer's
    /// ack-pending limit, so a quiet moment never holds back the next message.
    messages: Option<consumer::pull::Stream>,
}

impl std::fmt::Debug for NatsConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConsumer").finish_non_exhaustive()
    }
}

impl NatsConsumer {
    fn deliver(message: jetstream::Message) -> Option<Delivery> {
        let delivered = message.info().map(|info| info.delivered.max(1).unsigned_abs()).unwrap_or(1);
        match serde_json::from_slice::<Envelope>(&message.payload) {
            Ok(envelope) => Some(Delivery {
                envelope: Arc::new(envelope),
                delivered,
                acker: Box::new(NatsAcker { message }),
            }),
            Err(error) => {
                // Not ours to handle and never will be: terminate it rather than loop.
                tracing::error!(%error, "terminating a message that is not an envelope");
                tokio::spawn(async move {
                    let _ = message.ack_with(AckKind::Term).await;
                });
                None
            }
        }
    }
}

#[async_trait]
impl Consumer for NatsConsumer {
    async fn pending(&mut self) -> Result<Option<u64>> {
        let info = self.consumer.get_info().await.map_err(BusError::nats)?;
        Ok(Some(info.num_pending + info.num_ack_pending as u64))
    }

    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        if self.messages.is_none() {
            let stream = self
                .consumer
                .stream()
                .max_messages_per_batch(max.max(1))
                .heartbeat(Duration::from_secs(5))
                .messages()
                .await
                .map_err(BusError::nats)?;
            self.messages = Some(stream);
        }
        let Some(messages) = self.messages.as_mut() else { return Ok(Vec::new()) };
        let mut deliveries = Vec::new();
        let first = match tokio::time::timeout(wait, messages.next()).await {
            Err(_) => return Ok(deliveries),
            Ok(None) => {
                self.messages = None;
                return Err(BusError::Closed);
            }
            Ok(Some(first)) => first,
        };
        match first {
            Ok(message) => deliveries.extend(Self::deliver(message)),
            Err(error) => {
                // The pull stream ends on errors it cannot recover from; open a new one next time.
                self.messages = None;
                return Err(BusError::nats(error));
            }
        }
        while deliveries.len() < max {
            match futures_util::FutureExt::now_or_never(messages.next()) {
                Some(Some(Ok(message))) => deliveries.extend(Self::deliver(message)),
                Some(Some(Err(error))) => {
                    tracing::warn!(%error, "pull stream error");
                    break;
                }
                Some(None) => {
                    self.messages = None;
                    break;
                }
                None => break,
            }
        }
        Ok(deliveries)
    }
}

struct NatsAcker {
    message: jetstream::Message,
}

#[async_trait]
impl Acker for NatsAcker {
    async fn ack(self: Box<Self>) -> Result<()> {
        // A plain ack, not a confirmed one: if it is lost, the message comes back after
        // `ack_wait` and meets its inbox record. A confirmed ack would cost a round trip per
        // message for no gain in correctness.
        self.message.ack().await.map_err(BusError::nats)
    }

    async fn in_progress(&self) {
        let _ = self.message.ack_with(AckKind::Progress).await;
    }
}
