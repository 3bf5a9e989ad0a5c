//! The `Store` handle: a cheap clone shared by a service's handlers, relay and subscribers.
//! Only this file and the backends know that more than one backend exists.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tessera_audit::{AuditRecord, StoredAuditRecord, Verification, Verifier};
use tessera_kernel::{Clock, Envelope, MessageId, StreamId, SystemClock, Timestamp};
use tokio::sync::Notify;

use crate::error::{Result, StoreError};
use crate::migrate::MigrationSet;
use crate::model::{DueTimer, OutboxMessage, RecordedEvent, Row, Snapshot, Statement, StreamSlice};
use crate::postgres::{PostgresBackend, PostgresOptions};
use crate::sqlite::{SqliteBackend, SqliteOptions};
use crate::unit::{CommitReceipt, Op, UnitOfWork};

/// Where a service's data lives.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// One SQLite file (the embedded topology).
    Sqlite { path: PathBuf, options: SqliteOptions },
    /// One PostgreSQL database, created if missing (the distributed topology).
    Postgres { url: String, options: PostgresOptions },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        })
    }
}

/// The outbox's backlog: how much the relay has yet to publish and since when.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxBacklog {
    pub unsent: u64,
    pub oldest_unsent: Option<Timestamp>,
}

/// What a backend does; the `Store` handle adds the conveniences on top.
#[async_trait]
pub(crate) trait Backend: Send + Sync + fmt::Debug {
    fn kind(&self) -> BackendKind;
    async fn commit(&self, ops: Vec<Op>) -> Result<CommitReceipt>;
    async fn read_stream(&self, stream: &StreamId, after_version: u64) -> Result<Vec<RecordedEvent>>;
    async fn latest_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>>;
    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>>;
    async fn head_position(&self) -> Result<u64>;
    async fn outbox_unsent(&self, after_position: u64, limit: usize) -> Result<Vec<OutboxMessage>>;
    async fn outbox_backlog(&self) -> Result<OutboxBacklog>;
    async fn inbox_contains(&self, message: MessageId) -> Result<bool>;
    async fn checkpoint(&self, name: &str) -> Result<Option<u64>>;
    async fn due_timers(&self, now: Timestamp, limit: usize) -> Result<Vec<DueTimer>>;
    async fn query(&self, statement: Statement) -> Result<Vec<Row>>;
    async fn try_lease(&self, name: &str) -> Result<Option<Lease>>;
    async fn audit_page(&self, after_index: Option<u64>, limit: usize) -> Result<Vec<AuditRow>>;
    async fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>>;
}

/// Leadership among replicas of one service (one active relay, say). On PostgreSQL it is a
/// session advisory lock on a connection of its own: it ends when the holder drops it, or when
/// its process or connection dies, and then another replica can take it. A SQLite file has
/// one process by design, so there the lease is always granted.
#[derive(Debug)]
pub struct Lease {
    pub(crate) connection: Option<tokio_postgres::Client>,
}

impl Lease {
    /// False once the connection holding the lock is gone: stop acting as leader.
    pub fn is_held(&self) -> bool {
        self.connection.as_ref().is_none_or(|c| !c.is_closed())
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

    pub fn begin(&self) -> UnitOfWork {
        UnitOfWork::new(self.clone())
    }

    pub(crate) async fn commit(&self, unit: UnitOfWork) -> Result<CommitReceipt> {
        if unit.ops.is_empty() {
            return Ok(CommitReceipt::default());
        }
        let sends = unit.ops.iter().filter(|op| matches!(op, Op::Send(_))).count();
        let started = std::time::Instant::now();
        let after_commit = unit.after_commit;
        let outcome = self.backend.commit(unit.ops).await;
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

    /// The index and hash of the audit chain's last record: what to publish, so that a later
    /// verification notices records cut off the end. `None` while the chain is empty.
    pub async fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>> {
        self.backend.audit_head().await
    }

    /// Reads the whole audit chain, a page at a time, and checks every link and, if given,
    /// the last published head. A broken chain is an `Ok` answer naming the first bad index;
    /// `Err` means the table could not be read.
    pub async fn verify_audit(&self, published_head: Option<(u64, [u8; 32])>) -> Result<Verification> {
        const PAGE: usize = 1_000;
        let mut verifier = Verifier::new(published_head);
        let mut after = None;
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

/// An audit row as read, its hash not yet checked for length: verification reports a
/// malformed hash as a break at that index instead of failing the read.
#[derive(Debug)]
pub(crate) struct AuditRow {
    pub index: u64,
    pub record: AuditRecord,
    pub hash: Vec<u8>,
}

impl AuditRow {
    fn into_stored(self) -> Result<StoredAuditRecord> {
        let index = self.index;
        Ok(StoredAuditRecord { index, record: self.record, hash: audit_hash(index, &self.hash)? })
    }
}

pub(crate) fn audit_hash(index: u64, hash: &[u8]) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(hash)
        .map_err(|_| StoreError::Corrupt(format!("audit record {index}: a hash of {} bytes", hash.len())))
}

/// The columns of `tessera_audit`, in the order both backends select them.
pub(crate) const AUDIT_COLUMNS: &str = "idx, at, actor, role, action, resource, outcome, trace_id, hash";

/// Decoding shared by both backends: the columns of [`AUDIT_COLUMNS`] in order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode_audit(
    index: i64,
    at: i64,
    actor: String,
    role: String,
    action: String,
    resource: String,
    outcome: String,
    trace_id: Option<String>,
    hash: Vec<u8>,
) -> Result<AuditRow> {
    Ok(AuditRow {
        index: to_u64(index)?,
        record: AuditRecord {
            actor,
            role,
            action,
            resource,
            outcome,
            trace_id,
            at: Timestamp::from_micros(to_u64(at)?),
        },
        hash,
    })
}

/// Decoding shared by both backends: the columns of `tessera_events` in table order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode_event(
    position: i64,
    stream: String,
    version: i64,
    id: &str,
    name: String,
    schema_version: i64,
    payload: String,
    metadata: &str,
    recorded_at: i64,
) -> Result<RecordedEvent> {
    Ok(RecordedEvent {
        position: to_u64(position)?,
        stream: StreamId::parse(stream).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        version: to_u64(version)?,
        id: id.parse().map_err(|e| StoreError::Corrupt(format!("event id `{id}`: {e}")))?,
        name,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| StoreError::Corrupt(format!("schema version {schema_version}")))?,
        payload,
        metadata: serde_json::from_str(metadata)
            .map_err(|e| StoreError::Corrupt(format!("metadata: {e}")))?,
        recorded_at: Timestamp::from_micros(to_u64(recorded_at)?),
    })
}

pub(crate) fn decode_envelope(json: &str) -> Result<Envelope> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("stored envelope: {e}")))
}

pub(crate) fn to_u64(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative value {value}")))
}

/// Values above `i64::MAX` cannot be stored; saturating keeps the comparison semantics.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
