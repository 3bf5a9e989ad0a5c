//! An order's reservation and what the order sagas' commands do to it: reserve (hold every
//! line or none, at the products' current prices, in one currency), release, commit and
//! restock. The handler (`app/reservations.rs`) and the simulation both ask these functions
//! what to do and carry it out against their own storage; nothing here reads or writes.

use std::collections::BTreeMap;

use tessera_contracts::inventory::{PricedLine, Reserved, StockChanged};
use tessera_contracts::{Currency, Money, OrderLine, Quantity, Sku, ValueError};
use uuid::Uuid;

use super::stock::{InventoryError, StockLevel, plan_reservation};

/// Where a reserved line is in its life (`reservations.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReservationState {
    Held,
    Released,
    Committed,
    Restocked,
}

impl ReservationState {
    pub const ALL: [ReservationState; 4] = [
        ReservationState::Held,
        ReservationState::Released,
        ReservationState::Committed,
        ReservationState::Restocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReservationState::Held => "held",
            ReservationState::Released => "released",
            ReservationState::Committed => "committed",
            ReservationState::Restocked => "restocked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One sku of an order's reservation, priced when it was reserved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservedLine {
    pub sku: Sku,
    pub name: String,
    pub quantity: i64,
    pub unit_price: Money,
    pub state: ReservationState,
}

/// A product as a reservation sees it: what to call it, what it costs, how much is there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stocked {
    pub name: String,
    pub price: Money,
    pub level: StockLevel,
}

/// Everything inventory holds about one order's reservation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reservation {
    /// Closed without ever being held: released before it was reserved (the saga gave up
    /// first), or refused (`released_orders`).
    pub closed: bool,
    /// Its lines, one per sku, in any state.
    pub lines: Vec<ReservedLine>,
}

/// Why a `ReserveStock` is refused; the saga sees [`ReserveRefusal::code`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReserveRefusal {
    /// Released, refused or already through: never hold stock for the order again.
    Closed,
    /// An unknown sku, a short one, or no lines.
    Stock(InventoryError),
    /// The lines' products are priced in more than one currency.
    MixedCurrencies,
}

impl ReserveRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            ReserveRefusal::Closed => "reservation_closed",
            ReserveRefusal::Stock(error) => error.code(),
            ReserveRefusal::MixedCurrencies => "mixed_currencies",
        }
    }

    /// Whether the refusal closes the order's reservation for good. A refused order's saga
    /// has failed and compensates nothing here, so a late copy of its command (redelivered
    /// past the inbox's memory, or retried from the dead letters once stock is back) must not
    /// hold stock for it. Found by the simulator (seed 98 with the inbox switched off).
    pub fn closes(&self) -> bool {
        !matches!(self, ReserveRefusal::Closed)
    }
}

/// What to do with a `ReserveStock` command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReserveDecision {
    /// Answer with the refusal's code, closing the reservation if [`ReserveRefusal::closes`].
    Refuse(ReserveRefusal),
    /// Already held (the command came twice): answer with what is held, change nothing.
    AlreadyHeld(Reserved),
    /// Take each line's quantity from its sku's available stock, store the lines as held,
    /// and answer with `reserved`.
    Hold { lines: Vec<ReservedLine>, reserved: Reserved },
}

impl Reservation {
    /// The lines in `state`, in sku order.
    pub fn in_state(&self, state: ReservationState) -> Vec<ReservedLine> {
        let mut lines: Vec<_> = self.lines.iter().filter(|line| line.state == state).cloned().collect();
        lines.sort_by(|a, b| a.sku.cmp(&b.sku));
        lines
    }

    /// Released before it was ever reserved, or already through (any line not held).
    pub fn is_closed(&self) -> bool {
        self.closed || self.lines.iter().any(|line| line.state != ReservationState::Held)
    }

    /// What to do with a `ReserveStock` for `lines`, given the products they name (`stock`,
    /// by sku; a sku missing there is unknown). An error is stored data that cannot be priced.
    pub fn reserve(
        &self,
        lines: &[OrderLine],
        stock: &BTreeMap<Sku, Stocked>,
    ) -> Result<ReserveDecision, ValueError> {
        if self.is_closed() {
            return Ok(ReserveDecision::Refuse(ReserveRefusal::Closed));
        }
        let held = self.in_state(ReservationState::Held);
        if !held.is_empty() {
            return Ok(ReserveDecision::AlreadyHeld(priced(&held)?));
        }
        let levels: BTreeMap<Sku, StockLevel> =
            stock.iter().map(|(sku, product)| (sku.clone(), product.level)).collect();
        let plan = match plan_reservation(&levels, lines) {
            Ok(plan) => plan,
            Err(refusal) => return Ok(ReserveDecision::Refuse(ReserveRefusal::Stock(refusal))),
        };
        // `plan_reservation` only plans skus it found in `levels`, that is in `stock`.
        let planned: Vec<(Sku, i64, &Stocked)> = plan
            .into_iter()
            .filter_map(|(sku, quantity)| stock.get(&sku).map(|product| (sku, quantity, product)))
            .collect();
        let mut currencies = planned.iter().map(|(_, _, product)| &product.price.currency);
        let first = currencies.next();
        if currencies.any(|currency| Some(currency) != first) {
            return Ok(ReserveDecision::Refuse(ReserveRefusal::MixedCurrencies));
        }
        let lines: Vec<ReservedLine> = planned
            .into_iter()
            .map(|(sku, quantity, product)| ReservedLine {
                sku,
                name: product.name.clone(),
                quantity,
                unit_price: product.price.clone(),
                state: ReservationState::Held,
            })
            .collect();
        let reserved = priced(&lines)?;
        Ok(ReserveDecision::Hold { lines, reserved })
    }

    /// What `step` does to this reservation: the lines it moves (each from
    /// [`Move::source_state`] to [`Move::target_state`]), and whether to close the
    /// reservation. Nothing in the expected state (never reserved, or already moved) moves
    /// nothing, so the command is safe to repeat and to send after a timeout; a release of
    /// nothing is remembered, so that a reservation request arriving later (a dead letter
    /// retried, say) is refused instead of holding stock for good.
    pub fn plan_move(&self, step: Move) -> MovePlan {
        let lines = self.in_state(step.source_state());
        MovePlan { close: lines.is_empty() && step == Move::Release, lines }
    }
}

/// What a release, commit or restock does: move `lines` and, if `close`, close the
/// reservation. Every such command is answered as done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MovePlan {
    pub close: bool,
    pub lines: Vec<ReservedLine>,
}

/// Where a reservation's units go after they were held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    /// Back to available (the order was rejected).
    Release,
    /// From reserved to sold (the order was confirmed).
    Commit,
    /// From sold back to available (a confirmed order was cancelled).
    Restock,
}

impl Move {
    pub fn source_state(self) -> ReservationState {
        match self {
            Move::Release | Move::Commit => ReservationState::Held,
            Move::Restock => ReservationState::Committed,
        }
    }

    pub fn target_state(self) -> ReservationState {
        match self {
            Move::Release => ReservationState::Released,
            Move::Commit => ReservationState::Committed,
            Move::Restock => ReservationState::Restocked,
        }
    }

    /// A sku's level after the move of `quantity` units; refused when they are not there.
    pub fn apply(self, level: StockLevel, sku: &Sku, quantity: i64) -> Result<StockLevel, InventoryError> {
        match self {
            Move::Release => level.release(sku, quantity),
            Move::Commit => level.commit(sku, quantity),
            Move::Restock => level.restock(sku, quantity),
        }
    }

    /// The event that announces the move of `quantity` units of `sku` for `order_id`.
    pub fn change(self, sku: Sku, order_id: Uuid, quantity: i64) -> StockChanged {
        let (cause, available_delta, reserved_delta, sold_delta) = match self {
            Move::Release => ("released", quantity, -quantity, 0),
            Move::Commit => ("sold", 0, -quantity, quantity),
            Move::Restock => ("restocked", quantity, 0, -quantity),
        };
        StockChanged {
            sku,
            cause: cause.into(),
            order_id: Some(order_id),
            available_delta,
            reserved_delta,
            sold_delta,
        }
    }
}

/// The event that announces `quantity` units of `sku` held for `order_id`.
pub fn reserved_change(sku: Sku, order_id: Uuid, quantity: i64) -> StockChanged {
    StockChanged {
        sku,
        cause: "reserved".into(),
        order_id: Some(order_id),
        available_delta: -quantity,
        reserved_delta: quantity,
        sold_delta: 0,
    }
}

/// The reserve reply's data for `lines`: each line at its reserved price, and their total in
/// their currency (euros when there are none).
pub fn priced(lines: &[ReservedLine]) -> Result<Reserved, ValueError> {
    let currency = lines.first().map_or_else(Currency::eur, |line| line.unit_price.currency.clone());
    let total = lines.iter().map(|line| line.quantity * line.unit_price.amount).sum();
    let lines = lines
        .iter()
        .map(|line| {
            Ok(PricedLine {
                sku: line.sku.clone(),
                name: line.name.clone(),
                quantity: Quantity::new(line.quantity)?,
                unit_price: line.unit_price.clone(),
            })
        })
        .collect::<Result<_, ValueError>>()?;
    Ok(Reserved { lines, total: Money::new(total, currency)? })
}
