//! Saga orchestration. A saga is a list of steps; each step sends a command and waits for its
//! reply or its timeout. When a step fails or times out, the compensations of the steps before
//! it run in reverse (including the timed-out step itself, whose effect may have happened).
//! Compensations are retried with backoff until they succeed; a saga whose compensation keeps
//! failing is flagged stuck, with its reason, and keeps being retried.
//!
//! [`decide`] holds all of that as pure functions of (state, input). The [`SagaEngine`] loads
//! the state, applies a decision and writes the new state, the commands (outbox) and the
//! timers (durable timers) in the caller's unit of work, next to its inbox record.

mod decide;
mod engine;

pub use decide::{
    Command, Decision, Input, Outcome, SagaDefinition, SagaState, Status, Step, TimerPurpose, TimerRequest,
    decide, reply_input, start,
};
pub use engine::{EngineError, MIGRATIONS, SagaEngine, SagaObserver, SagaSummary, Transition};
