//! The gateway's own store: its tables (signing keys, idempotency keys, the services' audit
//! heads it witnesses) and the signing key kept there.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tessera_kernel::Timestamp;
use tessera_store::{Migration, MigrationSet, Statement, Store};

use crate::auth::{KeyRing, SigningKey, TokenError};
use crate::error::GatewayError;
use crate::state::GatewayParts;

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
    if let Some((key, _)) = stored_keys(store).await?.into_iter().next() {
        return Ok(key);
    }
    let key = add_key(store).await?;
    // Another replica may have stored its key at the same moment: everyone takes the newest.
    Ok(stored_keys(store).await?.into_iter().next().map_or(key, |(newest, _)| newest))
}

/// A new signing key, stored; it signs once the replicas load it ([`load_keys`]).
pub(crate) async fn add_key(store: &Store) -> Result<SigningKey, GatewayError> {
    let key = SigningKey::generate()?;
    let mut unit = store.begin();
    unit.execute(
        Statement::new("INSERT INTO gateway_keys (kid, pkcs8, created_at) VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING")
            .bind(key.kid.as_str())
            .bind(STANDARD.encode(key.pkcs8().unwrap_or_default()))
            .bind(now(store)),
    );
    unit.commit().await?;
    Ok(key)
}

/// Every stored key with when it was stored, newest first.
async fn stored_keys(store: &Store) -> Result<Vec<(SigningKey, Timestamp)>, GatewayError> {
    let rows = store
        .query(Statement::new("SELECT pkcs8, created_at FROM gateway_keys ORDER BY created_at DESC, kid"))
        .await?;
    rows.iter()
        .map(|row| {
            let der = STANDARD
                .decode(row.text("pkcs8")?)
                .map_err(|e| GatewayError::Token(TokenError::Signing(e.to_string())))?;
            let created = Timestamp::from_micros(u64::try_from(row.int("created_at")?).unwrap_or(0));
            Ok((SigningKey::from_pkcs8(&der)?, created))
        })
        .collect()
}

/// Loads the stored keys into `ring`: the newest signs, and each older one verifies until the
/// tokens it signed before the next one took over have expired. Every replica reads the same
/// rows, so a rotation made through one reaches all.
pub(crate) async fn load_keys(store: &Store, ring: &KeyRing, now: Timestamp) -> Result<(), GatewayError> {
    let keys = stored_keys(store).await?;
    let Some((newest, _)) = keys.first() else { return Ok(()) };
    let previous = keys
        .windows(2)
        .filter_map(|pair| {
            let (newer, older) = (&pair[0], &pair[1]);
            let retire_after = ring.retire_after(newer.1);
            (retire_after > now).then(|| older.0.public_only_until(Some(retire_after)))
        })
        .collect();
    ring.replace(newest.clone(), previous);
    Ok(())
}

/// How often a replica reads the stored signing keys again.
pub const KEY_RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the stored signing keys every [`KEY_RELOAD_EVERY`] for as long as the gateway lives.
pub(crate) async fn reload_keys(gateway: std::sync::Weak<GatewayParts>) {
    let mut ticks = tokio::time::interval(KEY_RELOAD_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(gateway) = gateway.upgrade() else { return };
        if let Err(error) = load_keys(&gateway.store, &gateway.keys, gateway.store.clock().now()).await {
            tracing::warn!(%error, "cannot read the signing keys again");
        }
    }
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
