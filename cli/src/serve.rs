//! `tessera serve <service>`: one service, or the gateway, in a process of its own (the
//! distributed topology). A service keeps its data in its own PostgreSQL database (created if
//! missing) and talks to the others through NATS JetStream; it serves its own routes for the
//! gateway. The gateway reaches each service over HTTP. Several replicas of a service may run
//! side by side on one database: one relay, one consumer per subscription and one runner per
//! projection are active at a time; the others stand by.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::routing::get;
use tessera_bus::{NatsOptions, NatsTransport, NkeySeed};
use tessera_gateway::catalogue::{Catalogue, CatalogueInvalidation, RedisCache, RedisSettings};
use tessera_gateway::{Gateway, GatewayConfig, Http, PublicDocument, ServiceClient, Services, TokenSettings};
use tessera_kernel::{SystemClock, UuidV7Gen};
use tessera_runtime::audit_archive::{ARCHIVE_EVERY, ArchivePolicy, AuditArchive, open_archive};
use tessera_runtime::{Node, NodeOptions, Storage, open_store};

pub use crate::settings::ServeArgs;

const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// For `tessera serve`: the configuration file's `[serve]` table turned into flags placed
/// before the command line's own, so the layers are defaults, file, environment, flags. A key
/// is a flag's long name with `_` for `-`; `[serve.<service>]` overrides `[serve]` for that
/// service. A key that names no flag is an error naming it. `env` looks a variable up.
pub fn with_file_layer(
    args: Vec<std::ffi::OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<std::ffi::OsString>> {
    use clap::Args as _;
    let text: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let Some(at) = text.iter().position(|a| a == "serve") else { return Ok(args) };
    let given = |long: &str| {
        text[at + 1..].iter().any(|a| a == &format!("--{long}") || a.starts_with(&format!("--{long}=")))
    };
    let flag_value = text[at + 1..]
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| text.get(at + 2 + i).cloned())
        .or_else(|| text[at + 1..].iter().find_map(|a| a.strip_prefix("--config=").map(str::to_owned)));
    let path = match flag_value.or_else(|| env("TESSERA_CONFIG")) {
        Some(path) => std::path::PathBuf::from(path),
        None if std::path::Path::new("tessera.toml").exists() => "tessera.toml".into(),
        None => return Ok(args),
    };
    let file = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&file).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let Some(serve) = table.get("serve") else { return Ok(args) };
    let serve = serve.as_table().with_context(|| format!("{}: `serve` must be a table", path.display()))?;
    let service = text[at + 1..].iter().find(|a| !a.starts_with('-')).cloned().unwrap_or_default();
    let command = ServeArgs::augment_args(clap::Command::new("serve"));
    let mut settings: Vec<(String, &toml::Value)> = Vec::new();
    for (key, value) in serve {
        match (value, serve_service_name(key)) {
            (toml::Value::Table(_), true) => {}
            _ => settings.push((key.clone(), value)),
        }
    }
    if let Some(toml::Value::Table(own)) = serve.get(&service) {
        for (key, value) in own {
            settings.retain(|(k, _)| k != key);
            settings.push((key.clone(), value));
        }
    }
    let mut layer: Vec<std::ffi::OsString> = Vec::new();
    for (key, value) in settings {
        let long = key.replace('_', "-");
        let Some(arg) =
            command.get_arguments().find(|a| a.get_long() == Some(long.as_str()) && long != "config")
        else {
            bail!(
                "{}: [serve] {key} is not a setting of `tessera serve` (see `tessera serve --help`)",
                path.display()
            );
        };
        let from_env = arg.get_env().and_then(|name| env(&name.to_string_lossy())).is_some();
        if from_env || given(&long) {
            continue;
        }
        let items: Vec<&toml::Value> = match value {
            toml::Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for item in items {
            let text = match item {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                toml::Value::Boolean(true) => {
                    layer.push(format!("--{long}").into());
                    continue;
                }
                toml::Value::Boolean(false) => continue,
                other => bail!("{}: [serve] {key}: {other} is not a value a flag takes", path.display()),
            };
            layer.push(format!("--{long}={text}").into());
        }
    }
    let mut args = args;
    args.splice(at + 1..at + 1, layer);
    Ok(args)
}

/// A `[serve.<name>]` table is one service's (or the gateway's) own settings.
fn serve_service_name(key: &str) -> bool {
    key == tessera_gateway::SERVICE || crate::registry::find(key).is_some()
}

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
    let Some(descriptor) = crate::registry::find(&args.service) else {
        let names: Vec<&str> = crate::registry::names().collect();
        bail!("no service named {}: choose {} or gateway", args.service, names.join(", "));
    };
    let mut serving = crate::registry::Serving {
        args: &args,
        storage: storage.clone(),
        ids: Arc::new(UuidV7Gen),
        clock: Arc::new(SystemClock),
    };
    let service = (descriptor.serve)(&mut serving).await?;
    let name = service.name();
    let auth = match (&args.jwks_url, args.insecure_no_auth) {
        (Some(url), _) => {
            let source = match &args.jwks_ca {
                Some(path) => {
                    let pem = std::fs::read(path).with_context(|| format!("--jwks-ca {}", path.display()))?;
                    tessera_web::token::HttpJwks::with_ca(url, &pem)
                }
                None => tessera_web::token::HttpJwks::new(url),
            }
            .context("--jwks-url")?;
            Some(Arc::new(tessera_web::token::ServiceAuth::new(
                Box::new(source),
                tessera_web::token::TokenRules::for_service(name),
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
    let transport = connect_bus(&args, name).await?;
    let audit_archive = match &args.audit_archive_url {
        Some(url) => Some(AuditArchive {
            objects: open_archive(url).context("--audit-archive-url")?,
            policy: ArchivePolicy {
                older_than: Duration::from_secs(u64::from(args.audit_archive_after_days) * 86_400),
                ..ArchivePolicy::default()
            },
            every: ARCHIVE_EVERY,
        }),
        None => None,
    };
    let node = Node::start(
        vec![service],
        Arc::new(transport),
        NodeOptions { upcasters: crate::contracts::upcasters(), audit_archive, ..NodeOptions::default() },
    )?;
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
    serve_metrics(&args).await?;
    println!("{name}: databases {}_*, NATS namespace {}", args.database_prefix, args.nats_namespace);
    serve_http(&args, listener, router).await?;
    node.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}

/// Serves `router` on `listener` until a stop signal: HTTPS with --tls-cert and --tls-key,
/// HTTP otherwise. Prints the address first, which scripts and tests wait for.
async fn serve_http(
    args: &ServeArgs,
    listener: tokio::net::TcpListener,
    router: Router,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let config = tessera_web::Identity::from_pem_files(cert, key)
                .and_then(tessera_web::Identity::server_config)
                .context("--tls-cert and --tls-key")?;
            println!("listening on https://{address}");
            tessera_web::serve_tls(listener, router, config, crate::up::shutdown_signal())
                .await
                .context("the HTTPS server failed")
        }
        _ => {
            println!("listening on http://{address}");
            tessera_web::serve(listener, router, crate::up::shutdown_signal())
                .await
                .context("the HTTP server failed")
        }
    }
}

/// The bus as `service`: with its own credentials when it has them, and its own stream
/// declared, so that its consumers can start before it first publishes.
async fn connect_bus(args: &ServeArgs, service: &str) -> anyhow::Result<NatsTransport> {
    let nkey_seed = match &args.nats_nkey_file {
        Some(path) => Some(NkeySeed(
            std::fs::read_to_string(path)
                .with_context(|| format!("--nats-nkey-file {}", path.display()))?
                .trim()
                .to_owned(),
        )),
        None => None,
    };
    let options = NatsOptions {
        namespace: args.nats_namespace.clone(),
        replicas: args.nats_replicas,
        service: Some(service.to_owned()),
        nkey_seed,
        tls_roots: args.nats_ca.clone(),
        ..NatsOptions::default()
    };
    let transport =
        NatsTransport::connect(&args.nats_url, options).await.context("cannot connect to NATS")?;
    transport.declare_own_stream().await.context("cannot create the service's stream on NATS")?;
    Ok(transport)
}

async fn serve_gateway(args: &ServeArgs, storage: &Storage) -> anyhow::Result<()> {
    let mut urls = std::collections::HashMap::new();
    for entry in &args.service_urls {
        let (name, url) =
            entry.split_once('=').with_context(|| format!("--service-url {entry}: use NAME=URL"))?;
        urls.insert(name.to_owned(), url.to_owned());
    }
    let ca = match &args.service_ca {
        Some(path) => Some(
            std::fs::read(path).with_context(|| format!("cannot read --service-ca {}", path.display()))?,
        ),
        None => None,
    };
    let mut client = |name: &'static str| -> anyhow::Result<Arc<dyn ServiceClient>> {
        let url = urls.remove(name).with_context(|| {
            format!("give the {name} service's address: --service-url {name}=http://host:port")
        })?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--service-url {name}={url}: the address starts with http:// or https://");
        }
        Ok(Arc::new(Http::trusting(name, &url, ca.as_deref()).context("--service-ca")?))
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
    // The public document: each service's own, read from it now and again later (a service
    // still starting now, or one upgraded since).
    let clients: Vec<Arc<dyn ServiceClient>> = services.all().into_iter().cloned().collect();
    let (first, missing) = read_documents(&clients).await;
    let document = PublicDocument::new(first);
    tokio::spawn(refresh_documents(clients, document.clone(), missing));
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
    let mut trusted_proxies = Vec::new();
    for proxy in &args.trusted_proxies {
        match crate::config::trusted_proxy(proxy) {
            Some(net) => trusted_proxies.push(net),
            None => bail!("--trusted-proxy {proxy}: give a CIDR such as 10.0.0.0/8, or an address"),
        }
    }
    // The signing keys are sealed by the vault, as the services' personal data is.
    let key_sealer =
        crate::keys::open_vault(storage, crate::keys::distributed(args.master_key_file.as_ref())?)
            .await
            .context("the gateway seals its signing keys with the vault")?;
    let config =
        GatewayConfig { staff, trusted_proxies, key_sealer: Some(key_sealer), ..GatewayConfig::default() };
    let mut gateway = Gateway::new(services, store.clone(), config, TokenSettings::default()).await?;
    let transport: Arc<dyn tessera_bus::Transport> =
        Arc::new(connect_bus(args, tessera_gateway::SERVICE).await?);
    // Clients waiting for orders are woken by the orders' messages, which every replica of
    // the gateway watches on its own.
    gateway = gateway.with_order_events(transport.clone());
    // The shared cache, and the subscription to inventory's events that keeps it fresh (one
    // durable consumer for every replica: each event empties the shared entries once).
    let node = match &args.redis_url {
        Some(url) => {
            let settings = RedisSettings { prefix: args.redis_prefix.clone(), ..RedisSettings::new(url) };
            let catalogue = Catalogue::new(Arc::new(RedisCache::new(settings).context("--redis-url")?));
            let invalidation = CatalogueInvalidation::new(catalogue.clone(), store);
            gateway = gateway.with_catalogue(catalogue);
            // Only the host: the URL may hold a password.
            let host = url.rsplit_once('@').map_or(url.as_str(), |(_, host)| host);
            println!("catalogue cache: Redis at {host}");
            Some(Node::start(vec![Arc::new(invalidation)], transport, NodeOptions::default())?)
        }
        None => None,
    };
    let router = gateway
        .router_publishing(document, None)
        .merge(tessera_runtime::metrics::route())
        .merge(crate::web_ui::routes());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    serve_metrics(args).await?;
    println!("gateway serving");
    serve_http(args, listener, router).await?;
    if let Some(node) = node {
        node.shutdown(SHUTDOWN_GRACE).await;
    }
    Ok(())
}

/// How often the gateway reads the services' documents again while one is missing, and after.
const DOCUMENTS_RETRY: Duration = Duration::from_secs(2);
const DOCUMENTS_REFRESH: Duration = Duration::from_secs(300);

/// Every service's OpenAPI document merged, and how many services did not give theirs.
async fn read_documents(clients: &[Arc<dyn ServiceClient>]) -> (utoipa::openapi::OpenApi, usize) {
    let mut document = utoipa::openapi::OpenApi::default();
    let mut missing = 0;
    for service in clients {
        match read_document(service.as_ref()).await {
            Ok(part) => document.merge(part),
            Err(error) => {
                missing += 1;
                tracing::info!(service = service.name(), %error, "a service's routes are not in /openapi.json yet");
            }
        }
    }
    (document, missing)
}

async fn read_document(service: &dyn ServiceClient) -> anyhow::Result<utoipa::openapi::OpenApi> {
    let request = axum::http::Request::get("/openapi.json").body(axum::body::Body::empty())?;
    let response = service.send(request).await?;
    anyhow::ensure!(response.status().is_success(), "it answered {}", response.status());
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await?.to_bytes();
    Ok(serde_json::from_slice(&bytes)?)
}

/// Reads the documents again every [`DOCUMENTS_RETRY`] while one is missing, then every
/// [`DOCUMENTS_REFRESH`], publishing each reading that lacks no more services than the one
/// published (a service that stops answering keeps its routes documented).
async fn refresh_documents(
    clients: Vec<Arc<dyn ServiceClient>>,
    document: PublicDocument,
    mut missing: usize,
) {
    loop {
        tokio::time::sleep(if missing > 0 { DOCUMENTS_RETRY } else { DOCUMENTS_REFRESH }).await;
        let (next, now_missing) = read_documents(&clients).await;
        if now_missing <= missing {
            if now_missing == 0 && missing > 0 {
                tracing::info!("every service's routes are in /openapi.json");
            }
            document.replace(next);
            missing = now_missing;
        }
    }
}

/// `/metrics` on a listener of its own, open to whoever reaches it, with `--metrics-listen`.
async fn serve_metrics(args: &ServeArgs) -> anyhow::Result<()> {
    let Some(address) = args.metrics_listen else { return Ok(()) };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} for metrics"))?;
    println!("metrics on http://{}/metrics", listener.local_addr()?);
    tokio::spawn(tessera_web::serve(
        listener,
        tessera_runtime::metrics::open_route(),
        crate::up::shutdown_signal(),
    ));
    Ok(())
}

#[cfg(test)]
mod file_layer_tests {
    use std::ffi::OsString;

    use super::with_file_layer;

    fn layered(file: &str, command_line: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Vec<String>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, file)?;
        let mut args: Vec<OsString> = vec!["tessera".into(), "serve".into()];
        args.extend(command_line.iter().map(OsString::from));
        args.push(format!("--config={}", path.display()).into());
        let env: Vec<(String, String)> =
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let out = with_file_layer(args, |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))?;
        Ok(out.into_iter().map(|a| a.to_string_lossy().into_owned()).collect())
    }

    const FILE: &str = r#"
        [serve]
        database_url = "postgres://db.internal:5432"
        nats_replicas = 3
        staff = ["admin:a@x.test:pw1", "support:s@x.test:pw2"]
        insecure_no_auth = false

        [serve.payments]
        card_failure_rate = 0.25
        listen = "0.0.0.0:9003"
    "#;

    #[test]
    fn the_file_gives_flags_under_the_command_line_and_the_environment() {
        let args = layered(FILE, &["payments", "--listen=127.0.0.1:1"], &[("TESSERA_NATS_REPLICAS", "5")])
            .expect("layered");
        assert!(args.contains(&"--database-url=postgres://db.internal:5432".to_owned()), "{args:?}");
        assert!(args.contains(&"--staff=admin:a@x.test:pw1".to_owned()), "{args:?}");
        assert!(args.contains(&"--staff=support:s@x.test:pw2".to_owned()), "{args:?}");
        assert!(args.contains(&"--card-failure-rate=0.25".to_owned()), "the service's own table: {args:?}");
        assert!(!args.iter().any(|a| a.starts_with("--nats-replicas")), "the environment wins: {args:?}");
        assert!(!args.iter().any(|a| a == "--listen=0.0.0.0:9003"), "the command line wins: {args:?}");
        assert!(!args.iter().any(|a| a.starts_with("--insecure")), "false is no flag: {args:?}");
        let other = layered(FILE, &["orders"], &[]).expect("layered");
        assert!(!other.iter().any(|a| a.starts_with("--card-failure-rate")), "{other:?}");
        assert!(other.contains(&"--nats-replicas=3".to_owned()), "{other:?}");
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        let error = layered("[serve]\ndatabase_ulr = \"x\"\n", &["orders"], &[]).expect_err("unknown key");
        assert!(error.to_string().contains("database_ulr"), "{error}");
    }

    #[test]
    fn the_layered_flags_parse_and_a_bad_value_names_its_flag() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(subcommand)]
            command: Command,
        }
        #[derive(Debug, clap::Subcommand)]
        enum Command {
            Serve(super::ServeArgs),
        }
        let args = layered(FILE, &["payments"], &[]).expect("layered");
        let Command::Serve(serve) = Cli::try_parse_from(&args).expect("parses").command;
        assert_eq!(serve.listen.to_string(), "0.0.0.0:9003");
        assert_eq!(serve.nats_replicas, 3);
        let bad = layered("[serve]\nlisten = \"not an address\"\n", &["orders"], &[]).expect("layered");
        let error = Cli::try_parse_from(&bad).expect_err("a bad address");
        assert!(error.to_string().contains("--listen"), "{error}");
    }
}
