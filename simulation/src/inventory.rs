//! Inventory's saga handlers over a simulated store. The decisions are the real ones
//! (`plan_reservation`, `StockLevel::{reserve, release, commit, restock}`); the checks and
//! replies follow `services/inventory/src/app/reservations.rs` step by step.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use tessera_contracts::inventory::{
    CommitReservation, PricedLine, ReleaseStock, ReserveStock, ReserveStockReply, Reserved, Restock,
};
use tessera_contracts::{Message as _, Money, Quantity, Sku};
use tessera_inventory::domain::{StockLevel, plan_reservation};
use uuid::Uuid;

use crate::Bugs;
use crate::error::{HandlerError, parse};
use crate::message::{Ids, Kind, Message, Service};
use crate::saga_reply::reply;
use crate::store::Unit;

#[derive(Clone, Debug)]
pub struct Product {
    pub name: String,
    pub price: Money,
    pub level: StockLevel,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservationState {
    Held,
    Released,
    Committed,
    Restocked,
}

#[derive(Clone, Debug)]
pub struct Reservation {
    pub order_id: Uuid,
    pub sku: Sku,
    pub name: String,
    pub quantity: i64,
    pub unit_price: Money,
    pub state: ReservationState,
}

#[derive(Clone, Debug, Default)]
pub struct InventoryState {
    pub products: BTreeMap<Sku, Product>,
    pub reservations: Vec<Reservation>,
    pub released_orders: BTreeSet<Uuid>,
}

impl InventoryState {
    fn reservation(&self, order_id: Uuid, state: ReservationState) -> Vec<Reservation> {
        let mut rows: Vec<_> = self
            .reservations
            .iter()
            .filter(|r| r.order_id == order_id && r.state == state)
            .cloned()
            .collect();
        rows.sort_by(|a, b| a.sku.cmp(&b.sku));
        rows
    }
}

#[derive(Clone, Copy, Debug)]
enum Move {
    Release,
    Commit,
    Restock,
}

impl Move {
    fn source_state(self) -> ReservationState {
        match self {
            Move::Release | Move::Commit => ReservationState::Held,
            Move::Restock => ReservationState::Committed,
        }
    }

    fn target_state(self) -> ReservationState {
        match self {
            Move::Release => ReservationState::Released,
            Move::Commit => ReservationState::Committed,
            Move::Restock => ReservationState::Restocked,
        }
    }
}

fn priced(rows: &[Reservation]) -> Result<Reserved, HandlerError> {
    let corrupt = |e: tessera_contracts::ValueError| HandlerError::Corrupt(e.to_string());
    let currency =
        rows.first().map_or_else(tessera_contracts::Currency::eur, |r| r.unit_price.currency.clone());
    let total = rows.iter().map(|r| r.quantity * r.unit_price.amount).sum();
    let lines = rows
        .iter()
        .map(|r| {
            Ok(PricedLine {
                sku: r.sku.clone(),
                name: r.name.clone(),
                quantity: Quantity::new(r.quantity).map_err(corrupt)?,
                unit_price: r.unit_price.clone(),
            })
        })
        .collect::<Result<_, HandlerError>>()?;
    Ok(Reserved { lines, total: Money::new(total, currency).map_err(corrupt)? })
}

fn stock_changed(ids: &mut Ids, cause: &Message, sku: &Sku, what: &str) -> Message {
    Message {
        id: ids.message(),
        kind: Kind::Event,
        name: "inventory.StockChanged".into(),
        source: Service::Inventory,
        target: None,
        key: cause.key.clone(),
        payload: json!({ "sku": sku, "cause": what }),
    }
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
    let state = &unit.state;
    // Released before it was ever reserved, or already through: never hold stock for it again.
    let closed = state.released_orders.contains(&command.order_id)
        || state
            .reservations
            .iter()
            .any(|r| r.order_id == command.order_id && r.state != ReservationState::Held);
    if closed {
        answer(unit, ids, message, Err("reservation_closed".to_owned()));
        return Ok(());
    }
    // Already held for this order (the command came twice): answer as before.
    let held = state.reservation(command.order_id, ReservationState::Held);
    if !held.is_empty() {
        let reply = serde_json::to_value(ReserveStockReply { reserved: priced(&held)? })
            .map_err(|e| HandlerError::Corrupt(e.to_string()))?;
        answer(unit, ids, message, Ok(Some(reply)));
        return Ok(());
    }
    let levels: BTreeMap<Sku, StockLevel> = command
        .lines
        .iter()
        .filter_map(|line| state.products.get(&line.sku).map(|p| (line.sku.clone(), p.level)))
        .collect();
    let plan = match plan_reservation(&levels, &command.lines) {
        Ok(plan) => plan,
        Err(refusal) => {
            // As inventory does: a refused order is closed for good.
            unit.state.released_orders.insert(command.order_id);
            answer(unit, ids, message, Err(refusal.code().to_owned()));
            return Ok(());
        }
    };
    let currencies: BTreeSet<String> =
        plan.iter().map(|(sku, _)| String::from(state.products[sku].price.currency.clone())).collect();
    if currencies.len() > 1 {
        unit.state.released_orders.insert(command.order_id);
        answer(unit, ids, message, Err("mixed_currencies".to_owned()));
        return Ok(());
    }
    let mut rows = Vec::with_capacity(plan.len());
    for (sku, quantity) in plan {
        let product = unit
            .state
            .products
            .get_mut(&sku)
            .ok_or_else(|| HandlerError::Corrupt(format!("{sku} vanished")))?;
        product.level = product.level.reserve(&sku, quantity)?;
        let row = Reservation {
            order_id: command.order_id,
            sku: sku.clone(),
            name: product.name.clone(),
            quantity,
            unit_price: product.price.clone(),
            state: ReservationState::Held,
        };
        unit.state.reservations.push(row.clone());
        rows.push(row);
        unit.send(stock_changed(ids, message, &sku, "reserved"));
    }
    let reply = serde_json::to_value(ReserveStockReply { reserved: priced(&rows)? })
        .map_err(|e| HandlerError::Corrupt(e.to_string()))?;
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
    // Nothing in the expected state (never reserved, or already moved): a no-op, so the
    // command is safe to repeat and to send after a timeout.
    let rows = unit.state.reservation(order_id, step.source_state());
    if rows.is_empty() && matches!(step, Move::Release) {
        unit.state.released_orders.insert(order_id);
    }
    for row in rows {
        let product = unit
            .state
            .products
            .get_mut(&row.sku)
            .ok_or_else(|| HandlerError::Corrupt(format!("{} vanished", row.sku)))?;
        product.level = match step {
            Move::Release => product.level.release(&row.sku, row.quantity),
            Move::Commit => product.level.commit(&row.sku, row.quantity),
            Move::Restock => product.level.restock(&row.sku, row.quantity),
        }?;
        for stored in &mut unit.state.reservations {
            if stored.order_id == order_id && stored.sku == row.sku && stored.state == step.source_state() {
                stored.state = step.target_state();
            }
        }
        let what = match step {
            Move::Release => "released",
            Move::Commit => "sold",
            Move::Restock => "restocked",
        };
        unit.send(stock_changed(ids, message, &row.sku, what));
    }
    answer(unit, ids, message, Ok(None));
    Ok(())
}
