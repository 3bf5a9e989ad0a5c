//! The gateway's own store: its tables (signing keys, idempotency keys, the services' audit
//! heads it witnesses) and the signing key kept there.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tessera_store::{Migration, MigrationSet, Statement, Store};

use crate::auth::{SigningKey, TokenError};
use crate::error::GatewayError;

/// `gateway_idempotency` is no longer written: orders keeps a placement's key with its order
/// (decision 0004). It stays while gateways of the previous release may run beside this one.
const KEYS_AND_IDEMPOTENCY: &str = "
    CREATE TABLE gateway_keys (kid TEXT PRIMARY KEY, pkcs8 TEXT NOT NULL, created_at BIGINT NOT NULL);
    CREATE TABLE gateway_idempotency (
        caller TEXT NOT NULL, idempotency_key TEXT NOT NULL, request_hash TEXT NOT NULL,
        status BIGINT, body TEXT, created_at BIGINT NOT NULL,
        PRIMARY KEY (caller, idempotency_key));";

/// Failed sign-ins per account or address (`crate::throttle`), shared by every replica.
const SIGN_IN_FAILURES: &str = "
    CREATE TABLE gateway_sign_in_failures (
        subject TEXT PRIMARY KEY, failures BIGINT NOT NULL, last_at BIGINT NOT NULL,
        blocked_until BIGINT NOT NULL);";

pub const MIGRATIONS: MigrationSet = MigrationSet {
    scope: "gateway",
    migrations: &[
        Migration {
            version: 1,
            name: "signing keys, idempotency keys",
            sqlite: KEYS_AND_IDEMPOTENCY,
            postgres: KEYS_AND_IDEMPOTENCY,
        },
        Migration { version: 2, name: "audit heads witnessed", sqlite: AUDIT_HEADS, postgres: AUDIT_HEADS },
        Migration {
            version: 3,
            name: "failed sign-ins per account and address",
            sqlite: SIGN_IN_FAILURES,
            postgres: SIGN_IN_FAILURES,
        },
    ],
};

pub(crate) fn now(store: &Store) -> i64 {
    i64::try_from(store.clock().now().as_micros()).unwrap_or(i64::MAX)
}

/// The newest stored signing key, or a new one stored first.
pub(crate) async fn signing_key(store: &Store) -> Result<SigningKey, GatewayError> {
    if let Some(key) = newest_key(store).await? {
        return Ok(key);
    }
    let key = SigningKey::generate()?;
    let mut unit = store.begin();
    unit.execute(
        Statement::new("INSERT INTO gateway_keys (kid, pkcs8, created_at) VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING")
            .bind(key.kid.as_str())
            .bind(STANDARD.encode(key.pkcs8().unwrap_or_default()))
            .bind(now(store)),
    );
    unit.commit().await?;
    // Another replica may have stored its key at the same moment: everyone takes the newest.
    Ok(newest_key(store).await?.unwrap_or(key))
}

async fn newest_key(store: &Store) -> Result<Option<SigningKey>, GatewayError> {
    let rows = store
        .query(Statement::new("SELECT pkcs8 FROM gateway_keys ORDER BY created_at DESC, kid LIMIT 1"))
        .await?;
    let Some(row) = rows.first() else { return Ok(None) };
    let der = STANDARD
        .decode(row.text("pkcs8")?)
        .map_err(|e| GatewayError::Token(TokenError::Signing(e.to_string())))?;
    Ok(Some(SigningKey::from_pkcs8(&der)?))
}

const AUDIT_HEADS: &str = "
    CREATE TABLE gateway_audit_heads (
        service TEXT PRIMARY KEY,
        idx BIGINT NOT NULL CHECK (idx >= 0),
        hash TEXT NOT NULL,
        seen_at BIGINT NOT NULL);";

/// The gateway's store: its own tables and the inbox of its subscription to inventory.
pub fn migrations() -> Vec<MigrationSet> {
    vec![tessera_bus::MIGRATIONS, MIGRATIONS]
}
