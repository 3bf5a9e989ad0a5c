//! What a service tells the runtime about itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tessera_bus::Handler;
use tessera_store::Store;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;

/// Background work of a service (a worker loop), ending when the stop signal turns true.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Messages from `source` handed to `handler`, inside the subscriber's unit of work.
#[derive(Clone)]
pub struct Subscription {
    pub source: &'static str,
    pub handler: Arc<dyn Handler>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("source", &self.source).finish_non_exhaustive()
    }
}

pub trait Service: Send + Sync + 'static {
    /// The name of its store, its messages' owner, its relay.
    fn name(&self) -> &'static str;
    fn store(&self) -> &Store;
    /// Its HTTP routes, described for OpenAPI, relative to `/api/v1`.
    fn routes(&self) -> OpenApiRouter;
    fn subscriptions(&self) -> Vec<Subscription>;
    /// Its worker loops; each ends when `stop` turns true.
    fn tasks(&self, stop: watch::Receiver<bool>) -> Vec<Task>;
}
