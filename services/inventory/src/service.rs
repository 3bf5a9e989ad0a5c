//! Inventory as the runtime runs it: its routes, and the order sagas' commands from `orders`.

use std::sync::Arc;

use tessera_kernel::{Clock, HybridClock, IdGen};
use tessera_runtime::{Service, Subscription, Task};
use tessera_store::Store;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;

use crate::Inventory;

#[derive(Clone, Debug)]
pub struct InventoryService {
    inventory: Inventory,
}

impl InventoryService {
    pub fn new(store: Store, ids: Arc<dyn IdGen>, clock: Arc<dyn Clock>) -> Self {
        Self { inventory: Inventory::new(store, ids, Arc::new(HybridClock::new(clock))) }
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }
}

impl Service for InventoryService {
    fn name(&self) -> &'static str {
        crate::SERVICE
    }

    fn store(&self) -> &Store {
        self.inventory.store()
    }

    fn routes(&self) -> OpenApiRouter {
        crate::http::router().with_state(self.inventory.clone())
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        vec![Subscription { source: "orders", handler: Arc::new(self.inventory.clone()) }]
    }

    fn tasks(&self, _stop: watch::Receiver<bool>) -> Vec<Task> {
        Vec::new()
    }
}
