//! The vault's one error type. An erased subject is a variant of its own: callers show
//! `[erased]` or refuse the write, which is not how they handle a database outage.

use std::path::PathBuf;

use tessera_store::StoreError;

pub type Result<T, E = VaultError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The subject was erased: its data key is gone and no new one will be made.
    #[error("the subject was erased; its data key is gone")]
    Shredded,

    /// Authentication failed: the sealed value was altered, belongs to another subject, or was
    /// sealed under another key.
    #[error("cannot decrypt: the value was altered or sealed for another subject or key")]
    Decrypt,

    /// Not a sealed value (wrong prefix, bad base64, too short), or not UTF-8 where text was
    /// expected.
    #[error("malformed sealed value: {0}")]
    Malformed(String),

    /// A field was to be sealed that its service does not declare sealed: the data map would
    /// not say what the code does.
    #[error("`{service}` does not declare its {field} sealed; declare it so before sealing it")]
    NotDeclaredSealed { service: &'static str, field: &'static str },

    #[error("a subject id must not be empty")]
    EmptySubject,

    /// A key in the vault is wrapped by a master key this process was not given.
    #[error(
        "a key in the vault is wrapped by master key `{id}`, which is not configured; \
         pass it as a previous master key until a rotation has rewrapped everything"
    )]
    UnknownMasterKey { id: String },

    #[error("invalid master key: {0}")]
    InvalidMasterKey(String),

    #[error("master key file {}: {reason}", path.display())]
    KeyFile { path: PathBuf, reason: String },

    /// The master key file may be read by other users of the machine.
    #[error(
        "master key file {path} is readable by group or others (mode {mode:03o}); \
         run `chmod 600 {path}`",
        path = path.display()
    )]
    InsecureKeyFile { path: PathBuf, mode: u32 },

    /// The store was opened without [`crate::MIGRATIONS`].
    #[error("the vault's tables are missing: open its store with `tessera_vault::MIGRATIONS`")]
    NotMigrated,

    /// A stored row cannot be read back: a bug or a hand-edited database.
    #[error("corrupt vault row: {0}")]
    Corrupt(String),

    #[error("the system's random number generator failed")]
    Random,

    #[error(transparent)]
    Store(#[from] StoreError),
}
