//! `tessera projections list|rebuild`: where each read model stands, and rebuilding one on a
//! running system. The request is written to the service's store; its running projection
//! runner picks it up within its poll interval, builds a shadow table and swaps it in.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tessera_projection::ProjectionStatus;
use tessera_store::Store;

use crate::store_target::StoreTarget;

#[derive(Debug, Args)]
pub struct ProjectionsArgs {
    #[command(flatten)]
    stores: StoreTarget,
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

/// A store without the projection table has no projections.
async fn statuses(store: &Store) -> Vec<ProjectionStatus> {
    tessera_projection::status(store).await.unwrap_or_default()
}

pub async fn run(args: ProjectionsArgs) -> anyhow::Result<()> {
    match &args.action {
        ProjectionsAction::List { json } => {
            let mut rows = Vec::new();
            for service in args.stores.services()? {
                let store = args.stores.open(&service).await?;
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
            let store = args.stores.open(service).await?;
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
