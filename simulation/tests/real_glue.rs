//! The simulation runs the services' own glue, not a copy of it. Orders' reaction to a saga's
//! move and payments' `Operation` used to be transcribed into the simulation by hand (and an
//! inventory timeout was reported as `out_of_stock` in both places, so neither could catch the
//! other). Now every rejection the simulation reports must be exactly what
//! `tessera_orders::domain::rejection_reason` makes of the saga's recorded failure, every
//! confirmed order must hold what the participants' replies put in the saga's typed data, and
//! every payment must end where `tessera_payments::domain::Operation` takes it. A planted change
//! in that glue (a reason mapped differently, a status renamed) changes what the simulation
//! reports, since it runs the very function; a simulation with its own copy fails here as soon
//! as the copy and the service differ, on any seed that reaches the difference. The seeds
//! below must reach every rejection reason, including the reservation's timeout, so the
//! comparison covers each arm of the real function.
//!
//! The same holds for inventory's and payments' handlers, whose decisions are now their
//! domains' (`tessera_inventory::domain::{Reservation, Move, priced}`,
//! `tessera_payments::domain::{request_authorisation, authorisation_outcome, Operation}`) and
//! which the simulation runs as the services do. The second test states, independently of
//! those functions, what they must come to: an order's total is its reserved lines at their
//! reserved prices, a reservation ends where its order's fate takes it, and a declined
//! payment keeps the reason its card's profile gives. A planted change in any of those
//! functions (a total priced without quantities, a commit that leaves lines held, a decline
//! code renamed) changes what the simulation reports, and this test fails.

use std::collections::{BTreeMap, BTreeSet};

use tessera_contracts::Sku;
use tessera_contracts::orders::RejectionReason;
use tessera_inventory::domain::ReservationState;
use tessera_orders::domain::{OrderStatus, PlaceOrderData, PlaceOrderStep, rejection_reason};
use tessera_payments::domain::{CardProfile, Operation, PaymentStatus};
use tessera_saga::{FailureKind, read_data};
use tessera_simulation::{SimConfig, run_seed};

const SEEDS: std::ops::Range<u64> = 0..300;

#[test]
fn every_rejection_and_confirmation_in_the_simulation_is_the_real_orders_reaction() {
    let config = SimConfig::default();
    let mut reasons = BTreeSet::new();
    let mut confirmed = 0;
    for seed in SEEDS {
        let outcome = run_seed(seed, &config);
        for outcome in &outcome.orders {
            let order = &outcome.order;
            let id = order.id.map(|id| id.to_string()).unwrap_or_default();
            let saga =
                outcome.place_saga.as_ref().unwrap_or_else(|| panic!("seed {seed}: order {id} has no saga"));
            match order.status {
                OrderStatus::Rejected => {
                    let failure = saga.failure.as_ref().unwrap_or_else(|| {
                        panic!("seed {seed}: order {id} rejected, its saga failed nothing")
                    });
                    let expected = rejection_reason(failure);
                    assert_eq!(order.reason, Some(expected), "seed {seed}: order {id} after {failure:?}");
                    if PlaceOrderStep::at(failure.step) == Some(PlaceOrderStep::ReserveStock)
                        && failure.kind == FailureKind::TimedOut
                    {
                        assert_eq!(expected, RejectionReason::InventoryTimeout, "seed {seed}: order {id}");
                    }
                    reasons.insert(format!("{expected:?}"));
                    // Any authorisation made was undone, or the card refused it.
                    if let Some(status) = outcome.payment_status {
                        let undone =
                            PaymentStatus::parse(status).is_some_and(|status| Operation::Void.done(status));
                        assert!(undone, "seed {seed}: rejected order {id}'s payment is {status}");
                    }
                }
                OrderStatus::Confirmed | OrderStatus::Cancelling | OrderStatus::Cancelled => {
                    let data: PlaceOrderData = read_data(&saga.data).expect("the saga's typed data");
                    assert_eq!(
                        order.payment_id,
                        data.payment.map(|p| p.payment_id),
                        "seed {seed}: order {id} holds the payment payments answered with"
                    );
                    assert_eq!(
                        order.total,
                        data.reserved.map(|r| r.total),
                        "seed {seed}: order {id}'s total"
                    );
                    confirmed += 1;
                }
                OrderStatus::Pending | OrderStatus::New => {}
            }
        }
    }
    let expected: BTreeSet<String> = RejectionReason::ALL.iter().map(|r| format!("{r:?}")).collect();
    assert_eq!(reasons, expected, "seeds {SEEDS:?} must reach every rejection reason");
    assert!(confirmed > 0, "no confirmed order in seeds {SEEDS:?}");
}

#[test]
fn every_total_reservation_and_payment_in_the_simulation_is_what_the_real_handlers_decide() {
    let config = SimConfig::default();
    let (mut priced, mut ended, mut declines) = (0, BTreeSet::new(), BTreeSet::new());
    for seed in SEEDS {
        for outcome in &run_seed(seed, &config).orders {
            let order = &outcome.order;
            let id = order.id.map(|id| id.to_string()).unwrap_or_default();
            let lines = outcome.reservation.as_ref().map(|r| r.lines.clone()).unwrap_or_default();
            let states: BTreeSet<ReservationState> = lines.iter().map(|line| line.state).collect();
            // Where the order's fate leaves its reservation, once the run is quiet.
            let expected_state = match order.status {
                OrderStatus::Confirmed => Some(ReservationState::Committed),
                OrderStatus::Cancelled => Some(ReservationState::Restocked),
                OrderStatus::Rejected => Some(ReservationState::Released),
                _ => None,
            };
            if let Some(state) = expected_state
                && !lines.is_empty()
            {
                assert_eq!(states, BTreeSet::from([state]), "seed {seed}: {:?} order {id}", order.status);
                ended.insert(state);
            }
            if matches!(order.status, OrderStatus::Confirmed | OrderStatus::Cancelled) {
                // What was held is what was ordered, and the total is its price, by hand.
                let mut ordered: BTreeMap<&Sku, i64> = BTreeMap::new();
                for line in &order.lines {
                    *ordered.entry(&line.sku).or_default() += i64::from(line.quantity.get());
                }
                let held: BTreeMap<&Sku, i64> = lines.iter().map(|line| (&line.sku, line.quantity)).collect();
                assert_eq!(held, ordered, "seed {seed}: order {id}'s reservation");
                let total: i64 = lines.iter().map(|line| line.quantity * line.unit_price.amount).sum();
                assert_eq!(
                    order.total.as_ref().map(|t| t.amount),
                    Some(total),
                    "seed {seed}: order {id}'s total"
                );
                assert_eq!(order.priced.len(), lines.len(), "seed {seed}: order {id}'s priced lines");
                for (shown, line) in order.priced.iter().zip(&lines) {
                    assert_eq!(
                        (&shown.sku, i64::from(shown.quantity.get()), &shown.unit_price),
                        (&line.sku, line.quantity, &line.unit_price),
                        "seed {seed}: order {id}'s priced line"
                    );
                }
                let paid = if order.status == OrderStatus::Confirmed {
                    PaymentStatus::Captured
                } else {
                    PaymentStatus::Refunded
                };
                assert_eq!(outcome.payment_status, Some(paid.as_str()), "seed {seed}: order {id}'s payment");
                priced += 1;
            }
            if outcome.payment_status == Some(PaymentStatus::Declined.as_str()) {
                // The network declines these two profiles only, each with its own reason.
                let reason = match outcome.card {
                    Some(CardProfile::Decline) => "card_declined",
                    Some(CardProfile::InsufficientFunds) => "insufficient_funds",
                    other => panic!("seed {seed}: order {id}'s payment declined for a card {other:?}"),
                };
                assert_eq!(outcome.payment_reason.as_deref(), Some(reason), "seed {seed}: order {id}");
                // A decline that came after the payment's deadline counts as its timeout.
                let rejected = matches!(
                    order.reason,
                    Some(RejectionReason::PaymentDeclined | RejectionReason::PaymentTimeout)
                );
                assert!(rejected, "seed {seed}: order {id} rejected as {:?}", order.reason);
                declines.insert(reason);
            }
        }
    }
    assert!(priced > 0, "no confirmed or cancelled order in seeds {SEEDS:?}");
    let all_ends = BTreeSet::from([
        ReservationState::Committed,
        ReservationState::Restocked,
        ReservationState::Released,
    ]);
    assert_eq!(ended, all_ends, "seeds {SEEDS:?} must end reservations every way");
    assert_eq!(
        declines,
        BTreeSet::from(["card_declined", "insufficient_funds"]),
        "seeds {SEEDS:?} must decline both ways"
    );
}
