//! The `Idempotency-Key` records of order placement. A key is reserved before the order is placed (so two racing requests with one
//! key place one order), answered from its record afterwards, and refused with another body.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use tessera_store::{SqlValue, Statement, Store, StoreError};
use tessera_web::Problem;

use crate::clients::Reply;
use crate::storage::now;

/// What a key's record says about a new request with it.
#[derive(Debug, PartialEq, Eq)]
enum Reservation {
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

async fn reserve(store: &Store, caller: &str, key: &str, hash: &str) -> Result<Reservation, StoreError> {
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
async fn complete(store: &Store, caller: &str, key: &str, status: u16, body: &str) -> Result<(), StoreError> {
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
async fn release(store: &Store, caller: &str, key: &str) -> Result<(), StoreError> {
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

/// A request's `Idempotency-Key`, checked: 1 to 255 characters. Taken as
/// `Result<IdempotencyKey, Problem>` so that a caller refused by role hears 403 first.
pub(crate) struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let key = parts.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if key.is_empty() || key.len() > 255 {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "idempotency_key_required",
                "send an Idempotency-Key header of 1 to 255 characters",
            ));
        }
        Ok(Self(key.to_owned()))
    }
}

/// What to do with a request, given what its key's record says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NextAction {
    /// The first request with this key: do it, then [`record`] its answer under the key.
    DoAndRecord,
    /// The first request with this key is still being answered and this one may wait: do it
    /// too (orders places one order per key, so both reach the same order, on whichever
    /// gateway replica) and leave the key's record to the first.
    DoAndFollow,
    /// Answered before: answer the same again.
    Replay { status: u16, body: String },
}

/// Decides what to do with a request carrying `key` and `body`: a key used with another body
/// is 422, and one whose first request is still being answered is 409 unless this one waits.
pub(crate) async fn next_action(
    store: &Store,
    caller: &str,
    key: &str,
    body: &[u8],
    waits: bool,
) -> Result<NextAction, Problem> {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let hash = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>();
    match reserve(store, caller, key, &hash).await.map_err(|e| tessera_web::store_problem(&e))? {
        Reservation::Reserved => Ok(NextAction::DoAndRecord),
        Reservation::InFlight if waits => Ok(NextAction::DoAndFollow),
        Reservation::InFlight => Err(Problem::conflict(
            "idempotency_key_in_use",
            "a request with this Idempotency-Key is still being answered",
        )),
        Reservation::Mismatch => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request body",
        )),
        Reservation::Replay { status, body } => Ok(NextAction::Replay { status, body }),
    }
}

/// Stores the answer under the key, or frees the key: a passing failure (5xx) may be retried,
/// and so may a request refused by validation (4xx) once fixed. Neither can place a second
/// order, because orders keeps one order per key.
pub(crate) async fn record(store: &Store, caller: &str, key: &str, outcome: &Result<Reply, Problem>) {
    let (status, text) = match outcome {
        // The composed order holds personal data (the customer's name, the card's last digits)
        // that must not outlive an erasure in this table: only the order's id and outcome are
        // kept, and a replay composes the view again.
        Ok(reply) if reply.status == StatusCode::CREATED => {
            let view = reply.json();
            let mut kept = serde_json::json!({"id": view["id"], "status": view["status"]});
            if !view["reason"].is_null() {
                kept["reason"] = view["reason"].clone();
            }
            (reply.status, kept.to_string())
        }
        Ok(reply) => (reply.status, String::from_utf8_lossy(&reply.body).into_owned()),
        Err(problem) => (problem.status, serde_json::to_string(problem).unwrap_or_default()),
    };
    let recorded = if status.is_server_error() || status.is_client_error() {
        release(store, caller, key).await
    } else {
        complete(store, caller, key, status.as_u16(), &text).await
    };
    if let Err(error) = recorded {
        tracing::error!(%error, "cannot record an idempotent answer");
    }
}
