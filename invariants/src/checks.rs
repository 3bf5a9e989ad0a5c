//! The checks, each named as `tessera verify` prints it. Anything younger than the cutoff may
//! still be in flight and is not judged.

use std::collections::{BTreeMap, BTreeSet};

use tessera_inventory::facts::{InventoryFacts, ReservationFact, ReservationState};
use tessera_kernel::Timestamp;
use tessera_orders::domain::OrderStatus;
use tessera_orders::facts::{OrderFact, SagaFact, SummaryFact};
use tessera_payments::facts::{MoneyMoved, PaymentsFacts};
use tessera_saga::Status;

use crate::{AuditFact, Check, Facts, NetworkFacts, PipelineFacts, ReadModelFacts, Report, Violation};

pub const ORDERS_TERMINAL: &str = "orders terminal";
pub const ORDER_EVENTS_ONCE: &str = "order events once";
pub const STOCK_CONSERVED: &str = "stock conserved";
pub const RESERVATIONS_MATCH: &str = "reservations match orders";
pub const PAYMENTS_MATCH: &str = "payments match orders";
pub const SAGAS_FINISHED: &str = "sagas finished";
pub const OUTBOX_DRAINED: &str = "outbox drained";
pub const COMMANDS_APPLIED: &str = "commands applied";
pub const NO_DEAD_LETTERS: &str = "no dead letters";
pub const READ_MODELS: &str = "read models match events";
pub const AUDIT_CHAINS: &str = "audit chains verify";

/// Orders by the id the other services key them by.
type Orders<'f> = BTreeMap<&'f str, &'f OrderFact>;

/// Every check over `facts`; work at or after `cutoff` is left out.
pub fn check(facts: &Facts, cutoff: Timestamp) -> Report {
    let orders: Orders<'_> = facts.orders.orders.iter().map(|o| (o.order_id.as_str(), o)).collect();
    let mut checks = vec![
        orders_terminal(&orders, cutoff),
        order_events_once(&orders),
        stock_conserved(&facts.inventory),
        reservations_match(&facts.inventory, &orders, cutoff),
        payments_match(&facts.payments, facts.network.as_ref(), &orders, cutoff),
        sagas_finished(&facts.orders.sagas, &facts.pending_timers, cutoff),
        outbox_drained(&facts.pipelines, cutoff),
        commands_applied(&facts.pipelines, cutoff),
        dead_letters(&facts.pipelines),
    ];
    if let Some(read_models) = &facts.read_models {
        checks.push(read_models_match(&facts.orders.summaries, read_models, &orders, cutoff));
    }
    checks.push(audit_chains(&facts.audits));
    Report { checks }
}

fn terminal(status: OrderStatus) -> bool {
    matches!(status, OrderStatus::Confirmed | OrderStatus::Rejected | OrderStatus::Cancelled)
}

fn orders_terminal(orders: &Orders<'_>, cutoff: Timestamp) -> Check {
    let mut check = Check::new(ORDERS_TERMINAL);
    for (id, order) in orders {
        if order.placed_at >= cutoff {
            continue;
        }
        check.checked += 1;
        if !terminal(order.state.status) {
            check.violation(Violation::OrderNotTerminal {
                order_id: (*id).to_owned(),
                status: order.state.status,
            });
        }
    }
    check
}

/// An event applied twice shows as a repeated kind in the stream: each happens once per order.
fn order_events_once(orders: &Orders<'_>) -> Check {
    let mut check = Check::new(ORDER_EVENTS_ONCE);
    for (id, order) in orders {
        check.checked += 1;
        if !order.repeated.is_empty() {
            check.violation(Violation::EventRepeated {
                order_id: (*id).to_owned(),
                events: order.repeated.clone(),
            });
        }
    }
    check
}

/// Per sku, the quantity of the reservations in `state`.
fn quantity_in(reservations: &[ReservationFact], state: ReservationState) -> BTreeMap<&str, i64> {
    let mut by_sku: BTreeMap<&str, i64> = BTreeMap::new();
    for reservation in reservations.iter().filter(|r| r.state == state) {
        *by_sku.entry(reservation.sku.as_str()).or_default() += reservation.quantity;
    }
    by_sku
}

/// Per sku: every adjustment (initial stock included) equals available + reserved + sold, none
/// below zero; `reserved` is what held reservations hold, `sold` what committed ones do.
fn stock_conserved(inventory: &InventoryFacts) -> Check {
    let mut check = Check::new(STOCK_CONSERVED);
    let held = quantity_in(&inventory.reservations, ReservationState::Held);
    let committed = quantity_in(&inventory.reservations, ReservationState::Committed);
    for product in &inventory.products {
        check.checked += 1;
        let (sku, level) = (product.sku.as_str(), product.level);
        if level.available < 0 || level.reserved < 0 || level.sold < 0 {
            check.violation(Violation::StockNegative { sku: sku.to_owned(), level });
        }
        let adjusted = inventory.adjusted.get(sku).copied().unwrap_or_default();
        if level.total() != adjusted {
            check.violation(Violation::StockNotConserved { sku: sku.to_owned(), adjusted, level });
        }
        let holding = held.get(sku).copied().unwrap_or_default();
        if level.reserved != holding {
            check.violation(Violation::ReservedCountMismatch {
                sku: sku.to_owned(),
                reserved: level.reserved,
                held: holding,
            });
        }
        let selling = committed.get(sku).copied().unwrap_or_default();
        if level.sold != selling {
            check.violation(Violation::SoldCountMismatch {
                sku: sku.to_owned(),
                sold: level.sold,
                committed: selling,
            });
        }
    }
    check
}

/// Each settled order's reservations in inventory, against what the order says happened.
fn reservations_match(inventory: &InventoryFacts, orders: &Orders<'_>, cutoff: Timestamp) -> Check {
    let mut check = Check::new(RESERVATIONS_MATCH);
    let mut by_order: BTreeMap<&str, Vec<&ReservationFact>> = BTreeMap::new();
    for reservation in &inventory.reservations {
        by_order.entry(reservation.order_id.as_str()).or_default().push(reservation);
    }
    for (&id, order) in orders {
        if !order.settled(cutoff) {
            continue;
        }
        check.checked += 1;
        let held = by_order.remove(id).unwrap_or_default();
        let status = order.state.status;
        let wanted = match status {
            OrderStatus::Confirmed => ReservationState::Committed,
            OrderStatus::Cancelled => ReservationState::Restocked,
            OrderStatus::Rejected => ReservationState::Released,
            _ => continue,
        };
        // Summed per sku on both sides: inventory keeps one reservation per order and sku.
        let mut ordered: BTreeMap<String, i64> = BTreeMap::new();
        for line in &order.state.priced {
            *ordered.entry(line.sku.as_str().to_owned()).or_default() += i64::from(line.quantity.get());
        }
        let mut reserved: BTreeMap<String, i64> = BTreeMap::new();
        for reservation in &held {
            *reserved.entry(reservation.sku.clone()).or_default() += reservation.quantity;
        }
        // A rejection before anything was reserved leaves no rows at all.
        let nothing_reserved = status == OrderStatus::Rejected && order.state.priced.is_empty();
        if !nothing_reserved && reserved != ordered {
            check.violation(Violation::ReservedLinesMismatch { order_id: id.to_owned(), reserved, ordered });
        }
        for reservation in held.iter().filter(|r| r.state != wanted) {
            let (order_id, sku, state) = (id.to_owned(), reservation.sku.clone(), reservation.state);
            check.violation(match (state, status) {
                (ReservationState::Held, order_status) => {
                    Violation::ReservationHeld { order_id, sku, order_status }
                }
                (_, OrderStatus::Confirmed) => Violation::StockNotSold { order_id, sku, state },
                (_, OrderStatus::Cancelled) => Violation::StockNotRestocked { order_id, sku, state },
                _ => Violation::StockNotReleased { order_id, sku, state },
            });
        }
    }
    for (id, held) in by_order {
        if !orders.contains_key(id)
            && held.iter().any(|r| matches!(r.state, ReservationState::Held | ReservationState::Committed))
        {
            check.violation(Violation::StockHeldForUnknownOrder { order_id: id.to_owned() });
        }
    }
    check
}

fn amounts(moved: &[MoneyMoved]) -> BTreeMap<&str, Vec<i64>> {
    let mut by_order: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for movement in moved {
        by_order.entry(movement.order_id.as_str()).or_default().push(movement.amount);
    }
    by_order
}

/// Money: a confirmed order captured once for its total, a rejected one never, a cancelled
/// one captured and refunded in full; no money moved for an order orders does not know. Where
/// the card network's own record is known, it must agree.
fn payments_match(
    payments: &PaymentsFacts,
    network: Option<&NetworkFacts>,
    orders: &Orders<'_>,
    cutoff: Timestamp,
) -> Check {
    let mut check = Check::new(PAYMENTS_MATCH);
    let captures = amounts(&payments.captures);
    let refunds = amounts(&payments.refunds);
    let statuses: BTreeMap<&str, &str> =
        payments.payments.iter().map(|p| (p.order_id.as_str(), p.status.as_str())).collect();
    for (&id, order) in orders {
        if !order.settled(cutoff) {
            continue;
        }
        check.checked += 1;
        let total = order.state.total.as_ref().map(|m| m.amount);
        let stored = captures.get(id).cloned().unwrap_or_default();
        let refunded = refunds.get(id).cloned().unwrap_or_default();
        let network_captured = network.map(|n| n.captured.get(id).copied().unwrap_or_default());
        let network_refunded = network.map(|n| n.refunded.get(id).copied().unwrap_or_default());
        let exactly_total = |moved: &[i64], network: Option<i64>| {
            moved.len() == 1 && Some(moved[0]) == total && network.is_none_or(|n| Some(n) == total)
        };
        let order_id = id.to_owned();
        match order.state.status {
            status @ (OrderStatus::Confirmed | OrderStatus::Cancelled) => {
                if !exactly_total(&stored, network_captured) {
                    check.violation(Violation::CaptureMismatch {
                        order_id: order_id.clone(),
                        status,
                        total,
                        stored,
                        network: network_captured,
                    });
                }
                if status == OrderStatus::Confirmed && !refunded.is_empty() {
                    check.violation(Violation::RefundedButConfirmed { order_id, refunded });
                } else if status == OrderStatus::Cancelled && !exactly_total(&refunded, network_refunded) {
                    check.violation(Violation::RefundMismatch {
                        order_id,
                        total,
                        stored: refunded,
                        network: network_refunded,
                    });
                }
            }
            OrderStatus::Rejected => {
                if !stored.is_empty() || network_captured.is_some_and(|n| n != 0) {
                    check.violation(Violation::RejectedButCharged {
                        order_id: order_id.clone(),
                        stored,
                        network: network_captured,
                    });
                }
                if let Some(status) = statuses.get(id).filter(|s| matches!(**s, "authorised" | "captured")) {
                    check.violation(Violation::AuthorisationNotVoided {
                        order_id,
                        payment_status: (*status).to_owned(),
                    });
                }
            }
            _ => {}
        }
    }
    for id in captures.keys() {
        if !orders.contains_key(id) {
            check.violation(Violation::CaptureForUnknownOrder { order_id: (*id).to_owned() });
        }
    }
    check
}

/// Every saga started before the cutoff ended, and a cancellation (which has nothing to undo
/// once the order was confirmed) completed.
fn sagas_finished(sagas: &[SagaFact], pending_timers: &[String], cutoff: Timestamp) -> Check {
    let mut check = Check::new(SAGAS_FINISHED);
    for saga in sagas {
        if saga.started_at >= cutoff {
            continue;
        }
        check.checked += 1;
        if !saga.status.is_terminal()
            || (saga.saga == tessera_orders::CANCEL_ORDER && saga.status != Status::Completed)
        {
            check.violation(Violation::SagaNotFinished {
                saga: saga.saga.clone(),
                saga_id: saga.saga_id.clone(),
                status: saga.status,
                step: saga.step,
                stuck: saga.stuck.clone(),
            });
        }
    }
    for saga_id in pending_timers {
        check.violation(Violation::TimerPending { saga_id: saga_id.clone() });
    }
    check
}

fn outbox_drained(pipelines: &[PipelineFacts], cutoff: Timestamp) -> Check {
    let mut check = Check::new(OUTBOX_DRAINED);
    for pipeline in pipelines {
        for row in pipeline.outbox.iter().filter(|r| r.created_at < cutoff) {
            check.checked += 1;
            if !row.sent {
                check.violation(Violation::OutboxNotDrained {
                    service: pipeline.service.clone(),
                    message_id: row.message_id.clone(),
                    name: row.name.clone(),
                });
            }
        }
    }
    check
}

/// Every command and reply one service sent another, applied by its target: its id is in the
/// target's inbox. And applied once: no inbox records a message twice (the reconciliations
/// above show the effects of one applied twice).
fn commands_applied(pipelines: &[PipelineFacts], cutoff: Timestamp) -> Check {
    let mut check = Check::new(COMMANDS_APPLIED);
    let inboxes: BTreeMap<&str, BTreeSet<&str>> = pipelines
        .iter()
        .map(|p| (p.service.as_str(), p.inbox.iter().map(|m| m.message_id.as_str()).collect()))
        .collect();
    let names: BTreeMap<&str, &str> = pipelines
        .iter()
        .flat_map(|p| &p.outbox)
        .map(|row| (row.message_id.as_str(), row.name.as_str()))
        .collect();
    for pipeline in pipelines {
        let service = pipeline.service.as_str();
        for row in pipeline.outbox.iter().filter(|r| r.created_at < cutoff) {
            let Some(envelope) = &row.envelope else {
                check.checked += 1;
                check.violation(Violation::OutboxRowWithoutEnvelope {
                    service: service.to_owned(),
                    message_id: row.message_id.clone(),
                });
                continue;
            };
            let Some(target) = &envelope.target else { continue };
            let Some(inbox) = inboxes.get(target.as_str()) else { continue };
            check.checked += 1;
            if !inbox.contains(row.message_id.as_str()) {
                check.violation(Violation::MessageLost {
                    source: service.to_owned(),
                    target: target.clone(),
                    message_id: row.message_id.clone(),
                    name: envelope.name.clone().unwrap_or_else(|| "?".to_owned()),
                });
            }
        }
        for applied in pipeline.inbox.iter().filter(|m| m.times_applied > 1) {
            check.violation(Violation::EffectAppliedTwice {
                service: service.to_owned(),
                message_id: applied.message_id.clone(),
                name: names.get(applied.message_id.as_str()).copied().unwrap_or_default().to_owned(),
                times: applied.times_applied,
            });
        }
    }
    check
}

fn dead_letters(pipelines: &[PipelineFacts]) -> Check {
    let mut check = Check::new(NO_DEAD_LETTERS);
    for pipeline in pipelines {
        check.checked += 1;
        for letter in &pipeline.dead_letters {
            check.violation(Violation::DeadLetter {
                service: pipeline.service.clone(),
                letter: letter.clone(),
            });
        }
    }
    check
}

/// The orders service's summaries and support's replicas of them, against a fold of the
/// events they are built from.
fn read_models_match(
    summaries: &[SummaryFact],
    read_models: &ReadModelFacts,
    orders: &Orders<'_>,
    cutoff: Timestamp,
) -> Check {
    let mut check = Check::new(READ_MODELS);
    let summaries: BTreeMap<&str, (&str, Option<i64>)> =
        summaries.iter().map(|s| (s.order_id.as_str(), (s.status.as_str(), s.total))).collect();
    let replicas: BTreeMap<&str, &str> =
        read_models.replicas.iter().map(|r| (r.order_id.as_str(), r.status.as_str())).collect();
    for (&id, order) in orders {
        if !order.settled(cutoff) {
            continue;
        }
        check.checked += 1;
        let status = order.state.status.public();
        let total = order.state.total.as_ref().map(|m| m.amount);
        match summaries.get(id) {
            Some((s, t)) if *s == status && *t == total => {}
            found => check.violation(Violation::SummaryMismatch {
                order_id: id.to_owned(),
                found: found.map(|(s, t)| ((*s).to_owned(), *t)),
                status: status.to_owned(),
                total,
            }),
        }
        match replicas.get(id) {
            Some(s) if *s == status => {}
            found => check.violation(Violation::ReplicaMismatch {
                order_id: id.to_owned(),
                found: found.map(|s| (*s).to_owned()),
                status: status.to_owned(),
            }),
        }
    }
    check
}

fn audit_chains(audits: &[AuditFact]) -> Check {
    let mut check = Check::new(AUDIT_CHAINS);
    for audit in audits {
        let verification = &audit.verification;
        check.checked += verification.records;
        if !verification.ok {
            check.violation(Violation::AuditChainBroken {
                service: audit.service.clone(),
                first_bad_index: verification.first_bad_index,
                problem: verification.problem.map(|p| p.to_string()).unwrap_or_default(),
            });
        }
    }
    check
}

#[cfg(test)]
mod tests {
    use tessera_contracts::inventory::PricedLine;
    use tessera_contracts::{Currency, Money, Quantity, Sku};
    use tessera_inventory::domain::StockLevel;
    use tessera_inventory::facts::ProductFact;
    use tessera_orders::domain::Order;
    use tessera_store::{InboxFact, OutboxEnvelope, OutboxFact};

    use super::*;
    use crate::ViolationKind;

    const ORDER: &str = "0190f5c2-6a1e-7000-8000-000000000001";
    const LATER: Timestamp = Timestamp::from_micros(10);

    fn eur(amount: i64) -> Money {
        Money::new(amount, Currency::eur()).expect("money")
    }

    /// One confirmed order of 2 × TEA-001 at 4.50, and everything the other services should
    /// hold for it: committed stock, one capture, its messages delivered.
    fn healthy() -> Facts {
        let order_id = ORDER.parse().expect("a uuid");
        let sku = Sku::parse("TEA-001").expect("a sku");
        let state = Order {
            id: Some(order_id),
            status: OrderStatus::Confirmed,
            priced: vec![PricedLine {
                sku: sku.clone(),
                name: "Tea".to_owned(),
                quantity: Quantity::new(2).expect("a quantity"),
                unit_price: eur(450),
            }],
            total: Some(eur(900)),
            ..Order::default()
        };
        let order = OrderFact {
            order_id: ORDER.to_owned(),
            state,
            placed_at: Timestamp::EPOCH,
            last_at: Timestamp::EPOCH,
            repeated: Vec::new(),
        };
        let command = OutboxFact {
            message_id: "m1".to_owned(),
            name: "payments.CapturePayment".to_owned(),
            created_at: Timestamp::EPOCH,
            sent: true,
            envelope: Some(OutboxEnvelope {
                name: Some("payments.CapturePayment".to_owned()),
                target: Some("payments".to_owned()),
            }),
        };
        Facts {
            orders: tessera_orders::facts::OrdersFacts { orders: vec![order], ..Default::default() },
            inventory: InventoryFacts {
                products: vec![ProductFact {
                    sku: "TEA-001".to_owned(),
                    level: StockLevel { available: 8, reserved: 0, sold: 2 },
                }],
                adjusted: [("TEA-001".to_owned(), 10)].into(),
                reservations: vec![ReservationFact {
                    order_id: ORDER.to_owned(),
                    sku: "TEA-001".to_owned(),
                    quantity: 2,
                    state: ReservationState::Committed,
                }],
            },
            payments: PaymentsFacts {
                captures: vec![MoneyMoved { order_id: ORDER.to_owned(), amount: 900 }],
                ..PaymentsFacts::default()
            },
            pipelines: vec![
                PipelineFacts { service: "orders".to_owned(), outbox: vec![command], ..Default::default() },
                PipelineFacts {
                    service: "payments".to_owned(),
                    inbox: vec![InboxFact { message_id: "m1".to_owned(), times_applied: 1 }],
                    ..Default::default()
                },
            ],
            ..Facts::default()
        }
    }

    fn caught(facts: &Facts) -> Vec<(&'static str, ViolationKind)> {
        check(facts, LATER)
            .checks
            .iter()
            .flat_map(|c| c.violations.iter().map(|v| (c.name, v.kind())))
            .collect()
    }

    #[test]
    fn a_healthy_shop_breaks_no_invariant() {
        let report = check(&healthy(), LATER);
        assert!(report.ok(), "{report:?}");
        assert!(report.checks.iter().all(|c| c.name != READ_MODELS), "no read models given, none judged");
    }

    #[test]
    fn stock_taken_twice_is_not_conserved() {
        let mut facts = healthy();
        facts.inventory.products[0].level = StockLevel { available: 7, reserved: 1, sold: 2 };
        assert_eq!(caught(&facts), [(STOCK_CONSERVED, ViolationKind::ReservedCountMismatch)]);
    }

    #[test]
    fn a_confirmed_order_without_its_capture_is_a_payment_mismatch() {
        let mut facts = healthy();
        facts.payments.captures.clear();
        assert_eq!(caught(&facts), [(PAYMENTS_MATCH, ViolationKind::CaptureMismatch)]);
    }

    #[test]
    fn a_command_missing_from_its_targets_inbox_was_lost() {
        let mut facts = healthy();
        facts.pipelines[1].inbox.clear();
        assert_eq!(caught(&facts), [(COMMANDS_APPLIED, ViolationKind::MessageLost)]);
    }

    #[test]
    fn a_message_applied_twice_is_reported_with_its_name() {
        let mut facts = healthy();
        facts.pipelines[1].inbox[0].times_applied = 2;
        let report = check(&facts, LATER);
        let twice: Vec<String> = report.violations().map(ToString::to_string).collect();
        assert_eq!(twice, ["payments applied m1 (payments.CapturePayment) 2 times"]);
    }

    #[test]
    fn work_after_the_cutoff_is_not_judged() {
        let mut facts = healthy();
        facts.orders.orders[0].state.status = OrderStatus::Pending;
        facts.orders.orders[0].placed_at = LATER;
        facts.orders.orders[0].last_at = LATER;
        assert!(check(&facts, LATER).ok());
    }
}
