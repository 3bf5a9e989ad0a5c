//! Tokens: EdDSA (Ed25519) JWTs issued by the gateway and verified by it (and, in the
//! distributed topology, again by each service from the JWKS).
//!
//! Verification accepts exactly one algorithm, `EdDSA`, and a key only by its `kid`, so the
//! classic attacks fail by construction: `alg: none`, an HMAC token keyed with the public key,
//! a token signed by another key, a tampered payload, an unknown `kid`. Rotation adds a key
//! and keeps the old public keys until every token they signed has expired.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use tessera_kernel::Timestamp;

/// Who a token speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Support,
    Admin,
    /// The gateway itself, calling a service on nobody's behalf (sign-in, registration,
    /// public reads) in the distributed topology. Never issued to a client.
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Support => "support",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The customer id for customers; the user's email for staff.
    pub sub: String,
    pub role: Role,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
}

pub use tessera_web::token::TokenError;

/// One Ed25519 key: the private half (PKCS#8) while it signs, the public half while tokens it
/// signed may still be presented.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pkcs8: Option<Vec<u8>>,
    public: Vec<u8>,
    /// After this instant no token it signed is valid any more, so it can be dropped.
    pub retire_after: Option<Timestamp>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key pair.
    pub fn generate() -> Result<Self, TokenError> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        Self::from_pkcs8(document.as_ref())
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, TokenError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| TokenError::Signing(e.to_string()))?;
        let public = pair.public_key().as_ref().to_vec();
        // The kid is derived from the public key: stable across restarts and replicas.
        let digest = ring::digest::digest(&ring::digest::SHA256, &public);
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]);
        Ok(Self { kid, pkcs8: Some(pkcs8.to_vec()), public, retire_after: None })
    }

    pub fn pkcs8(&self) -> Option<&[u8]> {
        self.pkcs8.as_deref()
    }

    fn public_only(&self, retire_after: Timestamp) -> Self {
        self.public_only_until(Some(retire_after))
    }

    /// The public half alone, honoured until `retire_after`.
    pub fn public_only_until(&self, retire_after: Option<Timestamp>) -> Self {
        Self { kid: self.kid.clone(), pkcs8: None, public: self.public.clone(), retire_after }
    }

    fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": self.kid, "x": URL_SAFE_NO_PAD.encode(&self.public),
        })
    }
}

#[derive(Clone, Debug)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: "tessera".into(),
            audience: "tessera-api".into(),
            ttl: Duration::from_secs(15 * 60),
            leeway: Duration::from_secs(5),
        }
    }
}

#[derive(Debug)]
struct Keys {
    current: SigningKey,
    previous: Vec<SigningKey>,
}

/// The signing key and the public keys still honoured.
#[derive(Clone, Debug)]
pub struct KeyRing {
    keys: Arc<RwLock<Keys>>,
    pub settings: TokenSettings,
}

fn seconds(at: Timestamp) -> u64 {
    at.as_micros() / 1_000_000
}

impl KeyRing {
    pub fn new(current: SigningKey, settings: TokenSettings) -> Self {
        Self { keys: Arc::new(RwLock::new(Keys { current, previous: Vec::new() })), settings }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        // A poisoned lock only means a writer panicked mid-rotation; the keys are still whole.
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts signing with `next`; the old key verifies until its last token expires.
    pub fn rotate(&self, next: SigningKey, now: Timestamp) {
        let retire_after = now.saturating_add(self.settings.ttl + self.settings.leeway);
        let mut keys = self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = std::mem::replace(&mut keys.current, next);
        keys.previous.retain(|k| k.retire_after.is_some_and(|r| r > now));
        keys.previous.push(old.public_only(retire_after));
    }

    /// When a key superseded at `superseded_at` stops verifying: once the last token it
    /// signed has expired.
    pub fn retire_after(&self, superseded_at: Timestamp) -> Timestamp {
        superseded_at.saturating_add(self.settings.ttl + self.settings.leeway)
    }

    /// Signs with `current` from now on and honours `previous` (each with its
    /// `retire_after`), as read from the store, so that every replica holds the same ring.
    pub fn replace(&self, current: SigningKey, previous: Vec<SigningKey>) {
        let previous = previous.into_iter().map(|key| key.public_only_until(key.retire_after)).collect();
        let mut keys = self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *keys = Keys { current, previous };
    }

    /// The kids of the keys honoured besides the current one.
    pub fn previous_kids(&self) -> Vec<String> {
        self.read().previous.iter().map(|key| key.kid.clone()).collect()
    }

    pub fn current_kid(&self) -> String {
        self.read().current.kid.clone()
    }

    /// A token for `sub` with `role`, valid from `now` for the configured time.
    pub fn issue(&self, sub: &str, role: Role, now: Timestamp) -> Result<String, TokenError> {
        let now = seconds(now);
        self.sign(&Claims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: sub.to_owned(),
            role,
            iat: now,
            nbf: now,
            exp: now + self.settings.ttl.as_secs(),
        })
    }

    /// A token for one call to `service` on behalf of `role`:`sub`, valid for `ttl` from `now`:
    /// its audience is that service alone (the on-behalf-of token of RFC 8693), and `act`
    /// names the gateway as the party acting.
    pub fn issue_for_service(
        &self,
        service: &str,
        sub: &str,
        role: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<String, TokenError> {
        let now = seconds(now);
        self.sign(&serde_json::json!({
            "iss": self.settings.issuer,
            "aud": tessera_web::token::service_audience(service),
            "sub": sub,
            "role": role,
            "act": { "sub": tessera_web::access::GATEWAY },
            "iat": now,
            "nbf": now,
            "exp": now + ttl.as_secs(),
        }))
    }

    fn sign(&self, claims: &impl Serialize) -> Result<String, TokenError> {
        let keys = self.read();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.current.kid.clone());
        let pkcs8 = keys
            .current
            .pkcs8()
            .ok_or_else(|| TokenError::Signing("the current key has no private half".into()))?;
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(pkcs8))
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Claims, TokenError> {
        let kid = tessera_web::token::key_id(token)?;
        let public = {
            let keys = self.read();
            let current = std::iter::once(&keys.current);
            let honoured = keys.previous.iter().filter(|k| k.retire_after.is_none_or(|r| r > now));
            current.chain(honoured).find(|k| k.kid == kid).map(|k| k.public.clone())
        }
        .ok_or(TokenError::UnknownKey)?;
        let rules = tessera_web::token::TokenRules {
            issuer: self.settings.issuer.clone(),
            audience: self.settings.audience.clone(),
            leeway: self.settings.leeway,
        };
        tessera_web::token::verify(token, &public, &rules, seconds(now))
    }

    /// `/.well-known/jwks.json`: the public keys that verify tokens now.
    pub fn jwks(&self, now: Timestamp) -> serde_json::Value {
        let keys = self.read();
        let mut list = vec![keys.current.jwk()];
        list.extend(
            keys.previous.iter().filter(|k| k.retire_after.is_none_or(|r| r > now)).map(SigningKey::jwk),
        );
        serde_json::json!({ "keys": list })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_system_time(std::time::SystemTime::now())
    }

    fn ring() -> KeyRing {
        KeyRing::new(SigningKey::generate().expect("key"), TokenSettings::default())
    }

    fn b64(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[test]
    fn a_token_round_trips_with_its_claims() {
        let keys = ring();
        let token = keys.issue("c-1", Role::Customer, now()).expect("token");
        let claims = keys.verify(&token, now()).expect("valid");
        assert_eq!((claims.sub.as_str(), claims.role, claims.exp - claims.iat), ("c-1", Role::Customer, 900));
    }

    #[test]
    fn a_token_remembered_as_verified_still_expires() {
        let keys = ring();
        let at = now();
        let token = keys.issue("c-1", Role::Customer, at).expect("token");
        // The first check remembers the token; the later ones are answered from memory.
        keys.verify(&token, at).expect("valid");
        keys.verify(&token, at).expect("still valid");
        let expired = at.saturating_add(Duration::from_secs(900 + 6));
        assert!(keys.verify(&token, expired).is_err(), "a remembered token outlived its expiry");
    }

    #[test]
    fn every_classic_attack_is_refused() {
        let keys = ring();
        let at = now();
        let token = keys.issue("c-1", Role::Customer, at).expect("token");
        let parts: Vec<&str> = token.split('.').collect();
        let kid = keys.current_kid();
        let claims = serde_json::json!({"iss": "tessera", "aud": "tessera-api", "sub": "c-1", "role": "admin",
            "iat": seconds(at), "nbf": seconds(at), "exp": seconds(at) + 900});

        // alg: none, unsigned.
        let none = format!("{}.{}.", b64(&serde_json::json!({"alg": "none", "kid": kid})), b64(&claims));
        assert!(keys.verify(&none, at).is_err());
        // HS256 keyed with the public key (the algorithm-confusion attack).
        let public = URL_SAFE_NO_PAD.decode(keys.jwks(at)["keys"][0]["x"].as_str().expect("x")).expect("x");
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(kid.clone());
        let hmac = jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(&public)).expect("hmac");
        assert!(keys.verify(&hmac, at).is_err());
        // Signed by another key that claims our kid.
        let other = ring();
        let mut forged_header = Header::new(Algorithm::EdDSA);
        forged_header.kid = Some(kid.clone());
        let forged_key = SigningKey::generate().expect("key");
        let forged = jsonwebtoken::encode(
            &forged_header,
            &claims,
            &EncodingKey::from_ed_der(forged_key.pkcs8().expect("private")),
        )
        .expect("forged");
        assert!(keys.verify(&forged, at).is_err());
        // Another gateway's genuine token: unknown kid.
        assert_eq!(
            keys.verify(&other.issue("c-1", Role::Customer, at).expect("t"), at),
            Err(TokenError::UnknownKey)
        );
        // Tampered payload (role raised), original signature.
        let tampered = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
        assert!(keys.verify(&tampered, at).is_err());
        // Garbage.
        assert_eq!(keys.verify("not.a.token", at), Err(TokenError::Malformed));
    }

    #[test]
    fn expiry_not_before_issuer_and_audience_are_checked() {
        let keys = ring();
        let at = now();
        let expired =
            keys.issue("c-1", Role::Customer, at.saturating_sub(Duration::from_secs(3600))).expect("t");
        assert!(keys.verify(&expired, at).is_err());
        let future =
            keys.issue("c-1", Role::Customer, at.saturating_add(Duration::from_secs(600))).expect("t");
        assert!(keys.verify(&future, at).is_err(), "not yet valid");
        let stranger = KeyRing {
            keys: keys.keys.clone(),
            settings: TokenSettings { issuer: "someone-else".into(), ..TokenSettings::default() },
        };
        assert!(
            keys.verify(&stranger.issue("c-1", Role::Customer, at).expect("t"), at).is_err(),
            "wrong issuer"
        );
        let other_audience = KeyRing {
            keys: keys.keys.clone(),
            settings: TokenSettings { audience: "another-api".into(), ..TokenSettings::default() },
        };
        assert!(
            keys.verify(&other_audience.issue("c-1", Role::Customer, at).expect("t"), at).is_err(),
            "wrong audience"
        );
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_until_they_expire() {
        let keys = ring();
        let at = now();
        let old = keys.issue("c-1", Role::Customer, at).expect("token");
        keys.rotate(SigningKey::generate().expect("key"), at);
        let new = keys.issue("c-1", Role::Customer, at).expect("token");
        assert!(keys.verify(&old, at).is_ok() && keys.verify(&new, at).is_ok());
        assert_eq!(keys.jwks(at)["keys"].as_array().map(Vec::len), Some(2));
        let later = at.saturating_add(Duration::from_secs(20 * 60));
        assert_eq!(keys.verify(&old, later), Err(TokenError::UnknownKey), "the old key retired");
        assert_eq!(keys.jwks(later)["keys"].as_array().map(Vec::len), Some(1));
    }
}
