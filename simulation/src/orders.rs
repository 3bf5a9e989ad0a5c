//! Orders over a simulated store: placing and cancelling (the client's calls), saga replies
//! and saga timers. The sagas are the real definitions (`tessera_orders::place_order`,
//! `cancel_order`) driven by the real `tessera_saga::{start, decide}`; the order is the real
//! event-sourced `Order`. What glues them (the engine's `apply`, the service's `react` and
//! `record`) follows `crates/saga/src/engine.rs` and `services/orders/src/app/mod.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_contracts::OrderLine;
use tessera_contracts::inventory::Reserved;
use tessera_contracts::orders::RejectionReason;
use tessera_orders::domain::{Order, OrderCommand, OrderError, OrderEvent, OrderStatus};
use tessera_saga::{Decision, Input, Outcome, SagaDefinition, SagaState, Status, TimerPurpose, Transition};
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
    fn definition(&self, name: &str) -> Option<&SagaDefinition> {
        [&self.place, &self.cancel].into_iter().find(|d| d.name == name)
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
    if let Some(pending) = state.pending_timer.take()
        && let Some(id) = pending.strip_prefix('m').and_then(|n| n.parse().ok())
        && let Some(timer) = unit.state.timers.get_mut(&MessageId(id))
        && timer.status == TimerStatus::Pending
    {
        timer.status = TimerStatus::Cancelled;
    }
    for (step, compensation, command) in send {
        let mut payload = command.payload;
        if !payload.is_object() {
            payload = json!({ "value": payload });
        }
        payload["saga"] =
            json!({ "name": definition.name, "id": state.id, "step": step, "compensation": compensation });
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
    let data = json!({ "order_id": order_id, "customer_id": customer_id, "lines": lines, "payment_token": payment_token });
    let decision = tessera_saga::start(&sagas.place, order_id.to_string(), data);
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
    let data = json!({ "order_id": order_id, "reserved": { "total": order.total } });
    let decision = tessera_saga::start(&sagas.cancel, order_id.to_string(), data);
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
    let tag = &message.payload["saga"];
    let Some(definition) = tag["name"].as_str().and_then(|name| sagas.definition(name)) else {
        return Ok(());
    };
    let (Some(id), Some(step)) = (tag["id"].as_str(), tag["step"].as_u64()) else { return Ok(()) };
    let compensation = tag["compensation"].as_bool().unwrap_or(false);
    let outcome = if message.payload["ok"].as_bool() == Some(true) {
        Outcome::Succeeded { data: message.payload.get("data").cloned() }
    } else {
        let reason = message.payload["reason"].as_str().unwrap_or("the step failed").to_owned();
        Outcome::Failed { reason }
    };
    let Some(state) = unit.state.sagas.get(&(definition.name, id.to_owned())).cloned() else { return Ok(()) };
    let step = usize::try_from(step).unwrap_or(usize::MAX);
    let before = state.clone();
    let decision = tessera_saga::decide(definition, state, Input::Reply { step, compensation, outcome });
    if !decision.changed {
        return Ok(());
    }
    let after = apply(definition, unit, decision, now, ids)?;
    react(unit, definition.name, &Transition { before, after }, ids)
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
    let definition =
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
    let decision = tessera_saga::decide(definition, state, input);
    if decision.changed {
        let after = apply(definition, unit, decision, now, ids)?;
        react(unit, definition.name, &Transition { before, after }, ids)?;
    }
    Ok(true)
}

/// What a saga's move means for the order (`Inner::react`).
fn react(
    unit: &mut Unit<OrdersState>,
    saga: &str,
    transition: &Transition,
    ids: &mut Ids,
) -> Result<(), HandlerError> {
    let (before, after) = (&transition.before, &transition.after);
    let order_id: Uuid = after.id.parse().map_err(corrupt)?;
    if saga == tessera_orders::CANCEL_ORDER {
        if after.status == Status::Completed && before.status != Status::Completed {
            record(unit, order_id, OrderCommand::CompleteCancel, ids)?;
        }
        return Ok(());
    }
    let left_running = before.status == Status::Running && after.status != Status::Running;
    if before.step == 0 && after.step >= 1 && after.status == Status::Running {
        let reserved: Reserved = serde_json::from_value(after.data["reserved"].clone()).map_err(corrupt)?;
        record(
            unit,
            order_id,
            OrderCommand::RecordReservation { lines: reserved.lines, total: reserved.total },
            ids,
        )?;
    } else if before.step == 1 && after.step >= 2 && after.status == Status::Running {
        let payment = &after.data["payment"];
        let payment_id = payment["payment_id"].as_str().and_then(|p| p.parse().ok()).unwrap_or_default();
        let last4 = payment["last4"].as_str().unwrap_or_default().to_owned();
        record(unit, order_id, OrderCommand::RecordAuthorisation { payment_id, last4 }, ids)?;
    } else if left_running && matches!(after.status, Status::Compensating | Status::Compensated) {
        let reason = match before.step {
            0 => RejectionReason::OutOfStock,
            _ if after.reason.as_deref().is_some_and(|r| r.contains("timed out")) => {
                RejectionReason::PaymentTimeout
            }
            _ => RejectionReason::PaymentDeclined,
        };
        record(unit, order_id, OrderCommand::Reject { reason }, ids)?;
    }
    Ok(())
}

/// Applies an outcome to the order if it is still open to it (`Inner::record`).
fn record(
    unit: &mut Unit<OrdersState>,
    order_id: Uuid,
    command: OrderCommand,
    ids: &mut Ids,
) -> Result<(), HandlerError> {
    let order = unit.state.order(order_id);
    let events = match order.decide(command) {
        Ok(events) => events,
        // Already decided (a duplicate outcome): nothing to record.
        Err(OrderError::NotPending(_) | OrderError::NotCancelling) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    let after = events.iter().fold(order, |order, event| order.evolve(event));
    let public = match after.status {
        OrderStatus::Confirmed if after.payment_id.is_some() && events.contains(&OrderEvent::Confirmed) => {
            Some(("orders.OrderConfirmed", json!({ "total": after.total })))
        }
        OrderStatus::Rejected => Some(("orders.OrderRejected", json!({ "reason": after.reason }))),
        OrderStatus::Cancelled => Some(("orders.OrderCancelled", json!({ "refunded": after.total }))),
        _ => None,
    };
    unit.state.streams.entry(order_id).or_default().extend(events);
    if let Some((name, payload)) = public {
        unit.send(event(ids, order_id, name, payload));
    }
    Ok(())
}
