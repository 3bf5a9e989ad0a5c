//! `tessera serve <service>`: one service, or the gateway, in a process of its own (the
//! distributed topology). A service keeps its data in its own PostgreSQL database (created if
//! missing) and talks to the others through NATS JetStream; it serves its own routes for the
//! gateway. The gateway reaches each service over HTTP. Several replicas of a service may run
//! side by side on one database: one relay, one consumer per subscription and one runner per
//! projection are active at a time; the others stand by.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::routing::get;
use clap::Args;
use tessera_bus::{NatsOptions, NatsTransport};
use tessera_gateway::catalogue::{Catalogue, CatalogueInvalidation, RedisCache, RedisSettings};
use tessera_gateway::{Gateway, GatewayConfig, Http, ServiceClient, Services, TokenSettings};
use tessera_kernel::{Clock, IdGen, SystemClock, UuidV7Gen};
use tessera_runtime::{Node, NodeOptions, Service, Storage, open_store};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// inventory, orders, payments, customers, support, or gateway.
    service: String,
    /// The PostgreSQL server; each service uses its own database on it.
    #[arg(long, env = "TESSERA_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432")]
    database_url: String,
    /// Prefix of the database names (`<prefix>_<service>`).
    #[arg(long, env = "TESSERA_DATABASE_PREFIX", default_value = "tessera")]
    database_prefix: String,
    #[arg(long, env = "TESSERA_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Prefix of every NATS subject and stream.
    #[arg(long, env = "TESSERA_NATS_NAMESPACE", default_value = "tessera")]
    nats_namespace: String,
    /// Copies of each stream in the NATS cluster (3 in production: see deploy/nats).
    #[arg(long, env = "TESSERA_NATS_REPLICAS", default_value_t = 1)]
    nats_replicas: usize,
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// For the gateway: a service's address, `<name>=http://host:port`; once per service.
    #[arg(long = "service-url", value_name = "NAME=URL")]
    service_urls: Vec<String>,
    /// For the gateway: a member of staff who signs in with a password, `role:email:password`
    /// (role admin or support); repeat it, or separate them with commas in TESSERA_STAFF. None by
    /// default: the distributed gateway has no demo users.
    #[arg(long = "staff", env = "TESSERA_STAFF", value_delimiter = ',', value_name = "ROLE:EMAIL:PASSWORD")]
    staff: Vec<String>,
    /// For a service: the gateway's public keys (`http://gateway:8080/.well-known/jwks.json`).
    /// Every request but the probes must carry a token they verify: nothing trusts the network.
    #[arg(long, env = "TESSERA_JWKS_URL", value_name = "URL")]
    jwks_url: Option<String>,
    /// For a service: accept requests without a token. Only for a service reachable by nothing
    /// but the gateway, on a network you trust.
    #[arg(long, env = "TESSERA_INSECURE_NO_AUTH", conflicts_with = "jwks_url")]
    insecure_no_auth: bool,
    /// For customers: the vault's master key file (mode 0600; 32 bytes, base64). The
    /// `TESSERA_MASTER_KEY` variable is the alternative.
    #[arg(long, env = "TESSERA_MASTER_KEY_FILE", value_name = "PATH")]
    master_key_file: Option<std::path::PathBuf>,
    /// For support: where tickets' attachments are kept (required by support). `s3://bucket` for
    /// any S3-compatible store, configured by the usual AWS_* variables (AWS_ENDPOINT_URL,
    /// AWS_ALLOW_HTTP, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION), or
    /// `file:///absolute/folder` for a folder every replica of support shares.
    #[arg(long, env = "TESSERA_ATTACHMENTS_URL", value_name = "URL")]
    attachments_url: Option<String>,
    /// How long an order waits for the card network before it is rejected (seconds).
    #[arg(long, default_value_t = 10.0, env = "TESSERA_PAYMENT_TIMEOUT")]
    payment_timeout: f64,
    /// How long the simulated network takes for the slow test card (seconds).
    #[arg(long, default_value_t = 15.0, env = "TESSERA_SLOW_CARD_DELAY")]
    slow_card_delay: f64,
    /// For payments: the share (0 to 1) of card network operations that fail transiently.
    #[arg(long, default_value_t = 0.0, env = "TESSERA_CARD_FAILURE_RATE")]
    card_failure_rate: f64,
    /// For payments: milliseconds the simulated card network adds to every operation.
    #[arg(long, default_value_t = 0, env = "TESSERA_CARD_LATENCY_MS")]
    card_latency_ms: u64,
    /// For the gateway: a Redis server (`redis://host:6379`) holding the catalogue cache that
    /// every gateway replica shares, emptied by inventory's events (through NATS). Without it
    /// product reads go to inventory each time. If Redis stops, reads fall back to inventory.
    #[arg(long, env = "TESSERA_REDIS_URL", value_name = "URL")]
    redis_url: Option<String>,
    /// For the gateway: the prefix of the cache's keys in Redis.
    #[arg(long, env = "TESSERA_REDIS_PREFIX", default_value = "tessera:catalogue")]
    redis_prefix: String,
}

const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl ServeArgs {
    /// The service this process runs (or `gateway`).
    pub fn service(&self) -> &str {
        &self.service
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let storage =
        Storage::Postgres { server: args.database_url.clone(), prefix: args.database_prefix.clone() };
    if args.service == tessera_gateway::SERVICE {
        return serve_gateway(&args, &storage).await;
    }
    let ids: Arc<dyn IdGen> = Arc::new(UuidV7Gen);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let open = |name: &'static str, migrations: Vec<tessera_store::MigrationSet>| {
        let storage = storage.clone();
        async move {
            open_store(&storage, name, &migrations)
                .await
                .with_context(|| format!("cannot open the {name} database"))
        }
    };
    let seconds = |value: f64, flag: &str| {
        Duration::try_from_secs_f64(value)
            .with_context(|| format!("--{flag} must be a non-negative number of seconds"))
    };
    let service: Arc<dyn Service> = match args.service.as_str() {
        "inventory" => Arc::new(tessera_inventory::InventoryService::new(
            open(tessera_inventory::SERVICE, tessera_inventory::migrations()).await?,
            ids,
            clock,
        )),
        "payments" => {
            let network = tessera_payments::SimulatedNetwork::new(tessera_payments::NetworkSettings {
                slow_delay: seconds(args.slow_card_delay, "slow-card-delay")?,
                failure_rate: if (0.0..=1.0).contains(&args.card_failure_rate) {
                    args.card_failure_rate
                } else {
                    anyhow::bail!("--card-failure-rate must be a share from 0 to 1")
                },
                latency: Duration::from_millis(args.card_latency_ms),
                ..tessera_payments::NetworkSettings::default()
            });
            Arc::new(tessera_payments::PaymentsService::new(
                open(tessera_payments::SERVICE, tessera_payments::migrations()).await?,
                Arc::new(network),
                ids,
                clock,
            ))
        }
        "orders" => {
            let settings = tessera_orders::OrdersSettings {
                payment_timeout: seconds(args.payment_timeout, "payment-timeout")?,
                ..tessera_orders::OrdersSettings::default()
            };
            Arc::new(tessera_orders::OrdersService::new(
                open(tessera_orders::SERVICE, tessera_orders::migrations()).await?,
                &settings,
                crate::keys::open_vault(&storage, crate::keys::distributed(args.master_key_file.as_ref())?)
                    .await?,
                ids,
                clock,
            ))
        }
        "customers" => Arc::new(tessera_customers::CustomersService::new(
            open(tessera_customers::SERVICE, tessera_customers::migrations()).await?,
            crate::keys::open_vault(&storage, crate::keys::distributed(args.master_key_file.as_ref())?)
                .await?,
            ids,
            clock,
        )),
        "support" => {
            // No default: replicas must share one store, and a folder of this machine's would
            // quietly split the files between them.
            let url = args.attachments_url.as_deref().context(
                "support needs somewhere to keep attachments: --attachments-url s3://bucket \
                 or file:///absolute/folder (or TESSERA_ATTACHMENTS_URL)",
            )?;
            let attachments = tessera_support::AttachmentStore::open(url).context("--attachments-url")?;
            Arc::new(tessera_support::SupportService::new(
                open(tessera_support::SERVICE, tessera_support::migrations()).await?,
                crate::keys::open_vault(&storage, crate::keys::distributed(args.master_key_file.as_ref())?)
                    .await?,
                attachments,
                ids,
                clock,
            ))
        }
        other => bail!(
            "no service named {other}: choose inventory, orders, payments, customers, support or gateway"
        ),
    };
    let name = service.name();
    let auth = match (&args.jwks_url, args.insecure_no_auth) {
        (Some(url), _) => {
            let source = tessera_web::token::HttpJwks::new(url).context("--jwks-url")?;
            Some(Arc::new(tessera_web::token::ServiceAuth::new(
                Box::new(source),
                tessera_web::token::TokenRules::default(),
            )))
        }
        (None, true) => {
            tracing::warn!("{name} accepts requests without a token (--insecure-no-auth)");
            None
        }
        (None, false) => bail!(
            "{name} needs the gateway's public keys to check tokens: \
             --jwks-url http://<gateway>/.well-known/jwks.json (or TESSERA_JWKS_URL)"
        ),
    };
    let options = NatsOptions {
        namespace: args.nats_namespace.clone(),
        replicas: args.nats_replicas,
        ..NatsOptions::default()
    };
    let transport =
        NatsTransport::connect(&args.nats_url, options).await.context("cannot connect to NATS")?;
    let node = Node::start(vec![service], Arc::new(transport), NodeOptions::default())?;
    let routes = node.service_router(name).context("the service's routes")?;
    let readiness = node.readiness();
    let document = Arc::new(node.openapi().clone());
    let router = Router::new()
        .route("/health", get(tessera_web::health))
        .route(
            "/ready",
            get(move || {
                let readiness = readiness.clone();
                async move { tessera_web::ready(&readiness).await }
            }),
        )
        .route("/openapi.json", get(move || async move { axum::Json(document.as_ref().clone()) }))
        .merge(routes)
        .merge(tessera_runtime::metrics::route());
    let router = match auth {
        Some(auth) => auth.protect(router),
        None => router,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("{name}: databases {}_*, NATS namespace {}", args.database_prefix, args.nats_namespace);
    println!("listening on http://{}", listener.local_addr()?);
    tessera_web::serve(listener, router, crate::up::shutdown_signal()).await?;
    node.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}

async fn serve_gateway(args: &ServeArgs, storage: &Storage) -> anyhow::Result<()> {
    let mut urls = std::collections::HashMap::new();
    for entry in &args.service_urls {
        let (name, url) =
            entry.split_once('=').with_context(|| format!("--service-url {entry}: use NAME=URL"))?;
        urls.insert(name.to_owned(), url.to_owned());
    }
    let mut client = |name: &'static str| -> anyhow::Result<Arc<dyn ServiceClient>> {
        let url = urls.remove(name).with_context(|| {
            format!("give the {name} service's address: --service-url {name}=http://host:port")
        })?;
        Ok(Arc::new(Http::new(name, &url)))
    };
    let services = Services {
        inventory: client(tessera_inventory::SERVICE)?,
        orders: client(tessera_orders::SERVICE)?,
        payments: client(tessera_payments::SERVICE)?,
        customers: client(tessera_customers::SERVICE)?,
        support: client(tessera_support::SERVICE)?,
    };
    if let Some(unknown) = urls.keys().next() {
        bail!("--service-url names no service the gateway calls: {unknown}");
    }
    // The public document: each service's own, fetched from it.
    let mut document = utoipa::openapi::OpenApi::default();
    for service in
        [&services.inventory, &services.orders, &services.payments, &services.customers, &services.support]
    {
        let request = axum::http::Request::get("/openapi.json").body(axum::body::Body::empty())?;
        match service.send(request).await {
            Ok(response) => {
                let bytes = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
                match serde_json::from_slice::<utoipa::openapi::OpenApi>(&bytes) {
                    Ok(part) => document.merge(part),
                    Err(error) => {
                        tracing::warn!(service = service.name(), %error, "a service's document is unreadable")
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "a service's routes are missing from /openapi.json"),
        }
    }
    let store = open_store(storage, tessera_gateway::SERVICE, &tessera_gateway::migrations())
        .await
        .context("cannot open the gateway's database")?;
    let mut staff = Vec::new();
    for entry in &args.staff {
        let mut parts = entry.splitn(3, ':');
        let (Some(role), Some(email), Some(password)) = (parts.next(), parts.next(), parts.next()) else {
            bail!("--staff {entry:?}: use role:email:password");
        };
        let role = match role {
            "admin" => tessera_gateway::Role::Admin,
            "support" => tessera_gateway::Role::Support,
            other => bail!("--staff: the role {other:?} is not admin or support"),
        };
        if password.is_empty() {
            bail!("--staff {email}: the password is empty");
        }
        staff.push(tessera_gateway::StaffUser {
            email: email.to_owned(),
            password: password.to_owned(),
            role,
        });
    }
    let config = GatewayConfig { staff, ..GatewayConfig::default() };
    let mut gateway = Gateway::new(services, store.clone(), config, TokenSettings::default()).await?;
    // The shared cache, and the subscription to inventory's events that keeps it fresh (one
    // durable consumer for every replica: each event empties the shared entries once).
    let node = match &args.redis_url {
        Some(url) => {
            let settings = RedisSettings { prefix: args.redis_prefix.clone(), ..RedisSettings::new(url) };
            let catalogue = Catalogue::new(Arc::new(RedisCache::new(settings).context("--redis-url")?));
            let invalidation = CatalogueInvalidation::new(catalogue.clone(), store);
            let options = NatsOptions {
                namespace: args.nats_namespace.clone(),
                replicas: args.nats_replicas,
                ..NatsOptions::default()
            };
            let transport =
                NatsTransport::connect(&args.nats_url, options).await.context("cannot connect to NATS")?;
            gateway = gateway.with_catalogue(catalogue);
            // Only the host: the URL may hold a password.
            let host = url.rsplit_once('@').map_or(url.as_str(), |(_, host)| host);
            println!("catalogue cache: Redis at {host}");
            Some(Node::start(vec![Arc::new(invalidation)], Arc::new(transport), NodeOptions::default())?)
        }
        None => None,
    };
    let router = gateway
        .router(document, None)
        .merge(tessera_runtime::metrics::route())
        .merge(crate::web_ui::routes());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("gateway serving");
    println!("listening on http://{}", listener.local_addr()?);
    tessera_web::serve(listener, router, crate::up::shutdown_signal()).await?;
    if let Some(node) = node {
        node.shutdown(SHUTDOWN_GRACE).await;
    }
    Ok(())
}
