//! Inventory's rules, as pure functions over plain values: no I/O, no async.

mod stock;

pub use stock::{InventoryError, StockLevel, plan_reservation};
