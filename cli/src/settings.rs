//! What a process is started with: the embedded system's settings (`up`, the benchmarks) and
//! `serve`'s arguments. Apart from the commands that use them, so that the service registry
//! can take them without importing those commands.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tessera_gateway::GatewayConfig;

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
    /// Support's quotas on attachments and its concurrent uploads.
    pub attachment_limits: tessera_support::AttachmentLimits,
    pub retention: Retention,
}

/// What the retention jobs keep, and for how long.
#[derive(Clone, Copy, Debug, Default)]
pub struct Retention {
    /// How long support keeps a closed ticket's messages.
    pub closed_ticket_messages: tessera_support::domain::MessageRetention,
    /// Which audit records are archived (to `<data>/archive`), in segments of how many.
    pub audit_archive: tessera_runtime::audit_archive::ArchivePolicy,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// inventory, orders, payments, customers, support, or gateway.
    pub(crate) service: String,
    /// A configuration file whose `[serve]` table (and `[serve.<service>]` within it) gives
    /// these flags' values, named with `_` for `-` (default: ./tessera.toml when there is one).
    /// The environment and the command line win over it.
    #[arg(long, env = "TESSERA_CONFIG", value_name = "PATH")]
    pub(crate) config: Option<std::path::PathBuf>,
    /// The PostgreSQL server; each service uses its own database on it.
    #[arg(long, env = "TESSERA_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432")]
    pub(crate) database_url: String,
    /// Prefix of the database names (`<prefix>_<service>`).
    #[arg(long, env = "TESSERA_DATABASE_PREFIX", default_value = "tessera")]
    pub(crate) database_prefix: String,
    #[arg(long, env = "TESSERA_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub(crate) nats_url: String,
    /// Prefix of every NATS subject and stream.
    #[arg(long, env = "TESSERA_NATS_NAMESPACE", default_value = "tessera")]
    pub(crate) nats_namespace: String,
    /// Copies of each stream in the NATS cluster (3 in production: see deploy/nats).
    #[arg(long, env = "TESSERA_NATS_REPLICAS", default_value_t = 1)]
    pub(crate) nats_replicas: usize,
    /// The file holding this service's nkey seed (`SU…`, mode 0600), made by `tessera nats
    /// auth`; the server then allows it only its own subjects and the streams it consumes.
    #[arg(long, env = "TESSERA_NATS_NKEY_FILE", value_name = "PATH")]
    pub(crate) nats_nkey_file: Option<std::path::PathBuf>,
    /// A PEM file of the CA that signed the NATS server's certificate: the connection then
    /// requires TLS.
    #[arg(long, env = "TESSERA_NATS_CA", value_name = "PATH")]
    pub(crate) nats_ca: Option<std::path::PathBuf>,
    /// Where to serve HTTP (`host:port`; a name such as localhost is resolved).
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:8080", value_parser = crate::listen::resolve)]
    pub(crate) listen: SocketAddr,
    /// Serve HTTPS with this certificate (PEM, the chain from the leaf) instead of HTTP.
    #[arg(long, env = "TESSERA_TLS_CERT", value_name = "PATH", requires = "tls_key")]
    pub(crate) tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "TESSERA_TLS_KEY", value_name = "PATH", requires = "tls_cert")]
    pub(crate) tls_key: Option<std::path::PathBuf>,
    /// For the gateway: a service's address, `<name>=http://host:port` or `https://…`; once
    /// per service.
    #[arg(long = "service-url", value_name = "NAME=URL")]
    pub(crate) service_urls: Vec<String>,
    /// For the gateway: a PEM file of the CA that signed the services' certificates, when
    /// their addresses are https:// under a private CA (the system's roots are trusted besides).
    #[arg(long, env = "TESSERA_SERVICE_CA", value_name = "PATH")]
    pub(crate) service_ca: Option<std::path::PathBuf>,
    /// For the gateway: a member of staff who signs in with a password, `role:email:password`
    /// (role admin or support); repeat it, or separate them with commas in TESSERA_STAFF. None by
    /// default: the distributed gateway has no demo users.
    #[arg(long = "staff", env = "TESSERA_STAFF", value_delimiter = ',', value_name = "ROLE:EMAIL:PASSWORD")]
    pub(crate) staff: Vec<String>,
    /// For the gateway: a proxy (a CIDR or an address: the ingress, a load balancer) whose
    /// `X-Forwarded-For` names the client, for rate limits and sign-in counts; repeat it, or
    /// separate them with commas in TESSERA_TRUSTED_PROXIES. None by default.
    #[arg(
        long = "trusted-proxy",
        env = "TESSERA_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub(crate) trusted_proxies: Vec<String>,
    /// For a service: the gateway's public keys (`http://gateway:8080/.well-known/jwks.json`).
    /// Every request but the probes must carry a token they verify: nothing trusts the network.
    #[arg(long, env = "TESSERA_JWKS_URL", value_name = "URL")]
    pub(crate) jwks_url: Option<String>,
    /// For a service: a PEM file with the CA certificate that signed the gateway's, when the
    /// JWKS address is https:// under a private CA (the system's roots are trusted besides).
    #[arg(long, env = "TESSERA_JWKS_CA", value_name = "PATH")]
    pub(crate) jwks_ca: Option<std::path::PathBuf>,
    /// Serve `/metrics` to anyone who reaches this address (the scraper's; a network policy
    /// narrows who that is). Without it `/metrics` answers only this host.
    #[arg(long, env = "TESSERA_METRICS_LISTEN", value_name = "ADDRESS")]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// For a service: accept requests without a token. Only for a service reachable by nothing
    /// but the gateway, on a network you trust.
    #[arg(long, env = "TESSERA_INSECURE_NO_AUTH", conflicts_with = "jwks_url")]
    pub(crate) insecure_no_auth: bool,
    /// For customers: the vault's master key file (mode 0600; 32 bytes, base64). The
    /// `TESSERA_MASTER_KEY` variable is the alternative.
    #[arg(long, env = "TESSERA_MASTER_KEY_FILE", value_name = "PATH")]
    pub(crate) master_key_file: Option<std::path::PathBuf>,
    /// For support: where tickets' attachments are kept (required by support). `s3://bucket` for
    /// any S3-compatible store, configured by the usual AWS_* variables (AWS_ENDPOINT_URL,
    /// AWS_ALLOW_HTTP, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION), or
    /// `file:///absolute/folder` for a folder every replica of support shares.
    #[arg(long, env = "TESSERA_ATTACHMENTS_URL", value_name = "URL")]
    pub(crate) attachments_url: Option<String>,
    /// For support: files one ticket holds at most.
    #[arg(long, env = "TESSERA_ATTACHMENT_FILES_PER_TICKET", default_value_t = 20)]
    pub(crate) attachment_files_per_ticket: u64,
    /// For support: MiB one ticket's files hold at most.
    #[arg(long, env = "TESSERA_ATTACHMENT_MIB_PER_TICKET", default_value_t = 50)]
    pub(crate) attachment_mib_per_ticket: u64,
    /// For support: MiB all of one customer's tickets' files hold at most.
    #[arg(long, env = "TESSERA_ATTACHMENT_MIB_PER_CUSTOMER", default_value_t = 200)]
    pub(crate) attachment_mib_per_customer: u64,
    /// For support: uploads streamed at once; one more is answered 503 with Retry-After.
    #[arg(long, env = "TESSERA_CONCURRENT_UPLOADS", default_value_t = 16)]
    pub(crate) concurrent_uploads: usize,
    /// For support: days a closed ticket's messages are kept before they are erased (default:
    /// what the data map declares, 90).
    #[arg(long, env = "TESSERA_CLOSED_TICKET_MESSAGES_DAYS", value_name = "DAYS",
          value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub(crate) closed_ticket_messages_days: Option<u32>,
    /// Archive each audit chain's records older than `--audit-archive-after-days` to this
    /// object store (`s3://bucket` or `file:///absolute/folder`, as for attachments), keeping
    /// an anchor in the database. Without it the chain stays whole in the database.
    #[arg(long, env = "TESSERA_AUDIT_ARCHIVE_URL", value_name = "URL")]
    pub(crate) audit_archive_url: Option<String>,
    /// With `--audit-archive-url`: how old (days) every record of a segment must be before it
    /// is archived.
    #[arg(long, env = "TESSERA_AUDIT_ARCHIVE_AFTER_DAYS", default_value_t = 365, value_name = "DAYS")]
    pub(crate) audit_archive_after_days: u32,
    /// How long an order waits for the card network before it is rejected (seconds).
    #[arg(long, default_value_t = 10.0, env = "TESSERA_PAYMENT_TIMEOUT")]
    pub(crate) payment_timeout: f64,
    /// How long the simulated network takes for the slow test card (seconds).
    #[arg(long, default_value_t = 15.0, env = "TESSERA_SLOW_CARD_DELAY")]
    pub(crate) slow_card_delay: f64,
    /// For payments: the share (0 to 1) of card network operations that fail transiently.
    #[arg(long, default_value_t = 0.0, env = "TESSERA_CARD_FAILURE_RATE")]
    pub(crate) card_failure_rate: f64,
    /// For payments: milliseconds the simulated card network adds to every operation.
    #[arg(long, default_value_t = 0, env = "TESSERA_CARD_LATENCY_MS")]
    pub(crate) card_latency_ms: u64,
    /// For the gateway: a Redis server (`redis://host:6379`) holding the catalogue cache that
    /// every gateway replica shares, emptied by inventory's events (through NATS). Without it
    /// product reads go to inventory each time. If Redis stops, reads fall back to inventory.
    #[arg(long, env = "TESSERA_REDIS_URL", value_name = "URL")]
    pub(crate) redis_url: Option<String>,
    /// For the gateway: the prefix of the cache's keys in Redis.
    #[arg(long, env = "TESSERA_REDIS_PREFIX", default_value = "tessera:catalogue")]
    pub(crate) redis_prefix: String,
}
