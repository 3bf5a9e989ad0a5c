//! `tessera`: start the system, benchmark it, operate it.

mod audit;
mod bench;
mod config;
mod demo;
mod dlq;
mod embedded;
mod keys;
mod projections;
mod serve;
mod up;
mod web_ui;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Data management across microservices: the Tessera platform and shop"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the system embedded: one process, one SQLite file per service in the data folder.
    Up(up::UpArgs),
    /// Show the effective configuration of `up` (defaults, tessera.toml, environment, flags).
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Run a scripted scenario against a running system and print each order's timeline.
    Demo(demo::DemoArgs),
    /// Run one service, or the gateway, in its own process (distributed: PostgreSQL and NATS).
    Serve(serve::ServeArgs),
    /// Inspect and act on a service's dead letters.
    Dlq(dlq::DlqArgs),
    /// List read models with their lag, and rebuild one on a running system.
    Projections(projections::ProjectionsArgs),
    /// Check every service's hash-chained audit trail (`verify`).
    Audit(audit::AuditArgs),
    /// Rotate the vault's master key (`rotate`).
    Vault(keys::VaultArgs),
    /// Measure the platform's throughput and latency.
    Bench {
        #[command(subcommand)]
        target: bench::BenchTarget,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print it as TOML, secrets hidden.
    Print(up::UpArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Up(args) => up::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Config { action: ConfigAction::Print(args) } => {
            print!("{}", args.configuration()?.print()?);
            Ok(())
        }
        Command::Dlq(args) => dlq::run(args).await,
        Command::Projections(args) => projections::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Vault(args) => keys::run(args).await,
        Command::Bench { target } => bench::run(target).await,
    }
}
