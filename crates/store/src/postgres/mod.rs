//! The PostgreSQL backend: one database per service, a pool of connections for reads, and one
//! writer connection that commits queued units of work in batches.
//!
//! Every write transaction first takes a transaction-scoped advisory lock, so writers (this
//! process's and any replica's) commit one after another and global positions, drawn from a
//! sequence inside the lock, become visible in commit order: gap-safe. Batching many units per
//! transaction is what keeps that serialisation fast. See
//! `docs/decisions/0001-gap-safe-positions.md`.

mod durable;
mod value;
mod writer;

pub use writer::WRITE_LOCK;

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tessera_kernel::{Clock, MessageId, StreamId, Timestamp};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;

use crate::backend::{
    AUDIT_COLUMNS, AuditRow, Backend, BackendKind, CommitReceipt, Job, Lease, Op, OutboxBacklog, audit_hash,
    decode_audit, decode_envelope, decode_event, to_i64, to_u64,
};
use crate::error::{Result, StoreError};
use crate::migrate::{self, CORE, Dialect, MigrationSet};
use crate::model::{DueTimer, OutboxMessage, RecordedEvent, Row, Snapshot, SqlValue, Statement};

/// Held while migrations run, so replicas starting together apply each migration once.
const MIGRATION_LOCK: i64 = 0x7e55_e7a0_0000_0002;

#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Connections for reads (the writer has its own).
    pub pool_size: usize,
    /// Most units committed in one transaction.
    pub max_batch: usize,
    /// Create the database if it does not exist.
    pub create_database: bool,
    pub queue_depth: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self { pool_size: 8, max_batch: 1024, create_database: true, queue_depth: 8192 }
    }
}

#[derive(Debug)]
pub(crate) struct PostgresBackend {
    jobs: mpsc::Sender<Job>,
    pool: Pool,
    config: tokio_postgres::Config,
    /// What the flusher has made durable of the outbox.
    durable_outbox: Arc<durable::DurableOutbox>,
}

fn parse_url(url: &str) -> Result<tokio_postgres::Config> {
    url.parse().map_err(StoreError::Postgres)
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A connection to the server's maintenance database, for creating and dropping databases.
async fn connect_maintenance(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client> {
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
    let (client, connection) = maintenance.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// `server` (a PostgreSQL URL with or without a database) with its database set to `name`;
/// query parameters are kept.
pub fn database_url(server: &str, name: &str) -> String {
    let (scheme, rest) = server.split_once("://").unwrap_or(("postgres", server));
    let (authority, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let host = authority.split('/').next().unwrap_or(authority);
    match query {
        Some(query) => format!("{scheme}://{host}/{name}?{query}"),
        None => format!("{scheme}://{host}/{name}"),
    }
}

/// Creates the database named in `url` unless it exists. Safe to race with another process.
pub async fn create_database(url: &str) -> Result<()> {
    let config = parse_url(url)?;
    let name = config.get_dbname().ok_or_else(|| StoreError::Pool("the URL names no database".into()))?;
    let client = connect_maintenance(&config).await?;
    let exists = client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await?.is_some();
    if !exists
        && let Err(error) = client.batch_execute(&format!("CREATE DATABASE {}", quote_identifier(name))).await
    {
        let raced = error.code().is_some_and(|c| {
            *c == tokio_postgres::error::SqlState::DUPLICATE_DATABASE
                || *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
        });
        if !raced {
            return Err(error.into());
        }
    }
    Ok(())
}

/// Whether the database named in `url` exists and holds a Tessera store.
pub(crate) async fn holds_a_store(url: &str) -> Result<bool> {
    let config = parse_url(url)?;
    let name = config.get_dbname().ok_or_else(|| StoreError::Pool("the URL names no database".into()))?;
    let maintenance = connect_maintenance(&config).await?;
    if maintenance.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await?.is_none() {
        return Ok(false);
    }
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    let ledger: Option<String> =
        client.query_one("SELECT to_regclass('tessera_migrations')::text", &[]).await?.get(0);
    Ok(ledger.is_some())
}

/// Drops the database named in `url`, disconnecting its sessions (tests and `tessera` resets).
pub async fn drop_database(url: &str) -> Result<()> {
    let config = parse_url(url)?;
    let name = config.get_dbname().ok_or_else(|| StoreError::Pool("the URL names no database".into()))?;
    let client = connect_maintenance(&config).await?;
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_identifier(name))).await?;
    Ok(())
}

async fn apply_migrations(
    config: &tokio_postgres::Config,
    sets: &[MigrationSet],
    now: Timestamp,
) -> Result<()> {
    let (mut client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    // Replicas starting together must not run the same migration twice.
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    client.batch_execute(migrate::LEDGER_POSTGRES).await?;
    for set in sets {
        let applied: Vec<(u32, String)> = client
            .query(
                "SELECT version, checksum FROM tessera_migrations WHERE scope = $1 ORDER BY version",
                &[&set.scope],
            )
            .await?
            .iter()
            .map(|row| (u32::try_from(row.get::<_, i64>(0)).unwrap_or(u32::MAX), row.get(1)))
            .collect();
        for migration in migrate::pending(set, Dialect::Postgres, &applied)? {
            let tx = client.transaction().await?;
            tx.batch_execute(migration.postgres).await.map_err(|e| StoreError::Migration {
                scope: set.scope.to_owned(),
                version: migration.version,
                reason: e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned()),
            })?;
            tx.execute(
                "INSERT INTO tessera_migrations (scope, version, name, checksum, applied_at) VALUES ($1, $2, $3, $4, $5)",
                &[
                    &set.scope,
                    &i64::from(migration.version),
                    &migration.name,
                    &migration.checksum(Dialect::Postgres),
                    &to_i64(now.as_micros()),
                ],
            )
            .await?;
            tx.commit().await?;
        }
    }
    client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await?;
    Ok(())
}

impl PostgresBackend {
    pub(crate) async fn open(
        url: &str,
        options: PostgresOptions,
        migrations: &[MigrationSet],
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        if options.create_database {
            create_database(url).await?;
        }
        let config = parse_url(url)?;
        let sets: Vec<MigrationSet> = std::iter::once(CORE).chain(migrations.iter().copied()).collect();
        apply_migrations(&config, &sets, clock.now()).await?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let (jobs, queue) = mpsc::channel(options.queue_depth.max(1));
        let writer = writer::Writer::connect(&config).await?;
        // Zero: rows an earlier process left may not be flushed yet; the relay's first read
        // flushes once and moves the mark.
        let durable_outbox = Arc::new(durable::DurableOutbox::default());
        let (committed, to_flush) = mpsc::channel(durable::WAITING_BATCHES);
        tokio::spawn(durable::run(config.clone(), to_flush, durable_outbox.clone()));
        tokio::spawn(writer::run(writer, config.clone(), queue, options.max_batch.max(1), clock, committed));
        Ok(Self { jobs, pool, config, durable_outbox })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(error) => StoreError::Postgres(error),
            other => StoreError::Pool(other.to_string()),
        })
    }

    async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, params).await?)
    }
}

const SELECT_EVENTS: &str = "SELECT position, stream_id, version, event_id, name, schema_version, payload, metadata, recorded_at FROM tessera_events";

fn event_from_row(row: &tokio_postgres::Row) -> Result<RecordedEvent> {
    decode_event(
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
        row.try_get(7)?,
        row.try_get(8)?,
    )
}

#[async_trait]
impl Backend for PostgresBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Postgres
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<CommitReceipt> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { ops, reply }).await.map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(&self, stream: &StreamId, after_version: u64) -> Result<Vec<RecordedEvent>> {
        let sql = format!("{SELECT_EVENTS} WHERE stream_id = $1 AND version > $2 ORDER BY version");
        self.rows(&sql, &[&stream.as_str(), &to_i64(after_version)])
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }

    async fn latest_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>> {
        let rows = self
            .rows(
                "SELECT version, state, taken_at FROM tessera_snapshots WHERE stream_id = $1",
                &[&stream.as_str()],
            )
            .await?;
        rows.first()
            .map(|row| {
                Ok(Snapshot {
                    stream: stream.clone(),
                    version: to_u64(row.try_get(0)?)?,
                    state: row.try_get(1)?,
                    taken_at: Timestamp::from_micros(to_u64(row.try_get(2)?)?),
                })
            })
            .transpose()
    }

    async fn read_all(&self, after_position: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let sql = format!("{SELECT_EVENTS} WHERE position > $1 ORDER BY position LIMIT $2");
        self.rows(&sql, &[&to_i64(after_position), &to_i64(limit as u64)])
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }

    async fn head_position(&self) -> Result<u64> {
        let rows = self.rows("SELECT coalesce(max(position), 0) FROM tessera_events", &[]).await?;
        to_u64(rows.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0))
    }

    async fn outbox_unsent(&self, after_position: u64, limit: usize) -> Result<Vec<OutboxMessage>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT o.position, e.envelope, o.created_at
                 FROM tessera_outbox o
                 LEFT JOIN tessera_outbox_envelopes e ON e.position = o.position AND e.position > $1
                 WHERE o.sent_at IS NULL AND o.position > $1 ORDER BY o.position LIMIT $2",
            )
            .await?;
        let rows = client.query(&statement, &[&to_i64(after_position), &to_i64(limit as u64)]).await?;
        let messages: Vec<OutboxMessage> = rows
            .iter()
            .map(|row| {
                Ok(OutboxMessage {
                    position: to_u64(row.try_get(0)?)?,
                    envelope: decode_envelope(row.try_get::<_, Option<&str>>(1)?.ok_or_else(|| {
                        StoreError::Corrupt(format!("outbox row {} has no envelope", row.get::<_, i64>(0)))
                    })?)?,
                    created_at: Timestamp::from_micros(to_u64(row.try_get(2)?)?),
                })
            })
            .collect::<Result<_>>()?;
        // A row above the durable mark may come from a commit whose flush is still to come
        // (or from another replica): it may leave the service only once the log is flushed.
        if let Some(last) = messages.last()
            && !self.durable_outbox.covers(last.position)
        {
            durable::flush_log(&client).await.map_err(|error| {
                StoreError::NotDurable(format!("flushing the log before relaying failed: {error}"))
            })?;
            self.durable_outbox.raise(last.position);
        }
        Ok(messages)
    }

    async fn outbox_backlog(&self) -> Result<OutboxBacklog> {
        let rows = self
            .rows("SELECT count(*), min(created_at) FROM tessera_outbox WHERE sent_at IS NULL", &[])
            .await?;
        let row = rows.first().ok_or_else(|| StoreError::Corrupt("count(*) returned no row".into()))?;
        let oldest: Option<i64> = row.try_get(1)?;
        Ok(OutboxBacklog {
            unsent: to_u64(row.try_get(0)?)?,
            oldest_unsent: oldest.map(to_u64).transpose()?.map(Timestamp::from_micros),
        })
    }

    async fn inbox_contains(&self, message: MessageId) -> Result<bool> {
        let rows =
            self.rows("SELECT 1 FROM tessera_inbox WHERE message_id = $1", &[&message.to_string()]).await?;
        Ok(!rows.is_empty())
    }

    async fn checkpoint(&self, name: &str) -> Result<Option<u64>> {
        let rows = self.rows("SELECT position FROM tessera_checkpoints WHERE name = $1", &[&name]).await?;
        rows.first().map(|row| to_u64(row.try_get(0)?)).transpose()
    }

    async fn due_timers(&self, now: Timestamp, limit: usize) -> Result<Vec<DueTimer>> {
        let rows = self
            .rows(
                "SELECT timer_id, due_at, envelope FROM tessera_timers
                 WHERE state = 'pending' AND due_at <= $1 ORDER BY due_at, timer_id LIMIT $2",
                &[&to_i64(now.as_micros()), &to_i64(limit as u64)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let id: &str = row.try_get(0)?;
                Ok(DueTimer {
                    id: id.parse().map_err(|e| StoreError::Corrupt(format!("timer id `{id}`: {e}")))?,
                    due_at: Timestamp::from_micros(to_u64(row.try_get(1)?)?),
                    envelope: decode_envelope(row.try_get(2)?)?,
                })
            })
            .collect()
    }

    async fn try_lease(&self, name: &str) -> Result<Option<Lease>> {
        let (client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(connection);
        let acquired: bool = client
            .query_one("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", &[&name])
            .await?
            .try_get(0)?;
        Ok(acquired.then_some(Lease { connection: Some(client) }))
    }

    async fn audit_page(&self, after_index: Option<u64>, limit: usize) -> Result<Vec<AuditRow>> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM tessera_audit WHERE idx > $1 ORDER BY idx LIMIT $2");
        let after = after_index.map_or(-1, to_i64);
        self.rows(&sql, &[&after, &to_i64(limit as u64)])
            .await?
            .iter()
            .map(|row| {
                decode_audit(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    row.try_get(5)?,
                    row.try_get(6)?,
                    row.try_get(7)?,
                    row.try_get(8)?,
                )
            })
            .collect()
    }

    async fn audit_head(&self) -> Result<Option<(u64, [u8; 32])>> {
        let rows = self.rows("SELECT idx, hash FROM tessera_audit ORDER BY idx DESC LIMIT 1", &[]).await?;
        rows.first()
            .map(|row| {
                let index = to_u64(row.try_get(0)?)?;
                Ok((index, audit_hash(index, row.try_get(1)?)?))
            })
            .transpose()
    }

    async fn query(&self, statement: Statement) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let prepared = client.prepare_cached(&statement.sql).await?;
        let columns: Arc<[String]> = prepared.columns().iter().map(|c| c.name().to_owned()).collect();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            statement.params.iter().map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
        let rows = client.query(&prepared, &params).await?;
        rows.iter()
            .map(|row| {
                let values =
                    (0..columns.len()).map(|i| row.try_get::<_, SqlValue>(i)).collect::<Result<_, _>>()?;
                Ok(Row { columns: columns.clone(), values })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn database_url_replaces_or_adds_the_database() {
        assert_eq!(database_url("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
        assert_eq!(database_url("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(
            database_url("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
