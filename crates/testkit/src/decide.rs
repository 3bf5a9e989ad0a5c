//! Domain tests as given / when / then, for any aggregate that decides and evolves:
//!
//! ```text
//! Order::given([placed(), reserved()])
//!     .when(OrderCommand::Reject { reason })
//!     .then_events([OrderEvent::Rejected { reason }]);
//! ```
//!
//! `given` folds the history with the aggregate's own `evolve` (the one the store loads it
//! with), `when` calls `decide` on the state it reached, and a `then_…` compares the outcome.
//! A mismatch panics with the whole case: the history, the command, what was expected and what
//! came instead, pointing at the test's line.

use std::fmt::Debug;

use tessera_store::Aggregate;

/// An aggregate that decides: `decide` turns a command into events or refuses it, and the
/// store's [`Aggregate::evolve`] applies the events. Implement it in the domain's test module
/// by calling the aggregate's own `decide`.
pub trait Decide: Aggregate<Event: Debug + PartialEq> + Debug {
    type Command: Debug;
    type Error: Debug + PartialEq;

    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// The aggregate after `events`, from its default state: the start of a test case.
    fn given(events: impl IntoIterator<Item = Self::Event>) -> Given<Self> {
        given(events)
    }
}

/// The aggregate after `events`, from its default state: the start of a test case.
pub fn given<A: Decide>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let history: Vec<A::Event> = events.into_iter().collect();
    let state = history.iter().fold(A::default(), |state, event| state.evolve(event));
    Given { history, state }
}

/// A history and the state it leads to.
#[derive(Debug)]
#[must_use = "a case says what happens next with `when`"]
pub struct Given<A: Decide> {
    history: Vec<A::Event>,
    state: A,
}

impl<A: Decide> Given<A> {
    /// Decides `command` in the state the history led to.
    pub fn when(self, command: A::Command) -> Then<A> {
        let case = format!("given {:#?}\nwhen {command:#?}", self.history);
        let outcome = self.state.decide(command);
        Then { case, state: self.state, outcome }
    }
}

/// The outcome of a decision, waiting to be compared.
#[derive(Debug)]
#[must_use = "a case is checked by `then_events` or `then_error`"]
pub struct Then<A: Decide> {
    case: String,
    state: A,
    outcome: Result<Vec<A::Event>, A::Error>,
}

impl<A: Decide> Then<A> {
    /// Asserts the command was accepted with exactly `expected`, in order, and returns the
    /// state after them, for assertions about it.
    #[track_caller]
    pub fn then_events(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.outcome {
            Ok(events) if events == expected => {
                events.iter().fold(self.state, |state, event| state.evolve(event))
            }
            outcome => panic!("{}\nexpected the events {expected:#?}\nbut got {outcome:#?}", self.case),
        }
    }

    /// Asserts the command was refused with `expected`.
    #[track_caller]
    pub fn then_error(self, expected: A::Error) {
        match self.outcome {
            Err(error) if error == expected => {}
            outcome => panic!("{}\nexpected the refusal {expected:#?}\nbut got {outcome:#?}", self.case),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    /// A counter that refuses to go below zero.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Counter(u32);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Counted {
        Up,
        Down,
    }

    #[derive(Debug)]
    enum Count {
        Up,
        Down,
    }

    #[derive(Debug, PartialEq)]
    struct AtZero;

    impl Aggregate for Counter {
        type Event = Counted;

        fn evolve(self, event: &Counted) -> Self {
            match event {
                Counted::Up => Counter(self.0 + 1),
                Counted::Down => Counter(self.0 - 1),
            }
        }
    }

    impl Decide for Counter {
        type Command = Count;
        type Error = AtZero;

        fn decide(&self, command: Count) -> Result<Vec<Counted>, AtZero> {
            match command {
                Count::Up => Ok(vec![Counted::Up]),
                Count::Down if self.0 == 0 => Err(AtZero),
                Count::Down => Ok(vec![Counted::Down]),
            }
        }
    }

    #[test]
    fn the_history_is_folded_the_decision_compared_and_the_state_after_returned() {
        let after = Counter::given([Counted::Up, Counted::Up]).when(Count::Down).then_events([Counted::Down]);
        assert_eq!(after, Counter(1));
        given::<Counter>([]).when(Count::Down).then_error(AtZero);
    }

    #[test]
    #[should_panic(expected = "expected the events [\n    Up,\n]\nbut got Err(\n    AtZero,\n)")]
    fn a_refusal_where_events_were_expected_fails_saying_both() {
        let _ = Counter::given([]).when(Count::Down).then_events([Counted::Up]);
    }

    #[test]
    #[should_panic(
        expected = "given [\n    Up,\n]\nwhen Down\nexpected the events [\n    Up,\n]\nbut got Ok("
    )]
    fn other_events_than_expected_fail_naming_the_history_and_the_command() {
        let _ = Counter::given([Counted::Up]).when(Count::Down).then_events([Counted::Up]);
    }

    #[test]
    #[should_panic(expected = "expected the refusal AtZero\nbut got Ok(")]
    fn an_acceptance_where_a_refusal_was_expected_fails() {
        Counter::given([]).when(Count::Up).then_error(AtZero);
    }
}
