//! A unit of work: everything one step of a service changes, committed atomically or not at
//! all. Writes are collected here and applied by the backend's writer at commit, so many units
//! can share one database transaction (group commit) while each keeps all-or-nothing semantics.

use tessera_audit::AuditRecord;
use tessera_kernel::{Envelope, MessageId, StreamId, Timestamp};

use crate::aggregate::Aggregate;
use crate::backend::{AfterCommit, CommitReceipt, EncodedEvent, Op, OutgoingMessage};
use crate::error::{Result, StoreError};
use crate::model::{NewEvent, Row, Statement, StreamSlice};
use crate::store::Store;
use crate::version::ExpectedVersion;

/// Detached commits outstanding at most (see [`UnitOfWork::commit_detached`]).
pub const MAX_DETACHED: usize = 1024;

static DETACHED: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_DETACHED)));

/// Collects the writes of one step. Reads (`load`) see committed data; every write is checked
/// and applied at `commit`.
#[must_use = "a unit of work does nothing until it is committed"]
pub struct UnitOfWork {
    store: Store,
    pub(crate) ops: Vec<Op>,
    /// Run once the unit has committed (and is durable), in order; dropped if it fails.
    after_commit: Vec<AfterCommit>,
}

impl std::fmt::Debug for UnitOfWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitOfWork")
            .field("ops", &self.ops)
            .field("after_commit", &self.after_commit.len())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A unit of work on this store.
    pub fn begin(&self) -> UnitOfWork {
        UnitOfWork { store: self.clone(), ops: Vec::new(), after_commit: Vec::new() }
    }
}

impl UnitOfWork {
    /// Runs `then` once this unit has committed, and not at all if it fails: for waking a
    /// worker that will read what the unit wrote. Woken earlier, the worker reads the database
    /// before the write is there and goes back to sleep (a payments worker once did, and
    /// every authorisation waited for its 250 ms poll instead).
    pub fn after_commit(&mut self, then: impl FnOnce() + Send + Sync + 'static) -> &mut Self {
        self.after_commit.push(Box::new(then));
        self
    }

    /// Loads a stream from its latest snapshot, if any, and the events after it.
    pub async fn load_stream(&self, stream: &StreamId) -> Result<StreamSlice> {
        self.store.load_stream(stream).await
    }

    /// Loads and folds an aggregate; returns it with the version to expect on append.
    pub async fn load<A: Aggregate>(&self, stream: &StreamId) -> Result<(A, ExpectedVersion)> {
        let slice = self.store.load_stream(stream).await?;
        let state = match A::from_slice(&slice)? {
            Some(state) => state,
            // The snapshot holds another version of the state's shape: fold every event.
            None => A::from_events(&self.store.read_stream(stream, 0).await?)?,
        };
        Ok((state, slice.expected()))
    }

    /// Reads the service's own tables as committed (this unit's writes are not visible yet).
    pub async fn query(&self, statement: Statement) -> Result<Vec<Row>> {
        self.store.query(statement).await
    }

    /// Appends events; the commit fails with `Conflict` if the stream is not at `expected`.
    pub fn append(
        &mut self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> &mut Self {
        let events = events.into_iter().map(EncodedEvent::from).collect();
        self.ops.push(Op::Append { stream: stream.clone(), expected, events });
        self
    }

    /// Stores the state of `stream` as of `version`; later loads start from the newest one.
    pub fn snapshot(&mut self, stream: &StreamId, version: u64, state: String) -> &mut Self {
        self.ops.push(Op::Snapshot { stream: stream.clone(), version, state });
        self
    }

    /// Puts a message in the outbox; the relay publishes it after the commit.
    pub fn send(&mut self, envelope: &Envelope) -> Result<&mut Self> {
        self.ops.push(Op::Send(OutgoingMessage::new(&traced(envelope))?));
        Ok(self)
    }

    /// A durable timer: `envelope` is handed back by `due_timers` from `due_at` on. Its id is
    /// the envelope's id.
    pub fn schedule(&mut self, envelope: &Envelope, due_at: Timestamp) -> Result<&mut Self> {
        self.ops.push(Op::Schedule { due_at, message: OutgoingMessage::new(&traced(envelope))? });
        Ok(self)
    }

    /// Marks a pending timer fired; the commit fails with `TimerNotPending` if it already
    /// fired or was cancelled, so a timer's effect happens once.
    pub fn fire_timer(&mut self, timer: MessageId) -> &mut Self {
        self.ops.push(Op::FireTimer(timer));
        self
    }

    /// Cancels a timer if it is still pending; cancelling a fired timer is not an error.
    pub fn cancel_timer(&mut self, timer: MessageId) -> &mut Self {
        self.ops.push(Op::CancelTimer(timer));
        self
    }

    /// Records that `message` has been applied; the commit fails with `DuplicateMessage` if
    /// it already was, which undoes the duplicate's effects with the rest of the unit.
    pub fn record_inbox(&mut self, message: MessageId) -> &mut Self {
        self.ops.push(Op::RecordInbox(message));
        self
    }

    /// Moves a named checkpoint (a projection's or a subscriber's position).
    pub fn checkpoint(&mut self, name: impl Into<String>, position: u64) -> &mut Self {
        self.ops.push(Op::Checkpoint { name: name.into(), position });
        self
    }

    /// A statement on the service's own tables, in the same transaction.
    pub fn execute(&mut self, statement: Statement) -> &mut Self {
        self.ops.push(Op::Execute(statement));
        self
    }

    /// Appends `record` to the store's hash-chained audit trail in the same transaction as
    /// the unit's other writes: the writer gives it the next index and links it to the
    /// previous record's hash, so a unit that fails leaves neither a record nor a gap.
    pub fn audit(&mut self, record: AuditRecord) -> &mut Self {
        self.ops.push(Op::Audit(record));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub async fn commit(self) -> Result<CommitReceipt> {
        let store = self.store.clone();
        store.commit(self.ops, self.after_commit).await
    }

    /// Commits without the caller waiting: the unit joins the store's next group commit and is
    /// synced with it, but the caller goes on at once and is not told the outcome (a failure is
    /// logged and counted in `tessera_store_detached_failures_total`). For records whose loss
    /// in a crash within the sync window is acceptable, such as the audit record of a read
    /// (docs/decisions/0015-read-audits-do-not-wait.md); never for a state change.
    ///
    /// At most [`MAX_DETACHED`] such commits are outstanding in the process; past that the
    /// caller waits for its own, so a writer that falls behind slows its readers down rather
    /// than piling up tasks.
    pub async fn commit_detached(self) {
        let service = self.store.name().to_owned();
        let failed = move |error: StoreError| {
            metrics::counter!("tessera_store_detached_failures_total", "service" => service).increment(1);
            tracing::error!(%error, "a detached commit failed");
        };
        match DETACHED.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    if let Err(error) = self.commit().await {
                        failed(error);
                    }
                    drop(permit);
                });
            }
            Err(_) => {
                if let Err(error) = self.commit().await {
                    failed(error);
                }
            }
        }
    }
}

/// The envelope, carrying the trace context of the span that emits it: the request or the
/// message being handled (which continues its cause's trace). Outside any span the envelope
/// keeps what it has (its cause's).
fn traced(envelope: &Envelope) -> std::borrow::Cow<'_, Envelope> {
    match tessera_telemetry::current_traceparent() {
        Some(traceparent) if envelope.traceparent.as_deref() != Some(traceparent.as_str()) => {
            let mut owned = envelope.clone();
            owned.traceparent = Some(traceparent);
            std::borrow::Cow::Owned(owned)
        }
        _ => std::borrow::Cow::Borrowed(envelope),
    }
}
