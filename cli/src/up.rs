//! `tessera up`: the whole system embedded in one process. One SQLite file per service in the
//! data folder, the in-process transport, every service's routes on one listener. A demo
//! catalogue is added on first start. SIGINT or SIGTERM stops it gracefully: no new requests,
//! units in flight finish, and what is not yet delivered waits in the outboxes for the next start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tessera_contracts::{Money, Sku};
use tessera_inventory::domain::InventoryError;
use tessera_runtime::audit_archive::ArchivePolicy;
use tessera_support::domain::MessageRetention;

use crate::config::Config;
use crate::data_lock::DataLock;
use crate::embedded::{Embedded, EmbeddedSettings};
use crate::settings::Retention;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// A configuration file (default: ./tessera.toml when there is one; see tessera.example.toml).
    #[arg(long, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    /// The data folder: one SQLite file per service [default: tessera-data].
    #[arg(long, env = "TESSERA_DATA")]
    data: Option<PathBuf>,
    /// Where to serve HTTP (`host:port`; a name such as localhost is resolved); port 0 picks a
    /// free port [default: 127.0.0.1:8080].
    #[arg(long, env = "TESSERA_LISTEN", value_parser = crate::listen::resolve)]
    listen: Option<SocketAddr>,
    /// Seconds an order waits for the card network before it is rejected [default: 10].
    #[arg(long, env = "TESSERA_PAYMENT_TIMEOUT")]
    payment_timeout: Option<f64>,
    /// Seconds the simulated network takes for the slow test card [default: 15].
    #[arg(long, env = "TESSERA_SLOW_CARD_DELAY")]
    slow_card_delay: Option<f64>,
    /// Share (0 to 1) of card network operations that fail transiently [default: 0].
    #[arg(long, env = "TESSERA_CARD_FAILURE_RATE")]
    card_failure_rate: Option<f64>,
    /// Milliseconds the simulated card network adds to every operation [default: 0].
    #[arg(long, env = "TESSERA_CARD_LATENCY_MS")]
    card_latency_ms: Option<u64>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "TESSERA_TLS_CERT", requires = "tls_key", conflicts_with = "tls_self_signed")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "TESSERA_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate generated at start (written to <data>/tls/self-signed.pem).
    #[arg(long, env = "TESSERA_TLS_SELF_SIGNED")]
    tls_self_signed: bool,
}

impl UpArgs {
    /// The effective configuration: defaults, file, environment, then these flags.
    pub fn configuration(&self) -> anyhow::Result<Config> {
        let mut flags = serde_json::Map::new();
        if let Some(data) = &self.data {
            flags.insert("data".into(), serde_json::json!(data));
        }
        if let Some(listen) = &self.listen {
            flags.insert("listen".into(), serde_json::json!(listen.to_string()));
        }
        if let Some(seconds) = self.payment_timeout {
            flags.insert("payment_timeout_seconds".into(), serde_json::json!(seconds));
        }
        if let Some(seconds) = self.slow_card_delay {
            flags.insert("slow_card_delay_seconds".into(), serde_json::json!(seconds));
        }
        if let Some(rate) = self.card_failure_rate {
            flags.insert("card_failure_rate".into(), serde_json::json!(rate));
        }
        if let Some(ms) = self.card_latency_ms {
            flags.insert("card_latency_ms".into(), serde_json::json!(ms));
        }
        let mut tls = serde_json::Map::new();
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            tls.insert("cert".into(), serde_json::json!(cert));
            tls.insert("key".into(), serde_json::json!(key));
        }
        if self.tls_self_signed {
            tls.insert("self_signed".into(), serde_json::json!(true));
        }
        if !tls.is_empty() {
            flags.insert("tls".into(), serde_json::Value::Object(tls));
        }
        Config::load(self.config.as_deref(), &serde_json::Value::Object(flags))
    }
}

/// How long a graceful stop may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub(crate) const DEMO_CATALOGUE: [(&str, &str, &str, i64, i64); 5] = [
    ("TEA-001", "Sencha", "Steamed Japanese green tea, 100 g", 850, 500),
    ("TEA-002", "Assam", "Malty black tea from India, 250 g", 1200, 300),
    ("MUG-001", "Stoneware mug", "Hand-glazed, 350 ml", 1800, 120),
    ("POT-001", "Cast-iron teapot", "Tetsubin, 0.8 l", 6400, 25),
    ("LTD-001", "Anniversary tin", "Limited edition: only three were made", 2500, 3),
];

fn seconds(value: f64, key: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .with_context(|| format!("{key} must be a non-negative number of seconds"))
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = args.configuration()?;
    let payment_timeout = seconds(config.payment_timeout_seconds, "payment_timeout_seconds")?;
    let slow_delay = seconds(config.slow_card_delay_seconds, "slow_card_delay_seconds")?;
    // The port first: a start refused for a taken port must leave the data folder as it was
    // (no master key, no databases created for nothing).
    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| {
        format!("cannot listen on {}; choose another address with --listen", config.listen)
    })?;
    std::fs::create_dir_all(&config.data)
        .with_context(|| format!("cannot create the data folder {}", config.data.display()))?;
    let data =
        config.data.canonicalize().with_context(|| format!("cannot resolve {}", config.data.display()))?;
    // Held until the process ends; before anything else in the folder is opened or written.
    let _lock = DataLock::acquire(&data)?;
    let identity = match (&config.tls.cert, &config.tls.key, config.tls.self_signed) {
        (Some(cert), Some(key), _) => Some(tessera_web::Identity::from_pem_files(cert, key)?),
        (_, _, true) => {
            let hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), config.listen.ip().to_string()];
            let identity = tessera_web::Identity::self_signed(&hosts)?;
            let folder = data.join("tls");
            std::fs::create_dir_all(&folder)?;
            std::fs::write(folder.join("self-signed.pem"), &identity.certificate_pem)?;
            Some(identity)
        }
        _ => None,
    };
    let gateway = config.gateway_config();
    let settings = EmbeddedSettings {
        payment_timeout,
        slow_card_delay: slow_delay,
        card_failure_rate: config.card_failure_rate,
        card_latency: Duration::from_millis(config.card_latency_ms),
        gateway,
        sealer: None,
        catalogue_cache: config.gateway.catalogue_cache,
        attachment_limits: config.attachment_limits(),
        retention: Retention {
            closed_ticket_messages: MessageRetention::days(config.support.closed_ticket_messages_days),
            audit_archive: ArchivePolicy {
                older_than: Duration::from_secs(u64::from(config.audit.archive_after_days) * 86_400),
                segment_records: config.audit.segment_records,
            },
        },
    };
    let staff: Vec<_> =
        settings.gateway.staff.iter().map(|u| (u.email.clone(), u.password.clone())).collect();
    refuse_demo_staff_off_loopback(config.listen, &staff)?;
    let system = Embedded::start(&data, settings).await?;
    seed_catalogue(&system.inventory).await?;
    let address = listener.local_addr()?;
    let scheme = if identity.is_some() { "https" } else { "http" };
    print_banner(&data, scheme, address, started.elapsed(), &staff);
    if config.tls.self_signed {
        println!("  trust     {}", data.join("tls").join("self-signed.pem").display());
    }

    match identity {
        Some(identity) => {
            let config = identity.server_config()?;
            tessera_web::serve_tls(listener, system.router.clone(), config, shutdown_signal())
                .await
                .context("the HTTPS server failed")?;
        }
        None => tessera_web::serve(listener, system.router.clone(), shutdown_signal())
            .await
            .context("the HTTP server failed")?,
    }
    println!("stopping: finishing work in flight");
    if system.node.shutdown(SHUTDOWN_GRACE).await {
        println!("stopped");
    } else {
        tracing::warn!(
            "some background work did not stop within {SHUTDOWN_GRACE:?}; it resumes on the next start"
        );
    }
    Ok(())
}

/// Adds the demo products that are missing; products already there are left as they are.
async fn seed_catalogue(inventory: &tessera_inventory::Inventory) -> anyhow::Result<()> {
    for (sku, name, description, price, stock) in DEMO_CATALOGUE {
        let sku = Sku::parse(sku)?;
        if inventory.product(&sku).await?.is_some() {
            continue;
        }
        match inventory
            .create_product(
                &sku,
                name,
                description,
                &Money::eur(price)?,
                stock,
                &tessera_web::token::Actor::system("seed"),
            )
            .await
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

/// The demo's staff passwords, which anybody can read in the README.
const DEMO_STAFF: [(&str, &str); 2] =
    [("admin@tessera.local", "admin"), ("support@tessera.local", "support")];

/// `up` on an address other machines reach must not let them in with the demo's passwords.
fn refuse_demo_staff_off_loopback(listen: SocketAddr, staff: &[(String, String)]) -> anyhow::Result<()> {
    let demo =
        staff.iter().find(|(email, password)| DEMO_STAFF.contains(&(email.as_str(), password.as_str())));
    match demo {
        Some((email, _)) if !listen.ip().is_loopback() => anyhow::bail!(
            "{email} still has the demo password, and {listen} is reachable from other machines: \
             give every member of staff a password of their own ([[gateway.staff]] in tessera.toml), \
             or listen on 127.0.0.1"
        ),
        _ => Ok(()),
    }
}

fn print_banner(data: &Path, scheme: &str, address: SocketAddr, took: Duration, staff: &[(String, String)]) {
    let base = format!("{scheme}://{address}");
    println!("Tessera is up (embedded) in {} ms", took.as_millis());
    println!("  data      {}", data.display());
    println!("  shop      {base}/shop   (storefront: sign up, order, watch it confirm)");
    println!("  console   {base}/ui     (operators: sign in as admin or support)");
    println!("  API       {base}/api/v1");
    println!("  OpenAPI   {base}/openapi.json");
    println!("  health    {base}/health   readiness {base}/ready");
    // Passwords are printed only where nobody else can use them.
    for (email, password) in staff.iter().filter(|_| address.ip().is_loopback()) {
        println!("  sign in   {email} / {password}");
    }
    println!("  try       curl -s {base}/api/v1/products");
    println!(
        "            curl -s {base}/api/v1/auth/token -H 'content-type: application/json' -d '{{\"email\":\"admin@tessera.local\",\"password\":\"admin\"}}'"
    );
    println!("listening on {base}");
}

pub(crate) async fn shutdown_signal() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn staff(password: &str) -> Vec<(String, String)> {
        vec![("admin@tessera.local".to_owned(), password.to_owned())]
    }

    #[test]
    fn demo_passwords_are_refused_only_off_loopback() {
        let outside: SocketAddr = "0.0.0.0:8080".parse().expect("address");
        let inside: SocketAddr = "127.0.0.1:8080".parse().expect("address");
        let refused = refuse_demo_staff_off_loopback(outside, &staff("admin")).expect_err("demo password");
        assert!(refused.to_string().contains("admin@tessera.local"), "{refused}");
        assert!(refuse_demo_staff_off_loopback(inside, &staff("admin")).is_ok(), "fine on loopback");
        assert!(refuse_demo_staff_off_loopback(outside, &staff("a long secret")).is_ok(), "own password");
        assert!(refuse_demo_staff_off_loopback("[::1]:8080".parse().expect("v6"), &staff("admin")).is_ok());
    }
}
