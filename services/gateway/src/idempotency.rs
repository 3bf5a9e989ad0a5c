//! The `Idempotency-Key` of order placement: checked here, kept by orders. Orders records the
//! key with the hash of the request's body in the same unit as the order it places, so the same
//! key and body answer with that order from any gateway replica, and another body under the
//! key is refused (`idempotency_key_reused`). A request refused before it reached orders
//! (validation, an outage) left nothing under its key and may be retried.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use tessera_web::Problem;

/// A request's `Idempotency-Key`, checked: 1 to 255 characters. Taken as
/// `Result<IdempotencyKey, Problem>` so that a caller refused by role hears 403 first.
pub(crate) struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let key = parts.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if key.is_empty() || key.len() > 255 {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "idempotency_key_required",
                "send an Idempotency-Key header of 1 to 255 characters",
            ));
        }
        Ok(Self(key.to_owned()))
    }
}

/// A placement's key and the hash of its body, as orders keeps them.
pub(crate) struct KeyedRequest {
    pub key: String,
    pub body_hash: String,
}

/// The SHA-256 of a request's body, in hex.
pub(crate) fn body_hash(body: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
