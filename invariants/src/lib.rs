//! The shop's invariants, stated once. Each service exposes the facts its invariants need
//! (`tessera_orders::facts`, `tessera_inventory::facts`, `tessera_payments::facts`,
//! `tessera_support::facts`), the platform those of its message pipeline
//! (`tessera_store::{outbox_facts, inbox_facts}`, the bus's dead letters, the audit chain);
//! [`check`] reconciles them against each other and reports each named check with the
//! violations it found.
//!
//! Two callers feed it: `tessera verify`, which reads the facts from real stores (SQLite
//! files or PostgreSQL), and the simulation, which builds the same fact types from its
//! simulated stores. So a rule changed here changes both, and neither can drift.
//!
//! This crate depends on the services (for their fact types); no service depends on it.

mod checks;
mod facts;
mod violation;

pub use checks::{
    AUDIT_CHAINS, COMMANDS_APPLIED, NO_DEAD_LETTERS, ORDER_EVENTS_ONCE, ORDERS_TERMINAL, OUTBOX_DRAINED,
    PAYMENTS_MATCH, READ_MODELS, RESERVATIONS_MATCH, SAGAS_FINISHED, STOCK_CONSERVED, check,
};
pub use facts::{AuditFact, DeadLetterFact, Facts, NetworkFacts, PipelineFacts, ReadModelFacts};
pub use violation::{Violation, ViolationKind};

/// One named invariant: how many things it looked at and what broke it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub checked: u64,
    pub violations: Vec<Violation>,
}

impl Check {
    fn new(name: &'static str) -> Self {
        Self { name, checked: 0, violations: Vec::new() }
    }

    fn violation(&mut self, violation: Violation) {
        self.violations.push(violation);
    }
}

/// Every check, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.violations.is_empty())
    }

    /// Every violation of every check, in check order.
    pub fn violations(&self) -> impl Iterator<Item = &Violation> {
        self.checks.iter().flat_map(|c| &c.violations)
    }
}
