//! Payments' saga handlers and authorisation worker over a simulated store: one payment per
//! order, captures keyed by order. Every decision is the real domain's
//! (`tessera_payments::domain`): `request_authorisation` (a repeated request's first answer, a
//! void that came first, a card that is not the customer's, or record the request),
//! `card_to_charge`, `authorisation_key` and `authorisation_outcome` for the worker (the
//! payment's new status, its event, the reply), `Operation::settle` and `Operation::settled`
//! for capture, void and refund. The simulation's own are its rows and its card network,
//! which is outside every store: it survives crashes and answers a repeated idempotency key
//! with its first answer, like the real acquirer (and the real `SimulatedNetwork`).

use std::collections::{BTreeMap, BTreeSet};

use tessera_contracts::payments::{
    AuthorisePayment, CapturePayment, DeclineReason, RefundPayment, VoidPayment,
};
use tessera_contracts::{Message as _, Money};
use tessera_payments::domain::{
    AuthorisationAnswer, AuthorisationOutcome, AuthorisationRequest, CardProfile, Operation, PaymentStatus,
    RecordedRequest, RepeatedAuthorisation, Settled, Settlement, authorisation_key, authorisation_outcome,
    authorised_reply, card_to_charge, request_authorisation,
};
use uuid::Uuid;

use crate::error::{HandlerError, parse};
use crate::message::{Ids, Kind, Message, Service};
use crate::rng::SimRng;
use crate::saga_reply::reply;
use crate::store::{FollowUp, Unit};

#[derive(Clone, Debug)]
pub struct PaymentMethod {
    pub customer_id: Uuid,
    pub last4: String,
    pub profile: CardProfile,
}

#[derive(Clone, Debug)]
pub struct Payment {
    pub payment_id: Uuid,
    /// `PaymentStatus::as_str`, as the real table stores it.
    pub status: &'static str,
    pub amount: Money,
    pub last4: String,
    pub reason: Option<String>,
    pub authorisation: Option<String>,
    pub token: String,
    /// The authorisation request, answered by the worker.
    pub request: Message,
}

#[derive(Clone, Debug, Default)]
pub struct PaymentsState {
    pub methods: BTreeMap<String, PaymentMethod>,
    pub payments: BTreeMap<Uuid, Payment>,
    pub captures: BTreeMap<Uuid, i64>,
    pub refunds: BTreeMap<Uuid, i64>,
    pub voided_orders: BTreeSet<Uuid>,
}

/// The card network as the outside world: what it did is what the checker trusts for money.
#[derive(Debug, Default)]
pub struct CardNetwork {
    answers: BTreeMap<String, AuthorisationAnswer>,
    transient_attempts: BTreeMap<String, u32>,
    /// Money moved per idempotency key.
    pub captured: BTreeMap<String, i64>,
    pub refunded: BTreeMap<String, i64>,
    pub voided: BTreeSet<String>,
    /// Chance per call of a transient failure, per mille.
    pub failure_per_mille: u32,
}

/// Transient-profile cards fail this many times per key before they are approved (as the
/// real network's default).
const TRANSIENT_FAILURES: u32 = 2;
/// Attempts per round, as `Payments::network_attempts`.
const NETWORK_ATTEMPTS: u32 = 3;

impl CardNetwork {
    fn operation(
        &mut self,
        rng: &mut SimRng,
        key: &str,
        outcome: impl Fn(&mut Self) -> Option<AuthorisationAnswer>,
    ) -> Option<AuthorisationAnswer> {
        for _ in 0..NETWORK_ATTEMPTS {
            if let Some(answer) = self.answers.get(key) {
                return Some(answer.clone());
            }
            if rng.chance(self.failure_per_mille) {
                continue;
            }
            if let Some(answer) = outcome(self) {
                self.answers.insert(key.to_owned(), answer.clone());
                return Some(answer);
            }
        }
        None
    }

    /// `None`: every attempt of this round failed transiently.
    pub fn authorise(
        &mut self,
        rng: &mut SimRng,
        key: &str,
        profile: CardProfile,
        amount: i64,
    ) -> Option<AuthorisationAnswer> {
        self.operation(rng, key, |network| match profile {
            CardProfile::Decline => Some(AuthorisationAnswer::Declined(DeclineReason::CardDeclined)),
            CardProfile::InsufficientFunds => {
                Some(AuthorisationAnswer::Declined(DeclineReason::InsufficientFunds))
            }
            CardProfile::Transient => {
                let attempts = network.transient_attempts.entry(key.to_owned()).or_default();
                *attempts += 1;
                (*attempts > TRANSIENT_FAILURES)
                    .then(|| AuthorisationAnswer::Approved(format!("auth-{key}-{amount}")))
            }
            CardProfile::Approve | CardProfile::Slow => {
                Some(AuthorisationAnswer::Approved(format!("auth-{key}-{amount}")))
            }
        })
    }

    fn settle(&mut self, rng: &mut SimRng, operation: Operation, key: &str, amount: i64) -> bool {
        self.operation(rng, key, |network| {
            match operation {
                Operation::Capture => *network.captured.entry(key.to_owned()).or_default() += amount,
                Operation::Refund => *network.refunded.entry(key.to_owned()).or_default() += amount,
                Operation::Void => {
                    network.voided.insert(key.to_owned());
                }
            }
            Some(AuthorisationAnswer::Approved(String::new()))
        })
        .is_some()
    }
}

fn status(payment: &Payment) -> Result<PaymentStatus, HandlerError> {
    PaymentStatus::parse(payment.status)
        .ok_or_else(|| HandlerError::Corrupt(format!("unknown payment status {}", payment.status)))
}

fn answer(
    unit: &mut Unit<PaymentsState>,
    ids: &mut Ids,
    command: &Message,
    result: Result<Option<serde_json::Value>, String>,
) {
    if let Some(reply) = reply(command, ids, result) {
        unit.send(reply);
    }
}

fn event<M: serde::Serialize + tessera_contracts::Message>(
    ids: &mut Ids,
    cause: &Message,
    event: &M,
) -> Result<Message, HandlerError> {
    Ok(Message {
        id: ids.message(),
        kind: Kind::Event,
        name: M::NAME.to_owned(),
        source: Service::Payments,
        target: None,
        key: cause.key.clone(),
        payload: serde_json::to_value(event).map_err(|e| HandlerError::Corrupt(e.to_string()))?,
    })
}

fn to_value(value: impl serde::Serialize) -> Result<serde_json::Value, HandlerError> {
    serde_json::to_value(value).map_err(|e| HandlerError::Corrupt(e.to_string()))
}

pub fn handle(
    unit: &mut Unit<PaymentsState>,
    message: &Message,
    ids: &mut Ids,
    network: &mut CardNetwork,
    rng: &mut SimRng,
) -> Result<(), HandlerError> {
    if message.target != Some(Service::Payments) {
        return Ok(());
    }
    match message.name.as_str() {
        AuthorisePayment::NAME => authorise(unit, message, ids),
        CapturePayment::NAME => {
            let command: CapturePayment = parse(&message.name, &message.payload)?;
            settle(unit, message, ids, network, rng, command.order_id, Operation::Capture)
        }
        VoidPayment::NAME => {
            let command: VoidPayment = parse(&message.name, &message.payload)?;
            settle(unit, message, ids, network, rng, command.order_id, Operation::Void)
        }
        RefundPayment::NAME => {
            let command: RefundPayment = parse(&message.name, &message.payload)?;
            settle(unit, message, ids, network, rng, command.order_id, Operation::Refund)
        }
        other => Err(HandlerError::Corrupt(format!("payments has no command {other}"))),
    }
}

fn authorise(unit: &mut Unit<PaymentsState>, message: &Message, ids: &mut Ids) -> Result<(), HandlerError> {
    let command: AuthorisePayment = parse(&message.name, &message.payload)?;
    let state = &unit.state;
    let payment = state.payments.get(&command.order_id);
    let stored = match payment {
        Some(payment) => Some((status(payment)?, payment.reason.as_deref())),
        None => None,
    };
    let voided = state.voided_orders.contains(&command.order_id);
    let method = state.methods.get(&command.payment_token);
    let result =
        match request_authorisation(stored, voided, method.map(|m| m.customer_id), command.customer_id) {
            AuthorisationRequest::Repeated(RepeatedAuthorisation::Wait) => return Ok(()),
            AuthorisationRequest::Repeated(RepeatedAuthorisation::Authorised) => {
                let payment =
                    payment.ok_or_else(|| HandlerError::Corrupt("a repeat without a payment".into()))?;
                Ok(Some(to_value(authorised_reply(payment.payment_id, payment.last4.clone()))?))
            }
            AuthorisationRequest::Repeated(RepeatedAuthorisation::Refused(reason)) => Err(reason),
            AuthorisationRequest::Refuse(refusal) => Err(refusal.code().to_owned()),
            AuthorisationRequest::Record => {
                let last4 = method.map(|m| m.last4.clone()).unwrap_or_default();
                let payment = Payment {
                    payment_id: ids.uuid(),
                    status: PaymentStatus::Authorising.as_str(),
                    amount: command.amount.clone(),
                    last4,
                    reason: None,
                    authorisation: None,
                    token: command.payment_token.clone(),
                    request: message.clone(),
                };
                unit.state.payments.insert(command.order_id, payment);
                unit.follow_ups.push(FollowUp::Authorise(command.order_id));
                return Ok(());
            }
        };
    answer(unit, ids, message, result);
    Ok(())
}

/// What the authorisation worker does for one recorded request (`authorise_recorded`).
/// `Ok(false)`: nothing to do. An error leaves the request for the next round.
pub fn authorise_recorded(
    unit: &mut Unit<PaymentsState>,
    order_id: Uuid,
    ids: &mut Ids,
    network: &mut CardNetwork,
    rng: &mut SimRng,
) -> Result<bool, HandlerError> {
    let Some(payment) = unit
        .state
        .payments
        .get(&order_id)
        .filter(|p| p.status == PaymentStatus::Authorising.as_str())
        .cloned()
    else {
        return Ok(false);
    };
    let key = authorisation_key(order_id);
    let profile = unit.state.methods.get(&payment.token).map(|method| method.profile);
    let network_answer = match card_to_charge(profile) {
        Ok(profile) => network.authorise(rng, &key, profile, payment.amount.amount),
        Err(reason) => Some(AuthorisationAnswer::Declined(reason)),
    };
    let Some(network_answer) = network_answer else {
        return Err(HandlerError::Network("processing error".into()));
    };
    let request = RecordedRequest {
        order_id,
        payment_id: payment.payment_id,
        amount: payment.amount.clone(),
        last4: payment.last4.clone(),
    };
    let outcome = authorisation_outcome(request, network_answer);
    let stored = unit
        .state
        .payments
        .get_mut(&order_id)
        .ok_or_else(|| HandlerError::Corrupt("payment vanished".into()))?;
    stored.status = outcome.status().as_str();
    match outcome {
        AuthorisationOutcome::Authorised { authorisation, event: authorised, reply } => {
            stored.authorisation = Some(authorisation);
            unit.send(event(ids, &payment.request, &authorised)?);
            answer(unit, ids, &payment.request, Ok(Some(to_value(reply)?)));
        }
        AuthorisationOutcome::Declined { reason, event: declined } => {
            stored.reason = Some(reason.to_owned());
            unit.send(event(ids, &payment.request, &declined)?);
            answer(unit, ids, &payment.request, Err(reason.to_owned()));
        }
    }
    Ok(true)
}

fn settle(
    unit: &mut Unit<PaymentsState>,
    message: &Message,
    ids: &mut Ids,
    network: &mut CardNetwork,
    rng: &mut SimRng,
    order_id: Uuid,
    operation: Operation,
) -> Result<(), HandlerError> {
    let payment = unit.state.payments.get(&order_id).cloned();
    let current = payment.as_ref().map(status).transpose()?;
    let (key, to, payment) = match (operation.settle(order_id, current), payment) {
        (Settlement::RememberVoid, _) => {
            unit.state.voided_orders.insert(order_id);
            answer(unit, ids, message, Ok(None));
            return Ok(());
        }
        (Settlement::AlreadyDone, _) => {
            answer(unit, ids, message, Ok(None));
            return Ok(());
        }
        (Settlement::Refuse(reason), _) => {
            answer(unit, ids, message, Err(reason));
            return Ok(());
        }
        (Settlement::Move { key, to, .. }, Some(payment)) => (key, to, payment),
        (Settlement::Move { .. }, None) => return Err(HandlerError::Corrupt("a move for no payment".into())),
    };
    // The money moves here, outside the store: a crash after this line and before commit
    // sends the same key again on redelivery.
    if !network.settle(rng, operation, &key, payment.amount.amount) {
        return Err(HandlerError::Network("transient network error".into()));
    }
    if let Some(stored) = unit.state.payments.get_mut(&order_id) {
        stored.status = to.as_str();
    }
    match operation.settled(order_id, payment.payment_id, payment.amount.clone()) {
        Settled::Captured(captured) => {
            if unit.state.captures.insert(order_id, captured.amount.amount).is_some() {
                return Err(HandlerError::Constraint(format!("a second capture of {order_id}")));
            }
            unit.send(event(ids, message, &captured)?);
        }
        Settled::Refunded(refunded) => {
            if unit.state.refunds.insert(order_id, refunded.amount.amount).is_some() {
                return Err(HandlerError::Constraint(format!("a second refund of {order_id}")));
            }
            unit.send(event(ids, message, &refunded)?);
        }
        Settled::Voided => {}
    }
    answer(unit, ids, message, Ok(None));
    Ok(())
}
