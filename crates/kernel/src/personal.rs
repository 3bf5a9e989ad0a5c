//! Declarations of personal data: which field a service keeps about a person, of what class,
//! protected how, kept how long and why, and where it lies (columns, message fields, files).
//!
//! The same declarations drive the code that protects the data: the vault seals only a field
//! declared [`Protection::Sealed`] (`Sealer::seal_field`), the gateway masks for support what is
//! declared [`Protection::MaskedForSupport`], and `tessera governance map` prints them. So the
//! map cannot say one thing while the code does another; a canary test finds what no
//! declaration covers.

use std::fmt;

use serde::Serialize;

/// What kind of personal data a field is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataClass {
    /// Points at the person: their customer id, a pseudonym of it.
    Identifier,
    /// Reaches the person: an email address.
    Contact,
    /// Where the person lives.
    Address,
    /// Money and cards: a card's last four digits, its token.
    Financial,
    /// Whatever the person wrote: a ticket's subject, its messages, a file they attached.
    FreeText,
}

/// How support sees a field masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mask {
    /// `a***@example.com`: the first character and the domain.
    Email,
    /// `***`.
    Hidden,
}

impl Mask {
    /// `value` as support sees it.
    pub fn apply(self, value: &str) -> String {
        match self {
            Mask::Email => match value.split_once('@') {
                Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
                None => "***".to_owned(),
            },
            Mask::Hidden => "***".to_owned(),
        }
    }
}

/// One way a field is protected; a field may have several (sealed at rest, masked for support).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Protection {
    /// Encrypted with the person's data key; unreadable once they are erased.
    Sealed,
    /// Replaced by a keyed hash held in the vault (a blind index, an analytics pseudonym).
    Pseudonymised,
    /// Shown masked to the support role.
    MaskedForSupport(Mask),
    /// Kept as it is, for the stated reason.
    Plain(&'static str),
}

/// How long a field is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Retention {
    /// Until the person asks to be erased (their key is shredded or the value blanked).
    UntilErasure,
    /// For `days` after the stated moment, then deleted.
    Days { days: u32, after: &'static str },
    /// As long as the record it belongs to, for the stated reason (an audit trail, a ledger).
    WithRecord(&'static str),
}

impl Retention {
    /// How long after its moment a field declared [`Retention::Days`] is kept; `None` for the
    /// others, which no clock ends.
    pub fn period(&self) -> Option<std::time::Duration> {
        match self {
            Retention::Days { days, .. } => Some(std::time::Duration::from_secs(u64::from(*days) * 86_400)),
            Retention::UntilErasure | Retention::WithRecord(_) => None,
        }
    }
}

/// Where a field lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Location {
    /// A column of one of the declaring service's tables.
    Column { table: &'static str, column: &'static str },
    /// A field inside a JSON column (`path` is dotted: `payload.customer_id`), in the declaring
    /// service's store, or in every store when the platform declares it.
    Json { table: &'static str, column: &'static str, path: &'static str },
    /// A field of a named message or event (`orders.OrderPlaced`, `customer_id`), wherever the
    /// message is kept: event streams, outboxes, timers, snapshots, dead letters.
    Message { name: &'static str, field: &'static str },
    /// Files in the object store under `prefix`.
    Objects { prefix: &'static str },
    /// A field of an HTTP answer (`address.line1` of `GET /customers/{id}`).
    Response { route: &'static str, field: &'static str },
}

/// The declaring service that stands for every store: the platform's own tables (audit trails,
/// outbox envelopes) are in all of them.
pub const PLATFORM: &str = "platform";

/// One personal field as a service declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PersonalField {
    /// The service that keeps it (its store's name), or [`PLATFORM`].
    pub service: &'static str,
    /// What it is, in a few words: `email`, `ticket message`.
    pub field: &'static str,
    pub class: DataClass,
    pub protection: &'static [Protection],
    pub retention: Retention,
    pub purpose: &'static str,
    pub locations: &'static [Location],
}

/// Where a scan found a person's bytes: a column of a store, or a field of a JSON value in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sighting {
    /// The store (service) or object store folder.
    pub store: String,
    pub table: String,
    pub column: String,
    /// The name of the message or event the JSON value is, when it is one.
    pub message: Option<String>,
    /// The dotted path inside the JSON value, when the column holds JSON.
    pub path: Option<String>,
}

impl PersonalField {
    pub fn is_sealed(&self) -> bool {
        self.protection.contains(&Protection::Sealed)
    }

    /// How support sees it, if masked for them.
    pub fn mask(&self) -> Option<Mask> {
        self.protection.iter().find_map(|p| match p {
            Protection::MaskedForSupport(mask) => Some(*mask),
            _ => None,
        })
    }

    /// Whether this declaration says the field may be where `sighting` found it.
    pub fn covers(&self, sighting: &Sighting) -> bool {
        let in_store = self.service == PLATFORM || self.service == sighting.store;
        self.locations.iter().any(|location| match *location {
            Location::Column { table, column } => {
                in_store && sighting.table == table && sighting.column == column && sighting.path.is_none()
            }
            Location::Json { table, column, path } => {
                in_store
                    && sighting.table == table
                    && sighting.column == column
                    && sighting.path.as_deref() == Some(path)
            }
            Location::Message { name, field } => {
                sighting.message.as_deref() == Some(name)
                    && sighting
                        .path
                        .as_deref()
                        .is_some_and(|p| p == field || p.ends_with(&format!(".{field}")))
            }
            Location::Objects { prefix } => {
                sighting.table == "objects" && sighting.column.starts_with(prefix)
            }
            Location::Response { .. } => false,
        })
    }
}

impl fmt::Display for DataClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataClass::Identifier => "identifier",
            DataClass::Contact => "contact",
            DataClass::Address => "address",
            DataClass::Financial => "financial",
            DataClass::FreeText => "free text",
        })
    }
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protection::Sealed => f.write_str("sealed by the vault"),
            Protection::Pseudonymised => f.write_str("pseudonymised"),
            Protection::MaskedForSupport(Mask::Email) => f.write_str("masked for support (a***@domain)"),
            Protection::MaskedForSupport(Mask::Hidden) => f.write_str("masked for support (***)"),
            Protection::Plain(reason) => write!(f, "plain: {reason}"),
        }
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Retention::UntilErasure => f.write_str("until erasure"),
            Retention::Days { days, after } => write!(f, "{days} day(s) after {after}"),
            Retention::WithRecord(reason) => write!(f, "with its record: {reason}"),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Column { table, column } => write!(f, "{table}.{column}"),
            Location::Json { table, column, path } => write!(f, "{table}.{column} → {path}"),
            Location::Message { name, field } => write!(f, "message {name} → {field}"),
            Location::Objects { prefix } => write!(f, "object store {prefix}/"),
            Location::Response { route, field } => write!(f, "{route} → {field}"),
        }
    }
}

impl fmt::Display for Sighting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}.{}", self.store, self.table, self.column)?;
        if let Some(message) = &self.message {
            write!(f, " ({message})")?;
        }
        if let Some(path) = &self.path {
            write!(f, " → {path}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICKET_SUBJECT: PersonalField = PersonalField {
        service: "support",
        field: "ticket subject",
        class: DataClass::FreeText,
        protection: &[Protection::Sealed],
        retention: Retention::UntilErasure,
        purpose: "answering the customer",
        locations: &[
            Location::Column { table: "tickets", column: "subject" },
            Location::Message { name: "support.TicketOpened", field: "subject" },
        ],
    };

    fn seen(store: &str, table: &str, column: &str, message: Option<&str>, path: Option<&str>) -> Sighting {
        Sighting {
            store: store.into(),
            table: table.into(),
            column: column.into(),
            message: message.map(Into::into),
            path: path.map(Into::into),
        }
    }

    #[test]
    fn a_column_is_covered_only_in_the_declaring_services_store() {
        assert!(TICKET_SUBJECT.covers(&seen("support", "tickets", "subject", None, None)));
        assert!(!TICKET_SUBJECT.covers(&seen("orders", "tickets", "subject", None, None)));
        assert!(!TICKET_SUBJECT.covers(&seen("support", "tickets", "status", None, None)));
    }

    #[test]
    fn a_message_field_is_covered_in_any_store_and_any_envelope_depth() {
        let outbox = seen(
            "support",
            "tessera_outbox_envelopes",
            "envelope",
            Some("support.TicketOpened"),
            Some("payload.subject"),
        );
        assert!(TICKET_SUBJECT.covers(&outbox));
        let inbox_elsewhere =
            seen("orders", "tessera_events", "payload", Some("support.TicketOpened"), Some("subject"));
        assert!(TICKET_SUBJECT.covers(&inbox_elsewhere));
        let other = seen(
            "support",
            "tessera_outbox_envelopes",
            "envelope",
            Some("support.TicketClosed"),
            Some("payload.subject"),
        );
        assert!(!TICKET_SUBJECT.covers(&other));
        let not_the_field =
            seen("support", "x", "y", Some("support.TicketOpened"), Some("payload.unsubject"));
        assert!(!TICKET_SUBJECT.covers(&not_the_field));
    }

    #[test]
    fn only_a_retention_in_days_has_a_period() {
        let ninety = Retention::Days { days: 90, after: "the ticket is closed" };
        assert_eq!(ninety.period(), Some(std::time::Duration::from_secs(90 * 86_400)));
        assert_eq!(Retention::UntilErasure.period(), None);
        assert_eq!(Retention::WithRecord("ledger").period(), None);
    }

    #[test]
    fn masks_keep_only_what_support_needs() {
        assert_eq!(Mask::Email.apply("ada@example.com"), "a***@example.com");
        assert_eq!(Mask::Email.apply("nonsense"), "***");
        assert_eq!(Mask::Hidden.apply("1 Main Street"), "***");
    }
}
