//! The facts inventory's invariants need, read from its own store: each product's stock
//! level, the adjustments that put stock there, and every reservation. `tessera verify` and
//! the simulation hand them to the shared checker (`tessera-invariants`); nothing else reads
//! inventory's tables.

use std::collections::BTreeMap;

use tessera_store::{Statement, Store};

pub use crate::domain::ReservationState;
use crate::domain::StockLevel;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductFact {
    pub sku: String,
    pub level: StockLevel,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservationFact {
    pub order_id: String,
    pub sku: String,
    pub quantity: i64,
    pub state: ReservationState,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InventoryFacts {
    pub products: Vec<ProductFact>,
    /// Per sku, the sum of every stock adjustment (the initial stock included).
    pub adjusted: BTreeMap<String, i64>,
    pub reservations: Vec<ReservationFact>,
}

#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error(transparent)]
    Store(#[from] tessera_store::StoreError),
    #[error("reservation of order {order_id} has the unknown state {state:?}")]
    UnknownState { order_id: String, state: String },
}

/// Reads inventory's facts from its store, as they are now.
pub async fn read(store: &Store) -> Result<InventoryFacts, FactsError> {
    let mut facts = InventoryFacts::default();
    let adjusted =
        Statement::new("SELECT sku, CAST(sum(delta) AS BIGINT) AS total FROM adjustments GROUP BY sku");
    for row in store.query(adjusted).await? {
        facts.adjusted.insert(row.text("sku")?.to_owned(), row.int("total")?);
    }
    for row in store.query(Statement::new("SELECT sku, available, reserved, sold FROM products")).await? {
        facts.products.push(ProductFact {
            sku: row.text("sku")?.to_owned(),
            level: StockLevel {
                available: row.int("available")?,
                reserved: row.int("reserved")?,
                sold: row.int("sold")?,
            },
        });
    }
    let reservations = Statement::new("SELECT order_id, sku, quantity, state FROM reservations");
    for row in store.query(reservations).await? {
        let order_id = row.text("order_id")?.to_owned();
        let state = row.text("state")?;
        let state = ReservationState::parse(state).ok_or_else(|| FactsError::UnknownState {
            order_id: order_id.clone(),
            state: state.to_owned(),
        })?;
        facts.reservations.push(ReservationFact {
            order_id,
            sku: row.text("sku")?.to_owned(),
            quantity: row.int("quantity")?,
            state,
        });
    }
    Ok(facts)
}
