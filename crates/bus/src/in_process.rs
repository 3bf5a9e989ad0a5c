//! The embedded topology's transport: queues in memory, no network.
//!
//! It keeps nothing durable, so it acknowledges a publish only when every consumer of the
//! source has acknowledged the message, that is, committed its effect. Until then the outbox
//! row stays unsent; after a crash the relay publishes it again and the inbox drops the
//! duplicate: the outbox is the durable log. Consumers are declared when their `Subscriber` is
//! built, before any relay runs; a message for a source nobody declared is acknowledged at
//! once (docs/decisions/0002-in-process-delivery.md).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tessera_kernel::Envelope;
use tokio::sync::{Notify, broadcast, oneshot};

use crate::error::Result;
use crate::transport::{AckFuture, Acker, Consumer, ConsumerSpec, Delivery, Transport, Watch, Watched};

#[derive(Clone, Debug, Default)]
pub struct InProcessTransport {
    sources: Arc<Mutex<HashMap<String, Vec<Arc<Queue>>>>>,
    /// Each watched source's channel to its watchers; a source nobody watches has none.
    watchers: Arc<Mutex<HashMap<String, broadcast::Sender<Arc<Envelope>>>>>,
}

/// Messages a watcher may fall behind by before it is told of a gap.
const WATCH_CAPACITY: usize = 4096;

impl InProcessTransport {
    pub fn new() -> Self {
        Self::default()
    }

    /// The durable queue of one consumer, created on first use.
    fn queue(&self, spec: &ConsumerSpec) -> Arc<Queue> {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let queues = sources.entry(spec.source.clone()).or_default();
        if let Some(queue) = queues.iter().find(|q| q.name == spec.subscriber) {
            return queue.clone();
        }
        let queue = Arc::new(Queue { name: spec.subscriber.clone(), ..Queue::default() });
        queues.push(queue.clone());
        queue
    }
}

/// One durable consumer's queue.
#[derive(Debug, Default)]
struct Queue {
    name: String,
    /// Always sorted by `seq`: a redelivered message goes back to its place.
    pending: Mutex<VecDeque<Pending>>,
    next_seq: AtomicU64,
    arrived: Notify,
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    envelope: Arc<Envelope>,
    delivered: u64,
    outstanding: Arc<Outstanding>,
}

/// Counts the consumers that have yet to acknowledge one publish.
#[derive(Debug)]
struct Outstanding {
    remaining: AtomicUsize,
    done: Mutex<Option<oneshot::Sender<()>>>,
}

impl Outstanding {
    fn acknowledge(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(done) = self.done.lock().unwrap_or_else(PoisonError::into_inner).take()
        {
            let _ = done.send(());
        }
    }
}

impl Queue {
    fn push_new(&self, envelope: Arc<Envelope>, outstanding: Arc<Outstanding>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        // Sequence numbers are taken under the lock, so the queue stays sorted.
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        pending.push_back(Pending { seq, envelope, delivered: 0, outstanding });
        drop(pending);
        self.arrived.notify_one();
    }

    /// Puts an unacknowledged message back in publish order (several may come back at once,
    /// in any order, when a consumer drops what it held).
    fn requeue(&self, returned: Pending) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let at = pending.partition_point(|p| p.seq < returned.seq);
        pending.insert(at, returned);
        drop(pending);
        self.arrived.notify_one();
    }

    fn take(&self, max: usize) -> Vec<Pending> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let count = pending.len().min(max);
        pending.drain(..count).collect()
    }
}

#[async_trait]
impl Transport for InProcessTransport {
    async fn publish(&self, envelope: &Envelope) -> Result<AckFuture> {
        let watchers = self
            .watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&envelope.source)
            .filter(|sender| sender.receiver_count() > 0)
            .cloned();
        let shared = watchers.as_ref().map(|_| Arc::new(envelope.clone()));
        if let (Some(watchers), Some(shared)) = (&watchers, &shared) {
            // No watcher left is not an error: the channel stays for the next one.
            let _ = watchers.send(shared.clone());
        }
        let queues = self
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&envelope.source)
            .cloned()
            .unwrap_or_default();
        if queues.is_empty() {
            // Nobody subscribes to this source: nothing to wait for.
            return Ok(Box::pin(async { Ok(()) }));
        }
        let (done, acknowledged) = oneshot::channel();
        let outstanding =
            Arc::new(Outstanding { remaining: AtomicUsize::new(queues.len()), done: Mutex::new(Some(done)) });
        let envelope = shared.unwrap_or_else(|| Arc::new(envelope.clone()));
        for queue in queues {
            queue.push_new(envelope.clone(), outstanding.clone());
        }
        Ok(Box::pin(async move {
            // A dropped sender means the transport went away with the message unacknowledged.
            acknowledged.await.map_err(|_| crate::error::BusError::Closed)
        }))
    }

    async fn consume(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>> {
        Ok(Box::new(InProcessConsumer { queue: self.queue(spec) }))
    }

    fn declare(&self, spec: &ConsumerSpec) {
        self.queue(spec);
    }

    async fn watch(&self, source: &str) -> Result<Watch> {
        let receiver = self
            .watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(source.to_owned())
            .or_insert_with(|| broadcast::channel(WATCH_CAPACITY).0)
            .subscribe();
        Ok(Box::pin(futures_util::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(envelope) => Some((Watched::Message(envelope), receiver)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some((Watched::Gap, receiver)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })))
    }
}

#[derive(Debug)]
struct InProcessConsumer {
    queue: Arc<Queue>,
}

#[async_trait]
impl Consumer for InProcessConsumer {
    async fn pending(&mut self) -> Result<Option<u64>> {
        let pending = self.queue.pending.lock().unwrap_or_else(PoisonError::into_inner).len();
        Ok(Some(pending as u64))
    }

    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let mut taken = self.queue.take(max);
        if taken.is_empty() {
            let _ = tokio::time::timeout(wait, self.queue.arrived.notified()).await;
            taken = self.queue.take(max);
        }
        Ok(taken
            .into_iter()
            .map(|mut pending| {
                pending.delivered += 1;
                Delivery {
                    envelope: pending.envelope.clone(),
                    delivered: pending.delivered,
                    acker: Box::new(InProcessAcker { pending: Some(pending), queue: self.queue.clone() }),
                }
            })
            .collect())
    }
}

/// Acknowledges once; if dropped unacknowledged, puts the message back at the head of its
/// queue so that it is delivered again, first.
struct InProcessAcker {
    pending: Option<Pending>,
    queue: Arc<Queue>,
}

#[async_trait]
impl Acker for InProcessAcker {
    async fn ack(mut self: Box<Self>) -> Result<()> {
        if let Some(pending) = self.pending.take() {
            pending.outstanding.acknowledge();
        }
        Ok(())
    }

    async fn in_progress(&self) {}
}

impl Drop for InProcessAcker {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            self.queue.requeue(pending);
        }
    }
}
