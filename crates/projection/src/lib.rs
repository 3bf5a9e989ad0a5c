//! Read models fed from a store's events.
//!
//! A [`Projection`] turns events into rows of one table. The [`ProjectionRunner`] keeps it
//! current and rebuilds it:
//!
//! - **Live.** In [`Mode::Async`] the runner reads the store's events by global position (which
//!   is gap-safe, see docs/decisions/0001) and applies each batch in one unit of work together
//!   with the projection's checkpoint, so every event is applied exactly once. In
//!   [`Mode::Inline`] the service writes the table itself in the same unit as its events
//!   (read-your-writes), and the runner only rebuilds.
//! - **Rebuild.** On request the runner builds a shadow table from position zero while the live
//!   table keeps serving, then swaps it in with one unit of work. An async projection goes on
//!   from the shadow's position; an inline one has the events after that position applied
//!   again, so inline projections must be idempotent (applying an event twice changes nothing).
//! - **Lag** in events and seconds, and rebuild progress, are read from the store by
//!   [`status`], so an operator's command sees them without asking the process.

mod runner;
mod state;

pub use runner::{ProjectionRunner, RunnerOptions};
pub use state::{MIGRATIONS, ProjectionStatus, request_rebuild, status, table_digest};

use tessera_store::{RecordedEvent, StoreError, UnitOfWork};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("projection {projection}: event at position {position} cannot be applied: {reason}")]
    Apply { projection: &'static str, position: u64, reason: String },
    #[error("no projection named {0}")]
    Unknown(String),
}

pub type Result<T, E = ProjectionError> = std::result::Result<T, E>;

/// Who keeps the live table current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The runner, from the event log, a moment after the events commit.
    Async,
    /// The service, in the same unit of work as the events; the runner only rebuilds.
    Inline,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Async => "async",
            Mode::Inline => "inline",
        }
    }
}

/// A read model: one table, built from events.
pub trait Projection: Send + Sync + 'static {
    /// Its name, unique within the service's store.
    fn name(&self) -> &'static str;
    /// The table the service reads.
    fn table(&self) -> &'static str;
    /// Statements creating an empty table named `table` with the live table's shape. Its
    /// indexes must be named starting with `index_prefix`: a rebuilt table keeps its index
    /// names when renamed, so each rebuild hands out a fresh prefix (index names are unique per
    /// schema in PostgreSQL and per database in SQLite).
    fn create(&self, table: &str, index_prefix: &str) -> Vec<String>;
    /// The statements that apply `event` to `table` (none for events it does not care about).
    fn apply(&self, event: &RecordedEvent, table: &str, unit: &mut UnitOfWork) -> Result<()>;
}
