//! The link between consecutive records.

use ring::digest::{Context, SHA256};

use crate::record::AuditRecord;

/// The "previous hash" of the record at index 0.
pub const GENESIS: [u8; 32] = [0; 32];

/// The hash stored with the record at `index`: SHA-256 over the previous record's hash, the
/// index (big-endian) and the record's canonical bytes. Hashing the index makes a record moved
/// to another place in the chain fail even if its neighbours were rewritten to match.
pub fn link(prev_hash: &[u8; 32], index: u64, record: &AuditRecord) -> [u8; 32] {
    let mut context = Context::new(&SHA256);
    context.update(prev_hash);
    context.update(&index.to_be_bytes());
    context.update(&record.canonical_bytes());
    let mut hash = [0; 32];
    hash.copy_from_slice(context.finish().as_ref());
    hash
}

/// The index and hash of `record` appended after `head` (the chain's last record, `None` for
/// an empty chain).
pub fn next_link(head: Option<(u64, [u8; 32])>, record: &AuditRecord) -> (u64, [u8; 32]) {
    let (index, prev) = match head {
        None => (0, GENESIS),
        // 2^64 records cannot be reached; saturating keeps this total (the store's primary key
        // would then refuse the duplicate).
        Some((last, hash)) => (last.saturating_add(1), hash),
    };
    (index, link(&prev, index, record))
}

#[cfg(test)]
mod tests {
    use tessera_kernel::Timestamp;

    use super::*;

    fn record(actor: &str) -> AuditRecord {
        AuditRecord {
            actor: actor.into(),
            role: "admin".into(),
            action: "order.cancel".into(),
            resource: "order/1".into(),
            outcome: "ok".into(),
            trace_id: Some("trace".into()),
            at: Timestamp::from_micros(7),
        }
    }

    #[test]
    fn the_first_link_starts_from_genesis_at_index_zero() {
        assert_eq!(next_link(None, &record("a")), (0, link(&GENESIS, 0, &record("a"))));
    }

    #[test]
    fn the_same_record_at_another_index_or_after_another_hash_links_differently() {
        let at_zero = link(&GENESIS, 0, &record("a"));
        assert_ne!(at_zero, link(&GENESIS, 1, &record("a")));
        assert_ne!(at_zero, link(&[1; 32], 0, &record("a")));
        assert_ne!(at_zero, link(&GENESIS, 0, &record("b")));
        assert_eq!(next_link(Some((4, at_zero)), &record("b")), (5, link(&at_zero, 5, &record("b"))));
    }
}
