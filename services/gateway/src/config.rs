//! How a gateway is set up: its timeouts, staff users, limits and edge policy.

use std::time::Duration;

use crate::auth::Role;
use crate::limits::RateLimits;

/// The gateway's name: its store file.
pub const SERVICE: &str = "gateway";

/// A member of staff who signs in with a password from configuration (the demo's admin and
/// support users).
#[derive(Clone)]
pub struct StaffUser {
    pub email: String,
    pub password: String,
    pub role: Role,
}

impl std::fmt::Debug for StaffUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffUser")
            .field("email", &self.email)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// How long a composed view waits for each service before naming it in `degraded`.
    pub dependency_timeout: Duration,
    /// How long a forwarded call may take before the client gets 504.
    pub call_timeout: Duration,
    pub staff: Vec<StaffUser>,
    pub rate_limits: RateLimits,
    /// Origins allowed by CORS; none by default.
    pub cors_origins: Vec<String>,
    /// Send `Strict-Transport-Security` (when served over TLS).
    pub hsts: bool,
    /// Answer GraphQL introspection queries (off in production).
    pub graphql_introspection: bool,
    /// Proxies (an ingress, a load balancer) whose `X-Forwarded-For` names the client; none by
    /// default, so every client is its TCP peer.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Seals the token signing keys where they are stored (the vault, in production), so that
    /// a copy of the gateway's database signs nothing. Without it (tests) they are kept in
    /// clear; keys stored in clear before are sealed at the next start that has it.
    pub key_sealer: Option<std::sync::Arc<dyn tessera_vault::Sealer>>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            dependency_timeout: Duration::from_millis(200),
            call_timeout: Duration::from_secs(10),
            staff: vec![
                StaffUser {
                    email: "admin@tessera.local".into(),
                    password: "admin".into(),
                    role: Role::Admin,
                },
                StaffUser {
                    email: "support@tessera.local".into(),
                    password: "support".into(),
                    role: Role::Support,
                },
            ],
            rate_limits: RateLimits::default(),
            cors_origins: Vec::new(),
            hsts: false,
            graphql_introspection: false,
            trusted_proxies: Vec::new(),
            key_sealer: None,
        }
    }
}
