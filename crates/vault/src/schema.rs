//! The vault's tables, the same text for both dialects.

use tessera_store::{Migration, MigrationSet};

/// `vault_keys` holds each subject's data key, wrapped by the master key named in `master_id`
/// (base64 text, so the same statements serve both backends). `vault_shredded` remembers
/// erased subjects, so that erasure cannot be undone by a later write quietly making a new
/// key. `vault_secrets` holds the keys of the keyed hashes, wrapped the same way.
const SCHEMA: &str = "
    CREATE TABLE vault_keys (
        subject TEXT PRIMARY KEY,
        master_id TEXT NOT NULL,
        wrapped TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        rewrapped_at BIGINT
    );
    CREATE INDEX vault_keys_by_master ON vault_keys (master_id, subject);
    CREATE TABLE vault_shredded (
        subject TEXT PRIMARY KEY,
        shredded_at BIGINT NOT NULL
    );
    CREATE TABLE vault_secrets (
        name TEXT PRIMARY KEY,
        master_id TEXT NOT NULL,
        wrapped TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        rewrapped_at BIGINT
    );";

/// Pass to `Store::open` for the vault's store.
pub const MIGRATIONS: MigrationSet = MigrationSet {
    scope: "tessera.vault",
    migrations: &[Migration {
        version: 1,
        name: "data keys, tombstones, secrets",
        sqlite: SCHEMA,
        postgres: SCHEMA,
    }],
};
