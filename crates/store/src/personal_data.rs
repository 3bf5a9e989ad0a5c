//! The personal data the platform keeps in every service's store, whatever the service: the
//! person a message is about (its envelope's subject, and its key when the key is the person),
//! and who did what to whom in the audit trail. Messages' payloads are declared by the
//! services that own the messages.

use tessera_kernel::personal::{DataClass, Location, PLATFORM, PersonalField, Protection, Retention};

pub const MESSAGE_SUBJECT: PersonalField = PersonalField {
    service: PLATFORM,
    field: "the person a message is about",
    class: DataClass::Identifier,
    protection: &[Protection::Plain(
        "a customer id, so that an erasure and the audit find every message about them",
    )],
    retention: Retention::Days {
        days: 1,
        after: "the message was sent: the relay prunes sent outbox rows (timers and dead letters stay until handled)",
    },
    purpose: "erasure and audit of messages about a person",
    locations: &[
        Location::Column { table: "tessera_outbox", column: "key" },
        Location::Json { table: "tessera_outbox_envelopes", column: "envelope", path: "subject" },
        Location::Json { table: "tessera_outbox_envelopes", column: "envelope", path: "key" },
        Location::Json { table: "tessera_timers", column: "envelope", path: "subject" },
        Location::Json { table: "tessera_timers", column: "envelope", path: "key" },
        Location::Json { table: "tessera_dead_letters", column: "envelope", path: "subject" },
        Location::Json { table: "tessera_dead_letters", column: "envelope", path: "key" },
    ],
};

pub const AUDIT_PARTIES: PersonalField = PersonalField {
    service: PLATFORM,
    field: "who acted, on whose data",
    class: DataClass::Identifier,
    protection: &[Protection::Plain(
        "the audit trail must say who read or changed a person's data; its records are hash-chained and never edited",
    )],
    retention: Retention::WithRecord(
        "an audit record is kept as long as the chain it is part of; old segments move whole to the archive, an anchor left behind",
    ),
    purpose: "accountability: who read or changed a person's data, when and how",
    locations: &[
        Location::Column { table: "tessera_audit", column: "actor" },
        Location::Column { table: "tessera_audit", column: "resource" },
        // Archived segments of the chain (`tessera_audit::segment_key`), in the embedded data
        // folder's archive.
        Location::Objects { prefix: "archive/audit" },
    ],
};

/// Everything the platform declares.
pub const FIELDS: [PersonalField; 2] = [MESSAGE_SUBJECT, AUDIT_PARTIES];
