//! A simulated per-service store. A unit of work is a copy of the service's state plus the
//! outbox rows and the inbox record it adds; committing swaps it in whole, and a crash before
//! commit drops it whole, which is all "one local transaction" promises.

use std::collections::BTreeMap;

use crate::message::{Message, MessageId};

#[derive(Clone, Debug)]
pub struct OutboxRow {
    pub message: Message,
    pub sent: bool,
}

#[derive(Debug)]
pub struct Store<S> {
    pub state: S,
    /// Consumed message id → how many committed units consumed it. With the inbox's dedupe on
    /// it never exceeds one; the checker says so.
    pub inbox: BTreeMap<MessageId, u32>,
    pub outbox: Vec<OutboxRow>,
}

/// Work a committed unit hands to a service's background loop (the real services poll for
/// it: the saga timer loop, the payments authorisation worker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowUp {
    /// A durable timer falls due at this simulated time (microseconds).
    TimerDue(u64),
    /// A payment request was recorded for this order: the worker takes it to the network.
    Authorise(uuid::Uuid),
}

/// One local transaction in progress.
#[derive(Debug)]
pub struct Unit<S> {
    pub state: S,
    pub consumed: Option<MessageId>,
    pub sent: Vec<Message>,
    pub follow_ups: Vec<FollowUp>,
}

impl<S: Clone> Unit<S> {
    pub fn send(&mut self, message: Message) {
        self.sent.push(message);
    }
}

impl<S: Clone> Store<S> {
    pub fn new(state: S) -> Self {
        Self { state, inbox: BTreeMap::new(), outbox: Vec::new() }
    }

    pub fn begin(&self, consumed: Option<MessageId>) -> Unit<S> {
        Unit { state: self.state.clone(), consumed, sent: Vec::new(), follow_ups: Vec::new() }
    }

    pub fn has_consumed(&self, id: MessageId) -> bool {
        self.inbox.contains_key(&id)
    }

    /// State, outbox rows and inbox record, all at once; returns the unit's follow-ups.
    pub fn commit(&mut self, unit: Unit<S>) -> Vec<FollowUp> {
        self.state = unit.state;
        if let Some(id) = unit.consumed {
            *self.inbox.entry(id).or_default() += 1;
        }
        self.outbox.extend(unit.sent.into_iter().map(|message| OutboxRow { message, sent: false }));
        unit.follow_ups
    }

    pub fn unsent(&self) -> Vec<Message> {
        self.outbox.iter().filter(|row| !row.sent).map(|row| row.message.clone()).collect()
    }

    /// Marks the rows the relay published as sent (after the transport took them).
    pub fn mark_sent(&mut self, ids: &[MessageId]) {
        for row in &mut self.outbox {
            if ids.contains(&row.message.id) {
                row.sent = true;
            }
        }
    }
}
