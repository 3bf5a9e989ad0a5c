//! The store's one error type. Domain-level outcomes that callers branch on (a version conflict,
//! a message already applied, a guarded update that matched nothing) are variants of their own,
//! apart from infrastructure failures, because they are handled differently.

use tessera_kernel::{MessageId, StreamId};

use crate::version::ExpectedVersion;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Optimistic concurrency: the stream moved on since the caller read it.
    #[error("version conflict on stream `{stream}`: expected {expected}, actual {}", describe_version(*.actual))]
    Conflict { stream: StreamId, expected: ExpectedVersion, actual: Option<u64> },

    /// The inbox already holds this message: its effect has been applied once.
    #[error("message {0} was already applied")]
    DuplicateMessage(MessageId),

    /// The timer already fired or was cancelled.
    #[error("timer {0} is not pending")]
    TimerNotPending(MessageId),

    /// A guarded statement of the service's own tables affected an unexpected number of rows,
    /// such as a conditional stock decrement that found too little stock.
    #[error("rejected: {reason} (expected {expected} row(s), {actual} affected)")]
    Rejected { reason: String, expected: u64, actual: u64 },

    /// A unique, foreign-key or check constraint of the service's own tables refused the write.
    #[error("constraint violated: {0}")]
    Constraint(String),

    /// A migration could not be applied, or an applied one has changed since.
    #[error("migration {scope} v{version}: {reason}")]
    Migration { scope: String, version: u32, reason: String },

    /// A stored row could not be decoded: a bug or a hand-edited database.
    #[error("corrupt row: {0}")]
    Corrupt(String),

    /// A value could not be bound to or read from a column.
    #[error("type mismatch: {0}")]
    Type(String),

    #[error("could not serialise a payload: {0}")]
    Serialization(#[from] serde_json::Error),

    #[error("the store is closed")]
    Closed,

    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),

    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),

    #[error("postgres pool: {0}")]
    Pool(String),

    /// Committed data could not be made durable (a failed fsync). The store refuses every
    /// later unit until the process restarts and recovers from what is really on disk, so it
    /// counts as transient: callers wait and retry (a message is not parked for it), and the
    /// HTTP answer is 503.
    #[error("not durable: {0}")]
    NotDurable(String),

    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// Whether retrying the same unit of work may succeed without changing it: connection
    /// loss and lock timeouts are; conflicts and rejections need a fresh decision first.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Postgres(error) => {
                error.is_closed()
                    // Connection exceptions, operator intervention (the server shutting down or
                    // starting up) and insufficient resources pass with the outage.
                    || error.as_db_error().is_none_or(|db| {
                        let code = db.code().code();
                        code.starts_with("08") || code.starts_with("57") || code.starts_with("53")
                    })
            }
            StoreError::Pool(_) | StoreError::Closed | StoreError::Io(_) | StoreError::NotDurable(_) => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => matches!(
                failure.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }

    /// A copy good enough to hand to every unit of a failed batch (the originals are not
    /// `Clone`, as the driver errors are not).
    pub(crate) fn shared(&self) -> StoreError {
        match self {
            StoreError::Closed => StoreError::Closed,
            StoreError::Io(error) => StoreError::Io(std::io::Error::new(error.kind(), error.to_string())),
            other => StoreError::Pool(format!("batch failed: {other}")),
        }
    }
}

fn describe_version(version: Option<u64>) -> String {
    version.map_or_else(|| "no stream".to_owned(), |v| format!("version {v}"))
}
