//! Customers as the runtime runs it: its routes only. It subscribes to nothing and runs no
//! background work; its events leave through the outbox relay the runtime runs for every store.

use std::sync::Arc;

use tessera_kernel::{Clock, IdGen};
use tessera_runtime::{Service, Subscription, Task};
use tessera_store::Store;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;

use crate::Customers;

#[derive(Clone, Debug)]
pub struct CustomersService {
    customers: Customers,
}

impl CustomersService {
    pub fn new(store: Store, ids: Arc<dyn IdGen>, clock: Arc<dyn Clock>) -> Self {
        Self { customers: Customers::new(store, ids, clock) }
    }

    pub fn customers(&self) -> &Customers {
        &self.customers
    }
}

impl Service for CustomersService {
    fn name(&self) -> &'static str {
        crate::SERVICE
    }

    fn store(&self) -> &Store {
        self.customers.store()
    }

    fn routes(&self) -> OpenApiRouter {
        crate::http::router().with_state(self.customers.clone())
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        Vec::new()
    }

    fn tasks(&self, _stop: watch::Receiver<bool>) -> Vec<Task> {
        Vec::new()
    }
}
