//! Messages owned by the orders service: the Order aggregate's events, published as they are
//! appended.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::inventory::PricedLine;
use crate::{Money, OrderLine, message};

/// Why an order ended rejected (API.md: `out_of_stock`, `payment_declined`, `payment_timeout`,
/// `inventory_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    OutOfStock,
    PaymentDeclined,
    PaymentTimeout,
    /// Inventory did not answer the reservation in time.
    InventoryTimeout,
}

impl RejectionReason {
    pub const ALL: [RejectionReason; 4] = [
        RejectionReason::OutOfStock,
        RejectionReason::PaymentDeclined,
        RejectionReason::PaymentTimeout,
        RejectionReason::InventoryTimeout,
    ];
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderPlaced {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub lines: Vec<OrderLine>,
    /// The order's stream version after the change: replicas merge by it (last writer wins),
    /// so duplicates and reordering converge. 0 from senders that predate it.
    #[serde(default)]
    pub version: u64,
}
message!(OrderPlaced, "orders.OrderPlaced", 1, Event);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderConfirmed {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub lines: Vec<PricedLine>,
    pub total: Money,
    /// The order's stream version after the change: replicas merge by it (last writer wins),
    /// so duplicates and reordering converge. 0 from senders that predate it.
    #[serde(default)]
    pub version: u64,
}
message!(OrderConfirmed, "orders.OrderConfirmed", 1, Event);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderRejected {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub reason: RejectionReason,
    /// The order's stream version after the change: replicas merge by it (last writer wins),
    /// so duplicates and reordering converge. 0 from senders that predate it.
    #[serde(default)]
    pub version: u64,
}
message!(OrderRejected, "orders.OrderRejected", 1, Event);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderCancelled {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub refunded: Money,
    /// The order's stream version after the change: replicas merge by it (last writer wins),
    /// so duplicates and reordering converge. 0 from senders that predate it.
    #[serde(default)]
    pub version: u64,
}
message!(OrderCancelled, "orders.OrderCancelled", 1, Event);

/// The most lines one order may have: orders refuses more, and the gateway checks it before
/// it looks any product up.
pub const MAX_ORDER_LINES: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Quantity, Sku, round_trip};

    #[test]
    fn order_messages_round_trip() {
        let (order_id, customer_id) = (Uuid::now_v7(), Uuid::now_v7());
        let line =
            OrderLine { sku: Sku::parse("SKU-1").expect("sku"), quantity: Quantity::new(1).expect("qty") };
        round_trip(&OrderPlaced { order_id, customer_id, lines: vec![line], version: 1 });
        let priced = PricedLine {
            sku: Sku::parse("SKU-1").expect("sku"),
            name: "Mug".into(),
            quantity: Quantity::new(1).expect("qty"),
            unit_price: Money::eur(900).expect("money"),
        };
        round_trip(&OrderConfirmed {
            order_id,
            customer_id,
            lines: vec![priced],
            total: Money::eur(900).expect("money"),
            version: 4,
        });
        round_trip(&OrderRejected {
            order_id,
            customer_id,
            reason: RejectionReason::PaymentTimeout,
            version: 2,
        });
        round_trip(&OrderCancelled {
            order_id,
            customer_id,
            refunded: Money::eur(900).expect("money"),
            version: 6,
        });
        assert_eq!(serde_json::to_value(RejectionReason::OutOfStock).expect("json"), "out_of_stock");
        assert_eq!(
            serde_json::to_value(RejectionReason::InventoryTimeout).expect("json"),
            "inventory_timeout"
        );
    }
}
