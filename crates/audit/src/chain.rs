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

/// A link's hash as the text that travels outside the database (announced heads, witnesses):
/// 64 lower-case hex digits.
pub fn hash_to_hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash [`hash_to_hex`] wrote; `None` for anything that is not 64 hex digits.
pub fn hash_from_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..64).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect();
    bytes?.try_into().ok()
}

#[cfg(test)]
mod hex_tests {
    use super::*;

    #[test]
    fn a_hash_survives_its_text_form_and_nothing_else_parses() {
        let hash: [u8; 32] = std::array::from_fn(|i| u8::try_from(i * 7).unwrap_or(0));
        assert_eq!(hash_from_hex(&hash_to_hex(&hash)), Some(hash));
        for bad in ["", "00", &"g".repeat(64), &"0".repeat(63), &"é".repeat(32)] {
            assert_eq!(hash_from_hex(bad), None, "{bad}");
        }
    }
}
