//! What a saga's move means to its orchestrator. The orchestrator (orders, say) keeps its own
//! record in step with the saga; it asks [`Transition::progress`] what happened instead of
//! inferring it from step numbers and reason strings.

use crate::decide::{FailureKind, SagaState, Status, StepFailure};

/// A saga's move, handed to its orchestrator so it can update its own records (an order's
/// status, say) in the same unit of work.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub before: SagaState,
    pub after: SagaState,
}

/// What a transition did, as its orchestrator needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Step `step` succeeded: its reply's data is in the saga's data, and the next step (if
    /// any) has been sent.
    StepSucceeded { step: usize },
    /// A step failed or timed out: the saga stopped going forward and undoes what it did.
    StepFailed(StepFailure),
    /// Anything else: a retry, a compensation's progress, a stuck flag.
    Other,
}

impl Transition {
    pub fn progress(&self) -> Progress {
        let (before, after) = (&self.before, &self.after);
        if before.status != Status::Running {
            return Progress::Other;
        }
        match after.status {
            Status::Running if after.step > before.step => Progress::StepSucceeded { step: before.step },
            Status::Completed => Progress::StepSucceeded { step: before.step },
            Status::Compensating | Status::Compensated => {
                // `decide` records the failure whenever a saga leaves running backwards; a
                // saga stored before failures were recorded cannot reach this point with one
                // missing (it was already compensating), so the refusal below is a fallback.
                let failure = after.failure.clone().unwrap_or_else(|| StepFailure {
                    step: before.step,
                    kind: FailureKind::Refused { reason: after.reason.clone().unwrap_or_default() },
                });
                Progress::StepFailed(failure)
            }
            Status::Running => Progress::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn state(status: Status, step: usize) -> SagaState {
        SagaState {
            id: "s-1".into(),
            data: json!({}),
            status,
            step,
            attempt: 0,
            reason: None,
            failure: None,
            stuck: None,
            pending_timer: None,
            deadline: None,
            timings: Vec::new(),
        }
    }

    fn progress(before: SagaState, after: SagaState) -> Progress {
        Transition { before, after }.progress()
    }

    #[test]
    fn a_step_succeeds_when_the_saga_moves_on_or_completes() {
        assert_eq!(
            progress(state(Status::Running, 0), state(Status::Running, 1)),
            Progress::StepSucceeded { step: 0 }
        );
        assert_eq!(
            progress(state(Status::Running, 3), state(Status::Completed, 3)),
            Progress::StepSucceeded { step: 3 }
        );
    }

    #[test]
    fn leaving_running_backwards_is_the_recorded_failure() {
        let failure = StepFailure { step: 1, kind: FailureKind::TimedOut };
        let after = SagaState { failure: Some(failure.clone()), ..state(Status::Compensating, 1) };
        assert_eq!(progress(state(Status::Running, 1), after), Progress::StepFailed(failure));
    }

    #[test]
    fn retries_and_compensations_are_no_progress_for_the_orchestrator() {
        let retried = SagaState { attempt: 1, ..state(Status::Running, 2) };
        assert_eq!(progress(state(Status::Running, 2), retried), Progress::Other);
        assert_eq!(progress(state(Status::Compensating, 1), state(Status::Compensating, 0)), Progress::Other);
        assert_eq!(progress(state(Status::Compensating, 0), state(Status::Compensated, 0)), Progress::Other);
    }
}
