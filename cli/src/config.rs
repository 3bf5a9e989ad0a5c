//! The embedded system's configuration, in layers: defaults, then `tessera.toml` (or the file
//! named by `--config`), then `TESSERA_*` environment variables (`__` between nested keys:
//! `TESSERA_GATEWAY__CORS_ORIGINS`), then command-line flags. An unknown key is refused naming
//! it; `validate` names the key to fix; secrets never print.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::bail;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// A value that must not be shown: `Debug` prints `***`, and `Config::print` masks it. (It
/// serialises as itself, because the layering passes the defaults through serde.)
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StaffUser {
    pub email: String,
    pub password: Secret,
    /// `admin` or `support`.
    pub role: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub self_signed: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Gateway {
    pub dependency_timeout_ms: u64,
    pub rate_limit_per_token: u32,
    pub rate_limit_burst_per_token: u32,
    pub rate_limit_per_address: u32,
    pub rate_limit_burst_per_address: u32,
    pub cors_origins: Vec<String>,
    /// Proxies (CIDRs or addresses) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<String>,
    pub graphql_introspection: bool,
    pub catalogue_cache: bool,
    pub staff: Vec<StaffUser>,
}

impl Default for Gateway {
    fn default() -> Self {
        let defaults = tessera_gateway::GatewayConfig::default();
        let limits = &defaults.rate_limits;
        Self {
            dependency_timeout_ms: u64::try_from(defaults.dependency_timeout.as_millis()).unwrap_or(200),
            rate_limit_per_token: limits.per_token.get(),
            rate_limit_burst_per_token: limits.token_burst.get(),
            rate_limit_per_address: limits.per_address.get(),
            rate_limit_burst_per_address: limits.address_burst.get(),
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            graphql_introspection: false,
            catalogue_cache: true,
            staff: defaults
                .staff
                .iter()
                .map(|u| StaffUser {
                    email: u.email.clone(),
                    password: Secret(u.password.clone()),
                    role: u.role.as_str().to_owned(),
                })
                .collect(),
        }
    }
}

/// The support service's settings: attachment limits and message retention.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Support {
    pub attachment_files_per_ticket: u64,
    pub attachment_mib_per_ticket: u64,
    pub attachment_mib_per_customer: u64,
    pub concurrent_uploads: usize,
    /// Days a closed ticket's messages are kept before the retention job erases them.
    pub closed_ticket_messages_days: u32,
}

const MIB: u64 = 1024 * 1024;

impl Default for Support {
    fn default() -> Self {
        let limits = tessera_support::AttachmentLimits::default();
        // The data map's declaration, so the default and the map say the same.
        let declared = tessera_support::domain::MessageRetention::declared().in_days();
        Self {
            attachment_files_per_ticket: limits.files_per_ticket,
            attachment_mib_per_ticket: limits.bytes_per_ticket / MIB,
            attachment_mib_per_customer: limits.bytes_per_customer / MIB,
            concurrent_uploads: limits.concurrent_uploads,
            closed_ticket_messages_days: u32::try_from(declared).unwrap_or(90),
        }
    }
}

impl Support {
    pub fn attachment_limits(&self) -> tessera_support::AttachmentLimits {
        tessera_support::AttachmentLimits {
            files_per_ticket: self.attachment_files_per_ticket,
            bytes_per_ticket: self.attachment_mib_per_ticket.saturating_mul(MIB),
            bytes_per_customer: self.attachment_mib_per_customer.saturating_mul(MIB),
            concurrent_uploads: self.concurrent_uploads,
        }
    }
}

/// The audit trails' archive.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    /// Audit records older than this many days are archived to `<data>/archive`.
    pub archive_after_days: u32,
    /// Records per archived segment.
    pub segment_records: usize,
}

impl Default for Audit {
    fn default() -> Self {
        let policy = tessera_runtime::audit_archive::ArchivePolicy::default();
        Self {
            archive_after_days: u32::try_from(policy.older_than.as_secs() / 86_400).unwrap_or(365),
            segment_records: policy.segment_records,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The data folder: one SQLite file per service.
    pub data: PathBuf,
    #[serde(deserialize_with = "crate::listen::deserialize")]
    pub listen: SocketAddr,
    pub payment_timeout_seconds: f64,
    pub slow_card_delay_seconds: f64,
    /// The simulated card network's share of transient failures (0 to 1): a failing network.
    pub card_failure_rate: f64,
    /// What the simulated card network adds to every operation: a slow network.
    pub card_latency_ms: u64,
    pub tls: Tls,
    pub gateway: Gateway,
    pub support: Support,
    pub audit: Audit,
    /// `tessera serve`'s settings (see `crate::serve::with_file_layer`); `up` does not read them.
    #[serde(skip_serializing_if = "toml::Table::is_empty")]
    pub serve: toml::Table,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data: PathBuf::from("tessera-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            payment_timeout_seconds: 10.0,
            slow_card_delay_seconds: 15.0,
            card_failure_rate: 0.0,
            card_latency_ms: 0,
            tls: Tls::default(),
            gateway: Gateway::default(),
            support: Support::default(),
            audit: Audit::default(),
            serve: toml::Table::new(),
        }
    }
}

/// The keys the environment may set (others under `TESSERA_`, such as the test suites'
/// variables, are not configuration).
const ENV_KEYS: [&str; 10] = [
    "data",
    "listen",
    "payment_timeout_seconds",
    "slow_card_delay_seconds",
    "card_failure_rate",
    "card_latency_ms",
    "tls__",
    "gateway__",
    "support__",
    "audit__",
];

impl Config {
    /// Defaults, then the file (`path`, or `tessera.toml` if it exists), then the environment,
    /// then `flags` (only the keys a flag set).
    pub fn load(path: Option<&Path>, flags: &serde_json::Value) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match path {
            Some(path) if !path.exists() => bail!("no configuration file at {}", path.display()),
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("tessera.toml").exists() => {
                figment = figment.merge(Toml::file_exact("tessera.toml"))
            }
            None => {}
        }
        let env = Env::prefixed("TESSERA_")
            .filter(|key| {
                let key = key.as_str().to_ascii_lowercase();
                ENV_KEYS
                    .iter()
                    .any(|known| if known.ends_with("__") { key.starts_with(known) } else { key == *known })
            })
            .split("__");
        figment = figment.merge(env).merge(Serialized::defaults(flags));
        let config: Config = figment.extract().map_err(|error| {
            let mut lines = Vec::new();
            for error in error {
                let key = error.path.join(".");
                lines.push(if key.is_empty() { error.to_string() } else { format!("{key}: {}", error.kind) });
            }
            anyhow::anyhow!("invalid configuration: {}", lines.join("; "))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but cannot work, naming the key and the fix.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if !(0.0..=3600.0).contains(&self.payment_timeout_seconds) {
            problems.push("payment_timeout_seconds: give 0 to 3600 seconds".to_owned());
        }
        if !(0.0..=3600.0).contains(&self.slow_card_delay_seconds) {
            problems.push("slow_card_delay_seconds: give 0 to 3600 seconds".to_owned());
        }
        if !(0.0..=1.0).contains(&self.card_failure_rate) {
            problems.push("card_failure_rate: give a share from 0 to 1".to_owned());
        }
        if !(1..=36_500).contains(&self.support.closed_ticket_messages_days) {
            problems.push("support.closed_ticket_messages_days: give 1 to 36500 days".to_owned());
        }
        if self.audit.archive_after_days == 0 {
            problems.push("audit.archive_after_days: give at least 1 day".to_owned());
        }
        if !(1..=1_000_000).contains(&self.audit.segment_records) {
            problems.push("audit.segment_records: give 1 to 1000000".to_owned());
        }
        if self.card_latency_ms > 60_000 {
            problems.push("card_latency_ms: give at most 60000".to_owned());
        }
        match (&self.tls.cert, &self.tls.key, self.tls.self_signed) {
            (Some(_), None, _) | (None, Some(_), _) => {
                problems.push("tls.cert and tls.key: give both, or neither".to_owned());
            }
            (Some(_), Some(_), true) => {
                problems.push("tls.self_signed: remove it, or remove tls.cert and tls.key".to_owned())
            }
            _ => {}
        }
        let g = &self.gateway;
        for (key, value) in [
            ("gateway.rate_limit_per_token", g.rate_limit_per_token),
            ("gateway.rate_limit_burst_per_token", g.rate_limit_burst_per_token),
            ("gateway.rate_limit_per_address", g.rate_limit_per_address),
            ("gateway.rate_limit_burst_per_address", g.rate_limit_burst_per_address),
        ] {
            if value == 0 {
                problems.push(format!("{key}: must be at least 1"));
            }
        }
        for (index, proxy) in g.trusted_proxies.iter().enumerate() {
            if trusted_proxy(proxy).is_none() {
                problems.push(format!(
                    "gateway.trusted_proxies[{index}]: give a CIDR such as 10.0.0.0/8, or an address"
                ));
            }
        }
        if !(1..=60_000).contains(&g.dependency_timeout_ms) {
            problems.push("gateway.dependency_timeout_ms: give 1 to 60000".to_owned());
        }
        for (index, user) in g.staff.iter().enumerate() {
            if !matches!(user.role.as_str(), "admin" | "support") {
                problems.push(format!("gateway.staff[{index}].role: use admin or support"));
            }
            if user.password.expose().is_empty() {
                problems.push(format!("gateway.staff[{index}].password: must not be empty"));
            }
        }
        let s = &self.support;
        for (key, value) in [
            ("support.attachment_files_per_ticket", s.attachment_files_per_ticket),
            ("support.attachment_mib_per_ticket", s.attachment_mib_per_ticket),
            ("support.attachment_mib_per_customer", s.attachment_mib_per_customer),
            ("support.concurrent_uploads", s.concurrent_uploads as u64),
        ] {
            if value == 0 {
                problems.push(format!("{key}: must be at least 1"));
            }
        }
        if problems.is_empty() { Ok(()) } else { bail!("invalid configuration: {}", problems.join("; ")) }
    }

    /// The gateway's settings from this configuration.
    pub fn gateway_config(&self) -> tessera_gateway::GatewayConfig {
        use std::num::NonZeroU32;
        let n = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        let g = &self.gateway;
        tessera_gateway::GatewayConfig {
            dependency_timeout: std::time::Duration::from_millis(g.dependency_timeout_ms),
            staff: g
                .staff
                .iter()
                .map(|u| tessera_gateway::StaffUser {
                    email: u.email.clone(),
                    password: u.password.expose().to_owned(),
                    role: if u.role == "admin" {
                        tessera_gateway::Role::Admin
                    } else {
                        tessera_gateway::Role::Support
                    },
                })
                .collect(),
            rate_limits: tessera_gateway::RateLimits {
                per_token: n(g.rate_limit_per_token),
                token_burst: n(g.rate_limit_burst_per_token),
                per_address: n(g.rate_limit_per_address),
                address_burst: n(g.rate_limit_burst_per_address),
            },
            cors_origins: g.cors_origins.clone(),
            trusted_proxies: g.trusted_proxies.iter().filter_map(|p| trusted_proxy(p)).collect(),
            hsts: self.tls.self_signed || self.tls.cert.is_some(),
            graphql_introspection: g.graphql_introspection,
            ..tessera_gateway::GatewayConfig::default()
        }
    }

    /// Support's limits on attachments from this configuration.
    pub fn attachment_limits(&self) -> tessera_support::AttachmentLimits {
        self.support.attachment_limits()
    }

    /// The effective configuration as TOML, secrets hidden.
    pub fn print(&self) -> anyhow::Result<String> {
        Ok(toml::to_string_pretty(&self.shown())?)
    }

    /// The effective configuration as one JSON object, secrets hidden.
    pub fn print_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(&self.shown())?)
    }

    /// This configuration with its secrets masked.
    fn shown(&self) -> Self {
        let mut shown = self.clone();
        for user in &mut shown.gateway.staff {
            user.password = Secret("***".to_owned());
        }
        shown
    }
}

/// A trusted proxy as written in configuration: a CIDR, or one address.
pub fn trusted_proxy(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_is_valid_and_documents_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tessera.example.toml");
        let text = std::fs::read_to_string(&path).expect("tessera.example.toml");
        let config: Config = toml::from_str(&text).expect("the example parses");
        config.validate().expect("the example is valid");
        let printed = toml::to_string(&Config::default()).expect("print");
        for line in printed.lines().filter(|l| l.contains(" = ")) {
            let key = line.split(" = ").next().unwrap_or_default().trim();
            assert!(text.contains(&format!("{key} =")), "the example documents {key}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let error = toml::from_str::<Config>("listne = \"127.0.0.1:1\"").expect_err("unknown key");
        assert!(error.to_string().contains("listne"), "{error}");
        let mut config = Config::default();
        config.tls.cert = Some("cert.pem".into());
        config.gateway.rate_limit_per_token = 0;
        let error = config.validate().expect_err("invalid").to_string();
        assert!(
            error.contains("tls.cert and tls.key") && error.contains("gateway.rate_limit_per_token"),
            "{error}"
        );
        let mut config = Config::default();
        config.gateway.trusted_proxies = vec!["10.0.0.0/8".into(), "192.0.2.1".into(), "ingress".into()];
        let error = config.validate().expect_err("invalid").to_string();
        assert!(error.contains("gateway.trusted_proxies[2]") && !error.contains("[0]"), "{error}");
        config.gateway.trusted_proxies.pop();
        let nets = config.gateway_config().trusted_proxies;
        assert_eq!(nets.len(), 2, "a CIDR and a single address");
        assert!(nets[1].contains(&"192.0.2.1".parse::<std::net::IpAddr>().expect("an address")));
    }

    #[test]
    fn supports_attachment_limits_are_read_in_mib_and_none_may_be_zero() {
        let config: Config = toml::from_str(
            "[support]\nattachment_files_per_ticket = 5\nattachment_mib_per_customer = 1\nconcurrent_uploads = 2",
        )
        .expect("parses");
        let limits = config.attachment_limits();
        assert_eq!((limits.files_per_ticket, limits.bytes_per_customer), (5, 1024 * 1024));
        assert_eq!((limits.bytes_per_ticket, limits.concurrent_uploads), (50 * 1024 * 1024, 2), "defaults");
        let mut config = Config::default();
        config.support.concurrent_uploads = 0;
        let error = config.validate().expect_err("invalid").to_string();
        assert!(error.contains("support.concurrent_uploads"), "{error}");
    }

    #[test]
    fn secrets_never_print() {
        let printed = Config::default().print().expect("print");
        assert!(
            printed.contains("password = \"***\"") && !printed.contains("password = \"admin\""),
            "{printed}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&Config::default().print_json().expect("print")).expect("JSON");
        assert_eq!(json["gateway"]["staff"][0]["password"], "***");
        assert_eq!(json["listen"], "127.0.0.1:8080");
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "***");
    }
}
