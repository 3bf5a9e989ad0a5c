//! `tessera dlq list|retry|drop`: the dead letters of one service's store. A retry is picked
//! up by the service's running subscriber within its poll interval.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tessera_store::{PostgresOptions, SqliteOptions, Store, StoreConfig};

#[derive(Debug, Args)]
pub struct DlqArgs {
    /// The service whose store holds the dead letters (embedded: `<data>/<service>.db`).
    #[arg(long, global = true, default_value = "")]
    service: String,
    /// The embedded data folder.
    #[arg(long, global = true, default_value = "tessera-data", env = "TESSERA_DATA")]
    data: PathBuf,
    /// The service's PostgreSQL database (distributed topology), instead of `--data`.
    #[arg(long, global = true, env = "TESSERA_DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    action: DlqAction,
}

#[derive(Debug, Subcommand)]
enum DlqAction {
    /// List dead letters, oldest first.
    List {
        /// Only this subscription (`<subscriber>__<source>`).
        #[arg(long)]
        consumer: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Ask the running subscriber to try a dead letter again.
    Retry { id: i64 },
    /// Delete a dead letter for good.
    Drop { id: i64 },
}

async fn open(args: &DlqArgs) -> anyhow::Result<Store> {
    let config = match &args.database_url {
        Some(url) => StoreConfig::Postgres {
            url: url.clone(),
            options: PostgresOptions { create_database: false, ..PostgresOptions::default() },
        },
        None => {
            if args.service.is_empty() {
                bail!("name the service: --service <name> (its store is <data>/<name>.db)");
            }
            let path = args.data.join(format!("{}.db", args.service));
            if !path.exists() {
                bail!("no store at {}: check --data and --service", path.display());
            }
            StoreConfig::Sqlite { path, options: SqliteOptions::default() }
        }
    };
    Store::open(&config, &[tessera_bus::MIGRATIONS]).await.context("cannot open the service's store")
}

pub async fn run(args: DlqArgs) -> anyhow::Result<()> {
    let store = open(&args).await?;
    match &args.action {
        DlqAction::List { consumer, json } => {
            let letters = tessera_bus::list_dead_letters(&store, consumer.as_deref()).await?;
            if *json {
                let rows: Vec<_> = letters
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "id": l.id, "consumer": l.consumer, "message_id": l.envelope.id,
                            "name": l.envelope.name, "key": l.envelope.key, "attempts": l.attempts,
                            "state": l.state, "error": l.error, "failed_at_micros": l.failed_at.as_micros(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if letters.is_empty() {
                println!("no dead letters");
            } else {
                println!(
                    "{:>6}  {:<7}  {:>8}  {:<36}  {:<28}  error",
                    "id", "state", "attempts", "message", "name"
                );
                for l in letters {
                    println!(
                        "{:>6}  {:<7}  {:>8}  {:<36}  {:<28}  {}",
                        l.id, l.state, l.attempts, l.envelope.id, l.envelope.name, l.error
                    );
                }
            }
        }
        DlqAction::Retry { id } => {
            if !tessera_bus::request_retry(&store, *id).await? {
                bail!("no dead letter {id}");
            }
            println!("dead letter {id} queued for retry");
        }
        DlqAction::Drop { id } => {
            if !tessera_bus::drop_dead_letter(&store, *id).await? {
                bail!("no dead letter {id}");
            }
            println!("dead letter {id} dropped");
        }
    }
    Ok(())
}
