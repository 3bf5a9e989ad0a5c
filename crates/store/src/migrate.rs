//! Versioned schema migrations, one list per scope (the store's own tables, then each
//! service's), each with its SQLite and PostgreSQL text. Applied on open, in order, each in its
//! own transaction; an applied migration whose text has changed stops the open with an error
//! rather than leaving the schema in an unknown state.

use crate::error::{Result, StoreError};

#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

#[derive(Clone, Copy, Debug)]
pub struct MigrationSet {
    /// Usually the service's name; `tessera.store` is the store's own.
    pub scope: &'static str,
    pub migrations: &'static [Migration],
}

/// Which dialect's text to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Migration {
    pub(crate) fn sql(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
        }
    }

    /// FNV-1a over the dialect's text: enough to notice an edited migration.
    pub(crate) fn checksum(&self, dialect: Dialect) -> String {
        let hash = self.sql(dialect).bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{hash:016x}")
    }
}

/// The migrations of `set` still to apply, given the (version, checksum) pairs already applied.
pub(crate) fn pending<'a>(
    set: &'a MigrationSet,
    dialect: Dialect,
    applied: &[(u32, String)],
) -> Result<Vec<&'a Migration>> {
    let error =
        |version, reason: String| StoreError::Migration { scope: set.scope.to_owned(), version, reason };
    for (index, migration) in set.migrations.iter().enumerate() {
        let expected = u32::try_from(index + 1).unwrap_or(u32::MAX);
        if migration.version != expected {
            return Err(error(migration.version, format!("versions must run 1, 2, 3…; expected {expected}")));
        }
    }
    for (version, checksum) in applied {
        match set.migrations.iter().find(|m| m.version == *version) {
            None => {
                return Err(error(
                    *version,
                    "applied to this database but unknown to this build (a newer build ran here?)".into(),
                ));
            }
            Some(m) if m.checksum(dialect) != *checksum => {
                return Err(error(*version, format!("`{}` changed after it was applied", m.name)));
            }
            Some(_) => {}
        }
    }
    Ok(set.migrations.iter().filter(|m| !applied.iter().any(|(v, _)| *v == m.version)).collect())
}

pub(crate) const LEDGER_SQLITE: &str = "CREATE TABLE IF NOT EXISTS tessera_migrations (
    scope TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL, checksum TEXT NOT NULL,
    applied_at INTEGER NOT NULL, PRIMARY KEY (scope, version))";

pub(crate) const LEDGER_POSTGRES: &str = "CREATE TABLE IF NOT EXISTS tessera_migrations (
    scope TEXT NOT NULL, version BIGINT NOT NULL, name TEXT NOT NULL, checksum TEXT NOT NULL,
    applied_at BIGINT NOT NULL, PRIMARY KEY (scope, version))";

/// The store's own tables.
pub(crate) const CORE: MigrationSet = MigrationSet {
    scope: "tessera.store",
    migrations: &[
        Migration {
            version: 1,
            name: "event streams, outbox, inbox, checkpoints, timers, snapshots",
            sqlite: "
            CREATE TABLE tessera_events (
                position INTEGER PRIMARY KEY,
                stream_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                event_id TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                schema_version INTEGER NOT NULL,
                payload TEXT NOT NULL,
                metadata TEXT NOT NULL,
                recorded_at INTEGER NOT NULL,
                UNIQUE (stream_id, version)
            );
            CREATE TABLE tessera_snapshots (
                stream_id TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL,
                taken_at INTEGER NOT NULL
            );
            CREATE TABLE tessera_outbox (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                message_id TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                key TEXT NOT NULL,
                envelope TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                sent_at INTEGER
            );
            CREATE INDEX tessera_outbox_unsent ON tessera_outbox (position) WHERE sent_at IS NULL;
            CREATE INDEX tessera_outbox_sent ON tessera_outbox (sent_at) WHERE sent_at IS NOT NULL;
            CREATE TABLE tessera_inbox (
                message_id TEXT PRIMARY KEY, recorded_at INTEGER NOT NULL
            ) WITHOUT ROWID;
            CREATE INDEX tessera_inbox_recorded ON tessera_inbox (recorded_at);
            CREATE TABLE tessera_checkpoints (
                name TEXT PRIMARY KEY, position INTEGER NOT NULL, updated_at INTEGER NOT NULL
            );
            CREATE TABLE tessera_timers (
                timer_id TEXT PRIMARY KEY,
                due_at INTEGER NOT NULL,
                envelope TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('pending', 'fired', 'cancelled')),
                changed_at INTEGER
            );
            CREATE INDEX tessera_timers_due ON tessera_timers (due_at) WHERE state = 'pending';
        ",
            postgres: "
            CREATE TABLE tessera_events (
                position BIGSERIAL PRIMARY KEY,
                stream_id TEXT NOT NULL,
                version BIGINT NOT NULL,
                event_id TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                schema_version BIGINT NOT NULL,
                payload TEXT NOT NULL,
                metadata TEXT NOT NULL,
                recorded_at BIGINT NOT NULL,
                UNIQUE (stream_id, version)
            );
            CREATE TABLE tessera_snapshots (
                stream_id TEXT PRIMARY KEY, version BIGINT NOT NULL, state TEXT NOT NULL,
                taken_at BIGINT NOT NULL
            );
            CREATE TABLE tessera_outbox (
                position BIGSERIAL PRIMARY KEY,
                message_id TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                key TEXT NOT NULL,
                envelope TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                sent_at BIGINT
            );
            CREATE INDEX tessera_outbox_unsent ON tessera_outbox (position) WHERE sent_at IS NULL;
            CREATE INDEX tessera_outbox_sent ON tessera_outbox (sent_at) WHERE sent_at IS NOT NULL;
            CREATE TABLE tessera_inbox (
                message_id TEXT PRIMARY KEY, recorded_at BIGINT NOT NULL
            );
            CREATE INDEX tessera_inbox_recorded ON tessera_inbox (recorded_at);
            CREATE TABLE tessera_checkpoints (
                name TEXT PRIMARY KEY, position BIGINT NOT NULL, updated_at BIGINT NOT NULL
            );
            CREATE TABLE tessera_timers (
                timer_id TEXT PRIMARY KEY,
                due_at BIGINT NOT NULL,
                envelope TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('pending', 'fired', 'cancelled')),
                changed_at BIGINT
            );
            CREATE INDEX tessera_timers_due ON tessera_timers (due_at) WHERE state = 'pending';
        ",
        },
        Migration {
            version: 2,
            name: "audit chain",
            // `idx` is assigned by the writer (never by the database) from the previous row, so
            // that a rolled-back unit leaves no gap; `hash` links the row to that previous one.
            sqlite: "
            CREATE TABLE tessera_audit (
                idx INTEGER PRIMARY KEY CHECK (idx >= 0),
                at INTEGER NOT NULL,
                actor TEXT NOT NULL,
                role TEXT NOT NULL,
                action TEXT NOT NULL,
                resource TEXT NOT NULL,
                outcome TEXT NOT NULL,
                trace_id TEXT,
                hash BLOB NOT NULL CHECK (length(hash) = 32)
            );
        ",
            postgres: "
            CREATE TABLE tessera_audit (
                idx BIGINT PRIMARY KEY CHECK (idx >= 0),
                at BIGINT NOT NULL,
                actor TEXT NOT NULL,
                role TEXT NOT NULL,
                action TEXT NOT NULL,
                resource TEXT NOT NULL,
                outcome TEXT NOT NULL,
                trace_id TEXT,
                hash BYTEA NOT NULL CHECK (length(hash) = 32)
            );
        ",
        },
        Migration {
            version: 3,
            name: "outbox envelopes apart from the rows the relay marks",
            // Marking a row sent rewrites the pages that hold it. With the envelope in the row,
            // a mark rewrote about as many bytes as the commit that wrote the messages; apart,
            // the marked rows are narrow and many fit a page.
            sqlite: "
            CREATE TABLE tessera_outbox_envelopes (
                position INTEGER PRIMARY KEY,
                envelope TEXT NOT NULL
            );
            INSERT INTO tessera_outbox_envelopes (position, envelope) SELECT position, envelope FROM tessera_outbox;
            ALTER TABLE tessera_outbox DROP COLUMN envelope;
        ",
            postgres: "
            CREATE TABLE tessera_outbox_envelopes (
                position BIGINT PRIMARY KEY,
                envelope TEXT NOT NULL
            );
            INSERT INTO tessera_outbox_envelopes (position, envelope) SELECT position, envelope FROM tessera_outbox;
            ALTER TABLE tessera_outbox DROP COLUMN envelope;
        ",
        },
        Migration {
            version: 4,
            name: "audit anchors",
            // What stays of an archived segment of the audit chain (`tessera_audit::Anchor`):
            // its range, the hash of its last record (hex) and where the archive keeps it.
            sqlite: AUDIT_ANCHORS,
            postgres: AUDIT_ANCHORS,
        },
    ],
};

const AUDIT_ANCHORS: &str = "
    CREATE TABLE tessera_audit_anchors (
        first_idx BIGINT NOT NULL CHECK (first_idx >= 0),
        last_idx BIGINT PRIMARY KEY CHECK (last_idx >= first_idx),
        hash TEXT NOT NULL CHECK (length(hash) = 64),
        object_key TEXT NOT NULL,
        archived_at BIGINT NOT NULL
    );";

#[cfg(test)]
mod tests {
    use super::*;

    const SET: MigrationSet = MigrationSet {
        scope: "demo",
        migrations: &[
            Migration { version: 1, name: "one", sqlite: "A", postgres: "A" },
            Migration { version: 2, name: "two", sqlite: "B", postgres: "B" },
        ],
    };

    #[test]
    fn only_unapplied_migrations_are_pending() {
        let applied = vec![(1, SET.migrations[0].checksum(Dialect::Sqlite))];
        let pending = pending(&SET, Dialect::Sqlite, &applied).expect("plan");
        assert_eq!(pending.iter().map(|m| m.version).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn an_edited_migration_is_refused() {
        let applied = vec![(1, "0000000000000000".to_owned())];
        let error = pending(&SET, Dialect::Sqlite, &applied).expect_err("edited");
        assert!(error.to_string().contains("changed after it was applied"), "{error}");
    }

    #[test]
    fn an_unknown_applied_version_is_refused() {
        let error = pending(&SET, Dialect::Postgres, &[(9, String::new())]).expect_err("unknown");
        assert!(matches!(error, StoreError::Migration { version: 9, .. }));
    }

    #[test]
    fn versions_must_be_consecutive() {
        const GAP: MigrationSet = MigrationSet {
            scope: "gap",
            migrations: &[Migration { version: 2, name: "two", sqlite: "", postgres: "" }],
        };
        assert!(pending(&GAP, Dialect::Sqlite, &[]).is_err());
    }
}
