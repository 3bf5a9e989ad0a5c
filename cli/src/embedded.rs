//! The embedded topology's wiring, shared by `tessera up` and the benchmarks: every service
//! of the registry (`crate::registry`) on its own SQLite file in one folder (tickets' attachments in its `attachments` folder), the
//! in-process transport, and the gateway in front, calling each service's router in process.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tessera_bus::InProcessTransport;
use tessera_gateway::catalogue::{Catalogue, CatalogueInvalidation, LocalCache};
use tessera_gateway::{Gateway, InProcess, ServiceClient, Services, TokenSettings};
use tessera_kernel::{Clock, IdGen, SystemClock, UuidV7Gen};
use tessera_runtime::audit_archive::{ARCHIVE_EVERY, AuditArchive, embedded_archive_url, open_archive};
use tessera_runtime::{Node, NodeOptions, Service};

use crate::registry::{self, Embedding};
pub use crate::settings::EmbeddedSettings;

/// Products (and the lists) the embedded catalogue cache keeps, and for how long at most.
const CATALOGUE_ENTRIES: u64 = 10_000;
const CATALOGUE_TTL: Duration = Duration::from_secs(300);

/// A running embedded system.
pub struct Embedded {
    pub node: Node,
    pub gateway: Gateway,
    /// The public router: the gateway's routes and the infrastructure routes.
    pub router: Router,
    pub inventory: tessera_inventory::Inventory,
    pub payments: tessera_payments::Payments,
}

impl Embedded {
    pub async fn start(data: &Path, settings: EmbeddedSettings) -> anyhow::Result<Self> {
        let ids: Arc<dyn IdGen> = Arc::new(UuidV7Gen);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut embedding = Embedding::new(data, &settings, ids, clock);
        let mut services: Vec<Arc<dyn Service>> = Vec::new();
        for descriptor in &registry::SERVICES {
            services.push((descriptor.embedded)(&mut embedding).await?);
        }
        let inventory_app = embedding.inventory.take().context("the registry builds no inventory")?;
        let payments_app = embedding.payments.take().context("the registry builds no payments")?;
        let gateway_store = embedding.open(tessera_gateway::SERVICE, tessera_gateway::migrations()).await?;
        // The gateway's signing keys are sealed by the same vault as the services' data.
        let key_sealer = embedding.vault().await?;
        let catalogue = settings
            .catalogue_cache
            .then(|| Catalogue::new(Arc::new(LocalCache::new(CATALOGUE_ENTRIES, CATALOGUE_TTL))));
        if let Some(catalogue) = &catalogue {
            services.push(Arc::new(CatalogueInvalidation::new(catalogue.clone(), gateway_store.clone())));
        }
        let transport: Arc<dyn tessera_bus::Transport> = Arc::new(InProcessTransport::new());
        let node = Node::start(
            services,
            transport.clone(),
            NodeOptions {
                upcasters: crate::contracts::upcasters(),
                audit_archive: Some(AuditArchive {
                    objects: open_archive(&embedded_archive_url(data))?,
                    policy: settings.retention.audit_archive,
                    every: ARCHIVE_EVERY,
                }),
                ..NodeOptions::default()
            },
        )?;
        let client = |name: &'static str| -> anyhow::Result<Arc<dyn ServiceClient>> {
            let router =
                node.service_router(name).with_context(|| format!("no {name} service in this node"))?;
            Ok(Arc::new(InProcess::new(name, router)))
        };
        let clients = Services {
            inventory: client(tessera_inventory::SERVICE)?,
            orders: client(tessera_orders::SERVICE)?,
            payments: client(tessera_payments::SERVICE)?,
            customers: client(tessera_customers::SERVICE)?,
            support: client(tessera_support::SERVICE)?,
        };
        let mut gateway_config = settings.gateway;
        gateway_config.key_sealer.get_or_insert(key_sealer);
        let mut gateway = Gateway::new(clients, gateway_store, gateway_config, TokenSettings::default())
            .await
            .context("cannot start the gateway")?;
        if let Some(catalogue) = catalogue {
            gateway = gateway.with_catalogue(catalogue);
        }
        let gateway = gateway.with_order_events(transport);
        let router = gateway
            .router(node.openapi().clone(), Some(Arc::new(node.readiness())))
            .merge(tessera_runtime::metrics::route())
            .merge(crate::web_ui::routes());
        Ok(Self { node, gateway, router, inventory: inventory_app, payments: payments_app })
    }
}
