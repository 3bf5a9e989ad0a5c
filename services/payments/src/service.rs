//! Payments as the runtime runs it: its routes, the order sagas' commands from `orders`, the
//! erasures from `customers`, and the worker that takes authorisation requests to the card
//! network.

use std::sync::Arc;

use tessera_bus::Answering;
use tessera_kernel::{Clock, IdGen};
use tessera_runtime::{Service, Subscription, Task};
use tessera_store::Store;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;

use crate::{CardNetwork, Erasures, Payments};

/// Authorisations in flight against the network at once.
const AUTHORISATION_CONCURRENCY: usize = 256;

#[derive(Clone, Debug)]
pub struct PaymentsService {
    payments: Payments,
}

impl PaymentsService {
    pub fn new(
        store: Store,
        network: Arc<dyn CardNetwork>,
        ids: Arc<dyn IdGen>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { payments: Payments::new(store, network, ids, clock) }
    }

    pub fn payments(&self) -> &Payments {
        &self.payments
    }
}

impl Service for PaymentsService {
    fn name(&self) -> &'static str {
        crate::SERVICE
    }

    fn store(&self) -> &Store {
        self.payments.store()
    }

    fn routes(&self) -> OpenApiRouter {
        crate::http::router().with_state(self.payments.clone())
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        vec![
            Subscription { source: "orders", handler: Arc::new(self.payments.clone()) },
            Subscription {
                source: "customers",
                handler: Arc::new(Answering::new(Erasures::new(self.payments.clone()))),
            },
        ]
    }

    fn tasks(&self, stop: watch::Receiver<bool>) -> Vec<Task> {
        vec![Box::pin(self.payments.clone().run_authorisations(AUTHORISATION_CONCURRENCY, stop))]
    }
}
