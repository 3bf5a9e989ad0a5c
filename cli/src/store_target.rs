//! How every operator command that reads the services' stores names them: an embedded data
//! folder (`--data`), or a PostgreSQL server with the databases' prefix (`--database-url`,
//! `--database-prefix`), plus the service where the command is about one. The same three
//! options and variables everywhere, and a place that holds no Tessera store is an error that
//! says where it looked, never an empty answer.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use tessera_store::{PostgresOptions, SqliteOptions, Store, StoreConfig};

/// Where the services' stores are: an embedded data folder or a PostgreSQL server.
#[derive(Clone, Debug, Args)]
pub struct StoreTarget {
    /// The embedded data folder.
    #[arg(long, global = true, default_value = "tessera-data", env = "TESSERA_DATA")]
    pub data: PathBuf,
    /// The PostgreSQL server of the distributed topology (`postgres://user@host:5432`, no
    /// database: each service's is `<prefix>_<service>`), instead of `--data`.
    #[arg(long, global = true, env = "TESSERA_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Prefix of the database names (`<prefix>_<service>`).
    #[arg(long, global = true, env = "TESSERA_DATABASE_PREFIX", default_value = "tessera")]
    pub database_prefix: String,
}

impl StoreTarget {
    /// Where `service`'s store is, for messages.
    pub fn place(&self, service: &str) -> String {
        match &self.database_url {
            Some(_) => format!("database {}_{service}", self.database_prefix),
            None => self.data.join(format!("{service}.db")).display().to_string(),
        }
    }

    fn config(&self, service: &str) -> StoreConfig {
        match &self.database_url {
            Some(server) => StoreConfig::Postgres {
                url: tessera_store::database_url(server, &format!("{}_{service}", self.database_prefix)),
                options: PostgresOptions { create_database: false, ..PostgresOptions::default() },
            },
            None => StoreConfig::Sqlite {
                path: self.data.join(format!("{service}.db")),
                options: SqliteOptions::default(),
            },
        }
    }

    /// Opens one service's store as it is, creating and migrating nothing; refused where no
    /// Tessera store is.
    pub async fn open(&self, service: &str) -> anyhow::Result<Store> {
        let config = self.config(service);
        let there = config
            .holds_a_store()
            .await
            .with_context(|| format!("cannot look at the {service} store ({})", self.place(service)))?;
        if !there {
            let check =
                if self.database_url.is_some() { "--database-url and --database-prefix" } else { "--data" };
            bail!("no {service} store at {}: check {check} and the service's name", self.place(service));
        }
        Store::open(&config, &[]).await.with_context(|| format!("cannot open the {service} store"))
    }

    /// The stores there are: the data folder's files, or every known service's database
    /// (the gateway's and the services').
    pub fn services(&self) -> anyhow::Result<Vec<String>> {
        if self.database_url.is_some() {
            let mut names: Vec<String> = crate::registry::names().map(str::to_owned).collect();
            names.push(tessera_gateway::SERVICE.to_owned());
            names.sort();
            return Ok(names);
        }
        let mut names: Vec<String> = std::fs::read_dir(&self.data)
            .with_context(|| format!("cannot read {}: check --data", self.data.display()))?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let path = entry.path();
                if path.extension()? != "db" {
                    return None;
                }
                Some(path.file_stem()?.to_string_lossy().into_owned())
            })
            .filter(|name| name != "vault")
            .collect();
        if names.is_empty() {
            bail!("no Tessera stores in {}: check --data", self.data.display());
        }
        names.sort();
        Ok(names)
    }
}
