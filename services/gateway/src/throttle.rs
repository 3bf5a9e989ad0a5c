//! Sign-in throttling: failed sign-ins are counted per account and per client address, in the
//! gateway's store so that every replica sees the same counts, and past a few of them each
//! further failure keeps that account or address out for twice as long as the last (429 with
//! `Retry-After`). A success clears the account's count; counts older than an hour start over.

use std::net::IpAddr;

use axum::http::StatusCode;
use tessera_store::{Statement, Store, StoreError};
use tessera_web::Problem;

use crate::client_address::address_key;

/// Failures of one account before it is kept out.
pub(crate) const ACCOUNT_FREE_FAILURES: u64 = 5;
/// Failures from one address before it is kept out (one address may be many people's).
pub(crate) const ADDRESS_FREE_FAILURES: u64 = 20;
/// The longest wait one failure earns.
const LONGEST_WAIT_MICROS: u64 = 15 * 60 * 1_000_000;
/// A count untouched for this long starts over.
const FORGET_AFTER_MICROS: u64 = 60 * 60 * 1_000_000;

/// What the store keeps per account or address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Failures {
    pub count: u64,
    pub last_at: u64,
    pub blocked_until: u64,
}

/// The count after one more failure at `now`: free for the first `free` failures, then kept
/// out 1 s, 2 s, 4 s, … up to 15 minutes.
pub(crate) fn after_failure(before: Option<Failures>, free: u64, now: u64) -> Failures {
    let count = match before {
        Some(before) if now.saturating_sub(before.last_at) < FORGET_AFTER_MICROS => before.count + 1,
        _ => 1,
    };
    let blocked_until = if count <= free {
        0
    } else {
        let doublings = u32::try_from(count - free - 1).unwrap_or(u32::MAX).min(20);
        now + (1_000_000_u64 << doublings).min(LONGEST_WAIT_MICROS)
    };
    Failures { count, last_at: now, blocked_until }
}

/// The key of an account's count.
pub(crate) fn account(email: &str) -> String {
    format!("account:{}", email.trim().to_ascii_lowercase())
}

/// The key of an address's count (`local` when the request came in process).
pub(crate) fn address(client: Option<IpAddr>) -> String {
    format!("address:{}", address_key(client))
}

async fn read(store: &Store, keys: &[&str]) -> Result<Vec<(String, Failures)>, StoreError> {
    let mut found = Vec::new();
    for key in keys {
        let rows = store
            .query(
                Statement::new(
                    "SELECT failures, last_at, blocked_until FROM gateway_sign_in_failures WHERE subject = $1",
                )
                .bind(*key),
            )
            .await?;
        if let Some(row) = rows.first() {
            let number = |name| row.int(name).map(|v| u64::try_from(v).unwrap_or(0));
            found.push((
                (*key).to_owned(),
                Failures {
                    count: number("failures")?,
                    last_at: number("last_at")?,
                    blocked_until: number("blocked_until")?,
                },
            ));
        }
    }
    Ok(found)
}

/// 429 with `Retry-After` while either key is kept out at `now`; otherwise whether the first
/// key has failures counted (a success then has a count to clear).
pub(crate) async fn check(store: &Store, keys: &[&str], now: u64) -> Result<bool, Problem> {
    let found = read(store, keys).await.map_err(|e| tessera_web::store_problem(&e))?;
    let until = found.iter().map(|(_, f)| f.blocked_until).max().unwrap_or(0);
    if until > now {
        let seconds = (until - now).div_ceil(1_000_000);
        metrics::counter!("tessera_gateway_sign_ins_throttled_total").increment(1);
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "sign_in_throttled",
            "too many failed sign-ins; wait before trying again",
        )
        .with_retry_after(seconds));
    }
    Ok(keys.first().is_some_and(|first| found.iter().any(|(key, _)| key == first)))
}

/// Counts a failed sign-in against the account and the address.
pub(crate) async fn failed(store: &Store, account_key: &str, address_key: &str, now: u64) {
    let outcome = async {
        let found = read(store, &[account_key, address_key]).await?;
        let before = |key: &str| found.iter().find(|(k, _)| k == key).map(|(_, f)| *f);
        let mut unit = store.begin();
        for (key, free) in [(account_key, ACCOUNT_FREE_FAILURES), (address_key, ADDRESS_FREE_FAILURES)] {
            let next = after_failure(before(key), free, now);
            let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            unit.execute(
                Statement::new(
                    "INSERT INTO gateway_sign_in_failures (subject, failures, last_at, blocked_until)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (subject) DO UPDATE SET failures = excluded.failures,
                         last_at = excluded.last_at, blocked_until = excluded.blocked_until",
                )
                .bind(key)
                .bind(as_i64(next.count))
                .bind(as_i64(next.last_at))
                .bind(as_i64(next.blocked_until)),
            );
        }
        unit.commit().await.map(|_| ())
    };
    if let Err(error) = outcome.await {
        tracing::warn!(%error, "a failed sign-in was not counted");
    }
}

/// Clears the account's count after a successful sign-in.
pub(crate) async fn succeeded(store: &Store, account_key: &str) {
    let mut unit = store.begin();
    unit.execute(Statement::new("DELETE FROM gateway_sign_in_failures WHERE subject = $1").bind(account_key));
    if let Err(error) = unit.commit().await {
        tracing::warn!(%error, "a sign-in's count was not cleared");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000;

    #[test]
    fn the_first_failures_are_free_then_each_doubles_the_wait_up_to_a_quarter_hour() {
        let mut failures = None;
        let mut waits = Vec::new();
        for n in 0..20 {
            let now = 1_000 * SECOND + n * SECOND;
            let next = after_failure(failures, 5, now);
            waits.push(next.blocked_until.saturating_sub(now) / SECOND);
            failures = Some(next);
        }
        assert_eq!(&waits[..9], &[0, 0, 0, 0, 0, 1, 2, 4, 8]);
        assert_eq!(waits[19], 900, "capped at 15 minutes");
    }

    #[test]
    fn an_hour_without_failures_starts_the_count_over() {
        let old = Failures { count: 12, last_at: 0, blocked_until: 5 * SECOND };
        assert_eq!(after_failure(Some(old), 5, 3_600 * SECOND).count, 1);
        assert_eq!(after_failure(Some(old), 5, 3_599 * SECOND).count, 13);
    }
}
