//! A deterministic simulation of Tessera's shop: the outbox → transport → inbox pipeline and
//! the order sagas, under a seeded adversary, with an invariant checker.
//!
//! **What is simulated.** One thread, one queue of events, one simulated clock, one seeded
//! PRNG ([`rng::SimRng`]); no tokio, no real time, no I/O. Each service (orders, inventory,
//! payments) has a simulated store whose unit of work commits state, outbox rows, the inbox
//! record and durable timers together or not at all. Relays publish outbox rows and may crash
//! between publishing and marking them sent. The transport delivers after random delays
//! (some longer than the sagas' timeouts), duplicates, reorders (within a key too), and drops
//! deliveries, which come back after an ack wait because un-acknowledged messages are
//! redelivered. A service may crash before a unit commits (the message comes back) or after it
//! commits and before the ack (the message comes back and the inbox must dedupe). Saga timers
//! fire on the simulated clock. The card network answers per the card profiles (approve,
//! decline, insufficient funds, transient, slow) with random transient failures and
//! idempotency keys, and lives outside every store, so money it moved survives a crash.
//! Clients place orders (with request keys, retrying when the answer is lost) and cancel some
//! after confirmation.
//!
//! **What is real code.** Every decision the services' handlers make:
//! - the saga definitions (`tessera_orders::place_order`, `cancel_order`) over their typed data
//!   (`PlaceOrderData`, `CancelOrderData`) and the saga decisions (`tessera_saga::{start,
//!   decide, reply_input}`, a late reply counting as its step's timeout as in the engine); the
//!   saga wire protocol (`SagaTag` on commands, `SagaReply` for the participants' answers);
//! - orders: what a saga's move means for the order (`tessera_orders::domain::{reaction,
//!   record}`, over `Transition::progress`) and the `Order` aggregate (`decide`, `evolve`);
//! - inventory (`tessera_inventory::domain`): what a `ReserveStock` gets
//!   (`Reservation::reserve`: a closed reservation, a repeated command answered with what is
//!   held, the stock plan, mixed currencies, the priced reply, whether a refusal closes the
//!   reservation), what a release, commit or restock moves (`Reservation::plan_move`,
//!   `Move::{apply, change}`), and the stock rules (`plan_reservation`, `StockLevel`);
//! - payments (`tessera_payments::domain`): what an `AuthorisePayment` gets
//!   (`request_authorisation`), what the authorisation worker charges and records
//!   (`authorisation_key`, `card_to_charge`, `authorisation_outcome`: the payment's status, its
//!   event, the reply), and a payment's life after it (`Operation::{settle, settled}`);
//! - the card profiles and the contracts' payload types (every command is parsed as the real
//!   handler parses it, every reply and event built from the contract's type).
//!
//! A planted change in any of them changes what the simulation does: `tests/real_glue.rs`
//! shows it for orders' rejection reasons, inventory's pricing and reservation moves, and
//! payments' decline reasons.
//!
//! **What is the simulation's own.** Storage, plumbing and the outside world, none of it a
//! decision of a service: the simulated stores and their units of work (inventory's products
//! and reservations, payments' rows, orders' streams and sagas as maps), the engine's `apply`
//! (writing a decision's state, tagged commands and timers to the simulated store), the
//! transport and relays, the simulated clock and timers, the card network (a stand-in for the
//! acquirer, as the services' `SimulatedNetwork` is), the clients and the adversary (drops,
//! duplicates, delays, crashes, the planted [`Bugs`]).
//!
//! **What is not covered.** SQL, the SQLite and PostgreSQL backends and their group commit;
//! NATS; concurrency inside a service (the real handlers' conditional updates against races);
//! HTTP and the gateway; customers, support, projections, erasure and the audit trail;
//! dead-letter parking (a failing message is retried for ever here); the stuck flag's alerting.
//!
//! [`run_seed`] runs one seed and checks it; [`check::Violation`] lists what can go wrong.
//! The planted bugs in [`Bugs`] show that the checker notices when it does.

pub mod check;
mod error;
mod facts;
mod inventory;
mod message;
mod orders;
mod payments;
pub mod rng;
mod saga_reply;
mod store;
mod trace;
mod world;

use std::ops::Range;

pub use check::{Violation, ViolationKind};
pub use error::HandlerError;
pub use message::{MessageId, Service};

/// The adversary's limits; each seed draws its own rates below them.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub max_drop_per_mille: u32,
    pub max_duplicate_per_mille: u32,
    /// Per unit of work, relay round and worker round: a crash before commit (or before the
    /// relay marks rows sent), and again after commit before the ack.
    pub max_crash_per_mille: u32,
    /// Deliveries delayed by 5 to 45 seconds (past the payment and reserve timeouts).
    pub max_long_delay_per_mille: u32,
    pub max_network_failure_per_mille: u32,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            max_drop_per_mille: 150,
            max_duplicate_per_mille: 200,
            max_crash_per_mille: 100,
            max_long_delay_per_mille: 80,
            max_network_failure_per_mille: 200,
        }
    }
}

/// Bugs planted on purpose, to show the checker catches them. All off by default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bugs {
    /// Consumers apply a message again even when their inbox has it.
    pub inbox_dedupe_off: bool,
    /// Inventory answers `ReleaseStock` as done without releasing anything (so stock stays
    /// held when a payment fails).
    pub keep_stock_on_release: bool,
    /// The n-th message (1-based) published to a consumer is lost for good: never
    /// delivered, never redelivered.
    pub lose_message: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub faults: Faults,
    pub bugs: Bugs,
    pub min_orders: u64,
    pub max_orders: u64,
    /// The run stops (and reports no quiescence) after this many events.
    pub max_events: u64,
    /// Keep the trace's lines (for replay); the hash is computed either way.
    pub keep_trace: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            faults: Faults::default(),
            bugs: Bugs::default(),
            min_orders: 3,
            max_orders: 8,
            max_events: 200_000,
            keep_trace: false,
        }
    }
}

/// Counts of what happened in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    pub events: u64,
    pub published: u64,
    pub deliveries: u64,
    pub deduplicated: u64,
    pub drops: u64,
    pub redeliveries: u64,
    pub crashes: u64,
    pub handler_errors: u64,
    pub timers_fired: u64,
    pub confirmed: u64,
    pub rejected: u64,
    pub cancelled: u64,
    /// Simulated time at quiescence.
    pub sim_micros: u64,
}

#[derive(Clone, Debug)]
pub struct SimOutcome {
    pub seed: u64,
    /// Hex SHA-256 of the run's ordered events: the same seed gives the same hash.
    pub trace_hash: String,
    pub violations: Vec<Violation>,
    pub stats: SimStats,
    /// The trace's lines, when `SimConfig::keep_trace`.
    pub trace: Vec<String>,
    /// Every order at the end, with its place-order saga: what the glue between them did.
    pub orders: Vec<OrderOutcome>,
}

/// An order as the run left it, the place-order saga that decided it, what inventory holds
/// for it, and its payment at payments.
#[derive(Clone, Debug)]
pub struct OrderOutcome {
    pub order: tessera_orders::domain::Order,
    pub place_saga: Option<tessera_saga::SagaState>,
    /// Inventory's reservation for the order (its lines in every state).
    pub reservation: Option<tessera_inventory::domain::Reservation>,
    /// The payment's status (`PaymentStatus::as_str`).
    pub payment_status: Option<&'static str>,
    /// Why the payment was declined, as payments stored it.
    pub payment_reason: Option<String>,
    /// The card network's profile of the card the order names.
    pub card: Option<tessera_payments::domain::CardProfile>,
}

/// Runs seed `seed` until quiescent (or the event bound) and checks every invariant.
pub fn run_seed(seed: u64, config: &SimConfig) -> SimOutcome {
    let mut world = world::World::new(seed, config);
    world.run();
    let violations = check::check(&world);
    let mut stats = world.stats.clone();
    let mut orders = Vec::new();
    for &order_id in world.orders.state.streams.keys() {
        let order = world.orders.state.order(order_id);
        let place_saga =
            world.orders.state.sagas.get(&(tessera_orders::PLACE_ORDER, order_id.to_string())).cloned();
        match order.status {
            tessera_orders::domain::OrderStatus::Confirmed => stats.confirmed += 1,
            tessera_orders::domain::OrderStatus::Rejected => stats.rejected += 1,
            tessera_orders::domain::OrderStatus::Cancelled => stats.cancelled += 1,
            _ => {}
        }
        let payments = &world.payments.state;
        let payment = payments.payments.get(&order_id);
        let card = payments.methods.get(&order.payment_token).map(|method| method.profile);
        orders.push(OrderOutcome {
            reservation: world.inventory.state.reservations.get(&order_id).cloned(),
            payment_status: payment.map(|payment| payment.status),
            payment_reason: payment.and_then(|payment| payment.reason.clone()),
            card,
            order,
            place_saga,
        });
    }
    let (trace_hash, trace) = world.trace.finish();
    SimOutcome { seed, trace_hash, violations, stats, trace, orders }
}

/// The command that replays one seed with its trace printed.
pub fn replay_command(seed: u64) -> String {
    format!(
        "cargo run -- simulate --seed {seed}   (or: TESSERA_SIM_SEED={seed} cargo test -p tessera-simulation replay -- --nocapture)"
    )
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeedRangeError {
    #[error("expected start..end (e.g. 0..1000), got {0:?}")]
    Format(String),
    #[error("the range {0}..{1} is empty")]
    Empty(u64, u64),
}

/// Parses `start..end` (end exclusive).
pub fn parse_seed_range(text: &str) -> Result<Range<u64>, SeedRangeError> {
    let format = || SeedRangeError::Format(text.to_owned());
    let (start, end) = text.trim().split_once("..").ok_or_else(format)?;
    let start: u64 = start.trim().parse().map_err(|_| format())?;
    let end: u64 = end.trim().parse().map_err(|_| format())?;
    if start >= end {
        return Err(SeedRangeError::Empty(start, end));
    }
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_parse_and_reject_nonsense() {
        assert_eq!(parse_seed_range("5..10"), Ok(5..10));
        assert_eq!(parse_seed_range("10..5"), Err(SeedRangeError::Empty(10, 5)));
        assert!(matches!(parse_seed_range("ten"), Err(SeedRangeError::Format(_))));
    }
}
