//! The hash-chained audit trail, on both backends: records are appended in the unit's own
//! transaction with dense indexes even under concurrent writers (and replicas), a failed unit
//! leaves no record and no gap, and tampering with the table by raw SQL is found at the index
//! where it happened. The PostgreSQL half needs `TESSERA_TEST_POSTGRES`.

use std::collections::BTreeSet;

use tessera_kernel::{MessageId, StreamId, Timestamp, UuidV7Gen};
use tessera_store::{
    AuditRecord, ChainBreak, ExpectedVersion, Migration, MigrationSet, NewEvent, PostgresOptions,
    SqliteOptions, Statement, Store, StoreConfig, StoreError, StoredAuditRecord,
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

enum Fixture {
    Sqlite(TempDataDir),
    Postgres(TempPostgres),
}

impl Fixture {
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

    /// A store handle; a second call is a second writer on the same database (a replica).
    async fn open(&self) -> Store {
        Store::open(&self.config(), &[SHOP]).await.expect("open store")
    }
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Fixture::Sqlite(tessera_testkit::TempDataDir::new())).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(db) = tessera_testkit::TempPostgres::create().await else { return };
                    super::$test(super::Fixture::Postgres(db)).await;
                }
            )*
        }
    };
}

on_both_backends!(
    concurrent_audited_units_from_two_writers_form_one_dense_chain_that_verifies,
    failed_units_in_a_group_commit_leave_no_audit_record_and_consume_no_index,
    an_edited_field_is_found_at_its_index,
    a_deleted_middle_row_is_found_at_its_index,
    swapped_contents_of_two_rows_are_found_at_the_first_of_them,
    a_forged_row_inserted_in_the_middle_is_found_at_its_index,
    a_forged_row_appended_at_the_end_is_found_at_its_index,
    a_deleted_tail_is_found_against_the_previously_published_head,
    a_tail_rewritten_after_truncation_is_found_at_the_published_head,
    records_page_in_chain_order_and_survive_a_reopen,
    an_existing_database_gets_the_audit_table_on_open,
);

fn record(actor: &str, n: u64) -> AuditRecord {
    AuditRecord {
        actor: actor.to_owned(),
        role: "customer".into(),
        action: "order.place".into(),
        resource: format!("order/{n}"),
        outcome: "ok".into(),
        trace_id: n.is_multiple_of(2).then(|| format!("trace-{n}")),
        at: Timestamp::from_micros(1_700_000_000_000_000 + n),
    }
}

fn event(n: u64) -> NewEvent {
    NewEvent::new(MessageId::generate(&UuidV7Gen), "test.Counted", &n).expect("serialise")
}

fn stream(name: &str) -> StreamId {
    StreamId::parse(name).expect("valid stream id")
}

/// Commits `n` units one after another, each with one audit record.
async fn chain_of(store: &Store, n: u64) {
    for i in 0..n {
        let mut unit = store.begin();
        unit.audit(record(&format!("user-{i}"), i));
        unit.commit().await.expect("audited unit");
    }
}

async fn all_records(store: &Store) -> Vec<StoredAuditRecord> {
    store.audit_records(None, 100_000).await.expect("audit records")
}

/// Raw SQL through the store's own writer, as an intruder with database access would.
async fn tamper(store: &Store, statements: Vec<Statement>) {
    let mut unit = store.begin();
    for statement in statements {
        unit.execute(statement);
    }
    unit.commit().await.expect("tampering statements");
}

async fn assert_broken_at(store: &Store, head: Option<(u64, [u8; 32])>, index: u64, problem: ChainBreak) {
    let verification = store.verify_audit(head).await.expect("verify");
    assert!(!verification.ok, "{verification:?}");
    assert_eq!(verification.first_bad_index, Some(index), "{verification:?}");
    assert_eq!(verification.problem, Some(problem), "{verification:?}");
}

async fn concurrent_audited_units_from_two_writers_form_one_dense_chain_that_verifies(fixture: Fixture) {
    let stores = [fixture.open().await, fixture.open().await];
    let tasks: Vec<_> = (0..240u64)
        .map(|i| {
            let store = stores[(i % 2) as usize].clone();
            tokio::spawn(async move {
                let mut unit = store.begin();
                unit.append(&stream(&format!("c-{i}")), ExpectedVersion::NoStream, vec![event(i)]);
                unit.audit(record(&format!("user-{i}"), i));
                unit.commit().await.unwrap_or_else(|e| panic!("unit {i}: {e}"));
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let records = all_records(&stores[0]).await;
    assert_eq!(records.iter().map(|r| r.index).collect::<Vec<_>>(), (0..240).collect::<Vec<_>>());
    let actors: BTreeSet<&str> = records.iter().map(|r| r.record.actor.as_str()).collect();
    assert_eq!(actors.len(), 240, "every unit's record is there once");
    let head = stores[1].audit_head().await.expect("head");
    assert_eq!(head, records.last().map(|r| (r.index, r.hash)));
    let verification = stores[1].verify_audit(head).await.expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.records, 240);
}

async fn failed_units_in_a_group_commit_leave_no_audit_record_and_consume_no_index(fixture: Fixture) {
    let store = fixture.open().await;
    let mut taken = store.begin();
    taken.append(&stream("taken"), ExpectedVersion::NoStream, vec![event(0)]);
    taken.commit().await.expect("taken stream");
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut unit = store.begin();
                unit.audit(record(&format!("user-{i}"), i));
                match i % 4 {
                    // Refused by a statement of the unit's own, after its audit record was
                    // written: its savepoint must take the record back.
                    0 => {
                        unit.execute(
                            Statement::new("UPDATE stock SET available = 0 WHERE sku = $1")
                                .bind("none")
                                .expect_rows(1, "missing"),
                        );
                    }
                    // Refused by a version check.
                    1 => {
                        unit.append(&stream("taken"), ExpectedVersion::NoStream, vec![event(i)]);
                    }
                    _ => {
                        unit.append(&stream(&format!("f-{i}")), ExpectedVersion::NoStream, vec![event(i)]);
                    }
                }
                (i, unit.commit().await)
            })
        })
        .collect();
    let mut committed = BTreeSet::new();
    for task in tasks {
        let (i, result) = task.await.expect("task");
        match i % 4 {
            0 => assert!(matches!(result, Err(StoreError::Rejected { .. })), "unit {i}: {result:?}"),
            1 => assert!(matches!(result, Err(StoreError::Conflict { .. })), "unit {i}: {result:?}"),
            _ => {
                result.unwrap_or_else(|e| panic!("unit {i}: {e}"));
                committed.insert(format!("user-{i}"));
            }
        }
    }
    let records = all_records(&store).await;
    assert_eq!(records.len(), 100);
    assert_eq!(records.iter().map(|r| r.index).collect::<Vec<_>>(), (0..100).collect::<Vec<_>>());
    let actors: BTreeSet<String> = records.iter().map(|r| r.record.actor.clone()).collect();
    assert_eq!(actors, committed, "exactly the committed units' records");
    let verification = store.verify_audit(store.audit_head().await.expect("head")).await.expect("verify");
    assert!(verification.ok, "{verification:?}");
}

async fn an_edited_field_is_found_at_its_index(fixture: Fixture) {
    let store = fixture.open().await;
    chain_of(&store, 10).await;
    assert!(store.verify_audit(None).await.expect("verify").ok);
    tamper(&store, vec![Statement::new("UPDATE tessera_audit SET outcome = 'denied' WHERE idx = 4")]).await;
    assert_broken_at(&store, None, 4, ChainBreak::HashMismatch).await;
}

async fn a_deleted_middle_row_is_found_at_its_index(fixture: Fixture) {
    let store = fixture.open().await;
    chain_of(&store, 10).await;
    tamper(&store, vec![Statement::new("DELETE FROM tessera_audit WHERE idx = 5")]).await;
    assert_broken_at(&store, None, 5, ChainBreak::UnexpectedIndex { found: 6 }).await;
}

async fn swapped_contents_of_two_rows_are_found_at_the_first_of_them(fixture: Fixture) {
    let store = fixture.open().await;
    chain_of(&store, 10).await;
    let records = all_records(&store).await;
    let rewrite = |index: u64, from: &StoredAuditRecord| {
        Statement::new(
            "UPDATE tessera_audit SET at = $1, actor = $2, role = $3, action = $4, resource = $5,
             outcome = $6, trace_id = $7, hash = $8 WHERE idx = $9",
        )
        .bind(i64::try_from(from.record.at.as_micros()).expect("fits"))
        .bind(from.record.actor.as_str())
        .bind(from.record.role.as_str())
        .bind(from.record.action.as_str())
        .bind(from.record.resource.as_str())
        .bind(from.record.outcome.as_str())
        .bind(from.record.trace_id.clone())
        .bind(from.hash.to_vec())
        .bind(i64::try_from(index).expect("fits"))
        .expect_rows(1, "row to rewrite")
    };
    tamper(&store, vec![rewrite(3, &records[7]), rewrite(7, &records[3])]).await;
    assert_broken_at(&store, None, 3, ChainBreak::HashMismatch).await;
}

async fn a_forged_row_inserted_in_the_middle_is_found_at_its_index(fixture: Fixture) {
    let store = fixture.open().await;
    chain_of(&store, 10).await;
    let forged = record("intruder", 99);
    tamper(
        &store,
        vec![
            // Two steps, so that no intermediate index collides with the primary key.
            Statement::new("UPDATE tessera_audit SET idx = idx + 100 WHERE idx >= 6"),
            Statement::new("UPDATE tessera_audit SET idx = idx - 99 WHERE idx >= 100"),
            Statement::new(
                "INSERT INTO tessera_audit (idx, at, actor, role, action, resource, outcome, trace_id, hash)
                 VALUES (6, $1, $2, $3, $4, $5, $6, NULL, $7)",
            )
            .bind(i64::try_from(forged.at.as_micros()).expect("fits"))
            .bind(forged.actor.as_str())
            .bind(forged.role.as_str())
            .bind(forged.action.as_str())
            .bind(forged.resource.as_str())
            .bind(forged.outcome.as_str())
            .bind(vec![0xAB_u8; 32]),
        ],
    )
    .await;
    assert_eq!(all_records(&store).await.len(), 11);
    assert_broken_at(&store, None, 6, ChainBreak::HashMismatch).await;
}

async fn a_forged_row_appended_at_the_end_is_found_at_its_index(fixture: Fixture) {
    let store = fixture.open().await;
    chain_of(&store, 10).await;
    tamper(
        &store,
        vec![
            Statement::new(
                "INSERT INTO tessera_audit (idx, at, actor, role, action, resource, outcome, trace_id, hash)
                 VALUES (10, 0, 'intruder', 'admin', 'customer.read', 'customer/1', 'ok', NULL, $1)",
            )
            .bind(vec![0_u8; 32]),
        ],
    )
    .await;
    assert_broken_at(&store, None, 10, ChainBreak::HashMismatch).await;
}

async fn a_deleted_tail_is_found_against_the_previously_published_head(fixture: Fixture) {
    let store = fixture.open().await;
    chain_of(&store, 10).await;
    let published = store.audit_head().await.expect("head");
    assert_eq!(published.map(|(index, _)| index), Some(9));
    tamper(&store, vec![Statement::new("DELETE FROM tessera_audit WHERE idx >= 7")]).await;
    assert!(store.verify_audit(None).await.expect("verify").ok, "a shorter chain alone looks intact");
    assert_broken_at(&store, published, 7, ChainBreak::Truncated { head: 9 }).await;
}

async fn a_tail_rewritten_after_truncation_is_found_at_the_published_head(fixture: Fixture) {
    let store = fixture.open().await;
    chain_of(&store, 10).await;
    let published = store.audit_head().await.expect("head");
    tamper(&store, vec![Statement::new("DELETE FROM tessera_audit WHERE idx >= 7")]).await;
    // The writer links new records to whatever the table's last row is now.
    chain_of(&store, 5).await;
    assert!(store.verify_audit(None).await.expect("verify").ok);
    assert_broken_at(&store, published, 9, ChainBreak::HeadMismatch).await;
}

async fn records_page_in_chain_order_and_survive_a_reopen(fixture: Fixture) {
    let store = fixture.open().await;
    assert_eq!(store.audit_head().await.expect("empty head"), None);
    assert!(store.verify_audit(None).await.expect("verify empty").ok);
    chain_of(&store, 25).await;
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.audit_records(after, 10).await.expect("page");
        let Some(last) = page.last() else { break };
        after = Some(last.index);
        paged.extend(page);
    }
    assert_eq!(paged, all_records(&store).await);
    assert_eq!(paged[3].record, record("user-3", 3), "stored as given");
    let head = store.audit_head().await.expect("head");
    drop(store);
    let reopened = fixture.open().await;
    chain_of(&reopened, 1).await;
    let verification = reopened.verify_audit(head).await.expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.records, 26);
}

/// A database made before the audit table existed gets it (as the store's migration 2) on
/// the next open, with nothing else re-run.
async fn an_existing_database_gets_the_audit_table_on_open(fixture: Fixture) {
    let store = fixture.open().await;
    tamper(
        &store,
        vec![
            Statement::new("DROP TABLE tessera_audit"),
            Statement::new("DELETE FROM tessera_migrations WHERE scope = 'tessera.store' AND version = 2"),
        ],
    )
    .await;
    drop(store);
    let reopened = fixture.open().await;
    let applied = reopened
        .query(Statement::new(
            "SELECT version FROM tessera_migrations WHERE scope = 'tessera.store' ORDER BY version",
        ))
        .await
        .expect("ledger");
    assert_eq!(applied.iter().map(|r| r.int("version").expect("int")).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    chain_of(&reopened, 3).await;
    assert!(reopened.verify_audit(reopened.audit_head().await.expect("head")).await.expect("verify").ok);
}
