//! The vault: personal data is encrypted with a data key of its own per subject (a customer),
//! so that erasing a subject is deleting one key (crypto-shredding) instead of finding every
//! copy of their data in events, outboxes, read models and backups.
//!
//! - Data keys are random 256-bit AES-GCM keys, stored only wrapped (encrypted) by a master
//!   key from configuration. Rotating the master key rewraps them; no data is re-encrypted.
//! - A [`Sealed`] value is `v1.<base64url(nonce ‖ ciphertext ‖ tag)>`, sealed with the subject
//!   id as associated data so that it cannot be moved to another subject's record.
//! - [`Vault::shred`] deletes the key and leaves a tombstone: the subject stays erased (a later
//!   `encrypt` is refused) and decrypting their data yields [`Decrypted::Erased`].
//! - Keyed hashes ([`Vault::blind_index`], [`Vault::pseudonym`]) use secrets held in the vault,
//!   wrapped like the data keys, so they survive restarts and master rotation.
//!
//! The vault has its own store (its own SQLite file or PostgreSQL database), opened with
//! [`MIGRATIONS`]; services reach it through this crate only.

mod crypto;
mod error;
mod master;
pub mod personal_data;
mod schema;
mod sealed;
mod sealer;
mod stream;
mod vault;

pub use error::{Result, VaultError};
pub use master::MasterKey;
pub use schema::MIGRATIONS;
pub use sealed::{Decrypted, ERASED, Sealed};
pub use sealer::Sealer;
pub use stream::{STREAM_CHUNK_LEN, STREAM_HEADER_LEN, STREAM_PREFIX, StreamKey, StreamOpener, StreamSealer};
pub use vault::{RotationStep, Vault, VaultOptions};
