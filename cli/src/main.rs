//! `tessera`: start the system, benchmark it, operate it.

mod api_client;
mod audit;
mod bench;
mod bus_credentials;
mod chaos;
mod config;
mod contracts;
mod data_lock;
mod demo;
mod dlq;
mod down;
mod embedded;
mod governance;
mod keys;
mod listen;
mod load;
mod manuals;
mod orders;
mod probe;
mod projections;
mod registry;
mod sagas;
mod seed;
mod serve;
mod settings;
mod signing_keys;
mod simulate;
mod store_target;
mod top;
mod up;
mod verify;
mod web_ui;

use clap::{CommandFactory, Parser, Subcommand};

// glibc's allocator spent a quarter of the bus's async workers' time in malloc, free and
// their consolidation (docs/BENCHMARKS.md, bus); mimalloc keeps per-thread free lists.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `tessera --version`: the release and the commit it was built from (see build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TESSERA_GIT_COMMIT"), ")");

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version = VERSION,
    about = "Data management across microservices: the Tessera platform and shop"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Export every span to this OpenTelemetry collector over OTLP/HTTP (JSON), e.g.
    /// `http://127.0.0.1:4318`.
    #[arg(long, global = true, env = "TESSERA_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Log lines as `json` (one object per line, with the trace id and service) or `human`.
    /// By default: JSON for `serve`, and for `up` unless it writes to a terminal.
    #[arg(long, global = true, env = "TESSERA_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormatArg>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormatArg {
    Json,
    Human,
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
    Serve(Box<serve::ServeArgs>),
    /// Inspect and act on a service's dead letters.
    Dlq(dlq::DlqArgs),
    /// List read models with their lag, and rebuild one on a running system.
    Projections(projections::ProjectionsArgs),
    /// Check every service's hash-chained audit trail (`verify`).
    Audit(audit::AuditArgs),
    /// Rotate the vault's master key (`rotate`).
    Vault(keys::VaultArgs),
    /// Rotate the gateway's token signing key on a running system (`rotate`).
    Keys(signing_keys::KeysArgs),
    /// Add the demo catalogue to a running system through its API (as `up` does by itself).
    Seed(seed::SeedArgs),
    /// Drop a distributed system's databases and NATS streams (`--purge`).
    Down(down::DownArgs),
    /// Make each service's NATS credentials and the server's permissions (`auth`).
    Nats(bus_credentials::NatsArgs),
    /// Watch a running system in the terminal: requests, errors, latency, backlogs, lag.
    Top(top::TopArgs),
    /// Drive a running system with an open- or closed-loop mix of shop requests and report
    /// latency per operation.
    Load(load::LoadArgs),
    /// Check the whole system's invariants from every service's data; non-zero exit on any
    /// violation.
    Verify(verify::VerifyArgs),
    /// Inject faults into a system of its own under load, then verify nothing was lost.
    Chaos(chaos::ChaosArgs),
    /// Run the deterministic simulation of messaging and sagas over seeds (or one, traced).
    Simulate(simulate::SimulateArgs),
    /// Check the message types against their committed JSON Schemas (`check`).
    Contracts(contracts::ContractsArgs),
    /// The data map of personal data (`map`), the canary scan of a data folder (`scan`), and a
    /// person's access report from the audit trails (`access`).
    Governance(governance::GovernanceArgs),
    /// Measure the platform's throughput and latency.
    Bench {
        #[command(subcommand)]
        target: bench::BenchTarget,
    },
    /// Show an order of a running system: its state, lines, events and sagas.
    Orders(orders::OrdersArgs),
    /// List a running system's sagas by state, or show an order's sagas with their durations.
    Sagas(sagas::SagasArgs),
    /// Exit 0 if an address answers 2xx (a health check for images without curl).
    Probe(probe::ProbeArgs),
    /// Print the completion script for a shell.
    Completions(manuals::CompletionsArgs),
    /// Print the man page, or write one per command with --out-dir.
    Man(manuals::ManArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print it as TOML, secrets hidden.
    Print {
        #[command(flatten)]
        up: up::UpArgs,
        /// One JSON object instead of TOML.
        #[arg(long)]
        json: bool,
    },
}

/// A command's failure is the user's to fix (a port taken, a file missing, a wrong option), so
/// it is printed as one line with its causes, `error: cannot listen on …: address in use`, and
/// never with a backtrace, even under `RUST_BACKTRACE=1` (returning `anyhow::Result` from
/// `main` would print one). A real bug panics, and the panic hook still prints its backtrace.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    // `serve`'s configuration file is a layer of flags under the command line's own.
    let args = serve::with_file_layer(std::env::args_os().collect(), |name| std::env::var(name).ok())?;
    let cli = Cli::parse_from(args);
    let mut telemetry = tessera_telemetry::TelemetrySettings::new("tessera");
    telemetry.otlp_endpoint.clone_from(&cli.otlp_endpoint);
    telemetry.log_format = match (cli.log_format, &cli.command) {
        (Some(LogFormatArg::Json), _) => tessera_telemetry::LogFormat::Json,
        (Some(LogFormatArg::Human), _) => tessera_telemetry::LogFormat::Human,
        (None, Command::Serve(_)) => tessera_telemetry::LogFormat::Json,
        (None, _) => tessera_telemetry::LogFormat::Auto,
    };
    if let Command::Serve(args) = &cli.command {
        telemetry.process = format!("tessera-{}", args.service());
    }
    let _telemetry = tessera_telemetry::init(&telemetry)?;
    match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Serve(args) => serve::run(*args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Config { action: ConfigAction::Print { up, json } } => {
            let config = up.configuration()?;
            if json {
                println!("{}", config.print_json()?);
            } else {
                print!("{}", config.print()?);
            }
            Ok(())
        }
        Command::Dlq(args) => dlq::run(args).await,
        Command::Projections(args) => projections::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Vault(args) => keys::run(args).await,
        Command::Keys(args) => signing_keys::run(args).await,
        Command::Nats(args) => bus_credentials::run(args),
        Command::Seed(args) => seed::run(args).await,
        Command::Down(args) => down::run(args).await,
        Command::Bench { target } => bench::run(target).await,
        Command::Top(args) => top::run(args).await,
        Command::Load(args) => load::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Simulate(args) => simulate::run(args),
        Command::Chaos(args) => chaos::run(args).await,
        Command::Contracts(args) => contracts::run(args),
        Command::Governance(args) => governance::run(args).await,
        Command::Orders(args) => orders::run(args).await,
        Command::Sagas(args) => sagas::run(args).await,
        Command::Probe(args) => probe::run(args).await,
        Command::Completions(args) => {
            manuals::completions(&args, Cli::command());
            Ok(())
        }
        Command::Man(args) => manuals::man(&args, Cli::command()),
    }
}
