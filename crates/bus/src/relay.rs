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

use crate::error::Result;
use crate::hook::Hook;
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
    /// Least time between two marks. Marks are commits that wait for the disk like the
    /// service's own; gathering the acknowledgements of this long into one mark keeps them
    /// from taking a sync of their own every few hundred microseconds under load. A crash
    /// republishes at most this much, which the inboxes absorb.
    pub mark_every: Duration,
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
            mark_every: Duration::from_millis(20),
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

    /// Runs until `shutdown` becomes true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<()> {
        let lease_name = format!("tessera.relay.{}", self.service);
        while !*shutdown.borrow() {
            let lease = match self.store.try_lease(&lease_name).await {
                Ok(lease) => lease,
                Err(error) => {
                    // The database is away (a failover, a restart): keep trying.
                    tracing::warn!(service = %self.service, %error, "cannot ask for the relay lease");
                    None
                }
            };
            let Some(lease) = lease else {
                // Another replica publishes, or the database is away; wait and try again.
                tokio::select! {
                    () = tokio::time::sleep(self.options.poll) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            if let Err(error) = self.lead(&lease, &mut shutdown).await {
                tracing::warn!(service = %self.service, %error, "relay failed; starting over from the oldest unsent row");
                tokio::time::sleep(self.options.poll).await;
            }
        }
        Ok(())
    }

    /// Publishes continuously while holding the lease: new rows go out while earlier ones
    /// await their acknowledgements (up to `window`), and acknowledged rows are marked sent
    /// in one commit per burst, in the background (see [`Marks`]). Any error ends the round;
    /// the next one starts again from the oldest unsent row, so nothing is skipped (a
    /// republished message meets the inbox).
    async fn lead(&self, lease: &tessera_store::Lease, shutdown: &mut watch::Receiver<bool>) -> Result<()> {
        let mut in_flight = FuturesOrdered::new();
        let mut marks = Marks::new(self.options.mark_every);
        let mut after = 0;
        let mut last_prune = Instant::now();
        let outcome: Result<()> = async {
            while lease.is_held() && !*shutdown.borrow() {
                let room = self.options.window.saturating_sub(in_flight.len());
                let mut published = 0;
                if room > 0 {
                    for row in self.store.outbox_unsent(after, self.options.batch.min(room)).await? {
                        after = row.position;
                        let ack = self.transport.publish(&row.envelope).await?;
                        in_flight.push_back(async move { (row, ack.await) });
                        published += 1;
                    }
                }
                if published > 0 && in_flight.len() < self.options.window {
                    // More may be waiting: read again before sleeping, but first take any
                    // acknowledgements that are already in.
                    self.settle_ready(&mut in_flight, &mut marks.acknowledged)?;
                    marks.start(&self.store)?;
                    continue;
                }
                let (mark_due, mark_waiting) = (marks.due_at(), marks.is_waiting());
                tokio::select! {
                    Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                        self.settle(done, &mut marks.acknowledged)?;
                        self.settle_ready(&mut in_flight, &mut marks.acknowledged)?;
                        marks.start(&self.store)?;
                    }
                    marked = marks.finished(), if marks.is_marking() => {
                        marked?;
                        marks.start(&self.store)?;
                    }
                    () = self.store.outbox_committed(), if in_flight.len() < self.options.window => {}
                    () = tokio::time::sleep_until(mark_due), if mark_waiting => marks.start(&self.store)?,
                    () = tokio::time::sleep(self.options.poll) => {}
                    _ = shutdown.changed() => {}
                }
                if last_prune.elapsed() >= self.options.prune_every {
                    last_prune = Instant::now();
                    if let Err(error) = self.store.prune_outbox(self.options.retention).await {
                        tracing::warn!(service = %self.service, %error, "outbox prune failed");
                    }
                }
            }
            Ok(())
        }
        .await;
        // Shutting down, deposed or failed: mark what was acknowledged; the rest stays unsent.
        let flushed = marks.flush(&self.store).await;
        outcome.and(flushed)
    }

    /// Takes every acknowledgement that is already in.
    fn settle_ready<F>(&self, in_flight: &mut FuturesOrdered<F>, acknowledged: &mut Vec<u64>) -> Result<()>
    where
        F: Future<Output = (OutboxMessage, Result<()>)>,
    {
        while let Some(Some(done)) = futures_util::FutureExt::now_or_never(in_flight.next()) {
            self.settle(done, acknowledged)?;
        }
        Ok(())
    }

    fn settle(&self, (row, outcome): (OutboxMessage, Result<()>), acknowledged: &mut Vec<u64>) -> Result<()> {
        outcome?;
        if let Some(hook) = &self.options.after_publish {
            hook(&row.envelope);
        }
        acknowledged.push(row.position);
        Ok(())
    }
}

/// Acknowledged rows on their way to being marked sent. The mark is a commit, and with a
/// durable store a commit waits for the disk; the relay does not wait for it, and goes on
/// publishing while one mark is in flight. What is acknowledged meanwhile, or within
/// `mark_every` of the last mark, goes into the next mark. A mark that is lost (a crash) only
/// means the rows are published again, which the consumers' inboxes absorb.
struct Marks {
    acknowledged: Vec<u64>,
    marking: Option<tokio::task::JoinHandle<tessera_store::Result<u64>>>,
    every: Duration,
    last_started: Option<Instant>,
}

impl Marks {
    fn new(every: Duration) -> Self {
        Self { acknowledged: Vec::new(), marking: None, every, last_started: None }
    }

    fn is_marking(&self) -> bool {
        self.marking.is_some()
    }

    /// Acknowledgements wait, and no mark is in flight to give the cue when it finishes.
    fn is_waiting(&self) -> bool {
        self.marking.is_none() && !self.acknowledged.is_empty()
    }

    /// When the next mark may start.
    fn due_at(&self) -> tokio::time::Instant {
        self.last_started.map_or_else(Instant::now, |last| last + self.every).into()
    }

    /// Starts a mark of everything acknowledged, unless one is in flight (then
    /// [`Marks::finished`] resolving is the cue to call this again).
    fn start(&mut self, store: &Store) -> Result<()> {
        if self.marking.as_ref().is_some_and(|marking| !marking.is_finished())
            || self.acknowledged.is_empty()
            || self.last_started.is_some_and(|last| last.elapsed() < self.every)
        {
            return Ok(());
        }
        if let Some(done) = self.marking.take() {
            // Finished: its outcome is ready.
            futures_util::FutureExt::now_or_never(done).map_or(Ok(()), Self::outcome)?;
        }
        let positions = std::mem::take(&mut self.acknowledged);
        self.last_started = Some(Instant::now());
        let store = store.clone();
        self.marking = Some(tokio::spawn(async move { store.mark_sent(&positions).await }));
        Ok(())
    }

    /// Resolves when the mark in flight has committed.
    async fn finished(&mut self) -> Result<()> {
        match self.marking.as_mut() {
            Some(marking) => {
                let outcome = marking.await;
                self.marking = None;
                Self::outcome(outcome)
            }
            None => std::future::pending().await,
        }
    }

    /// Waits for the mark in flight, then marks the rest.
    async fn flush(&mut self, store: &Store) -> Result<()> {
        if self.marking.is_some() {
            self.finished().await?;
        }
        if !self.acknowledged.is_empty() {
            store.mark_sent(&self.acknowledged).await?;
            self.acknowledged.clear();
        }
        Ok(())
    }

    fn outcome(
        joined: std::result::Result<tessera_store::Result<u64>, tokio::task::JoinError>,
    ) -> Result<()> {
        match joined {
            Ok(marked) => marked.map(|_| ()).map_err(Into::into),
            Err(_) => Err(crate::error::BusError::Closed),
        }
    }
}
