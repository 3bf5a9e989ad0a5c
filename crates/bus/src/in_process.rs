//! The embedded topology's transport: queues in memory, no network.
//!
//! It keeps nothing durable, so it acknowledges a publish only when every consumer of the
//! source has acknowledged the message, that is, committed its effect. Until then the outbox
//! row stays unsent; after a crash the relay publishes it again and the inbox drops the
//! duplicate. The outbox is the durable log.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tessera_kernel::Envelope;
use tokio::sync::{Notify, oneshot};

use crate::error::Result;
use crate::transport::{AckFuture, Acker, Consumer, ConsumerSpec, Delivery, Transport};

#[derive(Clone, Debug, Default)]
pub struct InProcessTransport {
    sources: Arc<Mutex<HashMap<String, Vec<Arc<Queue>>>>>,
}

impl InProcessTransport {
    pub fn new() -> Self {
        Self::default()
    }
}

/// One durable consumer's queue.
#[derive(Debug, Default)]
struct Queue {
    name: String,
    pending: Mutex<VecDeque<Pending>>,
    arrived: Notify,
}

#[derive(Debug)]
struct Pending {
    envelope: Envelope,
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
    fn push_back(&self, pending: Pending) {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).push_back(pending);
        self.arrived.notify_one();
    }

    fn push_front(&self, pending: Pending) {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).push_front(pending);
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
        for queue in queues {
            queue.push_back(Pending {
                envelope: envelope.clone(),
                delivered: 0,
                outstanding: outstanding.clone(),
            });
        }
        Ok(Box::pin(async move {
            // A dropped sender means the transport went away with the message unacknowledged.
            acknowledged.await.map_err(|_| crate::error::BusError::Closed)
        }))
    }

    async fn consume(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>> {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let queues = sources.entry(spec.source.clone()).or_default();
        let queue = match queues.iter().find(|q| q.name == spec.subscriber) {
            Some(queue) => queue.clone(),
            None => {
                let queue = Arc::new(Queue { name: spec.subscriber.clone(), ..Queue::default() });
                queues.push(queue.clone());
                queue
            }
        };
        Ok(Box::new(InProcessConsumer { queue }))
    }
}

#[derive(Debug)]
struct InProcessConsumer {
    queue: Arc<Queue>,
}

#[async_trait]
impl Consumer for InProcessConsumer {
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
            self.queue.push_front(pending);
        }
    }
}
