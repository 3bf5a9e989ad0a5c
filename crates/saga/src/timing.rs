//! When each step of a saga ran and how it ended, kept in the saga's state: the engine writes
//! that state at every move anyway, so the timings cost no extra row. There is one entry per
//! step and direction (its command, its compensation), however often it was sent: a retried
//! step counts its attempts instead of growing the record, so a saga that retries for days
//! stays small. [`crate::timeline`] keeps them up to date.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Whether an entry is a step's command or its compensation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Forward,
    Compensation,
}

/// How a step's command or compensation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// The step's command succeeded.
    Succeeded,
    /// The participant refused the step's command.
    Failed,
    /// No answer to the step's command came in time.
    TimedOut,
    /// The step's compensation went through: what the step did is undone.
    Compensated,
}

/// One step's command (or compensation) as it ran: from its first send to its end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTiming {
    pub step: usize,
    /// The step's name in the saga's definition when it ran.
    pub name: String,
    pub kind: StepKind,
    /// Microseconds of the engine's clock.
    pub started_at: u64,
    /// `None` while it is still waiting for its reply (or retrying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<StepOutcome>,
    /// How often the command was sent: more than once for a retried step or compensation.
    pub attempts: u32,
}

impl StepTiming {
    /// How long it took, once it has ended.
    pub fn duration(&self) -> Option<Duration> {
        self.ended_at.map(|end| Duration::from_micros(end.saturating_sub(self.started_at)))
    }

    pub(crate) fn is_open(&self) -> bool {
        self.ended_at.is_none()
    }

    pub(crate) fn end(&mut self, outcome: StepOutcome, now: u64) {
        self.ended_at = Some(now.max(self.started_at));
        self.outcome = Some(outcome);
    }
}
