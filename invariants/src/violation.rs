//! What can be wrong, each as a type: a check reports these, `tessera verify` prints them and
//! the simulation's tests look for their kinds.

use std::collections::BTreeMap;
use std::fmt;

use tessera_inventory::domain::StockLevel;
use tessera_inventory::facts::ReservationState;
use tessera_orders::domain::OrderStatus;
use tessera_saga::Status;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    /// The simulation only: the world never went quiet.
    NoQuiescence,
    OrderNotTerminal,
    EventRepeated,
    StockNegative,
    StockNotConserved,
    ReservedCountMismatch,
    SoldCountMismatch,
    ReservedLinesMismatch,
    ReservationHeld,
    StockNotSold,
    StockNotRestocked,
    StockNotReleased,
    StockHeldForUnknownOrder,
    CaptureMismatch,
    RefundedButConfirmed,
    RefundMismatch,
    RejectedButCharged,
    AuthorisationNotVoided,
    CaptureForUnknownOrder,
    SagaNotFinished,
    TimerPending,
    OutboxNotDrained,
    OutboxRowWithoutEnvelope,
    MessageLost,
    EffectAppliedTwice,
    DeadLetter,
    SummaryMismatch,
    ReplicaMismatch,
    AuditChainBroken,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    NoQuiescence {
        events: u64,
    },
    OrderNotTerminal {
        order_id: String,
        status: OrderStatus,
    },
    /// An event applied twice shows as a repeated kind in the stream.
    EventRepeated {
        order_id: String,
        events: Vec<&'static str>,
    },
    StockNegative {
        sku: String,
        level: StockLevel,
    },
    /// Every adjustment (initial stock included) must equal available + reserved + sold.
    StockNotConserved {
        sku: String,
        adjusted: i64,
        level: StockLevel,
    },
    ReservedCountMismatch {
        sku: String,
        reserved: i64,
        held: i64,
    },
    SoldCountMismatch {
        sku: String,
        sold: i64,
        committed: i64,
    },
    /// Per sku, what inventory reserved for an order against the order's priced lines.
    ReservedLinesMismatch {
        order_id: String,
        reserved: BTreeMap<String, i64>,
        ordered: BTreeMap<String, i64>,
    },
    ReservationHeld {
        order_id: String,
        sku: String,
        order_status: OrderStatus,
    },
    StockNotSold {
        order_id: String,
        sku: String,
        state: ReservationState,
    },
    StockNotRestocked {
        order_id: String,
        sku: String,
        state: ReservationState,
    },
    StockNotReleased {
        order_id: String,
        sku: String,
        state: ReservationState,
    },
    StockHeldForUnknownOrder {
        order_id: String,
    },
    /// A confirmed or cancelled order not captured exactly its total, once (the payments
    /// service's record, and the card network's where it is known).
    CaptureMismatch {
        order_id: String,
        status: OrderStatus,
        total: Option<i64>,
        stored: Vec<i64>,
        network: Option<i64>,
    },
    RefundedButConfirmed {
        order_id: String,
        refunded: Vec<i64>,
    },
    RefundMismatch {
        order_id: String,
        total: Option<i64>,
        stored: Vec<i64>,
        network: Option<i64>,
    },
    RejectedButCharged {
        order_id: String,
        stored: Vec<i64>,
        network: Option<i64>,
    },
    /// A rejected order whose payment still holds money.
    AuthorisationNotVoided {
        order_id: String,
        payment_status: String,
    },
    CaptureForUnknownOrder {
        order_id: String,
    },
    SagaNotFinished {
        saga: String,
        saga_id: String,
        status: Status,
        step: Option<usize>,
        stuck: Option<String>,
    },
    TimerPending {
        saga_id: String,
    },
    OutboxNotDrained {
        service: String,
        message_id: String,
        name: String,
    },
    OutboxRowWithoutEnvelope {
        service: String,
        message_id: String,
    },
    /// A command or reply sent and never applied by its target.
    MessageLost {
        source: String,
        target: String,
        message_id: String,
        name: String,
    },
    EffectAppliedTwice {
        service: String,
        message_id: String,
        name: String,
        times: u32,
    },
    DeadLetter {
        service: String,
        letter: crate::DeadLetterFact,
    },
    SummaryMismatch {
        order_id: String,
        found: Option<(String, Option<i64>)>,
        status: String,
        total: Option<i64>,
    },
    ReplicaMismatch {
        order_id: String,
        found: Option<String>,
        status: String,
    },
    AuditChainBroken {
        service: String,
        first_bad_index: Option<u64>,
        problem: String,
    },
}

impl Violation {
    pub fn kind(&self) -> ViolationKind {
        match self {
            Violation::NoQuiescence { .. } => ViolationKind::NoQuiescence,
            Violation::OrderNotTerminal { .. } => ViolationKind::OrderNotTerminal,
            Violation::EventRepeated { .. } => ViolationKind::EventRepeated,
            Violation::StockNegative { .. } => ViolationKind::StockNegative,
            Violation::StockNotConserved { .. } => ViolationKind::StockNotConserved,
            Violation::ReservedCountMismatch { .. } => ViolationKind::ReservedCountMismatch,
            Violation::SoldCountMismatch { .. } => ViolationKind::SoldCountMismatch,
            Violation::ReservedLinesMismatch { .. } => ViolationKind::ReservedLinesMismatch,
            Violation::ReservationHeld { .. } => ViolationKind::ReservationHeld,
            Violation::StockNotSold { .. } => ViolationKind::StockNotSold,
            Violation::StockNotRestocked { .. } => ViolationKind::StockNotRestocked,
            Violation::StockNotReleased { .. } => ViolationKind::StockNotReleased,
            Violation::StockHeldForUnknownOrder { .. } => ViolationKind::StockHeldForUnknownOrder,
            Violation::CaptureMismatch { .. } => ViolationKind::CaptureMismatch,
            Violation::RefundedButConfirmed { .. } => ViolationKind::RefundedButConfirmed,
            Violation::RefundMismatch { .. } => ViolationKind::RefundMismatch,
            Violation::RejectedButCharged { .. } => ViolationKind::RejectedButCharged,
            Violation::AuthorisationNotVoided { .. } => ViolationKind::AuthorisationNotVoided,
            Violation::CaptureForUnknownOrder { .. } => ViolationKind::CaptureForUnknownOrder,
            Violation::SagaNotFinished { .. } => ViolationKind::SagaNotFinished,
            Violation::TimerPending { .. } => ViolationKind::TimerPending,
            Violation::OutboxNotDrained { .. } => ViolationKind::OutboxNotDrained,
            Violation::OutboxRowWithoutEnvelope { .. } => ViolationKind::OutboxRowWithoutEnvelope,
            Violation::MessageLost { .. } => ViolationKind::MessageLost,
            Violation::EffectAppliedTwice { .. } => ViolationKind::EffectAppliedTwice,
            Violation::DeadLetter { .. } => ViolationKind::DeadLetter,
            Violation::SummaryMismatch { .. } => ViolationKind::SummaryMismatch,
            Violation::ReplicaMismatch { .. } => ViolationKind::ReplicaMismatch,
            Violation::AuditChainBroken { .. } => ViolationKind::AuditChainBroken,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::NoQuiescence { events } => write!(f, "not quiescent after {events} events"),
            Violation::OrderNotTerminal { order_id, status } => {
                write!(f, "order {order_id} is still {}", status.name())
            }
            Violation::EventRepeated { order_id, events } => {
                write!(f, "order {order_id} has {} more than once", events.join(", "))
            }
            Violation::StockNegative { sku, level } => write!(
                f,
                "{sku}: below zero (available {}, reserved {}, sold {})",
                level.available, level.reserved, level.sold
            ),
            Violation::StockNotConserved { sku, adjusted, level } => write!(
                f,
                "{sku}: adjustments sum to {adjusted} but available {} + reserved {} + sold {} = {}",
                level.available,
                level.reserved,
                level.sold,
                level.total()
            ),
            Violation::ReservedCountMismatch { sku, reserved, held } => {
                write!(f, "{sku}: reserved {reserved} but held reservations hold {held}")
            }
            Violation::SoldCountMismatch { sku, sold, committed } => {
                write!(f, "{sku}: sold {sold} but committed reservations hold {committed}")
            }
            Violation::ReservedLinesMismatch { order_id, reserved, ordered } => {
                write!(f, "order {order_id}: reserved {reserved:?}, the order says {ordered:?}")
            }
            Violation::ReservationHeld { order_id, sku, order_status } => {
                write!(f, "order {order_id} is {}: its {sku} reservation is still held", order_status.name())
            }
            Violation::StockNotSold { order_id, sku, state } => {
                write!(
                    f,
                    "order {order_id} is confirmed: its {sku} reservation is {}, not committed",
                    state.as_str()
                )
            }
            Violation::StockNotRestocked { order_id, sku, state } => {
                write!(
                    f,
                    "order {order_id} is cancelled: its {sku} reservation is {}, not restocked",
                    state.as_str()
                )
            }
            Violation::StockNotReleased { order_id, sku, state } => {
                write!(
                    f,
                    "order {order_id} is rejected: its {sku} reservation is {}, not released",
                    state.as_str()
                )
            }
            Violation::StockHeldForUnknownOrder { order_id } => {
                write!(f, "order {order_id} is unknown to orders but holds stock in inventory")
            }
            Violation::CaptureMismatch { order_id, status, total, stored, network } => write!(
                f,
                "{} order {order_id} (total {total:?}): captures {stored:?} (store), {network:?} (network)",
                status.name()
            ),
            Violation::RefundedButConfirmed { order_id, refunded } => {
                write!(f, "confirmed order {order_id}: refunded {refunded:?}")
            }
            Violation::RefundMismatch { order_id, total, stored, network } => write!(
                f,
                "cancelled order {order_id} (total {total:?}): refunds {stored:?} (store), {network:?} (network)"
            ),
            Violation::RejectedButCharged { order_id, stored, network } => {
                write!(f, "rejected order {order_id}: captured {stored:?} (store), {network:?} (network)")
            }
            Violation::AuthorisationNotVoided { order_id, payment_status } => {
                write!(f, "rejected order {order_id}: its payment is still {payment_status}")
            }
            Violation::CaptureForUnknownOrder { order_id } => {
                write!(f, "a capture for order {order_id}, which orders does not know")
            }
            Violation::SagaNotFinished { saga, saga_id, status, step, stuck } => {
                write!(f, "{saga} {saga_id} is {status:?}")?;
                if let Some(step) = step {
                    write!(f, " at step {step}")?;
                }
                if let Some(stuck) = stuck {
                    write!(f, ", stuck: {stuck}")?;
                }
                Ok(())
            }
            Violation::TimerPending { saga_id } => write!(f, "a timer of saga {saga_id} is still pending"),
            Violation::OutboxNotDrained { service, message_id, name } => {
                write!(f, "{service}: {message_id} ({name}) never sent")
            }
            Violation::OutboxRowWithoutEnvelope { service, message_id } => {
                write!(f, "{service}: outbox row {message_id} has no envelope")
            }
            Violation::MessageLost { source, target, message_id, name } => {
                write!(f, "{source} → {target}: {name} {message_id} never applied")
            }
            Violation::EffectAppliedTwice { service, message_id, name, times } => {
                write!(f, "{service} applied {message_id} ({name}) {times} times")
            }
            Violation::DeadLetter { service, letter } => write!(
                f,
                "{service}: {} parked by {} after {} attempts: {}",
                letter.name, letter.consumer, letter.attempts, letter.error
            ),
            Violation::SummaryMismatch { order_id, found, status, total } => {
                write!(f, "order {order_id}: summary {found:?}, events say ({status}, {total:?})")
            }
            Violation::ReplicaMismatch { order_id, found, status } => {
                write!(f, "order {order_id}: support's replica {found:?}, events say {status}")
            }
            Violation::AuditChainBroken { service, first_bad_index, problem } => {
                write!(f, "{service}: first bad record {first_bad_index:?}: {problem}")
            }
        }
    }
}
