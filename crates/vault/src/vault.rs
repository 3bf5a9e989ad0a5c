//! The vault: data keys made on first use, cached unwrapped in memory, shredded on erasure,
//! rewrapped on master rotation; and the keyed hashes.
//!
//! Concurrency across tasks and processes rests on the database: a new key is inserted only
//! if the subject has neither a key nor a tombstone (`INSERT … WHERE NOT EXISTS … ON CONFLICT
//! DO NOTHING`), then read back, so every racing caller ends up with the one key that won.
//!
//! A shredded key's wrapped row may linger in database free pages, the WAL or old row
//! versions until they are reused or vacuumed. It is useless without the master key; rotating
//! the master key and destroying the old one completes the erasure of such remnants.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use moka::sync::Cache;
use ring::aead::LessSafeKey;
use ring::hmac;
use ring::rand::SystemRandom;
use tessera_store::{Row, Statement, Store};

use crate::crypto::{self, KEY_LEN};
use crate::error::{Result, VaultError};
use crate::master::MasterKey;
use crate::schema::MIGRATIONS;
use crate::sealed::{Decrypted, Sealed};
use crate::stream::StreamKey;

#[derive(Clone, Debug)]
pub struct VaultOptions {
    /// Most unwrapped data keys kept in memory.
    pub cache_capacity: u64,
    /// How long an unwrapped key stays cached. It bounds how long this process keeps using a
    /// key another process shredded, should that process's [`Vault::evict`] call never come.
    pub cache_ttl: Duration,
    /// Keys rewrapped per transaction by [`Vault::rotate_master`].
    pub rotation_batch: usize,
}

impl Default for VaultOptions {
    fn default() -> Self {
        Self { cache_capacity: 10_000, cache_ttl: Duration::from_secs(300), rotation_batch: 500 }
    }
}

/// What one step of a master rotation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationStep {
    /// Data keys rewrapped under the new master key by this step.
    pub rewrapped: u64,
    /// No data key is wrapped by any other master key any more: the old ones may be retired.
    pub done: bool,
}

/// A handle on the vault; clones share the key cache.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    keyring: RwLock<Keyring>,
    cache: Cache<String, CachedKey>,
    /// Moved (under this lock) by every shred and evict. A lookup caches what it read only if
    /// this has not moved meanwhile, under the same lock, so that a key read just before it
    /// was shredded never lands in the cache after the shred cleared it.
    generation: Mutex<u64>,
    blind_index: hmac::Key,
    pseudonym: hmac::Key,
    rng: SystemRandom,
    options: VaultOptions,
}

/// The master keys this process holds: the current one wraps new keys; any of them unwraps.
struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    fn find(&self, id: &str) -> Result<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id() == id)
            .ok_or_else(|| VaultError::UnknownMasterKey { id: id.to_owned() })
    }

    /// Makes `new` the current key, keeping the old current one for unwrapping.
    fn adopt(&mut self, new: &MasterKey) {
        if self.current.id() == new.id() {
            return;
        }
        let old = std::mem::replace(&mut self.current, new.clone());
        self.previous.retain(|key| key.id() != new.id() && key.id() != old.id());
        self.previous.push(old);
    }
}

#[derive(Clone)]
enum CachedKey {
    Live(Arc<LessSafeKey>),
    /// A tombstone is permanent, so "erased" may be cached as long as a key.
    Erased,
}

enum Lookup {
    Live(Arc<LessSafeKey>),
    Erased,
    /// No key and no tombstone: nothing was ever sealed for this subject here.
    Absent,
}

/// What a wrapped key is for; the associated data binds each wrapped key to its row, so a
/// wrapped key copied to another subject's row (or to a secret's) does not open.
#[derive(Clone, Copy)]
enum Wrapped<'a> {
    DataKey(&'a str),
    Secret(&'a str),
}

impl Wrapped<'_> {
    fn aad(self) -> Vec<u8> {
        let (label, name): (&[u8], &str) = match self {
            Wrapped::DataKey(subject) => (b"tessera.vault.data-key\0", subject),
            Wrapped::Secret(name) => (b"tessera.vault.secret\0", name),
        };
        [label, name.as_bytes()].concat()
    }

    fn describe(self) -> String {
        match self {
            Wrapped::DataKey(subject) => format!("the data key of `{subject}`"),
            Wrapped::Secret(name) => format!("the secret `{name}`"),
        }
    }
}

const BLIND_INDEX_SECRET: &str = "blind-index";
const PSEUDONYM_SECRET: &str = "pseudonym";

fn wrap(master: &MasterKey, rng: &SystemRandom, what: Wrapped<'_>, key: &[u8; KEY_LEN]) -> Result<String> {
    Ok(STANDARD.encode(crypto::seal(master.aead(), rng, &what.aad(), key)?))
}

fn unwrap(keyring: &Keyring, what: Wrapped<'_>, master_id: &str, wrapped: &str) -> Result<[u8; KEY_LEN]> {
    let master = keyring.find(master_id)?;
    let sealed = STANDARD
        .decode(wrapped)
        .map_err(|e| VaultError::Corrupt(format!("{}: not base64: {e}", what.describe())))?;
    let key = crypto::open(master.aead(), &what.aad(), &sealed).map_err(|_| {
        VaultError::Corrupt(format!("{} does not open under master key `{master_id}`", what.describe()))
    })?;
    <[u8; KEY_LEN]>::try_from(key.as_slice())
        .map_err(|_| VaultError::Corrupt(format!("{} is {} bytes long", what.describe(), key.len())))
}

fn micros(store: &Store) -> i64 {
    i64::try_from(store.clock().now().as_micros()).unwrap_or(i64::MAX)
}

fn count(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Vault {
    /// Opens the vault kept in `store` (opened with [`MIGRATIONS`]). `master` wraps new keys;
    /// `previous` master keys only unwrap, for rows a rotation has not reached yet.
    pub async fn open(store: Store, master: MasterKey, previous: Vec<MasterKey>) -> Result<Vault> {
        Self::open_with(store, master, previous, VaultOptions::default()).await
    }

    pub async fn open_with(
        store: Store,
        master: MasterKey,
        previous: Vec<MasterKey>,
        options: VaultOptions,
    ) -> Result<Vault> {
        let migrated = store
            .query(
                Statement::new("SELECT count(*) AS n FROM tessera_migrations WHERE scope = $1")
                    .bind(MIGRATIONS.scope),
            )
            .await?;
        if migrated.first().map(|row| row.int("n")).transpose()?.unwrap_or(0) == 0 {
            return Err(VaultError::NotMigrated);
        }
        let keyring = Keyring { current: master, previous };
        let rng = SystemRandom::new();
        let blind_index = load_or_create_secret(&store, &keyring, &rng, BLIND_INDEX_SECRET).await?;
        let pseudonym = load_or_create_secret(&store, &keyring, &rng, PSEUDONYM_SECRET).await?;
        let cache =
            Cache::builder().max_capacity(options.cache_capacity).time_to_live(options.cache_ttl).build();
        Ok(Vault {
            inner: Arc::new(Inner {
                store,
                keyring: RwLock::new(keyring),
                cache,
                generation: Mutex::new(0),
                blind_index: hmac::Key::new(hmac::HMAC_SHA256, &blind_index),
                pseudonym: hmac::Key::new(hmac::HMAC_SHA256, &pseudonym),
                rng,
                options,
            }),
        })
    }

    /// Seals `plaintext` for `subject`, making the subject's data key on first use. Refused
    /// with [`VaultError::Shredded`] once the subject was erased.
    pub async fn encrypt(&self, subject: &str, plaintext: &[u8]) -> Result<Sealed> {
        match self.key_for(subject, true).await? {
            Lookup::Live(key) => {
                Ok(Sealed::new(crypto::seal(&key, &self.inner.rng, subject.as_bytes(), plaintext)?))
            }
            Lookup::Erased | Lookup::Absent => Err(VaultError::Shredded),
        }
    }

    /// Opens a value sealed for `subject`: [`Decrypted::Erased`] if the subject's key is gone,
    /// [`VaultError::Decrypt`] if the value was altered or sealed for someone else.
    pub async fn decrypt(&self, subject: &str, sealed: &Sealed) -> Result<Decrypted> {
        match self.key_for(subject, false).await? {
            Lookup::Live(key) => {
                Ok(Decrypted::Plain(crypto::open(&key, subject.as_bytes(), sealed.as_bytes())?))
            }
            Lookup::Erased | Lookup::Absent => Ok(Decrypted::Erased),
        }
    }

    pub async fn encrypt_str(&self, subject: &str, plaintext: &str) -> Result<Sealed> {
        self.encrypt(subject, plaintext.as_bytes()).await
    }

    pub async fn decrypt_str(&self, subject: &str, sealed: &Sealed) -> Result<Decrypted<String>> {
        Ok(match self.decrypt(subject, sealed).await? {
            Decrypted::Plain(bytes) => Decrypted::Plain(
                String::from_utf8(bytes)
                    .map_err(|_| VaultError::Malformed("the plaintext is not UTF-8".into()))?,
            ),
            Decrypted::Erased => Decrypted::Erased,
        })
    }

    /// `subject`'s data key for streams: made on first use if `create`; `None` once the
    /// subject is erased (or, without `create`, if they have no key).
    pub(crate) async fn stream_key(&self, subject: &str, create: bool) -> Result<Option<StreamKey>> {
        Ok(match self.key_for(subject, create).await? {
            Lookup::Live(key) => Some(StreamKey::new(key, subject)),
            Lookup::Erased | Lookup::Absent => None,
        })
    }

    /// Erases `subject`: deletes their data key and leaves a tombstone, so that every value
    /// sealed for them opens as [`Decrypted::Erased`] from now on, here at once and in other
    /// processes once they [`evict`](Self::evict) it (or their cache entry expires), and no new
    /// key is ever made for them. Idempotent.
    pub async fn shred(&self, subject: &str) -> Result<()> {
        if subject.is_empty() {
            return Err(VaultError::EmptySubject);
        }
        let store = &self.inner.store;
        let mut unit = store.begin();
        unit.execute(
            Statement::new(
                "INSERT INTO vault_shredded (subject, shredded_at) VALUES ($1, $2) ON CONFLICT (subject) DO NOTHING",
            )
            .bind(subject)
            .bind(micros(store)),
        );
        unit.execute(Statement::new("DELETE FROM vault_keys WHERE subject = $1").bind(subject));
        unit.commit().await?;
        self.forget(subject, true);
        Ok(())
    }

    /// Drops `subject`'s key from this process's cache, so the next use reads the store: what
    /// a process does when it learns that another one erased the subject.
    pub fn evict(&self, subject: &str) {
        self.forget(subject, false);
    }

    /// Rewraps every data key (and the vault's secrets) under `new`, which becomes this
    /// vault's current master key; data is not re-encrypted. Runs in batches and can be
    /// interrupted and run again: until it is done, keep the old master key among `previous`
    /// in every process. Returns the number of data keys rewrapped.
    pub async fn rotate_master(&self, new: MasterKey) -> Result<u64> {
        let batch = self.inner.options.rotation_batch.max(1);
        let mut rewrapped = 0;
        loop {
            let step = self.rotate_master_step(&new, batch).await?;
            rewrapped += step.rewrapped;
            if step.done {
                return Ok(rewrapped);
            }
        }
    }

    /// One batch of a rotation: makes `new` current, rewraps the secrets and up to `max_keys`
    /// data keys in one transaction. For operators who rotate a little at a time.
    pub async fn rotate_master_step(&self, new: &MasterKey, max_keys: usize) -> Result<RotationStep> {
        let old_ids: Vec<String> = {
            let mut keyring = self.inner.keyring.write().unwrap_or_else(PoisonError::into_inner);
            keyring.adopt(new);
            keyring.previous.iter().map(|key| key.id().to_owned()).collect()
        };
        self.rewrap_secrets(new).await?;
        let store = &self.inner.store;
        let now = micros(store);
        let mut unit = store.begin();
        let mut selected = 0;
        for old_id in old_ids {
            if selected >= max_keys {
                break;
            }
            let rows = store
                .query(
                    Statement::new(
                        "SELECT subject, wrapped FROM vault_keys WHERE master_id = $1 ORDER BY subject LIMIT $2",
                    )
                    .bind(old_id.as_str())
                    .bind(count(max_keys - selected)),
                )
                .await?;
            selected += rows.len();
            for row in rows {
                let subject = row.text("subject")?;
                let what = Wrapped::DataKey(subject);
                let rewrapped = self.rewrap(what, &old_id, row.text("wrapped")?, new)?;
                // Only if the row is still as read: a key shredded meanwhile stays deleted.
                unit.execute(
                    Statement::new(
                        "UPDATE vault_keys SET master_id = $1, wrapped = $2, rewrapped_at = $3
                         WHERE subject = $4 AND master_id = $5",
                    )
                    .bind(new.id())
                    .bind(rewrapped)
                    .bind(now)
                    .bind(subject)
                    .bind(old_id.as_str()),
                );
            }
        }
        let rewrapped = if unit.is_empty() { 0 } else { unit.commit().await?.rows_affected };
        let done = selected < max_keys && !self.keys_left_to_rewrap(new).await?;
        Ok(RotationStep { rewrapped, done })
    }

    /// How many data keys each master key wraps, to follow a rotation.
    pub async fn keys_by_master(&self) -> Result<Vec<(String, u64)>> {
        let rows = self
            .inner
            .store
            .query(Statement::new(
                "SELECT master_id, count(*) AS n FROM vault_keys GROUP BY master_id ORDER BY master_id",
            ))
            .await?;
        rows.iter()
            .map(|row| {
                let n =
                    u64::try_from(row.int("n")?).map_err(|_| VaultError::Corrupt("negative count".into()))?;
                Ok((row.text("master_id")?.to_owned(), n))
            })
            .collect()
    }

    /// A keyed hash of `value` for looking it up without storing it in clear (an email's
    /// uniqueness, a login). `purpose` separates uses: the same value gives unrelated indexes
    /// for different purposes. Normalise `value` first (an email in lower case). Stable across
    /// restarts and master rotations; base64url, 43 characters.
    pub fn blind_index(&self, purpose: &str, value: &str) -> String {
        let mut context = hmac::Context::with_key(&self.inner.blind_index);
        context.update(&(purpose.len() as u64).to_be_bytes());
        context.update(purpose.as_bytes());
        context.update(value.as_bytes());
        URL_SAFE_NO_PAD.encode(context.sign())
    }

    /// A stable pseudonym of `value` for analytics, under a key of its own, so that analytics
    /// data cannot be joined with blind indexes. base64url, 43 characters.
    pub fn pseudonym(&self, value: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.inner.pseudonym, value.as_bytes()))
    }

    async fn key_for(&self, subject: &str, create: bool) -> Result<Lookup> {
        if subject.is_empty() {
            return Err(VaultError::EmptySubject);
        }
        if let Some(cached) = self.inner.cache.get(subject) {
            return Ok(match cached {
                CachedKey::Live(key) => Lookup::Live(key),
                CachedKey::Erased => Lookup::Erased,
            });
        }
        let generation = *self.inner.generation.lock().unwrap_or_else(PoisonError::into_inner);
        let mut lookup = self.read_key(subject).await?;
        if create && matches!(lookup, Lookup::Absent) {
            lookup = self.create_key(subject).await?;
        }
        let cached = match &lookup {
            Lookup::Live(key) => CachedKey::Live(key.clone()),
            Lookup::Erased => CachedKey::Erased,
            Lookup::Absent => return Ok(lookup),
        };
        let current = self.inner.generation.lock().unwrap_or_else(PoisonError::into_inner);
        if *current == generation {
            self.inner.cache.insert(subject.to_owned(), cached);
        }
        Ok(lookup)
    }

    /// The subject's key, tombstone or nothing, in one statement (one snapshot). A tombstone
    /// wins over a key row, which only a hand-edited database could hold next to it.
    async fn read_key(&self, subject: &str) -> Result<Lookup> {
        let rows = self
            .inner
            .store
            .query(
                Statement::new(
                    "SELECT (SELECT master_id FROM vault_keys WHERE subject = $1) AS master_id,
                            (SELECT wrapped FROM vault_keys WHERE subject = $1) AS wrapped,
                            CASE WHEN EXISTS (SELECT 1 FROM vault_shredded WHERE subject = $1)
                                 THEN 1 ELSE 0 END AS shredded",
                )
                .bind(subject),
            )
            .await?;
        let row = rows.first().ok_or_else(|| VaultError::Corrupt("a key lookup returned no row".into()))?;
        if row.int("shredded")? != 0 {
            return Ok(Lookup::Erased);
        }
        match (row.opt_text("master_id")?, row.opt_text("wrapped")?) {
            (Some(master_id), Some(wrapped)) => {
                let keyring = self.inner.keyring.read().unwrap_or_else(PoisonError::into_inner);
                let key = unwrap(&keyring, Wrapped::DataKey(subject), master_id, wrapped)?;
                Ok(Lookup::Live(Arc::new(crypto::key(&key))))
            }
            _ => Ok(Lookup::Absent),
        }
    }

    /// Makes a key unless the subject has one or was erased, then reads back whichever key
    /// won: this call's, or one a concurrent caller (here or in another process) inserted.
    async fn create_key(&self, subject: &str) -> Result<Lookup> {
        let store = &self.inner.store;
        let key: [u8; KEY_LEN] = crypto::random_bytes(&self.inner.rng)?;
        let (master_id, wrapped) = {
            let keyring = self.inner.keyring.read().unwrap_or_else(PoisonError::into_inner);
            let master = &keyring.current;
            (master.id().to_owned(), wrap(master, &self.inner.rng, Wrapped::DataKey(subject), &key)?)
        };
        let mut unit = store.begin();
        unit.execute(
            Statement::new(
                "INSERT INTO vault_keys (subject, master_id, wrapped, created_at)
                 SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM vault_shredded WHERE subject = $1)
                 ON CONFLICT (subject) DO NOTHING",
            )
            .bind(subject)
            .bind(master_id)
            .bind(wrapped)
            .bind(micros(store)),
        );
        unit.commit().await?;
        match self.read_key(subject).await? {
            Lookup::Absent => Err(VaultError::Corrupt(format!(
                "the data key of `{subject}` vanished without a tombstone while it was made"
            ))),
            found => Ok(found),
        }
    }

    fn forget(&self, subject: &str, erased: bool) {
        let mut generation = self.inner.generation.lock().unwrap_or_else(PoisonError::into_inner);
        *generation += 1;
        if erased {
            self.inner.cache.insert(subject.to_owned(), CachedKey::Erased);
        } else {
            self.inner.cache.invalidate(subject);
        }
    }

    fn rewrap(&self, what: Wrapped<'_>, master_id: &str, wrapped: &str, new: &MasterKey) -> Result<String> {
        let keyring = self.inner.keyring.read().unwrap_or_else(PoisonError::into_inner);
        let key = unwrap(&keyring, what, master_id, wrapped)?;
        wrap(new, &self.inner.rng, what, &key)
    }

    async fn rewrap_secrets(&self, new: &MasterKey) -> Result<()> {
        let store = &self.inner.store;
        let rows = store
            .query(
                Statement::new("SELECT name, master_id, wrapped FROM vault_secrets WHERE master_id <> $1")
                    .bind(new.id()),
            )
            .await?;
        let mut unit = store.begin();
        for row in &rows {
            let (name, master_id) = (row.text("name")?, row.text("master_id")?);
            let rewrapped = self.rewrap(Wrapped::Secret(name), master_id, row.text("wrapped")?, new)?;
            unit.execute(
                Statement::new(
                    "UPDATE vault_secrets SET master_id = $1, wrapped = $2, rewrapped_at = $3
                     WHERE name = $4 AND master_id = $5",
                )
                .bind(new.id())
                .bind(rewrapped)
                .bind(micros(store))
                .bind(name)
                .bind(master_id),
            );
        }
        if !unit.is_empty() {
            unit.commit().await?;
        }
        Ok(())
    }

    /// Whether any data key is still wrapped by another master key. One this process does not
    /// hold is an error: the rotation could never finish, and retiring keys would lose data.
    async fn keys_left_to_rewrap(&self, new: &MasterKey) -> Result<bool> {
        let rows = self
            .inner
            .store
            .query(
                Statement::new("SELECT master_id FROM vault_keys WHERE master_id <> $1 LIMIT 1")
                    .bind(new.id()),
            )
            .await?;
        let Some(row) = rows.first() else { return Ok(false) };
        let keyring = self.inner.keyring.read().unwrap_or_else(PoisonError::into_inner);
        keyring.find(row.text("master_id")?)?;
        Ok(true)
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keyring = self.inner.keyring.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Vault")
            .field("master", &keyring.current.id())
            .field("previous", &keyring.previous.iter().map(MasterKey::id).collect::<Vec<_>>())
            .field("cached_keys", &self.inner.cache.entry_count())
            .finish_non_exhaustive()
    }
}

/// The secret named `name`, made and stored wrapped on first use; racing openers all end up
/// with the one that was inserted first.
async fn load_or_create_secret(
    store: &Store,
    keyring: &Keyring,
    rng: &SystemRandom,
    name: &str,
) -> Result<[u8; KEY_LEN]> {
    let read = async || -> Result<Option<Row>> {
        let rows = store
            .query(Statement::new("SELECT master_id, wrapped FROM vault_secrets WHERE name = $1").bind(name))
            .await?;
        Ok(rows.into_iter().next())
    };
    let row = match read().await? {
        Some(row) => row,
        None => {
            let secret: [u8; KEY_LEN] = crypto::random_bytes(rng)?;
            let wrapped = wrap(&keyring.current, rng, Wrapped::Secret(name), &secret)?;
            let mut unit = store.begin();
            unit.execute(
                Statement::new(
                    "INSERT INTO vault_secrets (name, master_id, wrapped, created_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(keyring.current.id())
                .bind(wrapped)
                .bind(micros(store)),
            );
            unit.commit().await?;
            read().await?.ok_or_else(|| VaultError::Corrupt(format!("the secret `{name}` vanished")))?
        }
    };
    unwrap(keyring, Wrapped::Secret(name), row.text("master_id")?, row.text("wrapped")?)
}

#[cfg(test)]
mod tests {
    //! Needs the raw key bytes, which only this module can reach.

    use tessera_store::{SqliteOptions, StoreConfig};
    use tessera_testkit::TempDataDir;

    use super::*;

    fn windows_contain(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|window| window == needle)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_database_files_never_hold_a_data_key_or_secret_in_clear() {
        let dir = TempDataDir::new();
        let path = dir.file("vault.db");
        let config = StoreConfig::Sqlite { path: path.clone(), options: SqliteOptions::default() };
        let store = Store::open(&config, &[MIGRATIONS]).await.expect("open store");
        let master = MasterKey::generate().expect("master");
        let vault = Vault::open(store.clone(), master.clone(), Vec::new()).await.expect("vault");
        let subjects: Vec<String> = (0..20).map(|i| format!("subject-{i}")).collect();
        for subject in &subjects {
            vault.encrypt_str(subject, "Ada Lovelace, 12 Analytical Row").await.expect("encrypt");
        }
        // Rotating writes every key again, wrapped under another key: still never in clear.
        let next = MasterKey::generate().expect("master");
        vault.rotate_master(next.clone()).await.expect("rotate");
        let keyring = Keyring { current: next, previous: vec![master] };

        let mut secrets = Vec::new();
        for subject in &subjects {
            let rows = store
                .query(
                    Statement::new("SELECT master_id, wrapped FROM vault_keys WHERE subject = $1")
                        .bind(subject.as_str()),
                )
                .await
                .expect("row");
            let (master_id, wrapped) =
                (rows[0].text("master_id").expect("id"), rows[0].text("wrapped").expect("w"));
            secrets.push(unwrap(&keyring, Wrapped::DataKey(subject), master_id, wrapped).expect("unwrap"));
        }
        for name in [BLIND_INDEX_SECRET, PSEUDONYM_SECRET] {
            let rows = store
                .query(
                    Statement::new("SELECT master_id, wrapped FROM vault_secrets WHERE name = $1").bind(name),
                )
                .await
                .expect("row");
            let (master_id, wrapped) =
                (rows[0].text("master_id").expect("id"), rows[0].text("wrapped").expect("w"));
            secrets.push(unwrap(&keyring, Wrapped::Secret(name), master_id, wrapped).expect("unwrap"));
        }
        drop(vault);
        drop(store);

        let mut files = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.file(&format!("vault.db{suffix}"));
            if let Ok(bytes) = std::fs::read(&file) {
                files.push((file, bytes));
            }
        }
        assert!(
            files.iter().any(|(_, bytes)| windows_contain(bytes, b"vault_keys")),
            "scanned the real files"
        );
        for secret in &secrets {
            let encodings = [
                secret.to_vec(),
                STANDARD.encode(secret).into_bytes(),
                URL_SAFE_NO_PAD.encode(secret).into_bytes(),
                secret.iter().map(|b| format!("{b:02x}")).collect::<String>().into_bytes(),
            ];
            for (file, bytes) in &files {
                for encoding in &encodings {
                    assert!(!windows_contain(bytes, encoding), "{} holds a key in clear", file.display());
                }
            }
        }
    }
}
