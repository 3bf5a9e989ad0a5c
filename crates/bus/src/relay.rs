//! The relay: publishes a service's outbox in commit order and marks rows sent once the
//! transport has them. It keeps a bounded window of publishes in flight, wakes on this
//! process's commits (and polls for other replicas' commits), prunes sent rows after their
//! retention, and runs only while it holds the service's relay lease, so that with several
//! replicas on one PostgreSQL database exactly one publishes, in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tessera_store::{OutboxMessage, Store};
use tokio::sync::watch;

use crate::Hook;
use crate::error::Result;
use crate::transport::Transport;

#[derive(Clone)]
pub struct RelayOptions {
    /// Most publishes awaiting their acknowledgement.
    pub window: usize,
    /// Rows read from the outbox at a time.
    pub batch: usize,
    /// How often to look for rows committed by other processes, and to retry leadership.
    pub poll: Duration,
    /// How long sent rows are kept before pruning.
    pub retention: Duration,
    pub prune_every: Duration,
    /// Called after the transport acknowledged a message and before its row is marked sent.
    pub after_publish: Option<Hook>,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            window: 1024,
            batch: 512,
            poll: Duration::from_millis(250),
            retention: Duration::from_secs(24 * 3600),
            prune_every: Duration::from_secs(60),
            after_publish: None,
        }
    }
}

impl std::fmt::Debug for RelayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayOptions")
            .field("window", &self.window)
            .field("batch", &self.batch)
            .field("poll", &self.poll)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct Relay {
    service: String,
    store: Store,
    transport: Arc<dyn Transport>,
    options: RelayOptions,
}

impl Relay {
    pub fn new(
        service: impl Into<String>,
        store: Store,
        transport: Arc<dyn Transport>,
        options: RelayOptions,
    ) -> Self {
        Self { service: service.into(), store, transport, options }
    }

    /// Runs until `shutdown` becomes true; then finishes the publishes in flight.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let lease_name = format!("tessera.relay.{}", self.service);
        let mut last_prune = Instant::now();
        while !*shutdown.borrow() {
            let Some(lease) = self.store.try_lease(&lease_name).await? else {
                // Another replica publishes; wait and try again.
                tokio::select! {
                    () = tokio::time::sleep(self.options.poll) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            while lease.is_held() && !*shutdown.borrow() {
                let published = match self.publish_pending().await {
                    Ok(published) => published,
                    Err(error) => {
                        tracing::warn!(service = %self.service, %error, "relay round failed; retrying");
                        tokio::time::sleep(self.options.poll).await;
                        continue;
                    }
                };
                if last_prune.elapsed() >= self.options.prune_every {
                    last_prune = Instant::now();
                    if let Err(error) = self.store.prune_outbox(self.options.retention).await {
                        tracing::warn!(service = %self.service, %error, "outbox prune failed");
                    }
                }
                if published == 0 {
                    tokio::select! {
                        () = self.store.outbox_committed() => {}
                        () = tokio::time::sleep(self.options.poll) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Publishes everything unsent, keeping up to `window` acknowledgements outstanding, and
    /// marks rows sent as their acknowledgements arrive. Returns how many were published.
    pub async fn publish_pending(&self) -> Result<usize> {
        let mut in_flight = FuturesOrdered::new();
        let mut after = 0;
        let mut published = 0;
        let mut acknowledged = Vec::new();
        loop {
            let rows = self.store.outbox_unsent(after, self.options.batch).await?;
            let Some(last) = rows.last() else { break };
            after = last.position;
            for row in rows {
                while in_flight.len() >= self.options.window {
                    if let Some(done) = in_flight.next().await {
                        self.settle(done, &mut acknowledged).await?;
                    }
                }
                let ack = self.transport.publish(&row.envelope).await?;
                published += 1;
                in_flight.push_back(async move { (row, ack.await) });
            }
            self.flush(&mut acknowledged).await?;
        }
        while let Some(done) = in_flight.next().await {
            self.settle(done, &mut acknowledged).await?;
        }
        self.flush(&mut acknowledged).await?;
        Ok(published)
    }

    async fn settle(
        &self,
        (row, outcome): (OutboxMessage, Result<()>),
        acknowledged: &mut Vec<u64>,
    ) -> Result<()> {
        outcome?;
        if let Some(hook) = &self.options.after_publish {
            hook(&row.envelope);
        }
        acknowledged.push(row.position);
        if acknowledged.len() >= 256 {
            self.flush(acknowledged).await?;
        }
        Ok(())
    }

    async fn flush(&self, acknowledged: &mut Vec<u64>) -> Result<()> {
        if !acknowledged.is_empty() {
            self.store.mark_sent(acknowledged).await?;
            acknowledged.clear();
        }
        Ok(())
    }
}
