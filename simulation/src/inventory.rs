//! Inventory's saga handlers over a simulated store. Every decision is the real domain's
//! (`tessera_inventory::domain`): `Reservation::reserve` (a closed reservation, a repeated
//! command, the stock plan, mixed currencies, the priced reply) and `Reservation::plan_move`
//! with `Move` (which lines a release, commit or restock moves, what it does to their level,
//! the `StockChanged` it announces, whether it closes the reservation). What is the
//! simulation's own is its storage: a map of products and one of reservations per order.

use std::collections::BTreeMap;

use tessera_contracts::inventory::{
    CommitReservation, ReleaseStock, ReserveStock, ReserveStockReply, Restock, StockChanged,
};
use tessera_contracts::{Message as _, Sku};
use tessera_inventory::domain::{Move, Reservation, ReserveDecision, Stocked, reserved_change};
use uuid::Uuid;

use crate::Bugs;
use crate::error::{HandlerError, parse};
use crate::message::{Ids, Kind, Message, Service};
use crate::saga_reply::reply;
use crate::store::Unit;

#[derive(Clone, Debug, Default)]
pub struct InventoryState {
    /// `products`: the real domain's view of each.
    pub products: BTreeMap<Sku, Stocked>,
    /// `reservations` and `released_orders`, per order.
    pub reservations: BTreeMap<Uuid, Reservation>,
}

fn stock_changed(ids: &mut Ids, cause: &Message, change: &StockChanged) -> Result<Message, HandlerError> {
    Ok(Message {
        id: ids.message(),
        kind: Kind::Event,
        name: StockChanged::NAME.into(),
        source: Service::Inventory,
        target: None,
        key: cause.key.clone(),
        payload: serde_json::to_value(change).map_err(|e| HandlerError::Corrupt(e.to_string()))?,
    })
}

fn answer(
    unit: &mut Unit<InventoryState>,
    ids: &mut Ids,
    command: &Message,
    result: Result<Option<serde_json::Value>, String>,
) {
    if let Some(reply) = reply(command, ids, result) {
        unit.send(reply);
    }
}

pub fn handle(
    unit: &mut Unit<InventoryState>,
    message: &Message,
    ids: &mut Ids,
    bugs: &Bugs,
) -> Result<(), HandlerError> {
    if message.target != Some(Service::Inventory) {
        return Ok(());
    }
    match message.name.as_str() {
        ReserveStock::NAME => reserve(unit, message, ids),
        ReleaseStock::NAME => {
            let command: ReleaseStock = parse(&message.name, &message.payload)?;
            if bugs.keep_stock_on_release {
                // The planted bug: say it is done, move nothing.
                answer(unit, ids, message, Ok(None));
                return Ok(());
            }
            move_units(unit, message, ids, command.order_id, Move::Release)
        }
        CommitReservation::NAME => {
            let command: CommitReservation = parse(&message.name, &message.payload)?;
            move_units(unit, message, ids, command.order_id, Move::Commit)
        }
        Restock::NAME => {
            let command: Restock = parse(&message.name, &message.payload)?;
            move_units(unit, message, ids, command.order_id, Move::Restock)
        }
        other => Err(HandlerError::Corrupt(format!("inventory has no command {other}"))),
    }
}

fn reserve(unit: &mut Unit<InventoryState>, message: &Message, ids: &mut Ids) -> Result<(), HandlerError> {
    let command: ReserveStock = parse(&message.name, &message.payload)?;
    let reservation = unit.state.reservations.get(&command.order_id).cloned().unwrap_or_default();
    let stock: BTreeMap<Sku, Stocked> = command
        .lines
        .iter()
        .filter_map(|line| unit.state.products.get(&line.sku).map(|p| (line.sku.clone(), p.clone())))
        .collect();
    let corrupt = |e: &dyn std::fmt::Display| HandlerError::Corrupt(e.to_string());
    let (lines, reserved) = match reservation.reserve(&command.lines, &stock).map_err(|e| corrupt(&e))? {
        ReserveDecision::Refuse(refusal) => {
            if refusal.closes() {
                unit.state.reservations.entry(command.order_id).or_default().closed = true;
            }
            answer(unit, ids, message, Err(refusal.code().to_owned()));
            return Ok(());
        }
        ReserveDecision::AlreadyHeld(reserved) => {
            let reply = serde_json::to_value(ReserveStockReply { reserved }).map_err(|e| corrupt(&e))?;
            answer(unit, ids, message, Ok(Some(reply)));
            return Ok(());
        }
        ReserveDecision::Hold { lines, reserved } => (lines, reserved),
    };
    for line in lines {
        let product = unit
            .state
            .products
            .get_mut(&line.sku)
            .ok_or_else(|| HandlerError::Corrupt(format!("{} vanished", line.sku)))?;
        product.level = product.level.reserve(&line.sku, line.quantity)?;
        let change = reserved_change(line.sku.clone(), command.order_id, line.quantity);
        unit.state.reservations.entry(command.order_id).or_default().lines.push(line);
        unit.send(stock_changed(ids, message, &change)?);
    }
    let reply = serde_json::to_value(ReserveStockReply { reserved }).map_err(|e| corrupt(&e))?;
    answer(unit, ids, message, Ok(Some(reply)));
    Ok(())
}

fn move_units(
    unit: &mut Unit<InventoryState>,
    message: &Message,
    ids: &mut Ids,
    order_id: Uuid,
    step: Move,
) -> Result<(), HandlerError> {
    let reservation = unit.state.reservations.entry(order_id).or_default();
    let plan = reservation.plan_move(step);
    if plan.close {
        reservation.closed = true;
    }
    for moved in plan.lines {
        let product = unit
            .state
            .products
            .get_mut(&moved.sku)
            .ok_or_else(|| HandlerError::Corrupt(format!("{} vanished", moved.sku)))?;
        product.level = step.apply(product.level, &moved.sku, moved.quantity)?;
        let reservation = unit.state.reservations.entry(order_id).or_default();
        for stored in &mut reservation.lines {
            if stored.sku == moved.sku && stored.state == step.source_state() {
                stored.state = step.target_state();
            }
        }
        unit.send(stock_changed(ids, message, &step.change(moved.sku, order_id, moved.quantity))?);
    }
    answer(unit, ids, message, Ok(None));
    Ok(())
}
