//! Customers as the runtime runs it: its routes, the erasure reports of the services that hold
//! data about customers, and a start-up pass that seals rows an older version kept in clear.

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
    pub fn new(
        store: Store,
        vault: Arc<dyn tessera_vault::Sealer>,
        ids: Arc<dyn IdGen>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { customers: Customers::new(store, vault, ids, clock) }
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
        tessera_contracts::customers::ERASURE_PARTICIPANTS
            .into_iter()
            .map(|source| Subscription { source, handler: Arc::new(self.customers.clone()) })
            .collect()
    }

    fn tasks(&self, _stop: watch::Receiver<bool>) -> Vec<Task> {
        let customers = self.customers.clone();
        vec![Box::pin(async move {
            match customers.seal_legacy_rows().await {
                Ok(0) => {}
                Ok(sealed) => tracing::info!(sealed, "customers stored in clear are sealed now"),
                Err(error) => tracing::error!(%error, "cannot seal customers stored in clear"),
            }
        })]
    }
}
