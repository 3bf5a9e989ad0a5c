//! The pure part: what a saga does next, given its state and what just happened.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::timing::StepTiming;

/// A command a step sends (or its compensation): for which service, which message, with
/// what payload. The engine adds the saga id and step to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub target: String,
    pub name: String,
    pub payload: Value,
}

impl Command {
    /// The command `name` to `target`, its payload the serialised `message` (a contract type).
    pub fn new(target: &str, name: &str, message: &impl Serialize) -> Result<Self, DataError> {
        let payload = serde_json::to_value(message).map_err(|e| DataError(e.to_string()))?;
        Ok(Self { target: target.to_owned(), name: name.to_owned(), payload })
    }
}

/// A saga's data does not have the shape its definition expects (a stored saga edited by
/// hand, or a participant's reply with the wrong data): the saga cannot build its command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the saga's data does not fit its type: {0}")]
pub struct DataError(pub String);

/// Reads a saga's data (stored as JSON) as the type its definition gives it.
pub fn read_data<D: DeserializeOwned>(data: &Value) -> Result<D, DataError> {
    D::deserialize(data).map_err(|e| DataError(e.to_string()))
}

/// How a step failed: its participant refused (with the participant's reason code), or no
/// answer came in time, so nobody knows whether it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureKind {
    Refused { reason: String },
    TimedOut,
}

/// The step whose failure turned a saga back, and how it failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    pub step: usize,
    #[serde(flatten)]
    pub kind: FailureKind,
}

/// Builds a command from a saga's data; an error when the data does not fit its type.
pub type BuildCommand = fn(&Value) -> Result<Command, DataError>;

pub struct Step {
    pub name: &'static str,
    /// How long to wait for the reply to the step's command (and to its compensation).
    pub timeout: Duration,
    /// Builds the step's command from the saga's data.
    pub action: BuildCommand,
    /// Builds the command that undoes the step; `None` for a step with nothing to undo. It
    /// must be safe to run when the step's command had no effect (after a timeout, nobody
    /// knows whether it had).
    pub compensation: Option<BuildCommand>,
    /// A step past the point of no return (after the order is confirmed, say): when it fails
    /// or times out, it is sent again with backoff, never compensated, and the saga is flagged
    /// stuck if it keeps failing.
    pub retriable: bool,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct SagaDefinition {
    pub name: &'static str,
    pub steps: Vec<Step>,
    /// Failed compensation attempts after which the saga is flagged stuck (it keeps retrying).
    pub stuck_after: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for the reply to `step`'s command.
    Running,
    /// Undoing: waiting for the reply to `step`'s compensation.
    Compensating,
    /// Every step succeeded.
    Completed,
    /// A step failed and everything before it was undone.
    Compensated,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Compensated)
    }
}

/// A saga instance as persisted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SagaState {
    pub id: String,
    pub data: Value,
    pub status: Status,
    pub step: usize,
    /// Failed attempts of the current compensation.
    pub attempt: u32,
    /// Why the saga is compensating or compensated, for people (`failure` says it for code).
    pub reason: Option<String>,
    /// The step that failed and how, once one has. Absent from sagas stored before it was
    /// recorded; those had already told their orchestrator about the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<StepFailure>,
    /// Set while a compensation keeps failing: the saga cannot make progress on its own.
    pub stuck: Option<String>,
    /// The engine's handle on the pending timer, to cancel it when the saga moves on.
    #[serde(default)]
    pub pending_timer: Option<String>,
    /// When the running step's timeout falls due (microseconds of the engine's clock). A reply
    /// that comes later counts as the timeout, however late the timer itself fires.
    #[serde(default)]
    pub deadline: Option<u64>,
    /// When each step and compensation ran and how it ended (see [`crate::timeline`]). Empty in
    /// sagas stored before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timings: Vec<StepTiming>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The step (or compensation) happened; `data` is merged into the saga's data.
    Succeeded {
        data: Option<Value>,
    },
    Failed {
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerPurpose {
    /// No reply came in time.
    Timeout,
    /// Time to send a failed compensation again.
    Retry,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    Reply { step: usize, compensation: bool, outcome: Outcome },
    Timer { step: usize, compensation: bool, attempt: u32, purpose: TimerPurpose },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerRequest {
    pub step: usize,
    pub compensation: bool,
    pub attempt: u32,
    pub purpose: TimerPurpose,
    pub after: Duration,
}

impl TimerRequest {
    /// The deadline this timer sets on the saga when it falls due at `due`: only a running
    /// step's timeout has one (a reply after it counts as the timeout, see [`reply_input`]).
    pub fn deadline(&self, due: u64) -> Option<u64> {
        (self.purpose == TimerPurpose::Timeout && !self.compensation).then_some(due)
    }
}

/// What to do: the new state, the commands to send (tagged with step and whether they
/// compensate), and the timer that replaces any pending one.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub state: SagaState,
    pub send: Vec<(usize, bool, Command)>,
    pub timer: Option<TimerRequest>,
    /// False when the input was stale or a duplicate: nothing changed.
    pub changed: bool,
}

impl Decision {
    fn unchanged(state: SagaState) -> Self {
        Self { state, send: Vec::new(), timer: None, changed: false }
    }
}

/// A new saga: send the first step's command and wait for it.
pub fn start(definition: &SagaDefinition, id: String, data: Value) -> Result<Decision, DataError> {
    let state = SagaState {
        id,
        data,
        status: Status::Running,
        step: 0,
        attempt: 0,
        reason: None,
        failure: None,
        stuck: None,
        pending_timer: None,
        deadline: None,
        timings: Vec::new(),
    };
    if definition.steps.is_empty() {
        return Ok(Decision {
            state: SagaState { status: Status::Completed, ..state },
            send: Vec::new(),
            timer: None,
            changed: true,
        });
    }
    run_step(definition, state, 0)
}

/// The input a reply stands for at `now`. A reply to the running step that comes after that
/// step's deadline stands for its timeout, when the step is not retriable: the timer may fire
/// late on a busy service, and until it does a late success (a card network that took too
/// long) would otherwise still move the saga forward. The step is undone instead, exactly as
/// if the timer had fired first. A retriable step's late success is kept: retrying it would
/// only ask for the same effect again.
pub fn reply_input(
    definition: &SagaDefinition,
    state: &SagaState,
    step: usize,
    compensation: bool,
    outcome: Outcome,
    now: u64,
) -> Input {
    let retriable = definition.steps.get(step).is_none_or(|s| s.retriable);
    let late = state.deadline.is_some_and(|deadline| now >= deadline);
    if state.status == Status::Running && !compensation && step == state.step && !retriable && late {
        return Input::Timer {
            step,
            compensation: false,
            attempt: state.attempt,
            purpose: TimerPurpose::Timeout,
        };
    }
    Input::Reply { step, compensation, outcome }
}

/// The next move of `state` after `input`. An error only when the saga's data cannot build
/// the command to send next.
pub fn decide(definition: &SagaDefinition, state: SagaState, input: Input) -> Result<Decision, DataError> {
    let retriable = definition.steps.get(state.step).is_some_and(|step| step.retriable);
    match (state.status, input) {
        (
            Status::Running,
            Input::Reply { step, compensation: false, outcome: Outcome::Failed { reason } },
        ) if step == state.step && retriable => Ok(retry_later(definition, state, reason)),
        (Status::Running, Input::Timer { step, compensation: false, attempt, purpose })
            if step == state.step && attempt == state.attempt && retriable =>
        {
            match purpose {
                TimerPurpose::Timeout => Ok(retry_later(definition, state, "no reply in time".to_owned())),
                TimerPurpose::Retry => resend_step(definition, state),
            }
        }
        (Status::Running, Input::Reply { step, compensation: false, outcome }) if step == state.step => {
            match outcome {
                Outcome::Succeeded { data } => {
                    let mut state = SagaState { stuck: None, ..state };
                    merge(&mut state.data, data);
                    if step + 1 == definition.steps.len() {
                        let state = SagaState { status: Status::Completed, ..state };
                        Ok(Decision { state, send: Vec::new(), timer: None, changed: true })
                    } else {
                        run_step(definition, state, step + 1)
                    }
                }
                // The step's command failed, so it had no effect: undo the ones before it.
                Outcome::Failed { reason } => {
                    let failure = StepFailure { step, kind: FailureKind::Refused { reason: reason.clone() } };
                    let state = SagaState { failure: Some(failure), ..state };
                    compensate_from(definition, state, step.checked_sub(1), reason)
                }
            }
        }
        (Status::Running, Input::Timer { step, compensation: false, purpose: TimerPurpose::Timeout, .. })
            if step == state.step && !retriable =>
        {
            // Nobody knows whether it happened: undo it too.
            let reason = format!("step {} timed out", definition.steps[step].name);
            let state =
                SagaState { failure: Some(StepFailure { step, kind: FailureKind::TimedOut }), ..state };
            compensate_from(definition, state, Some(step), reason)
        }
        (Status::Compensating, Input::Reply { step, compensation: true, outcome }) if step == state.step => {
            match outcome {
                Outcome::Succeeded { .. } => {
                    let reason = state.reason.clone().unwrap_or_default();
                    let state = SagaState { stuck: None, ..state };
                    compensate_from(definition, state, step.checked_sub(1), reason)
                }
                Outcome::Failed { reason } => Ok(retry_later(definition, state, reason)),
            }
        }
        (Status::Compensating, Input::Timer { step, compensation: true, attempt, purpose })
            if step == state.step && attempt == state.attempt =>
        {
            match purpose {
                TimerPurpose::Timeout => Ok(retry_later(definition, state, "no reply in time".to_owned())),
                TimerPurpose::Retry => send_compensation(definition, state),
            }
        }
        // A late, duplicate or stale input: the saga has moved on.
        (_, _) => Ok(Decision::unchanged(state)),
    }
}

fn merge(data: &mut Value, update: Option<Value>) {
    match (data, update) {
        (Value::Object(data), Some(Value::Object(update))) => data.extend(update),
        (data, Some(update)) if !update.is_null() => *data = update,
        _ => {}
    }
}

fn run_step(definition: &SagaDefinition, state: SagaState, step: usize) -> Result<Decision, DataError> {
    resend_step(definition, SagaState { status: Status::Running, step, attempt: 0, ..state })
}

/// Sends the current step's command (again, for a retriable step's retry).
fn resend_step(definition: &SagaDefinition, state: SagaState) -> Result<Decision, DataError> {
    let step = state.step;
    let definition_step = &definition.steps[step];
    let command = (definition_step.action)(&state.data)?;
    let timer = TimerRequest {
        step,
        compensation: false,
        attempt: state.attempt,
        purpose: TimerPurpose::Timeout,
        after: definition_step.timeout,
    };
    Ok(Decision { state, send: vec![(step, false, command)], timer: Some(timer), changed: true })
}

/// Compensates the highest step at or below `from` that has a compensation.
fn compensate_from(
    definition: &SagaDefinition,
    state: SagaState,
    from: Option<usize>,
    reason: String,
) -> Result<Decision, DataError> {
    let next = from.and_then(|from| (0..=from).rev().find(|&i| definition.steps[i].compensation.is_some()));
    match next {
        None => {
            let state = SagaState { status: Status::Compensated, reason: Some(reason), stuck: None, ..state };
            Ok(Decision { state, send: Vec::new(), timer: None, changed: true })
        }
        Some(step) => {
            let state =
                SagaState { status: Status::Compensating, step, attempt: 0, reason: Some(reason), ..state };
            send_compensation(definition, state)
        }
    }
}

fn send_compensation(definition: &SagaDefinition, state: SagaState) -> Result<Decision, DataError> {
    let step = &definition.steps[state.step];
    let Some(compensation) = step.compensation else {
        // compensate_from only lands on steps with a compensation.
        return Ok(Decision::unchanged(state));
    };
    let command = compensation(&state.data)?;
    let timer = TimerRequest {
        step: state.step,
        compensation: true,
        attempt: state.attempt,
        purpose: TimerPurpose::Timeout,
        after: step.timeout,
    };
    Ok(Decision { send: vec![(state.step, true, command)], timer: Some(timer), state, changed: true })
}

/// A compensation or a retriable step failed: try again after a backoff, and flag the saga
/// stuck past the limit.
fn retry_later(definition: &SagaDefinition, mut state: SagaState, reason: String) -> Decision {
    state.attempt += 1;
    let compensation = state.status == Status::Compensating;
    if state.attempt >= definition.stuck_after {
        let what = if compensation { "compensation of step" } else { "step" };
        state.stuck = Some(format!(
            "{what} {} failed {} times; last: {reason}",
            definition.steps[state.step].name, state.attempt
        ));
    }
    let exponent = state.attempt.saturating_sub(1).min(16);
    let after = definition.retry_base.saturating_mul(2u32.saturating_pow(exponent)).min(definition.retry_max);
    let timer = TimerRequest {
        step: state.step,
        compensation,
        attempt: state.attempt,
        purpose: TimerPurpose::Retry,
        after,
    };
    Decision { state, send: Vec::new(), timer: Some(timer), changed: true }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn command(name: &str) -> Result<Command, DataError> {
        Ok(Command { target: "svc".into(), name: name.into(), payload: json!({}) })
    }

    // The definitions below always build their commands: every decision is one.
    fn start(definition: &SagaDefinition, id: String, data: Value) -> Decision {
        super::start(definition, id, data).expect("a decision")
    }

    fn decide(definition: &SagaDefinition, state: SagaState, input: Input) -> Decision {
        super::decide(definition, state, input).expect("a decision")
    }

    /// Place order: reserve stock (undo: release), authorise payment (undo: void), confirm.
    fn place_order() -> SagaDefinition {
        SagaDefinition {
            name: "place_order",
            steps: vec![
                Step {
                    name: "reserve",
                    timeout: Duration::from_secs(5),
                    action: |_| command("inventory.ReserveStock"),
                    compensation: Some(|_| command("inventory.ReleaseStock")),
                    retriable: false,
                },
                Step {
                    name: "authorise",
                    timeout: Duration::from_secs(5),
                    action: |_| command("payments.AuthorisePayment"),
                    compensation: Some(|_| command("payments.VoidPayment")),
                    retriable: false,
                },
                Step {
                    name: "capture",
                    timeout: Duration::from_secs(5),
                    action: |_| command("payments.Capture"),
                    compensation: None,
                    retriable: true,
                },
            ],
            stuck_after: 2,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
        }
    }

    fn ok(step: usize) -> Input {
        Input::Reply { step, compensation: false, outcome: Outcome::Succeeded { data: None } }
    }

    fn failed(step: usize) -> Input {
        Input::Reply { step, compensation: false, outcome: Outcome::Failed { reason: "declined".into() } }
    }

    fn undone(step: usize) -> Input {
        Input::Reply { step, compensation: true, outcome: Outcome::Succeeded { data: None } }
    }

    fn undo_failed(step: usize) -> Input {
        Input::Reply { step, compensation: true, outcome: Outcome::Failed { reason: "network".into() } }
    }

    fn sent(decision: &Decision) -> Vec<&str> {
        decision.send.iter().map(|(_, _, c)| c.name.as_str()).collect()
    }

    /// given the inputs so far, when `input`, then the decision.
    fn given(inputs: &[Input]) -> SagaState {
        let definition = place_order();
        let mut state = start(&definition, "s-1".into(), json!({"order": 1})).state;
        for input in inputs {
            state = decide(&definition, state, input.clone()).state;
        }
        state
    }

    #[test]
    fn a_success_after_the_deadline_of_a_step_that_cannot_be_retried_undoes_it() {
        let definition = place_order();
        let state = SagaState { deadline: Some(5_000), ..given(&[ok(0)]) };
        let success = || Outcome::Succeeded { data: None };
        let on_time = reply_input(&definition, &state, 1, false, success(), 4_999);
        assert_eq!(on_time, ok(1));
        let late = reply_input(&definition, &state, 1, false, success(), 5_000);
        let decision = decide(&definition, state.clone(), late);
        assert_eq!(sent(&decision), vec!["payments.VoidPayment"], "the late authorisation is voided");
        assert_eq!(decision.state.reason.as_deref(), Some("step authorise timed out"));
        // Not a reply to the running step, or a compensation's: left as it is.
        assert_eq!(reply_input(&definition, &state, 0, false, success(), 9_000), ok(0));
        assert_eq!(reply_input(&definition, &state, 1, true, success(), 9_000), undone(1));
    }

    #[test]
    fn a_late_success_of_a_retriable_step_still_counts() {
        let definition = place_order();
        let state = SagaState { deadline: Some(5_000), ..given(&[ok(0), ok(1)]) };
        let late = reply_input(&definition, &state, 2, false, Outcome::Succeeded { data: None }, 9_000);
        assert_eq!(late, ok(2));
        assert_eq!(decide(&definition, state, late).state.status, Status::Completed);
    }

    #[test]
    fn start_sends_the_first_command_and_waits_for_it() {
        let decision = start(&place_order(), "s-1".into(), json!({}));
        assert_eq!(sent(&decision), vec!["inventory.ReserveStock"]);
        assert_eq!(decision.timer.as_ref().map(|t| (t.step, t.purpose)), Some((0, TimerPurpose::Timeout)));
    }

    #[test]
    fn every_step_succeeding_completes_the_saga_and_merges_reply_data() {
        let definition = place_order();
        let state = given(&[ok(0)]);
        let decision = decide(
            &definition,
            state,
            Input::Reply {
                step: 1,
                compensation: false,
                outcome: Outcome::Succeeded { data: Some(json!({"auth": "A1"})) },
            },
        );
        assert_eq!(sent(&decision), vec!["payments.Capture"]);
        assert_eq!(decision.state.data, json!({"order": 1, "auth": "A1"}));
        let done = decide(&definition, decision.state, ok(2));
        assert_eq!(done.state.status, Status::Completed);
        assert!(done.send.is_empty() && done.timer.is_none());
    }

    #[test]
    fn a_declined_payment_releases_the_stock_and_ends_compensated() {
        let definition = place_order();
        let decision = decide(&definition, given(&[ok(0)]), failed(1));
        assert_eq!(sent(&decision), vec!["inventory.ReleaseStock"], "the failed step itself is not undone");
        assert_eq!(decision.state.status, Status::Compensating);
        let done = decide(&definition, decision.state, undone(0));
        assert_eq!(done.state.status, Status::Compensated);
        assert_eq!(done.state.reason.as_deref(), Some("declined"));
    }

    #[test]
    fn a_timed_out_step_is_undone_too_in_reverse_order() {
        let definition = place_order();
        let timeout =
            Input::Timer { step: 1, compensation: false, attempt: 0, purpose: TimerPurpose::Timeout };
        let decision = decide(&definition, given(&[ok(0)]), timeout);
        assert_eq!(sent(&decision), vec!["payments.VoidPayment"]);
        let next = decide(&definition, decision.state, undone(1));
        assert_eq!(sent(&next), vec!["inventory.ReleaseStock"]);
        let done = decide(&definition, next.state, undone(0));
        assert_eq!(done.state.status, Status::Compensated);
        assert_eq!(done.state.reason.as_deref(), Some("step authorise timed out"));
    }

    #[test]
    fn a_failed_step_records_whether_it_was_refused_or_timed_out_until_the_end() {
        let definition = place_order();
        let refused = decide(&definition, given(&[ok(0)]), failed(1));
        let declined = FailureKind::Refused { reason: "declined".into() };
        assert_eq!(refused.state.failure, Some(StepFailure { step: 1, kind: declined }));
        let timeout =
            Input::Timer { step: 0, compensation: false, attempt: 0, purpose: TimerPurpose::Timeout };
        let timed_out = decide(&definition, given(&[]), timeout);
        assert_eq!(timed_out.state.failure, Some(StepFailure { step: 0, kind: FailureKind::TimedOut }));
        let done = decide(&definition, timed_out.state, undone(0));
        assert_eq!(done.state.status, Status::Compensated);
        assert_eq!(done.state.failure, Some(StepFailure { step: 0, kind: FailureKind::TimedOut }));
    }

    #[test]
    fn a_saga_stored_before_failures_were_recorded_loads_and_finishes() {
        // As the engine stored it before `failure` existed.
        let stored = r#"{"id":"s-1","data":{"order":1},"status":"compensating","step":0,"attempt":0,
            "reason":"step authorise timed out","stuck":null,"pending_timer":null,"deadline":null}"#;
        let state: SagaState = serde_json::from_str(stored).expect("an old row loads");
        assert_eq!(state.failure, None);
        let done = decide(&place_order(), state, undone(0));
        assert_eq!(done.state.status, Status::Compensated);
        assert_eq!(done.state.reason.as_deref(), Some("step authorise timed out"));
        let written = serde_json::to_value(&done.state).expect("json");
        assert!(written.get("failure").is_none(), "no failure is made up for it");
    }

    #[test]
    fn a_failing_first_step_needs_no_compensation() {
        let decision = decide(&place_order(), given(&[]), failed(0));
        assert_eq!(decision.state.status, Status::Compensated);
        assert!(decision.send.is_empty());
    }

    #[test]
    fn a_failing_compensation_is_retried_with_backoff_and_flagged_stuck() {
        let definition = place_order();
        let mut state = decide(&definition, given(&[ok(0)]), failed(1)).state;
        let mut waits = Vec::new();
        for attempt in 1..=2 {
            let decision = decide(&definition, state, undo_failed(0));
            let timer = decision.timer.clone().expect("retry timer");
            assert_eq!((timer.purpose, timer.attempt), (TimerPurpose::Retry, attempt));
            waits.push(timer.after);
            // The retry timer resends the compensation.
            let retry = Input::Timer { step: 0, compensation: true, attempt, purpose: TimerPurpose::Retry };
            let resent = decide(&definition, decision.state, retry);
            assert_eq!(sent(&resent), vec!["inventory.ReleaseStock"]);
            state = resent.state;
        }
        assert_eq!(waits, vec![Duration::from_millis(100), Duration::from_millis(200)]);
        assert!(state.stuck.as_deref().is_some_and(|s| s.contains("failed 2 times")), "{:?}", state.stuck);
        let recovered = decide(&definition, state, undone(0));
        assert_eq!(recovered.state.status, Status::Compensated);
        assert_eq!(recovered.state.stuck, None, "no longer stuck once it went through");
    }

    #[test]
    fn a_step_past_the_point_of_no_return_is_retried_not_compensated() {
        let definition = place_order();
        let state = given(&[ok(0), ok(1)]);
        let timeout =
            Input::Timer { step: 2, compensation: false, attempt: 0, purpose: TimerPurpose::Timeout };
        let decision = decide(&definition, state, timeout);
        assert_eq!(decision.state.status, Status::Running, "never compensated");
        assert!(decision.send.is_empty());
        assert_eq!(decision.timer.as_ref().map(|t| (t.purpose, t.attempt)), Some((TimerPurpose::Retry, 1)));
        let retry = Input::Timer { step: 2, compensation: false, attempt: 1, purpose: TimerPurpose::Retry };
        let resent = decide(&definition, decision.state, retry);
        assert_eq!(sent(&resent), vec!["payments.Capture"]);
        let failed_again = decide(&definition, resent.state, failed(2));
        assert!(
            failed_again.state.stuck.as_deref().is_some_and(|s| s.starts_with("step capture failed 2 times")),
            "{:?}",
            failed_again.state.stuck
        );
        let retry = Input::Timer { step: 2, compensation: false, attempt: 2, purpose: TimerPurpose::Retry };
        let resent = decide(&definition, failed_again.state, retry);
        let done = decide(&definition, resent.state, ok(2));
        assert_eq!((done.state.status, done.state.stuck), (Status::Completed, None));
    }

    #[test]
    fn late_and_duplicate_inputs_change_nothing() {
        let definition = place_order();
        let state = given(&[ok(0)]);
        for stale in [
            ok(0),
            failed(0),
            undone(0),
            Input::Timer { step: 0, compensation: false, attempt: 0, purpose: TimerPurpose::Timeout },
        ] {
            let decision = decide(&definition, state.clone(), stale);
            assert!(!decision.changed);
            assert_eq!(decision.state, state);
        }
        let done = given(&[ok(0), ok(1), ok(2)]);
        assert_eq!(done.status, Status::Completed);
        assert!(!decide(&definition, done, failed(2)).changed, "a completed saga stays completed");
    }

    proptest! {
        /// Whatever the outcomes, a saga ends completed (every step succeeded, nothing undone)
        /// or compensated, having undone exactly the compensable steps it started before the
        /// failure (and the failed step if it timed out), in reverse order.
        #[test]
        fn compensations_undo_exactly_what_was_done_in_reverse(
            outcomes in prop::collection::vec(0u8..3, 3),
            compensation_failures in prop::collection::vec(0u32..4, 3),
        ) {
            let definition = place_order();
            let mut decision = start(&definition, "p".into(), json!({}));
            let mut compensations = Vec::new();
            let mut failed_at = None;
            for _ in 0..64 {
                let state = decision.state.clone();
                if state.status.is_terminal() {
                    break;
                }
                let input = match state.status {
                    // A retriable step fails once, is retried, then succeeds.
                    Status::Running if definition.steps[state.step].retriable => match decision.timer.as_ref() {
                        Some(t) if t.purpose == TimerPurpose::Retry => {
                            Input::Timer { step: state.step, compensation: false, attempt: state.attempt, purpose: TimerPurpose::Retry }
                        }
                        _ if state.attempt == 0 && outcomes[state.step] != 0 => failed(state.step),
                        _ => ok(state.step),
                    },
                    Status::Running => match outcomes[state.step] {
                        0 => ok(state.step),
                        1 => { failed_at = Some((state.step, false)); failed(state.step) }
                        _ => {
                            failed_at = Some((state.step, true));
                            Input::Timer { step: state.step, compensation: false, attempt: 0, purpose: TimerPurpose::Timeout }
                        }
                    },
                    _ => {
                        if state.attempt < compensation_failures[state.step] {
                            if decision.timer.as_ref().is_some_and(|t| t.purpose == TimerPurpose::Retry) {
                                Input::Timer { step: state.step, compensation: true, attempt: state.attempt, purpose: TimerPurpose::Retry }
                            } else {
                                undo_failed(state.step)
                            }
                        } else {
                            undone(state.step)
                        }
                    }
                };
                decision = decide(&definition, state, input);
                for (step, compensation, _) in &decision.send {
                    if *compensation && compensations.last().is_none_or(|last| last != step) {
                        compensations.push(*step);
                    }
                }
            }
            prop_assert!(decision.state.status.is_terminal());
            let expected: Vec<usize> = match failed_at {
                None => Vec::new(),
                Some((step, timed_out)) => {
                    let top = if timed_out { step as isize } else { step as isize - 1 };
                    (0..=top).rev().map(|i| i as usize).filter(|&i| definition.steps[i].compensation.is_some()).collect()
                }
            };
            prop_assert_eq!(decision.state.status == Status::Completed, failed_at.is_none());
            prop_assert_eq!(compensations, expected);
        }
    }
}
