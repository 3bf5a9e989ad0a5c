//! The personal data the orders service keeps: the buyer's id on every order (its events, its
//! summary, its sagas, its idempotency keys), the card token and its last digits the order was
//! paid with, the market it was sold in, and the analytics' pseudonym of the buyer.

use tessera_kernel::personal::{DataClass, Location, PersonalField, Protection, Retention};

const FULFILMENT: &str = "taking, paying for and delivering the order";
const ORDER_RECORD: &str =
    "an order is a business record: it stays after an erasure, its buyer shown as `[erased]`";

pub const CUSTOMER_ID: PersonalField = PersonalField {
    service: "orders",
    field: "customer id",
    class: DataClass::Identifier,
    protection: &[Protection::Plain("the buyer of an order: who may see it, and whose erasure reaches it")],
    retention: Retention::WithRecord(ORDER_RECORD),
    purpose: FULFILMENT,
    locations: &[
        Location::Column { table: "order_summaries", column: "customer_id" },
        Location::Column { table: "order_requests", column: "customer_id" },
        Location::Message { name: "orders.Placed", field: "customer_id" },
        Location::Message { name: "orders.OrderPlaced", field: "customer_id" },
        Location::Message { name: "orders.OrderConfirmed", field: "customer_id" },
        Location::Message { name: "orders.OrderRejected", field: "customer_id" },
        Location::Message { name: "orders.OrderCancelled", field: "customer_id" },
        Location::Json { table: "tessera_snapshots", column: "state", path: "state.customer_id" },
        Location::Json { table: "tessera_sagas", column: "state", path: "data.customer_id" },
    ],
};

pub const PAYMENT_TOKEN: PersonalField = PersonalField {
    service: "orders",
    field: "card token",
    class: DataClass::Financial,
    protection: &[Protection::Plain(
        "a token payments issued; it is worth nothing outside payments, which erases it",
    )],
    retention: Retention::WithRecord(ORDER_RECORD),
    purpose: FULFILMENT,
    locations: &[
        Location::Message { name: "orders.Placed", field: "payment_token" },
        Location::Json { table: "tessera_snapshots", column: "state", path: "state.payment_token" },
        Location::Json { table: "tessera_sagas", column: "state", path: "data.payment_token" },
    ],
};

pub const CARD_LAST4: PersonalField = PersonalField {
    service: "orders",
    field: "card's last four digits",
    class: DataClass::Financial,
    protection: &[Protection::Plain("four digits identify no card; they tell the buyer which card paid")],
    retention: Retention::WithRecord(ORDER_RECORD),
    purpose: FULFILMENT,
    locations: &[
        Location::Message { name: "orders.PaymentAuthorised", field: "last4" },
        Location::Json { table: "tessera_snapshots", column: "state", path: "state.last4" },
        Location::Json { table: "tessera_sagas", column: "state", path: "data.payment.last4" },
    ],
};

pub const COUNTRY: PersonalField = PersonalField {
    service: "orders",
    field: "market (country)",
    class: DataClass::Address,
    protection: &[Protection::Plain(
        "a country alone does not identify a person; the analytics group sales by it",
    )],
    retention: Retention::WithRecord(ORDER_RECORD),
    purpose: "sales analytics per market",
    locations: &[
        Location::Message { name: "orders.Placed", field: "country" },
        Location::Column { table: "analytics_sales", column: "country" },
    ],
};

pub const BUYER_PSEUDONYM: PersonalField = PersonalField {
    service: "orders",
    field: "buyer pseudonym",
    class: DataClass::Identifier,
    protection: &[Protection::Pseudonymised],
    retention: Retention::WithRecord("counted sales stay; the pseudonym's key is the vault's"),
    purpose: "counting distinct buyers in the sales analytics",
    locations: &[Location::Column { table: "analytics_sales", column: "buyer" }],
};

/// Everything the orders service declares.
pub const FIELDS: [PersonalField; 5] = [CUSTOMER_ID, PAYMENT_TOKEN, CARD_LAST4, COUNTRY, BUYER_PSEUDONYM];
