//! Which token the gateway shows a service. In the distributed topology every service checks
//! the bearer token again, so a call made while answering a client carries that client's own
//! token (the service sees who is asking), and a call made on nobody's behalf (sign-in,
//! registration, a public read) carries a short-lived token for the gateway itself.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use tessera_kernel::Timestamp;

use crate::auth::{KeyRing, Role};
use crate::clients::Credentials;

/// Whom the request being answered comes from: its bearer token as sent, and once the token
/// is verified, the caller it names (`role:subject`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Asking {
    bearer: Option<Arc<str>>,
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

/// Layer: remembers the request's bearer token while it is answered.
pub(crate) async fn remember_bearer(request: Request, next: Next) -> Response {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(tessera_web::token::bearer_token)
        .map(Arc::<str>::from);
    on_behalf_of(Asking { bearer, verified: Arc::default() }, next.run(request)).await
}

/// The gateway's credentials for calls to services.
pub(crate) struct Delegation {
    keys: KeyRing,
    own: Mutex<Option<(String, Instant)>>,
}

impl Delegation {
    pub(crate) fn new(keys: KeyRing) -> Self {
        Self { keys, own: Mutex::new(None) }
    }

    /// The gateway's own token, reused until a minute before it expires.
    fn own_token(&self) -> Option<String> {
        let mut own = self.own.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let renew_after = self.keys.settings.ttl.saturating_sub(Duration::from_secs(60));
        if let Some((token, issued)) = own.as_ref()
            && issued.elapsed() < renew_after
        {
            return Some(token.clone());
        }
        let now = Timestamp::from_system_time(std::time::SystemTime::now());
        match self.keys.issue("gateway", Role::Service, now) {
            Ok(token) => {
                *own = Some((token.clone(), Instant::now()));
                Some(token)
            }
            Err(error) => {
                tracing::error!(%error, "cannot sign the gateway's own token");
                None
            }
        }
    }
}

impl Credentials for Delegation {
    fn bearer(&self) -> Option<String> {
        asking().bearer.map(|token| token.to_string()).or_else(|| self.own_token())
    }

    fn actor(&self) -> Option<String> {
        asking().verified.get().cloned()
    }
}
