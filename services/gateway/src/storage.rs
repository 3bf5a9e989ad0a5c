//! The gateway's own store: its tables (signing keys, idempotency keys, the services' audit
//! heads it witnesses) and the signing key kept there.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tessera_kernel::Timestamp;
use tessera_store::{Migration, MigrationSet, Statement, Store};
use tessera_vault::Sealer;

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

/// The vault subject whose data key seals the signing keys.
const SIGNING_KEYS_SUBJECT: &str = "gateway:signing-keys";

/// Where the signing keys live: the gateway's store, sealed by `sealer` when there is one.
#[derive(Clone, Debug)]
pub(crate) struct KeyStore {
    pub store: Store,
    pub sealer: Option<Arc<dyn Sealer>>,
}

fn key_error(error: impl std::fmt::Display) -> GatewayError {
    GatewayError::Token(TokenError::Signing(error.to_string()))
}

impl KeyStore {
    /// The newest stored signing key, or a new one stored first. Keys stored in clear by an
    /// earlier release are sealed now.
    pub(crate) async fn signing_key(&self) -> Result<SigningKey, GatewayError> {
        self.seal_keys_in_clear().await?;
        if let Some((key, _)) = self.stored_keys().await?.into_iter().next() {
            return Ok(key);
        }
        let key = self.add_key().await?;
        // Another replica may have stored its key at the same moment: everyone takes the newest.
        Ok(self.stored_keys().await?.into_iter().next().map_or(key, |(newest, _)| newest))
    }

    /// A new signing key, stored; it signs once the replicas load it ([`Self::load_keys`]).
    pub(crate) async fn add_key(&self) -> Result<SigningKey, GatewayError> {
        let key = SigningKey::generate()?;
        let stored = self.sealed(key.pkcs8().unwrap_or_default()).await?;
        let mut unit = self.store.begin();
        unit.execute(
            Statement::new(
                "INSERT INTO gateway_keys (kid, pkcs8, created_at) VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING",
            )
            .bind(key.kid.as_str())
            .bind(stored)
            .bind(now(&self.store)),
        );
        unit.commit().await?;
        Ok(key)
    }

    /// What the `pkcs8` column holds for `der`: sealed, or base64 in clear without a sealer.
    async fn sealed(&self, der: &[u8]) -> Result<String, GatewayError> {
        let text = STANDARD.encode(der);
        match &self.sealer {
            Some(sealer) => sealer.seal(SIGNING_KEYS_SUBJECT, &text).await.map_err(key_error),
            None => Ok(text),
        }
    }

    /// The key a `pkcs8` column holds, sealed or (from before sealing) in clear.
    async fn opened(&self, stored: &str) -> Result<SigningKey, GatewayError> {
        let text = match &self.sealer {
            Some(sealer) => sealer
                .open(SIGNING_KEYS_SUBJECT, stored)
                .await
                .map_err(key_error)?
                .ok_or_else(|| key_error("the signing keys' data key is gone from the vault"))?,
            None => stored.to_owned(),
        };
        let der = STANDARD.decode(text.trim()).map_err(|_| {
            key_error("a stored signing key is sealed, and this gateway has no vault to open it")
        })?;
        Ok(SigningKey::from_pkcs8(&der)?)
    }

    /// Every stored key with when it was stored, newest first.
    async fn stored_keys(&self) -> Result<Vec<(SigningKey, Timestamp)>, GatewayError> {
        let rows = self
            .store
            .query(Statement::new("SELECT pkcs8, created_at FROM gateway_keys ORDER BY created_at DESC, kid"))
            .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let created = Timestamp::from_micros(u64::try_from(row.int("created_at")?).unwrap_or(0));
            keys.push((self.opened(row.text("pkcs8")?).await?, created));
        }
        Ok(keys)
    }

    /// Seals the keys an earlier release stored in clear (base64 of the PKCS#8 document).
    async fn seal_keys_in_clear(&self) -> Result<(), GatewayError> {
        if self.sealer.is_none() {
            return Ok(());
        }
        let rows = self.store.query(Statement::new("SELECT kid, pkcs8 FROM gateway_keys")).await?;
        for row in &rows {
            let stored = row.text("pkcs8")?;
            let in_clear = STANDARD.decode(stored).is_ok_and(|der| SigningKey::from_pkcs8(&der).is_ok());
            if !in_clear {
                continue;
            }
            let der = STANDARD.decode(stored).map_err(key_error)?;
            let sealed = self.sealed(&der).await?;
            let mut unit = self.store.begin();
            unit.execute(
                Statement::new("UPDATE gateway_keys SET pkcs8 = $1 WHERE kid = $2 AND pkcs8 = $3")
                    .bind(sealed)
                    .bind(row.text("kid")?)
                    .bind(stored),
            );
            unit.commit().await?;
            tracing::info!(kid = row.text("kid")?, "a signing key stored in clear is sealed now");
        }
        Ok(())
    }

    /// Loads the stored keys into `ring`: the newest signs, and each older one verifies until
    /// the tokens it signed before the next one took over have expired. Every replica reads
    /// the same rows, so a rotation made through one reaches all.
    pub(crate) async fn load_keys(&self, ring: &KeyRing, now: Timestamp) -> Result<(), GatewayError> {
        let keys = self.stored_keys().await?;
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
        let keys = KeyStore { store: gateway.store.clone(), sealer: gateway.config.key_sealer.clone() };
        if let Err(error) = keys.load_keys(&gateway.keys, gateway.store.clock().now()).await {
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
