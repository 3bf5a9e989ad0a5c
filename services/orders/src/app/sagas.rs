//! The two sagas orders orchestrates. Their data is the order's: `order_id`, `customer_id`,
//! `lines`, `payment_token`; replies add `reserved` (inventory) and `payment` (payments).

use std::time::Duration;

use serde_json::{Value, json};
use tessera_contracts::Message;
use tessera_contracts::inventory::{CommitReservation, ReleaseStock, ReserveStock, Restock};
use tessera_contracts::payments::{AuthorisePayment, CapturePayment, RefundPayment, VoidPayment};
use tessera_saga::{Command, SagaDefinition, Step};

pub const PLACE_ORDER: &str = "place_order";
pub const CANCEL_ORDER: &str = "cancel_order";

/// The steps that must not be compensated (after confirmation) wait this long per attempt.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

fn to(target: &str, name: &str, payload: Value) -> Command {
    Command { target: target.to_owned(), name: name.to_owned(), payload }
}

fn order_only(data: &Value) -> Value {
    json!({ "order_id": data["order_id"] })
}

fn amount(data: &Value) -> Value {
    json!({ "order_id": data["order_id"], "amount": data["reserved"]["total"] })
}

/// Reserve stock → authorise payment (the order is confirmed when it succeeds) → commit the
/// reservation → capture the payment. The last two are past the point of no return.
pub fn place_order(reserve_timeout: Duration, payment_timeout: Duration) -> SagaDefinition {
    SagaDefinition {
        name: PLACE_ORDER,
        steps: vec![
            Step {
                name: "reserve_stock",
                timeout: reserve_timeout,
                action: |d| {
                    to(
                        "inventory",
                        ReserveStock::NAME,
                        json!({ "order_id": d["order_id"], "lines": d["lines"] }),
                    )
                },
                compensation: Some(|d| to("inventory", ReleaseStock::NAME, order_only(d))),
                retriable: false,
            },
            Step {
                name: "authorise_payment",
                timeout: payment_timeout,
                action: |d| {
                    let payload = json!({
                        "order_id": d["order_id"], "customer_id": d["customer_id"],
                        "payment_token": d["payment_token"], "amount": d["reserved"]["total"],
                    });
                    to("payments", AuthorisePayment::NAME, payload)
                },
                compensation: Some(|d| to("payments", VoidPayment::NAME, order_only(d))),
                retriable: false,
            },
            Step {
                name: "commit_reservation",
                timeout: SETTLE_TIMEOUT,
                action: |d| to("inventory", CommitReservation::NAME, order_only(d)),
                compensation: None,
                retriable: true,
            },
            Step {
                name: "capture_payment",
                timeout: SETTLE_TIMEOUT,
                action: |d| to("payments", CapturePayment::NAME, amount(d)),
                compensation: None,
                retriable: true,
            },
        ],
        stuck_after: 5,
        retry_base: Duration::from_millis(200),
        retry_max: Duration::from_secs(30),
    }
}

/// Refund the payment, then put the stock back. Both must happen: retried, never compensated.
pub fn cancel_order() -> SagaDefinition {
    SagaDefinition {
        name: CANCEL_ORDER,
        steps: vec![
            Step {
                name: "refund_payment",
                timeout: SETTLE_TIMEOUT,
                action: |d| to("payments", RefundPayment::NAME, amount(d)),
                compensation: None,
                retriable: true,
            },
            Step {
                name: "restock",
                timeout: SETTLE_TIMEOUT,
                action: |d| to("inventory", Restock::NAME, order_only(d)),
                compensation: None,
                retriable: true,
            },
        ],
        stuck_after: 5,
        retry_base: Duration::from_millis(200),
        retry_max: Duration::from_secs(30),
    }
}
