//! The embedded topology's wiring, shared by `tessera up` and the benchmarks: every service
//! on its own SQLite file in one folder (tickets' attachments in its `attachments` folder), the
//! in-process transport, and the gateway in front, calling each service's router in process.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tessera_bus::InProcessTransport;
use tessera_customers::CustomersService;
use tessera_gateway::catalogue::{Catalogue, CatalogueInvalidation, LocalCache};
use tessera_gateway::{Gateway, GatewayConfig, InProcess, ServiceClient, Services, TokenSettings};
use tessera_inventory::InventoryService;
use tessera_kernel::{Clock, IdGen, SystemClock, UuidV7Gen};
use tessera_orders::{OrdersService, OrdersSettings};
use tessera_payments::{NetworkSettings, PaymentsService, SimulatedNetwork};
use tessera_runtime::{Node, NodeOptions, Service, Storage, open_store};
use tessera_support::{AttachmentStore, SupportService};

#[derive(Clone, Debug)]
pub struct EmbeddedSettings {
    pub payment_timeout: Duration,
    pub slow_card_delay: Duration,
    /// The simulated card network's transient failure share and added latency (0 and zero
    /// unless a fault is being injected on purpose).
    pub card_failure_rate: f64,
    pub card_latency: Duration,
    pub gateway: GatewayConfig,
    /// What seals personal data instead of the vault in the data folder: only the benchmark of
    /// what sealing costs sets it, to run its baseline.
    pub sealer: Option<Arc<dyn tessera_vault::Sealer>>,
    /// Serve product reads from a cache in this process, emptied by inventory's events.
    pub catalogue_cache: bool,
}

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
        let storage = Storage::Files(data.to_path_buf());
        let ids: Arc<dyn IdGen> = Arc::new(UuidV7Gen);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let open = |service: &'static str, migrations: Vec<tessera_store::MigrationSet>| {
            let storage = storage.clone();
            async move {
                open_store(&storage, service, &migrations)
                    .await
                    .with_context(|| format!("cannot open the {service} store in {}", data.display()))
            }
        };
        let inventory = InventoryService::new(
            open(tessera_inventory::SERVICE, tessera_inventory::migrations()).await?,
            ids.clone(),
            clock.clone(),
        );
        let network = SimulatedNetwork::new(NetworkSettings {
            slow_delay: settings.slow_card_delay,
            failure_rate: settings.card_failure_rate,
            latency: settings.card_latency,
            ..NetworkSettings::default()
        });
        let payments = PaymentsService::new(
            open(tessera_payments::SERVICE, tessera_payments::migrations()).await?,
            Arc::new(network),
            ids.clone(),
            clock.clone(),
        );
        let orders_settings =
            OrdersSettings { payment_timeout: settings.payment_timeout, ..OrdersSettings::default() };
        let vault = match settings.sealer.clone() {
            Some(sealer) => sealer,
            None => crate::keys::open_vault(&storage, crate::keys::embedded(data)?).await?,
        };
        let orders = OrdersService::new(
            open(tessera_orders::SERVICE, tessera_orders::migrations()).await?,
            &orders_settings,
            vault.clone(),
            ids.clone(),
            clock.clone(),
        );
        let customers = CustomersService::new(
            open(tessera_customers::SERVICE, tessera_customers::migrations()).await?,
            vault.clone(),
            ids.clone(),
            clock.clone(),
        );
        let support = SupportService::new(
            open(tessera_support::SERVICE, tessera_support::migrations()).await?,
            vault,
            AttachmentStore::local(&data.join("attachments"))?,
            ids.clone(),
            clock.clone(),
        );
        let (inventory_app, payments_app) = (inventory.inventory().clone(), payments.payments().clone());
        let gateway_store = open(tessera_gateway::SERVICE, tessera_gateway::migrations()).await?;
        let catalogue = settings
            .catalogue_cache
            .then(|| Catalogue::new(Arc::new(LocalCache::new(CATALOGUE_ENTRIES, CATALOGUE_TTL))));
        let mut services: Vec<Arc<dyn Service>> = vec![
            Arc::new(inventory),
            Arc::new(payments),
            Arc::new(orders),
            Arc::new(customers),
            Arc::new(support),
        ];
        if let Some(catalogue) = &catalogue {
            services.push(Arc::new(CatalogueInvalidation::new(catalogue.clone(), gateway_store.clone())));
        }
        let transport: Arc<dyn tessera_bus::Transport> = Arc::new(InProcessTransport::new());
        let node = Node::start(services, transport.clone(), NodeOptions::default())?;
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
        let mut gateway = Gateway::new(clients, gateway_store, settings.gateway, TokenSettings::default())
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
