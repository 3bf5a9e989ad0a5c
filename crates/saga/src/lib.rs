//! Saga orchestration. A saga is a list of steps; each step sends a command and waits for its
//! reply or its timeout. When a step fails or times out, the compensations of the steps before
//! it run in reverse (including the timed-out step itself, whose effect may have happened).
//! Compensations are retried with backoff until they succeed; a saga whose compensation keeps
//! failing is flagged stuck, with its reason, and keeps being retried.
//!
//! [`decide`] holds all of that as pure functions of (state, input). The [`SagaEngine`] loads
//! the state, applies a decision and writes the new state, the commands (outbox) and the
//! timers (durable timers) in the caller's unit of work, next to its inbox record. With each
//! move it notes in the state when each step and compensation started and ended
//! ([`StepTiming`]); [`search`] finds sagas for operators, running or finished.

//!
//! The wire protocol between an orchestrator and its participants is [`SagaTag`] (on every
//! command) and [`SagaReply`] (the answer); what a move means to the orchestrator is
//! [`Transition::progress`].

mod decide;
mod engine;
mod reply;
pub mod search;
mod timeline;
mod timing;
mod transition;

pub use decide::{
    BuildCommand, Command, DataError, Decision, FailureKind, Input, Outcome, SagaDefinition, SagaState,
    Status, Step, StepFailure, TimerPurpose, TimerRequest, decide, read_data, reply_input, start,
};
pub use engine::{EngineError, MIGRATIONS, SagaEngine, SagaObserver, SagaSummary};
pub use reply::{SagaReply, SagaTag};
pub use search::{BadCursor, SagaCursor, SagaPage, SagaSearch, StateFilter, UnknownState};
pub use timing::{StepKind, StepOutcome, StepTiming};
pub use transition::{Progress, Transition};
