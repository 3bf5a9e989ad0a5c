//! `tessera up`: the whole system embedded in one process. One SQLite file per service in the
//! data folder, the in-process transport, every service's routes on one listener. A demo
//! catalogue is added on first start. SIGINT or SIGTERM stops it gracefully: no new requests,
//! units in flight finish, and what is not yet delivered waits in the outboxes for the next start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tessera_bus::InProcessTransport;
use tessera_contracts::{Money, Sku};
use tessera_customers::CustomersService;
use tessera_gateway::{Gateway, GatewayConfig, InProcess, ServiceClient, Services, TokenSettings};
use tessera_inventory::{InventoryService, domain::InventoryError};
use tessera_kernel::{Clock, IdGen, SystemClock, UuidV7Gen};
use tessera_orders::{OrdersService, OrdersSettings};
use tessera_payments::{NetworkSettings, PaymentsService, SimulatedNetwork};
use tessera_runtime::{Node, NodeOptions, Service, Storage, open_store};
use tessera_support::SupportService;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The data folder: one SQLite file per service.
    #[arg(long, default_value = "tessera-data", env = "TESSERA_DATA")]
    data: PathBuf,
    /// Where to serve HTTP (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080", env = "TESSERA_LISTEN")]
    listen: SocketAddr,
    /// How long an order waits for the card network before it is rejected (seconds).
    #[arg(long, default_value_t = 10.0, env = "TESSERA_PAYMENT_TIMEOUT")]
    payment_timeout: f64,
    /// How long the simulated network takes to answer for the slow test card (seconds).
    #[arg(long, default_value_t = 15.0, env = "TESSERA_SLOW_CARD_DELAY")]
    slow_card_delay: f64,
}

/// How long a graceful stop may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

const DEMO_CATALOGUE: [(&str, &str, &str, i64, i64); 5] = [
    ("TEA-001", "Sencha", "Steamed Japanese green tea, 100 g", 850, 500),
    ("TEA-002", "Assam", "Malty black tea from India, 250 g", 1200, 300),
    ("MUG-001", "Stoneware mug", "Hand-glazed, 350 ml", 1800, 120),
    ("POT-001", "Cast-iron teapot", "Tetsubin, 0.8 l", 6400, 25),
    ("LTD-001", "Anniversary tin", "Limited edition: only three were made", 2500, 3),
];

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("--{flag} must be a non-negative number of seconds"))
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let payment_timeout = seconds(args.payment_timeout, "payment-timeout")?;
    let slow_delay = seconds(args.slow_card_delay, "slow-card-delay")?;
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create the data folder {}", args.data.display()))?;
    let data = args.data.canonicalize().with_context(|| format!("cannot resolve {}", args.data.display()))?;
    let storage = Storage::Files(data.clone());

    let ids: Arc<dyn IdGen> = Arc::new(UuidV7Gen);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let open = |service: &'static str, migrations: Vec<tessera_store::MigrationSet>| {
        let storage = storage.clone();
        async move {
            open_store(&storage, service, &migrations).await.with_context(|| {
                format!("cannot open the {service} store in {}", data_path(&storage).display())
            })
        }
    };
    let inventory = InventoryService::new(
        open(tessera_inventory::SERVICE, tessera_inventory::migrations()).await?,
        ids.clone(),
        clock.clone(),
    );
    let network = SimulatedNetwork::new(NetworkSettings { slow_delay, ..NetworkSettings::default() });
    let payments = PaymentsService::new(
        open(tessera_payments::SERVICE, tessera_payments::migrations()).await?,
        Arc::new(network),
        ids.clone(),
        clock.clone(),
    );
    let settings = OrdersSettings { payment_timeout, ..OrdersSettings::default() };
    let orders = OrdersService::new(
        open(tessera_orders::SERVICE, tessera_orders::migrations()).await?,
        &settings,
        ids.clone(),
        clock.clone(),
    );
    let customers = CustomersService::new(
        open(tessera_customers::SERVICE, tessera_customers::migrations()).await?,
        ids.clone(),
        clock.clone(),
    );
    let support = SupportService::new(
        open(tessera_support::SERVICE, tessera_support::migrations()).await?,
        ids.clone(),
        clock.clone(),
    );
    seed_catalogue(&inventory).await?;

    let services: Vec<Arc<dyn Service>> = vec![
        Arc::new(inventory),
        Arc::new(payments),
        Arc::new(orders),
        Arc::new(customers),
        Arc::new(support),
    ];
    let node = Node::start(services, Arc::new(InProcessTransport::new()), NodeOptions::default())?;
    let gateway_store = open(tessera_gateway::SERVICE, vec![tessera_gateway::MIGRATIONS]).await?;
    let client = |name: &'static str| -> anyhow::Result<Arc<dyn ServiceClient>> {
        let router = node.service_router(name).with_context(|| format!("no {name} service in this node"))?;
        Ok(Arc::new(InProcess::new(name, router)))
    };
    let services = Services {
        inventory: client(tessera_inventory::SERVICE)?,
        orders: client(tessera_orders::SERVICE)?,
        payments: client(tessera_payments::SERVICE)?,
        customers: client(tessera_customers::SERVICE)?,
        support: client(tessera_support::SERVICE)?,
    };
    let gateway_config = GatewayConfig::default();
    let staff: Vec<_> = gateway_config.staff.iter().map(|u| (u.email.clone(), u.password.clone())).collect();
    let gateway = Gateway::new(services, gateway_store, gateway_config, TokenSettings::default())
        .await
        .context("cannot start the gateway")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}; choose another address with --listen", args.listen))?;
    let address = listener.local_addr()?;
    print_banner(&data, address, started.elapsed(), &staff);

    let public = gateway.router(node.openapi().clone());
    tessera_web::serve(listener, public, shutdown_signal()).await.context("the HTTP server failed")?;
    eprintln!("stopping: finishing work in flight");
    if node.shutdown(SHUTDOWN_GRACE).await {
        eprintln!("stopped");
    } else {
        eprintln!(
            "some background work did not stop within {SHUTDOWN_GRACE:?}; it resumes on the next start"
        );
    }
    Ok(())
}

fn data_path(storage: &Storage) -> &Path {
    match storage {
        Storage::Files(path) => path,
        Storage::Postgres(_) => Path::new("PostgreSQL"),
    }
}

/// Adds the demo products that are missing; products already there are left as they are.
async fn seed_catalogue(inventory: &InventoryService) -> anyhow::Result<()> {
    for (sku, name, description, price, stock) in DEMO_CATALOGUE {
        let sku = Sku::parse(sku)?;
        if inventory.inventory().product(&sku).await?.is_some() {
            continue;
        }
        match inventory.inventory().create_product(&sku, name, description, &Money::eur(price)?, stock).await
        {
            Ok(()) | Err(tessera_inventory::AppError::Duplicate(_)) => {}
            Err(tessera_inventory::AppError::Domain(InventoryError::BelowZero { .. })) => {
                anyhow::bail!("the demo catalogue has a negative stock for {sku}")
            }
            Err(error) => return Err(error).context("cannot add the demo catalogue"),
        }
    }
    Ok(())
}

fn print_banner(data: &Path, address: SocketAddr, took: Duration, staff: &[(String, String)]) {
    let base = format!("http://{address}");
    println!("Tessera is up (embedded) in {} ms", took.as_millis());
    println!("  data      {}", data.display());
    println!("  API       {base}/api/v1");
    println!("  OpenAPI   {base}/openapi.json");
    println!("  health    {base}/health   readiness {base}/ready");
    for (email, password) in staff {
        println!("  sign in   {email} / {password}");
    }
    println!("  try       curl -s {base}/api/v1/products");
    println!(
        "            curl -s {base}/api/v1/auth/token -H 'content-type: application/json' -d '{{\"email\":\"admin@tessera.local\",\"password\":\"admin\"}}'"
    );
    println!("listening on {base}");
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
