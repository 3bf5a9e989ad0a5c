//! A payment's authorisation, in two halves. The `AuthorisePayment` handler asks
//! [`request_authorisation`] whether to answer at once (a repeated request, a void that came
//! first, a card that is not the customer's) or to record the request; the authorisation
//! worker then takes a recorded request to the card network under [`authorisation_key`]
//! (declining at once, per [`card_to_charge`], when the card was erased in between) and
//! records what [`authorisation_outcome`] makes of the answer. The handler, the worker and the
//! simulation all run these functions around their own storage.

use tessera_contracts::Money;
use tessera_contracts::payments::{
    AuthorisePaymentReply, AuthorisedPayment, DeclineReason, PaymentAuthorised, PaymentDeclined,
};
use uuid::Uuid;

use super::card::CardProfile;
use super::operation::{PaymentStatus, RepeatedAuthorisation, repeated_authorisation};

/// Why an `AuthorisePayment` is refused before any network call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorisationRefusal {
    /// The order's payment was voided before it was ever asked for (the saga gave up first).
    Cancelled,
    /// No card with this token, or not the customer's.
    UnknownToken,
}

impl AuthorisationRefusal {
    /// The reason code the saga sees.
    pub fn code(self) -> &'static str {
        match self {
            AuthorisationRefusal::Cancelled => "payment_cancelled",
            AuthorisationRefusal::UnknownToken => "unknown_payment_token",
        }
    }
}

/// What to do with an `AuthorisePayment` command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorisationRequest {
    /// The order has a payment already: the first answer stands.
    Repeated(RepeatedAuthorisation),
    /// Answer with the refusal's code; record nothing.
    Refuse(AuthorisationRefusal),
    /// Record the request as [`PaymentStatus::Authorising`]: the worker calls the network
    /// and answers, so a slow card network never holds up other orders' messages.
    Record,
}

/// What to do with an `AuthorisePayment` from `customer_id`, given the order's payment if it
/// has one (its status and, if refused, its reason), whether the order was voided before any
/// payment, and who owns the named card (`None`: no such card).
pub fn request_authorisation(
    payment: Option<(PaymentStatus, Option<&str>)>,
    voided: bool,
    card_owner: Option<Uuid>,
    customer_id: Uuid,
) -> AuthorisationRequest {
    if let Some((status, reason)) = payment {
        return AuthorisationRequest::Repeated(repeated_authorisation(status, reason));
    }
    if voided {
        return AuthorisationRequest::Refuse(AuthorisationRefusal::Cancelled);
    }
    if card_owner != Some(customer_id) {
        return AuthorisationRequest::Refuse(AuthorisationRefusal::UnknownToken);
    }
    AuthorisationRequest::Record
}

/// The saga reply's data for an authorised payment (first time or asked again).
pub fn authorised_reply(payment_id: Uuid, last4: String) -> AuthorisePaymentReply {
    AuthorisePaymentReply { payment: AuthorisedPayment { payment_id, last4 } }
}

/// The card network's idempotency key for `order_id`'s authorisation: one per order, so a
/// retried or redelivered request never holds money twice.
pub fn authorisation_key(order_id: Uuid) -> String {
    format!("authorise-{order_id}")
}

/// The card a recorded request may be charged to. A card erased while the request waited
/// (its customer was erased) is gone, and so is any right to charge it: the request is
/// declined without asking the network, which lets the saga release the stock.
pub fn card_to_charge(profile: Option<CardProfile>) -> Result<CardProfile, DeclineReason> {
    profile.ok_or(DeclineReason::CardDeclined)
}

/// The stable code of a decline: the reason the saga sees and the payment keeps.
pub fn decline_code(reason: DeclineReason) -> &'static str {
    match reason {
        DeclineReason::CardDeclined => "card_declined",
        DeclineReason::InsufficientFunds => "insufficient_funds",
    }
}

/// The network's definitive answer to an authorisation (a transient failure is no answer:
/// the request stays recorded and the worker tries again later).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorisationAnswer {
    /// Approved, with the network's authorisation code.
    Approved(String),
    Declined(DeclineReason),
}

/// A recorded request the worker has an answer for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub amount: Money,
    pub last4: String,
}

/// What an answered request becomes, written in one unit: the payment's new status (from
/// [`PaymentStatus::Authorising`]), its event, and the saga's reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorisationOutcome {
    /// Store the authorisation code, announce `event`, reply with `reply`.
    Authorised { authorisation: String, event: PaymentAuthorised, reply: AuthorisePaymentReply },
    /// Store the decline's code as the payment's reason, announce `event`, refuse with the
    /// code.
    Declined { reason: &'static str, event: PaymentDeclined },
}

impl AuthorisationOutcome {
    /// The status the payment moves to.
    pub fn status(&self) -> PaymentStatus {
        match self {
            AuthorisationOutcome::Authorised { .. } => PaymentStatus::Authorised,
            AuthorisationOutcome::Declined { .. } => PaymentStatus::Declined,
        }
    }
}

/// What `request` becomes once the network gave `answer`.
pub fn authorisation_outcome(request: RecordedRequest, answer: AuthorisationAnswer) -> AuthorisationOutcome {
    match answer {
        AuthorisationAnswer::Approved(authorisation) => {
            let reply = authorised_reply(request.payment_id, request.last4.clone());
            let event = PaymentAuthorised {
                order_id: request.order_id,
                payment_id: request.payment_id,
                amount: request.amount,
                last4: request.last4,
            };
            AuthorisationOutcome::Authorised { authorisation, event, reply }
        }
        AuthorisationAnswer::Declined(reason) => AuthorisationOutcome::Declined {
            reason: decline_code(reason),
            event: PaymentDeclined { order_id: request.order_id, reason },
        },
    }
}

#[cfg(test)]
mod tests {
    use tessera_contracts::Currency;

    use super::*;

    const ORDER: Uuid = Uuid::from_u128(1);
    const CUSTOMER: Uuid = Uuid::from_u128(2);
    const PAYMENT: Uuid = Uuid::from_u128(3);

    fn request() -> RecordedRequest {
        RecordedRequest {
            order_id: ORDER,
            payment_id: PAYMENT,
            amount: Money::new(2500, Currency::eur()).expect("money"),
            last4: "4242".into(),
        }
    }

    #[test]
    fn a_first_request_for_the_customers_card_is_recorded() {
        assert_eq!(
            request_authorisation(None, false, Some(CUSTOMER), CUSTOMER),
            AuthorisationRequest::Record
        );
    }

    #[test]
    fn a_request_after_a_void_or_for_anothers_card_is_refused() {
        assert_eq!(
            request_authorisation(None, true, Some(CUSTOMER), CUSTOMER),
            AuthorisationRequest::Refuse(AuthorisationRefusal::Cancelled)
        );
        for owner in [None, Some(Uuid::from_u128(9))] {
            assert_eq!(
                request_authorisation(None, false, owner, CUSTOMER),
                AuthorisationRequest::Refuse(AuthorisationRefusal::UnknownToken)
            );
        }
        assert_eq!(AuthorisationRefusal::Cancelled.code(), "payment_cancelled");
        assert_eq!(AuthorisationRefusal::UnknownToken.code(), "unknown_payment_token");
    }

    #[test]
    fn a_repeated_request_gets_the_first_answer_whatever_else_changed() {
        // The card erased since, or a void remembered: the payment's own answer stands.
        assert_eq!(
            request_authorisation(Some((PaymentStatus::Authorised, None)), true, None, CUSTOMER),
            AuthorisationRequest::Repeated(RepeatedAuthorisation::Authorised)
        );
        assert_eq!(
            request_authorisation(Some((PaymentStatus::Authorising, None)), false, Some(CUSTOMER), CUSTOMER),
            AuthorisationRequest::Repeated(RepeatedAuthorisation::Wait)
        );
        assert_eq!(
            request_authorisation(
                Some((PaymentStatus::Declined, Some("insufficient_funds"))),
                false,
                None,
                CUSTOMER
            ),
            AuthorisationRequest::Repeated(RepeatedAuthorisation::Refused("insufficient_funds".into()))
        );
    }

    #[test]
    fn an_erased_card_is_declined_without_the_network() {
        assert_eq!(card_to_charge(None), Err(DeclineReason::CardDeclined));
        assert_eq!(card_to_charge(Some(CardProfile::Slow)), Ok(CardProfile::Slow));
        assert_eq!(authorisation_key(ORDER), format!("authorise-{ORDER}"));
    }

    #[test]
    fn an_approval_authorises_the_payment_announces_it_and_replies_with_it() {
        let outcome = authorisation_outcome(request(), AuthorisationAnswer::Approved("auth-1".into()));
        assert_eq!(outcome.status(), PaymentStatus::Authorised);
        let AuthorisationOutcome::Authorised { authorisation, event, reply } = outcome else {
            panic!("not authorised")
        };
        assert_eq!(authorisation, "auth-1");
        assert_eq!((event.order_id, event.payment_id, event.amount.amount), (ORDER, PAYMENT, 2500));
        assert_eq!(reply, authorised_reply(PAYMENT, "4242".into()));
    }

    #[test]
    fn a_decline_keeps_its_code_as_the_reason_and_announces_it() {
        for reason in [DeclineReason::CardDeclined, DeclineReason::InsufficientFunds] {
            let outcome = authorisation_outcome(request(), AuthorisationAnswer::Declined(reason));
            assert_eq!(outcome.status(), PaymentStatus::Declined);
            let code = serde_json::to_value(reason).expect("json");
            assert_eq!(Some(decline_code(reason)), code.as_str(), "the code is the contract's name");
            assert_eq!(
                outcome,
                AuthorisationOutcome::Declined {
                    reason: decline_code(reason),
                    event: PaymentDeclined { order_id: ORDER, reason },
                }
            );
        }
    }
}
