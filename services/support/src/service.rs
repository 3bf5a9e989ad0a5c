//! Support as the runtime runs it: its routes, the orders service's events, and the customers
//! service's erasures.

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

    fn tasks(&self, _stop: watch::Receiver<bool>) -> Vec<Task> {
        Vec::new()
    }
}
