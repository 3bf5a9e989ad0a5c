//! Idempotent placement: what a client's `Idempotency-Key` decides. Orders keeps one record per
//! (customer, key), written in the same unit as the order it placed, so the key and the order
//! can never disagree, whichever gateway replica the request came through.

use std::time::Duration;

use uuid::Uuid;

/// How long a key answers for its first order; after that it places a new one (API.md).
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// What orders kept of the first request with a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptRequest {
    pub order_id: Uuid,
    /// The SHA-256 of the first request's body, as the gateway hashed it; unknown for keys
    /// kept before hashes were.
    pub body_hash: Option<String>,
    /// When it was kept, in microseconds since the epoch; unknown for keys kept before times were.
    pub kept_at: Option<u64>,
}

/// What to do with a request that carries a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestNext {
    /// No live record: place the order and keep the key with it (replacing an expired record).
    Place { replacing: bool },
    /// The same request again: answer with its order, placing nothing.
    Replay(Uuid),
    /// The key was used with another body: refuse.
    Reused,
}

/// Decides a request with `body_hash` given the key's record, at `now_micros`.
pub fn next_for_request(kept: Option<&KeptRequest>, body_hash: Option<&str>, now_micros: u64) -> RequestNext {
    let Some(kept) = kept else { return RequestNext::Place { replacing: false } };
    let lifetime = u64::try_from(KEY_LIFETIME.as_micros()).unwrap_or(u64::MAX);
    if kept.kept_at.is_some_and(|at| now_micros.saturating_sub(at) >= lifetime) {
        return RequestNext::Place { replacing: true };
    }
    match (kept.body_hash.as_deref(), body_hash) {
        (Some(first), Some(this)) if first != this => RequestNext::Reused,
        _ => RequestNext::Replay(kept.order_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000_000;

    fn kept(hash: Option<&str>, at: Option<u64>) -> KeptRequest {
        KeptRequest { order_id: Uuid::from_u128(7), body_hash: hash.map(str::to_owned), kept_at: at }
    }

    #[test]
    fn a_new_key_places_and_the_same_request_replays_its_order() {
        assert_eq!(next_for_request(None, Some("a"), 0), RequestNext::Place { replacing: false });
        let first = kept(Some("a"), Some(10 * HOUR));
        assert_eq!(next_for_request(Some(&first), Some("a"), 11 * HOUR), RequestNext::Replay(first.order_id));
    }

    #[test]
    fn another_body_under_a_live_key_is_refused() {
        let first = kept(Some("a"), Some(10 * HOUR));
        assert_eq!(next_for_request(Some(&first), Some("b"), 11 * HOUR), RequestNext::Reused);
    }

    #[test]
    fn a_key_older_than_a_day_places_a_new_order_whatever_the_body() {
        let first = kept(Some("a"), Some(10 * HOUR));
        assert_eq!(
            next_for_request(Some(&first), Some("b"), 34 * HOUR),
            RequestNext::Place { replacing: true }
        );
        assert_eq!(
            next_for_request(Some(&first), Some("a"), 34 * HOUR - 1),
            RequestNext::Replay(first.order_id),
            "a microsecond short of a day it still answers"
        );
    }

    #[test]
    fn records_from_before_hashes_and_times_replay_and_never_expire() {
        let old = kept(None, None);
        assert_eq!(next_for_request(Some(&old), Some("b"), u64::MAX), RequestNext::Replay(old.order_id));
        assert_eq!(
            next_for_request(Some(&kept(Some("a"), None)), None, 0),
            RequestNext::Replay(Uuid::from_u128(7))
        );
    }
}
