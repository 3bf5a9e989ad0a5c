//! The personal data the vault keeps: whose each data key is. The keys themselves are not
//! personal data (they are random, and stored only wrapped by the master key); the customer id
//! that finds one is.

use tessera_kernel::personal::{DataClass, Location, PersonalField, Protection, Retention};

pub const KEY_OWNER: PersonalField = PersonalField {
    service: "vault",
    field: "whose data key",
    class: DataClass::Identifier,
    protection: &[Protection::Plain(
        "a data key is found by its customer's id; it seals their data, it is not their data",
    )],
    retention: Retention::WithRecord(
        "the key is deleted at erasure (crypto-shredding); a tombstone with the id stays so the person stays erased",
    ),
    purpose: "sealing a customer's data, and forgetting it at once by deleting one key",
    locations: &[
        Location::Column { table: "vault_keys", column: "subject" },
        Location::Column { table: "vault_shredded", column: "subject" },
    ],
};

/// Everything the vault declares.
pub const FIELDS: [PersonalField; 1] = [KEY_OWNER];
