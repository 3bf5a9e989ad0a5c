//! Every public endpoint of API.md, one module per resource: who may call it, what the
//! gateway adds or checks, and which service answers. Services check the gateway's calls;
//! the gateway trusts no client.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tessera_web::Problem;

use crate::config::SERVICE;
use crate::state::Gateway;

pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod customers;
pub(crate) mod orders;
pub(crate) mod payment_methods;
pub(crate) mod products;
pub(crate) mod tickets;

pub(crate) fn router() -> Router<Gateway> {
    let api = Router::new()
        .merge(auth::router())
        .merge(products::router())
        .merge(customers::router())
        .merge(payment_methods::router())
        .merge(orders::router())
        .merge(tickets::router())
        .merge(admin::router());
    Router::new().nest("/api/v1", api).merge(auth::keys_router()).route("/health", get(tessera_web::health))
}

/// `GET /ready`: the gateway's store and whatever `readiness` checks answer.
pub(crate) async fn ready(gateway: &Gateway, readiness: Option<&dyn tessera_web::Readiness>) -> Response {
    let own = GatewayStore(gateway.store.clone());
    if let Err(failing) = tessera_web::Readiness::check(&own).await {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("not answering: {}", failing.join(", ")),
        )
        .into_response();
    }
    match readiness {
        Some(readiness) => tessera_web::ready(readiness).await,
        None => axum::Json(json!({"status": "ready"})).into_response(),
    }
}

struct GatewayStore(tessera_store::Store);

impl tessera_web::Readiness for GatewayStore {
    fn check(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), Vec<String>>> + Send + '_>> {
        Box::pin(async move {
            let answered =
                tokio::time::timeout(std::time::Duration::from_secs(1), self.0.head_position()).await;
            if matches!(answered, Ok(Ok(_))) { Ok(()) } else { Err(vec![SERVICE.to_owned()]) }
        })
    }
}
