//! What a saga's move means for the order, as pure functions: [`reaction`] turns a saga's
//! transition into the command to record on the order (or none), and [`record`] decides that
//! command and says which public event it makes. The service's `app` runs them in the unit of
//! work that applied the saga's move; the simulation runs the very same functions.

use tessera_contracts::orders::RejectionReason;
use tessera_saga::{DataError, FailureKind, Progress, Status, StepFailure, Transition, read_data};

use super::order::{Order, OrderCommand, OrderError, OrderEvent, OrderStatus};
use super::sagas::{OrderSaga, PlaceOrderData, PlaceOrderStep};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReactionError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("saga {saga} {id} moved past step {step}, which it does not have")]
    UnknownStep { saga: &'static str, id: String, step: usize },
    #[error("step {step} of saga {id} succeeded without its reply's {missing}")]
    MissingReplyData { id: String, step: &'static str, missing: &'static str },
}

/// The command a saga's move records on its order; `None` when the move changes nothing the
/// order shows (a retry, a compensation's progress, a step past confirmation).
pub fn reaction(saga: OrderSaga, transition: &Transition) -> Result<Option<OrderCommand>, ReactionError> {
    let after = &transition.after;
    match (saga, transition.progress()) {
        (OrderSaga::CancelOrder, Progress::StepSucceeded { .. }) if after.status == Status::Completed => {
            Ok(Some(OrderCommand::CompleteCancel))
        }
        (OrderSaga::CancelOrder, _) | (OrderSaga::PlaceOrder, Progress::Other) => Ok(None),
        (OrderSaga::PlaceOrder, Progress::StepSucceeded { step }) => {
            let missing = |missing| ReactionError::MissingReplyData {
                id: after.id.clone(),
                step: place_step_name(step),
                missing,
            };
            match PlaceOrderStep::at(step) {
                Some(PlaceOrderStep::ReserveStock) => {
                    let data: PlaceOrderData = read_data(&after.data)?;
                    let reserved = data.reserved.ok_or_else(|| missing("reserved"))?;
                    Ok(Some(OrderCommand::RecordReservation { lines: reserved.lines, total: reserved.total }))
                }
                Some(PlaceOrderStep::AuthorisePayment) => {
                    let data: PlaceOrderData = read_data(&after.data)?;
                    let payment = data.payment.ok_or_else(|| missing("payment"))?;
                    Ok(Some(OrderCommand::RecordAuthorisation {
                        payment_id: payment.payment_id,
                        last4: payment.last4,
                    }))
                }
                Some(PlaceOrderStep::CommitReservation | PlaceOrderStep::CapturePayment) => Ok(None),
                None => Err(ReactionError::UnknownStep { saga: saga.name(), id: after.id.clone(), step }),
            }
        }
        // The order is rejected as soon as a step fails; the undoing goes on behind it.
        (OrderSaga::PlaceOrder, Progress::StepFailed(failure)) => {
            Ok(Some(OrderCommand::Reject { reason: rejection_reason(&failure) }))
        }
    }
}

fn place_step_name(step: usize) -> &'static str {
    PlaceOrderStep::at(step).map_or("?", PlaceOrderStep::name)
}

/// Why an order is rejected when the place-order saga's step failed as `failure` said.
pub fn rejection_reason(failure: &StepFailure) -> RejectionReason {
    match (PlaceOrderStep::at(failure.step), &failure.kind) {
        (Some(PlaceOrderStep::ReserveStock), FailureKind::TimedOut) => RejectionReason::InventoryTimeout,
        (Some(PlaceOrderStep::ReserveStock), FailureKind::Refused { .. }) => RejectionReason::OutOfStock,
        // The steps after the authorisation are retried, never failed; only it gets here.
        (_, FailureKind::TimedOut) => RejectionReason::PaymentTimeout,
        (_, FailureKind::Refused { .. }) => RejectionReason::PaymentDeclined,
    }
}

/// What the order tells the rest of the shop after a recorded command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicOutcome {
    /// `OrderConfirmed`: the payment is authorised, the order is final.
    Confirmed,
    /// `OrderRejected` with its reason.
    Rejected(RejectionReason),
    /// `OrderCancelled`: refunded and restocked.
    Cancelled,
}

/// A command recorded on an order: its events, the order after them, and what to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub events: Vec<OrderEvent>,
    pub after: Order,
    pub public: Option<PublicOutcome>,
}

/// Decides a saga outcome's `command` on `order`. `Ok(None)` when the order has already been
/// decided (a duplicate outcome): nothing to record.
pub fn record(order: &Order, command: OrderCommand) -> Result<Option<Recorded>, OrderError> {
    let events = match order.decide(command) {
        Ok(events) => events,
        Err(OrderError::NotPending(_) | OrderError::NotCancelling) => return Ok(None),
        Err(error) => return Err(error),
    };
    let after = events.iter().fold(order.clone(), |order, event| order.evolve(event));
    let public = match after.status {
        OrderStatus::Confirmed if after.payment_id.is_some() && events.contains(&OrderEvent::Confirmed) => {
            Some(PublicOutcome::Confirmed)
        }
        OrderStatus::Rejected => {
            Some(PublicOutcome::Rejected(after.reason.unwrap_or(RejectionReason::PaymentDeclined)))
        }
        OrderStatus::Cancelled => Some(PublicOutcome::Cancelled),
        _ => None,
    };
    Ok(Some(Recorded { events, after, public }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tessera_saga::SagaState;
    use uuid::Uuid;

    use super::*;

    const ORDER: &str = "0190d1c3-7a00-7000-8000-000000000001";

    fn state(status: Status, step: usize, data: serde_json::Value) -> SagaState {
        SagaState {
            id: ORDER.into(),
            data,
            status,
            step,
            attempt: 0,
            reason: None,
            failure: None,
            stuck: None,
            pending_timer: None,
            deadline: None,
            timings: Vec::new(),
        }
    }

    fn placed() -> serde_json::Value {
        json!({"order_id": ORDER, "customer_id": ORDER, "lines": [{"sku": "TEA-001", "quantity": 2}],
               "payment_token": "tok_1"})
    }

    fn reserved() -> serde_json::Value {
        let mut data = placed();
        data["reserved"] = json!({"lines": [{"sku": "TEA-001", "name": "Tea", "quantity": 2,
            "unit_price": {"amount": 450, "currency": "EUR"}}], "total": {"amount": 900, "currency": "EUR"}});
        data
    }

    fn failed(step: usize, kind: FailureKind) -> Transition {
        let before = state(Status::Running, step, reserved());
        let after = SagaState {
            status: Status::Compensating,
            failure: Some(StepFailure { step, kind }),
            ..before.clone()
        };
        Transition { before, after }
    }

    fn rejected_with(transition: &Transition) -> Option<RejectionReason> {
        match reaction(OrderSaga::PlaceOrder, transition) {
            Ok(Some(OrderCommand::Reject { reason })) => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn a_reservation_that_timed_out_rejects_the_order_with_inventory_timeout() {
        assert_eq!(rejected_with(&failed(0, FailureKind::TimedOut)), Some(RejectionReason::InventoryTimeout));
    }

    #[test]
    fn each_failed_step_rejects_with_its_own_reason() {
        let refused = || FailureKind::Refused { reason: "whatever".into() };
        assert_eq!(rejected_with(&failed(0, refused())), Some(RejectionReason::OutOfStock));
        assert_eq!(rejected_with(&failed(1, refused())), Some(RejectionReason::PaymentDeclined));
        assert_eq!(rejected_with(&failed(1, FailureKind::TimedOut)), Some(RejectionReason::PaymentTimeout));
    }

    #[test]
    fn a_refusal_whose_reason_mentions_a_timeout_is_still_a_refusal() {
        let refused = FailureKind::Refused { reason: "step authorise_payment timed out".into() };
        assert_eq!(rejected_with(&failed(1, refused)), Some(RejectionReason::PaymentDeclined));
    }

    #[test]
    fn a_reservation_records_what_inventory_held() {
        let transition = Transition {
            before: state(Status::Running, 0, placed()),
            after: state(Status::Running, 1, reserved()),
        };
        let Ok(Some(OrderCommand::RecordReservation { lines, total })) =
            reaction(OrderSaga::PlaceOrder, &transition)
        else {
            panic!("no reservation recorded");
        };
        assert_eq!((lines.len(), total.amount), (1, 900));
    }

    #[test]
    fn an_authorisation_records_the_payment_and_one_without_a_payment_is_an_error() {
        let payment_id = Uuid::now_v7();
        let mut authorised = reserved();
        authorised["payment"] = json!({"payment_id": payment_id, "last4": "4242"});
        let transition = Transition {
            before: state(Status::Running, 1, reserved()),
            after: state(Status::Running, 2, authorised),
        };
        assert_eq!(
            reaction(OrderSaga::PlaceOrder, &transition),
            Ok(Some(OrderCommand::RecordAuthorisation { payment_id, last4: "4242".into() }))
        );
        let without = Transition {
            before: state(Status::Running, 1, reserved()),
            after: state(Status::Running, 2, reserved()),
        };
        assert!(
            matches!(
                reaction(OrderSaga::PlaceOrder, &without),
                Err(ReactionError::MissingReplyData { missing: "payment", .. })
            ),
            "never a nil payment id"
        );
    }

    #[test]
    fn steps_past_confirmation_and_compensations_record_nothing() {
        for (before, after) in [
            (state(Status::Running, 2, reserved()), state(Status::Running, 3, reserved())),
            (state(Status::Running, 3, reserved()), state(Status::Completed, 3, reserved())),
            (
                state(Status::Running, 2, reserved()),
                SagaState { attempt: 1, ..state(Status::Running, 2, reserved()) },
            ),
            (state(Status::Compensating, 1, reserved()), state(Status::Compensating, 0, reserved())),
            (state(Status::Compensating, 0, reserved()), state(Status::Compensated, 0, reserved())),
        ] {
            assert_eq!(reaction(OrderSaga::PlaceOrder, &Transition { before, after }), Ok(None));
        }
    }

    #[test]
    fn a_completed_cancel_saga_completes_the_cancellation_and_nothing_before() {
        let data = json!({"order_id": ORDER, "reserved": {"total": {"amount": 900, "currency": "EUR"}}});
        let done = Transition {
            before: state(Status::Running, 1, data.clone()),
            after: state(Status::Completed, 1, data.clone()),
        };
        assert_eq!(reaction(OrderSaga::CancelOrder, &done), Ok(Some(OrderCommand::CompleteCancel)));
        let refunded = Transition {
            before: state(Status::Running, 0, data.clone()),
            after: state(Status::Running, 1, data),
        };
        assert_eq!(reaction(OrderSaga::CancelOrder, &refunded), Ok(None));
    }

    fn pending() -> Order {
        let placed = OrderEvent::Placed {
            order_id: Uuid::nil(),
            customer_id: Uuid::nil(),
            lines: Vec::new(),
            payment_token: "tok".into(),
            country: None,
        };
        Order::default().evolve(&placed)
    }

    #[test]
    fn recording_a_rejection_publishes_it_once() {
        let reject = || OrderCommand::Reject { reason: RejectionReason::InventoryTimeout };
        let recorded = record(&pending(), reject()).expect("decided").expect("recorded");
        assert_eq!(recorded.public, Some(PublicOutcome::Rejected(RejectionReason::InventoryTimeout)));
        assert_eq!(record(&recorded.after, reject()), Ok(None), "a duplicate outcome records nothing");
    }

    #[test]
    fn recording_an_authorisation_confirms_and_publishes_the_order() {
        let command = OrderCommand::RecordAuthorisation { payment_id: Uuid::now_v7(), last4: "4242".into() };
        let recorded = record(&pending(), command).expect("decided").expect("recorded");
        assert_eq!(recorded.after.status, OrderStatus::Confirmed);
        assert_eq!(recorded.public, Some(PublicOutcome::Confirmed));
    }
}
