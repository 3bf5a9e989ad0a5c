//! `tessera bench e2e`: orders per second from `POST /orders` to confirmed, and how long that
//! takes, through the public API over HTTP on loopback, as a shop's clients see it. The
//! embedded system (SQLite, synchronous=FULL) is started in this process on a temporary
//! folder, and driven by `tessera load` with orders only, all paid with the approved card: a
//! closed loop for the most it sustains, then an open loop at a fixed rate for the settle
//! latency, each on a fresh system.

use std::time::Duration;

use clap::Args;
use tessera_contracts::{Money, Sku};

use super::gateway::unlimited_gateway;
use super::report::{BenchResult, Report};
use crate::embedded::{Embedded, EmbeddedSettings};
use crate::load::{LoadMode, LoadOptions, LoadReport, Mix, run_load};

#[derive(Debug, Args)]
pub struct E2eBenchArgs {
    /// Clients of the closed-loop run (each places an order and waits for it to confirm).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Length of each run, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Orders per second of the open-loop run (0 to skip it).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// How often an order is read until it confirms, in milliseconds: the settle times'
    /// resolution, and a read load of its own.
    #[arg(long, default_value_t = 10)]
    poll_ms: u64,
    /// Customers placing the orders (each token has its own rate limit on a real gateway).
    #[arg(long, default_value_t = 16)]
    customers: usize,
    /// Also measure the distributed topology (a `tessera serve` process per service and the
    /// gateway) on this PostgreSQL server ...
    #[arg(long, requires = "nats_url")]
    database_url: Option<String>,
    /// ... and this NATS server.
    #[arg(long, requires = "database_url")]
    nats_url: Option<String>,
    #[arg(long)]
    json: bool,
}

const SKU: &str = "BENCH-E2E";

/// A fresh embedded system on a temporary folder, served on a loopback port, driven by `mode`.
async fn embedded_run(args: &E2eBenchArgs, mode: LoadMode) -> anyhow::Result<LoadReport> {
    let dir = tempfile::tempdir()?;
    let settings = EmbeddedSettings {
        payment_timeout: Duration::from_secs(10),
        slow_card_delay: Duration::from_secs(15),
        card_failure_rate: 0.0,
        card_latency: Duration::ZERO,
        gateway: unlimited_gateway()?,
        sealer: None,
        catalogue_cache: true,
    };
    let system = Embedded::start(dir.path(), settings).await?;
    system
        .inventory
        .create_product(
            &Sku::parse(SKU)?,
            "Bench tea",
            "For timing orders",
            &Money::eur(100)?,
            100_000_000,
            &tessera_web::token::Actor::system("bench"),
        )
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tessera_web::serve(listener, system.router.clone(), async {
        stopped.await.ok();
    }));
    let options = LoadOptions {
        mode,
        duration: Some(Duration::from_secs(args.seconds)),
        mix: Mix::approved_orders_only(),
        settle: Duration::from_secs(30),
        customers: args.customers.max(1),
        restock: false,
        poll_interval: Duration::from_millis(args.poll_ms.max(1)),
        ..LoadOptions::new(&url)
    };
    let report = run_load(options, !args.json).await;
    stop.send(()).ok();
    server.await.ok();
    system.node.shutdown(Duration::from_secs(5)).await;
    report
}

/// A fresh distributed system (its own databases and NATS namespace), driven by `mode`.
async fn distributed_run(
    args: &E2eBenchArgs,
    postgres: &str,
    nats: &str,
    mode: LoadMode,
) -> anyhow::Result<LoadReport> {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let logs = tempfile::tempdir()?;
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let prefix = format!("bench{}r{run}", std::process::id());
    let mut system = crate::chaos::system::System::distributed(postgres, nats, &prefix, logs.path())?;
    let report = async {
        system.start_all().await?;
        crate::chaos::create_products(&system.gateway, &[(SKU, "Benchmark tea", 100_000_000, 500)]).await?;
        let options = LoadOptions {
            mode,
            duration: Some(Duration::from_secs(args.seconds)),
            mix: Mix::approved_orders_only(),
            settle: Duration::from_secs(30),
            customers: args.customers.max(1),
            restock: false,
            poll_interval: Duration::from_millis(args.poll_ms.max(1)),
            ..LoadOptions::new(&system.gateway)
        };
        run_load(options, !args.json).await
    }
    .await;
    system.shut_down(false).await;
    report
}

/// One row: confirmed orders per second, and placed → confirmed at p50 and p99.
fn row(name: String, report: &LoadReport, clients: usize) -> BenchResult {
    let confirmed = report.settle.iter().find(|s| s.status == "confirmed");
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let micros = |ms: f64| (ms * 1000.0).round() as u64;
    BenchResult {
        name,
        backend: "embedded".into(),
        writers: clients,
        ops_per_sec: report.confirmed_per_second(),
        p50_us: confirmed.map_or(0, |s| micros(s.p50_ms)),
        p99_us: confirmed.map_or(0, |s| micros(s.p99_ms)),
        cpu_us_per_op: None,
    }
}

/// What a run left unconfirmed; a benchmark of approved orders expects none.
fn shortfall(report: &LoadReport) -> Option<String> {
    let unconfirmed = report.attempted_orders.saturating_sub(report.confirmed);
    (unconfirmed > 0).then(|| {
        format!(
            "{unconfirmed} of {} orders not confirmed ({} refused, {} unanswered, {} rejected, {} not terminal)",
            report.attempted_orders,
            report.refused_orders,
            report.unanswered_orders,
            report.rejected,
            report.non_terminal
        )
    })
}

pub async fn run(args: E2eBenchArgs) -> anyhow::Result<()> {
    let mut results = Vec::new();
    let mut notes = Vec::new();
    let closed = embedded_run(&args, LoadMode::Closed { clients: args.clients.max(1) }).await?;
    results.push(row(
        format!("orders → confirmed, closed loop ({} clients)", args.clients),
        &closed,
        args.clients,
    ));
    notes.extend(shortfall(&closed));
    if args.rate > 0.0 {
        let open = embedded_run(&args, LoadMode::Open { rate: args.rate }).await?;
        results.push(row(format!("orders → confirmed, open loop @{}/s", args.rate), &open, 0));
        notes.extend(shortfall(&open));
    }
    if let (Some(postgres), Some(nats)) = (&args.database_url, &args.nats_url) {
        let closed =
            distributed_run(&args, postgres, nats, LoadMode::Closed { clients: args.clients.max(1) }).await?;
        let mut result =
            row(format!("orders → confirmed, closed loop ({} clients)", args.clients), &closed, args.clients);
        result.backend = "distributed".into();
        results.push(result);
        notes.extend(shortfall(&closed));
        if args.rate > 0.0 {
            let open = distributed_run(&args, postgres, nats, LoadMode::Open { rate: args.rate }).await?;
            let mut result = row(format!("orders → confirmed, open loop @{}/s", args.rate), &open, 0);
            result.backend = "distributed".into();
            results.push(result);
            notes.extend(shortfall(&open));
        }
    }
    Report { bench: "e2e", results }.print(args.json)?;
    if !args.json {
        println!(
            "p50/p99 are placed → confirmed (from when the order was due, read every {} ms); targets: embedded >= 5,000 orders/s, p99 < 100 ms at 2,500/s, distributed >= 1,500/s",
            args.poll_ms
        );
        for note in notes {
            println!("warning: {note}");
        }
    }
    Ok(())
}
