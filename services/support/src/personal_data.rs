//! The personal data the support service keeps: what customers write in their tickets and
//! the files they attach, all sealed with their data key, and their id on tickets and order
//! replicas.

use tessera_kernel::personal::{DataClass, Location, PersonalField, Protection, Retention};

const ANSWERING: &str = "answering the customer's question";

pub const CUSTOMER_ID: PersonalField = PersonalField {
    service: "support",
    field: "customer id",
    class: DataClass::Identifier,
    protection: &[Protection::Plain("the owner of a ticket: who may read it, and whose key seals it")],
    retention: Retention::WithRecord("a ticket stays, its texts unreadable, after its customer's erasure"),
    purpose: ANSWERING,
    locations: &[
        Location::Column { table: "tickets", column: "customer_id" },
        Location::Column { table: "order_replicas", column: "customer_id" },
        Location::Message { name: "support.TicketOpened", field: "customer_id" },
        Location::Message { name: "support.TicketClosed", field: "customer_id" },
        // Attachments are filed under their customer's id, so an erasure finds them.
        Location::Column { table: "ticket_attachments", column: "object_key" },
        // What a customer's attachments hold, counted for their quota; deleted by an erasure.
        Location::Column { table: "attachment_usage", column: "scope" },
        Location::Objects { prefix: "attachments" },
    ],
};

pub const TICKET_SUBJECT: PersonalField = PersonalField {
    service: "support",
    field: "ticket subject",
    class: DataClass::FreeText,
    protection: &[Protection::Sealed],
    retention: Retention::UntilErasure,
    purpose: ANSWERING,
    locations: &[
        Location::Column { table: "tickets", column: "subject" },
        Location::Message { name: "support.TicketOpened", field: "subject" },
    ],
};

pub const TICKET_MESSAGE: PersonalField = PersonalField {
    service: "support",
    field: "ticket message",
    class: DataClass::FreeText,
    protection: &[Protection::Sealed],
    // The default of support's retention job (`crate::domain::MessageRetention`), which a
    // setting may shorten or lengthen; until then, or the customer's erasure.
    retention: Retention::Days { days: 90, after: "the ticket is closed" },
    purpose: ANSWERING,
    locations: &[Location::Column { table: "ticket_messages", column: "body" }],
};

pub const ATTACHMENT_NAME: PersonalField = PersonalField {
    service: "support",
    field: "attachment file name",
    class: DataClass::FreeText,
    protection: &[Protection::Sealed],
    retention: Retention::UntilErasure,
    purpose: ANSWERING,
    locations: &[Location::Column { table: "ticket_attachments", column: "file_name" }],
};

pub const ATTACHMENT: PersonalField = PersonalField {
    service: "support",
    field: "attachment",
    class: DataClass::FreeText,
    protection: &[Protection::Sealed],
    retention: Retention::UntilErasure,
    purpose: ANSWERING,
    locations: &[Location::Objects { prefix: "attachments" }],
};

/// Everything the support service declares.
pub const FIELDS: [PersonalField; 5] =
    [CUSTOMER_ID, TICKET_SUBJECT, TICKET_MESSAGE, ATTACHMENT_NAME, ATTACHMENT];
