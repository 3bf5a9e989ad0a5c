//! The invariant checker, run once the world is quiescent. It reads the stores and the card
//! network (the outside world's record of money), never the simulator's own bookkeeping of
//! what it meant to happen, so a bug in the pipeline or the handlers shows up as a broken
//! business rule or a broken delivery guarantee.

use std::fmt;

use tessera_contracts::Sku;
use tessera_inventory::domain::StockLevel;
use tessera_orders::domain::OrderStatus;
use tessera_saga::Status;
use uuid::Uuid;

use crate::inventory::ReservationState;
use crate::message::{MessageId, Service};
use crate::orders::TimerStatus;
use crate::store::Store;
use crate::world::{World, short};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    NoQuiescence,
    OrderNotTerminal,
    SagaNotFinished,
    StockNotConserved,
    StockNegative,
    ReservationHeld,
    ReservedCountMismatch,
    CaptureMismatch,
    StockNotSold,
    RejectedButCharged,
    AuthorisationNotVoided,
    RefundMismatch,
    StockNotRestocked,
    EffectAppliedTwice,
    OutboxNotDrained,
    MessageLost,
    TimerPending,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    NoQuiescence {
        events: u64,
    },
    OrderNotTerminal {
        order_id: Uuid,
        status: OrderStatus,
    },
    SagaNotFinished {
        saga: &'static str,
        order_id: String,
        status: Status,
        step: usize,
    },
    StockNotConserved {
        sku: Sku,
        initial: i64,
        level: StockLevel,
    },
    StockNegative {
        sku: Sku,
        level: StockLevel,
    },
    ReservationHeld {
        order_id: Uuid,
        sku: Sku,
        order_status: OrderStatus,
    },
    ReservedCountMismatch {
        sku: Sku,
        reserved: i64,
        held: i64,
    },
    /// A confirmed order not charged exactly its total, once (store or network).
    CaptureMismatch {
        order_id: Uuid,
        total: i64,
        stored: Option<i64>,
        network: i64,
    },
    StockNotSold {
        order_id: Uuid,
        sku: Sku,
        state: ReservationState,
    },
    RejectedButCharged {
        order_id: Uuid,
        stored: Option<i64>,
        network: i64,
    },
    AuthorisationNotVoided {
        order_id: Uuid,
        payment_status: &'static str,
    },
    RefundMismatch {
        order_id: Uuid,
        total: i64,
        stored: Option<i64>,
        network: i64,
    },
    StockNotRestocked {
        order_id: Uuid,
        sku: Sku,
        state: ReservationState,
    },
    EffectAppliedTwice {
        service: Service,
        message_id: MessageId,
        name: String,
        times: u32,
    },
    OutboxNotDrained {
        service: Service,
        message_id: MessageId,
    },
    MessageLost {
        target: Service,
        message_id: MessageId,
        name: String,
    },
    TimerPending {
        saga_id: String,
    },
}

impl Violation {
    pub fn kind(&self) -> ViolationKind {
        match self {
            Violation::NoQuiescence { .. } => ViolationKind::NoQuiescence,
            Violation::OrderNotTerminal { .. } => ViolationKind::OrderNotTerminal,
            Violation::SagaNotFinished { .. } => ViolationKind::SagaNotFinished,
            Violation::StockNotConserved { .. } => ViolationKind::StockNotConserved,
            Violation::StockNegative { .. } => ViolationKind::StockNegative,
            Violation::ReservationHeld { .. } => ViolationKind::ReservationHeld,
            Violation::ReservedCountMismatch { .. } => ViolationKind::ReservedCountMismatch,
            Violation::CaptureMismatch { .. } => ViolationKind::CaptureMismatch,
            Violation::StockNotSold { .. } => ViolationKind::StockNotSold,
            Violation::RejectedButCharged { .. } => ViolationKind::RejectedButCharged,
            Violation::AuthorisationNotVoided { .. } => ViolationKind::AuthorisationNotVoided,
            Violation::RefundMismatch { .. } => ViolationKind::RefundMismatch,
            Violation::StockNotRestocked { .. } => ViolationKind::StockNotRestocked,
            Violation::EffectAppliedTwice { .. } => ViolationKind::EffectAppliedTwice,
            Violation::OutboxNotDrained { .. } => ViolationKind::OutboxNotDrained,
            Violation::MessageLost { .. } => ViolationKind::MessageLost,
            Violation::TimerPending { .. } => ViolationKind::TimerPending,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::NoQuiescence { events } => write!(f, "not quiescent after {events} events"),
            Violation::OrderNotTerminal { order_id, status } => {
                write!(f, "order {} ended {status:?}, not confirmed, rejected or cancelled", short(*order_id))
            }
            Violation::SagaNotFinished { saga, order_id, status, step } => {
                write!(f, "saga {saga} of {order_id} ended {status:?} at step {step}")
            }
            Violation::StockNotConserved { sku, initial, level } => {
                write!(f, "{sku}: {initial} units at start, {level:?} now (total {})", level.total())
            }
            Violation::StockNegative { sku, level } => write!(f, "{sku}: negative level {level:?}"),
            Violation::ReservationHeld { order_id, sku, order_status } => {
                write!(f, "{sku} still held for order {} which is {order_status:?}", short(*order_id))
            }
            Violation::ReservedCountMismatch { sku, reserved, held } => {
                write!(f, "{sku}: {reserved} reserved but reservations hold {held}")
            }
            Violation::CaptureMismatch { order_id, total, stored, network } => write!(
                f,
                "confirmed order {} totals {total} but captures are {stored:?} (store) and {network} (network)",
                short(*order_id)
            ),
            Violation::StockNotSold { order_id, sku, state } => {
                write!(f, "confirmed order {}: {sku} is {state:?}, not committed", short(*order_id))
            }
            Violation::RejectedButCharged { order_id, stored, network } => write!(
                f,
                "rejected order {} was captured: {stored:?} (store), {network} (network)",
                short(*order_id)
            ),
            Violation::AuthorisationNotVoided { order_id, payment_status } => {
                write!(f, "rejected order {}: payment left {payment_status}", short(*order_id))
            }
            Violation::RefundMismatch { order_id, total, stored, network } => write!(
                f,
                "cancelled order {} totals {total} but refunds are {stored:?} (store) and {network} (network)",
                short(*order_id)
            ),
            Violation::StockNotRestocked { order_id, sku, state } => {
                write!(f, "cancelled order {}: {sku} is {state:?}, not restocked", short(*order_id))
            }
            Violation::EffectAppliedTwice { service, message_id, name, times } => {
                write!(f, "{service} applied {message_id} ({name}) {times} times")
            }
            Violation::OutboxNotDrained { service, message_id } => {
                write!(f, "{service}'s outbox row {message_id} was never sent")
            }
            Violation::MessageLost { target, message_id, name } => {
                write!(f, "{message_id} ({name}) was sent to {target} and never applied there")
            }
            Violation::TimerPending { saga_id } => write!(f, "a timer of saga {saga_id} is still pending"),
        }
    }
}

/// Every invariant, over a world that stopped.
pub fn check(world: &World<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    if !world.quiescent {
        violations.push(Violation::NoQuiescence { events: world.stats.events });
    }
    check_orders(world, &mut violations);
    check_stock(world, &mut violations);
    check_pipeline(world, &mut violations);
    violations
}

fn check_orders(world: &World<'_>, violations: &mut Vec<Violation>) {
    let orders = &world.orders.state;
    let inventory = &world.inventory.state;
    let payments = &world.payments.state;
    for &order_id in orders.streams.keys() {
        let order = orders.order(order_id);
        let total = order.total.as_ref().map_or(0, |m| m.amount);
        let reservations: Vec<_> = inventory.reservations.iter().filter(|r| r.order_id == order_id).collect();
        let captured_network =
            world.network.captured.get(&format!("capture-{order_id}")).copied().unwrap_or(0);
        let refunded_network =
            world.network.refunded.get(&format!("refund-{order_id}")).copied().unwrap_or(0);
        let captured_stored = payments.captures.get(&order_id).copied();
        let refunded_stored = payments.refunds.get(&order_id).copied();
        for reservation in &reservations {
            if reservation.state == ReservationState::Held && order.status != OrderStatus::Pending {
                violations.push(Violation::ReservationHeld {
                    order_id,
                    sku: reservation.sku.clone(),
                    order_status: order.status,
                });
            }
        }
        match order.status {
            OrderStatus::Confirmed | OrderStatus::Cancelled => {
                if captured_stored != Some(total) || captured_network != total {
                    violations.push(Violation::CaptureMismatch {
                        order_id,
                        total,
                        stored: captured_stored,
                        network: captured_network,
                    });
                }
                let expected = if order.status == OrderStatus::Confirmed {
                    ReservationState::Committed
                } else {
                    ReservationState::Restocked
                };
                for reservation in reservations.iter().filter(|r| r.state != expected) {
                    let (sku, state) = (reservation.sku.clone(), reservation.state);
                    violations.push(if order.status == OrderStatus::Confirmed {
                        Violation::StockNotSold { order_id, sku, state }
                    } else {
                        Violation::StockNotRestocked { order_id, sku, state }
                    });
                }
                if order.status == OrderStatus::Cancelled
                    && (refunded_stored != Some(total) || refunded_network != total)
                {
                    violations.push(Violation::RefundMismatch {
                        order_id,
                        total,
                        stored: refunded_stored,
                        network: refunded_network,
                    });
                }
            }
            OrderStatus::Rejected => {
                if captured_stored.is_some() || captured_network != 0 {
                    violations.push(Violation::RejectedButCharged {
                        order_id,
                        stored: captured_stored,
                        network: captured_network,
                    });
                }
                if let Some(payment) = payments.payments.get(&order_id)
                    && !matches!(payment.status, "voided" | "declined")
                {
                    violations
                        .push(Violation::AuthorisationNotVoided { order_id, payment_status: payment.status });
                }
            }
            status @ (OrderStatus::New | OrderStatus::Pending | OrderStatus::Cancelling) => {
                violations.push(Violation::OrderNotTerminal { order_id, status });
            }
        }
    }
    for ((saga, id), state) in &orders.sagas {
        if !state.status.is_terminal()
            || (*saga == tessera_orders::CANCEL_ORDER && state.status != Status::Completed)
        {
            violations.push(Violation::SagaNotFinished {
                saga,
                order_id: id.clone(),
                status: state.status,
                step: state.step,
            });
        }
    }
    for timer in orders.timers.values().filter(|t| t.status == TimerStatus::Pending) {
        violations.push(Violation::TimerPending { saga_id: timer.saga_id.clone() });
    }
}

fn check_stock(world: &World<'_>, violations: &mut Vec<Violation>) {
    let inventory = &world.inventory.state;
    for (sku, product) in &inventory.products {
        let level = product.level;
        let initial = world.initial_stock.get(sku).copied().unwrap_or(0);
        if level.total() != initial {
            violations.push(Violation::StockNotConserved { sku: sku.clone(), initial, level });
        }
        if level.available < 0 || level.reserved < 0 || level.sold < 0 {
            violations.push(Violation::StockNegative { sku: sku.clone(), level });
        }
        let held: i64 = inventory
            .reservations
            .iter()
            .filter(|r| &r.sku == sku && r.state == ReservationState::Held)
            .map(|r| r.quantity)
            .sum();
        if held != level.reserved {
            violations.push(Violation::ReservedCountMismatch {
                sku: sku.clone(),
                reserved: level.reserved,
                held,
            });
        }
    }
}

fn check_pipeline(world: &World<'_>, violations: &mut Vec<Violation>) {
    fn inbox_and_outbox<S>(
        world: &World<'_>,
        service: Service,
        store: &Store<S>,
        violations: &mut Vec<Violation>,
    ) {
        for (&message_id, &times) in &store.inbox {
            if times > 1 {
                let name = world
                    .transport
                    .get(&(service, message_id))
                    .map_or_else(String::new, |d| d.message.name.clone());
                violations.push(Violation::EffectAppliedTwice { service, message_id, name, times });
            }
        }
        for row in &store.outbox {
            if !row.sent {
                violations.push(Violation::OutboxNotDrained { service, message_id: row.message.id });
            }
            // At-least-once delivery: every command and reply sent reached its consumer's inbox.
            if let Some(target) = row.message.target {
                let applied = match target {
                    Service::Orders => world.orders.has_consumed(row.message.id),
                    Service::Inventory => world.inventory.has_consumed(row.message.id),
                    Service::Payments => world.payments.has_consumed(row.message.id),
                };
                if !applied {
                    violations.push(Violation::MessageLost {
                        target,
                        message_id: row.message.id,
                        name: row.message.name.clone(),
                    });
                }
            }
        }
    }
    inbox_and_outbox(world, Service::Orders, &world.orders, violations);
    inbox_and_outbox(world, Service::Inventory, &world.inventory, violations);
    inbox_and_outbox(world, Service::Payments, &world.payments, violations);
}
