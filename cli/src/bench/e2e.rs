//! `tessera bench e2e`: orders per second from `POST /orders` to confirmed, how long that
//! takes, and what one confirmed order costs the system, through the public API over HTTP on
//! loopback, as a shop's clients see it.
//!
//! The embedded system is started in this process on a fresh folder; the distributed one as a
//! `tessera serve` process per service and the gateway. `tessera load` drives it with orders
//! only, all paid with the approved card: a closed loop for the most it sustains, then an open
//! loop at a fixed rate for the settle latency, each on a fresh system. Clients wait for their
//! orders with `Prefer: wait` unless `--poll-ms` asks them to poll.
//!
//! Per confirmed order each row reports the system's CPU time and context switches (its
//! processes only: the load runs on threads of its own, left out, and PostgreSQL's and
//! nats-server's processes are counted in), and the units of work, messages and syncs its
//! stores made; the folder's file system and an fsync's latency are measured in the same run,
//! since a run on a disk that does not sync is no result.
//!
//! After the runs, the same process prices an order's parts (see [`super::parts`]): its units,
//! messages and HTTP requests at what each costs in CPU when a fixed variant of `bench store`,
//! `bench bus` and `bench gateway` runs alone on the same folder. An order's CPU over that sum
//! is the system's waste.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use tessera_contracts::{Money, Sku};
use tessera_store::{StoreActivity, activity, units_by_store};

use super::gateway::unlimited_gateway;
use super::parts::{Parts, PartsPerOrder, cpu_to_parts};
use super::report::{BenchResult, Report};
use super::system_cost::{Cost, CostMeter, LOAD_THREAD, Scope};
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
    /// Read each pending order every this many milliseconds instead of waiting for it with
    /// `Prefer: wait` (a read load of its own, and the settle times' resolution).
    #[arg(long)]
    poll_ms: Option<u64>,
    /// Customers placing the orders (each token has its own rate limit on a real gateway).
    #[arg(long, default_value_t = 16)]
    customers: usize,
    /// Where the embedded runs keep their stores (a fresh folder inside it each run); the
    /// system's temporary folder by default. Its file system and fsync latency are reported.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Skip the embedded runs (with `--database-url` and `--nats-url`, only the distributed).
    #[arg(long)]
    no_embedded: bool,
    /// Also measure the distributed topology (a `tessera serve` process per service and the
    /// gateway) on this PostgreSQL server ...
    #[arg(long, requires = "nats_url")]
    database_url: Option<String>,
    /// ... and this NATS server.
    #[arg(long, requires = "database_url")]
    nats_url: Option<String>,
    /// Skip pricing the orders' parts after the runs (about 20 s).
    #[arg(long)]
    no_parts: bool,
    #[arg(long)]
    json: bool,
}

/// How long each part's variant runs.
const PART_RUN: Duration = Duration::from_secs(3);

const SKU: &str = "BENCH-E2E";

/// What one run cost the system, beside the load's own report.
struct Measured {
    report: LoadReport,
    cost: Cost,
    /// The embedded stores' counts (the distributed stores are other processes).
    activity: Option<StoreActivity>,
    /// The embedded stores' units of work, by store.
    units_by_store: std::collections::BTreeMap<String, u64>,
    /// PostgreSQL's transactions and WAL syncs in the run's databases (distributed only).
    postgres: Option<PostgresActivity>,
}

/// Runs `work` (a load) on a runtime of its own, whose threads are named [`LOAD_THREAD`], so
/// that the system's CPU can be told from the load's.
async fn on_load_threads<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> anyhow::Result<T> {
    let (done, outcome) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name(LOAD_THREAD.into()).spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(LOAD_THREAD)
            .enable_all()
            .build();
        let _ = done.send(runtime.map(|runtime| runtime.block_on(work)));
    })?;
    Ok(outcome.await.context("the load's thread ended without an answer")??)
}

/// Drives the system at `url` with `options`, measuring from the start of the load phase to
/// the end of the settle wait.
async fn measured_load(
    options: LoadOptions,
    progress: bool,
    scope: Scope,
    postgres: Option<(&str, &str)>,
) -> anyhow::Result<Measured> {
    let started = Arc::new(tokio::sync::Notify::new());
    let options = LoadOptions { started: Some(started.clone()), ..options };
    let mut load = tokio::spawn(on_load_threads(run_load(options, progress)));
    tokio::select! {
        () = started.notified() => {}
        // The load ended before its load phase began: its set-up failed.
        ended = &mut load => {
            ended.context("the load's task")???;
            anyhow::bail!("the load ended before it began");
        }
    }
    let meter = CostMeter::start(scope)?;
    let stores_before = activity();
    let units_before = units_by_store();
    let postgres_before = match postgres {
        Some((url, prefix)) => Some(PostgresActivity::read(url, prefix).await?),
        None => None,
    };
    let report = load.await.context("the load's task")???;
    let cost = meter.finish();
    let postgres = match (postgres, postgres_before) {
        (Some((url, prefix)), Some(before)) => Some(PostgresActivity::read(url, prefix).await? - before),
        _ => None,
    };
    let units_by_store = units_by_store()
        .into_iter()
        .map(|(store, units)| {
            let before = units_before.get(&store).copied().unwrap_or(0);
            (store, units.saturating_sub(before))
        })
        .filter(|(_, units)| *units > 0)
        .collect();
    Ok(Measured { report, cost, activity: Some(activity() - stores_before), units_by_store, postgres })
}

/// A fresh embedded system on a fresh folder inside `dir`, served on a loopback port, driven
/// by `mode`.
async fn embedded_run(args: &E2eBenchArgs, dir: &Path, mode: LoadMode) -> anyhow::Result<Measured> {
    let dir = tempfile::tempdir_in(dir)?;
    let settings = EmbeddedSettings {
        payment_timeout: Duration::from_secs(10),
        slow_card_delay: Duration::from_secs(15),
        card_failure_rate: 0.0,
        card_latency: Duration::ZERO,
        gateway: unlimited_gateway()?,
        sealer: None,
        catalogue_cache: true,
        attachment_limits: tessera_support::AttachmentLimits::default(),
        retention: crate::settings::Retention::default(),
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
    let options = load_options(args, &url, mode);
    let measured = measured_load(options, !args.json, Scope::ThisProcess, None).await;
    stop.send(()).ok();
    server.await.ok();
    system.node.shutdown(Duration::from_secs(5)).await;
    measured
}

fn load_options(args: &E2eBenchArgs, url: &str, mode: LoadMode) -> LoadOptions {
    LoadOptions {
        mode,
        duration: Some(Duration::from_secs(args.seconds)),
        mix: Mix::approved_orders_only(),
        settle: Duration::from_secs(30),
        customers: args.customers.max(1),
        restock: false,
        poll_interval: args.poll_ms.map(|ms| Duration::from_millis(ms.max(1))),
        ..LoadOptions::new(url)
    }
}

/// A fresh distributed system (its own databases and NATS namespace), driven by `mode`.
async fn distributed_run(
    args: &E2eBenchArgs,
    postgres: &str,
    nats: &str,
    mode: LoadMode,
) -> anyhow::Result<Measured> {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let logs = tempfile::tempdir()?;
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let prefix = format!("bench{}r{run}", std::process::id());
    let bus =
        crate::chaos::system::Bus { url: nats.to_owned(), namespace: prefix.clone(), credentials: None };
    let mut system = crate::chaos::system::System::distributed(postgres, &bus, &prefix, logs.path())?;
    let measured = async {
        system.start_all().await?;
        crate::chaos::create_products(&system.gateway, &[(SKU, "Benchmark tea", 100_000_000, 500)]).await?;
        let scope =
            Scope::Processes { pids: system.pids(), commands: vec!["postgres".into(), "nats-server".into()] };
        let mut measured = measured_load(
            load_options(args, &system.gateway, mode),
            !args.json,
            scope,
            Some((postgres, prefix.as_str())),
        )
        .await?;
        // This process ran only the load.
        measured.activity = None;
        measured.units_by_store.clear();
        anyhow::Ok(measured)
    }
    .await;
    system.shut_down(false).await;
    measured
}

/// PostgreSQL's counts for the databases of one run.
#[derive(Clone, Copy, Debug, Default)]
struct PostgresActivity {
    /// Committed and rolled-back transactions, read-only ones included.
    transactions: u64,
    /// The server's syncs of its write-ahead log (for every database: the WAL is shared).
    wal_syncs: u64,
}

impl std::ops::Sub for PostgresActivity {
    type Output = Self;

    fn sub(self, earlier: Self) -> Self {
        Self {
            transactions: self.transactions.saturating_sub(earlier.transactions),
            wal_syncs: self.wal_syncs.saturating_sub(earlier.wal_syncs),
        }
    }
}

impl PostgresActivity {
    async fn read(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let connection = tokio::spawn(connection);
        // Backends report their counts when idle, at most once a second: a read just after
        // the load sees them all only after that.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let row = client
            .query_one(
                "SELECT COALESCE(SUM(xact_commit + xact_rollback), 0)::BIGINT FROM pg_stat_database WHERE datname LIKE $1 || '%'",
                &[&prefix],
            )
            .await?;
        let transactions: i64 = row.get(0);
        let wal_syncs: i64 = client.query_one("SELECT wal_sync::BIGINT FROM pg_stat_wal", &[]).await?.get(0);
        drop(client);
        connection.await.ok();
        Ok(Self {
            transactions: u64::try_from(transactions).unwrap_or(0),
            wal_syncs: u64::try_from(wal_syncs).unwrap_or(0),
        })
    }
}

/// The data folder's file system and what an fsync costs there, measured now.
#[derive(Clone, Debug, Serialize)]
struct Disk {
    folder: String,
    filesystem: String,
    fsync_p50_us: u64,
}

impl Disk {
    fn measure(dir: &Path) -> anyhow::Result<Self> {
        use std::io::Write;
        let probe = tempfile::NamedTempFile::new_in(dir)?;
        let mut file = probe.as_file();
        let mut took = Vec::new();
        for _ in 0..50 {
            file.write_all(&[7; 4096])?;
            let started = Instant::now();
            file.sync_data()?;
            took.push(super::report::micros(started.elapsed()));
        }
        took.sort_unstable();
        Ok(Self {
            folder: dir.display().to_string(),
            filesystem: filesystem_of(dir).unwrap_or_else(|| "unknown".into()),
            fsync_p50_us: took[took.len() / 2],
        })
    }

    /// Whether a sync here reaches a disk at all.
    fn syncs(&self) -> bool {
        !matches!(self.filesystem.as_str(), "tmpfs" | "ramfs")
    }
}

/// The type of the file system `dir` is on: the longest mount point of /proc/mounts above it.
fn filesystem_of(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, mount, kind) = (fields.next()?, fields.next()?, fields.next()?);
            dir.starts_with(mount).then(|| (mount.len(), kind.to_owned()))
        })
        .max_by_key(|(length, _)| *length)
        .map(|(_, kind)| kind)
}

/// What one confirmed order cost, for one row.
#[derive(Clone, Debug, Serialize)]
struct PerOrder {
    name: String,
    backend: String,
    confirmed: u64,
    cpu_ms_per_order: f64,
    context_switches_per_order: f64,
    /// The embedded stores' syncs, or PostgreSQL's WAL syncs.
    fsyncs_per_order: Option<f64>,
    units_per_order: Option<f64>,
    messages_per_order: Option<f64>,
    /// The load's HTTP requests, retries and reads of the final state included.
    requests_per_order: f64,
    /// The units, messages and requests at the parts' prices (embedded rows, when the parts
    /// were measured).
    parts_ms_per_order: Option<f64>,
    parts_ms_per_order_by_part: Option<PartsPerOrder>,
    /// `cpu_ms_per_order` over `parts_ms_per_order`.
    cpu_to_parts_ratio: Option<f64>,
    /// PostgreSQL transactions, read-only ones included (distributed only).
    postgres_transactions_per_order: Option<f64>,
    /// The embedded units of work per order, by store.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    units_per_order_by_store: std::collections::BTreeMap<String, f64>,
    /// CPU milliseconds per order by process (distributed) or kind of thread (embedded).
    cpu_ms_per_order_by_part: std::collections::BTreeMap<String, f64>,
}

impl PerOrder {
    #[allow(clippy::cast_precision_loss)]
    fn of(name: &str, backend: &str, measured: &Measured) -> Self {
        let confirmed = measured.report.confirmed.max(1);
        let per = |count: u64| count as f64 / confirmed as f64;
        let stores = measured.activity;
        let postgres = measured.postgres;
        Self {
            name: name.to_owned(),
            backend: backend.to_owned(),
            confirmed: measured.report.confirmed,
            cpu_ms_per_order: measured.cost.cpu.as_secs_f64() * 1e3 / confirmed as f64,
            context_switches_per_order: per(measured.cost.context_switches),
            fsyncs_per_order: stores.map(|s| per(s.syncs)).or(postgres.map(|p| per(p.wal_syncs))),
            units_per_order: stores.map(|s| per(s.units)),
            messages_per_order: stores.map(|s| per(s.messages)),
            requests_per_order: per(measured.report.requests),
            parts_ms_per_order: None,
            parts_ms_per_order_by_part: None,
            cpu_to_parts_ratio: None,
            postgres_transactions_per_order: postgres.map(|p| per(p.transactions)),
            cpu_ms_per_order_by_part: measured
                .cost
                .cpu_by_part
                .iter()
                .filter(|(_, cpu)| !cpu.is_zero())
                .map(|(part, cpu)| (part.clone(), cpu.as_secs_f64() * 1e3 / confirmed as f64))
                .collect(),
            units_per_order_by_store: measured
                .units_by_store
                .iter()
                .map(|(store, units)| (store.clone(), per(*units)))
                .collect(),
        }
    }
}

impl PerOrder {
    /// Prices this row's units, messages and requests with `parts`; a row without counts of
    /// units and messages (a distributed one) stays unpriced.
    fn price(&mut self, parts: &Parts) {
        let (Some(units), Some(messages)) = (self.units_per_order, self.messages_per_order) else { return };
        let priced = parts.price(units, messages, self.requests_per_order);
        self.parts_ms_per_order = Some(priced.total_ms());
        self.parts_ms_per_order_by_part = Some(priced);
        self.cpu_to_parts_ratio = cpu_to_parts(self.cpu_ms_per_order, priced.total_ms());
    }
}

/// One row: confirmed orders per second, and placed → confirmed at p50 and p99.
fn row(name: &str, backend: &str, report: &LoadReport, clients: usize) -> BenchResult {
    let confirmed = report.settle.iter().find(|s| s.status == "confirmed");
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let micros = |ms: f64| (ms * 1000.0).round() as u64;
    BenchResult {
        name: name.to_owned(),
        backend: backend.into(),
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

#[derive(Debug, Serialize)]
struct E2eReport {
    bench: &'static str,
    /// `wait` (Prefer: wait) or `poll every N ms`.
    clients_follow_orders_by: String,
    disk: Option<Disk>,
    load_average: Option<String>,
    /// What a unit of work, a message and a gateway request cost alone, measured after the runs.
    parts: Option<Parts>,
    results: Vec<BenchResult>,
    per_order: Vec<PerOrder>,
}

/// The 1-, 5- and 15-minute load averages, as /proc/loadavg says.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

pub async fn run(args: E2eBenchArgs) -> anyhow::Result<()> {
    let mut results = Vec::new();
    let mut per_order = Vec::new();
    let mut notes = Vec::new();
    let mut disk = None;
    let closed_name = format!("orders → confirmed, closed loop ({} clients)", args.clients);
    let open_name = format!("orders → confirmed, open loop @{}/s", args.rate);
    let closed_mode = LoadMode::Closed { clients: args.clients.max(1) };
    if !args.no_embedded {
        let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let measured_disk = Disk::measure(&dir)?;
        if !measured_disk.syncs() {
            notes.push(format!(
                "{} is on {}, where a sync reaches no disk: these embedded figures are not a result",
                measured_disk.folder, measured_disk.filesystem
            ));
        }
        disk = Some(measured_disk);
        let closed = embedded_run(&args, &dir, closed_mode).await?;
        results.push(row(&closed_name, "embedded", &closed.report, args.clients));
        per_order.push(PerOrder::of(&closed_name, "embedded", &closed));
        notes.extend(shortfall(&closed.report));
        if args.rate > 0.0 {
            let open = embedded_run(&args, &dir, LoadMode::Open { rate: args.rate }).await?;
            results.push(row(&open_name, "embedded", &open.report, 0));
            per_order.push(PerOrder::of(&open_name, "embedded", &open));
            notes.extend(shortfall(&open.report));
        }
    }
    if let (Some(postgres), Some(nats)) = (&args.database_url, &args.nats_url) {
        let closed = distributed_run(&args, postgres, nats, closed_mode).await?;
        results.push(row(&closed_name, "distributed", &closed.report, args.clients));
        per_order.push(PerOrder::of(&closed_name, "distributed", &closed));
        notes.extend(shortfall(&closed.report));
        if args.rate > 0.0 {
            let open = distributed_run(&args, postgres, nats, LoadMode::Open { rate: args.rate }).await?;
            results.push(row(&open_name, "distributed", &open.report, 0));
            per_order.push(PerOrder::of(&open_name, "distributed", &open));
            notes.extend(shortfall(&open.report));
        }
    }
    let priceable = per_order.iter().any(|o| o.units_per_order.is_some() && o.messages_per_order.is_some());
    let parts = if args.no_parts || !priceable {
        None
    } else {
        if !args.json {
            eprintln!("pricing the parts: bench store, bench bus and bench gateway variants…");
        }
        let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
        let parts = Parts::measure(&dir, PART_RUN).await.context("measure the parts")?;
        for order in &mut per_order {
            order.price(&parts);
        }
        Some(parts)
    };
    let following = match args.poll_ms {
        Some(ms) => format!("poll every {ms} ms"),
        None => "wait".to_owned(),
    };
    if args.json {
        let report = E2eReport {
            bench: "e2e",
            clients_follow_orders_by: following,
            disk,
            load_average: load_average(),
            parts,
            results,
            per_order,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    Report { bench: "e2e", results }.print(false)?;
    println!();
    println!(
        "{:<44} {:<11} {:>9} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "per confirmed order",
        "backend",
        "confirmed",
        "cpu ms",
        "parts ms",
        "cpu/parts",
        "switches",
        "fsyncs",
        "units",
        "messages",
        "pg xacts"
    );
    let cell = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    for order in &per_order {
        println!(
            "{:<44} {:<11} {:>9} {:>10.2} {:>9} {:>9} {:>9.1} {:>8} {:>8} {:>8} {:>8}",
            order.name,
            order.backend,
            order.confirmed,
            order.cpu_ms_per_order,
            order.parts_ms_per_order.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2}")),
            order.cpu_to_parts_ratio.map_or_else(|| "-".to_owned(), |ratio| format!("{ratio:.1}×")),
            order.context_switches_per_order,
            cell(order.fsyncs_per_order),
            cell(order.units_per_order),
            cell(order.messages_per_order),
            cell(order.postgres_transactions_per_order),
        );
        let mut by_part: Vec<(&String, &f64)> = order.cpu_ms_per_order_by_part.iter().collect();
        by_part.sort_by(|a, b| b.1.total_cmp(a.1));
        let by_part: Vec<String> = by_part.iter().map(|(part, ms)| format!("{part} {ms:.2}")).collect();
        println!("  cpu ms by part: {}", by_part.join(", "));
        if !order.units_per_order_by_store.is_empty() {
            let stores: Vec<String> = order
                .units_per_order_by_store
                .iter()
                .map(|(store, units)| format!("{store} {units:.1}"))
                .collect();
            println!("  units by store: {}", stores.join(", "));
        }
        if let (Some(priced), Some(parts)) = (&order.parts_ms_per_order_by_part, &parts) {
            println!(
                "  parts ms: store {:.2} ({} units × {:.1} µs), bus {:.2} ({} messages × {:.1} µs), gateway {:.2} ({:.1} requests × {:.1} µs)",
                priced.store_ms,
                cell(order.units_per_order),
                parts.store_unit.cpu_us_per_operation,
                priced.bus_ms,
                cell(order.messages_per_order),
                parts.bus_message.cpu_us_per_operation,
                priced.gateway_ms,
                order.requests_per_order,
                parts.gateway_request.cpu_us_per_operation,
            );
        }
    }
    println!();
    println!(
        "p50/p99 are placed → confirmed (from when the order was due); clients {following}; cpu and switches are the system's processes only (the load's threads left out; PostgreSQL and nats-server counted in)"
    );
    if let Some(disk) = &disk {
        println!(
            "data folder {} on {}: fsync p50 {} µs (measured before the runs)",
            disk.folder, disk.filesystem, disk.fsync_p50_us
        );
    }
    if let Some(parts) = &parts {
        println!(
            "parts, CPU of this process's threads, each run alone for {} s after the runs on the same folder: store {:.1} µs per unit (bench store, 64 writers, 1-event units), bus {:.1} µs per message (bench bus, in-process, half load), gateway {:.1} µs per request (bench gateway, 1 client, authenticated product read)",
            parts.seconds_each,
            parts.store_unit.cpu_us_per_operation,
            parts.bus_message.cpu_us_per_operation,
            parts.gateway_request.cpu_us_per_operation,
        );
    }
    if let Some(load) = load_average() {
        println!("load average: {load}");
    }
    for note in notes {
        println!("warning: {note}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filesystem_of_a_folder_is_its_longest_mount_point() {
        // The root is always mounted; /proc is procfs wherever /proc/mounts can be read.
        assert_eq!(filesystem_of(Path::new("/proc/self")).as_deref(), Some("proc"));
        assert!(filesystem_of(Path::new("/")).is_some());
    }

    #[test]
    fn a_folder_on_tmpfs_does_not_sync_and_one_on_a_disk_does() {
        let disk =
            |filesystem: &str| Disk { folder: "x".into(), filesystem: filesystem.into(), fsync_p50_us: 1 };
        assert!(!disk("tmpfs").syncs());
        assert!(disk("ext4").syncs());
    }

    fn row(units: Option<f64>, messages: Option<f64>) -> PerOrder {
        PerOrder {
            name: "r".into(),
            backend: "embedded".into(),
            confirmed: 100,
            cpu_ms_per_order: 3.0,
            context_switches_per_order: 80.0,
            fsyncs_per_order: Some(8.6),
            units_per_order: units,
            messages_per_order: messages,
            requests_per_order: 2.5,
            parts_ms_per_order: None,
            parts_ms_per_order_by_part: None,
            cpu_to_parts_ratio: None,
            postgres_transactions_per_order: None,
            units_per_order_by_store: std::collections::BTreeMap::new(),
            cpu_ms_per_order_by_part: std::collections::BTreeMap::new(),
        }
    }

    #[test]
    fn a_row_is_priced_by_its_units_messages_and_requests_and_set_against_its_cpu() {
        let cost = |us| super::super::parts::PartCost { operations: 1000, cpu_us_per_operation: us };
        let parts = Parts {
            store_unit: cost(20.0),
            bus_message: cost(25.0),
            gateway_request: cost(80.0),
            seconds_each: 3.0,
        };
        let mut embedded = row(Some(15.0), Some(14.0));
        embedded.price(&parts);
        // 15 × 20 µs + 14 × 25 µs + 2.5 × 80 µs = 0.3 + 0.35 + 0.2 ms.
        let total = embedded.parts_ms_per_order.expect("priced");
        assert!((total - 0.85).abs() < 1e-9, "{total}");
        let ratio = embedded.cpu_to_parts_ratio.expect("a ratio");
        assert!((ratio - 3.0 / 0.85).abs() < 1e-9, "{ratio}");
        let by_part = embedded.parts_ms_per_order_by_part.expect("by part");
        assert!((by_part.gateway_ms - 0.2).abs() < 1e-9, "{by_part:?}");

        // A distributed row counts neither units nor messages: it is left unpriced.
        let mut distributed = row(None, None);
        distributed.price(&parts);
        assert_eq!(distributed.parts_ms_per_order, None);
        assert_eq!(distributed.cpu_to_parts_ratio, None);
    }
}
