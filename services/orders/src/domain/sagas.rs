//! The data and steps of the two sagas orders orchestrates, as types. The saga engine stores
//! the data as JSON; these types keep the shape rows were written in before they existed, so
//! sagas stored then still load and finish.

use serde::{Deserialize, Serialize};
use tessera_contracts::inventory::Reserved;
use tessera_contracts::payments::AuthorisedPayment;
use tessera_contracts::{Money, OrderLine};
use uuid::Uuid;

pub const PLACE_ORDER: &str = "place_order";
pub const CANCEL_ORDER: &str = "cancel_order";

/// Which of orders' sagas a saga is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderSaga {
    PlaceOrder,
    CancelOrder,
}

impl OrderSaga {
    pub fn name(self) -> &'static str {
        match self {
            OrderSaga::PlaceOrder => PLACE_ORDER,
            OrderSaga::CancelOrder => CANCEL_ORDER,
        }
    }
}

/// The place-order saga's data: the order as placed, then what the participants' replies add.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrderData {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub lines: Vec<OrderLine>,
    pub payment_token: String,
    /// What inventory held, from its reply to `ReserveStock` (`ReserveStockReply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<Reserved>,
    /// The payment made, from payments' reply to `AuthorisePayment` (`AuthorisePaymentReply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<AuthorisedPayment>,
}

/// The cancel-order saga's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOrderData {
    pub order_id: Uuid,
    /// What the order was charged (stored under `reserved`, as the place-order saga's data
    /// holds its total, since the first cancel sagas were written that way).
    #[serde(rename = "reserved")]
    pub charged: Charged,
    /// Whose order it is, so that operators find the cancellation by customer as they find the
    /// placement. Absent from cancel sagas stored before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<Uuid>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charged {
    pub total: Money,
}

/// The place-order saga's steps, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceOrderStep {
    ReserveStock,
    /// The order is confirmed when it succeeds.
    AuthorisePayment,
    /// Past the point of no return: retried, never compensated.
    CommitReservation,
    /// Past the point of no return: retried, never compensated.
    CapturePayment,
}

impl PlaceOrderStep {
    pub const ALL: [PlaceOrderStep; 4] = [
        PlaceOrderStep::ReserveStock,
        PlaceOrderStep::AuthorisePayment,
        PlaceOrderStep::CommitReservation,
        PlaceOrderStep::CapturePayment,
    ];

    /// The step at `index` in the saga's definition.
    pub fn at(index: usize) -> Option<PlaceOrderStep> {
        PlaceOrderStep::ALL.get(index).copied()
    }

    /// The step's name, as stored sagas' reasons and stuck flags quote it.
    pub fn name(self) -> &'static str {
        match self {
            PlaceOrderStep::ReserveStock => "reserve_stock",
            PlaceOrderStep::AuthorisePayment => "authorise_payment",
            PlaceOrderStep::CommitReservation => "commit_reservation",
            PlaceOrderStep::CapturePayment => "capture_payment",
        }
    }
}

/// The cancel-order saga's steps, in order; both are retried until they succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOrderStep {
    RefundPayment,
    Restock,
}

impl CancelOrderStep {
    pub const ALL: [CancelOrderStep; 2] = [CancelOrderStep::RefundPayment, CancelOrderStep::Restock];

    pub fn at(index: usize) -> Option<CancelOrderStep> {
        CancelOrderStep::ALL.get(index).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            CancelOrderStep::RefundPayment => "refund_payment",
            CancelOrderStep::Restock => "restock",
        }
    }
}
