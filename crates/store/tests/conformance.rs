//! One conformance suite, written once, run against every backend: the same unit-of-work
//! semantics on SQLite and PostgreSQL. The PostgreSQL half needs `TESSERA_TEST_POSTGRES`.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde::{Deserialize, Serialize};
use tessera_kernel::{
    DeterministicIdGen, Envelope, HlcTimestamp, IdGen, ManualClock, MessageId, MessageKind, StreamId,
    Timestamp, UuidV7Gen,
};
use tessera_store::{
    Aggregate, ExpectedVersion, Migration, MigrationSet, NewEvent, PostgresOptions, SqliteOptions, Statement,
    Store, StoreConfig, StoreError,
};
use tessera_testkit::{TempDataDir, TempPostgres};

const SHOP: MigrationSet = MigrationSet {
    scope: "shop",
    migrations: &[Migration {
        version: 1,
        name: "stock",
        sqlite: "CREATE TABLE stock (sku TEXT PRIMARY KEY, available BIGINT NOT NULL CHECK (available >= 0));",
        postgres: "CREATE TABLE stock (sku TEXT PRIMARY KEY, available BIGINT NOT NULL CHECK (available >= 0));",
    }],
};

/// Where a test's store lives; `open` may be called again for a second handle (a replica).
enum Fixture {
    Sqlite(TempDataDir),
    Postgres(TempPostgres),
}

impl Fixture {
    fn sqlite() -> Self {
        Fixture::Sqlite(TempDataDir::new())
    }

    async fn postgres() -> Option<Self> {
        TempPostgres::create().await.map(Fixture::Postgres)
    }

    fn config(&self) -> StoreConfig {
        match self {
            Fixture::Sqlite(dir) => {
                StoreConfig::Sqlite { path: dir.file("shop.db"), options: SqliteOptions::default() }
            }
            Fixture::Postgres(db) => {
                StoreConfig::Postgres { url: db.url().to_owned(), options: PostgresOptions::default() }
            }
        }
    }

    async fn open(&self) -> Store {
        Store::open(&self.config(), &[SHOP]).await.expect("open store")
    }

    async fn open_with_clock(&self, clock: Arc<ManualClock>) -> Store {
        Store::open_with_clock(&self.config(), &[SHOP], clock).await.expect("open store")
    }
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Fixture::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(fixture) = super::Fixture::postgres().await else { return };
                    super::$test(fixture).await;
                }
            )*
        }
    };
}

conformance!(
    concurrent_appenders_at_one_expected_version_exactly_one_wins,
    a_failed_unit_leaves_no_event_outbox_row_inbox_record_timer_or_row,
    failing_units_do_not_fail_their_neighbours_in_a_group_commit,
    failing_one_statement_units_leave_nothing_and_keep_their_neighbours,
    the_inbox_applies_a_message_once_even_when_delivered_concurrently,
    outbox_is_read_in_commit_order_marked_sent_and_pruned_after_retention,
    timers_fire_when_due_and_only_once,
    a_reader_by_position_never_skips_an_event_that_commits_late,
    loading_starts_from_the_latest_snapshot,
    migrations_are_idempotent_and_edits_are_refused,
    the_last_unit_of_stock_is_sold_once_under_concurrent_orders,
    checkpoints_and_global_reads_page_through_all_events,
    own_table_constraints_surface_as_typed_errors,
    random_units_commit_whole_or_not_at_all,
    a_replicas_append_is_seen_by_the_next_version_check,
    a_database_from_before_the_envelope_split_keeps_its_outbox,
    after_commit_runs_once_the_write_is_readable_and_never_for_a_failed_unit,
);

fn stream(name: &str) -> StreamId {
    StreamId::parse(name).expect("valid stream id")
}

fn event(ids: &dyn IdGen, n: u64) -> NewEvent {
    NewEvent::new(MessageId::generate(ids), "test.Counted", &Counted { by: n }).expect("serialise")
}

fn envelope(ids: &dyn IdGen, key: &str, seq: u64) -> Envelope {
    Envelope::new(
        ids,
        MessageKind::Event,
        "test.Happened",
        "test",
        key,
        HlcTimestamp::default(),
        serde_json::json!({ "seq": seq }),
    )
}

#[derive(Debug, Serialize, Deserialize)]
struct Counted {
    by: u64,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Counter {
    total: u64,
    events: u64,
}

impl Aggregate for Counter {
    type Event = Counted;

    fn evolve(self, event: &Counted) -> Self {
        Counter { total: self.total + event.by, events: self.events + 1 }
    }
}

async fn concurrent_appenders_at_one_expected_version_exactly_one_wins(fixture: Fixture) {
    let store = fixture.open().await;
    let ids = Arc::new(UuidV7Gen);
    let s = stream("race-1");
    let mut unit = store.begin();
    unit.append(&s, ExpectedVersion::NoStream, vec![event(&*ids, 1)]);
    unit.commit().await.expect("first append");

    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (store, s, ids) = (store.clone(), s.clone(), ids.clone());
            tokio::spawn(async move {
                let mut unit = store.begin();
                unit.append(&s, ExpectedVersion::Exact(1), vec![event(&*ids, i)]);
                unit.commit().await
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(receipt) => {
                winners += 1;
                assert_eq!(receipt.stream_versions, vec![(s.clone(), 2)]);
            }
            Err(StoreError::Conflict { stream, expected, actual }) => {
                assert_eq!((stream, expected, actual), (s.clone(), ExpectedVersion::Exact(1), Some(2)));
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(store.read_stream(&s, 0).await.expect("read").len(), 2);

    let mut late = store.begin();
    late.append(&s, ExpectedVersion::NoStream, vec![event(&*ids, 9)]);
    let error = late.commit().await.expect_err("the stream exists");
    assert_eq!(
        error.to_string(),
        "version conflict on stream `race-1`: expected no stream, actual version 2"
    );
}

async fn after_commit_runs_once_the_write_is_readable_and_never_for_a_failed_unit(fixture: Fixture) {
    let store = fixture.open().await;
    let (woken, wake) = tokio::sync::oneshot::channel::<()>();
    let mut unit = store.begin();
    unit.execute(Statement::new("INSERT INTO stock (sku, available) VALUES ($1, $2)").bind("sku-w").bind(1));
    unit.after_commit(move || {
        let _ = woken.send(());
    });
    let mut wake = wake;
    assert!(wake.try_recv().is_err(), "ran before the commit");
    unit.commit().await.expect("commit");
    wake.await.expect("ran after the commit");
    let rows =
        store.query(Statement::new("SELECT available FROM stock WHERE sku = 'sku-w'")).await.expect("read");
    assert_eq!(rows.len(), 1, "what the woken reader looks for is there");

    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut unit = store.begin();
    unit.execute(
        Statement::new("UPDATE stock SET available = available - 5 WHERE sku = 'sku-w' AND available >= 5")
            .expect_rows(1, "out_of_stock"),
    );
    unit.after_commit({
        let ran = ran.clone();
        move || ran.store(true, std::sync::atomic::Ordering::SeqCst)
    });
    unit.commit().await.expect_err("the guard fails");
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst), "ran for a unit that failed");
}

async fn a_failed_unit_leaves_no_event_outbox_row_inbox_record_timer_or_row(fixture: Fixture) {
    let store = fixture.open().await;
    let ids = UuidV7Gen;
    let s = stream("order-1");
    let inbound = MessageId::generate(&ids);
    let mut unit = store.begin();
    unit.append(&s, ExpectedVersion::NoStream, vec![event(&ids, 1), event(&ids, 2)]);
    unit.send(&envelope(&ids, "k", 1)).expect("send");
    unit.schedule(&envelope(&ids, "k", 2), Timestamp::EPOCH).expect("schedule");
    unit.record_inbox(inbound);
    unit.checkpoint("projection", 7);
    unit.execute(Statement::new("INSERT INTO stock (sku, available) VALUES ($1, $2)").bind("sku-1").bind(5));
    // The guard fails last, after every other write of the unit was applied.
    unit.execute(
        Statement::new("UPDATE stock SET available = available - $1 WHERE sku = $2 AND available >= $1")
            .bind(50)
            .bind("sku-1")
            .expect_rows(1, "out_of_stock"),
    );
    let error = unit.commit().await.expect_err("guard fails");
    assert!(
        matches!(&error, StoreError::Rejected { reason, expected: 1, actual: 0 } if reason == "out_of_stock"),
        "{error}"
    );

    assert!(store.read_stream(&s, 0).await.expect("read").is_empty());
    assert!(store.read_all(0, 100).await.expect("read all").is_empty());
    assert!(store.outbox_unsent(0, 100).await.expect("outbox").is_empty());
    assert!(store.due_timers(100).await.expect("timers").is_empty());
    assert!(!store.inbox_contains(inbound).await.expect("inbox"));
    assert_eq!(store.checkpoint("projection").await.expect("checkpoint"), None);
    assert!(store.query(Statement::new("SELECT sku FROM stock")).await.expect("query").is_empty());
}

async fn failing_units_do_not_fail_their_neighbours_in_a_group_commit(fixture: Fixture) {
    let store = fixture.open().await;
    let ids = Arc::new(UuidV7Gen);
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let (store, ids) = (store.clone(), ids.clone());
            tokio::spawn(async move {
                let s = stream(&format!("n-{i}"));
                let mut unit = store.begin();
                unit.append(&s, ExpectedVersion::NoStream, vec![event(&*ids, i)]);
                unit.send(&envelope(&*ids, &s.to_string(), i)).expect("send");
                if i % 3 == 0 {
                    unit.execute(
                        Statement::new("UPDATE stock SET available = 0 WHERE sku = $1")
                            .bind("none")
                            .expect_rows(1, "missing"),
                    );
                }
                (i, unit.commit().await)
            })
        })
        .collect();
    for task in tasks {
        let (i, result) = task.await.expect("task");
        let s = stream(&format!("n-{i}"));
        let stored = store.read_stream(&s, 0).await.expect("read");
        if i % 3 == 0 {
            assert!(matches!(result, Err(StoreError::Rejected { .. })), "unit {i}: {result:?}");
            assert!(stored.is_empty(), "unit {i} left events");
        } else {
            result.unwrap_or_else(|e| panic!("unit {i} failed: {e}"));
            assert_eq!(stored.len(), 1, "unit {i}");
        }
    }
    let unsent = store.outbox_unsent(0, 1000).await.expect("outbox");
    assert_eq!(unsent.len(), 133);
}

/// Units that write a single row (the shape the SQLite writer commits without a savepoint)
/// fail in every way such a unit can, concurrently with healthy ones in the same group
/// commits: a stale expected version, a duplicate event id (the row insert itself fails), an
/// inbox record already present. Each failure must leave nothing and keep its neighbours.
async fn failing_one_statement_units_leave_nothing_and_keep_their_neighbours(fixture: Fixture) {
    let store = fixture.open().await;
    let ids = Arc::new(UuidV7Gen);
    let taken_event = event(&*ids, 0);
    let taken_event_id = taken_event.id;
    let seen_message = MessageId::generate(&*ids);
    let mut first = store.begin();
    first.append(&stream("taken"), ExpectedVersion::NoStream, vec![taken_event]);
    first.record_inbox(seen_message);
    first.commit().await.expect("first unit");

    let tasks: Vec<_> = (0..300u64)
        .map(|i| {
            let (store, ids) = (store.clone(), ids.clone());
            tokio::spawn(async move {
                let s = stream(&format!("one-{i}"));
                let mut unit = store.begin();
                match i % 4 {
                    0 => {
                        unit.append(&s, ExpectedVersion::Exact(3), vec![event(&*ids, i)]);
                    }
                    1 => {
                        let mut duplicate = event(&*ids, i);
                        duplicate.id = taken_event_id;
                        unit.append(&s, ExpectedVersion::NoStream, vec![duplicate]);
                    }
                    2 => {
                        unit.record_inbox(seen_message);
                    }
                    _ => {
                        unit.append(&s, ExpectedVersion::NoStream, vec![event(&*ids, i)]);
                    }
                }
                (i, unit.commit().await)
            })
        })
        .collect();
    for task in tasks {
        let (i, result) = task.await.expect("task");
        if i % 4 == 3 {
            result.unwrap_or_else(|e| panic!("healthy unit {i} failed: {e}"));
        } else {
            assert!(result.is_err(), "unit {i} should have failed");
        }
    }
    for i in 0..300u64 {
        let s = stream(&format!("one-{i}"));
        let stored = store.read_stream(&s, 0).await.expect("read");
        assert_eq!(stored.len(), usize::from(i % 4 == 3), "stream {s}");
        // The version the failed unit tried to write is not remembered: the stream is still new.
        let mut next = store.begin();
        let expected = if i % 4 == 3 { ExpectedVersion::Exact(1) } else { ExpectedVersion::NoStream };
        next.append(&s, expected, vec![event(&*ids, i)]);
        next.commit().await.unwrap_or_else(|e| panic!("stream {s} after the failures: {e}"));
    }
    assert_eq!(store.read_all(0, 1000).await.expect("read all").len(), 1 + 75 + 300);
}

async fn the_inbox_applies_a_message_once_even_when_delivered_concurrently(fixture: Fixture) {
    let store = fixture.open().await;
    let ids = Arc::new(UuidV7Gen);
    let message = MessageId::generate(&*ids);
    let tasks: Vec<_> = (0..16u64)
        .map(|i| {
            let (store, ids) = (store.clone(), ids.clone());
            tokio::spawn(async move {
                let mut unit = store.begin();
                unit.record_inbox(message);
                unit.append(&stream("effects"), ExpectedVersion::Any, vec![event(&*ids, i)]);
                unit.commit().await
            })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => applied += 1,
            Err(StoreError::DuplicateMessage(id)) => assert_eq!(id, message),
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!(applied, 1);
    assert!(store.inbox_contains(message).await.expect("inbox"));
    assert_eq!(store.read_stream(&stream("effects"), 0).await.expect("read").len(), 1);
    assert!(!store.inbox_contains(MessageId::generate(&*ids)).await.expect("inbox"));
}

async fn outbox_is_read_in_commit_order_marked_sent_and_pruned_after_retention(fixture: Fixture) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_000_000_000)));
    let store = fixture.open_with_clock(clock.clone()).await;
    let ids = Arc::new(UuidV7Gen);
    // 8 keys, each written by its own task in sequence; tasks race each other.
    let tasks: Vec<_> = (0..8u64)
        .map(|k| {
            let (store, ids) = (store.clone(), ids.clone());
            tokio::spawn(async move {
                for seq in 0..25 {
                    let mut unit = store.begin();
                    unit.send(&envelope(&*ids, &format!("key-{k}"), seq)).expect("send");
                    unit.commit().await.expect("commit");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let unsent = store.outbox_unsent(0, 1000).await.expect("outbox");
    assert_eq!(unsent.len(), 200);
    assert!(unsent.windows(2).all(|w| w[0].position < w[1].position), "positions ascend");
    for k in 0..8 {
        let seqs: Vec<u64> = unsent
            .iter()
            .filter(|m| m.envelope.key == format!("key-{k}"))
            .map(|m| m.envelope.payload["seq"].as_u64().expect("seq"))
            .collect();
        assert_eq!(seqs, (0..25).collect::<Vec<_>>(), "key-{k} in commit order");
    }
    let backlog = store.outbox_backlog().await.expect("backlog");
    assert_eq!(backlog.unsent, 200);
    assert_eq!(backlog.oldest_unsent, Some(clock.now_stamp()));

    let first_half: Vec<u64> = unsent[..100].iter().map(|m| m.position).collect();
    assert_eq!(store.mark_sent(&first_half).await.expect("mark"), 100);
    assert_eq!(store.mark_sent(&first_half).await.expect("mark again"), 0, "marking twice changes nothing");
    let rest = store.outbox_unsent(0, 1000).await.expect("outbox");
    assert_eq!(rest.first().map(|m| m.position), Some(unsent[100].position));
    // Positions with gaps between them, out of order: only those rows are marked.
    let scattered = vec![rest[4].position, rest[0].position, rest[2].position];
    assert_eq!(store.mark_sent(&scattered).await.expect("mark scattered"), 3);
    let rest_after: Vec<u64> =
        store.outbox_unsent(0, 1000).await.expect("outbox").iter().map(|m| m.position).collect();
    assert_eq!(rest_after.len(), 97);
    assert_eq!(&rest_after[..3], &[rest[1].position, rest[3].position, rest[5].position]);

    assert_eq!(store.prune_outbox(Duration::from_secs(60)).await.expect("prune"), 0, "within retention");
    clock.advance(Duration::from_secs(61));
    assert_eq!(store.prune_outbox(Duration::from_secs(60)).await.expect("prune"), 103);
    assert_eq!(store.outbox_unsent(0, 1000).await.expect("outbox").len(), 97, "unsent rows are never pruned");
    let envelopes = store
        .query(Statement::new("SELECT count(*) AS n FROM tessera_outbox_envelopes"))
        .await
        .expect("envelopes");
    assert_eq!(envelopes[0].int("n").expect("count"), 97, "a pruned row's envelope goes with it");
}

/// Migration 3 moved the outbox's envelopes into a table of their own. A database made before
/// it (envelopes in the outbox rows) keeps every message, sent or not, and relays on.
async fn a_database_from_before_the_envelope_split_keeps_its_outbox(fixture: Fixture) {
    let store = fixture.open().await;
    let ids = UuidV7Gen;
    let mut unit = store.begin();
    for seq in 0..5 {
        unit.send(&envelope(&ids, "key", seq)).expect("send");
    }
    unit.commit().await.expect("commit");
    let written = store.outbox_unsent(0, 10).await.expect("outbox");
    assert_eq!(store.mark_sent(&[written[0].position]).await.expect("mark"), 1);
    // Back to the schema of migration 2.
    let mut unit = store.begin();
    for sql in [
        "ALTER TABLE tessera_outbox ADD COLUMN envelope TEXT",
        "UPDATE tessera_outbox SET envelope =
           (SELECT e.envelope FROM tessera_outbox_envelopes e WHERE e.position = tessera_outbox.position)",
        "DROP TABLE tessera_outbox_envelopes",
        "DELETE FROM tessera_migrations WHERE scope = 'tessera.store' AND version = 3",
    ] {
        unit.execute(Statement::new(sql));
    }
    unit.commit().await.expect("undo migration 3");
    drop(store);

    let reopened = fixture.open().await;
    let unsent = reopened.outbox_unsent(0, 10).await.expect("outbox after migrating");
    assert_eq!(
        unsent.iter().map(|m| (m.position, m.envelope.id)).collect::<Vec<_>>(),
        written[1..].iter().map(|m| (m.position, m.envelope.id)).collect::<Vec<_>>(),
        "the unsent four, with their envelopes"
    );
    let kept = reopened
        .query(Statement::new("SELECT count(*) AS n FROM tessera_outbox_envelopes"))
        .await
        .expect("envelopes");
    assert_eq!(kept[0].int("n").expect("count"), 5, "the sent one's envelope is kept until it is pruned");
    let mut unit = reopened.begin();
    unit.send(&envelope(&ids, "key", 5)).expect("send");
    unit.commit().await.expect("commit after migrating");
    assert_eq!(reopened.outbox_unsent(0, 10).await.expect("outbox").len(), 5);
}

trait NowStamp {
    fn now_stamp(&self) -> Timestamp;
}

impl NowStamp for ManualClock {
    fn now_stamp(&self) -> Timestamp {
        tessera_kernel::Clock::now(self)
    }
}

async fn timers_fire_when_due_and_only_once(fixture: Fixture) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(5_000_000)));
    let store = fixture.open_with_clock(clock.clone()).await;
    let ids = UuidV7Gen;
    let timeout = envelope(&ids, "saga-1", 1);
    let cancelled = envelope(&ids, "saga-2", 1);
    let mut unit = store.begin();
    unit.schedule(&timeout, Timestamp::from_micros(6_000_000)).expect("schedule");
    unit.schedule(&cancelled, Timestamp::from_micros(6_000_000)).expect("schedule");
    unit.commit().await.expect("commit");
    let mut cancel = store.begin();
    cancel.cancel_timer(cancelled.id);
    cancel.commit().await.expect("cancel");

    assert!(store.due_timers(10).await.expect("due").is_empty(), "not yet due");
    clock.set(Timestamp::from_micros(6_000_000));
    let due = store.due_timers(10).await.expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].envelope, timeout);

    let firings: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut unit = store.begin();
                unit.fire_timer(timeout.id);
                unit.append(&stream("timeouts"), ExpectedVersion::Any, vec![event(&UuidV7Gen, 1)]);
                unit.commit().await
            })
        })
        .collect();
    let mut fired = 0;
    for firing in firings {
        match firing.await.expect("task") {
            Ok(_) => fired += 1,
            Err(StoreError::TimerNotPending(id)) => assert_eq!(id, timeout.id),
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!(fired, 1);
    assert_eq!(store.read_stream(&stream("timeouts"), 0).await.expect("read").len(), 1);
    clock.advance(Duration::from_secs(3600));
    assert!(
        store.due_timers(10).await.expect("due").is_empty(),
        "fired and cancelled timers never come back"
    );
}

/// A foreign transaction takes a position, then stays open while the store commits another
/// event. A reader that keeps reading by position must still see both, in order.
async fn a_reader_by_position_never_skips_an_event_that_commits_late(fixture: Fixture) {
    let store = fixture.open().await;
    let ids = UuidV7Gen;
    let held = HeldWriter::begin(&fixture, &MessageId::generate(&ids).to_string()).await;

    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while seen.len() < 2 && tokio::time::Instant::now() < deadline {
                for e in store.read_all(after, 100).await.expect("read all") {
                    after = e.position;
                    seen.push(e.stream.to_string());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut unit = store.begin();
            unit.append(&stream("later"), ExpectedVersion::NoStream, vec![event(&UuidV7Gen, 2)]);
            unit.commit().await
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!writer.is_finished(), "the later writer must wait for the held transaction");
    assert!(store.read_all(0, 10).await.expect("read").is_empty(), "nothing is visible yet");
    held.commit().await;
    writer.await.expect("task").expect("later commit");
    let seen = reader.await.expect("reader");
    assert_eq!(seen, vec!["held".to_owned(), "later".to_owned()], "the reader saw both, in order");
}

/// A raw transaction that writes an event the way the store's protocol says (under the write
/// lock), then holds it open.
enum HeldWriter {
    Sqlite(rusqlite::Connection),
    Postgres(tokio_postgres::Client),
}

impl HeldWriter {
    const INSERT: &str = "INSERT INTO tessera_events (stream_id, version, event_id, name, schema_version, payload, metadata, recorded_at)
                          VALUES ('held', 1, $1, 'test.Counted', 1, '{\"by\":1}', '{}', 0)";

    async fn begin(fixture: &Fixture, event_id: &str) -> Self {
        match fixture {
            Fixture::Sqlite(dir) => {
                let connection = rusqlite::Connection::open(dir.file("shop.db")).expect("open");
                connection.execute_batch("BEGIN IMMEDIATE").expect("begin");
                connection.execute(&Self::INSERT.replace("$1", "?1"), [event_id]).expect("insert");
                HeldWriter::Sqlite(connection)
            }
            Fixture::Postgres(db) => {
                let (client, connection) =
                    tokio_postgres::connect(db.url(), tokio_postgres::NoTls).await.expect("connect");
                tokio::spawn(connection);
                client.batch_execute("BEGIN").await.expect("begin");
                client
                    .execute("SELECT pg_advisory_xact_lock($1)", &[&tessera_store::POSTGRES_WRITE_LOCK])
                    .await
                    .expect("lock");
                client.execute(Self::INSERT, &[&event_id]).await.expect("insert");
                HeldWriter::Postgres(client)
            }
        }
    }

    async fn commit(self) {
        match self {
            HeldWriter::Sqlite(connection) => connection.execute_batch("COMMIT").expect("commit"),
            HeldWriter::Postgres(client) => client.batch_execute("COMMIT").await.expect("commit"),
        }
    }
}

async fn loading_starts_from_the_latest_snapshot(fixture: Fixture) {
    let store = fixture.open().await;
    let ids = UuidV7Gen;
    let s = stream("counter-1");
    let mut unit = store.begin();
    unit.append(&s, ExpectedVersion::NoStream, (1..=3).map(|n| event(&ids, n)).collect());
    unit.commit().await.expect("append");
    let (state, expected) = store.begin().load::<Counter>(&s).await.expect("load");
    assert_eq!((state.total, expected), (6, ExpectedVersion::Exact(3)));

    let mut unit = store.begin();
    unit.snapshot(&s, 3, state.to_snapshot().expect("state"));
    unit.append(&s, ExpectedVersion::Exact(3), vec![event(&ids, 4), event(&ids, 5)]);
    unit.commit().await.expect("snapshot");
    // An older snapshot never replaces a newer one.
    let mut stale = store.begin();
    stale.snapshot(&s, 1, "{\"total\":999,\"events\":1}".into());
    stale.commit().await.expect("stale snapshot");

    let slice = store.load_stream(&s).await.expect("slice");
    assert_eq!(slice.snapshot.as_ref().map(|snap| snap.version), Some(3));
    assert_eq!(slice.events.iter().map(|e| e.version).collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(slice.version(), Some(5));
    let (folded, expected) = store.begin().load::<Counter>(&s).await.expect("load");
    assert_eq!(folded, Counter { total: 15, events: 5 });
    assert_eq!(expected, ExpectedVersion::Exact(5));

    // The snapshot is read: a state that disagrees with the events shows through.
    let mut forged = store.begin();
    forged.snapshot(&s, 5, Counter { total: 1000, events: 5 }.to_snapshot().expect("state"));
    forged.commit().await.expect("forged snapshot");
    let (from_snapshot, _) = store.begin().load::<Counter>(&s).await.expect("load");
    assert_eq!(from_snapshot.total, 1000);
    // A snapshot of another shape's version, or one stamped with none, is never misread: the
    // stream is folded from its start.
    for other in [
        serde_json::json!({"snapshot_version": 2, "state": {"total": 2000, "events": 5}}).to_string(),
        serde_json::json!({"total": 3000, "events": 5}).to_string(),
    ] {
        let mut unit = store.begin();
        unit.append(&s, ExpectedVersion::Exact(slice_version(&store, &s).await), vec![event(&ids, 1)]);
        let at = slice_version(&store, &s).await + 1;
        unit.snapshot(&s, at, other);
        unit.commit().await.expect("snapshot of another version");
        let (replayed, expected) = store.begin().load::<Counter>(&s).await.expect("load");
        assert_eq!((replayed.events, expected), (at, ExpectedVersion::Exact(at)));
        assert_eq!(replayed.total, 15 + (at - 5), "folded from the first event: {replayed:?}");
    }
}

async fn slice_version(store: &Store, s: &StreamId) -> u64 {
    store.load_stream(s).await.expect("slice").version().expect("a stream")
}

async fn migrations_are_idempotent_and_edits_are_refused(fixture: Fixture) {
    let store = fixture.open().await;
    let mut unit = store.begin();
    unit.execute(Statement::new("INSERT INTO stock (sku, available) VALUES ($1, $2)").bind("kept").bind(3));
    unit.commit().await.expect("insert");
    drop(store);
    for _ in 0..2 {
        let reopened = fixture.open().await;
        let rows = reopened.query(Statement::new("SELECT sku, available FROM stock")).await.expect("query");
        assert_eq!(rows.len(), 1, "reopening keeps data and re-runs nothing");
        assert_eq!(rows[0].int("available").expect("int"), 3);
        let ledger = reopened
            .query(
                Statement::new("SELECT count(*) AS n FROM tessera_migrations WHERE scope = $1").bind("shop"),
            )
            .await
            .expect("ledger");
        assert_eq!(ledger[0].int("n").expect("count"), 1);
    }
    const EDITED: MigrationSet = MigrationSet {
        scope: "shop",
        migrations: &[Migration {
            version: 1,
            name: "stock",
            sqlite: "CREATE TABLE stock (sku TEXT PRIMARY KEY);",
            postgres: "CREATE TABLE stock (sku TEXT PRIMARY KEY);",
        }],
    };
    let error = Store::open(&fixture.config(), &[EDITED]).await.expect_err("edited migration");
    assert!(matches!(error, StoreError::Migration { version: 1, .. }), "{error}");
}

async fn the_last_unit_of_stock_is_sold_once_under_concurrent_orders(fixture: Fixture) {
    let store = fixture.open().await;
    let mut unit = store.begin();
    unit.execute(Statement::new("INSERT INTO stock (sku, available) VALUES ($1, $2)").bind("last").bind(1));
    unit.commit().await.expect("seed");
    let orders: Vec<_> = (0..24u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut unit = store.begin();
                unit.execute(
                    Statement::new(
                        "UPDATE stock SET available = available - 1 WHERE sku = $1 AND available >= 1",
                    )
                    .bind("last")
                    .expect_rows(1, "out_of_stock"),
                );
                unit.append(
                    &stream(&format!("reservation-{i}")),
                    ExpectedVersion::NoStream,
                    vec![event(&UuidV7Gen, i)],
                );
                unit.commit().await
            })
        })
        .collect();
    let mut sold = 0;
    for order in orders {
        match order.await.expect("task") {
            Ok(_) => sold += 1,
            Err(StoreError::Rejected { reason, .. }) => assert_eq!(reason, "out_of_stock"),
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!(sold, 1);
    let rows = store
        .query(Statement::new("SELECT available FROM stock WHERE sku = $1").bind("last"))
        .await
        .expect("q");
    assert_eq!(rows[0].int("available").expect("int"), 0);
    assert_eq!(store.read_all(0, 100).await.expect("all").len(), 1, "only the winner's reservation exists");
}

async fn checkpoints_and_global_reads_page_through_all_events(fixture: Fixture) {
    let store = fixture.open().await;
    let ids = DeterministicIdGen::new();
    for i in 0..5u64 {
        let mut unit = store.begin();
        unit.append(
            &stream(&format!("s-{}", i % 2)),
            ExpectedVersion::Any,
            vec![event(&ids, i), event(&ids, i)],
        );
        unit.commit().await.expect("append");
    }
    assert_eq!(store.checkpoint("reader").await.expect("checkpoint"), None);
    let mut after = 0;
    let mut total = 0;
    loop {
        let page = store.read_all(after, 3).await.expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.iter().all(|e| e.position > after));
        after = page.last().map_or(after, |e| e.position);
        total += page.len();
        let mut unit = store.begin();
        unit.checkpoint("reader", after);
        unit.commit().await.expect("checkpoint");
    }
    assert_eq!(total, 10);
    assert_eq!(store.checkpoint("reader").await.expect("checkpoint"), Some(after));
    assert_eq!(store.head_position().await.expect("head"), after);
    let s0 = store.read_stream(&stream("s-0"), 0).await.expect("s-0");
    assert_eq!(s0.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=6).collect::<Vec<_>>());
    assert_eq!(store.read_stream(&stream("s-0"), 4).await.expect("tail").len(), 2);
}

async fn own_table_constraints_surface_as_typed_errors(fixture: Fixture) {
    let store = fixture.open().await;
    let insert = || Statement::new("INSERT INTO stock (sku, available) VALUES ($1, $2)").bind("dup").bind(1);
    let mut unit = store.begin();
    unit.execute(insert());
    unit.commit().await.expect("first insert");
    let mut again = store.begin();
    again.execute(insert());
    assert!(matches!(again.commit().await, Err(StoreError::Constraint(_))));
    let mut negative = store.begin();
    negative.execute(Statement::new("UPDATE stock SET available = -1 WHERE sku = $1").bind("dup"));
    assert!(matches!(negative.commit().await, Err(StoreError::Constraint(_))));
    // The same outbox message twice is refused too: one message, one row.
    let message = envelope(&UuidV7Gen, "k", 1);
    let mut first = store.begin();
    first.send(&message).expect("send");
    first.commit().await.expect("first send");
    let mut second = store.begin();
    second.send(&message).expect("send");
    assert!(matches!(second.commit().await, Err(StoreError::Constraint(_))));
    assert_eq!(store.outbox_unsent(0, 10).await.expect("outbox").len(), 1);
}

/// Random batches of units, each with a random (often wrong) expected version, submitted
/// concurrently: every acknowledged unit is stored whole, every refused one not at all, and
/// each stream's versions run 1..=n without holes.
async fn random_units_commit_whole_or_not_at_all(fixture: Fixture) {
    let store = fixture.open().await;
    let cases = match fixture {
        Fixture::Sqlite(_) => 12,
        Fixture::Postgres(_) => 6,
    };
    let strategy = prop::collection::vec((0u8..4, prop::option::of(0u64..4), 1usize..4), 1..40);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    for round in 0..cases {
        let units = strategy.new_tree(&mut runner).expect("generate").current();
        let handles: Vec<_> = units
            .into_iter()
            .enumerate()
            .map(|(i, (stream_no, expected, count))| {
                let store = store.clone();
                tokio::spawn(async move {
                    let s = stream(&format!("p{round}-{stream_no}"));
                    let expected = expected.map_or(ExpectedVersion::Any, |v| {
                        if v == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(v) }
                    });
                    let tag = format!("r{round}u{i}");
                    let events = (0..count)
                        .map(|_| {
                            NewEvent::new(MessageId::generate(&UuidV7Gen), "test.Tagged", &tag)
                                .expect("event")
                        })
                        .collect();
                    let mut unit = store.begin();
                    unit.append(&s, expected, events);
                    (tag, count, unit.commit().await)
                })
            })
            .collect();
        let mut committed = std::collections::HashMap::new();
        for handle in handles {
            let (tag, count, result) = handle.await.expect("task");
            match result {
                Ok(_) => {
                    committed.insert(tag, count);
                }
                Err(StoreError::Conflict { .. }) => {
                    committed.insert(tag, 0);
                }
                Err(other) => panic!("unexpected: {other}"),
            }
        }
        for stream_no in 0..4 {
            let events = store.read_stream(&stream(&format!("p{round}-{stream_no}")), 0).await.expect("read");
            let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
            assert_eq!(versions, (1..=events.len() as u64).collect::<Vec<_>>(), "no holes in versions");
            for e in &events {
                let tag: String = e.decode().expect("tag");
                assert!(committed.get(&tag).copied().unwrap_or(0) > 0, "event of a refused unit {tag}");
            }
        }
        for (tag, count) in &committed {
            let stored = store
                .read_all(0, 100_000)
                .await
                .expect("all")
                .into_iter()
                .filter(|e| e.decode::<String>().ok().as_ref() == Some(tag))
                .count();
            assert_eq!(stored, *count, "unit {tag} stored whole or not at all");
        }
    }
}

/// Both writers cache the versions of the streams they appended to. Two stores on one database
/// (replicas of a service) take turns on one stream: each must judge its next append against the
/// other's last one, never against its own cache.
async fn a_replicas_append_is_seen_by_the_next_version_check(fixture: Fixture) {
    let (first, second) = (fixture.open().await, fixture.open().await);
    let s = stream("shared");
    let append = |store: &Store, expected: ExpectedVersion, n: u64| {
        let mut unit = store.begin();
        unit.append(&s, expected, vec![event(&UuidV7Gen, n)]);
        unit.commit()
    };
    append(&first, ExpectedVersion::NoStream, 1).await.expect("first writes version 1");
    append(&second, ExpectedVersion::Exact(1), 2).await.expect("second writes version 2");
    for (store, stale, current) in [(&first, 1, 2), (&second, 2, 3), (&first, 3, 4)] {
        match append(store, ExpectedVersion::Exact(stale), 0).await {
            Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, Some(current)),
            other => panic!("expected a conflict at version {current}, got {other:?}"),
        }
        let receipt = append(store, ExpectedVersion::Exact(current), current + 1).await.expect("append");
        assert_eq!(receipt.stream_versions, vec![(s.clone(), current + 1)]);
    }
}

/// The SQLite writer caches stream versions; a write by another connection must not leave it
/// judging appends against a stale version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_foreign_write_is_seen_by_the_next_version_check() {
    let fixture = Fixture::sqlite();
    let store = fixture.open().await;
    let s = stream("shared");
    let mut unit = store.begin();
    unit.append(&s, ExpectedVersion::NoStream, vec![event(&UuidV7Gen, 1)]);
    unit.commit().await.expect("first append");

    let Fixture::Sqlite(dir) = &fixture else { unreachable!("built as SQLite") };
    let foreign = rusqlite::Connection::open(dir.file("shop.db")).expect("open");
    foreign
        .execute(
            "INSERT INTO tessera_events (stream_id, version, event_id, name, schema_version, payload, metadata, recorded_at)
             VALUES ('shared', 2, ?1, 'test.Counted', 1, '{\"by\":2}', '{}', 0)",
            [MessageId::generate(&UuidV7Gen).to_string()],
        )
        .expect("foreign append");

    let mut stale = store.begin();
    stale.append(&s, ExpectedVersion::Exact(1), vec![event(&UuidV7Gen, 3)]);
    match stale.commit().await {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, Some(2)),
        other => panic!("expected a conflict at version 2, got {other:?}"),
    }
    let mut fresh = store.begin();
    fresh.append(&s, ExpectedVersion::Exact(2), vec![event(&UuidV7Gen, 3)]);
    assert_eq!(fresh.commit().await.expect("append at 2").stream_versions, vec![(s.clone(), 3)]);
}

/// A send writes the outbox row and its envelope with two statements (decision 0013). When the
/// second fails, the unit fails whole: no outbox row without its envelope reaches the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_send_whose_envelope_fails_leaves_no_outbox_row() {
    let fixture = Fixture::sqlite();
    let store = fixture.open().await;
    let mut unit = store.begin();
    unit.execute(Statement::new(
        "CREATE TRIGGER refuse_envelope BEFORE INSERT ON tessera_outbox_envelopes
         WHEN NEW.envelope LIKE '%refused%' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    ));
    unit.commit().await.expect("create the trigger");
    let ids = UuidV7Gen;
    let mut refused = envelope(&ids, "key", 0);
    refused.payload = serde_json::json!({ "note": "refused" });
    let accepted = envelope(&ids, "key", 1);
    let (mut first, mut second) = (store.begin(), store.begin());
    first.send(&refused).expect("send");
    second.send(&accepted).expect("send");
    let (first, second) = tokio::join!(first.commit(), second.commit());
    assert!(first.is_err(), "the unit whose envelope was refused fails");
    second.expect("its neighbour commits");
    let ids: Vec<String> = store
        .query(Statement::new("SELECT message_id FROM tessera_outbox"))
        .await
        .expect("outbox")
        .iter()
        .map(|row| row.text("message_id").expect("id").to_owned())
        .collect();
    assert_eq!(ids, vec![accepted.id.to_string()], "only the neighbour's row is in the outbox");
}
