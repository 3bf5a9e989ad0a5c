//! Messages owned by the orders service: the Order aggregate's events, published as they are
//! appended.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::inventory::PricedLine;
use crate::{Money, OrderLine, message};

/// Why an order ended rejected (API.md: `out_of_stock`, `payment_declined`, `payment_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    OutOfStock,
    PaymentDeclined,
    PaymentTimeout,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub lines: Vec<OrderLine>,
}
message!(OrderPlaced, "orders.OrderPlaced", 1, Event);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderConfirmed {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub lines: Vec<PricedLine>,
    pub total: Money,
}
message!(OrderConfirmed, "orders.OrderConfirmed", 1, Event);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRejected {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub reason: RejectionReason,
}
message!(OrderRejected, "orders.OrderRejected", 1, Event);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub refunded: Money,
}
message!(OrderCancelled, "orders.OrderCancelled", 1, Event);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Quantity, Sku, round_trip};

    #[test]
    fn order_messages_round_trip() {
        let (order_id, customer_id) = (Uuid::now_v7(), Uuid::now_v7());
        let line =
            OrderLine { sku: Sku::parse("SKU-1").expect("sku"), quantity: Quantity::new(1).expect("qty") };
        round_trip(&OrderPlaced { order_id, customer_id, lines: vec![line] });
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
        });
        round_trip(&OrderRejected { order_id, customer_id, reason: RejectionReason::PaymentTimeout });
        round_trip(&OrderCancelled { order_id, customer_id, refunded: Money::eur(900).expect("money") });
        assert_eq!(serde_json::to_value(RejectionReason::OutOfStock).expect("json"), "out_of_stock");
    }
}
