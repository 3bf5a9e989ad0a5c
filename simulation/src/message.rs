//! The simulated envelope: the fields the pipeline and the handlers look at (the real
//! `Envelope` carries a hybrid clock, trace context and more that nothing here depends on).

use std::fmt;

use serde_json::Value;

/// The dedupe key. Ids come from one counter per run, so they are deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m{}", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Orders,
    Inventory,
    Payments,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Orders, Service::Inventory, Service::Payments];

    pub fn name(self) -> &'static str {
        match self {
            Service::Orders => "orders",
            Service::Inventory => "inventory",
            Service::Payments => "payments",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Command,
    Reply,
    Event,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub id: MessageId,
    pub kind: Kind,
    pub name: String,
    pub source: Service,
    /// Commands and replies only; events have no consumer in the simulation.
    pub target: Option<Service>,
    /// The ordering key (the order id for everything here).
    pub key: String,
    pub payload: Value,
}

/// Hands out message ids, payment ids and the like, in order.
#[derive(Debug, Default)]
pub struct Ids {
    next: u64,
}

impl Ids {
    pub fn message(&mut self) -> MessageId {
        self.next += 1;
        MessageId(self.next)
    }

    /// A UUID that is a function of the run's counter, not of the wall clock.
    pub fn uuid(&mut self) -> uuid::Uuid {
        self.next += 1;
        uuid::Uuid::from_u128(0x5157_0000_0000_7000_8000_0000_0000_0000 | u128::from(self.next))
    }
}
