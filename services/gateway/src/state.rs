//! The gateway's shared state: the handle every handler, layer and background task holds.

use std::sync::Arc;

use tessera_store::Store;

use crate::auth::{KeyRing, Role};
use crate::catalogue::Catalogue;
use crate::clients::Services;
use crate::config::GatewayConfig;
use crate::limits::Limiter;
use crate::waiting::{self, OrderWaiters};

/// Everything a request handler needs, behind one `Arc`: every request clones the gateway
/// several times (each layer's and the handler's `State`), and one reference count is far
/// cheaper than the dozen its parts hold (a profile of cached reads found 15 % of the time in
/// cloning and dropping the parts).
#[derive(Clone)]
pub struct Gateway(pub(crate) Arc<GatewayParts>);

impl std::ops::Deref for Gateway {
    type Target = GatewayParts;

    fn deref(&self) -> &GatewayParts {
        &self.0
    }
}

/// The gateway's parts, shared by all its clones.
#[derive(Clone)]
pub struct GatewayParts {
    pub(crate) services: Services,
    pub(crate) keys: KeyRing,
    pub(crate) config: Arc<GatewayConfig>,
    pub(crate) staff: Arc<Vec<(String, String, Role)>>,
    pub(crate) store: Store,
    pub(crate) limiter: Arc<Limiter>,
    /// Product reads are served from it when set.
    pub(crate) catalogue: Option<Arc<Catalogue>>,
    /// Clients waiting for orders to settle (`Prefer: wait`, the order event stream).
    pub(crate) waiters: Arc<OrderWaiters>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("config", &self.config).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for GatewayParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayParts").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Gateway {
    /// Serves product reads from `catalogue`, which [`crate::catalogue::CatalogueInvalidation`]
    /// must keep fresh (build the router after this).
    pub fn with_catalogue(self, catalogue: Arc<Catalogue>) -> Self {
        Self(Arc::new(GatewayParts { catalogue: Some(catalogue), ..(*self.0).clone() }))
    }

    /// Wakes the clients waiting for an order (`Prefer: wait`, `GET /orders/{id}/events`) by
    /// the orders service's messages on `transport`, which this process then watches. Without
    /// it the gateway does not apply a preference to wait, and the event stream reads the
    /// order once a second.
    pub fn with_order_events(self, transport: Arc<dyn tessera_bus::Transport>) -> Self {
        tokio::spawn(waiting::watch_orders(self.waiters.clone(), transport));
        self
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }
}
