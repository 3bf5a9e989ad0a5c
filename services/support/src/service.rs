//! Support as the runtime runs it: its routes, the orders service's events, the customers
//! service's erasures, and the sweep that erases closed tickets' messages when they are due.

use std::sync::Arc;

use tessera_bus::Answering;
use tessera_kernel::{Clock, IdGen};
use tessera_runtime::{Service, Subscription, Task};
use tessera_store::Store;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;

use crate::{AttachmentLimits, AttachmentStore, Erasures, Support};

#[derive(Clone, Debug)]
pub struct SupportService {
    support: Support,
}

impl SupportService {
    pub fn new(
        store: Store,
        vault: Arc<dyn tessera_vault::Sealer>,
        attachments: AttachmentStore,
        ids: Arc<dyn IdGen>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { support: Support::new(store, vault, attachments, ids, clock) }
    }

    /// With `limits` on attachments (quotas, concurrent uploads) instead of the defaults.
    pub fn with_attachment_limits(self, limits: AttachmentLimits) -> Self {
        Self { support: self.support.with_attachment_limits(limits) }
    }

    /// Replaces the declared retention of closed tickets' messages (a setting).
    #[must_use]
    pub fn with_retention(self, settings: crate::retention::RetentionSettings) -> Self {
        Self { support: self.support.with_retention(settings) }
    }

    pub fn support(&self) -> &Support {
        &self.support
    }
}

impl Service for SupportService {
    fn name(&self) -> &'static str {
        crate::SERVICE
    }

    fn store(&self) -> &Store {
        self.support.store()
    }

    fn routes(&self) -> OpenApiRouter {
        crate::http::router().with_state(self.support.clone())
    }

    fn subscriptions(&self) -> Vec<Subscription> {
        vec![
            Subscription { source: "orders", handler: Arc::new(self.support.clone()) },
            Subscription {
                source: "customers",
                handler: Arc::new(Answering::new(Erasures::new(self.support.clone()))),
            },
        ]
    }

    fn tasks(&self, stop: watch::Receiver<bool>) -> Vec<Task> {
        vec![Box::pin(self.support.clone().sweep_retention(stop))]
    }
}
