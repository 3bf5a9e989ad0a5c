//! The `Store` handle: a cheap clone shared by a service's handlers, relay and subscribers.
//! Only this file and the backends know that more than one backend exists.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tessera_audit::{StoredAuditRecord, Verification, Verifier};
use tessera_kernel::{Clock, MessageId, StreamId, SystemClock};
use tokio::sync::Notify;

use crate::backend::{AfterCommit, AuditRow, Backend, BackendKind, CommitReceipt, Lease, Op, OutboxBacklog};
use crate::error::Result;
use crate::migrate::MigrationSet;
use crate::model::{DueTimer, OutboxMessage, RecordedEvent, Row, Statement, StreamSlice};
use crate::postgres::{PostgresBackend, PostgresOptions};
use crate::sqlite::{SqliteBackend, SqliteOptions};

/// Where a service's data lives.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// One SQLite file (the embedded topology).
    Sqlite { path: PathBuf, options: SqliteOptions },
    /// One PostgreSQL database, created if missing (the distributed topology).
    Postgres { url: String, options: PostgresOptions },
}

impl StoreConfig {
    /// Whether the file or database is there and holds a Tessera store (its migrations ledger),
    /// looked at without creating or changing anything: tools pointed at the wrong place say
    /// so instead of answering from an empty store they just made.
    pub async fn holds_a_store(&self) -> Result<bool> {
        match self {
            Self::Sqlite { path, .. } => {
                if !path.exists() {
                    return Ok(false);
                }
                let path = path.clone();
                tokio::task::spawn_blocking(move || crate::sqlite::holds_a_store(&path))
                    .await
                    .map_err(|e| crate::error::StoreError::Io(std::io::Error::other(e)))?
            }
            Self::Postgres { url, .. } => crate::postgres::holds_a_store(url).await,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    backend: Arc<dyn Backend>,
    clock: Arc<dyn Clock>,
    outbox_signal: Arc<Notify>,
    /// The `service` label of this store's metrics.
    name: Arc<str>,
    /// A moving average of commit latency, in microseconds (for the admin status).
    commit_micros: Arc<std::sync::atomic::AtomicU64>,
}

impl Store {
    /// Opens (creating if needed) the store and applies the store's own migrations, then
    /// `migrations` (the service's), in order.
    pub async fn open(config: &StoreConfig, migrations: &[MigrationSet]) -> Result<Store> {
        Self::open_with_clock(config, migrations, Arc::new(SystemClock)).await
    }

    pub async fn open_with_clock(
        config: &StoreConfig,
        migrations: &[MigrationSet],
        clock: Arc<dyn Clock>,
    ) -> Result<Store> {
        let backend: Arc<dyn Backend> = match config {
            StoreConfig::Sqlite { path, options } => {
                Arc::new(SqliteBackend::open(path.clone(), options.clone(), migrations, clock.clone()).await?)
            }
            StoreConfig::Postgres { url, options } => {
                Arc::new(PostgresBackend::open(url, options.clone(), migrations, clock.clone()).await?)
            }
        };
        Ok(Store {
            backend,
            clock,
            outbox_signal: Arc::new(Notify::new()),
            name: Arc::from("store"),
            commit_micros: Arc::default(),
        })
    }

    /// Names the store in its metrics (the service that owns it).
    #[must_use]
    pub fn named(mut self, name: &str) -> Self {
        self.name = Arc::from(name);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A moving average of this process's recent commit latencies (zero before the first).
    pub fn recent_commit_latency(&self) -> Duration {
        Duration::from_micros(self.commit_micros.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub fn kind(&self) -> BackendKind {
        self.backend.kind()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Commits a unit's writes, then runs its `after_commit` callbacks if it succeeded.
    pub(crate) async fn commit(&self, ops: Vec<Op>, after_commit: Vec<AfterCommit>) -> Result<CommitReceipt> {
        if ops.is_empty() {
            return Ok(CommitReceipt::default());
        }
        let sends = ops.iter().filter(|op| matches!(op, Op::Send(_))).count();
        let started = std::time::Instant::now();
        let outcome = self.backend.commit(ops).await;
        let service = self.name.to_string();
        let took = started.elapsed();
        metrics::histogram!("tessera_store_commit_seconds", "service" => service.clone())
            .record(took.as_secs_f64());
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        // Races between commits only blur the average; it is a gauge for people.
        let average = self.commit_micros.load(std::sync::atomic::Ordering::Relaxed);
        let next = if average == 0 { micros } else { (average * 7 + micros) / 8 };
        self.commit_micros.store(next, std::sync::atomic::Ordering::Relaxed);
        let receipt = match outcome {
            Ok(receipt) => receipt,
            Err(error) => {
                metrics::counter!("tessera_store_commit_failures_total", "service" => service).increment(1);
                return Err(error);
            }
        };
        metrics::histogram!("tessera_store_batch_size", "service" => service)
            .record(receipt.batch_size as f64);
        crate::activity::committed(&self.name, sends as u64);
        for then in after_commit {
            then();
        }
        if sends > 0 {
            // A stored permit wakes the relay even if it is not waiting at this instant.
            self.outbox_signal.notify_one();
        }
        Ok(receipt)
    }

    /// Resolves after a commit in this process put messages in the outbox (the relay waits on
    /// it instead of polling). Commits by other processes are not seen: poll as well.
    pub async fn outbox_committed(&self) {
        self.outbox_signal.notified().await;
    }

    /// Tries to become the leader named `name` among the processes sharing this database.
    pub async fn try_lease(&self, name: &str) -> Result<Option<Lease>> {
        self.backend.try_lease(name).await
    }

    /// The latest snapshot of `stream` (if any) and the events after it.
    pub async fn load_stream(&self, stream: &StreamId) -> Result<StreamSlice> {
        let snapshot = self.backend.latest_snapshot(stream).await?;
        let after = snapshot.as_ref().map_or(0, |s| s.version);
        let events = self.backend.read_stream(stream, after).await?;
        Ok(StreamSlice { snapshot, events })
    }

    /// Every event of `stream` with a version above `after_version`, snapshots ignored.
    pub async fn read_stream(&self, stream: &StreamId, after_version: u64) -> Result<Vec<RecordedEvent>> {
        self.backend.read_stream(stream, after_version).await
    }

    /// Up to `limit` events after `after_position`, in global order. Gap-safe: an event that
    /// commits later never gets a position below one this call has returned.
    pub async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        self.backend.read_all(after_position, limit).await
    }

    /// The highest committed global position (0 when empty): `head - checkpoint` is lag.
    pub async fn head_position(&self) -> Result<u64> {
        self.backend.head_position().await
    }

    /// Unsent outbox messages after `after_position`, in commit order.
    pub async fn outbox_unsent(&self, after_position: u64, limit: usize) -> Result<Vec<OutboxMessage>> {
        self.backend.outbox_unsent(after_position, limit).await
    }

    pub async fn outbox_backlog(&self) -> Result<OutboxBacklog> {
        self.backend.outbox_backlog().await
    }

    /// Marks outbox rows published; returns how many were unsent until now.
    pub async fn mark_sent(&self, positions: &[u64]) -> Result<u64> {
        if positions.is_empty() {
            return Ok(0);
        }
        let receipt = self.backend.commit(vec![Op::MarkSent(positions.to_vec())]).await?;
        Ok(receipt.rows_affected)
    }

    /// Deletes outbox rows sent longer than `retention` ago; returns how many.
    pub async fn prune_outbox(&self, retention: Duration) -> Result<u64> {
        let sent_before = self.clock.now().saturating_sub(retention);
        Ok(self.backend.commit(vec![Op::PruneOutbox { sent_before }]).await?.rows_affected)
    }

    /// Forgets inbox records older than `retention`; the transport's redelivery window must
    /// be shorter, or a very late duplicate would be applied again.
    pub async fn prune_inbox(&self, retention: Duration) -> Result<u64> {
        let recorded_before = self.clock.now().saturating_sub(retention);
        Ok(self.backend.commit(vec![Op::PruneInbox { recorded_before }]).await?.rows_affected)
    }

    pub async fn inbox_contains(&self, message: MessageId) -> Result<bool> {
        self.backend.inbox_contains(message).await
    }

    pub async fn checkpoint(&self, name: &str) -> Result<Option<u64>> {
        self.backend.checkpoint(name).await
    }

    /// Pending timers due by now (by this store's clock), earliest first.
    pub async fn due_timers(&self, limit: usize) -> Result<Vec<DueTimer>> {
        self.backend.due_timers(self.clock.now(), limit).await
    }

    /// A read of the service's own tables, on a read connection.
    pub async fn query(&self, statement: Statement) -> Result<Vec<Row>> {
        self.backend.query(statement).await
    }

    /// Up to `limit` audit records after `after_index` (from the first when `None`), in chain
    /// order.
    pub async fn audit_records(
        &self,
        after_index: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredAuditRecord>> {
        self.backend.audit_page(after_index, limit).await?.into_iter().map(AuditRow::into_stored).collect()
    }

    /// The records of this service's audit trail that concern `filter`'s person, oldest first.
    /// The trail is read twice, a page at a time: first to learn what the person created here,
    /// then to pick the records, so a read made before the creation it refers to is not missed
    /// and the whole trail is never held in memory.
    pub async fn person_accesses(
        &self,
        service: &str,
        mut filter: tessera_audit::access::PersonFilter,
    ) -> Result<Vec<tessera_audit::access::Access>> {
        const PAGE: usize = 1000;
        let mut after = None;
        loop {
            let page = self.audit_records(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.index);
            page.iter().for_each(|record| filter.learn(record));
        }
        let (mut accesses, mut after) = (Vec::new(), None);
        loop {
            let page = self.audit_records(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.index);
            accesses.extend(
                page.iter()
                    .filter(|record| filter.touches(record))
                    .map(|record| tessera_audit::access::Access::new(service, record)),
            );
        }
        Ok(accesses)
    }

    /// The index and hash of the audit chain's last record: what to publish, so that a later
    /// verification notices records cut off the end. `None` while the chain is empty.
    pub async fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>> {
        self.backend.audit_head().await
    }

    /// Reads the whole audit chain, a page at a time, and checks every link and, if given,
    /// the last published head. A broken chain is an `Ok` answer naming the first bad index;
    /// `Err` means the table could not be read.
    ///
    /// The chain is verified from its newest anchor when older segments were archived
    /// (`audit_segments`): their records are no longer here, and the anchor's hash stands for them.
    pub async fn verify_audit(&self, published_head: Option<(u64, [u8; 32])>) -> Result<Verification> {
        const PAGE: usize = 1_000;
        let anchors = self.audit_anchors().await?;
        let (mut after, mut verifier) = match anchors.last() {
            None => (None, Verifier::new(published_head)),
            Some(anchor) => {
                (Some(anchor.last_index), Verifier::resume(anchor.last_index, anchor.hash, published_head))
            }
        };
        loop {
            let page = self.backend.audit_page(after, PAGE).await?;
            for row in &page {
                after = Some(row.index);
                match <[u8; 32]>::try_from(row.hash.as_slice()) {
                    Ok(hash) => verifier.push(&StoredAuditRecord {
                        index: row.index,
                        record: row.record.clone(),
                        hash,
                    }),
                    Err(_) => verifier.push_unreadable(),
                }
            }
            if page.len() < PAGE {
                return Ok(verifier.finish());
            }
        }
    }
}
