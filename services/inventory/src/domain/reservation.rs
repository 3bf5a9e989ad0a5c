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

#[cfg(test)]
mod tests {
    use tessera_contracts::Quantity;

    use super::*;

    const ORDER: Uuid = Uuid::nil();

    fn sku(s: &str) -> Sku {
        Sku::parse(s).expect("sku")
    }

    fn eur(amount: i64) -> Money {
        Money::new(amount, Currency::eur()).expect("money")
    }

    fn order_line(s: &str, quantity: i64) -> OrderLine {
        OrderLine { sku: sku(s), quantity: Quantity::new(quantity).expect("quantity") }
    }

    fn stocked(s: &str, price: Money, available: i64) -> (Sku, Stocked) {
        let level = StockLevel { available, ..StockLevel::default() };
        (sku(s), Stocked { name: format!("Product {s}"), price, level })
    }

    fn line(s: &str, quantity: i64, price: i64, state: ReservationState) -> ReservedLine {
        ReservedLine { sku: sku(s), name: format!("Product {s}"), quantity, unit_price: eur(price), state }
    }

    fn shop() -> BTreeMap<Sku, Stocked> {
        [stocked("MUG", eur(500), 5), stocked("TEE", eur(1500), 1)].into_iter().collect()
    }

    #[test]
    fn reserving_holds_every_line_at_its_price_and_answers_the_total() {
        let decision = Reservation::default()
            .reserve(&[order_line("TEE", 1), order_line("MUG", 2)], &shop())
            .expect("priced");
        let lines =
            vec![line("MUG", 2, 500, ReservationState::Held), line("TEE", 1, 1500, ReservationState::Held)];
        let reserved = priced(&lines).expect("priced");
        assert_eq!(reserved.total, eur(2500));
        assert_eq!(reserved.lines.len(), 2);
        assert_eq!(decision, ReserveDecision::Hold { lines, reserved });
    }

    #[test]
    fn a_repeated_reservation_is_answered_with_what_is_held_in_sku_order() {
        let reservation = Reservation {
            closed: false,
            lines: vec![
                line("TEE", 1, 1500, ReservationState::Held),
                line("MUG", 2, 400, ReservationState::Held),
            ],
        };
        // Priced as held (the mug at 4.00), not at today's price, even if stock ran out since.
        let decision = reservation.reserve(&[order_line("MUG", 2)], &BTreeMap::new()).expect("priced");
        let expected = priced(&[
            line("MUG", 2, 400, ReservationState::Held),
            line("TEE", 1, 1500, ReservationState::Held),
        ])
        .expect("priced");
        assert_eq!(expected.total, eur(2300));
        assert_eq!(decision, ReserveDecision::AlreadyHeld(expected));
    }

    #[test]
    fn a_released_or_moved_reservation_is_closed_and_not_closed_again() {
        let released = Reservation { closed: true, lines: Vec::new() };
        let committed =
            Reservation { closed: false, lines: vec![line("MUG", 1, 500, ReservationState::Committed)] };
        for reservation in [released, committed] {
            let decision = reservation.reserve(&[order_line("MUG", 1)], &shop()).expect("decision");
            assert_eq!(decision, ReserveDecision::Refuse(ReserveRefusal::Closed));
            assert_eq!(ReserveRefusal::Closed.code(), "reservation_closed");
            assert!(!ReserveRefusal::Closed.closes());
        }
    }

    #[test]
    fn a_short_unknown_or_mixed_currency_order_is_refused_and_closed() {
        let short = Reservation::default().reserve(&[order_line("TEE", 2)], &shop()).expect("decision");
        let ReserveDecision::Refuse(refusal) = short else { panic!("{short:?}") };
        assert_eq!((refusal.code(), refusal.closes()), ("out_of_stock", true));

        let unknown = Reservation::default().reserve(&[order_line("NOPE", 1)], &shop()).expect("decision");
        let ReserveDecision::Refuse(refusal) = unknown else { panic!("{unknown:?}") };
        assert_eq!((refusal.code(), refusal.closes()), ("unknown_sku", true));

        let mut mixed = shop();
        mixed.extend([stocked(
            "CAP",
            Money::new(900, Currency::parse("USD").expect("usd")).expect("usd"),
            3,
        )]);
        let decision = Reservation::default()
            .reserve(&[order_line("CAP", 1), order_line("MUG", 1)], &mixed)
            .expect("decision");
        assert_eq!(decision, ReserveDecision::Refuse(ReserveRefusal::MixedCurrencies));
        assert_eq!(
            (ReserveRefusal::MixedCurrencies.code(), ReserveRefusal::MixedCurrencies.closes()),
            ("mixed_currencies", true)
        );
    }

    #[test]
    fn a_move_takes_the_lines_in_its_source_state_and_a_release_of_nothing_closes() {
        let reservation = Reservation {
            closed: false,
            lines: vec![
                line("TEE", 1, 1500, ReservationState::Held),
                line("MUG", 2, 500, ReservationState::Committed),
            ],
        };
        let commit = reservation.plan_move(Move::Commit);
        assert_eq!(
            commit,
            MovePlan { close: false, lines: vec![line("TEE", 1, 1500, ReservationState::Held)] }
        );
        let restock = reservation.plan_move(Move::Restock);
        assert_eq!(restock.lines, vec![line("MUG", 2, 500, ReservationState::Committed)]);
        assert!(!reservation.plan_move(Move::Release).close, "something was held");

        let nothing = Reservation::default();
        assert_eq!(nothing.plan_move(Move::Release), MovePlan { close: true, lines: Vec::new() });
        assert_eq!(nothing.plan_move(Move::Commit), MovePlan { close: false, lines: Vec::new() });
        assert_eq!(nothing.plan_move(Move::Restock), MovePlan { close: false, lines: Vec::new() });
    }

    #[test]
    fn each_move_changes_the_level_and_announces_it_as_the_same_deltas() {
        let s = sku("MUG");
        let level = StockLevel { available: 1, reserved: 2, sold: 3 };
        for step in [Move::Release, Move::Commit, Move::Restock] {
            let after = step.apply(level, &s, 2).expect("there");
            let change = step.change(s.clone(), ORDER, 2);
            assert_eq!(after.available - level.available, change.available_delta, "{step:?}");
            assert_eq!(after.reserved - level.reserved, change.reserved_delta, "{step:?}");
            assert_eq!(after.sold - level.sold, change.sold_delta, "{step:?}");
            assert_eq!(change.order_id, Some(ORDER));
            assert_eq!(after.total(), level.total(), "{step:?} conserves stock");
        }
        assert_eq!(Move::Commit.change(s.clone(), ORDER, 1).cause, "sold");
        assert!(matches!(Move::Restock.apply(level, &s, 4), Err(InventoryError::NotThere { .. })));
        let reserved = reserved_change(s, ORDER, 2);
        assert_eq!(
            (reserved.available_delta, reserved.reserved_delta, reserved.cause.as_str()),
            (-2, 2, "reserved")
        );
    }

    #[test]
    fn states_round_trip_and_moves_go_from_held_or_committed() {
        for state in ReservationState::ALL {
            assert_eq!(ReservationState::parse(state.as_str()), Some(state));
        }
        assert_eq!(ReservationState::parse("lost"), None);
        assert_eq!(
            [Move::Release, Move::Commit, Move::Restock].map(|m| (m.source_state(), m.target_state())),
            [
                (ReservationState::Held, ReservationState::Released),
                (ReservationState::Held, ReservationState::Committed),
                (ReservationState::Committed, ReservationState::Restocked),
            ]
        );
    }
}
