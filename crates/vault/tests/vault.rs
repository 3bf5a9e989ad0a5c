//! The vault on both backends (a SQLite temp file; PostgreSQL when `TESSERA_TEST_POSTGRES`
//! is set): sealing and opening, erasure that holds across caches and processes, master
//! rotation whole and interrupted, stable keyed hashes, racing first use, and the master key
//! file's permissions.

use std::time::Duration;

use tessera_store::{PostgresOptions, SqliteOptions, Statement, Store, StoreConfig};
use tessera_testkit::{TempDataDir, TempPostgres};
use tessera_vault::{
    Decrypted, MIGRATIONS, MasterKey, RotationStep, Sealed, Vault, VaultError, VaultOptions,
};

enum Fixture {
    Sqlite(TempDataDir),
    Postgres(TempPostgres),
}

impl Fixture {
    fn config(&self) -> StoreConfig {
        match self {
            Fixture::Sqlite(dir) => {
                StoreConfig::Sqlite { path: dir.file("vault.db"), options: SqliteOptions::default() }
            }
            Fixture::Postgres(db) => {
                StoreConfig::Postgres { url: db.url().to_owned(), options: PostgresOptions::default() }
            }
        }
    }

    /// A store handle; each call is another writer on the same database, as another process
    /// would have.
    async fn store(&self) -> Store {
        Store::open(&self.config(), &[MIGRATIONS]).await.expect("open the vault's store")
    }

    async fn vault(&self, master: &MasterKey, previous: &[MasterKey]) -> Vault {
        Vault::open(self.store().await, master.clone(), previous.to_vec()).await.expect("open vault")
    }
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Fixture::Sqlite(tessera_testkit::TempDataDir::new())).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    let Some(db) = tessera_testkit::TempPostgres::create().await else { return };
                    super::$test(super::Fixture::Postgres(db)).await;
                }
            )*
        }
    };
}

on_both_backends!(
    sealed_text_and_bytes_round_trip_and_fit_a_json_field,
    bytes_sealed_through_the_sealer_trait_open_until_the_subject_is_shredded,
    a_value_sealed_for_one_subject_does_not_open_for_another,
    a_tampered_ciphertext_is_refused,
    a_shredded_subject_stays_erased_in_this_vault_and_in_another_one,
    another_process_sees_an_erasure_once_its_cache_entry_expires,
    a_cache_hit_needs_no_store_access,
    after_a_full_rotation_the_new_master_key_alone_opens_old_data,
    an_interrupted_rotation_leaves_everything_readable_with_new_and_previous_keys,
    blind_indexes_and_pseudonyms_are_stable_across_reopen_and_rotation,
    racing_first_encrypts_for_one_subject_make_one_key,
    a_store_opened_without_the_vault_migrations_is_refused,
);

fn master() -> MasterKey {
    MasterKey::generate().expect("master key")
}

async fn key_rows(store: &Store, subject: &str) -> i64 {
    let rows = store
        .query(Statement::new("SELECT count(*) AS n FROM vault_keys WHERE subject = $1").bind(subject))
        .await
        .expect("count");
    rows[0].int("n").expect("count")
}

async fn sealed_for(vault: &Vault, subjects: &[String]) -> Vec<Sealed> {
    let mut sealed = Vec::new();
    for subject in subjects {
        sealed.push(vault.encrypt_str(subject, &format!("address of {subject}")).await.expect("encrypt"));
    }
    sealed
}

async fn assert_all_open(vault: &Vault, subjects: &[String], sealed: &[Sealed]) {
    for (subject, value) in subjects.iter().zip(sealed) {
        assert_eq!(
            vault.decrypt_str(subject, value).await.expect("decrypt"),
            Decrypted::Plain(format!("address of {subject}")),
            "{subject}"
        );
    }
}

async fn sealed_text_and_bytes_round_trip_and_fit_a_json_field(fixture: Fixture) {
    let vault = fixture.vault(&master(), &[]).await;
    let sealed = vault.encrypt_str("customer-1", "Ada Lovelace").await.expect("encrypt");
    assert_eq!(
        vault.decrypt_str("customer-1", &sealed).await.expect("decrypt"),
        Decrypted::Plain("Ada Lovelace".into())
    );

    let bytes: Vec<u8> = (0..=255).collect();
    let sealed_bytes = vault.encrypt("customer-1", &bytes).await.expect("encrypt bytes");
    assert_eq!(vault.decrypt("customer-1", &sealed_bytes).await.expect("decrypt"), Decrypted::Plain(bytes));

    let text = sealed.to_string();
    assert!(text.starts_with("v1.") && !text.contains("Ada"), "{text}");
    let parsed: Sealed = text.parse().expect("parse");
    assert_eq!(parsed, sealed);
    let json = serde_json::json!({ "name": sealed });
    let back: Sealed = serde_json::from_value(json["name"].clone()).expect("from json");
    assert_eq!(
        vault.decrypt_str("customer-1", &back).await.expect("decrypt").or_erased_marker(),
        "Ada Lovelace"
    );
    assert_ne!(
        vault.encrypt_str("customer-1", "Ada Lovelace").await.expect("again").to_string(),
        text,
        "a fresh nonce every time"
    );
}

async fn bytes_sealed_through_the_sealer_trait_open_until_the_subject_is_shredded(fixture: Fixture) {
    use tessera_vault::Sealer;
    let vault: std::sync::Arc<dyn Sealer> = std::sync::Arc::new(fixture.vault(&master(), &[]).await);
    let file: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let sealed = vault.seal_bytes("customer-1", &file).await.expect("seal");
    assert!(sealed.starts_with(b"v1.") && !sealed.windows(64).any(|w| w == &file[..64]), "sealed");
    assert_eq!(vault.open_bytes("customer-1", &sealed).await.expect("open"), Some(file.clone()));
    vault.seal_bytes("customer-2", b"x").await.expect("customer-2 has a key too");
    assert!(matches!(vault.open_bytes("customer-2", &sealed).await, Err(VaultError::Decrypt)));
    assert!(matches!(vault.open_bytes("customer-1", &file).await, Err(VaultError::Malformed(_))));
    // The same file as a stream, sealed chunk by chunk under the same key.
    let key = vault.stream_sealing_key("customer-1").await.expect("a key");
    let mut sealer = key.sealer("c1/t1/a1").expect("sealer");
    let mut stream = sealer.header().to_vec();
    for piece in file.chunks(7_000) {
        stream.extend(sealer.push(piece).expect("push"));
    }
    stream.extend(sealer.finish().expect("finish"));
    let opening = vault.stream_opening_key("customer-1").await.expect("key").expect("live");
    let (header, body) = stream.split_at(tessera_vault::STREAM_HEADER_LEN);
    let mut opener = opening.opener("c1/t1/a1", header).expect("opener");
    let mut plain = opener.push(body).expect("open");
    plain.extend(opener.finish().expect("the last chunk"));
    assert_eq!(plain, file);
    vault.shred("customer-1").await.expect("shred");
    assert_eq!(vault.open_bytes("customer-1", &sealed).await.expect("open"), None);
    assert!(matches!(vault.seal_bytes("customer-1", &file).await, Err(VaultError::Shredded)));
    assert!(vault.stream_opening_key("customer-1").await.expect("asked").is_none(), "shredded");
    assert!(matches!(vault.stream_sealing_key("customer-1").await, Err(VaultError::Shredded)));
}

async fn a_value_sealed_for_one_subject_does_not_open_for_another(fixture: Fixture) {
    let vault = fixture.vault(&master(), &[]).await;
    let sealed = vault.encrypt_str("customer-a", "secret").await.expect("encrypt");
    vault.encrypt_str("customer-b", "other").await.expect("b has a key too");
    assert!(matches!(vault.decrypt("customer-b", &sealed).await, Err(VaultError::Decrypt)));
}

async fn a_tampered_ciphertext_is_refused(fixture: Fixture) {
    let vault = fixture.vault(&master(), &[]).await;
    let text = vault.encrypt_str("customer-1", "a long enough secret").await.expect("encrypt").to_string();
    let middle = text.len() / 2;
    let flipped = if &text[middle..=middle] == "A" { "B" } else { "A" };
    let tampered: Sealed =
        format!("{}{flipped}{}", &text[..middle], &text[middle + 1..]).parse().expect("parse");
    assert!(matches!(vault.decrypt("customer-1", &tampered).await, Err(VaultError::Decrypt)));
    let truncated: Sealed = text[..text.len() - 4].parse().expect("parse");
    assert!(matches!(vault.decrypt("customer-1", &truncated).await, Err(VaultError::Decrypt)));
}

async fn a_shredded_subject_stays_erased_in_this_vault_and_in_another_one(fixture: Fixture) {
    let key = master();
    let vault = fixture.vault(&key, &[]).await;
    // Another process: its own store handle and cache, which has the key already.
    let other = fixture.vault(&key, &[]).await;
    let sealed = vault.encrypt_str("customer-1", "Ada").await.expect("encrypt");
    assert_eq!(other.decrypt_str("customer-1", &sealed).await.expect("decrypt").or_erased_marker(), "Ada");

    vault.shred("customer-1").await.expect("shred");
    assert_eq!(vault.decrypt_str("customer-1", &sealed).await.expect("decrypt"), Decrypted::Erased);
    assert!(matches!(vault.encrypt_str("customer-1", "again").await, Err(VaultError::Shredded)));
    vault.shred("customer-1").await.expect("shredding twice is fine");

    other.evict("customer-1");
    assert_eq!(
        other.decrypt_str("customer-1", &sealed).await.expect("decrypt").or_erased_marker(),
        "[erased]"
    );
    assert!(matches!(other.encrypt_str("customer-1", "again").await, Err(VaultError::Shredded)));

    let later = fixture.vault(&key, &[]).await;
    assert!(later.decrypt("customer-1", &sealed).await.expect("decrypt").is_erased());
    assert!(matches!(later.encrypt_str("customer-1", "again").await, Err(VaultError::Shredded)));
    assert_eq!(key_rows(&fixture.store().await, "customer-1").await, 0);

    // Erasing a subject that never had a key also holds.
    vault.shred("customer-2").await.expect("shred unknown");
    assert!(matches!(later.encrypt_str("customer-2", "x").await, Err(VaultError::Shredded)));
}

async fn another_process_sees_an_erasure_once_its_cache_entry_expires(fixture: Fixture) {
    let key = master();
    let vault = fixture.vault(&key, &[]).await;
    let options = VaultOptions { cache_ttl: Duration::from_millis(200), ..VaultOptions::default() };
    let other =
        Vault::open_with(fixture.store().await, key.clone(), Vec::new(), options).await.expect("open");
    let sealed = vault.encrypt_str("customer-1", "Ada").await.expect("encrypt");
    assert!(!other.decrypt("customer-1", &sealed).await.expect("decrypt").is_erased());
    vault.shred("customer-1").await.expect("shred");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(other.decrypt("customer-1", &sealed).await.expect("decrypt").is_erased());
}

async fn a_cache_hit_needs_no_store_access(fixture: Fixture) {
    let key = master();
    let vault = fixture.vault(&key, &[]).await;
    let sealed = vault.encrypt_str("customer-1", "Ada").await.expect("encrypt");
    // Remove the key behind the vault's back (no tombstone): only the cache still has it.
    let store = fixture.store().await;
    let mut unit = store.begin();
    unit.execute(
        Statement::new("DELETE FROM vault_keys WHERE subject = 'customer-1'").expect_rows(1, "key row"),
    );
    unit.commit().await.expect("delete");
    assert_eq!(vault.decrypt_str("customer-1", &sealed).await.expect("cached").or_erased_marker(), "Ada");
    vault.encrypt_str("customer-1", "still cached").await.expect("cached encrypt");
    assert_eq!(key_rows(&store, "customer-1").await, 0, "a cache hit wrote nothing");
    let fresh = fixture.vault(&key, &[]).await;
    assert!(fresh.decrypt("customer-1", &sealed).await.expect("decrypt").is_erased());
}

async fn after_a_full_rotation_the_new_master_key_alone_opens_old_data(fixture: Fixture) {
    let (old, new) = (master(), master());
    let vault = fixture.vault(&old, &[]).await;
    let subjects: Vec<String> = (0..30).map(|i| format!("customer-{i}")).collect();
    let sealed = sealed_for(&vault, &subjects).await;
    assert_eq!(vault.keys_by_master().await.expect("counts"), vec![(old.id().to_owned(), 30)]);

    assert_eq!(vault.rotate_master(new.clone()).await.expect("rotate"), 30);
    assert_eq!(vault.keys_by_master().await.expect("counts"), vec![(new.id().to_owned(), 30)]);
    assert_all_open(&vault, &subjects, &sealed).await;
    let only_new = fixture.vault(&new, &[]).await;
    assert_all_open(&only_new, &subjects, &sealed).await;
    assert_eq!(only_new.rotate_master(new.clone()).await.expect("again"), 0, "idempotent");
    // New keys are wrapped by the new master key from now on.
    vault.encrypt_str("customer-new", "x").await.expect("encrypt");
    assert_eq!(vault.keys_by_master().await.expect("counts"), vec![(new.id().to_owned(), 31)]);
    // The old master key alone opens nothing any more.
    let error = Vault::open(fixture.store().await, old.clone(), Vec::new()).await.expect_err("old key");
    assert!(matches!(&error, VaultError::UnknownMasterKey { id } if id == new.id()), "{error}");
}

async fn an_interrupted_rotation_leaves_everything_readable_with_new_and_previous_keys(fixture: Fixture) {
    let (old, new) = (master(), master());
    let vault = fixture.vault(&old, &[]).await;
    let subjects: Vec<String> = (0..20).map(|i| format!("customer-{i:02}")).collect();
    let sealed = sealed_for(&vault, &subjects).await;

    let step = vault.rotate_master_step(&new, 7).await.expect("one step");
    assert_eq!(step, RotationStep { rewrapped: 7, done: false });
    let mut counts = vault.keys_by_master().await.expect("counts");
    counts.sort_by_key(|(_, n)| *n);
    assert_eq!(counts, vec![(new.id().to_owned(), 7), (old.id().to_owned(), 13)]);

    // A process restarted mid-rotation with the new key and the previous one reads everything.
    let both = fixture.vault(&new, std::slice::from_ref(&old)).await;
    assert_all_open(&both, &subjects, &sealed).await;
    // Without the previous key, a key not yet rewrapped cannot be opened: an error, not
    // "erased".
    let only_new = fixture.vault(&new, &[]).await;
    let error = only_new.decrypt("customer-19", &sealed[19]).await.expect_err("old-wrapped key");
    assert!(matches!(&error, VaultError::UnknownMasterKey { id } if id == old.id()), "{error}");
    assert!(!only_new.decrypt("customer-00", &sealed[0]).await.expect("rewrapped key").is_erased());

    assert_eq!(both.rotate_master(new.clone()).await.expect("resume"), 13);
    let after = fixture.vault(&new, &[]).await;
    assert_all_open(&after, &subjects, &sealed).await;
}

async fn blind_indexes_and_pseudonyms_are_stable_across_reopen_and_rotation(fixture: Fixture) {
    let (old, new) = (master(), master());
    let vault = fixture.vault(&old, &[]).await;
    let index = vault.blind_index("email", "ada@example.com");
    let pseudonym = vault.pseudonym("customer-1");
    assert_eq!(index.len(), 43);
    assert_ne!(index, vault.blind_index("login", "ada@example.com"), "purposes are separated");
    assert_ne!(index, vault.blind_index("email", "bob@example.com"));
    assert_ne!(vault.pseudonym("ada@example.com"), vault.blind_index("email", "ada@example.com"));
    assert_ne!(vault.blind_index("a", "bc"), vault.blind_index("ab", "c"), "no ambiguity at the boundary");

    let reopened = fixture.vault(&old, &[]).await;
    assert_eq!(reopened.blind_index("email", "ada@example.com"), index);
    assert_eq!(reopened.pseudonym("customer-1"), pseudonym);

    reopened.rotate_master(new.clone()).await.expect("rotate");
    let rotated = fixture.vault(&new, &[]).await;
    assert_eq!(rotated.blind_index("email", "ada@example.com"), index);
    assert_eq!(rotated.pseudonym("customer-1"), pseudonym);

    let elsewhere = Fixture::Sqlite(TempDataDir::new()).vault(&new, &[]).await;
    assert_ne!(elsewhere.blind_index("email", "ada@example.com"), index, "another vault, another secret");
}

async fn racing_first_encrypts_for_one_subject_make_one_key(fixture: Fixture) {
    let key = master();
    // Four processes (store handles and caches of their own), four tasks each.
    let mut vaults = Vec::new();
    for _ in 0..4 {
        vaults.push(fixture.vault(&key, &[]).await);
    }
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let vault = vaults[i % 4].clone();
            tokio::spawn(async move {
                let sealed =
                    vault.encrypt_str("customer-race", &format!("value {i}")).await.expect("encrypt");
                (i, sealed)
            })
        })
        .collect();
    let mut sealed = Vec::new();
    for task in tasks {
        sealed.push(task.await.expect("task"));
    }
    let store = fixture.store().await;
    assert_eq!(key_rows(&store, "customer-race").await, 1);
    let fresh = fixture.vault(&key, &[]).await;
    for (i, value) in &sealed {
        assert_eq!(
            fresh.decrypt_str("customer-race", value).await.expect("decrypt"),
            Decrypted::Plain(format!("value {i}"))
        );
    }
}

async fn a_store_opened_without_the_vault_migrations_is_refused(fixture: Fixture) {
    let store = Store::open(&fixture.config(), &[]).await.expect("open bare store");
    let error = Vault::open(store, master(), Vec::new()).await.expect_err("not migrated");
    assert!(matches!(error, VaultError::NotMigrated), "{error}");
}

#[cfg(unix)]
mod master_key_file {
    use std::os::unix::fs::PermissionsExt;

    use tessera_vault::{MasterKey, VaultError};

    #[test]
    fn a_missing_key_file_is_created_private_and_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keys").join("master.key");
        let (created, was_created) = MasterKey::load_or_create_dev(&path).expect("create");
        assert!(was_created);
        let mode = std::fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (loaded, was_created) = MasterKey::load_or_create_dev(&path).expect("load");
        assert!(!was_created);
        assert_eq!(loaded.id(), created.id());
    }

    #[test]
    fn a_key_file_others_may_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("master.key");
        MasterKey::load_or_create_dev(&path).expect("create");
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let error = MasterKey::load_or_create_dev(&path).expect_err("readable by others");
            assert!(matches!(error, VaultError::InsecureKeyFile { .. }), "{error}");
            let message = error.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(&format!("chmod 600 {}", path.display())), "{message}");
        }
    }

    #[test]
    fn a_key_file_that_is_not_a_key_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("master.key");
        std::fs::write(&path, "hello").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let error = MasterKey::load_or_create_dev(&path).expect_err("not a key");
        assert!(matches!(error, VaultError::KeyFile { .. }), "{error}");
    }
}
