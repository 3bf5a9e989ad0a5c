//! The personal data the payments service keeps: a customer's saved cards (as tokens, with
//! their brand, last digits and expiry; never the number or the CVC) and their payments.

use tessera_kernel::personal::{DataClass, Location, PersonalField, Protection, Retention};

const PAYING: &str = "charging, capturing and refunding the customer's orders";
const LEDGER: &str = "payments are the money's ledger: they stay after an erasure, the card forgotten";

pub const CUSTOMER_ID: PersonalField = PersonalField {
    service: "payments",
    field: "customer id",
    class: DataClass::Identifier,
    protection: &[Protection::Plain("the owner of a card: only they may pay with it")],
    retention: Retention::WithRecord(LEDGER),
    purpose: PAYING,
    locations: &[
        Location::Column { table: "payment_methods", column: "customer_id" },
        Location::Column { table: "payments", column: "customer_id" },
        Location::Message { name: "payments.AuthorisePayment", field: "customer_id" },
    ],
};

pub const CARD_TOKEN: PersonalField = PersonalField {
    service: "payments",
    field: "card token",
    class: DataClass::Financial,
    protection: &[Protection::Plain(
        "a random token standing for the card; the number itself is never stored",
    )],
    retention: Retention::UntilErasure,
    purpose: PAYING,
    locations: &[
        Location::Column { table: "payment_methods", column: "token" },
        Location::Column { table: "payments", column: "token" },
        Location::Message { name: "payments.AuthorisePayment", field: "payment_token" },
    ],
};

pub const CARD_DETAILS: PersonalField = PersonalField {
    service: "payments",
    field: "card brand, last four digits and expiry",
    class: DataClass::Financial,
    protection: &[Protection::Plain("they identify no card; they tell the customer which card is which")],
    retention: Retention::UntilErasure,
    purpose: PAYING,
    locations: &[
        Location::Column { table: "payment_methods", column: "last4" },
        Location::Column { table: "payment_methods", column: "exp_month" },
        Location::Column { table: "payment_methods", column: "exp_year" },
        Location::Column { table: "payments", column: "last4" },
        Location::Message { name: "payments.PaymentAuthorised", field: "last4" },
        Location::Message { name: "payments.AuthorisePaymentReply", field: "last4" },
    ],
};

/// Everything the payments service declares.
pub const FIELDS: [PersonalField; 3] = [CUSTOMER_ID, CARD_TOKEN, CARD_DETAILS];
