//! `tessera projections list|rebuild`: where each read model stands, and rebuilding one on a
//! running system. The request is written to the service's store; its running projection
//! runner picks it up within its poll interval, builds a shadow table and swaps it in.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tessera_projection::ProjectionStatus;
use tessera_store::{PostgresOptions, SqliteOptions, Store, StoreConfig};

#[derive(Debug, Args)]
pub struct ProjectionsArgs {
    /// The embedded data folder.
    #[arg(long, global = true, default_value = "tessera-data", env = "TESSERA_DATA")]
    data: PathBuf,
    /// A service's PostgreSQL database (distributed topology), instead of `--data`.
    #[arg(long, global = true, env = "TESSERA_DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    action: ProjectionsAction,
}

#[derive(Debug, Subcommand)]
enum ProjectionsAction {
    /// Every projection with its position, lag and rebuild state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Rebuild a service's projection from its event store while it keeps serving.
    Rebuild {
        service: String,
        name: String,
        /// Wait until the rebuilt table is swapped in, showing progress.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

async fn open(args: &ProjectionsArgs, service: &str) -> anyhow::Result<Store> {
    let config = match &args.database_url {
        Some(url) => StoreConfig::Postgres {
            url: url.clone(),
            options: PostgresOptions { create_database: false, ..PostgresOptions::default() },
        },
        None => {
            let path = args.data.join(format!("{service}.db"));
            if !path.exists() {
                bail!("no store at {}: check --data and the service name", path.display());
            }
            StoreConfig::Sqlite { path, options: SqliteOptions::default() }
        }
    };
    Store::open(&config, &[]).await.with_context(|| format!("cannot open the {service} store"))
}

/// The services whose stores are in the data folder (or the one database named).
fn services(args: &ProjectionsArgs) -> anyhow::Result<Vec<String>> {
    if args.database_url.is_some() {
        return Ok(vec!["database".to_owned()]);
    }
    let mut names: Vec<String> = std::fs::read_dir(&args.data)
        .with_context(|| format!("cannot read {}", args.data.display()))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            if path.extension()? != "db" {
                return None;
            }
            Some(path.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    Ok(names)
}

/// A store without the projection table has no projections.
async fn statuses(store: &Store) -> Vec<ProjectionStatus> {
    tessera_projection::status(store).await.unwrap_or_default()
}

pub async fn run(args: ProjectionsArgs) -> anyhow::Result<()> {
    match &args.action {
        ProjectionsAction::List { json } => {
            let mut rows = Vec::new();
            for service in services(&args)? {
                let store = open(&args, &service).await?;
                rows.extend(statuses(&store).await.into_iter().map(|status| (service.clone(), status)));
            }
            if *json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|(service, s)| {
                        serde_json::json!({
                            "service": service, "name": s.name, "mode": s.mode, "position": s.position,
                            "head": s.head, "lag_events": s.lag_events, "lag_seconds": s.lag_seconds,
                            "rebuilding": s.rebuilding, "rebuild_requested": s.rebuild_requested,
                            "rebuilds": s.rebuilds, "rebuilt_at": s.rebuilt_at.map(|t| t.to_rfc3339()),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            println!(
                "{:<12} {:<20} {:<7} {:>10} {:>10} {:>10} {:>9}  rebuild",
                "SERVICE", "PROJECTION", "MODE", "POSITION", "HEAD", "LAG", "LAG (s)"
            );
            for (service, s) in rows {
                let rebuild = match (s.rebuilding, s.rebuild_requested) {
                    (Some(at), _) => format!("running: {at}/{}", s.head),
                    (None, true) => "requested".to_owned(),
                    (None, false) => format!("{} done", s.rebuilds),
                };
                println!(
                    "{:<12} {:<20} {:<7} {:>10} {:>10} {:>10} {:>9.3}  {rebuild}",
                    service, s.name, s.mode, s.position, s.head, s.lag_events, s.lag_seconds
                );
            }
            Ok(())
        }
        ProjectionsAction::Rebuild { service, name, wait, timeout } => {
            let store = open(&args, service).await?;
            let before = statuses(&store)
                .await
                .into_iter()
                .find(|s| &s.name == name)
                .with_context(|| format!("{service} has no projection named {name}"))?;
            tessera_projection::request_rebuild(&store, name).await?;
            println!("rebuild of {service}/{name} requested");
            if !*wait {
                return Ok(());
            }
            let started = Instant::now();
            let mut last = String::new();
            loop {
                let now = statuses(&store)
                    .await
                    .into_iter()
                    .find(|s| &s.name == name)
                    .context("projection vanished")?;
                if now.rebuilds > before.rebuilds && now.rebuilding.is_none() && !now.rebuild_requested {
                    println!(
                        "rebuilt in {:.1} s at position {}",
                        started.elapsed().as_secs_f64(),
                        now.position
                    );
                    return Ok(());
                }
                let line = match now.rebuilding {
                    Some(at) => format!("building: {at}/{} events", now.head),
                    None => "waiting for the running service to start it".to_owned(),
                };
                if line != last {
                    println!("  {line}");
                    last = line;
                }
                if started.elapsed() > Duration::from_secs(*timeout) {
                    bail!("not rebuilt after {timeout} s: is the service running?");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
