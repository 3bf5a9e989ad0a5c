//! The engine: applies the pure decisions to a service's store. Saga state, the commands a
//! decision sends (outbox) and its timer (durable timers) are written in the caller's unit of
//! work, the one that also records the inbox, so a reply is applied exactly once and a crash
//! never leaves a command unsent or sent twice.
//!
//! Wire protocol: [`crate::SagaTag`] and [`crate::SagaReply`]. [`SagaEngine::reply`] builds a
//! reply for the service that handled the command.

use std::sync::Arc;

use serde_json::{Value, json};
use tessera_kernel::{Clock, Envelope, HybridClock, IdGen, MessageId, MessageKind, Timestamp};
use tessera_store::{Migration, MigrationSet, Row, Statement, Store, StoreError, UnitOfWork};

use crate::decide::{self, DataError, Decision, Input, SagaDefinition, SagaState, Status, TimerPurpose};
use crate::reply::{SagaReply, SagaTag};
use crate::timeline;
use crate::timing::StepTiming;
use crate::transition::Transition;

/// Include in the store of every service that orchestrates sagas.
pub const MIGRATIONS: MigrationSet = MigrationSet {
    scope: "tessera.saga",
    migrations: &[
        Migration {
            version: 1,
            name: "sagas",
            sqlite: "CREATE TABLE tessera_sagas (
                saga_id TEXT NOT NULL, saga TEXT NOT NULL, status TEXT NOT NULL, stuck TEXT,
                state TEXT NOT NULL, version BIGINT NOT NULL, started_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL, PRIMARY KEY (saga, saga_id));
            CREATE INDEX tessera_sagas_open ON tessera_sagas (saga, status);",
            postgres: "CREATE TABLE tessera_sagas (
                saga_id TEXT NOT NULL, saga TEXT NOT NULL, status TEXT NOT NULL, stuck TEXT,
                state TEXT NOT NULL, version BIGINT NOT NULL, started_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL, PRIMARY KEY (saga, saga_id));
            CREATE INDEX tessera_sagas_open ON tessera_sagas (saga, status);",
        },
        // Operators page through every saga newest first and look one up by id across types
        // (`crate::search`); without these, each page and each lookup reads the whole table.
        // Neither column changes after the insert, so the engine's updates never touch them.
        Migration {
            version: 2,
            name: "sagas_newest_and_by_id",
            sqlite: "CREATE INDEX tessera_sagas_newest ON tessera_sagas (started_at, saga_id, saga);
            CREATE INDEX tessera_sagas_id ON tessera_sagas (saga_id);",
            postgres: "CREATE INDEX tessera_sagas_newest ON tessera_sagas (started_at, saga_id, saga);
            CREATE INDEX tessera_sagas_id ON tessera_sagas (saga_id);",
        },
    ],
};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("saga {0} is stored in a form this build cannot read: {1}")]
    Corrupt(String, String),
    #[error(transparent)]
    Data(#[from] DataError),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Reacts to transitions that timers cause (replies return theirs to the caller directly).
#[async_trait::async_trait]
pub trait SagaObserver: Send + Sync {
    async fn on_transition(&self, transition: &Transition, unit: &mut UnitOfWork) -> Result<()>;
}

/// One saga as listed for operators.
#[derive(Clone, Debug, PartialEq)]
pub struct SagaSummary {
    pub id: String,
    pub saga: String,
    pub status: Status,
    pub step: usize,
    pub reason: Option<String>,
    pub stuck: Option<String>,
    pub started_at: Timestamp,
    pub updated_at: Timestamp,
    /// When each step and compensation ran, in the order they started.
    pub timings: Vec<StepTiming>,
}

pub struct SagaEngine {
    service: String,
    definition: Arc<SagaDefinition>,
    physical: Arc<dyn Clock>,
    clock: HybridClock,
    ids: Arc<dyn IdGen>,
}

impl std::fmt::Debug for SagaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaEngine")
            .field("service", &self.service)
            .field("saga", &self.definition.name)
            .finish()
    }
}

impl SagaEngine {
    /// `clock` must be the store's clock: timers fall due by it.
    pub fn new(
        service: impl Into<String>,
        definition: SagaDefinition,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGen>,
    ) -> Self {
        Self {
            service: service.into(),
            definition: Arc::new(definition),
            clock: HybridClock::new(clock.clone()),
            physical: clock,
            ids,
        }
    }

    fn timer_name(&self) -> String {
        format!("{}.SagaTimer", self.service)
    }

    /// Starts saga `id` with `data` in `unit`: the first command goes out when it commits.
    pub fn start(
        &self,
        unit: &mut UnitOfWork,
        id: &str,
        data: Value,
        cause: Option<&Envelope>,
    ) -> Result<SagaState> {
        let decision = decide::start(&self.definition, id.to_owned(), data)?;
        self.apply(unit, decision, None, cause)
    }

    /// Whether `message` is a reply to one of this saga's commands.
    pub fn claims(&self, message: &Envelope) -> bool {
        SagaTag::of(&message.payload).is_some_and(|tag| tag.name == self.definition.name)
    }

    /// Applies a reply to one of this saga's commands and returns the move it caused, if any.
    /// Stale and duplicate replies, and messages that are not this saga's replies, change
    /// nothing (`None`).
    pub async fn handle_reply(
        &self,
        message: &Envelope,
        unit: &mut UnitOfWork,
    ) -> Result<Option<Transition>> {
        let Some(SagaReply { saga, outcome }) = SagaReply::read(&message.payload) else { return Ok(None) };
        if saga.name != self.definition.name {
            return Ok(None);
        }
        let id = saga.id.as_str();
        let Some((state, version)) = self.load(unit, id).await? else {
            tracing::warn!(saga = self.definition.name, id, "reply for an unknown saga ignored");
            return Ok(None);
        };
        let before = state.clone();
        let input = decide::reply_input(
            &self.definition,
            &state,
            saga.step,
            saga.compensation,
            outcome,
            self.physical.now().as_micros(),
        );
        let decision = decide::decide(&self.definition, state, input)?;
        if !decision.changed {
            return Ok(None);
        }
        let after = self.apply(unit, decision, Some(version), Some(message))?;
        Ok(Some(Transition { before, after }))
    }

    /// Fires this saga's due timers, each in a unit of its own; returns how many it applied.
    /// A timer whose saga moved on is just marked fired.
    pub async fn fire_due_timers(
        &self,
        store: &Store,
        limit: usize,
        observer: Option<&dyn SagaObserver>,
    ) -> Result<usize> {
        let mut fired = 0;
        for timer in store.due_timers(limit).await? {
            let payload = &timer.envelope.payload;
            if timer.envelope.name != self.timer_name()
                || payload["saga"].as_str() != Some(self.definition.name)
            {
                continue;
            }
            let Some(id) = payload["saga_id"].as_str() else { continue };
            let input = Input::Timer {
                step: payload["step"].as_u64().and_then(|s| usize::try_from(s).ok()).unwrap_or(usize::MAX),
                compensation: payload["compensation"].as_bool().unwrap_or(false),
                attempt: payload["attempt"].as_u64().and_then(|a| u32::try_from(a).ok()).unwrap_or(u32::MAX),
                purpose: serde_json::from_value(payload["purpose"].clone()).unwrap_or(TimerPurpose::Timeout),
            };
            let mut unit = store.begin();
            unit.fire_timer(timer.id);
            if let Some((state, version)) = self.load(&unit, id).await? {
                let before = state.clone();
                let decision = match decide::decide(&self.definition, state, input) {
                    Ok(decision) => decision,
                    // One saga's data that no longer reads must not stall every timer due after
                    // it: this one stays pending (and is reported each pass), the others go on.
                    Err(error) => {
                        tracing::error!(saga = self.definition.name, id, %error, "a saga's timer cannot be decided");
                        continue;
                    }
                };
                if decision.changed {
                    let after = self.apply(&mut unit, decision, Some(version), Some(&timer.envelope))?;
                    if let Some(observer) = observer
                        && let Err(error) =
                            observer.on_transition(&Transition { before, after }, &mut unit).await
                    {
                        // This timer stays pending and is tried again; the others go on.
                        tracing::warn!(saga = self.definition.name, id, %error, "timer transition failed");
                        continue;
                    }
                }
            }
            match unit.commit().await {
                Ok(_) => fired += 1,
                // Another unit fired it, or the saga (or its orchestrator's record) moved on
                // meanwhile: it is due again next time round, or gone.
                Err(
                    StoreError::TimerNotPending(_)
                    | StoreError::Rejected { .. }
                    | StoreError::Conflict { .. },
                ) => {}
                Err(error) if error.is_transient() => return Err(error.into()),
                Err(error) => tracing::warn!(saga = self.definition.name, id, %error, "timer failed"),
            }
        }
        Ok(fired)
    }

    /// Builds the reply to a saga command, for the service that handled it; `None` when the
    /// command is not a saga's (plain commands get no reply).
    pub fn reply(
        command: &Envelope,
        ids: &dyn IdGen,
        at: tessera_kernel::HlcTimestamp,
        result: Result<Option<Value>, String>,
    ) -> Option<Envelope> {
        let reply = SagaReply::answering(&command.payload, result)?;
        let participant = command.target.clone().unwrap_or_default();
        let envelope = Envelope::new(
            ids,
            MessageKind::Reply,
            SagaReply::name(&participant, &command.name),
            participant,
            command.key.clone(),
            at,
            reply.to_payload(),
        )
        .to_target(command.source.clone())
        .caused_by(command);
        Some(envelope)
    }

    async fn load(&self, unit: &UnitOfWork, id: &str) -> Result<Option<(SagaState, i64)>> {
        let rows = unit
            .query(
                Statement::new("SELECT state, version FROM tessera_sagas WHERE saga_id = $1 AND saga = $2")
                    .bind(id)
                    .bind(self.definition.name),
            )
            .await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let state: SagaState = serde_json::from_str(row.text("state")?)
            .map_err(|e| EngineError::Corrupt(id.to_owned(), e.to_string()))?;
        Ok(Some((state, row.int("version")?)))
    }

    fn apply(
        &self,
        unit: &mut UnitOfWork,
        decision: Decision,
        version: Option<i64>,
        cause: Option<&Envelope>,
    ) -> Result<SagaState> {
        let Decision { mut state, send, timer, .. } = decision;
        let now = self.physical.now();
        let sent: Vec<(usize, bool)> =
            send.iter().map(|(step, compensation, _)| (*step, *compensation)).collect();
        timeline::record(&self.definition, &mut state, &sent, now.as_micros());
        state.deadline = None;
        if let Some(pending) = state.pending_timer.take()
            && let Ok(id) = pending.parse::<MessageId>()
        {
            unit.cancel_timer(id);
        }
        for (step, compensation, command) in send {
            let tag =
                SagaTag { name: self.definition.name.to_owned(), id: state.id.clone(), step, compensation };
            let payload = tag.attach(command.payload);
            let mut envelope = Envelope::new(
                &*self.ids,
                MessageKind::Command,
                command.name,
                self.service.clone(),
                state.id.clone(),
                self.clock.now(),
                payload,
            )
            .to_target(command.target);
            if let Some(cause) = cause {
                envelope = envelope.caused_by(cause);
            }
            unit.send(&envelope)?;
        }
        if let Some(timer) = timer {
            let payload = json!({
                "saga": self.definition.name, "saga_id": state.id, "step": timer.step,
                "compensation": timer.compensation, "attempt": timer.attempt, "purpose": timer.purpose,
            });
            let envelope = Envelope::new(
                &*self.ids,
                MessageKind::Command,
                self.timer_name(),
                self.service.clone(),
                state.id.clone(),
                self.clock.now(),
                payload,
            )
            .to_target(self.service.clone());
            let due = self.physical.now().saturating_add(timer.after);
            unit.schedule(&envelope, due)?;
            state.pending_timer = Some(envelope.id.to_string());
            state.deadline = timer.deadline(due.as_micros());
        }
        let json = serde_json::to_string(&state)
            .map_err(|e| EngineError::Corrupt(state.id.clone(), e.to_string()))?;
        let now = i64::try_from(now.as_micros()).unwrap_or(i64::MAX);
        let status = serde_json::to_value(state.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let statement = match version {
            None => Statement::new(
                "INSERT INTO tessera_sagas (saga_id, saga, status, stuck, state, version, started_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
            )
            .bind(state.id.as_str())
            .bind(self.definition.name)
            .bind(status)
            .bind(state.stuck.clone())
            .bind(json)
            .bind(now),
            Some(version) => Statement::new(
                "UPDATE tessera_sagas SET status = $3, stuck = $4, state = $5, version = version + 1, updated_at = $6
                 WHERE saga_id = $1 AND version = $2 AND saga = $7",
            )
            .bind(state.id.as_str())
            .bind(version)
            .bind(status)
            .bind(state.stuck.clone())
            .bind(json)
            .bind(now)
            .bind(self.definition.name)
            // Two inputs raced for this saga: the loser's unit rolls back and is retried.
            .expect_rows(1, "saga_changed_concurrently"),
        };
        unit.execute(statement);
        Ok(state)
    }

    /// Sagas of this kind, optionally only those with `status`, oldest first.
    pub async fn list(&self, store: &Store, status: Option<Status>) -> Result<Vec<SagaSummary>> {
        let mut sql =
            "SELECT saga_id, saga, state, started_at, updated_at FROM tessera_sagas WHERE saga = $1"
                .to_owned();
        let mut statement_status = None;
        if let Some(status) = status {
            sql.push_str(" AND status = $2");
            statement_status = serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned));
        }
        sql.push_str(" ORDER BY started_at, saga_id");
        let mut statement = Statement::new(sql).bind(self.definition.name);
        if let Some(status) = statement_status {
            statement = statement.bind(status);
        }
        store.query(statement).await?.iter().map(summary).collect()
    }

    /// The saga of this kind with id `saga_id`, if one was started.
    pub async fn find(&self, store: &Store, saga_id: &str) -> Result<Option<SagaSummary>> {
        let statement = Statement::new(
            "SELECT saga_id, saga, state, started_at, updated_at FROM tessera_sagas WHERE saga = $1 AND saga_id = $2",
        )
        .bind(self.definition.name)
        .bind(saga_id);
        store.query(statement).await?.first().map(summary).transpose()
    }

    /// Sagas whose compensation keeps failing: the ones an operator must look at.
    pub async fn stuck(&self, store: &Store) -> Result<Vec<SagaSummary>> {
        let statement = Statement::new(
            "SELECT saga_id, saga, state, started_at, updated_at FROM tessera_sagas
             WHERE saga = $1 AND stuck IS NOT NULL ORDER BY started_at, saga_id",
        )
        .bind(self.definition.name);
        store.query(statement).await?.iter().map(summary).collect()
    }
}

pub(crate) fn summary(row: &Row) -> Result<SagaSummary> {
    let id = row.text("saga_id")?.to_owned();
    let state: SagaState = serde_json::from_str(row.text("state")?)
        .map_err(|e| EngineError::Corrupt(id.clone(), e.to_string()))?;
    let micros = |column| row.int(column).map(|v| Timestamp::from_micros(v.max(0).unsigned_abs()));
    Ok(SagaSummary {
        id,
        saga: row.text("saga")?.to_owned(),
        status: state.status,
        step: state.step,
        reason: state.reason,
        stuck: state.stuck,
        started_at: micros("started_at")?,
        updated_at: micros("updated_at")?,
        timings: state.timings,
    })
}
