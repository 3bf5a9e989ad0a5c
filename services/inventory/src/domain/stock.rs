//! Stock levels and reservations. A sku's units are always in exactly one of three places:
//! available, reserved (held for an order) or sold; every operation moves units between them,
//! and only an adjustment changes their total.

use std::collections::BTreeMap;

use tessera_contracts::{OrderLine, Sku};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StockLevel {
    pub available: i64,
    pub reserved: i64,
    pub sold: i64,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum InventoryError {
    #[error("no product with sku {0}")]
    UnknownSku(Sku),
    #[error("{sku}: {requested} requested, {available} available")]
    OutOfStock { sku: Sku, requested: i64, available: i64 },
    #[error("{sku}: an adjustment of {delta} would leave {available} + {delta} < 0 available")]
    BelowZero { sku: Sku, available: i64, delta: i64 },
    #[error("{sku}: cannot move {quantity} units, only {present} are there")]
    NotThere { sku: Sku, quantity: i64, present: i64 },
    #[error("a reservation needs at least one line")]
    NoLines,
}

impl InventoryError {
    /// The stable code a client or a saga sees.
    pub fn code(&self) -> &'static str {
        match self {
            InventoryError::UnknownSku(_) => "unknown_sku",
            InventoryError::OutOfStock { .. } => "out_of_stock",
            InventoryError::BelowZero { .. } => "stock_below_zero",
            InventoryError::NotThere { .. } => "stock_not_there",
            InventoryError::NoLines => "no_lines",
        }
    }
}

impl StockLevel {
    pub fn total(self) -> i64 {
        self.available + self.reserved + self.sold
    }

    pub fn adjust(self, sku: &Sku, delta: i64) -> Result<Self, InventoryError> {
        let available = self.available + delta;
        if available < 0 {
            return Err(InventoryError::BelowZero { sku: sku.clone(), available: self.available, delta });
        }
        Ok(Self { available, ..self })
    }

    pub fn reserve(self, sku: &Sku, quantity: i64) -> Result<Self, InventoryError> {
        if quantity > self.available {
            return Err(InventoryError::OutOfStock {
                sku: sku.clone(),
                requested: quantity,
                available: self.available,
            });
        }
        Ok(Self { available: self.available - quantity, reserved: self.reserved + quantity, ..self })
    }

    pub fn release(self, sku: &Sku, quantity: i64) -> Result<Self, InventoryError> {
        let reserved = Self::take(sku, self.reserved, quantity)?;
        Ok(Self { available: self.available + quantity, reserved, ..self })
    }

    pub fn commit(self, sku: &Sku, quantity: i64) -> Result<Self, InventoryError> {
        let reserved = Self::take(sku, self.reserved, quantity)?;
        Ok(Self { reserved, sold: self.sold + quantity, ..self })
    }

    pub fn restock(self, sku: &Sku, quantity: i64) -> Result<Self, InventoryError> {
        let sold = Self::take(sku, self.sold, quantity)?;
        Ok(Self { available: self.available + quantity, sold, ..self })
    }

    fn take(sku: &Sku, present: i64, quantity: i64) -> Result<i64, InventoryError> {
        if quantity > present {
            return Err(InventoryError::NotThere { sku: sku.clone(), quantity, present });
        }
        Ok(present - quantity)
    }
}

/// What to hold for an order: one quantity per sku (lines naming a sku twice are added up),
/// all of them available, or an error naming the first sku that is unknown or short.
pub fn plan_reservation(
    levels: &BTreeMap<Sku, StockLevel>,
    lines: &[OrderLine],
) -> Result<Vec<(Sku, i64)>, InventoryError> {
    if lines.is_empty() {
        return Err(InventoryError::NoLines);
    }
    let mut wanted: BTreeMap<&Sku, i64> = BTreeMap::new();
    for line in lines {
        *wanted.entry(&line.sku).or_default() += i64::from(line.quantity.get());
    }
    wanted
        .into_iter()
        .map(|(sku, quantity)| {
            let level = levels.get(sku).ok_or_else(|| InventoryError::UnknownSku(sku.clone()))?;
            level.reserve(sku, quantity)?;
            Ok((sku.clone(), quantity))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tessera_contracts::Quantity;

    use super::*;

    fn sku(s: &str) -> Sku {
        Sku::parse(s).expect("sku")
    }

    fn line(s: &str, quantity: i64) -> OrderLine {
        OrderLine { sku: sku(s), quantity: Quantity::new(quantity).expect("quantity") }
    }

    fn levels(entries: &[(&str, i64)]) -> BTreeMap<Sku, StockLevel> {
        entries
            .iter()
            .map(|(s, available)| (sku(s), StockLevel { available: *available, ..StockLevel::default() }))
            .collect()
    }

    #[test]
    fn given_enough_stock_when_reserving_then_every_line_is_planned() {
        let plan = plan_reservation(
            &levels(&[("MUG", 5), ("TEE", 2)]),
            &[line("MUG", 2), line("TEE", 2), line("MUG", 1)],
        );
        assert_eq!(plan, Ok(vec![(sku("MUG"), 3), (sku("TEE"), 2)]), "lines of one sku are added up");
    }

    #[test]
    fn given_one_short_line_when_reserving_then_nothing_is_planned() {
        let error = plan_reservation(&levels(&[("MUG", 5), ("TEE", 1)]), &[line("MUG", 1), line("TEE", 2)])
            .expect_err("short");
        assert_eq!(error, InventoryError::OutOfStock { sku: sku("TEE"), requested: 2, available: 1 });
        assert_eq!(error.code(), "out_of_stock");
    }

    #[test]
    fn given_an_unknown_sku_or_no_lines_when_reserving_then_it_says_so() {
        assert_eq!(
            plan_reservation(&levels(&[]), &[line("NOPE", 1)]).map_err(|e| e.code()),
            Err("unknown_sku")
        );
        assert_eq!(plan_reservation(&levels(&[("MUG", 1)]), &[]), Err(InventoryError::NoLines));
    }

    #[test]
    fn stock_moves_between_available_reserved_and_sold() {
        let s = sku("MUG");
        let level = StockLevel { available: 5, reserved: 0, sold: 0 };
        let reserved = level.reserve(&s, 2).expect("reserve");
        assert_eq!(reserved, StockLevel { available: 3, reserved: 2, sold: 0 });
        assert_eq!(reserved.release(&s, 2).expect("release"), level);
        let sold = reserved.commit(&s, 2).expect("commit");
        assert_eq!(sold, StockLevel { available: 3, reserved: 0, sold: 2 });
        assert_eq!(sold.restock(&s, 2).expect("restock"), StockLevel { available: 5, reserved: 0, sold: 0 });
        assert!(matches!(level.release(&s, 1), Err(InventoryError::NotThere { .. })));
        assert!(matches!(level.adjust(&s, -6), Err(InventoryError::BelowZero { .. })));
        assert_eq!(level.adjust(&s, -5).expect("adjust").available, 0);
    }

    #[derive(Clone, Debug)]
    enum Operation {
        Adjust(i64),
        Reserve(i64),
        Release(i64),
        Commit(i64),
        Restock(i64),
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            (-20i64..20).prop_map(Operation::Adjust),
            (1i64..10).prop_map(Operation::Reserve),
            (1i64..10).prop_map(Operation::Release),
            (1i64..10).prop_map(Operation::Commit),
            (1i64..10).prop_map(Operation::Restock),
        ]
    }

    proptest! {
        /// Any sequence of operations, refused ones included: no level ever goes negative and
        /// initial + accepted adjustments = available + reserved + sold.
        #[test]
        fn stock_is_never_negative_and_always_conserved(initial in 0i64..50, operations in prop::collection::vec(operation(), 0..200)) {
            let s = sku("MUG");
            let mut level = StockLevel { available: initial, ..StockLevel::default() };
            let mut adjustments = 0;
            for operation in operations {
                let next = match operation {
                    Operation::Adjust(delta) => level.adjust(&s, delta).inspect(|_| adjustments += delta),
                    Operation::Reserve(q) => level.reserve(&s, q),
                    Operation::Release(q) => level.release(&s, q),
                    Operation::Commit(q) => level.commit(&s, q),
                    Operation::Restock(q) => level.restock(&s, q),
                };
                if let Ok(next) = next {
                    level = next;
                }
                prop_assert!(level.available >= 0 && level.reserved >= 0 && level.sold >= 0, "{level:?}");
                prop_assert_eq!(initial + adjustments, level.total());
            }
        }
    }
}
