//! The platform's facts about one store's message pipeline: what its outbox holds and what
//! its inbox has applied. Invariant checkers (`tessera verify`, the simulation) read these
//! instead of the `tessera_outbox` and `tessera_inbox` tables, which stay this crate's own.

use serde_json::Value;
use tessera_kernel::Timestamp;

use crate::error::Result;
use crate::model::Statement;
use crate::store::Store;

/// One outbox row: a message the service committed to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxFact {
    pub message_id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub sent: bool,
    /// What the row's stored envelope says; `None` when the envelope is missing, which only
    /// a broken write can cause.
    pub envelope: Option<OutboxEnvelope>,
}

/// The parts of a stored envelope a checker needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboxEnvelope {
    pub name: Option<String>,
    /// The service a command or reply is addressed to; events have none. Also `None` when the
    /// envelope does not parse: such a row cannot be followed to a target.
    pub target: Option<String>,
}

/// One message the service's inbox recorded as applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxFact {
    pub message_id: String,
    /// How many committed units consumed it. The inbox's key makes this 1 in a real store; a
    /// simulated store counts, so that a dedupe bug shows.
    pub times_applied: u32,
}

fn timestamp(micros: i64) -> Timestamp {
    Timestamp::from_micros(u64::try_from(micros).unwrap_or_default())
}

/// Every outbox row of `store`, with its envelope's addressing.
pub async fn outbox_facts(store: &Store) -> Result<Vec<OutboxFact>> {
    let rows = store
        .query(Statement::new(
            "SELECT o.message_id, o.name, o.created_at, o.sent_at, e.envelope FROM tessera_outbox o
             LEFT JOIN tessera_outbox_envelopes e ON e.position = o.position",
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let envelope = row.opt_text("envelope")?.map(|text| {
                let envelope: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                OutboxEnvelope {
                    name: envelope["name"].as_str().map(str::to_owned),
                    target: envelope["target"].as_str().map(str::to_owned),
                }
            });
            Ok(OutboxFact {
                message_id: row.text("message_id")?.to_owned(),
                name: row.text("name")?.to_owned(),
                created_at: timestamp(row.int("created_at")?),
                sent: row.opt_int("sent_at")?.is_some(),
                envelope,
            })
        })
        .collect()
}

/// Every message `store`'s inbox has applied.
pub async fn inbox_facts(store: &Store) -> Result<Vec<InboxFact>> {
    let rows = store.query(Statement::new("SELECT message_id FROM tessera_inbox")).await?;
    rows.iter()
        .map(|row| Ok(InboxFact { message_id: row.text("message_id")?.to_owned(), times_applied: 1 }))
        .collect()
}
