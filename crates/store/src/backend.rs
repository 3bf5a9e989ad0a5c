//! What a backend is (the [`Backend`] trait), what it is handed (a unit's [`Op`]s in a
//! [`Job`]) and the decoding both backends share. The backends and the `Store` handle import
//! this module; it imports neither.

use std::fmt;

use async_trait::async_trait;
use tessera_audit::{AuditRecord, StoredAuditRecord};
use tessera_kernel::{Envelope, MessageId, StreamId, Timestamp};

use crate::error::{Result, StoreError};
use crate::model::{DueTimer, NewEvent, OutboxMessage, RecordedEvent, Row, Snapshot, Statement};
use crate::version::ExpectedVersion;

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

/// One write inside a unit; the payloads are already serialised.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    Append { stream: StreamId, expected: ExpectedVersion, events: Vec<EncodedEvent> },
    Snapshot { stream: StreamId, version: u64, state: String },
    Send(OutgoingMessage),
    Schedule { due_at: Timestamp, message: OutgoingMessage },
    FireTimer(MessageId),
    CancelTimer(MessageId),
    RecordInbox(MessageId),
    Checkpoint { name: String, position: u64 },
    Execute(Statement),
    MarkSent(Vec<u64>),
    PruneOutbox { sent_before: Timestamp },
    PruneInbox { recorded_before: Timestamp },
    Audit(AuditRecord),
}

/// An event with its id and metadata already in their stored text form, so the writer only
/// binds values.
#[derive(Clone, Debug)]
pub(crate) struct EncodedEvent {
    pub id: String,
    pub name: String,
    pub schema_version: i64,
    pub payload: String,
    pub metadata: String,
}

impl From<NewEvent> for EncodedEvent {
    fn from(event: NewEvent) -> Self {
        Self {
            id: event.id.to_string(),
            name: event.name,
            schema_version: i64::from(event.schema_version),
            payload: event.payload,
            // Serialising a struct of ids and strings cannot fail.
            metadata: serde_json::to_string(&event.metadata).unwrap_or_else(|_| "{}".to_owned()),
        }
    }
}

/// An envelope on its way to the outbox or the timer table, serialised once.
#[derive(Clone, Debug)]
pub(crate) struct OutgoingMessage {
    pub id: MessageId,
    pub name: String,
    pub key: String,
    pub json: String,
}

impl OutgoingMessage {
    pub(crate) fn new(envelope: &Envelope) -> Result<Self> {
        Ok(Self {
            id: envelope.id,
            name: envelope.name.clone(),
            key: envelope.key.clone(),
            json: serde_json::to_string(envelope)?,
        })
    }
}

/// What a unit runs once it has committed (see `UnitOfWork::after_commit`).
pub(crate) type AfterCommit = Box<dyn FnOnce() + Send + Sync>;

/// A unit on its way to a backend's writer, with the channel its outcome goes back on.
#[derive(Debug)]
pub(crate) struct Job {
    pub ops: Vec<Op>,
    pub reply: tokio::sync::oneshot::Sender<Result<CommitReceipt>>,
}

/// A unit's reply channel with its outcome, held until the batch is durable.
pub(crate) type Reply = (tokio::sync::oneshot::Sender<Result<CommitReceipt>>, Result<CommitReceipt>);

/// One committed batch, waiting for the disk (SQLite's sync thread, PostgreSQL's flusher).
pub(crate) struct Committed {
    pub replies: Vec<Reply>,
    /// The highest outbox position the batch wrote, if it wrote any.
    pub outbox_high: Option<u64>,
}

/// What a commit did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitReceipt {
    /// The new version of each stream appended to, in the order of the appends.
    pub stream_versions: Vec<(StreamId, u64)>,
    /// Global position of the last event appended, if any.
    pub last_position: Option<u64>,
    /// Rows affected by maintenance operations (mark sent, prune).
    pub rows_affected: u64,
    /// Units committed in the same transaction as this one (group commit), this one included.
    pub batch_size: usize,
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
    pub(crate) fn into_stored(self) -> Result<StoredAuditRecord> {
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
