//! The `Idempotency-Key` records of order placement. A key is reserved before the order is placed (so two racing requests with one
//! key place one order), answered from its record afterwards, and refused with another body.

use tessera_store::{SqlValue, Statement, Store, StoreError};

use crate::storage::now;

/// What a key's record says about a new request with it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reservation {
    /// The key is ours now: place the order, then `complete`.
    Reserved,
    /// The first request with this key finished: its answer.
    Replay { status: u16, body: String },
    /// The first request with this key is still being answered.
    InFlight,
    /// The key was used with another body.
    Mismatch,
}

/// A reservation older than this whose answer never came (the gateway stopped mid-request)
/// is taken over by the next request with the key. Safe because orders itself places at most
/// one order per key; longer than the longest wait (`Prefer: wait`, 30 s) plus a call's
/// timeout, so that a request still waiting is never taken over; until then a retry that
/// does not wait hears 409, and one that waits follows the same order.
const STALE_AFTER_MICROS: i64 = 45_000_000;

pub(crate) async fn reserve(
    store: &Store,
    caller: &str,
    key: &str,
    hash: &str,
) -> Result<Reservation, StoreError> {
    for _ in 0..3 {
        let rows = store
            .query(
                Statement::new(
                    "SELECT request_hash, status, body, created_at FROM gateway_idempotency
                     WHERE caller = $1 AND idempotency_key = $2",
                )
                .bind(caller)
                .bind(key),
            )
            .await?;
        if let Some(row) = rows.first() {
            if row.text("request_hash")? != hash {
                return Ok(Reservation::Mismatch);
            }
            if let (SqlValue::Int(status), Some(body)) = (row.get("status")?, row.opt_text("body")?) {
                let status = u16::try_from(*status).unwrap_or(500);
                return Ok(Reservation::Replay { status, body: body.to_owned() });
            }
            let created = row.int("created_at")?;
            if now(store) - created < STALE_AFTER_MICROS {
                return Ok(Reservation::InFlight);
            }
            let mut unit = store.begin();
            unit.execute(
                Statement::new(
                    "UPDATE gateway_idempotency SET created_at = $4
                     WHERE caller = $1 AND idempotency_key = $2 AND created_at = $3 AND status IS NULL",
                )
                .bind(caller)
                .bind(key)
                .bind(created)
                .bind(now(store))
                .expect_rows(1, "taken_over"),
            );
            match unit.commit().await {
                Ok(_) => return Ok(Reservation::Reserved),
                Err(StoreError::Rejected { .. }) => continue,
                Err(error) => return Err(error),
            }
        }
        let mut unit = store.begin();
        unit.execute(
            Statement::new(
                "INSERT INTO gateway_idempotency (caller, idempotency_key, request_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(caller)
            .bind(key)
            .bind(hash)
            .bind(now(store)),
        );
        match unit.commit().await {
            Ok(_) => return Ok(Reservation::Reserved),
            // Someone reserved it between our read and our insert: read their record.
            Err(StoreError::Constraint(_)) => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(Reservation::InFlight)
}

/// Records the answer to a reserved key.
pub(crate) async fn complete(
    store: &Store,
    caller: &str,
    key: &str,
    status: u16,
    body: &str,
) -> Result<(), StoreError> {
    let mut unit = store.begin();
    unit.execute(
        Statement::new("UPDATE gateway_idempotency SET status = $3, body = $4 WHERE caller = $1 AND idempotency_key = $2")
            .bind(caller)
            .bind(key)
            .bind(i64::from(status))
            .bind(body),
    );
    unit.commit().await?;
    Ok(())
}

/// Frees a reserved key whose request failed for a passing reason, so a retry can use it.
pub(crate) async fn release(store: &Store, caller: &str, key: &str) -> Result<(), StoreError> {
    let mut unit = store.begin();
    unit.execute(
        Statement::new(
            "DELETE FROM gateway_idempotency WHERE caller = $1 AND idempotency_key = $2 AND status IS NULL",
        )
        .bind(caller)
        .bind(key),
    );
    unit.commit().await?;
    Ok(())
}
