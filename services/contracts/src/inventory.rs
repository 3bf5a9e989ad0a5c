//! Messages owned by the inventory service.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Money, OrderLine, Quantity, Sku, message};

/// Command: hold stock for every line of an order, or for none (`out_of_stock`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReserveStock {
    pub order_id: Uuid,
    pub lines: Vec<OrderLine>,
}
message!(ReserveStock, "inventory.ReserveStock", 1, Command);

/// Command: give back what an order holds (a no-op if it holds nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseStock {
    pub order_id: Uuid,
}
message!(ReleaseStock, "inventory.ReleaseStock", 1, Command);

/// Command: the order is confirmed; what it holds is sold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommitReservation {
    pub order_id: Uuid,
}
message!(CommitReservation, "inventory.CommitReservation", 1, Command);

/// Command: put sold stock back (an order cancelled after confirmation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Restock {
    pub order_id: Uuid,
}
message!(Restock, "inventory.Restock", 1, Command);

/// A line as reserved, with the price it was reserved at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PricedLine {
    pub sku: Sku,
    pub name: String,
    pub quantity: Quantity,
    pub unit_price: Money,
}

/// What was held for an order and what it costs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reserved {
    pub lines: Vec<PricedLine>,
    pub total: Money,
}

/// The data of a successful `ReserveStock` saga reply (merged into the saga's data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReserveStockReply {
    pub reserved: Reserved,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProductCreated {
    pub sku: Sku,
    pub name: String,
    pub price: Money,
    pub available: i64,
}
message!(ProductCreated, "inventory.ProductCreated", 1, Event);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProductUpdated {
    pub sku: Sku,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub version: i64,
}
message!(ProductUpdated, "inventory.ProductUpdated", 1, Event);

/// Stock levels of a sku changed: an adjustment, a reservation, a release, a sale or a
/// restock. It carries the changes, not the levels, so that it is exact even when other
/// units changed the same sku concurrently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StockChanged {
    pub sku: Sku,
    /// `adjustment`, `reserved`, `released`, `sold` or `restocked`.
    pub cause: String,
    pub order_id: Option<Uuid>,
    pub available_delta: i64,
    pub reserved_delta: i64,
    pub sold_delta: i64,
}
message!(StockChanged, "inventory.StockChanged", 1, Event);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::round_trip;

    #[test]
    fn inventory_messages_round_trip() {
        let order_id = Uuid::now_v7();
        let line =
            OrderLine { sku: Sku::parse("SKU-1").expect("sku"), quantity: Quantity::new(2).expect("qty") };
        round_trip(&ReserveStock { order_id, lines: vec![line] });
        round_trip(&ReleaseStock { order_id });
        round_trip(&CommitReservation { order_id });
        round_trip(&Restock { order_id });
        round_trip(&StockChanged {
            sku: Sku::parse("SKU-1").expect("sku"),
            cause: "reserved".into(),
            order_id: Some(order_id),
            available_delta: -2,
            reserved_delta: 2,
            sold_delta: 0,
        });
    }
}
