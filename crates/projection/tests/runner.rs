//! The projection runner against both backends: live tables follow the log exactly once, lag
//! shows while events flow and returns to zero, and a rebuild under concurrent writes ends
//! equal to a table that was never rebuilt. The PostgreSQL half needs `TESSERA_TEST_POSTGRES`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_kernel::{MessageId, StreamId, UuidV7Gen};
use tessera_projection::{
    Mode, Projection, ProjectionRunner, RunnerOptions, request_rebuild, status, table_digest,
};
use tessera_store::{
    ExpectedVersion, Migration, MigrationSet, NewEvent, PostgresOptions, RecordedEvent, SqliteOptions,
    Statement, Store, StoreConfig, UnitOfWork,
};
use tessera_testkit::{TempDataDir, TempPostgres};
use tokio::sync::watch;

fn counts_table(table: &str, index_prefix: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE {table} (stream_id TEXT PRIMARY KEY, events BIGINT NOT NULL, last_version BIGINT NOT NULL)"
        ),
        format!("CREATE INDEX {index_prefix}_events ON {table} (events)"),
    ]
}

const SCHEMA: MigrationSet = MigrationSet {
    scope: "counts",
    migrations: &[Migration {
        version: 1,
        name: "three count tables",
        sqlite: "CREATE TABLE counts (stream_id TEXT PRIMARY KEY, events BIGINT NOT NULL, last_version BIGINT NOT NULL);
                 CREATE INDEX counts_events ON counts (events);
                 CREATE TABLE counts_reference (stream_id TEXT PRIMARY KEY, events BIGINT NOT NULL, last_version BIGINT NOT NULL);
                 CREATE TABLE counts_inline (stream_id TEXT PRIMARY KEY, events BIGINT NOT NULL, last_version BIGINT NOT NULL);",
        postgres: "CREATE TABLE counts (stream_id TEXT PRIMARY KEY, events BIGINT NOT NULL, last_version BIGINT NOT NULL);
                 CREATE INDEX counts_events ON counts (events);
                 CREATE TABLE counts_reference (stream_id TEXT PRIMARY KEY, events BIGINT NOT NULL, last_version BIGINT NOT NULL);
                 CREATE TABLE counts_inline (stream_id TEXT PRIMARY KEY, events BIGINT NOT NULL, last_version BIGINT NOT NULL);",
    }],
};

/// Events per stream (versions start at 1 with no gaps, so the count is the last version),
/// idempotent as an inline projection must be: a lost event shows as a lower count.
struct Counts {
    name: &'static str,
    table: &'static str,
}

fn count_statement(table: &str, stream: &str, version: u64) -> Statement {
    Statement::new(format!(
        "INSERT INTO {table} (stream_id, events, last_version) VALUES ($1, $2, $2)
         ON CONFLICT (stream_id) DO UPDATE SET events = excluded.events, last_version = excluded.last_version
         WHERE {table}.last_version < excluded.last_version"
    ))
    .bind(stream)
    .bind(i64::try_from(version).unwrap_or(i64::MAX))
}

impl Projection for Counts {
    fn name(&self) -> &'static str {
        self.name
    }
    fn table(&self) -> &'static str {
        self.table
    }
    fn create(&self, table: &str, index_prefix: &str) -> Vec<String> {
        counts_table(table, index_prefix)
    }
    fn apply(
        &self,
        event: &RecordedEvent,
        table: &str,
        unit: &mut UnitOfWork,
    ) -> tessera_projection::Result<()> {
        unit.execute(count_statement(table, event.stream.as_str(), event.version));
        Ok(())
    }
}

/// Keeps the folder or database alive while the test runs.
#[allow(dead_code)]
enum Fixture {
    Sqlite(TempDataDir),
    Postgres(TempPostgres),
}

async fn store(backend: &str) -> Option<(Fixture, Store)> {
    let migrations = [tessera_projection::MIGRATIONS, SCHEMA];
    match backend {
        "sqlite" => {
            let dir = TempDataDir::new();
            let config = StoreConfig::Sqlite { path: dir.file("p.db"), options: SqliteOptions::default() };
            let store = Store::open(&config, &migrations).await.expect("open");
            Some((Fixture::Sqlite(dir), store))
        }
        _ => {
            let database = TempPostgres::create().await?;
            let config =
                StoreConfig::Postgres { url: database.url().to_owned(), options: PostgresOptions::default() };
            let store = Store::open(&config, &migrations).await.expect("open");
            Some((Fixture::Postgres(database), store))
        }
    }
}

/// Appends `events` events over 20 streams, a few per unit; the inline table is written in
/// the same units as the events, as an inline read model is.
async fn write(store: Store, events: usize, pause: Duration) {
    let ids = UuidV7Gen;
    for n in 0..events / 5 {
        let mut unit = store.begin();
        let stream = StreamId::for_entity("thing", n % 20).expect("stream");
        let batch: Vec<_> = (0..5)
            .map(|i| {
                NewEvent::new(MessageId::generate(&ids), "test.Happened", &json!({"n": n, "i": i}))
                    .expect("event")
            })
            .collect();
        let head = store.read_stream(&stream, 0).await.expect("read").last().map_or(0, |e| e.version);
        let expected = if head == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(head) };
        unit.append(&stream, expected, batch);
        for version in head + 1..=head + 5 {
            unit.execute(count_statement("counts_inline", stream.as_str(), version));
        }
        unit.commit().await.expect("commit");
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

fn start(
    store: &Store,
    name: &'static str,
    table: &'static str,
    mode: Mode,
    batch: usize,
) -> watch::Sender<bool> {
    let (stop, stopped) = watch::channel(false);
    let runner = ProjectionRunner::new(
        store.clone(),
        Arc::new(Counts { name, table }),
        mode,
        RunnerOptions { batch, poll: Duration::from_millis(10) },
    );
    tokio::spawn(runner.run(stopped));
    stop
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn listed(store: &Store, name: &str) -> Option<tessera_projection::ProjectionStatus> {
    status(store).await.expect("status").into_iter().find(|s| s.name == name)
}

async fn projection(store: &Store, name: &str) -> tessera_projection::ProjectionStatus {
    listed(store, name).await.expect("listed")
}

async fn lag_is_reported_while_events_flow_and_returns_to_zero(backend: &str) {
    let Some((_fixture, store)) = store(backend).await else { return };
    // A backlog far longer than a tiny batch, so the log runs ahead of the table for many of
    // the runner's commits (500 events at 20 a batch were caught up between two looks on a
    // quiet machine).
    write(store.clone(), 2_500, Duration::ZERO).await;
    let _stop = start(&store, "counts", "counts", Mode::Async, 5);
    let mut saw_lag = false;
    wait_for("lag to return to zero", async || {
        // The runner registers its projection when it first runs.
        let Some(now) = listed(&store, "counts").await else { return false };
        saw_lag |= now.lag_events > 0 && now.lag_seconds > 0.0;
        now.lag_events == 0
    })
    .await;
    assert!(saw_lag, "lag was visible while the runner caught up");
    let now = projection(&store, "counts").await;
    assert_eq!((now.position, now.lag_events), (now.head, 0));
    let total = store
        .query(Statement::new("SELECT CAST(sum(events) AS BIGINT) AS n FROM counts"))
        .await
        .expect("sum");
    assert_eq!(total[0].int("n").expect("n"), 2_500, "every event applied exactly once");
}

async fn a_rebuild_under_concurrent_writes_ends_equal_to_the_live_model(backend: &str) {
    let Some((_fixture, store)) = store(backend).await else { return };
    let _reference = start(&store, "counts_reference", "counts_reference", Mode::Async, 100);
    let _rebuilt = start(&store, "counts", "counts", Mode::Async, 100);
    let _inline = start(&store, "counts_inline", "counts_inline", Mode::Inline, 100);
    let writer = tokio::spawn(write(store.clone(), 3000, Duration::from_millis(1)));
    wait_for("some events and the runners registered", async || {
        store.head_position().await.expect("head") > 500 && status(&store).await.expect("status").len() == 3
    })
    .await;
    request_rebuild(&store, "counts").await.expect("request");
    request_rebuild(&store, "counts_inline").await.expect("request");
    assert!(request_rebuild(&store, "nothing").await.is_err(), "an unknown projection is an error");
    let mut saw_progress = false;
    wait_for("the rebuilds to start", async || {
        let Some(counts) = listed(&store, "counts").await else { return false };
        saw_progress |= counts.rebuilding.is_some();
        counts.rebuilds + u64::from(counts.rebuilding.is_some()) > 0
    })
    .await;
    writer.await.expect("writer");
    wait_for("both rebuilds to swap in and the live tables to catch up", async || {
        let counts = projection(&store, "counts").await;
        let inline = projection(&store, "counts_inline").await;
        let reference = projection(&store, "counts_reference").await;
        counts.rebuilds == 1 && inline.rebuilds == 1 && counts.lag_events == 0 && reference.lag_events == 0
    })
    .await;
    assert!(saw_progress, "the rebuild's progress was visible");
    let reference = table_digest(&store, "counts_reference", "stream_id").await.expect("digest");
    assert!(reference.ends_with("/20"), "{reference}");
    assert_eq!(table_digest(&store, "counts", "stream_id").await.expect("digest"), reference);
    assert_eq!(table_digest(&store, "counts_inline", "stream_id").await.expect("digest"), reference);

    // A second rebuild works too (fresh index names), and changes nothing.
    request_rebuild(&store, "counts").await.expect("request");
    wait_for("the second rebuild", async || projection(&store, "counts").await.rebuilds == 2).await;
    assert_eq!(table_digest(&store, "counts", "stream_id").await.expect("digest"), reference);
}

#[tokio::test]
async fn sqlite_lag_is_reported_while_events_flow_and_returns_to_zero() {
    lag_is_reported_while_events_flow_and_returns_to_zero("sqlite").await;
}

#[tokio::test]
async fn postgres_lag_is_reported_while_events_flow_and_returns_to_zero() {
    lag_is_reported_while_events_flow_and_returns_to_zero("postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_rebuild_under_concurrent_writes_ends_equal_to_the_live_model() {
    a_rebuild_under_concurrent_writes_ends_equal_to_the_live_model("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_rebuild_under_concurrent_writes_ends_equal_to_the_live_model() {
    a_rebuild_under_concurrent_writes_ends_equal_to_the_live_model("postgres").await;
}
