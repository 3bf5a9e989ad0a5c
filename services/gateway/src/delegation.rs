//! Which token the gateway shows a service. In the distributed topology every service checks
//! the bearer token again and applies the access rules to it, so a call made while answering
//! a client carries a token minted for that service alone on the client's behalf (the service
//! sees who is asking, and a token captured there opens nothing else), and a call made on
//! nobody's behalf (sign-in, registration, a public read) carries one for the gateway itself.
//! A client's own token never leaves the gateway.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tessera_kernel::Timestamp;

use crate::auth::KeyRing;
use crate::clients::Credentials;

/// Whom the request being answered comes from, once its token is verified (`role:subject`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Asking {
    verified: Arc<std::sync::OnceLock<String>>,
}

tokio::task_local! {
    static ASKING: Asking;
}

/// Who is asking in this task.
pub(crate) fn asking() -> Asking {
    ASKING.try_with(Clone::clone).unwrap_or_default()
}

/// Notes the verified caller of the request being answered, for the services' audit trails.
pub(crate) fn verified(role: &str, subject: &str) {
    let _ = ASKING.try_with(|asking| asking.verified.set(format!("{role}:{subject}")));
}

/// Runs `work` as part of answering a request (for work moved to a task of its own, which
/// does not inherit the request's task-local value).
pub(crate) async fn on_behalf_of<F: Future>(asking: Asking, work: F) -> F::Output {
    ASKING.scope(asking, work).await
}

/// Layer: gives the request a place to note its verified caller while it is answered.
pub(crate) async fn remember_caller(request: Request, next: Next) -> Response {
    on_behalf_of(Asking::default(), next.run(request)).await
}

/// The gateway's credentials for calls to services: for each call a token whose audience is
/// the service called alone and which carries the verified caller's subject and role (or the
/// gateway's own identity when it acts on nobody's behalf). A token is minted once per caller
/// and service and reused until shortly before it expires, so that the service's cache of
/// verified tokens keeps hitting.
pub(crate) struct Delegation {
    keys: KeyRing,
    /// Minted tokens, each dropped once it is due for renewal.
    minted: moka::sync::Cache<(String, &'static str), Arc<str>>,
}

/// How long a token minted for one service lives.
pub(crate) const SERVICE_TOKEN_TTL: Duration = Duration::from_secs(60);
/// A minted token is replaced this long before it expires, so that one in flight does not
/// expire on its way (the services allow a few seconds of skew besides).
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(15);

impl Delegation {
    pub(crate) fn new(keys: KeyRing) -> Self {
        Self {
            keys,
            minted: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(SERVICE_TOKEN_TTL - RENEW_BEFORE_EXPIRY)
                .build(),
        }
    }

    /// The token for `service` on behalf of `caller` (`role:subject`).
    fn token_for(&self, service: &'static str, caller: &str) -> Option<String> {
        let key = (caller.to_owned(), service);
        if let Some(token) = self.minted.get(&key) {
            return Some(token.to_string());
        }
        let (role, subject) = caller.split_once(':')?;
        let now = Timestamp::from_system_time(std::time::SystemTime::now());
        match self.keys.issue_for_service(service, subject, role, SERVICE_TOKEN_TTL, now) {
            Ok(token) => {
                self.minted.insert(key, Arc::from(token.as_str()));
                Some(token)
            }
            Err(error) => {
                tracing::error!(%error, service, "cannot sign a token for a service");
                None
            }
        }
    }
}

/// The gateway acting on nobody's behalf (sign-in, registration, public reads).
fn own_identity() -> String {
    format!("{}:{}", tessera_web::access::SERVICE, tessera_web::access::GATEWAY)
}

impl Credentials for Delegation {
    fn bearer(&self, service: &'static str) -> Option<String> {
        let caller = asking().verified.get().cloned().unwrap_or_else(own_identity);
        self.token_for(service, &caller)
    }

    fn actor(&self) -> Option<String> {
        asking().verified.get().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{SigningKey, TokenSettings};

    #[test]
    fn a_token_is_minted_once_per_caller_and_service_and_names_both() {
        let keys = KeyRing::new(SigningKey::generate().expect("key"), TokenSettings::default());
        let delegation = Delegation::new(keys);
        let first = delegation.token_for("orders", "customer:c-1").expect("token");
        assert_eq!(delegation.token_for("orders", "customer:c-1").as_ref(), Some(&first), "reused");
        let other_service = delegation.token_for("support", "customer:c-1").expect("token");
        let other_caller = delegation.token_for("orders", "customer:c-2").expect("token");
        assert_ne!(first, other_service);
        assert_ne!(first, other_caller);
        let payload = first.split('.').nth(1).expect("a JWT");
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).expect("b64"),
        )
        .expect("claims");
        assert_eq!(claims["aud"], "tessera:orders");
        assert_eq!((claims["sub"].as_str(), claims["role"].as_str()), (Some("c-1"), Some("customer")));
        assert_eq!(claims["exp"].as_u64().zip(claims["iat"].as_u64()).map(|(e, i)| e - i), Some(60));
        assert_eq!(claims["act"]["sub"], "gateway");
    }
}
