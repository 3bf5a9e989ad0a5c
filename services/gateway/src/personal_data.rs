//! The personal data the gateway keeps in its own tables: the email of an account whose
//! sign-ins failed, and, from releases before orders kept placements' keys, the answers to
//! idempotent requests. Its audit trail is the platform's (`tessera_store::personal_data`).

use tessera_kernel::personal::{DataClass, Location, PersonalField, Protection, Retention};

pub const SIGN_IN_ACCOUNT: PersonalField = PersonalField {
    service: "gateway",
    field: "email of an account with failed sign-ins",
    class: DataClass::Contact,
    protection: &[Protection::Plain("the count must be found by the address a sign-in gives")],
    retention: Retention::WithRecord(
        "deleted at the account's next successful sign-in; counts older than an hour start over",
    ),
    purpose: "keeping password guessers out",
    locations: &[Location::Column { table: "gateway_sign_in_failures", column: "subject" }],
};

pub const IDEMPOTENT_ANSWER: PersonalField = PersonalField {
    service: "gateway",
    field: "caller and answer of an idempotent request",
    class: DataClass::Identifier,
    protection: &[Protection::Plain(
        "no longer written (decision 0004); rows of older releases answer a retry",
    )],
    retention: Retention::Days { days: 1, after: "the request" },
    purpose: "answering a retried request with the first answer",
    locations: &[
        Location::Column { table: "gateway_idempotency", column: "caller" },
        Location::Column { table: "gateway_idempotency", column: "body" },
    ],
};

/// Everything the gateway declares.
pub const FIELDS: [PersonalField; 2] = [SIGN_IN_ACCOUNT, IDEMPOTENT_ANSWER];
