//! Verifying a chain as stored: records fed in index order, one at a time, so a store can
//! stream its table through in pages without holding it in memory.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::chain::{GENESIS, link};
use crate::record::AuditRecord;

/// A record as the store keeps it: its place in the chain and the hash written with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAuditRecord {
    pub index: u64,
    pub record: AuditRecord,
    pub hash: [u8; 32],
}

/// Why a chain does not verify, at [`Verification::first_bad_index`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ChainBreak {
    /// Another index was found where this one belongs: a record deleted (the next one came
    /// early), inserted or moved.
    UnexpectedIndex { found: u64 },
    /// The record, or the hash stored with it, is not what was written: an edit.
    HashMismatch,
    /// The row could not even be decoded (a hash of the wrong length, say).
    Unreadable,
    /// The record at the published head's index is not the one that was published.
    HeadMismatch,
    /// The chain ends before the published head's index: records were cut off the end.
    Truncated { head: u64 },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainBreak::UnexpectedIndex { found } => write!(f, "found index {found} here instead"),
            ChainBreak::HashMismatch => f.write_str("the record does not match its hash"),
            ChainBreak::Unreadable => f.write_str("the stored row cannot be decoded"),
            ChainBreak::HeadMismatch => f.write_str("the record differs from the published head"),
            ChainBreak::Truncated { head } => {
                write!(f, "records up to the published head {head} are missing")
            }
        }
    }
}

/// The outcome of a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// How many records were read (including any past the first bad one).
    pub records: u64,
    pub ok: bool,
    /// The first index at which the chain is not what was written; every record before it
    /// is intact (up to an attacker who rewrote all later hashes, which only a published
    /// head catches).
    pub first_bad_index: Option<u64>,
    pub problem: Option<ChainBreak>,
}

/// Verifies a chain fed record by record, in index order.
///
/// The published head is given up front because checking it needs the hash stored at its
/// index, which streaming would otherwise have to keep for every record.
#[derive(Clone, Debug)]
pub struct Verifier {
    published_head: Option<(u64, [u8; 32])>,
    next_index: u64,
    prev_hash: [u8; 32],
    records: u64,
    broken: Option<(u64, ChainBreak)>,
}

impl Verifier {
    pub fn new(published_head: Option<(u64, [u8; 32])>) -> Self {
        Self { published_head, next_index: 0, prev_hash: GENESIS, records: 0, broken: None }
    }

    /// Verifies records after `index`, whose hash was `hash`: the chain from an anchor, its
    /// older records archived (see `crate::segment`).
    pub fn resume(index: u64, hash: [u8; 32], published_head: Option<(u64, [u8; 32])>) -> Self {
        Self {
            published_head,
            next_index: index.saturating_add(1),
            prev_hash: hash,
            records: 0,
            broken: None,
        }
    }

    /// The index the next record must have; a store pages from here.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Whether a break has been found already (later records cannot repair it).
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    pub fn push(&mut self, stored: &StoredAuditRecord) {
        self.records += 1;
        if self.broken.is_some() {
            return;
        }
        let expected = self.next_index;
        if stored.index != expected {
            self.broken = Some((expected, ChainBreak::UnexpectedIndex { found: stored.index }));
            return;
        }
        if link(&self.prev_hash, expected, &stored.record) != stored.hash {
            self.broken = Some((expected, ChainBreak::HashMismatch));
            return;
        }
        if let Some((head, hash)) = self.published_head
            && head == expected
            && hash != stored.hash
        {
            self.broken = Some((expected, ChainBreak::HeadMismatch));
            return;
        }
        self.prev_hash = stored.hash;
        self.next_index = expected.saturating_add(1);
    }

    /// A row at this place in the sequence that could not be decoded: the chain is broken
    /// where the next record was due.
    pub fn push_unreadable(&mut self) {
        self.records += 1;
        if self.broken.is_none() {
            self.broken = Some((self.next_index, ChainBreak::Unreadable));
        }
    }

    pub fn finish(self) -> Verification {
        let truncated = match self.published_head {
            Some((head, _)) if head >= self.next_index => {
                Some((self.next_index, ChainBreak::Truncated { head }))
            }
            _ => None,
        };
        let broken = self.broken.or(truncated);
        Verification {
            records: self.records,
            ok: broken.is_none(),
            first_bad_index: broken.map(|(index, _)| index),
            problem: broken.map(|(_, problem)| problem),
        }
    }
}

/// Verifies a whole chain, given in index order, against the last published head, if any.
pub fn verify(
    records: impl IntoIterator<Item = StoredAuditRecord>,
    published_head: Option<(u64, [u8; 32])>,
) -> Verification {
    let mut verifier = Verifier::new(published_head);
    for record in records {
        verifier.push(&record);
    }
    verifier.finish()
}

#[cfg(test)]
mod tests {
    use tessera_kernel::Timestamp;

    use super::*;
    use crate::chain::next_link;

    fn record(n: u64) -> AuditRecord {
        AuditRecord {
            actor: format!("user-{n}"),
            role: "customer".into(),
            action: "customer.read".into(),
            resource: format!("customer/{n}"),
            outcome: "ok".into(),
            trace_id: n.is_multiple_of(2).then(|| format!("trace-{n}")),
            at: Timestamp::from_micros(1_000 + n),
        }
    }

    /// A correctly written chain of `n` records.
    fn chain(n: u64) -> Vec<StoredAuditRecord> {
        let mut head = None;
        (0..n)
            .map(|i| {
                let record = record(i);
                let (index, hash) = next_link(head, &record);
                head = Some((index, hash));
                StoredAuditRecord { index, record, hash }
            })
            .collect()
    }

    fn head_of(records: &[StoredAuditRecord]) -> Option<(u64, [u8; 32])> {
        records.last().map(|r| (r.index, r.hash))
    }

    fn assert_broken_at(verification: Verification, index: u64, problem: ChainBreak) {
        assert!(!verification.ok, "{verification:?}");
        assert_eq!(verification.first_bad_index, Some(index), "{verification:?}");
        assert_eq!(verification.problem, Some(problem), "{verification:?}");
    }

    #[test]
    fn an_intact_chain_verifies_with_and_without_its_head() {
        let records = chain(10);
        let head = head_of(&records);
        let with_head = verify(records.clone(), head);
        assert_eq!(with_head, Verification { records: 10, ok: true, first_bad_index: None, problem: None });
        assert!(verify(records, None).ok);
    }

    #[test]
    fn an_empty_chain_verifies_unless_a_head_was_published() {
        assert!(verify(Vec::new(), None).ok);
        assert_broken_at(verify(Vec::new(), Some((0, [9; 32]))), 0, ChainBreak::Truncated { head: 0 });
    }

    #[test]
    fn a_chain_that_grew_past_the_published_head_verifies() {
        let records = chain(10);
        let old_head = Some((4, records[4].hash));
        assert!(verify(records, old_head).ok);
    }

    #[test]
    fn an_edited_field_is_found_at_its_index() {
        let mut records = chain(10);
        records[6].record.outcome = "denied".into();
        assert_broken_at(verify(records, None), 6, ChainBreak::HashMismatch);
    }

    #[test]
    fn an_edited_timestamp_or_trace_is_found_at_its_index() {
        let mut records = chain(10);
        records[3].record.at = Timestamp::from_micros(1);
        assert_broken_at(verify(records, None), 3, ChainBreak::HashMismatch);
        let mut records = chain(10);
        records[2].record.trace_id = None;
        assert_broken_at(verify(records, None), 2, ChainBreak::HashMismatch);
    }

    #[test]
    fn an_edited_stored_hash_is_found_at_its_index() {
        let mut records = chain(10);
        records[8].hash[0] ^= 1;
        assert_broken_at(verify(records, None), 8, ChainBreak::HashMismatch);
    }

    #[test]
    fn a_record_edited_with_its_hash_recomputed_breaks_the_next_link() {
        let mut records = chain(10);
        records[5].record.actor = "someone-else".into();
        records[5].hash = link(&records[4].hash, 5, &records[5].record);
        assert_broken_at(verify(records, None), 6, ChainBreak::HashMismatch);
    }

    #[test]
    fn a_deleted_record_is_found_at_the_missing_index() {
        let mut records = chain(10);
        records.remove(4);
        assert_broken_at(verify(records, None), 4, ChainBreak::UnexpectedIndex { found: 5 });
    }

    #[test]
    fn a_deleted_record_with_later_indexes_renumbered_is_found_where_it_was() {
        let mut records = chain(10);
        records.remove(4);
        for stored in &mut records[4..] {
            stored.index -= 1;
        }
        assert_broken_at(verify(records, None), 4, ChainBreak::HashMismatch);
    }

    #[test]
    fn reordered_records_are_found_at_the_first_moved_index() {
        let mut records = chain(10);
        records.swap(3, 7);
        assert_broken_at(verify(records, None), 3, ChainBreak::UnexpectedIndex { found: 7 });
    }

    #[test]
    fn swapped_contents_under_kept_indexes_are_found_at_the_first_swapped_index() {
        let mut records = chain(10);
        let (a, b) = (records[3].record.clone(), records[7].record.clone());
        records[3].record = b;
        records[7].record = a;
        assert_broken_at(verify(records, None), 3, ChainBreak::HashMismatch);
    }

    #[test]
    fn an_inserted_record_is_found_at_its_index() {
        let mut records = chain(10);
        let forged = StoredAuditRecord { index: 5, record: record(99), hash: [7; 32] };
        records.insert(5, forged);
        for stored in &mut records[6..] {
            stored.index += 1;
        }
        assert_broken_at(verify(records, None), 5, ChainBreak::HashMismatch);
    }

    #[test]
    fn a_duplicated_index_is_found_where_it_repeats() {
        let mut records = chain(10);
        let copy = records[5].clone();
        records.insert(6, copy);
        assert_broken_at(verify(records, None), 6, ChainBreak::UnexpectedIndex { found: 5 });
    }

    #[test]
    fn a_forged_record_appended_at_the_end_is_found_at_its_index() {
        let mut records = chain(10);
        records.push(StoredAuditRecord { index: 10, record: record(10), hash: [0; 32] });
        assert_broken_at(verify(records, None), 10, ChainBreak::HashMismatch);
    }

    #[test]
    fn truncation_is_found_against_the_published_head_at_the_first_missing_index() {
        let records = chain(10);
        let head = head_of(&records);
        let truncated = records[..7].to_vec();
        assert!(verify(truncated.clone(), None).ok, "without a head a shorter chain looks fine");
        assert_broken_at(verify(truncated, head), 7, ChainBreak::Truncated { head: 9 });
    }

    #[test]
    fn a_rewritten_tail_is_found_at_the_published_head() {
        // Cut after 6, then append three new records with correct links: only the head
        // published before the rewrite can tell.
        let records = chain(10);
        let head = head_of(&records);
        let mut rewritten = records[..7].to_vec();
        let mut last = head_of(&rewritten);
        for n in 0..3 {
            let record = AuditRecord { outcome: "rewritten".into(), ..record(100 + n) };
            let (index, hash) = next_link(last, &record);
            last = Some((index, hash));
            rewritten.push(StoredAuditRecord { index, record, hash });
        }
        assert!(verify(rewritten.clone(), None).ok);
        assert_broken_at(verify(rewritten, head), 9, ChainBreak::HeadMismatch);
    }

    #[test]
    fn the_streaming_verifier_reports_like_the_batch_one_and_counts_every_record() {
        let mut records = chain(25);
        records[12].record.role = "admin".into();
        let mut verifier = Verifier::new(None);
        for page in records.chunks(10) {
            for stored in page {
                verifier.push(stored);
            }
        }
        assert!(verifier.is_broken());
        let streamed = verifier.finish();
        assert_eq!(streamed, verify(records, None));
        assert_eq!(streamed.records, 25);
        assert_eq!(streamed.first_bad_index, Some(12));
    }

    #[test]
    fn an_unreadable_row_breaks_the_chain_where_it_stands() {
        let records = chain(5);
        let mut verifier = Verifier::new(None);
        for stored in &records[..3] {
            verifier.push(stored);
        }
        verifier.push_unreadable();
        verifier.push(&records[4]);
        assert_broken_at(verifier.finish(), 3, ChainBreak::Unreadable);
    }
}
