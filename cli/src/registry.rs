//! Every service the shop runs, in one list. `up` and the benchmarks (the embedded topology),
//! `serve` (the distributed one), the configuration file's `[serve.<service>]` tables,
//! `verify` and `audit` all walk [`SERVICES`]; adding a service is one [`ServiceDescriptor`]
//! here plus the service's crate. What differs per service (its settings, a vault, a card
//! network, where attachments go) stays in that service's own builder functions below.
//!
//! The gateway is not in the list: it is no service of the shop but the door to all of them,
//! and each topology wires it on its own.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::BoxFuture;
use tessera_invariants::{Facts, ReadModelFacts};
use tessera_kernel::{Clock, IdGen};
use tessera_runtime::{Service, Storage, open_store};
use tessera_store::{MigrationSet, Store};
use tessera_vault::Sealer;

use crate::settings::{EmbeddedSettings, ServeArgs};

/// Builds a service's [`Service`] in the embedded topology.
type BuildEmbedded = for<'a, 'b> fn(&'a mut Embedding<'b>) -> BoxFuture<'a, anyhow::Result<Arc<dyn Service>>>;
/// Builds a service's [`Service`] for `tessera serve`.
type BuildServed = for<'a, 'b> fn(&'a mut Serving<'b>) -> BoxFuture<'a, anyhow::Result<Arc<dyn Service>>>;

/// Adds what a service knows to the facts the invariants are checked on (`tessera verify`).
type ReadFacts = for<'a> fn(&'a Store, &'a mut Facts) -> BoxFuture<'a, anyhow::Result<()>>;

/// One service of the shop.
pub struct ServiceDescriptor {
    /// Its name: the store file `<data>/<name>.db`, the database `<prefix>_<name>`, the
    /// argument of `tessera serve <name>`, the `[serve.<name>]` table, messages' target.
    pub name: &'static str,
    /// Every migration set its store needs, in order.
    pub migrations: fn() -> Vec<MigrationSet>,
    /// In the embedded topology: in this process, next to the others.
    pub embedded: BuildEmbedded,
    /// In the distributed topology: alone in a `tessera serve` process.
    pub serve: BuildServed,
    /// The facts its invariants need, read through its own `facts` module; `None` for a
    /// service no invariant is about.
    pub facts: Option<ReadFacts>,
}

impl std::fmt::Debug for ServiceDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceDescriptor").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The shop's services, in the order they are built, started, checked and listed.
pub const SERVICES: [ServiceDescriptor; 5] = [
    ServiceDescriptor {
        name: tessera_inventory::SERVICE,
        migrations: tessera_inventory::migrations,
        embedded: |c| Box::pin(inventory::embedded(c)),
        serve: |c| Box::pin(inventory::serve(c)),
        facts: Some(|store, facts| Box::pin(inventory::facts(store, facts))),
    },
    ServiceDescriptor {
        name: tessera_orders::SERVICE,
        migrations: tessera_orders::migrations,
        embedded: |c| Box::pin(orders::embedded(c)),
        serve: |c| Box::pin(orders::serve(c)),
        facts: Some(|store, facts| Box::pin(orders::facts(store, facts))),
    },
    ServiceDescriptor {
        name: tessera_payments::SERVICE,
        migrations: tessera_payments::migrations,
        embedded: |c| Box::pin(payments::embedded(c)),
        serve: |c| Box::pin(payments::serve(c)),
        facts: Some(|store, facts| Box::pin(payments::facts(store, facts))),
    },
    ServiceDescriptor {
        name: tessera_customers::SERVICE,
        migrations: tessera_customers::migrations,
        embedded: |c| Box::pin(customers::embedded(c)),
        serve: |c| Box::pin(customers::serve(c)),
        facts: None,
    },
    ServiceDescriptor {
        name: tessera_support::SERVICE,
        migrations: tessera_support::migrations,
        embedded: |c| Box::pin(support::embedded(c)),
        serve: |c| Box::pin(support::serve(c)),
        facts: Some(|store, facts| Box::pin(support::facts(store, facts))),
    },
];

/// The service named `name`, if the shop has one.
pub fn find(name: &str) -> Option<&'static ServiceDescriptor> {
    SERVICES.iter().find(|s| s.name == name)
}

/// Every service's name, in registry order.
pub fn names() -> impl Iterator<Item = &'static str> {
    SERVICES.iter().map(|s| s.name)
}

/// What the embedded topology hands each service's builder.
pub struct Embedding<'a> {
    pub data: &'a Path,
    pub storage: Storage,
    pub settings: &'a EmbeddedSettings,
    pub ids: Arc<dyn IdGen>,
    pub clock: Arc<dyn Clock>,
    /// One vault for every service that seals personal data, opened by the first to ask.
    vault: Option<Arc<dyn Sealer>>,
    /// Handles the embedded system keeps to call two services directly (seeding the
    /// catalogue, the benchmarks): each is set by its service's builder.
    pub inventory: Option<tessera_inventory::Inventory>,
    pub payments: Option<tessera_payments::Payments>,
}

impl std::fmt::Debug for Embedding<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedding").field("data", &self.data).finish_non_exhaustive()
    }
}

impl<'a> Embedding<'a> {
    pub fn new(
        data: &'a Path,
        settings: &'a EmbeddedSettings,
        ids: Arc<dyn IdGen>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            data,
            storage: Storage::Files(data.to_path_buf()),
            settings,
            ids,
            clock,
            vault: None,
            inventory: None,
            payments: None,
        }
    }

    pub async fn open(&self, service: &str, migrations: Vec<MigrationSet>) -> anyhow::Result<Store> {
        open_store(&self.storage, service, &migrations)
            .await
            .with_context(|| format!("cannot open the {service} store in {}", self.data.display()))
    }

    /// A service's own store, migrated as its descriptor says.
    async fn open_own(&self, service: &str) -> anyhow::Result<Store> {
        self.open(service, migrations_of(service)?).await
    }

    pub async fn vault(&mut self) -> anyhow::Result<Arc<dyn Sealer>> {
        if let Some(vault) = &self.vault {
            return Ok(vault.clone());
        }
        let vault = match self.settings.sealer.clone() {
            Some(sealer) => sealer,
            None => crate::keys::open_vault(&self.storage, crate::keys::embedded(self.data)?).await?,
        };
        self.vault = Some(vault.clone());
        Ok(vault)
    }
}

/// What `tessera serve` hands the builder of the service it runs.
#[derive(Debug)]
pub struct Serving<'a> {
    pub args: &'a ServeArgs,
    pub storage: Storage,
    pub ids: Arc<dyn IdGen>,
    pub clock: Arc<dyn Clock>,
}

impl Serving<'_> {
    async fn open(&self, name: &str, migrations: Vec<MigrationSet>) -> anyhow::Result<Store> {
        open_store(&self.storage, name, &migrations)
            .await
            .with_context(|| format!("cannot open the {name} database"))
    }

    /// The service's own database, migrated as its descriptor says.
    async fn open_own(&self, service: &str) -> anyhow::Result<Store> {
        self.open(service, migrations_of(service)?).await
    }

    async fn vault(&self) -> anyhow::Result<Arc<dyn Sealer>> {
        crate::keys::open_vault(&self.storage, crate::keys::distributed(self.args.master_key_file.as_ref())?)
            .await
    }
}

fn migrations_of(service: &str) -> anyhow::Result<Vec<MigrationSet>> {
    let descriptor = find(service).with_context(|| format!("no service named {service} in the registry"))?;
    Ok((descriptor.migrations)())
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{flag} must be a non-negative number of seconds"))
}

mod inventory {
    use tessera_inventory::InventoryService;

    use super::*;

    pub async fn embedded(c: &mut Embedding<'_>) -> anyhow::Result<Arc<dyn Service>> {
        let store = c.open_own(tessera_inventory::SERVICE).await?;
        let service = InventoryService::new(store, c.ids.clone(), c.clock.clone());
        c.inventory = Some(service.inventory().clone());
        Ok(Arc::new(service))
    }

    pub async fn serve(c: &mut Serving<'_>) -> anyhow::Result<Arc<dyn Service>> {
        let store = c.open_own(tessera_inventory::SERVICE).await?;
        Ok(Arc::new(InventoryService::new(store, c.ids.clone(), c.clock.clone())))
    }

    pub async fn facts(store: &Store, facts: &mut Facts) -> anyhow::Result<()> {
        facts.inventory = tessera_inventory::facts::read(store).await?;
        Ok(())
    }
}

mod orders {
    use tessera_orders::{OrdersService, OrdersSettings};

    use super::*;

    pub async fn embedded(c: &mut Embedding<'_>) -> anyhow::Result<Arc<dyn Service>> {
        let settings =
            OrdersSettings { payment_timeout: c.settings.payment_timeout, ..OrdersSettings::default() };
        let store = c.open_own(tessera_orders::SERVICE).await?;
        let vault = c.vault().await?;
        Ok(Arc::new(OrdersService::new(store, &settings, vault, c.ids.clone(), c.clock.clone())))
    }

    pub async fn serve(c: &mut Serving<'_>) -> anyhow::Result<Arc<dyn Service>> {
        let settings = OrdersSettings {
            payment_timeout: seconds(c.args.payment_timeout, "payment-timeout")?,
            ..OrdersSettings::default()
        };
        let store = c.open_own(tessera_orders::SERVICE).await?;
        let vault = c.vault().await?;
        Ok(Arc::new(OrdersService::new(store, &settings, vault, c.ids.clone(), c.clock.clone())))
    }

    pub async fn facts(store: &Store, facts: &mut Facts) -> anyhow::Result<()> {
        facts.orders = tessera_orders::facts::read(store).await?;
        Ok(())
    }
}

mod payments {
    use tessera_payments::{NetworkSettings, PaymentsService, SimulatedNetwork};

    use super::*;

    pub async fn embedded(c: &mut Embedding<'_>) -> anyhow::Result<Arc<dyn Service>> {
        let network = SimulatedNetwork::new(NetworkSettings {
            slow_delay: c.settings.slow_card_delay,
            failure_rate: c.settings.card_failure_rate,
            latency: c.settings.card_latency,
            ..NetworkSettings::default()
        });
        let store = c.open_own(tessera_payments::SERVICE).await?;
        let service = PaymentsService::new(store, Arc::new(network), c.ids.clone(), c.clock.clone());
        c.payments = Some(service.payments().clone());
        Ok(Arc::new(service))
    }

    pub async fn serve(c: &mut Serving<'_>) -> anyhow::Result<Arc<dyn Service>> {
        let args = c.args;
        let network = SimulatedNetwork::new(NetworkSettings {
            slow_delay: seconds(args.slow_card_delay, "slow-card-delay")?,
            failure_rate: if (0.0..=1.0).contains(&args.card_failure_rate) {
                args.card_failure_rate
            } else {
                anyhow::bail!("--card-failure-rate must be a share from 0 to 1")
            },
            latency: Duration::from_millis(args.card_latency_ms),
            ..NetworkSettings::default()
        });
        let store = c.open_own(tessera_payments::SERVICE).await?;
        Ok(Arc::new(PaymentsService::new(store, Arc::new(network), c.ids.clone(), c.clock.clone())))
    }

    pub async fn facts(store: &Store, facts: &mut Facts) -> anyhow::Result<()> {
        facts.payments = tessera_payments::facts::read(store).await?;
        Ok(())
    }
}

mod customers {
    use tessera_customers::CustomersService;

    use super::*;

    pub async fn embedded(c: &mut Embedding<'_>) -> anyhow::Result<Arc<dyn Service>> {
        let store = c.open_own(tessera_customers::SERVICE).await?;
        let vault = c.vault().await?;
        Ok(Arc::new(CustomersService::new(store, vault, c.ids.clone(), c.clock.clone())))
    }

    pub async fn serve(c: &mut Serving<'_>) -> anyhow::Result<Arc<dyn Service>> {
        let store = c.open_own(tessera_customers::SERVICE).await?;
        let vault = c.vault().await?;
        Ok(Arc::new(CustomersService::new(store, vault, c.ids.clone(), c.clock.clone())))
    }
}

mod support {
    use tessera_support::domain::MessageRetention;
    use tessera_support::retention::RetentionSettings;
    use tessera_support::{AttachmentStore, SupportService};

    use super::*;

    fn retention(messages: MessageRetention) -> RetentionSettings {
        RetentionSettings { messages, ..RetentionSettings::default() }
    }

    pub async fn embedded(c: &mut Embedding<'_>) -> anyhow::Result<Arc<dyn Service>> {
        let store = c.open_own(tessera_support::SERVICE).await?;
        let vault = c.vault().await?;
        let attachments = AttachmentStore::local(&c.data.join("attachments"))?;
        let support = SupportService::new(store, vault, attachments, c.ids.clone(), c.clock.clone())
            .with_attachment_limits(c.settings.attachment_limits)
            .with_retention(retention(c.settings.retention.closed_ticket_messages));
        Ok(Arc::new(support))
    }

    pub async fn serve(c: &mut Serving<'_>) -> anyhow::Result<Arc<dyn Service>> {
        // No default: replicas must share one store, and a folder of this machine's would
        // quietly split the files between them.
        let url = c.args.attachments_url.as_deref().context(
            "support needs somewhere to keep attachments: --attachments-url s3://bucket \
             or file:///absolute/folder (or TESSERA_ATTACHMENTS_URL)",
        )?;
        let attachments = AttachmentStore::open(url).context("--attachments-url")?;
        let args = &c.args;
        let mib = |value: u64| value.saturating_mul(1024 * 1024);
        let limits = tessera_support::AttachmentLimits {
            files_per_ticket: args.attachment_files_per_ticket,
            bytes_per_ticket: mib(args.attachment_mib_per_ticket),
            bytes_per_customer: mib(args.attachment_mib_per_customer),
            concurrent_uploads: args.concurrent_uploads,
        };
        limits.validate().context("attachment limits")?;
        let store = c.open_own(tessera_support::SERVICE).await?;
        let vault = c.vault().await?;
        let messages = c
            .args
            .closed_ticket_messages_days
            .map_or_else(MessageRetention::declared, MessageRetention::days);
        let support = SupportService::new(store, vault, attachments, c.ids.clone(), c.clock.clone())
            .with_attachment_limits(limits)
            .with_retention(retention(messages));
        Ok(Arc::new(support))
    }

    pub async fn facts(store: &Store, facts: &mut Facts) -> anyhow::Result<()> {
        let replicas = tessera_support::facts::read(store).await?.replicas;
        facts.read_models = Some(ReadModelFacts { replicas });
        Ok(())
    }
}
