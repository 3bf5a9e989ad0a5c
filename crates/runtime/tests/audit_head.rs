//! A node announces each service's audit head through the outbox when it moves, and only then.

use std::sync::Arc;
use std::time::Duration;

use tessera_bus::InProcessTransport;
use tessera_kernel::Timestamp;
use tessera_runtime::{AUDIT_HEAD, Node, NodeOptions, Service, Subscription, Task};
use tessera_store::{AuditRecord, SqliteOptions, Statement, Store, StoreConfig};
use tessera_testkit::TempDataDir;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;

struct Quiet {
    store: Store,
}

impl Service for Quiet {
    fn name(&self) -> &'static str {
        "quiet"
    }
    fn store(&self) -> &Store {
        &self.store
    }
    fn routes(&self) -> OpenApiRouter {
        OpenApiRouter::new()
    }
    fn subscriptions(&self) -> Vec<Subscription> {
        Vec::new()
    }
    fn tasks(&self, _stop: watch::Receiver<bool>) -> Vec<Task> {
        Vec::new()
    }
}

async fn audit(store: &Store, action: &str) {
    let mut unit = store.begin();
    unit.audit(AuditRecord {
        actor: "tester".into(),
        role: "system".into(),
        action: action.into(),
        resource: "thing/1".into(),
        outcome: "ok".into(),
        trace_id: None,
        at: Timestamp::from_micros(1),
    });
    unit.commit().await.expect("commit");
}

async fn announced(store: &Store) -> Vec<serde_json::Value> {
    let rows = store
        .query(
            Statement::new("SELECT e.envelope FROM tessera_outbox o JOIN tessera_outbox_envelopes e ON e.position = o.position
                 WHERE o.name = $1 ORDER BY o.position")
                .bind(AUDIT_HEAD),
        )
        .await
        .expect("outbox");
    rows.iter()
        .map(|row| {
            serde_json::from_str::<serde_json::Value>(row.text("envelope").expect("text")).expect("json")
        })
        .map(|envelope| envelope["payload"].clone())
        .collect()
}

#[tokio::test]
async fn the_audit_head_is_announced_when_it_moves() {
    let dir = TempDataDir::new();
    let config = StoreConfig::Sqlite { path: dir.file("quiet.db"), options: SqliteOptions::default() };
    let store = Store::open(&config, &[tessera_bus::MIGRATIONS]).await.expect("store");
    audit(&store, "first").await;
    let options = NodeOptions { audit_head_every: Duration::from_millis(50), ..NodeOptions::default() };
    let node = Node::start(
        vec![Arc::new(Quiet { store: store.clone() })],
        Arc::new(InProcessTransport::new()),
        options,
    )
    .expect("node");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let heads = announced(&store).await;
    assert_eq!(heads.len(), 1, "once, however many rounds pass: {heads:?}");
    let (index, hash) = store.audit_head().await.expect("head").expect("a head");
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(heads[0], serde_json::json!({"service": "quiet", "index": index, "hash": hex}));

    audit(&store, "second").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let heads = announced(&store).await;
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert_eq!(heads[1]["index"], 1);
    node.shutdown(Duration::from_secs(5)).await;
}
