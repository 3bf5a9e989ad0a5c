//! What the checker is handed: each service's facts, and the platform's facts per store.

use std::collections::BTreeMap;

use tessera_inventory::facts::InventoryFacts;
use tessera_orders::facts::OrdersFacts;
use tessera_payments::facts::PaymentsFacts;
use tessera_store::{InboxFact, OutboxFact, Verification};
use tessera_support::facts::ReplicaFact;

/// Everything [`crate::check`] reconciles.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub orders: OrdersFacts,
    pub inventory: InventoryFacts,
    pub payments: PaymentsFacts,
    /// The read models built from order events; `None` where none are kept (the simulation
    /// has no summaries and no support service), and the check is then left out.
    pub read_models: Option<ReadModelFacts>,
    /// One per store whose message pipeline is judged.
    pub pipelines: Vec<PipelineFacts>,
    /// One per store whose audit chain was verified.
    pub audits: Vec<AuditFact>,
    /// The card network's own record of the money it moved; `None` where it cannot be asked
    /// (a real network), so only the payments service's record is judged.
    pub network: Option<NetworkFacts>,
    /// Saga ids of durable timers still pending. The simulation keeps every timer; the real
    /// saga engine cancels a timer when its saga moves on and verify does not read them.
    pub pending_timers: Vec<String>,
}

/// The read models of orders, against which the events are folded.
#[derive(Clone, Debug, Default)]
pub struct ReadModelFacts {
    /// Support's replicas of the orders (orders' own summaries are in [`OrdersFacts`]).
    pub replicas: Vec<ReplicaFact>,
}

/// One store's message pipeline.
#[derive(Clone, Debug, Default)]
pub struct PipelineFacts {
    /// The service the store belongs to, as messages name their target.
    pub service: String,
    pub outbox: Vec<OutboxFact>,
    pub inbox: Vec<InboxFact>,
    pub dead_letters: Vec<DeadLetterFact>,
}

/// A message a consumer gave up on and parked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetterFact {
    pub name: String,
    pub consumer: String,
    pub attempts: i64,
    pub error: String,
}

/// One store's audit chain, as verified.
#[derive(Clone, Debug)]
pub struct AuditFact {
    pub service: String,
    pub verification: Verification,
}

/// Money the card network moved, by order id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkFacts {
    pub captured: BTreeMap<String, i64>,
    pub refunded: BTreeMap<String, i64>,
}
