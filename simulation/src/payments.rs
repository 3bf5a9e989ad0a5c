//! Payments' saga handlers and authorisation worker over a simulated store: one payment per
//! order, captures keyed by order. What a command does to a payment is the real domain's
//! (`tessera_payments::domain`): `Operation::settle` (capture, void, refund, a void remembered
//! before the authorisation it cancels, a repeated command answered as done) and
//! `repeated_authorisation` (the first answer stands); the reply data are the contracts'
//! types. The card network is outside every store: it survives crashes and answers a repeated
//! idempotency key with its first answer, like the real acquirer (and the real
//! `SimulatedNetwork`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use tessera_contracts::payments::{
    AuthorisePayment, AuthorisePaymentReply, AuthorisedPayment, CapturePayment, RefundPayment, VoidPayment,
};
use tessera_contracts::{Message as _, Money};
use tessera_payments::domain::{
    CardProfile, Operation, PaymentStatus, RepeatedAuthorisation, Settlement, repeated_authorisation,
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkAnswer {
    Approved(String),
    Declined(&'static str),
}

/// The card network as the outside world: what it did is what the checker trusts for money.
#[derive(Debug, Default)]
pub struct CardNetwork {
    answers: BTreeMap<String, NetworkAnswer>,
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
        outcome: impl Fn(&mut Self) -> Option<NetworkAnswer>,
    ) -> Option<NetworkAnswer> {
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
    ) -> Option<NetworkAnswer> {
        self.operation(rng, key, |network| match profile {
            CardProfile::Decline => Some(NetworkAnswer::Declined("card_declined")),
            CardProfile::InsufficientFunds => Some(NetworkAnswer::Declined("insufficient_funds")),
            CardProfile::Transient => {
                let attempts = network.transient_attempts.entry(key.to_owned()).or_default();
                *attempts += 1;
                (*attempts > TRANSIENT_FAILURES)
                    .then(|| NetworkAnswer::Approved(format!("auth-{key}-{amount}")))
            }
            CardProfile::Approve | CardProfile::Slow => {
                Some(NetworkAnswer::Approved(format!("auth-{key}-{amount}")))
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
            Some(NetworkAnswer::Approved(String::new()))
        })
        .is_some()
    }
}

fn status(payment: &Payment) -> Result<PaymentStatus, HandlerError> {
    PaymentStatus::parse(payment.status)
        .ok_or_else(|| HandlerError::Corrupt(format!("unknown payment status {}", payment.status)))
}

fn authorised_reply(payment: &Payment) -> Result<serde_json::Value, HandlerError> {
    let payment = AuthorisedPayment { payment_id: payment.payment_id, last4: payment.last4.clone() };
    serde_json::to_value(AuthorisePaymentReply { payment }).map_err(|e| HandlerError::Corrupt(e.to_string()))
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

fn event(ids: &mut Ids, cause: &Message, name: &str, order_id: Uuid) -> Message {
    Message {
        id: ids.message(),
        kind: Kind::Event,
        name: name.to_owned(),
        source: Service::Payments,
        target: None,
        key: cause.key.clone(),
        payload: json!({ "order_id": order_id }),
    }
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
    if let Some(payment) = unit.state.payments.get(&command.order_id) {
        let result = match repeated_authorisation(status(payment)?, payment.reason.as_deref()) {
            RepeatedAuthorisation::Wait => return Ok(()),
            RepeatedAuthorisation::Authorised => Ok(Some(authorised_reply(payment)?)),
            RepeatedAuthorisation::Refused(reason) => Err(reason),
        };
        answer(unit, ids, message, result);
        return Ok(());
    }
    if unit.state.voided_orders.contains(&command.order_id) {
        answer(unit, ids, message, Err("payment_cancelled".into()));
        return Ok(());
    }
    let Some(method) =
        unit.state.methods.get(&command.payment_token).filter(|m| m.customer_id == command.customer_id)
    else {
        answer(unit, ids, message, Err("unknown_payment_token".into()));
        return Ok(());
    };
    let payment = Payment {
        payment_id: ids.uuid(),
        status: PaymentStatus::Authorising.as_str(),
        amount: command.amount.clone(),
        last4: method.last4.clone(),
        reason: None,
        authorisation: None,
        token: command.payment_token.clone(),
        request: message.clone(),
    };
    unit.state.payments.insert(command.order_id, payment);
    unit.follow_ups.push(FollowUp::Authorise(command.order_id));
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
    let key = format!("authorise-{order_id}");
    let answer_of_network = match unit.state.methods.get(&payment.token) {
        Some(method) => network.authorise(rng, &key, method.profile, payment.amount.amount),
        // The customer was erased while the request waited: decline.
        None => Some(NetworkAnswer::Declined("card_declined")),
    };
    let request = payment.request.clone();
    let stored = unit
        .state
        .payments
        .get_mut(&order_id)
        .ok_or_else(|| HandlerError::Corrupt("payment vanished".into()))?;
    match answer_of_network {
        Some(NetworkAnswer::Approved(code)) => {
            stored.status = PaymentStatus::Authorised.as_str();
            stored.authorisation = Some(code);
            let data = authorised_reply(&payment)?;
            unit.send(event(ids, &request, "payments.PaymentAuthorised", order_id));
            answer(unit, ids, &request, Ok(Some(data)));
        }
        Some(NetworkAnswer::Declined(code)) => {
            stored.status = PaymentStatus::Declined.as_str();
            stored.reason = Some(code.to_owned());
            unit.send(event(ids, &request, "payments.PaymentDeclined", order_id));
            answer(unit, ids, &request, Err(code.to_owned()));
        }
        None => return Err(HandlerError::Network("processing error".into())),
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
    match operation {
        Operation::Capture => {
            if unit.state.captures.insert(order_id, payment.amount.amount).is_some() {
                return Err(HandlerError::Constraint(format!("a second capture of {order_id}")));
            }
            unit.send(event(ids, message, "payments.PaymentCaptured", order_id));
        }
        Operation::Refund => {
            if unit.state.refunds.insert(order_id, payment.amount.amount).is_some() {
                return Err(HandlerError::Constraint(format!("a second refund of {order_id}")));
            }
            unit.send(event(ids, message, "payments.PaymentRefunded", order_id));
        }
        Operation::Void => {}
    }
    answer(unit, ids, message, Ok(None));
    Ok(())
}
