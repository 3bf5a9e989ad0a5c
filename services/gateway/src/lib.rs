//! The gateway: the only door to the shop. It authenticates (EdDSA JWTs it issues), authorises
//! every object by role and owner, composes views from several services in parallel (naming
//! the parts that did not answer in time instead of failing), and guards the edge: idempotent
//! order placement, rate limits, body limits, CORS, security headers and request ids.
//!
//! It depends on no service crate: it reaches each through a [`ServiceClient`], in process
//! (embedded) or over HTTP (distributed), and speaks their HTTP APIs.

mod access;
mod access_report;
mod audit;
pub mod auth;
pub mod catalogue;
mod client_address;
mod clients;
mod compose;
mod config;
mod delegation;
mod edge;
mod error;
pub mod facts;
mod forward;
pub mod graphql;
mod idempotency;
mod limits;
mod openapi;
mod ownership;
mod passwords;
pub mod personal_data;
mod routes;
mod schemas;
mod state;
mod storage;
mod throttle;
mod waiting;

use std::sync::Arc;

use axum::Router;
use tessera_store::Store;

pub use access::{Caller, MaybeCaller};
pub use auth::{KeyRing, Role, SigningKey, TokenSettings};
pub use clients::{ClientError, Credentials, Http, InProcess, Reply, ServiceClient, Services};
pub use config::{GatewayConfig, SERVICE, StaffUser};
pub use error::GatewayError;
pub use limits::RateLimits;
pub use openapi::PublicDocument;
pub use state::{Gateway, GatewayParts};
pub use storage::{KEY_RELOAD_EVERY, MIGRATIONS, migrations};

// The crate root assembles the gateway from the modules below it and is imported by none of
// them: the constructor and the router live here, the state they build in `state`.
impl Gateway {
    /// Builds the gateway. The signing key is loaded from (or created in) the gateway's store,
    /// so tokens survive restarts and every replica signs alike.
    pub async fn new(
        services: Services,
        store: Store,
        config: GatewayConfig,
        tokens: TokenSettings,
    ) -> Result<Self, GatewayError> {
        let key_store = storage::KeyStore { store: store.clone(), sealer: config.key_sealer.clone() };
        let key = key_store.signing_key().await?;
        let staff = config
            .staff
            .iter()
            .map(|user| {
                let hash = passwords::hash_password(&user.password).map_err(GatewayError::Hashing)?;
                Ok((user.email.trim().to_ascii_lowercase(), hash, user.role))
            })
            .collect::<Result<Vec<_>, GatewayError>>()?;
        let limiter = Arc::new(limits::Limiter::new(&config.rate_limits));
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
        key_store.load_keys(&gateway.keys, gateway.store.clock().now()).await?;
        // A rotation made through any replica reaches this one within the interval.
        tokio::spawn(storage::reload_keys(Arc::downgrade(&gateway.0)));
        // The services' audit heads are witnessed outside their databases, here.
        tokio::spawn(audit::witness_heads(gateway.clone()));
        Ok(gateway)
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
        self.router_publishing(PublicDocument::new(services_openapi), readiness)
    }

    /// [`Self::router`], serving `document` at `/openapi.json` as it is at each request.
    pub fn router_publishing(
        &self,
        document: PublicDocument,
        readiness: Option<Arc<dyn tessera_web::Readiness>>,
    ) -> Router {
        // Swagger UI is served from the crate's vendored copy (no download at build or run
        // time); its page needs its own scripts and styles, so it gets its own CSP.
        let docs: Router = Router::from(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .config(utoipa_swagger_ui::Config::from("/openapi.json")),
        )
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let document = document.current();
                async move { axum::Json(document.as_ref().clone()) }
            }),
        )
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
        let graphql = Router::new()
            .route("/graphql", axum::routing::post(graphql::serve))
            .route("/graphql/schema.graphql", axum::routing::get(graphql::schema_sdl))
            .with_state(graphql::GraphqlState {
                gateway: self.clone(),
                rest: rest.clone(),
                schema: graphql::schema(self.config.graphql_introspection),
            });
        let router = rest.merge(docs).merge(graphql).merge(ready);
        tessera_web::metered(edge::layers(tessera_web::standard_layers(router), self), SERVICE)
    }
}
