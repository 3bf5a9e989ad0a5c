//! The gateway as a subscriber of inventory's events: each one about a product empties that
//! product's entries and the lists. It runs in the runtime like a service with no routes, on
//! the gateway's own store (its inbox), so it resumes where it stopped after a restart.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tessera_bus::{Handler, HandlerError};
use tessera_kernel::{Envelope, Timestamp};
use tessera_runtime::{Service, Subscription, Task};
use tessera_store::{Store, UnitOfWork};
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;

use super::cache::{Catalogue, settle_owed_until};
use super::entry::groups_for;

/// How often invalidations a failed backend could not take are tried again.
const SETTLE_EVERY: Duration = Duration::from_millis(250);

#[derive(Clone, Debug)]
pub struct CatalogueInvalidation {
    catalogue: Arc<Catalogue>,
    store: Store,
}

impl CatalogueInvalidation {
    /// `store` is the gateway's (opened with [`crate::storage::migrations`]).
    pub fn new(catalogue: Arc<Catalogue>, store: Store) -> Self {
        Self { catalogue, store }
    }
}

#[async_trait]
impl Handler for CatalogueInvalidation {
    /// Only the events that change what a product read shows.
    fn wants(&self, message: &Envelope) -> bool {
        matches!(
            message.name.as_str(),
            "inventory.ProductCreated" | "inventory.ProductUpdated" | "inventory.StockChanged"
        )
    }

    async fn handle(&self, message: &Envelope, _unit: &mut UnitOfWork) -> Result<(), HandlerError> {
        // Every inventory event about a product names its sku; commands and replies do not
        // change what a product read shows.
        let Some(sku) = message.payload.get("sku").and_then(|sku| sku.as_str()) else {
            return Ok(());
        };
        if !matches!(
            message.name.as_str(),
            "inventory.ProductCreated" | "inventory.ProductUpdated" | "inventory.StockChanged"
        ) {
            return Ok(());
        }
        self.catalogue.invalidate(groups_for(sku)).await;
        let committed = message.at.wall().as_micros();
        let now = Timestamp::from_system_time(std::time::SystemTime::now()).as_micros();
        metrics::histogram!("tessera_gateway_cache_staleness_seconds")
            .record(now.saturating_sub(committed) as f64 / 1e6);
        Ok(())
    }
}

impl Service for CatalogueInvalidation {
    fn name(&self) -> &'static str {
        crate::config::SERVICE
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn routes(&self) -> OpenApiRouter {
        OpenApiRouter::new()
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        vec![Subscription { source: "inventory", handler: Arc::new(self.clone()) }]
    }

    fn tasks(&self, stop: watch::Receiver<bool>) -> Vec<Task> {
        vec![Box::pin(settle_owed_until(self.catalogue.clone(), SETTLE_EVERY, stop))]
    }
}
