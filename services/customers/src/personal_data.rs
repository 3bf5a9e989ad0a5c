//! The personal data the customers service keeps: the profile (declared in the contracts,
//! where the gateway's masking reads it too), the customer's id as it appears in its tables
//! and messages, and what sign-in needs.

use tessera_contracts::customers::profile;
use tessera_kernel::personal::{DataClass, Location, PersonalField, Protection, Retention};

pub const CUSTOMER_ID: PersonalField = PersonalField {
    service: "customers",
    field: "customer id",
    class: DataClass::Identifier,
    protection: &[Protection::Plain(
        "a random id that says nothing by itself; every service keys the person's records by it",
    )],
    retention: Retention::WithRecord(
        "the row stays, blanked, as the owner of orders and payments after an erasure",
    ),
    purpose: "telling customers apart and linking their records",
    locations: &[
        Location::Column { table: "customers", column: "id" },
        Location::Column { table: "erasures", column: "customer_id" },
        Location::Message { name: "customers.CustomerRegistered", field: "customer_id" },
        Location::Message { name: "customers.CustomerUpdated", field: "customer_id" },
        Location::Message { name: "customers.CustomerErased", field: "customer_id" },
        Location::Message { name: "privacy.ErasureDone", field: "customer_id" },
    ],
};

pub const EMAIL_KEY: PersonalField = PersonalField {
    service: "customers",
    field: "email lookup key",
    class: DataClass::Contact,
    protection: &[Protection::Pseudonymised],
    retention: Retention::UntilErasure,
    purpose: "finding the account an email signs in to, without keeping the address in clear",
    locations: &[Location::Column { table: "customers", column: "email_key" }],
};

pub const PASSWORD_HASH: PersonalField = PersonalField {
    service: "customers",
    field: "password hash",
    class: DataClass::Identifier,
    protection: &[Protection::Plain(
        "an argon2id hash: the password itself is never stored and cannot be recovered",
    )],
    retention: Retention::UntilErasure,
    purpose: "signing in",
    locations: &[Location::Column { table: "customers", column: "password_hash" }],
};

/// Everything the customers service declares.
pub const FIELDS: [PersonalField; 9] = [
    CUSTOMER_ID,
    profile::EMAIL,
    EMAIL_KEY,
    profile::NAME,
    profile::ADDRESS_LINE1,
    profile::CITY,
    profile::POSTAL_CODE,
    profile::COUNTRY,
    PASSWORD_HASH,
];
