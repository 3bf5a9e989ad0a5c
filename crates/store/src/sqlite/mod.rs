//! The SQLite backend: one file per service in WAL mode. All writes go through one writer
//! thread that takes whatever units of work are queued, applies each inside its own savepoint
//! and commits them together, so one fsync covers many units (group commit) and one unit's
//! failure leaves its neighbours untouched. Reads run on a small pool of read-only connections,
//! which WAL lets proceed while the writer commits.

mod durable;
mod sql;
mod wal;
mod writer;

use sql::{bind, highest_outbox_position};
use wal::{LogRestart, checkpoint_in_background};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tessera_kernel::{Clock, MessageId, StreamId, Timestamp};
use tokio::sync::{mpsc, oneshot};

use crate::backend::{
    AUDIT_COLUMNS, AuditRow, Backend, BackendKind, CommitReceipt, Job, Lease, Op, OutboxBacklog, audit_hash,
    decode_audit, decode_envelope, decode_event, to_i64, to_u64,
};
use crate::error::{Result, StoreError};
use crate::migrate::{self, CORE, Dialect, MigrationSet};
use crate::model::{DueTimer, OutboxMessage, RecordedEvent, Row, Snapshot, SqlValue, Statement};

/// Whether the SQLite file at `path` holds a Tessera store, opened read-only.
pub(crate) fn holds_a_store(path: &Path) -> Result<bool> {
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let ledger: Option<String> = connection
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'tessera_migrations'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(ledger.is_some())
}

/// How hard a commit waits for the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync on every commit: an acknowledged commit survives power loss. The default.
    #[default]
    Full,
    /// fsync at checkpoints only: survives a process crash, not a power cut.
    Normal,
}

#[derive(Clone, Debug)]
pub struct SqliteOptions {
    pub synchronous: Synchronous,
    /// Most units committed in one transaction.
    pub max_batch: usize,
    /// Read connections kept open.
    pub read_connections: usize,
    /// Queue length before `commit` waits for the writer (back-pressure).
    pub queue_depth: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { synchronous: Synchronous::Full, max_batch: 1024, read_connections: 4, queue_depth: 8192 }
    }
}

#[derive(Debug)]
pub(crate) struct SqliteBackend {
    jobs: mpsc::Sender<Job>,
    readers: Arc<ReadPool>,
    /// With `synchronous=FULL`: what the sync thread has made durable.
    durability: Option<Arc<durable::Durability>>,
    /// Dropped with the backend, which ends the checkpoint thread.
    _checkpoint_stop: std::sync::mpsc::Sender<()>,
}

impl SqliteBackend {
    pub(crate) async fn open(
        path: PathBuf,
        options: SqliteOptions,
        migrations: &[MigrationSet],
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let sets: Vec<MigrationSet> = std::iter::once(CORE).chain(migrations.iter().copied()).collect();
        let writer_path = path.clone();
        let write_options = options.clone();
        let migration_clock = clock.clone();
        let connection =
            tokio::task::spawn_blocking(move || -> Result<(Connection, Option<Arc<durable::Durability>>)> {
                if let Some(parent) = writer_path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                // A durable commit is the sync thread's job (see `durable`): the writer itself
                // never waits for the disk.
                let mut connection = open_connection(&writer_path, Synchronous::Normal, false)?;
                apply_migrations(&mut connection, &sets, migration_clock.now())?;
                let durability = match write_options.synchronous {
                    Synchronous::Full => Some(Arc::new(durability_from_disk(&writer_path, &connection)?)),
                    Synchronous::Normal => None,
                };
                Ok((connection, durability))
            })
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
        let (connection, durability) = connection;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let acknowledge = match &durability {
            Some(durability) => {
                let (committed, to_sync) = std::sync::mpsc::channel();
                let shared = durability.clone();
                std::thread::Builder::new()
                    .name(format!("sqlite-sync:{file_name}"))
                    .spawn(move || durable::run(&shared, &to_sync))?;
                writer::Acknowledge::AfterSync(committed, durability.clone())
            }
            None => writer::Acknowledge::OnCommit,
        };
        let (jobs, queue) = mpsc::channel(options.queue_depth.max(1));
        let (checkpoint_stop, checkpoint_stopped) = std::sync::mpsc::channel::<()>();
        let checkpoint_connection = open_connection(&path, options.synchronous, false)?;
        let log_restart = Arc::new(LogRestart::default());
        let wanted = log_restart.clone();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_in_background(&checkpoint_connection, &checkpoint_stopped, &wanted))?;
        let max_batch = options.max_batch.max(1);
        std::thread::Builder::new()
            .name(format!("sqlite-writer:{file_name}"))
            .spawn(move || writer::run(connection, queue, max_batch, clock, acknowledge, &log_restart))?;
        Ok(Self {
            jobs,
            durability,
            readers: Arc::new(ReadPool { path, options, idle: Mutex::new(Vec::new()) }),
            _checkpoint_stop: checkpoint_stop,
        })
    }

    /// Runs a short read on the calling thread. A point read with its pages cached takes a
    /// few microseconds of SQLite's time, far less than handing it to a blocking thread and
    /// back (a wake-up and a context switch each way; a third of all switches under load were
    /// those). Reads that may take long or wait go to the blocking pool through [`Self::read`]:
    /// the relay's outbox read (it may wait for the sync thread) and pages of the log.
    fn read_now<T>(&self, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let connection = self.readers.take()?;
        let outcome = work(&connection);
        self.readers.give_back(connection);
        outcome
    }

    async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let connection = readers.take()?;
            let outcome = work(&connection);
            readers.give_back(connection);
            outcome
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e)))?
    }
}

/// Syncs what a previous process left in the write-ahead log and the database (it may have
/// been killed before its sync thread ran), so that everything in the outbox now is durable.
fn durability_from_disk(path: &Path, connection: &Connection) -> Result<durable::Durability> {
    let mut log_path = path.as_os_str().to_owned();
    log_path.push("-wal");
    // SQLite created the log when the connection went into WAL mode; `create` only guards
    // against a file system that lost it, and an empty log is a valid one.
    let log =
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&log_path)?;
    log.sync_data()?;
    std::fs::File::open(path)?.sync_data()?;
    Ok(durable::Durability::new(log, highest_outbox_position(connection)?.unwrap_or(0)))
}

fn open_connection(path: &Path, synchronous: Synchronous, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    // Without the query planner's stability guarantee, SQLite lets a bound value steer the plan
    // of some statements (`LIMIT ?`, an equality on an index's leading column under max()),
    // marks them to be prepared again whenever that value changes, and rusqlite's statement
    // cache clears the bindings after every use: the version check, the relay's outbox read and
    // every paged read were parsed and planned anew on each run, 30 % of the writer's time with
    // a new stream per unit. None of the store's plans depends on a value.
    connection.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    if !read_only {
        connection.pragma_update(None, "journal_mode", "WAL")?;
        // Checkpoints run on their own connection (below), not inside a unit's commit, where
        // copying pages back and syncing the database file would stall every waiting unit.
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        // After a checkpoint lets the WAL restart, trim the file back to this size.
        connection.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    }
    let synchronous = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    connection.pragma_update(None, "synchronous", synchronous)?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // Savepoints journal the pages they touch; in memory that costs a copy, not a file write.
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    connection.pragma_update(None, "cache_size", -32_768)?;
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

fn apply_migrations(connection: &mut Connection, sets: &[MigrationSet], now: Timestamp) -> Result<()> {
    connection.execute_batch(migrate::LEDGER_SQLITE)?;
    for set in sets {
        let applied: Vec<(u32, String)> = connection
            .prepare("SELECT version, checksum FROM tessera_migrations WHERE scope = ?1 ORDER BY version")?
            .query_map([set.scope], |row| Ok((row.get::<_, u32>(0)?, row.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for migration in migrate::pending(set, Dialect::Sqlite, &applied)? {
            let tx = connection.transaction()?;
            tx.execute_batch(migration.sqlite).map_err(|e| StoreError::Migration {
                scope: set.scope.to_owned(),
                version: migration.version,
                reason: e.to_string(),
            })?;
            tx.execute(
                "INSERT INTO tessera_migrations (scope, version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    set.scope,
                    migration.version,
                    migration.name,
                    migration.checksum(Dialect::Sqlite),
                    to_i64(now.as_micros())
                ],
            )?;
            tx.commit()?;
        }
    }
    Ok(())
}

#[derive(Debug)]
struct ReadPool {
    path: PathBuf,
    options: SqliteOptions,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match idle {
            Some(connection) => Ok(connection),
            None => open_connection(&self.path, self.options.synchronous, true),
        }
    }

    fn give_back(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.options.read_connections {
            idle.push(connection);
        }
    }
}

fn bind_value(value: &SqlValue) -> rusqlite::types::ToSqlOutput<'_> {
    use rusqlite::types::{ToSqlOutput, ValueRef};
    ToSqlOutput::Borrowed(match value {
        SqlValue::Null => ValueRef::Null,
        SqlValue::Int(v) => ValueRef::Integer(*v),
        SqlValue::Real(v) => ValueRef::Real(*v),
        SqlValue::Text(v) => ValueRef::Text(v.as_bytes()),
        SqlValue::Blob(v) => ValueRef::Blob(v),
        SqlValue::Bool(v) => ValueRef::Integer(i64::from(*v)),
    })
}

impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(bind_value(self))
    }
}

/// The relay's read of what is still to send.
const OUTBOX_UNSENT: &str = "SELECT o.position, e.envelope, o.created_at
     FROM tessera_outbox o
     LEFT JOIN tessera_outbox_envelopes e ON e.position = o.position AND e.position > ?1
     WHERE o.sent_at IS NULL AND o.position > ?1 ORDER BY o.position LIMIT ?2";

const EVENT_COLUMNS: &str =
    "position, stream_id, version, event_id, name, schema_version, payload, metadata, recorded_at";

fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<RecordedEvent>> {
    Ok(decode_event(
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        &row.get::<_, String>(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        &row.get::<_, String>(7)?,
        row.get(8)?,
    ))
}

fn collect_events(
    statement: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<RecordedEvent>> {
    statement.query_map(params, event_from_row)?.map(|row| row?).collect()
}

#[async_trait]
impl Backend for SqliteBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<CommitReceipt> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { ops, reply }).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(&self, stream: &StreamId, after_version: u64) -> Result<Vec<RecordedEvent>> {
        let stream = stream.as_str().to_owned();
        self.read_now(move |c| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM tessera_events WHERE stream_id = ?1 AND version > ?2 ORDER BY version"
            );
            collect_events(&mut c.prepare_cached(&sql)?, params![stream, to_i64(after_version)])
        })
    }

    async fn latest_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        let id = stream.clone();
        self.read_now(move |c| {
            let row = c
                .prepare_cached(
                    "SELECT version, state, taken_at FROM tessera_snapshots WHERE stream_id = ?1",
                )?
                .query_row([id.as_str()], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                })
                .optional()?;
            row.map(|(version, state, taken_at)| {
                Ok(Snapshot {
                    stream: id.clone(),
                    version: to_u64(version)?,
                    state,
                    taken_at: Timestamp::from_micros(to_u64(taken_at)?),
                })
            })
            .transpose()
        })
    }

    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} FROM tessera_events WHERE position > ?1 ORDER BY position LIMIT ?2"
            );
            collect_events(
                &mut c.prepare_cached(&sql)?,
                params![to_i64(after_position), to_i64(limit as u64)],
            )
        })
        .await
    }

    async fn head_position(&self) -> Result<u64> {
        self.read_now(|c| {
            let head: Option<i64> =
                c.prepare_cached("SELECT max(position) FROM tessera_events")?.query_row([], |r| r.get(0))?;
            to_u64(head.unwrap_or(0))
        })
    }

    async fn outbox_unsent(&self, after_position: u64, limit: usize) -> Result<Vec<OutboxMessage>> {
        let durability = self.durability.clone();
        self.read(move |c| {
            let mut statement = c.prepare_cached(OUTBOX_UNSENT)?;
            let rows = statement.query_map([to_i64(after_position), to_i64(limit as u64)], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, i64>(2)?))
            })?;
            let messages: Vec<OutboxMessage> = rows
                .map(|row| {
                    let (position, envelope, created_at) = row?;
                    let envelope = envelope.ok_or_else(|| {
                        StoreError::Corrupt(format!("outbox row {position} has no envelope"))
                    })?;
                    Ok(OutboxMessage {
                        position: to_u64(position)?,
                        envelope: decode_envelope(&envelope)?,
                        created_at: Timestamp::from_micros(to_u64(created_at)?),
                    })
                })
                .collect::<Result<_>>()?;
            // Nothing leaves the service before the commit that wrote it is on disk.
            if let (Some(durability), Some(last)) = (&durability, messages.last()) {
                durability.make_outbox_durable(last.position)?;
            }
            Ok(messages)
        })
        .await
    }

    async fn outbox_backlog(&self) -> Result<OutboxBacklog> {
        self.read(|c| {
            let (unsent, oldest): (i64, Option<i64>) = c
                .prepare_cached("SELECT count(*), min(created_at) FROM tessera_outbox WHERE sent_at IS NULL")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(OutboxBacklog {
                unsent: to_u64(unsent)?,
                oldest_unsent: oldest.map(to_u64).transpose()?.map(Timestamp::from_micros),
            })
        })
        .await
    }

    async fn inbox_contains(&self, message: MessageId) -> Result<bool> {
        self.read_now(move |c| {
            Ok(c.prepare_cached("SELECT 1 FROM tessera_inbox WHERE message_id = ?1")?
                .query_row([message.to_string()], |_| Ok(()))
                .optional()?
                .is_some())
        })
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<u64>> {
        let name = name.to_owned();
        self.read_now(move |c| {
            let position: Option<i64> = c
                .prepare_cached("SELECT position FROM tessera_checkpoints WHERE name = ?1")?
                .query_row([name], |r| r.get(0))
                .optional()?;
            position.map(to_u64).transpose()
        })
    }

    async fn due_timers(&self, now: Timestamp, limit: usize) -> Result<Vec<DueTimer>> {
        self.read_now(move |c| {
            let mut statement = c.prepare_cached(
                "SELECT timer_id, due_at, envelope FROM tessera_timers
                 WHERE state = 'pending' AND due_at <= ?1 ORDER BY due_at, timer_id LIMIT ?2",
            )?;
            let rows = statement.query_map(params![to_i64(now.as_micros()), to_i64(limit as u64)], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
            })?;
            rows.map(|row| {
                let (id, due_at, envelope) = row?;
                Ok(DueTimer {
                    id: id.parse().map_err(|e| StoreError::Corrupt(format!("timer id `{id}`: {e}")))?,
                    due_at: Timestamp::from_micros(to_u64(due_at)?),
                    envelope: decode_envelope(&envelope)?,
                })
            })
            .collect()
        })
    }

    async fn try_lease(&self, _name: &str) -> Result<Option<Lease>> {
        Ok(Some(Lease { connection: None }))
    }

    async fn audit_page(&self, after_index: Option<u64>, limit: usize) -> Result<Vec<AuditRow>> {
        let after = after_index.map_or(-1, to_i64);
        self.read(move |c| {
            let sql =
                format!("SELECT {AUDIT_COLUMNS} FROM tessera_audit WHERE idx > ?1 ORDER BY idx LIMIT ?2");
            let mut statement = c.prepare_cached(&sql)?;
            let rows = statement.query_map(params![after, to_i64(limit as u64)], |r| {
                Ok(decode_audit(
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })?;
            rows.map(|row| row?).collect()
        })
        .await
    }

    async fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>> {
        self.read_now(|c| {
            let head: Option<(i64, Vec<u8>)> = c
                .prepare_cached("SELECT idx, hash FROM tessera_audit ORDER BY idx DESC LIMIT 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            head.map(|(index, hash)| {
                let index = to_u64(index)?;
                Ok((index, audit_hash(index, &hash)?))
            })
            .transpose()
        })
    }

    async fn query(&self, statement: Statement) -> Result<Vec<Row>> {
        self.read_now(move |c| {
            let mut prepared = c.prepare_cached(&statement.sql)?;
            let columns: Arc<[String]> = prepared.column_names().map(str::to_owned).collect();
            bind(&mut prepared, &statement.params)?;
            let mut rows = prepared.raw_query();
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let values = (0..columns.len())
                    .map(|i| {
                        Ok(match row.get_ref(i)? {
                            rusqlite::types::ValueRef::Null => SqlValue::Null,
                            rusqlite::types::ValueRef::Integer(v) => SqlValue::Int(v),
                            rusqlite::types::ValueRef::Real(v) => SqlValue::Real(v),
                            rusqlite::types::ValueRef::Text(v) => {
                                SqlValue::Text(String::from_utf8_lossy(v).into_owned())
                            }
                            rusqlite::types::ValueRef::Blob(v) => SqlValue::Blob(v.to_vec()),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                out.push(Row { columns: columns.clone(), values });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;

    /// Both statements were prepared again on every run before the planner's stability
    /// guarantee was switched on (a bound value had steered their plans).
    #[test]
    fn hot_statements_are_not_prepared_again_when_their_values_change() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store.db");
        let mut connection = open_connection(&path, Synchronous::Normal, false).expect("open");
        apply_migrations(&mut connection, &[CORE], Timestamp::from_micros(0)).expect("migrate");
        for round in 0..3_i64 {
            let mut version = connection.prepare_cached(writer::STREAM_VERSION).expect("prepare");
            let _: Option<i64> =
                version.query_row([format!("order-{round}")], |row| row.get(0)).expect("version");
            assert_eq!(version.get_status(StatementStatus::RePrepare), 0, "version check, round {round}");
            drop(version);
            let mut unsent = connection.prepare_cached(OUTBOX_UNSENT).expect("prepare");
            unsent.query([round, 100 + round]).expect("query").next().expect("step");
            assert_eq!(unsent.get_status(StatementStatus::RePrepare), 0, "outbox read, round {round}");
        }
    }

    #[test]
    fn placeholders_are_bound_by_their_number_and_never_read_in_quotes_or_comments() {
        let dir = tempfile::tempdir().expect("temp dir");
        let connection =
            open_connection(&dir.path().join("store.db"), Synchronous::Normal, false).expect("open");
        let mut statement = connection
            .prepare("SELECT $2 || '$1' || $1 -- and $3 in a comment\n || /* $4 */ $2")
            .expect("prepare");
        bind(&mut statement, &[SqlValue::Text("a".into()), SqlValue::Text("b".into())]).expect("bound");
        let text: String = statement.raw_query().next().expect("step").expect("a row").get(0).expect("text");
        assert_eq!(text, "b$1ab");
        let mut missing = connection.prepare("SELECT $3").expect("prepare");
        assert!(bind(&mut missing, &[SqlValue::Int(1)]).is_err(), "a number without a value");
    }
}
