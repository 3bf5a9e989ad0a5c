//! Sealed segments: the oldest part of a chain, moved out of the database into an archive, with
//! an anchor left behind. The anchor keeps the segment's index range and the hash of its last
//! record, which is the chain's head at the cut: the records that stay verify from it exactly
//! as they did from their predecessor, and the archived segment verifies by ending at it. So
//! a record cannot go missing mid-chain: either it is in the table, or in a segment whose
//! anchor proves it.

use serde::{Deserialize, Serialize};
use tessera_kernel::Timestamp;

use crate::chain::GENESIS;
use crate::record::AuditRecord;
use crate::verify::{StoredAuditRecord, Verification, Verifier};

/// What is left in the database of an archived segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub first_index: u64,
    pub last_index: u64,
    /// The hash of the record at `last_index`.
    #[serde(with = "hex_hash")]
    pub hash: [u8; 32],
    /// Where the segment lies in the archive.
    pub object_key: String,
    pub archived_at: Timestamp,
}

/// The archive key of `service`'s segment from `first` to `last`: zero-padded, so that keys
/// sort in chain order.
pub fn segment_key(service: &str, first: u64, last: u64) -> String {
    format!("audit/{service}/{first:020}-{last:020}.jsonl")
}

/// A segment as archived: one record per line, in JSON.
pub fn encode_segment(records: &[StoredAuditRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        let line = ArchivedRecord { index: record.index, record: record.record.clone(), hash: record.hash };
        // A record is strings, an option and an integer: serialising it cannot fail.
        if let Ok(json) = serde_json::to_vec(&line) {
            out.extend_from_slice(&json);
            out.push(b'\n');
        }
    }
    out
}

/// One archived line, the hash in hex so that the file reads like the announced heads.
#[derive(Serialize, Deserialize)]
struct ArchivedRecord {
    index: u64,
    record: AuditRecord,
    #[serde(with = "hex_hash")]
    hash: [u8; 32],
}

/// Verifies a segment read back from the archive against its anchor: it must start where the
/// previous anchor ended (`previous`, `None` for the chain's first segment), link correctly,
/// and end at the anchor's index with the anchor's hash. A line that does not parse breaks it
/// where it stands.
pub fn verify_segment(bytes: &[u8], anchor: &Anchor, previous: Option<&Anchor>) -> Verification {
    let start = match previous {
        None => Verifier::new(Some((anchor.last_index, anchor.hash))),
        Some(previous) => {
            Verifier::resume(previous.last_index, previous.hash, Some((anchor.last_index, anchor.hash)))
        }
    };
    let mut verifier = start;
    for line in bytes.split(|b| *b == b'\n').filter(|line| !line.is_empty()) {
        match serde_json::from_slice::<ArchivedRecord>(line) {
            Ok(archived) => verifier.push(&StoredAuditRecord {
                index: archived.index,
                record: archived.record,
                hash: archived.hash,
            }),
            Err(_) => verifier.push_unreadable(),
        }
    }
    verifier.finish()
}

/// Where the records after the newest anchor start: its index and hash, or the genesis.
pub fn resume_point(newest: Option<&Anchor>) -> (Option<u64>, [u8; 32]) {
    match newest {
        None => (None, GENESIS),
        Some(anchor) => (Some(anchor.last_index), anchor.hash),
    }
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::chain::{hash_from_hex, hash_to_hex};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hash_to_hex(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        hash_from_hex(&text).ok_or_else(|| D::Error::custom("a hash is 64 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::next_link;
    use crate::verify::ChainBreak;

    fn chain(n: u64) -> Vec<StoredAuditRecord> {
        let mut head = None;
        (0..n)
            .map(|i| {
                let record = AuditRecord {
                    actor: format!("user-{i}"),
                    role: "customer".into(),
                    action: "customer.read".into(),
                    resource: format!("customer/{i}"),
                    outcome: "ok".into(),
                    trace_id: None,
                    at: Timestamp::from_micros(i),
                };
                let (index, hash) = next_link(head, &record);
                head = Some((index, hash));
                StoredAuditRecord { index, record, hash }
            })
            .collect()
    }

    fn anchor(records: &[StoredAuditRecord], service: &str) -> Anchor {
        let (first, last) = (records[0].index, records[records.len() - 1].index);
        Anchor {
            first_index: first,
            last_index: last,
            hash: records[records.len() - 1].hash,
            object_key: segment_key(service, first, last),
            archived_at: Timestamp::EPOCH,
        }
    }

    #[test]
    fn keys_sort_in_chain_order() {
        assert_eq!(
            segment_key("support", 0, 9),
            "audit/support/00000000000000000000-00000000000000000009.jsonl"
        );
        assert!(segment_key("s", 10, 19) > segment_key("s", 0, 9));
    }

    #[test]
    fn segments_verify_against_their_anchors_one_after_the_other() {
        let records = chain(10);
        let (first, second) = (anchor(&records[..4], "s"), anchor(&records[4..7], "s"));
        assert!(verify_segment(&encode_segment(&records[..4]), &first, None).ok);
        assert!(verify_segment(&encode_segment(&records[4..7]), &second, Some(&first)).ok);
        // The rest verifies from the newest anchor.
        let (after, hash) = resume_point(Some(&second));
        let mut verifier = Verifier::resume(after.unwrap_or(0), hash, None);
        for record in &records[7..] {
            verifier.push(record);
        }
        assert!(verifier.finish().ok);
    }

    #[test]
    fn a_tampered_archived_line_is_found_at_its_index() {
        let records = chain(6);
        let first = anchor(&records, "s");
        let text = String::from_utf8(encode_segment(&records)).expect("utf-8");
        let tampered = text.replace("user-3", "user-X");
        let verification = verify_segment(tampered.as_bytes(), &first, None);
        assert_eq!(
            (verification.first_bad_index, verification.problem),
            (Some(3), Some(ChainBreak::HashMismatch))
        );
        let garbled = text.replace("\"index\":2", "\"index\":\"2\"");
        assert_eq!(verify_segment(garbled.as_bytes(), &first, None).first_bad_index, Some(2));
    }

    #[test]
    fn a_segment_cut_short_or_not_ending_at_its_anchor_fails() {
        let records = chain(6);
        let first = anchor(&records, "s");
        let short = verify_segment(&encode_segment(&records[..4]), &first, None);
        assert_eq!(short.problem, Some(ChainBreak::Truncated { head: 5 }));
        let wrong = Anchor { hash: [1; 32], ..first };
        assert_eq!(
            verify_segment(&encode_segment(&records), &wrong, None).problem,
            Some(ChainBreak::HeadMismatch)
        );
    }
}
