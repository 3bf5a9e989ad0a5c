//! The plain data a unit of work carries in and reads carry out.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tessera_kernel::{CorrelationId, Envelope, HlcTimestamp, MessageId, StreamId, SubjectId, Timestamp};

use crate::error::{Result, StoreError};
use crate::version::ExpectedVersion;

/// Tracing and privacy context stored with each event, so that replays keep it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<CorrelationId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<MessageId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<HlcTimestamp>,
}

/// An event to append. The payload is serialised by the caller's task, not the writer's.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub id: MessageId,
    pub name: String,
    pub schema_version: u32,
    pub payload: String,
    pub metadata: EventMetadata,
}

impl NewEvent {
    pub fn new<T: Serialize>(id: MessageId, name: impl Into<String>, payload: &T) -> Result<Self> {
        Ok(Self {
            id,
            name: name.into(),
            schema_version: 1,
            payload: serde_json::to_string(payload)?,
            metadata: EventMetadata::default(),
        })
    }

    #[must_use]
    pub fn with_metadata(mut self, metadata: EventMetadata) -> Self {
        self.metadata = metadata;
        self
    }

    #[must_use]
    pub fn with_schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }
}

/// An event as stored: its place in its stream and in the store's global order.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEvent {
    /// Global position: increasing in commit order, with possible holes, never reordered.
    pub position: u64,
    pub stream: StreamId,
    pub version: u64,
    pub id: MessageId,
    pub name: String,
    pub schema_version: u32,
    pub payload: String,
    pub metadata: EventMetadata,
    pub recorded_at: Timestamp,
}

impl RecordedEvent {
    pub fn decode<T: for<'de> Deserialize<'de>>(&self) -> Result<T> {
        serde_json::from_str(&self.payload).map_err(StoreError::from)
    }
}

/// The latest snapshot of a stream: state as of `version`.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub stream: StreamId,
    pub version: u64,
    pub state: String,
    pub taken_at: Timestamp,
}

/// A stream as loaded: the latest snapshot, if any, and every event after it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamSlice {
    pub snapshot: Option<Snapshot>,
    pub events: Vec<RecordedEvent>,
}

impl StreamSlice {
    /// The stream's current version; `None` when the stream does not exist.
    pub fn version(&self) -> Option<u64> {
        self.events.last().map(|e| e.version).or(self.snapshot.as_ref().map(|s| s.version))
    }

    /// What to pass to `append` to write after exactly what was loaded.
    pub fn expected(&self) -> ExpectedVersion {
        self.version().map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact)
    }
}

/// One outbox row waiting for (or past) the relay.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxMessage {
    /// Commit order within this store.
    pub position: u64,
    pub envelope: Envelope,
    pub created_at: Timestamp,
}

/// A timer that is due: the message it carries is to be handled now.
#[derive(Clone, Debug, PartialEq)]
pub struct DueTimer {
    pub id: MessageId,
    pub due_at: Timestamp,
    pub envelope: Envelope,
}

/// A value bound to, or read from, a statement on the service's own tables. Five column types
/// are portable across both backends: BIGINT, DOUBLE PRECISION, TEXT, BYTEA/BLOB and BOOLEAN.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Bool(bool),
}

macro_rules! sql_value_from {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for SqlValue {
            fn from(value: $t) -> Self {
                SqlValue::$variant(value.into())
            }
        }
    )*};
}

sql_value_from!(i64 => Int, i32 => Int, u32 => Int, f64 => Real, String => Text, &str => Text, Vec<u8> => Blob, bool => Bool);

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(value: Option<T>) -> Self {
        value.map_or(SqlValue::Null, Into::into)
    }
}

/// A statement on the service's own tables, written once for both backends with `$1, $2, …`
/// placeholders. `expect_rows` turns "matched nothing" into a typed rejection that rolls back
/// the whole unit, which is how conditional updates (never oversell) are expressed.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub(crate) sql: String,
    pub(crate) params: Vec<SqlValue>,
    pub(crate) expect: Option<(u64, String)>,
}

impl Statement {
    pub fn new(sql: impl Into<String>) -> Self {
        Self { sql: sql.into(), params: Vec::new(), expect: None }
    }

    #[must_use]
    pub fn bind(mut self, value: impl Into<SqlValue>) -> Self {
        self.params.push(value.into());
        self
    }

    /// Requires exactly `rows` affected rows, or the unit fails with `Rejected { reason }`.
    #[must_use]
    pub fn expect_rows(mut self, rows: u64, reason: impl Into<String>) -> Self {
        self.expect = Some((rows, reason.into()));
        self
    }

    pub(crate) fn check_affected(&self, affected: u64) -> Result<()> {
        match &self.expect {
            Some((expected, reason)) if *expected != affected => {
                Err(StoreError::Rejected { reason: reason.clone(), expected: *expected, actual: affected })
            }
            _ => Ok(()),
        }
    }
}

/// One row of a query on the service's own tables.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub(crate) columns: Arc<[String]>,
    pub(crate) values: Vec<SqlValue>,
}

impl Row {
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    pub fn values(&self) -> &[SqlValue] {
        &self.values
    }

    pub fn get(&self, column: &str) -> Result<&SqlValue> {
        self.columns
            .iter()
            .position(|c| c == column)
            .map(|i| &self.values[i])
            .ok_or_else(|| StoreError::Type(format!("no column `{column}` in the result")))
    }

    pub fn int(&self, column: &str) -> Result<i64> {
        match self.get(column)? {
            SqlValue::Int(v) => Ok(*v),
            other => Err(StoreError::Type(format!("column `{column}` holds {other:?}, not an integer"))),
        }
    }

    pub fn text(&self, column: &str) -> Result<&str> {
        match self.get(column)? {
            SqlValue::Text(v) => Ok(v),
            other => Err(StoreError::Type(format!("column `{column}` holds {other:?}, not text"))),
        }
    }

    pub fn opt_text(&self, column: &str) -> Result<Option<&str>> {
        match self.get(column)? {
            SqlValue::Null => Ok(None),
            _ => self.text(column).map(Some),
        }
    }
    pub fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        match self.get(column)? {
            SqlValue::Null => Ok(None),
            _ => self.int(column).map(Some),
        }
    }
}
