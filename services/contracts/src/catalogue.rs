//! The catalogue of every message type in the contracts, with what the compatibility check
//! needs of each: its name and current version, its JSON Schema generated from the Rust type,
//! a sample message, and a way to ask the type whether it accepts a payload.
//!
//! A new message type is added here as well as declared with `message!`; a test in
//! `tests/contracts.rs` fails if a declared message is missing.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::customers::{CustomerErased, CustomerRegistered, CustomerUpdated, ErasureDone};
use crate::inventory::{
    CommitReservation, ProductCreated, ProductUpdated, ReleaseStock, ReserveStock, ReserveStockReply,
    Restock, StockChanged,
};
use crate::message::{Kind, Message};
use crate::orders::{OrderCancelled, OrderConfirmed, OrderPlaced, OrderRejected};
use crate::payments::{
    AuthorisePayment, AuthorisePaymentReply, CapturePayment, PaymentAuthorised, PaymentCaptured,
    PaymentDeclined, PaymentRefunded, RefundPayment, VoidPayment,
};
use crate::support::{TicketClosed, TicketOpened};

/// One message type as the compatibility check sees it.
#[derive(Clone, Copy, Debug)]
pub struct Contract {
    /// `<owner>.<Type>`, also the folder of its committed schemas.
    pub name: &'static str,
    pub version: u32,
    pub kind: Kind,
    schema: fn() -> Value,
    sample: fn() -> Value,
    accepts: fn(Value) -> Result<(), String>,
}

impl Contract {
    /// A message type with the name, version and kind its `message!` gives it.
    pub fn message<M: Message + JsonSchema>(sample: fn() -> Value) -> Self {
        Self::new::<M>(M::NAME, M::VERSION, M::KIND, sample)
    }

    /// A payload that travels inside another message (a saga reply's data), named and
    /// versioned here because it has no `message!` of its own.
    pub fn new<T: JsonSchema + Serialize + DeserializeOwned>(
        name: &'static str,
        version: u32,
        kind: Kind,
        sample: fn() -> Value,
    ) -> Self {
        Self { name, version, kind, schema: schema_of::<T>, sample, accepts: accepts::<T> }
    }

    /// The JSON Schema of today's type.
    pub fn schema(&self) -> Value {
        (self.schema)()
    }

    /// A message of today's version, as a sender writes it.
    pub fn sample(&self) -> Value {
        (self.sample)()
    }

    /// Whether today's type reads `payload`; `Err` says why not.
    pub fn accepts(&self, payload: Value) -> Result<(), String> {
        (self.accepts)(payload)
    }
}

fn schema_of<T: JsonSchema>() -> Value {
    schemars::schema_for!(T).to_value()
}

fn accepts<T: DeserializeOwned>(payload: Value) -> Result<(), String> {
    serde_json::from_value::<T>(payload).map(drop).map_err(|e| e.to_string())
}

const ORDER: &str = "0190a000-0000-7000-8000-000000000001";
const CUSTOMER: &str = "0190a000-0000-7000-8000-000000000002";
const OTHER: &str = "0190a000-0000-7000-8000-000000000003";

fn money() -> Value {
    json!({"amount": 1250, "currency": "EUR"})
}

fn address() -> Value {
    json!({"line1": "1 Sample Street", "city": "Berlin", "postal_code": "10115", "country": "DE"})
}

fn priced_line() -> Value {
    json!({"sku": "TEA-001", "name": "Green tea", "quantity": 2, "unit_price": money()})
}

/// Every message type in the contracts, in the order of their modules.
pub fn contracts() -> Vec<Contract> {
    vec![
        Contract::message::<CustomerRegistered>(|| {
            json!({"customer_id": CUSTOMER, "email": "ada@example.com", "name": "Ada Lovelace",
                   "address": address(), "version": 1})
        }),
        Contract::message::<CustomerUpdated>(
            || json!({"customer_id": CUSTOMER, "name": "Ada King", "address": address(), "version": 2}),
        ),
        Contract::message::<CustomerErased>(|| json!({"customer_id": CUSTOMER, "erasure_id": OTHER})),
        Contract::message::<ErasureDone>(
            || json!({"customer_id": CUSTOMER, "erasure_id": OTHER, "service": "orders"}),
        ),
        Contract::message::<ReserveStock>(
            || json!({"order_id": ORDER, "lines": [{"sku": "TEA-001", "quantity": 2}]}),
        ),
        Contract::message::<ReleaseStock>(|| json!({"order_id": ORDER})),
        Contract::message::<CommitReservation>(|| json!({"order_id": ORDER})),
        Contract::message::<Restock>(|| json!({"order_id": ORDER})),
        Contract::new::<ReserveStockReply>(
            "inventory.ReserveStockReply",
            1,
            Kind::Reply,
            || json!({"reserved": {"lines": [priced_line()], "total": money()}}),
        ),
        Contract::message::<ProductCreated>(
            || json!({"sku": "TEA-001", "name": "Green tea", "price": money(), "available": 10}),
        ),
        Contract::message::<ProductUpdated>(|| {
            json!({"sku": "TEA-001", "name": "Green tea", "description": "Sencha", "price": money(),
                   "version": 2})
        }),
        Contract::message::<StockChanged>(|| {
            json!({"sku": "TEA-001", "cause": "reserved", "order_id": ORDER, "available_delta": -2,
                   "reserved_delta": 2, "sold_delta": 0})
        }),
        Contract::message::<OrderPlaced>(|| {
            json!({"order_id": ORDER, "customer_id": CUSTOMER, "lines": [{"sku": "TEA-001", "quantity": 2}],
                   "version": 1})
        }),
        Contract::message::<OrderConfirmed>(|| {
            json!({"order_id": ORDER, "customer_id": CUSTOMER, "lines": [priced_line()], "total": money(),
                   "version": 4})
        }),
        Contract::message::<OrderRejected>(
            || json!({"order_id": ORDER, "customer_id": CUSTOMER, "reason": "out_of_stock", "version": 2}),
        ),
        Contract::message::<OrderCancelled>(
            || json!({"order_id": ORDER, "customer_id": CUSTOMER, "refunded": money(), "version": 6}),
        ),
        Contract::message::<AuthorisePayment>(
            || json!({"order_id": ORDER, "customer_id": CUSTOMER, "payment_token": "tok_1", "amount": money()}),
        ),
        Contract::message::<VoidPayment>(|| json!({"order_id": ORDER})),
        Contract::message::<CapturePayment>(|| json!({"order_id": ORDER, "amount": money()})),
        Contract::message::<RefundPayment>(|| json!({"order_id": ORDER, "amount": money()})),
        Contract::new::<AuthorisePaymentReply>(
            "payments.AuthorisePaymentReply",
            1,
            Kind::Reply,
            || json!({"payment": {"payment_id": OTHER, "last4": "4242"}}),
        ),
        Contract::message::<PaymentAuthorised>(
            || json!({"order_id": ORDER, "payment_id": OTHER, "amount": money(), "last4": "4242"}),
        ),
        Contract::message::<PaymentDeclined>(|| json!({"order_id": ORDER, "reason": "card_declined"})),
        Contract::message::<PaymentCaptured>(
            || json!({"order_id": ORDER, "payment_id": OTHER, "amount": money()}),
        ),
        Contract::message::<PaymentRefunded>(
            || json!({"order_id": ORDER, "payment_id": OTHER, "amount": money()}),
        ),
        Contract::message::<TicketOpened>(
            || json!({"ticket_id": OTHER, "customer_id": CUSTOMER, "order_id": ORDER, "subject": "Where is my tea?"}),
        ),
        Contract::message::<TicketClosed>(|| json!({"ticket_id": OTHER, "customer_id": CUSTOMER})),
    ]
}
