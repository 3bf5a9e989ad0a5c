//! `tessera top`: the console's overview in a terminal. It reads the system's metrics every
//! interval and shows, per service, requests per second, errors, p99 latency, the outbox
//! backlog, dead letters and subscription lag, in both topologies (see `source` for how).

mod overview;
mod screen;
mod source;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::api_client::GatewayTarget;
use overview::{Column, Overview, Reading, Sort};

#[derive(Debug, Args)]
pub struct TopArgs {
    // The staff sign-in is used only where one `/metrics` is not the whole system (see `source`).
    #[command(flatten)]
    target: GatewayTarget,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    every: f64,
    /// Print one overview (over one interval) as a plain table and exit.
    #[arg(long, conflicts_with = "json")]
    once: bool,
    /// Print one overview (over one interval) as JSON and exit.
    #[arg(long)]
    json: bool,
    /// The column the services are sorted by (on screen: `s` and the number keys change it).
    #[arg(long, value_enum, default_value = "service")]
    sort: Column,
}

pub async fn run(args: TopArgs) -> anyhow::Result<()> {
    let every = Duration::try_from_secs_f64(args.every)
        .ok()
        .filter(|every| *every >= Duration::from_millis(100))
        .context("--every must be at least 0.1 seconds")?;
    let sort = Sort::by(args.sort);
    let one_shot = args.once || args.json;
    if !one_shot && !std::io::stdout().is_terminal() {
        bail!("the live screen needs a terminal: for a script, give --once or --json");
    }
    let (source, first) = source::Source::connect(args.target).await?;
    if one_shot {
        if let Some(note) = source.note() {
            eprintln!("warning: {note}");
        }
        let at = Instant::now();
        tokio::time::sleep(every).await;
        let second = source.read().await?;
        let mut overview = overview::overview(Some(&first), &second, at.elapsed().as_secs_f64());
        sort.apply(&mut overview.services);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&overview)?);
        } else {
            print!("{}", overview::plain(&overview));
        }
        return Ok(());
    }
    let view =
        screen::View { source: source.describe(), note: source.note().map(str::to_owned), every, sort };
    let (publish, latest) = tokio::sync::watch::channel(screen::Latest {
        overview: overview::overview(None, &first, every.as_secs_f64()),
        at: now(),
        error: None,
    });
    let reader = tokio::spawn(read_every(source, first, every, publish));
    let screen = tokio::task::spawn_blocking(move || screen::run(view, latest)).await;
    reader.abort();
    screen.context("the screen stopped")?
}

/// Reads the system every `every` and publishes each overview (or failure) until the screen
/// stops listening.
async fn read_every(
    source: source::Source,
    mut before: Reading,
    every: Duration,
    publish: tokio::sync::watch::Sender<screen::Latest>,
) {
    // When `before` was read: the rates are over the time since.
    let mut taken = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let published = match source.read().await {
            Ok(after) => {
                let seconds = taken.elapsed().as_secs_f64();
                let overview: Overview = overview::overview(Some(&before), &after, seconds);
                (before, taken) = (after, Instant::now());
                publish.send(screen::Latest { overview, at: now(), error: None })
            }
            Err(error) => {
                let mut latest = publish.borrow().clone();
                latest.error = Some(format!("{error:#}"));
                publish.send(latest)
            }
        };
        if published.is_err() {
            return;
        }
    }
}

fn now() -> String {
    tessera_kernel::Timestamp::from_system_time(std::time::SystemTime::now()).to_rfc3339()
}
