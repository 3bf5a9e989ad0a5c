//! `tessera bench store`: units of work per second through the store, and the raw insert
//! rates of the databases underneath.
//!
//! Every scenario is closed-loop: each writer task commits a unit, waits for the commit, and
//! commits the next, so "writers" is the number of units in flight.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use tessera_kernel::{MessageId, StreamId, UuidV7Gen};
use tessera_store::{
    ExpectedVersion, NewEvent, PostgresOptions, SqliteOptions, Store, StoreConfig, Synchronous,
};

use super::report::{BenchResult, Report, latency_histogram, micros};
use super::system_cost::{PartCost, cost_of};

#[derive(Debug, Args)]
pub struct StoreBenchArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Seconds each scenario runs (after a short warm-up).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// PostgreSQL server to bench against (a scratch database is created and dropped).
    #[arg(long, env = "TESSERA_BENCH_POSTGRES")]
    postgres_url: Option<String>,
    /// Where SQLite scratch files go (default: a temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// SQLite's synchronous setting for the store scenarios.
    #[arg(long, default_value = "full", value_parser = ["full", "normal"])]
    synchronous: String,
    /// Run only the store scenarios with these writer counts, and no raw limits (for profiling).
    #[arg(long, value_delimiter = ',')]
    writers: Vec<usize>,
}

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    writers: usize,
    events_per_unit: usize,
    /// Each unit starts a new stream (like placing an order) instead of extending the
    /// writer's own long stream.
    new_stream_per_unit: bool,
}

/// The row `bench e2e` prices an order's units of work with.
const APPEND_64_WRITERS: Scenario =
    Scenario { name: "append 1-event units", writers: 64, events_per_unit: 1, new_stream_per_unit: false };

const SCENARIOS: [Scenario; 6] = [
    Scenario { name: "append 1-event units", writers: 1, events_per_unit: 1, new_stream_per_unit: false },
    Scenario { name: "append 1-event units", writers: 16, events_per_unit: 1, new_stream_per_unit: false },
    APPEND_64_WRITERS,
    Scenario { name: "append 100-event units", writers: 8, events_per_unit: 100, new_stream_per_unit: false },
    Scenario {
        name: "1-event units, new stream each",
        writers: 16,
        events_per_unit: 1,
        new_stream_per_unit: true,
    },
    Scenario {
        name: "1-event units, new stream each",
        writers: 64,
        events_per_unit: 1,
        new_stream_per_unit: true,
    },
];

pub async fn run(args: StoreBenchArgs) -> anyhow::Result<()> {
    let duration = Duration::from_secs_f64(args.seconds.max(0.1));
    let scratch = tempfile_dir(args.dir.as_deref())?;
    let synchronous = if args.synchronous == "normal" { Synchronous::Normal } else { Synchronous::Full };
    let mut results = Vec::new();

    let selected = |scenario: &Scenario| args.writers.is_empty() || args.writers.contains(&scenario.writers);
    let with_limits = args.writers.is_empty();
    for (index, scenario) in SCENARIOS.iter().enumerate().filter(|(_, s)| selected(s)) {
        let path = scratch.join(format!("bench-{index}.db"));
        let config = StoreConfig::Sqlite {
            path: path.clone(),
            options: SqliteOptions { synchronous, ..SqliteOptions::default() },
        };
        let store = Store::open(&config, &[]).await.context("open the SQLite store")?;
        results.push(run_scenario(&store, *scenario, duration).await?);
        drop(store);
        remove_sqlite_files(&path);
    }
    if with_limits {
        let raw_path = scratch.join("raw.db");
        // 64 rows per commit is the most that 64 closed-loop writers can ever share a commit.
        for rows_per_commit in [1, 64, 1000] {
            results.push(raw_sqlite(&raw_path, rows_per_commit, duration, synchronous).await?);
            remove_sqlite_files(&raw_path);
        }
    }

    if let Some(server) = &args.postgres_url {
        let url = tessera_store::database_url(server, &format!("tessera_bench_{}", std::process::id()));
        for scenario in SCENARIOS.into_iter().filter(selected) {
            tessera_store::drop_database(&url).await.ok();
            let config = StoreConfig::Postgres { url: url.clone(), options: PostgresOptions::default() };
            let store = Store::open(&config, &[]).await.context("open the PostgreSQL store")?;
            results.push(run_scenario(&store, scenario, duration).await?);
        }
        if with_limits {
            for clients in [1, 32, 64] {
                results.push(raw_postgres(&url, clients, duration).await?);
            }
        }
        tessera_store::drop_database(&url).await.ok();
    } else if !args.json {
        eprintln!("(PostgreSQL skipped: pass --postgres-url or set TESSERA_BENCH_POSTGRES)");
    }
    Report { bench: "store", results }.print(args.json)
}

fn tempfile_dir(dir: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    let base = dir.map_or_else(std::env::temp_dir, std::path::Path::to_path_buf);
    let path = base.join(format!("tessera-bench-{}", std::process::id()));
    std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
    Ok(path)
}

fn remove_sqlite_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

async fn run_scenario(store: &Store, scenario: Scenario, duration: Duration) -> anyhow::Result<BenchResult> {
    let written = write(store, scenario, duration).await?;
    let events = written.units * scenario.events_per_unit as u64;
    let name = format!("{} (events/s)", scenario.name);
    Ok(BenchResult::new(
        &name,
        &store.kind().to_string(),
        scenario.writers,
        events,
        written.elapsed,
        &written.latency,
    ))
}

/// What a scenario's writers committed.
struct Written {
    /// Units committed after the warm-up, whose latency is recorded.
    units: u64,
    /// Every unit committed, the warm-up's included.
    all_units: u64,
    latency: Histogram<u64>,
    /// From the end of the warm-up to the last commit.
    elapsed: Duration,
}

/// `scenario`'s writers, each committing units one after another until `duration` after a
/// short warm-up.
async fn write(store: &Store, scenario: Scenario, duration: Duration) -> anyhow::Result<Written> {
    let payload = serde_json::json!({ "sku": "SKU-0001", "quantity": 1, "price_cents": 1999 });
    let warm_up = Duration::from_millis(300);
    let start = Instant::now();
    let measure_from = start + warm_up;
    let stop = measure_from + duration;
    let tasks: Vec<_> = (0..scenario.writers)
        .map(|writer| {
            let (store, payload) = (store.clone(), payload.clone());
            tokio::spawn(async move {
                let mut stream = StreamId::parse(format!("bench-{writer}"))?;
                let mut version = None;
                let mut latency = latency_histogram();
                let (mut units, mut all_units) = (0u64, 0u64);
                loop {
                    let events = (0..scenario.events_per_unit)
                        .map(|_| NewEvent::new(MessageId::generate(&UuidV7Gen), "bench.Appended", &payload))
                        .collect::<Result<Vec<_>, _>>()?;
                    if scenario.new_stream_per_unit {
                        stream = StreamId::for_entity("order", MessageId::generate(&UuidV7Gen))?;
                        version = None;
                    }
                    let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                    let mut unit = store.begin();
                    unit.append(&stream, expected, events);
                    let began = Instant::now();
                    let receipt = unit.commit().await?;
                    let done = Instant::now();
                    version = receipt.stream_versions.last().map(|(_, v)| *v);
                    all_units += 1;
                    if began >= measure_from {
                        latency.record(micros(done - began))?;
                        units += 1;
                    }
                    if done >= stop {
                        return anyhow::Ok((units, all_units, latency));
                    }
                }
            })
        })
        .collect();
    let mut written =
        Written { units: 0, all_units: 0, latency: latency_histogram(), elapsed: Duration::ZERO };
    for task in tasks {
        let (units, all_units, histogram) = task.await??;
        written.units += units;
        written.all_units += all_units;
        written.latency.add(&histogram)?;
    }
    written.elapsed = Instant::now().saturating_duration_since(measure_from);
    Ok(written)
}

/// `bench store`'s row of 64 writers appending 1-event units to their own streams, on SQLite
/// with its default settings in a scratch folder inside `dir`, for `duration`: what a unit
/// costs this process's threads in CPU. The warm-up's units and CPU are counted alike.
pub(super) async fn sixty_four_writers_part(
    dir: &std::path::Path,
    duration: Duration,
) -> anyhow::Result<PartCost> {
    let scratch = tempfile::tempdir_in(dir)?;
    let config =
        StoreConfig::Sqlite { path: scratch.path().join("part.db"), options: SqliteOptions::default() };
    let store = Store::open(&config, &[]).await.context("open the SQLite store")?;
    let (written, cost) = cost_of(write(&store, APPEND_64_WRITERS, duration)).await?;
    let written = written?;
    drop(store);
    Ok(PartCost::new(written.all_units, cost.cpu))
}

/// The limit underneath: plain inserts on one connection, `rows_per_transaction` per commit.
async fn raw_sqlite(
    path: &std::path::Path,
    rows_per_transaction: usize,
    duration: Duration,
    synchronous: Synchronous,
) -> anyhow::Result<BenchResult> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let connection = rusqlite::Connection::open(&path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", if synchronous == Synchronous::Full { "FULL" } else { "NORMAL" })?;
        connection.execute_batch(
            "CREATE TABLE raw (id INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER NOT NULL, payload TEXT NOT NULL)",
        )?;
        let payload = r#"{"sku":"SKU-0001","quantity":1,"price_cents":1999}"#;
        let mut latency: Histogram<u64> = latency_histogram();
        let stop = Instant::now() + duration;
        let start = Instant::now();
        let mut rows = 0u64;
        while Instant::now() < stop {
            let began = Instant::now();
            connection.execute_batch("BEGIN")?;
            {
                let mut insert = connection.prepare_cached("INSERT INTO raw (stream, version, payload) VALUES (?1, ?2, ?3)")?;
                for _ in 0..rows_per_transaction {
                    rows += 1;
                    insert.execute(rusqlite::params!["raw", rows as i64, payload])?;
                }
            }
            connection.execute_batch("COMMIT")?;
            latency.record(micros(began.elapsed()))?;
        }
        let name = if rows_per_transaction == 1 {
            "raw insert, 1 row per commit (rows/s)".to_owned()
        } else {
            format!("raw insert, {rows_per_transaction} rows per commit (rows/s)")
        };
        anyhow::Ok(BenchResult::new(&name, "sqlite", 1, rows, start.elapsed(), &latency))
    })
    .await?
}

/// The limit underneath: autocommitted single-row INSERTs from `clients` connections.
async fn raw_postgres(url: &str, clients: usize, duration: Duration) -> anyhow::Result<BenchResult> {
    let setup = connect(url).await?;
    setup
        .batch_execute(
            "DROP TABLE IF EXISTS raw; CREATE TABLE raw (id BIGSERIAL PRIMARY KEY, stream TEXT NOT NULL, version BIGINT NOT NULL, payload TEXT NOT NULL)",
        )
        .await?;
    let payload = Arc::new(r#"{"sku":"SKU-0001","quantity":1,"price_cents":1999}"#.to_owned());
    let stop = Instant::now() + duration;
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (url, payload) = (url.to_owned(), payload.clone());
            tokio::spawn(async move {
                let client = connect(&url).await?;
                let insert =
                    client.prepare("INSERT INTO raw (stream, version, payload) VALUES ($1, $2, $3)").await?;
                let mut latency = latency_histogram();
                let mut rows = 0u64;
                while Instant::now() < stop {
                    let began = Instant::now();
                    client.execute(&insert, &[&"raw", &(rows as i64), &payload.as_str()]).await?;
                    latency.record(micros(began.elapsed()))?;
                    rows += 1;
                }
                anyhow::Ok((rows, latency))
            })
        })
        .collect();
    let mut latency = latency_histogram();
    let mut rows = 0;
    for task in tasks {
        let (count, histogram) = task.await??;
        rows += count;
        latency.add(&histogram)?;
    }
    Ok(BenchResult::new(
        "raw single-row INSERT (rows/s)",
        "postgres",
        clients,
        rows,
        start.elapsed(),
        &latency,
    ))
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}
