//! The per-service store: one database per service holding its event streams, outbox, inbox,
//! checkpoints, durable timers, snapshots, hash-chained audit trail and its own tables, all
//! written through a [`UnitOfWork`] that commits atomically.
//!
//! Two backends share one behaviour (checked by one conformance suite in `tests/`):
//! SQLite (one file, WAL, a single writer thread that group-commits concurrent units, each in
//! a savepoint) and PostgreSQL (a pool for reads, one writer connection that batches units).
//! Both keep global positions gap-safe; see `docs/decisions/0001-gap-safe-positions.md`.

mod activity;
mod aggregate;
mod audit_segments;
mod backend;
mod error;
mod facts;
mod migrate;
mod model;
pub mod personal_data;
mod postgres;
mod sqlite;
mod store;
mod unit;
mod version;

pub use activity::{StoreActivity, activity, units_by_store};
pub use aggregate::Aggregate;
pub use backend::{BackendKind, CommitReceipt, Lease, OutboxBacklog};
pub use error::{Result, StoreError};
pub use facts::{InboxFact, OutboxEnvelope, OutboxFact, inbox_facts, outbox_facts};
pub use migrate::{Migration, MigrationSet};
pub use model::{
    DueTimer, EventMetadata, NewEvent, OutboxMessage, RecordedEvent, Row, Snapshot, SqlValue, Statement,
    StreamSlice,
};
pub use postgres::{
    PostgresOptions, WRITE_LOCK as POSTGRES_WRITE_LOCK, create_database, database_url, drop_database,
};
pub use sqlite::{SqliteOptions, Synchronous};
pub use store::{Store, StoreConfig};
pub use tessera_audit::access as audit_access;
pub use tessera_audit::{
    Anchor, AuditRecord, ChainBreak, StoredAuditRecord, Verification, hash_from_hex, hash_to_hex,
};
pub use unit::UnitOfWork;
pub use version::ExpectedVersion;
