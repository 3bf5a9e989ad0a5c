//! Where services keep their data: one SQLite file per service in a folder (embedded), or one
//! PostgreSQL database per service on a server (distributed), created when missing.

use std::path::PathBuf;

use tessera_store::{MigrationSet, PostgresOptions, SqliteOptions, Store, StoreConfig, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// `<folder>/<service>.db`.
    Files(PathBuf),
    /// Database `<prefix>_<service>` on the server `postgres://user@host:port` (prefix
    /// `tessera` in production; a test run uses its own).
    Postgres { server: String, prefix: String },
}

impl Storage {
    pub fn config(&self, service: &str) -> StoreConfig {
        match self {
            Storage::Files(folder) => StoreConfig::Sqlite {
                path: folder.join(format!("{service}.db")),
                options: SqliteOptions::default(),
            },
            Storage::Postgres { server, prefix } => StoreConfig::Postgres {
                url: tessera_store::database_url(server, &format!("{prefix}_{service}")),
                options: PostgresOptions::default(),
            },
        }
    }
}

/// Opens (creating if needed, and migrating) the store of `service`. Every store the runtime
/// opens also gets the projection runner's table, so every service reports its projections
/// (none, or some) the same way.
pub async fn open_store(
    storage: &Storage,
    service: &str,
    migrations: &[MigrationSet],
) -> Result<Store, StoreError> {
    let mut all = migrations.to_vec();
    if !all.iter().any(|set| set.scope == tessera_projection::MIGRATIONS.scope) {
        all.insert(0, tessera_projection::MIGRATIONS);
    }
    Ok(Store::open(&storage.config(service), &all).await?.named(service))
}
