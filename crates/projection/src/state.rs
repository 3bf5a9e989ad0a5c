//! Where each projection stands, kept in the store next to its read model: the live
//! checkpoint, a rebuild's progress, and an operator's request for one.

use std::hash::{DefaultHasher, Hash, Hasher};

use tessera_kernel::Timestamp;
use tessera_store::{Migration, MigrationSet, Row, SqlValue, Statement, Store, StoreError};

use crate::{Mode, ProjectionError, Result};

const SCHEMA: &str = "
    CREATE TABLE tessera_projections (
        name TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        position BIGINT NOT NULL,
        shadow_position BIGINT,
        rebuild_requested BIGINT NOT NULL,
        rebuilds BIGINT NOT NULL,
        rebuilt_at BIGINT,
        updated_at BIGINT NOT NULL);";

/// The runner's own table; add it to the migrations of every store that has projections.
pub const MIGRATIONS: MigrationSet = MigrationSet {
    scope: "tessera.projection",
    migrations: &[Migration { version: 1, name: "projection checkpoints", sqlite: SCHEMA, postgres: SCHEMA }],
};

/// One projection as an operator sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectionStatus {
    pub name: String,
    pub mode: String,
    /// The last event position the live table reflects.
    pub position: u64,
    /// The store's last event position.
    pub head: u64,
    /// Events committed that the live table does not reflect yet.
    pub lag_events: u64,
    /// How long the oldest of those has been waiting.
    pub lag_seconds: f64,
    /// While rebuilding: the shadow table's position (compare with `head`).
    pub rebuilding: Option<u64>,
    pub rebuild_requested: bool,
    pub rebuilds: u64,
    pub rebuilt_at: Option<Timestamp>,
}

pub(crate) struct Checkpoints {
    pub position: u64,
    pub shadow_position: Option<u64>,
    pub rebuild_requested: bool,
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn micros(at: Timestamp) -> i64 {
    signed(at.as_micros())
}

/// Creates the projection's row if it has none.
pub(crate) async fn ensure(store: &Store, name: &str, mode: Mode) -> Result<()> {
    let mut unit = store.begin();
    unit.execute(
        Statement::new(
            "INSERT INTO tessera_projections (name, mode, position, rebuild_requested, rebuilds, updated_at)
             VALUES ($1, $2, 0, 0, 0, $3) ON CONFLICT (name) DO UPDATE SET mode = excluded.mode",
        )
        .bind(name)
        .bind(mode.as_str())
        .bind(micros(store.clock().now())),
    );
    unit.commit().await?;
    Ok(())
}

pub(crate) async fn read(store: &Store, name: &str) -> Result<Checkpoints> {
    let rows = store
        .query(
            Statement::new(
                "SELECT position, shadow_position, rebuild_requested FROM tessera_projections WHERE name = $1",
            )
            .bind(name),
        )
        .await?;
    let row = rows.first().ok_or_else(|| ProjectionError::Unknown(name.to_owned()))?;
    Ok(Checkpoints {
        position: unsigned(row.int("position")?),
        shadow_position: match row.get("shadow_position")? {
            SqlValue::Int(v) => Some(unsigned(*v)),
            _ => None,
        },
        rebuild_requested: row.int("rebuild_requested")? != 0,
    })
}

/// Asks the running runner of `name` to rebuild its table; it starts within its poll interval.
pub async fn request_rebuild(store: &Store, name: &str) -> Result<()> {
    let mut unit = store.begin();
    unit.execute(
        Statement::new(
            "UPDATE tessera_projections SET rebuild_requested = 1, updated_at = $2 WHERE name = $1",
        )
        .bind(name)
        .bind(micros(store.clock().now()))
        .expect_rows(1, "unknown_projection"),
    );
    match unit.commit().await {
        Ok(_) => Ok(()),
        Err(StoreError::Rejected { .. }) => Err(ProjectionError::Unknown(name.to_owned())),
        Err(error) => Err(error.into()),
    }
}

/// Every projection of the store with its lag and rebuild progress.
pub async fn status(store: &Store) -> Result<Vec<ProjectionStatus>> {
    let head = store.head_position().await?;
    let now = store.clock().now();
    let rows = store
        .query(Statement::new(
            "SELECT name, mode, position, shadow_position, rebuild_requested, rebuilds, rebuilt_at
             FROM tessera_projections ORDER BY name",
        ))
        .await?;
    let mut statuses = Vec::with_capacity(rows.len());
    for row in rows {
        let mode = row.text("mode")?.to_owned();
        // An inline table is written with the events themselves: it never lags.
        let position = if mode == "inline" { head } else { unsigned(row.int("position")?) };
        let (lag_events, lag_seconds) = lag(store, position, now).await?;
        statuses.push(ProjectionStatus {
            name: row.text("name")?.to_owned(),
            mode,
            position,
            head,
            lag_events,
            lag_seconds,
            rebuilding: match row.get("shadow_position")? {
                SqlValue::Int(v) => Some(unsigned(*v)),
                _ => None,
            },
            rebuild_requested: row.int("rebuild_requested")? != 0,
            rebuilds: unsigned(row.int("rebuilds")?),
            rebuilt_at: match row.get("rebuilt_at")? {
                SqlValue::Int(v) => Some(Timestamp::from_micros(unsigned(*v))),
                _ => None,
            },
        });
    }
    Ok(statuses)
}

async fn lag(store: &Store, position: u64, now: Timestamp) -> Result<(u64, f64)> {
    let rows = store
        .query(
            Statement::new(
                "SELECT count(*) AS n, min(recorded_at) AS oldest FROM tessera_events WHERE position > $1",
            )
            .bind(signed(position)),
        )
        .await?;
    let Some(row) = rows.first() else { return Ok((0, 0.0)) };
    let count = unsigned(row.int("n")?);
    let seconds = match row.get("oldest")? {
        SqlValue::Int(oldest) => now.since(Timestamp::from_micros(unsigned(*oldest))).as_secs_f64(),
        _ => 0.0,
    };
    Ok((count, seconds))
}

/// A digest of a table's whole content in `order_by` order: two tables with equal digests
/// hold the same rows. Meant for tests and for checking a rebuild against the live table.
pub async fn table_digest(store: &Store, table: &str, order_by: &str) -> Result<String> {
    let rows = store.query(Statement::new(format!("SELECT * FROM {table} ORDER BY {order_by}"))).await?;
    let mut hasher = DefaultHasher::new();
    rows.len().hash(&mut hasher);
    for row in &rows {
        hash_row(row, &mut hasher);
    }
    Ok(format!("{:016x}/{}", hasher.finish(), rows.len()))
}

fn hash_row(row: &Row, hasher: &mut DefaultHasher) {
    for (column, value) in row.columns().iter().zip(row.values()) {
        column.hash(hasher);
        match value {
            SqlValue::Null => 0u8.hash(hasher),
            SqlValue::Int(v) => v.hash(hasher),
            SqlValue::Real(v) => v.to_bits().hash(hasher),
            SqlValue::Text(v) => v.hash(hasher),
            SqlValue::Blob(v) => v.hash(hasher),
            SqlValue::Bool(v) => i64::from(*v).hash(hasher),
        }
    }
}
