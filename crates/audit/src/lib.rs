//! The audit trail every service keeps of its writes and of reads of personal data, as a hash
//! chain: each stored record carries `SHA-256(prev hash, index, canonical record)`, so editing,
//! deleting, reordering or inserting a record breaks the chain at that index. Cutting records
//! off the end leaves a valid (shorter) chain; that is what the periodically published head
//! (index and hash of the last record) is for: a verifier given it notices the missing tail.
//!
//! The chain is unkeyed on purpose: anyone can verify it without a secret. The price is that
//! someone able to rewrite the table can also recompute every hash after an edit; only a head
//! published outside the database catches that, so publish it somewhere they cannot write.
//!
//! Old records may be sealed into segments and archived (`segment`): an [`Anchor`] stays
//! behind, and the chain verifies from it.
//!
//! This crate is pure (no I/O): the store appends records inside its units of work and pages
//! its table through a [`Verifier`].

pub mod access;
mod chain;
mod record;
mod segment;
mod verify;

pub use chain::{GENESIS, hash_from_hex, hash_to_hex, link, next_link};
pub use record::AuditRecord;
pub use segment::{Anchor, encode_segment, resume_point, segment_key, verify_segment};
pub use verify::{ChainBreak, StoredAuditRecord, Verification, Verifier, verify};
