//! The service's dead-letter table: messages a subscriber gave up on, with the last error and
//! the number of attempts. An operator lists them, asks for a retry (the running subscriber
//! picks it up) or drops them: `tessera dlq list|retry|drop`.

use tessera_kernel::{Envelope, Timestamp};
use tessera_store::{Migration, MigrationSet, Row, Statement, Store, UnitOfWork};

use crate::error::{BusError, Result};

/// Include in every service store that subscribes to anything.
pub const MIGRATIONS: MigrationSet = MigrationSet {
    scope: "tessera.bus",
    migrations: &[Migration {
        version: 1,
        name: "dead letters",
        sqlite: "CREATE TABLE tessera_dead_letters (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                consumer TEXT NOT NULL,
                message_id TEXT NOT NULL,
                envelope TEXT NOT NULL,
                error TEXT NOT NULL,
                attempts BIGINT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('parked', 'retry')),
                failed_at BIGINT NOT NULL,
                UNIQUE (consumer, message_id)
            );",
        postgres: "CREATE TABLE tessera_dead_letters (
                id BIGSERIAL PRIMARY KEY,
                consumer TEXT NOT NULL,
                message_id TEXT NOT NULL,
                envelope TEXT NOT NULL,
                error TEXT NOT NULL,
                attempts BIGINT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('parked', 'retry')),
                failed_at BIGINT NOT NULL,
                UNIQUE (consumer, message_id)
            );",
    }],
};

#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub id: i64,
    /// The subscription that gave up: `<subscriber>__<source>`.
    pub consumer: String,
    pub envelope: Envelope,
    pub error: String,
    pub attempts: i64,
    /// `parked`, or `retry` once an operator asked for another attempt.
    pub state: String,
    pub failed_at: Timestamp,
}

const COLUMNS: &str = "id, consumer, envelope, error, attempts, state, failed_at";

fn from_row(row: &Row) -> Result<DeadLetter> {
    let id = row.int("id")?;
    Ok(DeadLetter {
        id,
        consumer: row.text("consumer")?.to_owned(),
        envelope: serde_json::from_str(row.text("envelope")?)
            .map_err(|e| BusError::Malformed { id: format!("dead letter {id}"), reason: e.to_string() })?,
        error: row.text("error")?.to_owned(),
        attempts: row.int("attempts")?,
        state: row.text("state")?.to_owned(),
        failed_at: Timestamp::from_micros(row.int("failed_at")?.max(0).unsigned_abs()),
    })
}

/// Every dead letter, or those of one consumer, oldest first.
pub async fn list_dead_letters(store: &Store, consumer: Option<&str>) -> Result<Vec<DeadLetter>> {
    let statement = match consumer {
        Some(consumer) => Statement::new(format!(
            "SELECT {COLUMNS} FROM tessera_dead_letters WHERE consumer = $1 ORDER BY id"
        ))
        .bind(consumer),
        None => Statement::new(format!("SELECT {COLUMNS} FROM tessera_dead_letters ORDER BY id")),
    };
    store.query(statement).await?.iter().map(from_row).collect()
}

/// Asks the running subscriber to try the message again; false if there is no such letter.
pub async fn request_retry(store: &Store, id: i64) -> Result<bool> {
    changed(store, Statement::new("UPDATE tessera_dead_letters SET state = 'retry' WHERE id = $1").bind(id))
        .await
}

/// Forgets the message for good; false if there is no such letter.
pub async fn drop_dead_letter(store: &Store, id: i64) -> Result<bool> {
    changed(store, Statement::new("DELETE FROM tessera_dead_letters WHERE id = $1").bind(id)).await
}

async fn changed(store: &Store, statement: Statement) -> Result<bool> {
    let mut unit = store.begin();
    unit.execute(statement);
    Ok(unit.commit().await?.rows_affected > 0)
}

pub(crate) async fn due_for_retry(store: &Store, consumer: &str) -> Result<Vec<DeadLetter>> {
    let statement = Statement::new(format!(
        "SELECT {COLUMNS} FROM tessera_dead_letters WHERE consumer = $1 AND state = 'retry' ORDER BY id"
    ))
    .bind(consumer);
    store.query(statement).await?.iter().map(from_row).collect()
}

/// Parks (or parks again) a message, in the given unit.
pub(crate) fn park(
    unit: &mut UnitOfWork,
    consumer: &str,
    envelope: &Envelope,
    error: &str,
    attempts: u32,
    now: Timestamp,
) -> Result<()> {
    let json = serde_json::to_string(envelope)
        .map_err(|e| BusError::Malformed { id: envelope.id.to_string(), reason: e.to_string() })?;
    unit.execute(
        Statement::new(
            "INSERT INTO tessera_dead_letters (consumer, message_id, envelope, error, attempts, state, failed_at)
             VALUES ($1, $2, $3, $4, $5, 'parked', $6)
             ON CONFLICT (consumer, message_id) DO UPDATE SET error = excluded.error,
               attempts = tessera_dead_letters.attempts + excluded.attempts, state = 'parked',
               failed_at = excluded.failed_at",
        )
        .bind(consumer)
        .bind(envelope.id.to_string())
        .bind(json)
        .bind(error)
        .bind(i64::from(attempts))
        .bind(i64::try_from(now.as_micros()).unwrap_or(i64::MAX)),
    );
    Ok(())
}

/// Removes a retried letter in the unit that applied it.
pub(crate) fn resolve(unit: &mut UnitOfWork, id: i64) {
    unit.execute(
        Statement::new("DELETE FROM tessera_dead_letters WHERE id = $1")
            .bind(id)
            .expect_rows(1, "dead_letter_gone"),
    );
}
