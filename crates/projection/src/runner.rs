//! The loop that keeps one projection current and rebuilds it when asked.

use std::sync::Arc;
use std::time::Duration;

use tessera_store::{Statement, Store, StoreError};
use tokio::sync::watch;

use crate::state::{self, micros};
use crate::{Mode, Projection, Result};

/// How often a runner without the lease asks for it again.
const STANDBY_POLL: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// Events applied per unit of work.
    pub batch: usize,
    /// How often to look for new events when caught up, and for rebuild requests.
    pub poll: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self { batch: 500, poll: Duration::from_millis(50) }
    }
}

pub struct ProjectionRunner {
    store: Store,
    projection: Arc<dyn Projection>,
    mode: Mode,
    options: RunnerOptions,
}

impl std::fmt::Debug for ProjectionRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionRunner")
            .field("projection", &self.projection.name())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// What one step of work did.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    Busy,
    Idle,
}

impl ProjectionRunner {
    pub fn new(store: Store, projection: Arc<dyn Projection>, mode: Mode, options: RunnerOptions) -> Self {
        Self { store, projection, mode, options }
    }

    fn shadow(&self) -> String {
        format!("{}__rebuild", self.projection.table())
    }

    /// Runs until `stop`. Among replicas sharing a database, one runs it at a time.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let lease_name = format!("tessera.projection.{}", self.projection.name());
        while !*stop.borrow() {
            let lease = match self.store.try_lease(&lease_name).await {
                Ok(lease) => lease,
                Err(error) => {
                    tracing::warn!(projection = self.projection.name(), %error, "cannot ask for the projection lease");
                    None
                }
            };
            if let Some(lease) = lease
                && let Err(error) = self.lead(&lease, &mut stop).await
            {
                tracing::warn!(projection = self.projection.name(), %error, "projection failed; starting again");
            }
            // Standing by (or starting again after a failure): ask again at a calm pace, not at
            // the live poll rate, so standbys do not open a connection every few milliseconds.
            tokio::select! {
                () = tokio::time::sleep(self.options.poll.max(STANDBY_POLL)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn lead(&self, lease: &tessera_store::Lease, stop: &mut watch::Receiver<bool>) -> Result<()> {
        state::ensure(&self.store, self.projection.name(), self.mode).await?;
        while lease.is_held() && !*stop.borrow() {
            let mut progress = Progress::Idle;
            if self.mode == Mode::Async && self.step_live().await? == Progress::Busy {
                progress = Progress::Busy;
            }
            if self.step_rebuild().await? == Progress::Busy {
                progress = Progress::Busy;
            }
            if progress == Progress::Idle {
                tokio::select! {
                    () = tokio::time::sleep(self.options.poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        Ok(())
    }

    /// Applies up to a batch of new events to the live table, with the checkpoint, in one unit.
    /// The checkpoint update is guarded by its old value, so a second runner (say, after a
    /// lease was lost without this one noticing yet) cannot apply the same batch again.
    async fn step_live(&self) -> Result<Progress> {
        let checkpoints = state::read(&self.store, self.projection.name()).await?;
        let events = self.store.read_all(checkpoints.position, self.options.batch).await?;
        let Some(last) = events.last() else { return Ok(Progress::Idle) };
        let mut unit = self.store.begin();
        for event in &events {
            self.projection.apply(event, self.projection.table(), &mut unit)?;
        }
        unit.execute(
            Statement::new(
                "UPDATE tessera_projections SET position = $2, updated_at = $4 WHERE name = $1 AND position = $3",
            )
            .bind(self.projection.name())
            .bind(signed(last.position))
            .bind(signed(checkpoints.position))
            .bind(micros(self.store.clock().now()))
            .expect_rows(1, "projection_moved"),
        );
        commit_or_retry(unit).await
    }

    /// One step of a rebuild: start it, feed the shadow a batch, or swap it in.
    async fn step_rebuild(&self) -> Result<Progress> {
        let checkpoints = state::read(&self.store, self.projection.name()).await?;
        let Some(shadow_position) = checkpoints.shadow_position else {
            if checkpoints.rebuild_requested {
                self.start_rebuild().await?;
                return Ok(Progress::Busy);
            }
            return Ok(Progress::Idle);
        };
        let shadow = self.shadow();
        let events = self.store.read_all(shadow_position, self.options.batch).await?;
        if let Some(last) = events.last() {
            let mut unit = self.store.begin();
            for event in &events {
                self.projection.apply(event, &shadow, &mut unit)?;
            }
            unit.execute(
                Statement::new(
                    "UPDATE tessera_projections SET shadow_position = $2 WHERE name = $1 AND shadow_position = $3",
                )
                .bind(self.projection.name())
                .bind(signed(last.position))
                .bind(signed(shadow_position))
                .expect_rows(1, "projection_moved"),
            );
            return commit_or_retry(unit).await;
        }
        self.swap(shadow_position).await
    }

    async fn start_rebuild(&self) -> Result<()> {
        let shadow = self.shadow();
        let rebuilds = self
            .store
            .query(
                Statement::new("SELECT rebuilds FROM tessera_projections WHERE name = $1")
                    .bind(self.projection.name()),
            )
            .await?
            .first()
            .map(|row| row.int("rebuilds"))
            .transpose()?
            .unwrap_or(0);
        let index_prefix = format!("{}_g{}", self.projection.table(), rebuilds + 1);
        let mut unit = self.store.begin();
        unit.execute(Statement::new(format!("DROP TABLE IF EXISTS {shadow}")));
        for statement in self.projection.create(&shadow, &index_prefix) {
            unit.execute(Statement::new(statement));
        }
        unit.execute(
            Statement::new(
                "UPDATE tessera_projections SET shadow_position = 0, rebuild_requested = 0, updated_at = $2 WHERE name = $1",
            )
            .bind(self.projection.name())
            .bind(micros(self.store.clock().now())),
        );
        unit.commit().await?;
        tracing::info!(projection = self.projection.name(), "rebuild started");
        Ok(())
    }

    /// Replaces the live table by the shadow. In inline mode, events whose inline writes went
    /// to the old table after the shadow's position (committed before the swap, or in the same
    /// PostgreSQL batch as it) are applied again to the new table; inline projections are
    /// idempotent, so an event also written inline after the swap changes nothing twice.
    async fn swap(&self, shadow_position: u64) -> Result<Progress> {
        let table = self.projection.table();
        let mut unit = self.store.begin();
        unit.execute(
            Statement::new(
                "UPDATE tessera_projections
                 SET position = $2, shadow_position = NULL, rebuilds = rebuilds + 1, rebuilt_at = $3, updated_at = $3
                 WHERE name = $1 AND shadow_position = $2",
            )
            .bind(self.projection.name())
            .bind(signed(shadow_position))
            .bind(micros(self.store.clock().now()))
            .expect_rows(1, "projection_moved"),
        );
        unit.execute(Statement::new(format!("DROP TABLE {table}")));
        unit.execute(Statement::new(format!("ALTER TABLE {} RENAME TO {table}", self.shadow())));
        let progress = commit_or_retry(unit).await?;
        if self.mode == Mode::Inline {
            // Everything committed up to now is visible; later events are written inline into
            // the new table.
            let head = self.store.head_position().await?;
            let mut after = shadow_position;
            while after < head {
                let events = self.store.read_all(after, self.options.batch).await?;
                let Some(last) = events.last() else { break };
                let mut unit = self.store.begin();
                for event in events.iter().filter(|e| e.position <= head) {
                    self.projection.apply(event, table, &mut unit)?;
                }
                unit.commit().await?;
                after = last.position;
            }
        }
        tracing::info!(projection = self.projection.name(), position = shadow_position, "rebuild swapped in");
        Ok(progress)
    }
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A guarded unit that lost its race is not an error: the next step reads again.
async fn commit_or_retry(unit: tessera_store::UnitOfWork) -> Result<Progress> {
    match unit.commit().await {
        Ok(_) => Ok(Progress::Busy),
        Err(StoreError::Rejected { .. }) => Ok(Progress::Busy),
        Err(error) => Err(error.into()),
    }
}
