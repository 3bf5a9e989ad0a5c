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

use std::collections::BTreeSet;

use tessera_contracts::orders::RejectionReason;
use tessera_orders::domain::{OrderStatus, PlaceOrderData, PlaceOrderStep, rejection_reason};
use tessera_payments::domain::Operation;
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
                        let undone = tessera_payments::domain::PaymentStatus::parse(status)
                            .is_some_and(|status| Operation::Void.done(status));
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
