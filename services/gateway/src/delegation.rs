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

tokio::task_local! {
    /// The bearer token of the request being answered, if it sent one.
    static CALLER_BEARER: Option<Arc<str>>;
}

/// The token of the request being answered in this task.
pub(crate) fn current_bearer() -> Option<Arc<str>> {
    CALLER_BEARER.try_with(Clone::clone).ok().flatten()
}

/// Runs `work` as part of answering a request that sent `bearer` (for work moved to a task of
/// its own, which does not inherit the request's task-local value).
pub(crate) async fn on_behalf_of<F: Future>(bearer: Option<Arc<str>>, work: F) -> F::Output {
    CALLER_BEARER.scope(bearer, work).await
}

/// Layer: remembers the request's bearer token while it is answered.
pub(crate) async fn remember_bearer(request: Request, next: Next) -> Response {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| Arc::<str>::from(token.trim()));
    on_behalf_of(bearer, next.run(request)).await
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
        current_bearer().map(|token| token.to_string()).or_else(|| self.own_token())
    }
}
