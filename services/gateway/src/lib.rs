//! The gateway: the only door to the shop. It authenticates (EdDSA JWTs it issues), authorises
//! every object by role and owner, composes views from several services in parallel (naming
//! the parts that did not answer in time instead of failing), and guards the edge: idempotent
//! order placement, rate limits, body limits, CORS, security headers and request ids.
//!
//! It depends on no service crate: it reaches each through a [`ServiceClient`], in process
//! (embedded) or over HTTP (distributed), and speaks their HTTP APIs.

mod access;
mod admin;
mod attachments;
mod audit;
pub mod auth;
pub mod catalogue;
mod clients;
mod compose;
mod delegation;
mod edge;
pub mod facts;
pub mod graphql;
mod idempotency;
mod openapi;
mod routes;
mod waiting;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tessera_store::Store;

pub use access::{Caller, MaybeCaller};
pub use auth::{KeyRing, Role, SigningKey, TokenSettings};
pub use clients::{ClientError, Credentials, Http, InProcess, Reply, ServiceClient, Services};
pub use edge::RateLimits;
pub use idempotency::MIGRATIONS;

/// The gateway's store: its own tables and the inbox of its subscription to inventory.
pub fn migrations() -> Vec<tessera_store::MigrationSet> {
    vec![tessera_bus::MIGRATIONS, MIGRATIONS]
}

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
        }
    }
}

/// Everything a request handler needs, behind one `Arc`: every request clones the gateway
/// several times (each layer's and the handler's `State`), and one reference count is far
/// cheaper than the dozen its parts hold (a profile of cached reads found 15 % of the time in
/// cloning and dropping the parts).
#[derive(Clone)]
pub struct Gateway(Arc<GatewayParts>);

impl std::ops::Deref for Gateway {
    type Target = GatewayParts;

    fn deref(&self) -> &GatewayParts {
        &self.0
    }
}

/// The gateway's parts, shared by all its clones.
#[derive(Clone)]
pub struct GatewayParts {
    pub(crate) services: Services,
    pub(crate) keys: KeyRing,
    pub(crate) config: Arc<GatewayConfig>,
    pub(crate) staff: Arc<Vec<(String, String, Role)>>,
    pub(crate) store: Store,
    pub(crate) limiter: Arc<edge::Limiter>,
    /// Product reads are served from it when set.
    pub(crate) catalogue: Option<Arc<catalogue::Catalogue>>,
    /// Clients waiting for orders to settle (`Prefer: wait`, the order event stream).
    pub(crate) waiters: Arc<waiting::OrderWaiters>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("config", &self.config).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for GatewayParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayParts").field("config", &self.config).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot hash a staff password: {0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] tessera_store::StoreError),
    #[error(transparent)]
    Token(#[from] auth::TokenError),
}

impl Gateway {
    /// Builds the gateway. The signing key is loaded from (or created in) the gateway's store,
    /// so tokens survive restarts and every replica signs alike.
    pub async fn new(
        services: Services,
        store: Store,
        config: GatewayConfig,
        tokens: TokenSettings,
    ) -> Result<Self, GatewayError> {
        let key = idempotency::signing_key(&store).await?;
        let staff = config
            .staff
            .iter()
            .map(|user| {
                let hash = routes::hash_password(&user.password).map_err(GatewayError::Hashing)?;
                Ok((user.email.trim().to_ascii_lowercase(), hash, user.role))
            })
            .collect::<Result<Vec<_>, GatewayError>>()?;
        let limiter = Arc::new(edge::Limiter::new(&config.rate_limits));
        let keys = KeyRing::new(key, tokens);
        let delegation: Arc<dyn Credentials> = Arc::new(delegation::Delegation::new(keys.clone()));
        for service in services.all() {
            service.use_credentials(delegation.clone());
        }
        let gateway = Self(Arc::new(GatewayParts {
            services,
            keys,
            config: Arc::new(config),
            staff: Arc::new(staff),
            store,
            limiter,
            catalogue: None,
            waiters: Arc::default(),
        }));
        // The services' audit heads are witnessed outside their databases, here.
        tokio::spawn(audit::witness_heads(gateway.clone()));
        Ok(gateway)
    }

    /// Serves product reads from `catalogue`, which [`catalogue::CatalogueInvalidation`]
    /// must keep fresh (build the router after this).
    pub fn with_catalogue(self, catalogue: Arc<catalogue::Catalogue>) -> Self {
        Self(Arc::new(GatewayParts { catalogue: Some(catalogue), ..(*self.0).clone() }))
    }

    /// Wakes the clients waiting for an order (`Prefer: wait`, `GET /orders/{id}/events`) by
    /// the orders service's messages on `transport`, which this process then watches. Without
    /// it the gateway does not apply a preference to wait, and the event stream reads the
    /// order once a second.
    pub fn with_order_events(self, transport: Arc<dyn tessera_bus::Transport>) -> Self {
        tokio::spawn(waiting::watch_orders(self.waiters.clone(), transport));
        self
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The public router: `/api/v1/...`, `/.well-known/jwks.json`, `/health`, `/ready` and
    /// `/openapi.json` (the services' documents under their public paths, with the gateway's
    /// own routes and its bearer scheme added).
    /// `readiness` checks what the gateway depends on besides its own store (the services'
    /// stores in the embedded topology).
    pub fn router(
        &self,
        services_openapi: utoipa::openapi::OpenApi,
        readiness: Option<Arc<dyn tessera_web::Readiness>>,
    ) -> Router {
        let document = openapi::document(services_openapi);
        // Swagger UI is served from the crate's vendored copy (no download at build or run
        // time); its page needs its own scripts and styles, so it gets its own CSP.
        let docs: Router = Router::from(utoipa_swagger_ui::SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", document))
            .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
                axum::http::header::CONTENT_SECURITY_POLICY,
                axum::http::HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'",
                ),
            ));
        let rest = routes::router().with_state(self.clone());
        let gateway = self.clone();
        let ready = Router::new().route(
            "/ready",
            axum::routing::get(move || {
                let (gateway, readiness) = (gateway.clone(), readiness.clone());
                async move { routes::ready(&gateway, readiness.as_deref()).await }
            }),
        );
        let graphql = Router::new().route("/graphql", axum::routing::post(graphql::serve)).with_state(
            graphql::GraphqlState {
                gateway: self.clone(),
                rest: rest.clone(),
                schema: graphql::schema(self.config.graphql_introspection),
            },
        );
        let router = rest.merge(docs).merge(graphql).merge(ready);
        tessera_web::metered(edge::layers(tessera_web::standard_layers(router), self), SERVICE)
    }
}
