//! `tessera dlq list|retry|drop`: the dead letters of one service's store. A retry is picked
//! up by the service's running subscriber within its poll interval.

use anyhow::bail;
use clap::{Args, Subcommand};
use tessera_store::Store;

use crate::store_target::StoreTarget;

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    action: DlqAction,
}

/// Whose dead letters: a service, in the embedded data folder or on the PostgreSQL server.
#[derive(Debug, Args)]
struct DlqTarget {
    /// The service whose store holds the dead letters.
    #[arg(long)]
    service: String,
    #[command(flatten)]
    stores: StoreTarget,
}

#[derive(Debug, Subcommand)]
enum DlqAction {
    /// List dead letters, oldest first.
    List {
        #[command(flatten)]
        target: DlqTarget,
        /// Only this subscription (`<subscriber>__<source>`).
        #[arg(long)]
        consumer: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Ask the running subscriber to try a dead letter again.
    Retry {
        id: i64,
        #[command(flatten)]
        target: DlqTarget,
        /// `{"id": …, "retry": "queued"}` instead of the sentence.
        #[arg(long)]
        json: bool,
    },
    /// Delete a dead letter for good.
    Drop {
        id: i64,
        #[command(flatten)]
        target: DlqTarget,
        /// `{"id": …, "dropped": true}` instead of the sentence.
        #[arg(long)]
        json: bool,
    },
}

impl DlqAction {
    fn target(&self) -> &DlqTarget {
        match self {
            Self::List { target, .. } | Self::Retry { target, .. } | Self::Drop { target, .. } => target,
        }
    }
}

async fn open(target: &DlqTarget) -> anyhow::Result<Store> {
    target.stores.open(&target.service).await
}

pub async fn run(args: DlqArgs) -> anyhow::Result<()> {
    let store = open(args.action.target()).await?;
    match &args.action {
        DlqAction::List { consumer, json, .. } => {
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
        DlqAction::Retry { id, json, .. } => {
            if !tessera_bus::request_retry(&store, *id).await? {
                bail!("no dead letter {id}");
            }
            if *json {
                println!("{}", serde_json::json!({"id": id, "retry": "queued"}));
            } else {
                println!("dead letter {id} queued for retry");
            }
        }
        DlqAction::Drop { id, json, .. } => {
            if !tessera_bus::drop_dead_letter(&store, *id).await? {
                bail!("no dead letter {id}");
            }
            if *json {
                println!("{}", serde_json::json!({"id": id, "dropped": true}));
            } else {
                println!("dead letter {id} dropped");
            }
        }
    }
    Ok(())
}
