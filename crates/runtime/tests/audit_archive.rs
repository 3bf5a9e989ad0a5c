//! The old part of an audit chain archived to an object store on a manual clock: the chain
//! left in the table verifies from its newest anchor, the archived segments verify against
//! their anchors, and tampering with either is found where it was done. On SQLite, and on
//! PostgreSQL too when `TESSERA_TEST_POSTGRES` names a server.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use tessera_kernel::{Clock, ManualClock, Timestamp};
use tessera_runtime::audit_archive::{ArchivePolicy, archive_audit, verify_archived};
use tessera_store::{AuditRecord, ChainBreak, SqliteOptions, Statement, Store, StoreConfig};
use tessera_testkit::TempDataDir;

const DAY: Duration = Duration::from_secs(86_400);

fn sqlite(dir: &TempDataDir) -> StoreConfig {
    StoreConfig::Sqlite { path: dir.file("support.db"), options: SqliteOptions::default() }
}

async fn store(config: &StoreConfig, clock: &Arc<ManualClock>) -> Store {
    Store::open_with_clock(config, &[], clock.clone()).await.expect("store")
}

async fn append(store: &Store, clock: &ManualClock, n: u64) {
    for i in 0..n {
        let mut unit = store.begin();
        unit.audit(AuditRecord {
            actor: format!("user-{i}"),
            role: "customer".into(),
            action: "ticket.read".into(),
            resource: format!("ticket/{i}"),
            outcome: "ok".into(),
            trace_id: None,
            at: clock.now(),
        });
        unit.commit().await.expect("commit");
        clock.advance(Duration::from_secs(1));
    }
}

fn policy() -> ArchivePolicy {
    ArchivePolicy { older_than: DAY * 365, segment_records: 10 }
}

/// 25 records a year and more ago, 3 recent ones; two full segments archived.
async fn archived(config: &StoreConfig) -> (Arc<ManualClock>, Store, Arc<dyn ObjectStore>) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_800_000_000_000_000)));
    let store = store(config, &clock).await;
    append(&store, &clock, 25).await;
    clock.advance(DAY * 400);
    append(&store, &clock, 3).await;
    let archive: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    // An orphan of a run that wrote its object and stopped before sealing: overwritten.
    archive.put(&Path::from(tessera_audit_key(0, 9)), b"garbage".to_vec().into()).await.expect("put");
    let anchors = archive_audit("support", &store, &archive, policy()).await.expect("archive");
    assert_eq!(anchors.iter().map(|a| (a.first_index, a.last_index)).collect::<Vec<_>>(), [(0, 9), (10, 19)]);
    (clock, store, archive)
}

fn tessera_audit_key(first: u64, last: u64) -> String {
    format!("audit/support/{first:020}-{last:020}.jsonl")
}

#[tokio::test]
async fn on_sqlite_an_archived_chain_verifies_from_its_anchor_and_its_segments_against_theirs() {
    let dir = TempDataDir::new();
    archived_chain_verifies(&sqlite(&dir)).await;
}

#[tokio::test]
async fn on_postgres_an_archived_chain_verifies_from_its_anchor_and_its_segments_against_theirs() {
    let Some(database) = tessera_testkit::TempPostgres::create().await else { return };
    let options = tessera_store::PostgresOptions { create_database: false, ..Default::default() };
    archived_chain_verifies(&StoreConfig::Postgres { url: database.url().to_owned(), options }).await;
}

async fn archived_chain_verifies(config: &StoreConfig) {
    let (clock, store, archive) = archived(config).await;
    let remaining = store.verify_audit(None).await.expect("verify");
    assert!(remaining.ok, "{remaining:?}");
    assert_eq!(remaining.records, 8, "records 20 to 27 stay");
    let checks = verify_archived(&store, &archive).await.expect("verify archived");
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c.ok()), "{checks:?}");
    assert_eq!(checks[1].verification.records, 10);

    // Idempotent: nothing more is old enough to fill a segment, across a restart too.
    drop(store);
    let store = self::store(config, &clock).await;
    assert!(archive_audit("support", &store, &archive, policy()).await.expect("archive").is_empty());
    // New records still link to the head that stayed.
    append(&store, &clock, 2).await;
    assert!(store.verify_audit(None).await.expect("verify").ok);
}

#[tokio::test]
async fn a_tampered_archived_segment_is_named_with_its_index() {
    let dir = TempDataDir::new();
    let (_clock, store, archive) = archived(&sqlite(&dir)).await;
    let key = Path::from(tessera_audit_key(10, 19));
    let text = archive.get(&key).await.expect("get").bytes().await.expect("bytes");
    let tampered = String::from_utf8(text.to_vec()).expect("utf-8").replace("user-13\"", "user-X\"");
    archive.put(&key, tampered.into_bytes().into()).await.expect("put");
    let checks = verify_archived(&store, &archive).await.expect("verify archived");
    assert!(checks[0].ok());
    assert!(!checks[1].ok());
    assert_eq!(checks[1].anchor.object_key, tessera_audit_key(10, 19));
    assert_eq!(checks[1].verification.first_bad_index, Some(13));
    assert_eq!(checks[1].verification.problem, Some(ChainBreak::HashMismatch));

    archive.delete(&Path::from(tessera_audit_key(0, 9))).await.expect("delete");
    let checks = verify_archived(&store, &archive).await.expect("verify archived");
    assert!(checks[0].problem.as_deref().is_some_and(|p| p.contains("cannot read")), "{checks:?}");
}

#[tokio::test]
async fn a_tampered_or_missing_record_after_the_anchor_is_named_with_its_index() {
    let dir = TempDataDir::new();
    let (_clock, store, _archive) = archived(&sqlite(&dir)).await;
    let mut unit = store.begin();
    unit.execute(Statement::new("UPDATE tessera_audit SET actor = 'someone' WHERE idx = 22"));
    unit.commit().await.expect("tamper");
    let verification = store.verify_audit(None).await.expect("verify");
    assert_eq!(
        (verification.first_bad_index, verification.problem),
        (Some(22), Some(ChainBreak::HashMismatch))
    );

    let mut unit = store.begin();
    unit.execute(Statement::new("DELETE FROM tessera_audit WHERE idx = 20"));
    unit.commit().await.expect("delete");
    let verification = store.verify_audit(None).await.expect("verify");
    assert_eq!(verification.first_bad_index, Some(20), "the record right after the anchor");
    assert_eq!(verification.problem, Some(ChainBreak::UnexpectedIndex { found: 21 }));
}
