//! Orders over a simulated store: placing and cancelling (the client's calls), saga replies
//! and saga timers. The sagas are the real definitions (`tessera_orders::place_order`,
//! `cancel_order`) over their real typed data (`PlaceOrderData`, `CancelOrderData`), driven by
//! the real `tessera_saga::{start, decide}`; replies are read and commands tagged by the real
//! protocol (`SagaReply`, `SagaTag`), a late reply turned into its step's timeout by the real
//! `reply_input` against the deadline the real `TimerRequest::deadline` sets; what a saga's
//! move means for the order is the real `tessera_orders::domain::{reaction, record}` over the
//! real `Order`. What is the simulation's own is the storage: `apply` writes a decision to the
//! simulated store (state, tagged commands, timers) where the engine writes it to SQL.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_contracts::OrderLine;
use tessera_orders::domain::{
    CancelOrderData, Charged, Order, OrderCommand, OrderEvent, OrderSaga, PlaceOrderData, PublicOutcome,
    Recorded,
};
use tessera_saga::{
    Decision, Input, SagaDefinition, SagaReply, SagaState, SagaTag, TimerPurpose, Transition,
};
use uuid::Uuid;

use crate::error::HandlerError;
use crate::message::{Ids, Kind, Message, MessageId, Service};
use crate::store::{FollowUp, Unit};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerStatus {
    Pending,
    Fired,
    Cancelled,
}

/// A durable timer: a saga's timeout or retry.
#[derive(Clone, Debug)]
pub struct Timer {
    pub due: u64,
    pub saga: &'static str,
    pub saga_id: String,
    pub step: usize,
    pub compensation: bool,
    pub attempt: u32,
    pub purpose: TimerPurpose,
    pub status: TimerStatus,
}

#[derive(Clone, Debug, Default)]
pub struct OrdersState {
    pub streams: BTreeMap<Uuid, Vec<OrderEvent>>,
    /// (customer, request key) → order: placement's idempotency.
    pub requests: BTreeMap<(Uuid, String), Uuid>,
    pub sagas: BTreeMap<(&'static str, String), SagaState>,
    pub timers: BTreeMap<MessageId, Timer>,
}

impl OrdersState {
    pub fn order(&self, order_id: Uuid) -> Order {
        self.streams.get(&order_id).into_iter().flatten().fold(Order::default(), Order::evolve)
    }
}

/// The real saga definitions, with the service's default timeouts.
#[derive(Debug)]
pub struct Sagas {
    pub place: SagaDefinition,
    pub cancel: SagaDefinition,
}

impl Default for Sagas {
    fn default() -> Self {
        let settings = tessera_orders::OrdersSettings::default();
        Self {
            place: tessera_orders::place_order(settings.reserve_timeout, settings.payment_timeout),
            cancel: tessera_orders::cancel_order(),
        }
    }
}

impl Sagas {
    fn definition(&self, name: &str) -> Option<(OrderSaga, &SagaDefinition)> {
        [(OrderSaga::PlaceOrder, &self.place), (OrderSaga::CancelOrder, &self.cancel)]
            .into_iter()
            .find(|(_, d)| d.name == name)
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn corrupt(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Corrupt(e.to_string())
}

/// What the engine's `apply` does: cancel the pending timer, send the commands (tagged),
/// schedule the new timer, store the state.
fn apply(
    definition: &SagaDefinition,
    unit: &mut Unit<OrdersState>,
    decision: Decision,
    now: u64,
    ids: &mut Ids,
) -> Result<SagaState, HandlerError> {
    let Decision { mut state, send, timer, .. } = decision;
    state.deadline = None;
    if let Some(pending) = state.pending_timer.take()
        && let Some(id) = pending.strip_prefix('m').and_then(|n| n.parse().ok())
        && let Some(timer) = unit.state.timers.get_mut(&MessageId(id))
        && timer.status == TimerStatus::Pending
    {
        timer.status = TimerStatus::Cancelled;
    }
    for (step, compensation, command) in send {
        let tag = SagaTag { name: definition.name.to_owned(), id: state.id.clone(), step, compensation };
        let payload = tag.attach(command.payload);
        let target = Service::parse(&command.target)
            .ok_or_else(|| corrupt(format!("no service {}", command.target)))?;
        unit.send(Message {
            id: ids.message(),
            kind: Kind::Command,
            name: command.name,
            source: Service::Orders,
            target: Some(target),
            key: state.id.clone(),
            payload,
        });
    }
    if let Some(timer) = timer {
        let id = ids.message();
        let due = now.saturating_add(micros(timer.after));
        unit.state.timers.insert(
            id,
            Timer {
                due,
                saga: definition.name,
                saga_id: state.id.clone(),
                step: timer.step,
                compensation: timer.compensation,
                attempt: timer.attempt,
                purpose: timer.purpose,
                status: TimerStatus::Pending,
            },
        );
        unit.follow_ups.push(FollowUp::TimerDue(due));
        state.pending_timer = Some(id.to_string());
        state.deadline = timer.deadline(due);
    }
    unit.state.sagas.insert((definition.name, state.id.clone()), state.clone());
    Ok(state)
}

/// What a client asks for when it places an order.
#[derive(Clone, Debug)]
pub struct PlaceRequest {
    pub customer_id: Uuid,
    /// The client's idempotency key.
    pub request_key: String,
    pub lines: Vec<OrderLine>,
    pub payment_token: String,
}

/// `Orders::place`: the order's first event, `OrderPlaced` and the saga's first command in
/// one unit; placing again with the same request key answers with the first order.
pub fn place(
    unit: &mut Unit<OrdersState>,
    sagas: &Sagas,
    request: PlaceRequest,
    now: u64,
    ids: &mut Ids,
) -> Result<Uuid, HandlerError> {
    let PlaceRequest { customer_id, request_key, lines, payment_token } = request;
    if let Some(existing) = unit.state.requests.get(&(customer_id, request_key.clone())) {
        return Ok(*existing);
    }
    let order_id = ids.uuid();
    let command = OrderCommand::Place {
        order_id,
        customer_id,
        lines: lines.clone(),
        payment_token: payment_token.clone(),
        country: None,
    };
    let events = Order::default().decide(command)?;
    unit.state.streams.insert(order_id, events);
    unit.send(event(ids, order_id, "orders.OrderPlaced", json!({})));
    let data = PlaceOrderData { order_id, customer_id, lines, payment_token, reserved: None, payment: None };
    let data = serde_json::to_value(data).map_err(corrupt)?;
    let decision = tessera_saga::start(&sagas.place, order_id.to_string(), data).map_err(corrupt)?;
    apply(&sagas.place, unit, decision, now, ids)?;
    unit.state.requests.insert((customer_id, request_key), order_id);
    Ok(order_id)
}

/// `Orders::cancel`: a confirmed order asks to be cancelled and the cancel saga starts.
pub fn cancel(
    unit: &mut Unit<OrdersState>,
    sagas: &Sagas,
    order_id: Uuid,
    now: u64,
    ids: &mut Ids,
) -> Result<(), HandlerError> {
    let order = unit.state.order(order_id);
    let events = order.decide(OrderCommand::RequestCancel)?;
    unit.state.streams.entry(order_id).or_default().extend(events);
    let total = order.total.clone().ok_or_else(|| corrupt("a confirmed order without a total"))?;
    let data = CancelOrderData { order_id, charged: Charged { total }, customer_id: order.customer_id };
    let data = serde_json::to_value(data).map_err(corrupt)?;
    let decision = tessera_saga::start(&sagas.cancel, order_id.to_string(), data).map_err(corrupt)?;
    apply(&sagas.cancel, unit, decision, now, ids)?;
    Ok(())
}

fn event(ids: &mut Ids, order_id: Uuid, name: &str, mut payload: Value) -> Message {
    payload["order_id"] = json!(order_id);
    Message {
        id: ids.message(),
        kind: Kind::Event,
        name: name.to_owned(),
        source: Service::Orders,
        target: None,
        key: order_id.to_string(),
        payload,
    }
}

/// The handler of saga replies (`impl Handler for Orders`).
pub fn handle(
    unit: &mut Unit<OrdersState>,
    sagas: &Sagas,
    message: &Message,
    now: u64,
    ids: &mut Ids,
) -> Result<(), HandlerError> {
    if message.kind != Kind::Reply || message.target != Some(Service::Orders) {
        return Ok(());
    }
    let Some(SagaReply { saga: tag, outcome }) = SagaReply::read(&message.payload) else { return Ok(()) };
    let Some((saga, definition)) = sagas.definition(&tag.name) else { return Ok(()) };
    let Some(state) = unit.state.sagas.get(&(definition.name, tag.id.clone())).cloned() else {
        return Ok(());
    };
    let before = state.clone();
    // As the engine does: a reply after its step's deadline stands for the timeout.
    let input = tessera_saga::reply_input(definition, &state, tag.step, tag.compensation, outcome, now);
    let decision = tessera_saga::decide(definition, state, input).map_err(corrupt)?;
    if !decision.changed {
        return Ok(());
    }
    let after = apply(definition, unit, decision, now, ids)?;
    react(unit, saga, &Transition { before, after }, ids)
}

/// Fires one due timer (`SagaEngine::fire_due_timers`, one unit per timer). `Ok(false)`: the
/// timer is not pending any more.
pub fn fire_timer(
    unit: &mut Unit<OrdersState>,
    sagas: &Sagas,
    timer_id: MessageId,
    now: u64,
    ids: &mut Ids,
) -> Result<bool, HandlerError> {
    let Some(timer) = unit.state.timers.get_mut(&timer_id).filter(|t| t.status == TimerStatus::Pending)
    else {
        return Ok(false);
    };
    timer.status = TimerStatus::Fired;
    let timer = timer.clone();
    let (saga, definition) =
        sagas.definition(timer.saga).ok_or_else(|| corrupt(format!("no saga {}", timer.saga)))?;
    let Some(state) = unit.state.sagas.get(&(timer.saga, timer.saga_id.clone())).cloned() else {
        return Ok(true);
    };
    let input = Input::Timer {
        step: timer.step,
        compensation: timer.compensation,
        attempt: timer.attempt,
        purpose: timer.purpose,
    };
    let before = state.clone();
    let decision = tessera_saga::decide(definition, state, input).map_err(corrupt)?;
    if decision.changed {
        let after = apply(definition, unit, decision, now, ids)?;
        react(unit, saga, &Transition { before, after }, ids)?;
    }
    Ok(true)
}

/// What a saga's move means for the order: the real `reaction`, recorded (`Inner::react`).
fn react(
    unit: &mut Unit<OrdersState>,
    saga: OrderSaga,
    transition: &Transition,
    ids: &mut Ids,
) -> Result<(), HandlerError> {
    let Some(command) = tessera_orders::domain::reaction(saga, transition).map_err(corrupt)? else {
        return Ok(());
    };
    let order_id: Uuid = transition.after.id.parse().map_err(corrupt)?;
    record(unit, order_id, command, ids)
}

/// Applies an outcome to the order with the real `record`, if it is still open to it
/// (`Inner::record`), and publishes what it says.
fn record(
    unit: &mut Unit<OrdersState>,
    order_id: Uuid,
    command: OrderCommand,
    ids: &mut Ids,
) -> Result<(), HandlerError> {
    let order = unit.state.order(order_id);
    let Some(Recorded { events, after, public }) = tessera_orders::domain::record(&order, command)? else {
        return Ok(());
    };
    let public = public.map(|public| match public {
        PublicOutcome::Confirmed => ("orders.OrderConfirmed", json!({ "total": after.total })),
        PublicOutcome::Rejected(reason) => ("orders.OrderRejected", json!({ "reason": reason })),
        PublicOutcome::Cancelled => ("orders.OrderCancelled", json!({ "refunded": after.total })),
    });
    unit.state.streams.entry(order_id).or_default().extend(events);
    if let Some((name, payload)) = public {
        unit.send(event(ids, order_id, name, payload));
    }
    Ok(())
}
