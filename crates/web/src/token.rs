//! Bearer tokens: EdDSA (Ed25519) JWTs, verified the same way by the gateway that issues them
//! and, in the distributed topology, again by every service from the gateway's JWKS, so no
//! service trusts a call just because it came over the network.
//!
//! Verification accepts exactly one algorithm, `EdDSA`, and finds the key only by its `kid`,
//! so the classic attacks fail by construction: `alg: none`, an HMAC token keyed with the
//! public key, a token signed by another key, a tampered payload, an unknown `kid`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;

use crate::Problem;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token names no key we know")]
    UnknownKey,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("cannot sign: {0}")]
    Signing(String),
}

/// What a token must say about where it comes from and whom it is for.
#[derive(Clone, Debug)]
pub struct TokenRules {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

impl Default for TokenRules {
    fn default() -> Self {
        Self { issuer: "tessera".into(), audience: "tessera-api".into(), leeway: Duration::from_secs(5) }
    }
}

impl TokenRules {
    /// What the service `service` accepts: only tokens minted for it (see [`service_audience`]).
    /// A client's gateway token (audience `tessera-api`) is refused there, and so is a token
    /// minted for another service, so a token captured from one call opens nothing else.
    pub fn for_service(service: &str) -> Self {
        Self { audience: service_audience(service), ..Self::default() }
    }
}

/// The audience of the tokens the gateway mints for calls to `service`.
pub fn service_audience(service: &str) -> String {
    format!("tessera:{service}")
}

/// The `kid` a token names, read before any key is chosen.
pub fn key_id(token: &str) -> Result<String, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::EdDSA {
        return Err(TokenError::Invalid(format!("algorithm {:?} is not accepted", header.alg)));
    }
    header.kid.ok_or(TokenError::UnknownKey)
}

/// The claims of `token`, signed by the Ed25519 key `public` (32 raw bytes), valid at
/// `now_seconds` (Unix time) under `rules`.
///
/// A client sends the same token with every request until it expires, and checking an
/// Ed25519 signature is the dearest part of a request that reads from a cache; so a token
/// whose signature was checked under the same key and rules is not checked again. Its validity
/// window still is, on every call, so a remembered token stops working when it expires.
pub fn verify<C: DeserializeOwned>(
    token: &str,
    public: &[u8],
    rules: &TokenRules,
    now_seconds: u64,
) -> Result<C, TokenError> {
    let remembered = VERIFIED.get(token).filter(|known| {
        known.public == public && known.issuer == rules.issuer && known.audience == rules.audience
    });
    let claims = match remembered {
        Some(known) => known.claims.clone(),
        None => {
            let claims = Arc::new(check_signature(token, public, rules)?);
            VERIFIED.insert(
                token.to_owned(),
                Arc::new(Verified {
                    public: public.to_vec(),
                    issuer: rules.issuer.clone(),
                    audience: rules.audience.clone(),
                    claims: claims.clone(),
                }),
            );
            claims
        }
    };
    // jsonwebtoken checks exp and nbf against the system clock; check them against the
    // caller's clock too, so a test clock and the real one agree.
    let second = |name: &str| claims.get(name).and_then(serde_json::Value::as_u64);
    let (Some(exp), Some(nbf)) = (second("exp"), second("nbf")) else {
        return Err(TokenError::Invalid("exp and nbf must be whole seconds".into()));
    };
    let leeway = rules.leeway.as_secs();
    if exp + leeway < now_seconds || nbf > now_seconds + leeway {
        return Err(TokenError::Invalid("outside its validity window".into()));
    }
    C::deserialize(&*claims).map_err(|e| TokenError::Invalid(e.to_string()))
}

/// A token whose signature was checked: under which key and rules, and its claims.
#[derive(Debug)]
struct Verified {
    public: Vec<u8>,
    issuer: String,
    audience: String,
    claims: Arc<serde_json::Value>,
}

/// Tokens checked lately, by their text. Bounded, and each forgotten after a token's longest
/// life, so that the memory stays small whatever clients send (only valid tokens get in).
static VERIFIED: std::sync::LazyLock<moka::sync::Cache<String, Arc<Verified>>> =
    std::sync::LazyLock::new(|| {
        moka::sync::Cache::builder().max_capacity(50_000).time_to_live(Duration::from_secs(3600)).build()
    });

/// The claims of a token whose signature, issuer, audience and required claims are right.
fn check_signature(token: &str, public: &[u8], rules: &TokenRules) -> Result<serde_json::Value, TokenError> {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[&rules.issuer]);
    validation.set_audience(&[&rules.audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_nbf = true;
    validation.leeway = rules.leeway.as_secs();
    jsonwebtoken::decode::<serde_json::Value>(token, &DecodingKey::from_ed_der(public), &validation)
        .map(|data| data.claims)
        .map_err(|e| TokenError::Invalid(e.to_string()))
}

/// The Ed25519 public keys of a JWKS document, by `kid`; keys of other types are skipped.
pub fn parse_jwks(document: &[u8]) -> Result<HashMap<String, Vec<u8>>, TokenError> {
    let value: serde_json::Value =
        serde_json::from_slice(document).map_err(|e| TokenError::Invalid(format!("JWKS: {e}")))?;
    let keys = value["keys"].as_array().ok_or_else(|| TokenError::Invalid("JWKS has no keys".into()))?;
    Ok(keys
        .iter()
        .filter(|key| key["kty"] == "OKP" && key["crv"] == "Ed25519")
        .filter_map(|key| {
            let kid = key["kid"].as_str()?;
            let public = URL_SAFE_NO_PAD.decode(key["x"].as_str()?).ok()?;
            (public.len() == 32).then(|| (kid.to_owned(), public))
        })
        .collect())
}

/// Where a service gets the gateway's JWKS document from.
pub trait JwksSource: Send + Sync {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + '_>>;
}

/// A JWKS document served over HTTP or HTTPS (the gateway's `/.well-known/jwks.json`).
pub struct HttpJwks {
    url: reqwest::Url,
    client: reqwest::Client,
}

impl HttpJwks {
    /// `url` over http:// (inside a cluster network) or https:// (checked against the
    /// system's trusted roots).
    pub fn new(url: &str) -> Result<Self, TokenError> {
        Self::build(url, None)
    }

    /// As [`HttpJwks::new`], also trusting the CA certificate `ca_pem` (a private CA's).
    pub fn with_ca(url: &str, ca_pem: &[u8]) -> Result<Self, TokenError> {
        Self::build(url, Some(ca_pem))
    }

    fn build(url: &str, ca_pem: Option<&[u8]>) -> Result<Self, TokenError> {
        let invalid = |detail: String| TokenError::Invalid(format!("the JWKS address {url:?}: {detail}"));
        let url = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("must be http:// or https://".into()));
        }
        let client =
            crate::client::client(ca_pem, url.scheme() == "https").map_err(|e| invalid(e.to_string()))?;
        Ok(Self { url, client })
    }
}

impl std::fmt::Debug for HttpJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpJwks").field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

impl JwksSource for HttpJwks {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + '_>> {
        Box::pin(async move {
            let response =
                self.client.get(self.url.clone()).timeout(Duration::from_secs(5)).send().await.map_err(
                    |e| {
                        if e.is_timeout() {
                            format!("{} did not answer within 5 s", self.url)
                        } else {
                            e.to_string()
                        }
                    },
                )?;
            if !response.status().is_success() {
                return Err(format!("{} answered {}", self.url, response.status()));
            }
            Ok(response.bytes().await.map_err(|e| e.to_string())?.to_vec())
        })
    }
}

/// Who a verified token speaks for, as a service sees it (put in the request's extensions).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct VerifiedCaller {
    pub sub: String,
    pub role: String,
}

/// The token of an `Authorization` header's value: the scheme `Bearer` in any case (RFC 9110
/// makes schemes case-insensitive), one or more spaces, a non-empty token. The one parser for
/// authentication, the rate limits and delegation alike, so none of them can read a header
/// another reads differently.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A service's check of the bearer token on every request, with the gateway's public keys
/// cached and fetched again when a token names a `kid` not seen yet (a rotation), at most once
/// per [`ServiceAuth::REFRESH_EVERY`] so a flood of forged kids cannot hammer the gateway, and
/// every [`ServiceAuth::REFETCH_EVERY`] whatever tokens come (so a key the gateway retired
/// stops verifying here too).
pub struct ServiceAuth {
    source: Box<dyn JwksSource>,
    rules: TokenRules,
    keys: RwLock<HashMap<String, Vec<u8>>>,
    last_fetch: Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ServiceAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAuth").field("rules", &self.rules).finish_non_exhaustive()
    }
}

/// Paths every caller reaches without a token: probes and the API description.
const OPEN_PATHS: [&str; 4] = ["/health", "/ready", "/openapi.json", "/metrics"];

impl ServiceAuth {
    pub const REFRESH_EVERY: Duration = Duration::from_secs(5);
    pub const REFETCH_EVERY: Duration = Duration::from_secs(300);

    pub fn new(source: Box<dyn JwksSource>, rules: TokenRules) -> Self {
        Self {
            source,
            rules,
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self, kid: &str) -> Option<Vec<u8>> {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(kid).cloned()
    }

    async fn key(&self, kid: &str) -> Option<Vec<u8>> {
        if let Some(key) = self.cached(kid) {
            return Some(key);
        }
        let _one_fetch_at_a_time = self.fetching.lock().await;
        if let Some(key) = self.cached(kid) {
            return Some(key);
        }
        {
            let mut last = self.last_fetch.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < Self::REFRESH_EVERY) {
                return None;
            }
            *last = Some(Instant::now());
        }
        self.fetch().await;
        self.cached(kid)
    }

    /// Replaces the cached keys with the gateway's current set.
    async fn fetch(&self) {
        match self.source.fetch().await.map_err(TokenError::Invalid).and_then(|doc| parse_jwks(&doc)) {
            Ok(keys) => {
                *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot fetch the gateway's public keys");
                // Let the next request try again instead of waiting out the refresh interval.
                *self.last_fetch.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
            }
        }
    }

    /// Fetches the keys every `every` for as long as `auth` is in use (a task on the current
    /// runtime that ends when the last other handle is dropped).
    pub fn refetch_on_schedule(auth: &Arc<Self>, every: Duration) {
        let auth = Arc::downgrade(auth);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(auth) = auth.upgrade() else { return };
                let _one_fetch_at_a_time = auth.fetching.lock().await;
                auth.fetch().await;
            }
        });
    }

    /// The caller a request's bearer token names, or why it is refused.
    pub async fn check(&self, authorization: Option<&HeaderValue>) -> Result<VerifiedCaller, TokenError> {
        let value =
            authorization.ok_or(TokenError::Malformed)?.to_str().map_err(|_| TokenError::Malformed)?;
        let token = bearer_token(value).ok_or(TokenError::Malformed)?;
        let kid = key_id(token)?;
        let public = self.key(&kid).await.ok_or(TokenError::UnknownKey)?;
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        verify(token, &public, &self.rules, now)
    }

    /// `router` behind the check: 401 without a valid token, 403 when a customer's token
    /// reaches the service's operator routes (`/admin/...`), which only admins and the
    /// gateway's own service identity may call.
    pub fn protect(self: Arc<Self>, router: Router) -> Router {
        Self::refetch_on_schedule(&self, Self::REFETCH_EVERY);
        router.layer(axum::middleware::from_fn_with_state(self, authenticate))
    }
}

async fn authenticate(State(auth): State<Arc<ServiceAuth>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if OPEN_PATHS.contains(&path) {
        return next.run(request).await;
    }
    let operator_route = path == "/admin" || path.starts_with("/admin/");
    match auth.check(request.headers().get(header::AUTHORIZATION)).await {
        Ok(caller) if operator_route && !matches!(caller.role.as_str(), "admin" | "service") => {
            Problem::new(StatusCode::FORBIDDEN, "forbidden", "operator routes need the admin role")
                .into_response()
        }
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(error) => {
            tracing::info!(%error, path, "token refused");
            let mut response = Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the token is missing, expired, not yet valid or not the gateway's",
            )
            .into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// Header the gateway sets on in-process calls (embedded topology) to say whom a call is for.
/// Over the network it is ignored: there the verified token says who is calling.
pub const ACTOR_HEADER: &str = "x-tessera-actor";

/// Who a service is acting for, for its audit trail: the verified token's subject and role
/// (distributed), the gateway's word for it in the same process (embedded), or `anonymous`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub id: String,
    pub role: String,
}

impl Actor {
    pub fn anonymous() -> Self {
        Self { id: "anonymous".into(), role: "none".into() }
    }

    /// Tessera itself, acting for no caller (seeding the demo catalogue, a benchmark).
    pub fn system(name: &str) -> Self {
        Self { id: name.to_owned(), role: "system".into() }
    }

    /// An audit record of `action` on `resource` by this actor.
    pub fn audit(
        &self,
        action: &str,
        resource: impl Into<String>,
        outcome: &str,
        at: tessera_kernel::Timestamp,
    ) -> tessera_store::AuditRecord {
        tessera_store::AuditRecord {
            actor: self.id.clone(),
            role: self.role.clone(),
            action: action.to_owned(),
            resource: resource.into(),
            outcome: outcome.to_owned(),
            trace_id: None,
            at,
        }
    }

    fn from_parts(parts: &axum::http::request::Parts) -> Self {
        if let Some(caller) = parts.extensions.get::<VerifiedCaller>() {
            return Self { id: caller.sub.clone(), role: caller.role.clone() };
        }
        parts
            .headers
            .get(ACTOR_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(':'))
            .filter(|(role, id)| !role.is_empty() && !id.is_empty() && id.len() <= 320)
            .map_or_else(Self::anonymous, |(role, id)| Self { id: id.to_owned(), role: role.to_owned() })
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Actor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}

#[cfg(test)]
mod bearer_tests {
    use super::bearer_token;

    #[test]
    fn the_scheme_is_read_in_any_case_and_an_empty_token_is_none() {
        for header in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR   abc  "] {
            assert_eq!(bearer_token(header), Some("abc"), "{header:?}");
        }
        for header in ["Basic abc", "Bearer", "Bearer   ", "Bearerabc", ""] {
            assert_eq!(bearer_token(header), None, "{header:?}");
        }
    }
}
