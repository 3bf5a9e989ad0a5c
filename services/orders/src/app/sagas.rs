//! The two sagas orders orchestrates, built from their typed data and steps
//! (`domain::{PlaceOrderData, PlaceOrderStep, CancelOrderData, CancelOrderStep}`); every
//! command is a contract struct.

use std::time::Duration;

use serde_json::Value;
use tessera_contracts::Message;
use tessera_contracts::Money;
use tessera_contracts::inventory::{CommitReservation, ReleaseStock, ReserveStock, Restock};
use tessera_contracts::payments::{AuthorisePayment, CapturePayment, RefundPayment, VoidPayment};
use tessera_saga::{Command, DataError, SagaDefinition, Step, read_data};

pub use crate::domain::{CANCEL_ORDER, PLACE_ORDER};
use crate::domain::{CancelOrderData, CancelOrderStep, PlaceOrderData, PlaceOrderStep};

/// The steps that must not be compensated (after confirmation) wait this long per attempt.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

fn to_inventory<M: Message>(message: &M) -> Result<Command, DataError> {
    Command::new("inventory", M::NAME, message)
}

fn to_payments<M: Message>(message: &M) -> Result<Command, DataError> {
    Command::new("payments", M::NAME, message)
}

fn place(data: &Value) -> Result<PlaceOrderData, DataError> {
    read_data(data)
}

/// The reserved total: what the payment is for. Known once inventory answered the reservation.
fn reserved_total(data: &PlaceOrderData) -> Result<Money, DataError> {
    data.reserved
        .as_ref()
        .map(|reserved| reserved.total.clone())
        .ok_or_else(|| DataError(format!("order {} has no reservation to pay for", data.order_id)))
}

fn place_order_step(step: PlaceOrderStep, reserve_timeout: Duration, payment_timeout: Duration) -> Step {
    let name = step.name();
    match step {
        PlaceOrderStep::ReserveStock => Step {
            name,
            timeout: reserve_timeout,
            action: |d| {
                let d = place(d)?;
                to_inventory(&ReserveStock { order_id: d.order_id, lines: d.lines })
            },
            compensation: Some(|d| to_inventory(&ReleaseStock { order_id: place(d)?.order_id })),
            retriable: false,
        },
        PlaceOrderStep::AuthorisePayment => Step {
            name,
            timeout: payment_timeout,
            action: |d| {
                let d = place(d)?;
                let amount = reserved_total(&d)?;
                to_payments(&AuthorisePayment {
                    order_id: d.order_id,
                    customer_id: d.customer_id,
                    payment_token: d.payment_token,
                    amount,
                })
            },
            compensation: Some(|d| to_payments(&VoidPayment { order_id: place(d)?.order_id })),
            retriable: false,
        },
        PlaceOrderStep::CommitReservation => Step {
            name,
            timeout: SETTLE_TIMEOUT,
            action: |d| to_inventory(&CommitReservation { order_id: place(d)?.order_id }),
            compensation: None,
            retriable: true,
        },
        PlaceOrderStep::CapturePayment => Step {
            name,
            timeout: SETTLE_TIMEOUT,
            action: |d| {
                let d = place(d)?;
                to_payments(&CapturePayment { order_id: d.order_id, amount: reserved_total(&d)? })
            },
            compensation: None,
            retriable: true,
        },
    }
}

/// Reserve stock → authorise payment (the order is confirmed when it succeeds) → commit the
/// reservation → capture the payment. The last two are past the point of no return.
pub fn place_order(reserve_timeout: Duration, payment_timeout: Duration) -> SagaDefinition {
    SagaDefinition {
        name: PLACE_ORDER,
        steps: PlaceOrderStep::ALL
            .into_iter()
            .map(|step| place_order_step(step, reserve_timeout, payment_timeout))
            .collect(),
        stuck_after: 5,
        retry_base: Duration::from_millis(200),
        retry_max: Duration::from_secs(30),
    }
}

fn cancel_order_step(step: CancelOrderStep) -> Step {
    let name = step.name();
    match step {
        CancelOrderStep::RefundPayment => Step {
            name,
            timeout: SETTLE_TIMEOUT,
            action: |d| {
                let d: CancelOrderData = read_data(d)?;
                to_payments(&RefundPayment { order_id: d.order_id, amount: d.charged.total })
            },
            compensation: None,
            retriable: true,
        },
        CancelOrderStep::Restock => Step {
            name,
            timeout: SETTLE_TIMEOUT,
            action: |d| to_inventory(&Restock { order_id: read_data::<CancelOrderData>(d)?.order_id }),
            compensation: None,
            retriable: true,
        },
    }
}

/// Refund the payment, then put the stock back. Both must happen: retried, never compensated.
pub fn cancel_order() -> SagaDefinition {
    SagaDefinition {
        name: CANCEL_ORDER,
        steps: CancelOrderStep::ALL.into_iter().map(cancel_order_step).collect(),
        stuck_after: 5,
        retry_base: Duration::from_millis(200),
        retry_max: Duration::from_secs(30),
    }
}
