//! Closed tickets' messages erased once their retention has passed, on a manual clock and a
//! real store (a SQLite file; PostgreSQL too when `TESSERA_TEST_POSTGRES` names a server) that
//! is closed and reopened in between (a restart).

use std::sync::Arc;
use std::time::Duration;

use tessera_kernel::{Clock, ManualClock, Timestamp, UuidV7Gen};
use tessera_runtime::audit_archive::{ArchivePolicy, archive_audit, verify_archived};
use tessera_store::{SqliteOptions, Store, StoreConfig};
use tessera_support::domain::MessageRetention;
use tessera_support::retention::{self, ERASE_ACTION, RetentionSettings, Sweep};
use tessera_support::{AttachmentStore, Author, Support};
use tessera_testkit::TempDataDir;
use tessera_web::token::Actor;
use uuid::Uuid;

const DAY: Duration = Duration::from_secs(86_400);

async fn start(
    config: &StoreConfig,
    clock: &Arc<ManualClock>,
    vault: &Arc<dyn tessera_vault::Sealer>,
) -> Support {
    let store = Store::open_with_clock(config, &tessera_support::migrations(), clock.clone())
        .await
        .expect("support store");
    Support::new(store, vault.clone(), AttachmentStore::in_memory(), Arc::new(UuidV7Gen), clock.clone())
}

fn actor() -> Actor {
    Actor::system("test")
}

/// A ticket with a customer's message and support's answer, closed now; and one left open.
async fn tickets(support: &Support) -> (Uuid, Uuid) {
    let customer = Uuid::now_v7();
    let closed =
        support.open(customer, None, "Broken mug", "It arrived in pieces", &actor()).await.expect("open");
    support.reply(closed, Author::Support, "A new one is on its way", &actor()).await.expect("reply");
    let open = support.open(customer, None, "Late tea", "Still waiting", &actor()).await.expect("open");
    support.close(closed, &actor()).await.expect("close");
    (closed, open)
}

fn sqlite(dir: &TempDataDir) -> StoreConfig {
    StoreConfig::Sqlite { path: dir.file("support.db"), options: SqliteOptions::default() }
}

#[tokio::test]
async fn on_sqlite_a_closed_tickets_messages_are_kept_for_the_declared_days_then_erased_once_across_a_restart()
 {
    let dir = TempDataDir::new();
    kept_then_erased_once_across_a_restart(&sqlite(&dir)).await;
}

#[tokio::test]
async fn on_postgres_a_closed_tickets_messages_are_kept_for_the_declared_days_then_erased_once_across_a_restart()
 {
    let Some(database) = tessera_testkit::TempPostgres::create().await else { return };
    let options = tessera_store::PostgresOptions { create_database: false, ..Default::default() };
    kept_then_erased_once_across_a_restart(&StoreConfig::Postgres {
        url: database.url().to_owned(),
        options,
    })
    .await;
}

async fn kept_then_erased_once_across_a_restart(config: &StoreConfig) {
    let vault = tessera_testkit::temporary_vault().await;
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_800_000_000_000_000)));
    let support = start(config, &clock, &vault).await;
    let (closed, open) = tickets(&support).await;
    let closed_at = clock.now();

    clock.advance(DAY * 89);
    assert_eq!(support.erase_due_messages().await.expect("sweep"), Sweep::default());
    assert_eq!(support.messages(closed).await.expect("messages").len(), 2, "kept at day 89");
    let status = retention::status(support.store(), None, clock.now()).await.expect("status");
    assert_eq!((status.due_tickets, status.due_messages), (0, 0));
    assert_eq!(status.next_due_at, Some(closed_at.saturating_add(DAY * 90)));
    assert_eq!(status.declared, "90 day(s) after the ticket is closed");

    // A restart: nothing of the job lived in memory, so nothing is lost.
    drop(support);
    let support = start(config, &clock, &vault).await;
    clock.advance(DAY + Duration::from_secs(1));
    let status = retention::status(support.store(), None, clock.now()).await.expect("status");
    assert_eq!((status.due_tickets, status.due_messages), (1, 2));

    assert_eq!(support.erase_due_messages().await.expect("sweep"), Sweep { tickets: 1, messages: 2 });
    assert!(support.messages(closed).await.expect("messages").is_empty(), "erased after day 90");
    let ticket = support.ticket(closed).await.expect("ticket").expect("the ticket stays");
    assert_eq!(ticket.subject, "Broken mug");
    assert_eq!(support.messages(open).await.expect("messages").len(), 1);

    // Idempotent: a second sweep finds nothing, and the run is on record.
    assert_eq!(support.erase_due_messages().await.expect("sweep"), Sweep::default());
    let status = retention::status(support.store(), None, clock.now()).await.expect("status");
    assert_eq!((status.due_tickets, status.last_erased, status.total_erased), (0, 0, 2));
    assert_eq!(status.last_run_at, Some(clock.now()));

    let audits = support.store().audit_records(None, 1000).await.expect("audit");
    let erasures: Vec<_> = audits.iter().filter(|a| a.record.action == ERASE_ACTION).collect();
    assert_eq!(erasures.len(), 1, "one audit record for one erasure");
    assert_eq!(erasures[0].record.resource, format!("ticket/{closed}"));
    assert_eq!(
        (erasures[0].record.actor.as_str(), erasures[0].record.role.as_str()),
        ("retention", "system")
    );
    assert!(support.store().verify_audit(None).await.expect("verify").ok);

    // The audit records of the ticket's life, older than 30 days, archived: the chain still
    // verifies from its anchor, and the archived segments against theirs.
    let archive: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let policy = ArchivePolicy { older_than: DAY * 30, segment_records: 2 };
    let anchors = archive_audit("support", support.store(), &archive, policy).await.expect("archive");
    assert_eq!(anchors.last().map(|a| a.last_index), Some(3), "open, reply, open, close archived");
    let remaining = support.store().verify_audit(None).await.expect("verify");
    assert!(remaining.ok && remaining.records == 1, "the erasure's record stays: {remaining:?}");
    let segments = verify_archived(support.store(), &archive).await.expect("verify archived");
    assert!(segments.len() == 2 && segments.iter().all(|s| s.ok()), "{segments:?}");

    // An open ticket's messages are never due.
    clock.advance(DAY * 3650);
    assert_eq!(support.erase_due_messages().await.expect("sweep"), Sweep::default());
    assert_eq!(support.messages(open).await.expect("messages").len(), 1);
}

#[tokio::test]
async fn a_setting_replaces_the_declared_retention() {
    let dir = TempDataDir::new();
    let vault = tessera_testkit::temporary_vault().await;
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_800_000_000_000_000)));
    let settings = RetentionSettings { messages: MessageRetention::days(30), ..RetentionSettings::default() };
    let support = start(&sqlite(&dir), &clock, &vault).await.with_retention(settings);
    let (closed, _) = tickets(&support).await;

    clock.advance(DAY * 29);
    assert_eq!(support.erase_due_messages().await.expect("sweep").tickets, 0);
    clock.advance(DAY);
    assert_eq!(support.erase_due_messages().await.expect("sweep").tickets, 1);
    assert!(support.messages(closed).await.expect("messages").is_empty());
    let status = retention::status(support.store(), None, clock.now()).await.expect("status");
    assert_eq!(status.applied, "30 day(s) after the ticket is closed", "the report shows what ran");
}
