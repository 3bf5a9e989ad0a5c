//! Keeps a saga's step timings ([`crate::timing`]) in step with its moves: a pure function of
//! the state a move left and the commands it sent, which the engine runs before it writes the
//! state.

use crate::decide::{FailureKind, SagaDefinition, SagaState, Status};
use crate::timing::{StepKind, StepOutcome, StepTiming};

/// Records, at `now`, the move that left `state` as it is and sent `sent` (each `(step,
/// compensation)`): ends the entry that was waiting if the move ended it, and starts an entry
/// for each command sent, or counts one more attempt of an entry still waiting.
///
/// The entry that was waiting says what the saga was doing before the move, so a saga stored
/// before timings were kept simply starts its record at its next send.
pub(crate) fn record(definition: &SagaDefinition, state: &mut SagaState, sent: &[(usize, bool)], now: u64) {
    let (status, step, failure) = (state.status, state.step, state.failure.clone());
    for entry in state.timings.iter_mut().filter(|entry| entry.is_open()) {
        let still_waiting = match entry.kind {
            StepKind::Forward => status == Status::Running && step == entry.step,
            StepKind::Compensation => status == Status::Compensating && step == entry.step,
        };
        if still_waiting {
            continue;
        }
        let outcome = match (entry.kind, status) {
            (StepKind::Compensation, _) => StepOutcome::Compensated,
            (StepKind::Forward, Status::Running | Status::Completed) => StepOutcome::Succeeded,
            (StepKind::Forward, Status::Compensating | Status::Compensated) => match &failure {
                Some(failure) if failure.step == entry.step && failure.kind == FailureKind::TimedOut => {
                    StepOutcome::TimedOut
                }
                _ => StepOutcome::Failed,
            },
        };
        entry.end(outcome, now);
    }
    for &(step, compensation) in sent {
        let kind = if compensation { StepKind::Compensation } else { StepKind::Forward };
        let waiting = state.timings.iter_mut().find(|e| e.is_open() && e.step == step && e.kind == kind);
        match waiting {
            Some(entry) => entry.attempts = entry.attempts.saturating_add(1),
            None => state.timings.push(StepTiming {
                step,
                name: definition
                    .steps
                    .get(step)
                    .map_or_else(|| format!("step {step}"), |s| s.name.to_owned()),
                kind,
                started_at: now,
                ended_at: None,
                outcome: None,
                attempts: 1,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::decide::{Command, DataError, Decision, Input, Outcome, Step, TimerPurpose, decide, start};
    use StepKind::{Compensation, Forward};

    fn command(name: &str) -> Result<Command, DataError> {
        Ok(Command { target: "svc".into(), name: name.into(), payload: json!({}) })
    }

    /// Reserve (undo: release), authorise (undo: void), then capture, retried until it succeeds.
    fn definition() -> SagaDefinition {
        let step = |name, compensation: Option<crate::decide::BuildCommand>, retriable| Step {
            name,
            timeout: Duration::from_secs(5),
            action: |_| command("do"),
            compensation,
            retriable,
        };
        SagaDefinition {
            name: "place_order",
            steps: vec![
                step("reserve", Some(|_| command("release")), false),
                step("authorise", Some(|_| command("void")), false),
                step("capture", None, true),
            ],
            stuck_after: 3,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
        }
    }

    /// A saga run through `inputs`, each applied `at` its time, with its timings recorded as
    /// the engine records them.
    fn run(inputs: &[(u64, Input)]) -> SagaState {
        let definition = definition();
        let recorded = |decision: Decision, now| {
            let sent: Vec<(usize, bool)> = decision.send.iter().map(|(s, c, _)| (*s, *c)).collect();
            let mut state = decision.state;
            record(&definition, &mut state, &sent, now);
            state
        };
        let started = start(&definition, "s-1".into(), json!({})).expect("start");
        let mut state = recorded(started, 1_000);
        for (at, input) in inputs {
            state = recorded(decide(&definition, state, input.clone()).expect("decide"), *at);
        }
        state
    }

    fn reply(step: usize, compensation: bool, ok: bool) -> Input {
        let outcome = if ok {
            Outcome::Succeeded { data: None }
        } else {
            Outcome::Failed { reason: "declined".into() }
        };
        Input::Reply { step, compensation, outcome }
    }

    /// An entry as `(name, kind, started_at, ended_at, outcome, attempts)`.
    type Entry<'a> = (&'a str, StepKind, u64, Option<u64>, Option<StepOutcome>, u32);

    fn timeline(state: &SagaState) -> Vec<Entry<'_>> {
        state
            .timings
            .iter()
            .map(|t| (t.name.as_str(), t.kind, t.started_at, t.ended_at, t.outcome, t.attempts))
            .collect()
    }

    #[test]
    fn each_succeeding_step_is_timed_from_its_send_to_its_reply() {
        let state = run(&[(1_500, reply(0, false, true)), (4_000, reply(1, false, true))]);
        assert_eq!(
            timeline(&state),
            vec![
                ("reserve", Forward, 1_000, Some(1_500), Some(StepOutcome::Succeeded), 1),
                ("authorise", Forward, 1_500, Some(4_000), Some(StepOutcome::Succeeded), 1),
                ("capture", Forward, 4_000, None, None, 1),
            ]
        );
        assert_eq!(state.timings[1].duration(), Some(Duration::from_micros(2_500)));
        assert_eq!(state.timings[2].duration(), None, "still waiting");
        let done = run(&[
            (1_500, reply(0, false, true)),
            (4_000, reply(1, false, true)),
            (9_000, reply(2, false, true)),
        ]);
        assert_eq!(done.status, Status::Completed);
        assert!(done.timings.iter().all(|t| t.outcome == Some(StepOutcome::Succeeded)));
    }

    #[test]
    fn a_refused_step_ends_failed_and_the_steps_before_it_are_compensated_in_turn() {
        let state = run(&[
            (2_000, reply(0, false, true)),
            (3_000, reply(1, false, false)),
            (7_000, reply(0, true, true)),
        ]);
        assert_eq!(state.status, Status::Compensated);
        assert_eq!(
            timeline(&state),
            vec![
                ("reserve", Forward, 1_000, Some(2_000), Some(StepOutcome::Succeeded), 1),
                ("authorise", Forward, 2_000, Some(3_000), Some(StepOutcome::Failed), 1),
                ("reserve", Compensation, 3_000, Some(7_000), Some(StepOutcome::Compensated), 1),
            ]
        );
    }

    #[test]
    fn a_timed_out_step_ends_timed_out_and_is_compensated_itself() {
        let timeout =
            Input::Timer { step: 1, compensation: false, attempt: 0, purpose: TimerPurpose::Timeout };
        let state = run(&[(2_000, reply(0, false, true)), (7_000, timeout), (8_000, reply(1, true, true))]);
        assert_eq!(
            timeline(&state)[1..],
            [
                ("authorise", Forward, 2_000, Some(7_000), Some(StepOutcome::TimedOut), 1),
                ("authorise", Compensation, 7_000, Some(8_000), Some(StepOutcome::Compensated), 1),
                ("reserve", Compensation, 8_000, None, None, 1),
            ]
        );
    }

    #[test]
    fn retries_count_as_attempts_of_one_entry() {
        let retry =
            |attempt| Input::Timer { step: 0, compensation: true, attempt, purpose: TimerPurpose::Retry };
        let state = run(&[
            (2_000, reply(0, false, true)),
            (3_000, reply(1, false, false)),
            (3_500, reply(0, true, false)),
            (3_600, retry(1)),
            (4_000, reply(0, true, false)),
            (4_200, retry(2)),
            (5_000, reply(0, true, true)),
        ]);
        let undo = state.timings.last().expect("the compensation");
        assert_eq!((undo.kind, undo.attempts), (Compensation, 3));
        assert_eq!(
            (undo.started_at, undo.ended_at, undo.outcome),
            (3_000, Some(5_000), Some(StepOutcome::Compensated))
        );
        assert_eq!(state.timings.len(), 3, "no entry per attempt");
    }

    #[test]
    fn a_saga_stored_before_timings_loads_and_starts_its_record_at_its_next_send() {
        let stored = r#"{"id":"s-1","data":{},"status":"running","step":0,"attempt":0,
            "reason":null,"stuck":null,"pending_timer":null,"deadline":null}"#;
        let state: SagaState = serde_json::from_str(stored).expect("an old row loads");
        assert!(state.timings.is_empty());
        let definition = definition();
        let decision = decide(&definition, state, reply(0, false, true)).expect("decide");
        let mut state = decision.state;
        record(&definition, &mut state, &[(1, false)], 5_000);
        assert_eq!(timeline(&state), vec![("authorise", Forward, 5_000, None, None, 1)]);
    }
}
