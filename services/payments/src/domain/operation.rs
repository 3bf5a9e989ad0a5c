//! A payment's life after its authorisation: capture, void and refund move it from one status
//! to the next through the card network. The handler and the simulation both ask
//! [`Operation::settle`] what to do with a command; a command repeated after it went through
//! is answered as done, so redelivery and saga retries are safe.

use tessera_contracts::Money;
use tessera_contracts::payments::{PaymentCaptured, PaymentRefunded};
use uuid::Uuid;

/// A payment's status, as stored (`payments.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PaymentStatus {
    /// Recorded; the authorisation worker has not heard from the network yet.
    Authorising,
    Authorised,
    Declined,
    Voided,
    Captured,
    Refunded,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 6] = [
        PaymentStatus::Authorising,
        PaymentStatus::Authorised,
        PaymentStatus::Declined,
        PaymentStatus::Voided,
        PaymentStatus::Captured,
        PaymentStatus::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Authorising => "authorising",
            PaymentStatus::Authorised => "authorised",
            PaymentStatus::Declined => "declined",
            PaymentStatus::Voided => "voided",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Refunded => "refunded",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentStatus> {
        PaymentStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an `AuthorisePayment` asked again (the order already has a payment) is answered with:
/// the first answer stands, and the card is not charged again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepeatedAuthorisation {
    /// Still with the network: the worker answers when it knows.
    Wait,
    /// It went through: answer with the payment.
    Authorised,
    /// It did not: answer with this reason code.
    Refused(String),
}

/// The answer to an `AuthorisePayment` for an order whose payment is in `status` (refused
/// with `reason`, if it was).
pub fn repeated_authorisation(status: PaymentStatus, reason: Option<&str>) -> RepeatedAuthorisation {
    match status {
        PaymentStatus::Authorising => RepeatedAuthorisation::Wait,
        PaymentStatus::Authorised | PaymentStatus::Captured | PaymentStatus::Refunded => {
            RepeatedAuthorisation::Authorised
        }
        PaymentStatus::Declined | PaymentStatus::Voided => {
            RepeatedAuthorisation::Refused(reason.map_or_else(|| status.as_str().to_owned(), str::to_owned))
        }
    }
}

/// What the sagas ask of an authorised payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Capture,
    Void,
    Refund,
}

/// What to do with an operation's command, given the order's payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// A void before any authorisation: nothing to undo yet; remember the void so that a
    /// later authorisation request is refused instead of holding money. Answered as done.
    RememberVoid,
    /// Already through this operation (a repeated command): answer as done.
    AlreadyDone,
    /// Refuse with this reason code (no payment, or a payment in the wrong status).
    Refuse(String),
    /// Call the network with `key`, then move the payment from `from` to `to`.
    Move { key: String, from: PaymentStatus, to: PaymentStatus },
}

/// What a settled operation leaves besides the payment's new status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Money taken: record the capture (one per order) and announce it.
    Captured(PaymentCaptured),
    /// Money returned: record the refund (one per order) and announce it.
    Refunded(PaymentRefunded),
    /// The hold is gone; no money moved and nothing is announced.
    Voided,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Capture => "capture",
            Operation::Void => "void",
            Operation::Refund => "refund",
        }
    }

    /// The status a payment must be in for the operation.
    pub fn from(self) -> PaymentStatus {
        match self {
            Operation::Capture | Operation::Void => PaymentStatus::Authorised,
            Operation::Refund => PaymentStatus::Captured,
        }
    }

    /// The status the operation leaves the payment in.
    pub fn to(self) -> PaymentStatus {
        match self {
            Operation::Capture => PaymentStatus::Captured,
            Operation::Void => PaymentStatus::Voided,
            Operation::Refund => PaymentStatus::Refunded,
        }
    }

    /// Whether a payment in `status` has already been through this operation.
    pub fn done(self, status: PaymentStatus) -> bool {
        match self {
            Operation::Capture => matches!(status, PaymentStatus::Captured | PaymentStatus::Refunded),
            Operation::Void => matches!(status, PaymentStatus::Voided | PaymentStatus::Declined),
            Operation::Refund => status == PaymentStatus::Refunded,
        }
    }

    /// The card network's idempotency key for this operation on `order_id`'s payment: one per
    /// order and operation, so a retried call never moves money twice.
    pub fn network_key(self, order_id: Uuid) -> String {
        format!("{}-{order_id}", self.name())
    }

    /// What the operation leaves once the network did it to `order_id`'s payment `payment_id`
    /// of `amount`.
    pub fn settled(self, order_id: Uuid, payment_id: Uuid, amount: Money) -> Settled {
        match self {
            Operation::Capture => Settled::Captured(PaymentCaptured { order_id, payment_id, amount }),
            Operation::Refund => Settled::Refunded(PaymentRefunded { order_id, payment_id, amount }),
            Operation::Void => Settled::Voided,
        }
    }

    /// What to do with this operation's command for `order_id`, whose payment (if any) is in
    /// `payment`.
    pub fn settle(self, order_id: Uuid, payment: Option<PaymentStatus>) -> Settlement {
        let Some(status) = payment else {
            return match self {
                Operation::Void => Settlement::RememberVoid,
                Operation::Capture | Operation::Refund => Settlement::Refuse("no_payment".to_owned()),
            };
        };
        if self.done(status) {
            Settlement::AlreadyDone
        } else if status != self.from() {
            Settlement::Refuse(format!("payment_is_{status}"))
        } else {
            Settlement::Move { key: self.network_key(order_id), from: self.from(), to: self.to() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: Uuid = Uuid::nil();

    #[test]
    fn statuses_round_trip_through_their_stored_text() {
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(PaymentStatus::parse("pending"), None);
    }

    #[test]
    fn an_authorised_payment_is_captured_or_voided_and_a_captured_one_refunded() {
        let moved = |operation: Operation, status| match operation.settle(ORDER, Some(status)) {
            Settlement::Move { key, from, to } => Some((key, from, to)),
            _ => None,
        };
        assert_eq!(
            moved(Operation::Capture, PaymentStatus::Authorised),
            Some((format!("capture-{ORDER}"), PaymentStatus::Authorised, PaymentStatus::Captured))
        );
        assert_eq!(
            moved(Operation::Void, PaymentStatus::Authorised),
            Some((format!("void-{ORDER}"), PaymentStatus::Authorised, PaymentStatus::Voided))
        );
        assert_eq!(
            moved(Operation::Refund, PaymentStatus::Captured),
            Some((format!("refund-{ORDER}"), PaymentStatus::Captured, PaymentStatus::Refunded))
        );
    }

    #[test]
    fn a_repeated_operation_is_answered_as_done_without_the_network() {
        for (operation, status) in [
            (Operation::Capture, PaymentStatus::Captured),
            (Operation::Capture, PaymentStatus::Refunded),
            (Operation::Void, PaymentStatus::Voided),
            (Operation::Void, PaymentStatus::Declined),
            (Operation::Refund, PaymentStatus::Refunded),
        ] {
            assert_eq!(
                operation.settle(ORDER, Some(status)),
                Settlement::AlreadyDone,
                "{operation:?} {status}"
            );
        }
    }

    #[test]
    fn an_operation_out_of_turn_is_refused_with_the_payments_status() {
        assert_eq!(
            Operation::Refund.settle(ORDER, Some(PaymentStatus::Authorised)),
            Settlement::Refuse("payment_is_authorised".into())
        );
        assert_eq!(
            Operation::Capture.settle(ORDER, Some(PaymentStatus::Voided)),
            Settlement::Refuse("payment_is_voided".into())
        );
        assert_eq!(
            Operation::Void.settle(ORDER, Some(PaymentStatus::Captured)),
            Settlement::Refuse("payment_is_captured".into())
        );
    }

    #[test]
    fn a_void_before_the_authorisation_is_remembered_and_anything_else_refused() {
        assert_eq!(Operation::Void.settle(ORDER, None), Settlement::RememberVoid);
        assert_eq!(Operation::Capture.settle(ORDER, None), Settlement::Refuse("no_payment".into()));
        assert_eq!(Operation::Refund.settle(ORDER, None), Settlement::Refuse("no_payment".into()));
    }

    #[test]
    fn a_capture_or_refund_records_and_announces_the_money_and_a_void_neither() {
        let amount = Money::new(2500, tessera_contracts::Currency::eur()).expect("money");
        let payment = Uuid::from_u128(7);
        assert_eq!(
            Operation::Capture.settled(ORDER, payment, amount.clone()),
            Settled::Captured(PaymentCaptured {
                order_id: ORDER,
                payment_id: payment,
                amount: amount.clone()
            })
        );
        assert_eq!(
            Operation::Refund.settled(ORDER, payment, amount.clone()),
            Settled::Refunded(PaymentRefunded {
                order_id: ORDER,
                payment_id: payment,
                amount: amount.clone()
            })
        );
        assert_eq!(Operation::Void.settled(ORDER, payment, amount), Settled::Voided);
    }

    #[test]
    fn an_authorisation_asked_again_gets_the_first_answer() {
        assert_eq!(repeated_authorisation(PaymentStatus::Authorising, None), RepeatedAuthorisation::Wait);
        for status in [PaymentStatus::Authorised, PaymentStatus::Captured, PaymentStatus::Refunded] {
            assert_eq!(repeated_authorisation(status, None), RepeatedAuthorisation::Authorised);
        }
        assert_eq!(
            repeated_authorisation(PaymentStatus::Declined, Some("insufficient_funds")),
            RepeatedAuthorisation::Refused("insufficient_funds".into())
        );
        assert_eq!(
            repeated_authorisation(PaymentStatus::Voided, None),
            RepeatedAuthorisation::Refused("voided".into())
        );
    }
}
