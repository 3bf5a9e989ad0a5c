//! The facts support's invariants need, read from its own store: its replicas of the orders
//! it has heard of. `tessera verify` hands them to the shared checker (`tessera-invariants`);
//! nothing else reads support's tables.

use tessera_store::{Statement, Store};

/// Support's copy of one order's public status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaFact {
    pub order_id: String,
    pub status: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SupportFacts {
    pub replicas: Vec<ReplicaFact>,
}

/// Reads support's facts from its store, as they are now.
pub async fn read(store: &Store) -> tessera_store::Result<SupportFacts> {
    let replicas = store
        .query(Statement::new("SELECT order_id, status FROM order_replicas"))
        .await?
        .iter()
        .map(|row| {
            Ok(ReplicaFact {
                order_id: row.text("order_id")?.to_owned(),
                status: row.text("status")?.to_owned(),
            })
        })
        .collect::<tessera_store::Result<_>>()?;
    Ok(SupportFacts { replicas })
}
