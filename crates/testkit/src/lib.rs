//! Helpers for tests: real databases and brokers, and given / when / then for domain decisions
//! ([`decide`]).
//!
//! Suites that need a server read its URL from the environment. Without one they print a loud
//! `SKIPPED` line and pass, so a fresh machine can run the rest; under `CI=true` a missing URL
//! fails the test instead, so CI can never skip a suite silently.

pub mod decide;
pub mod http;
pub mod nats;
mod participant;
pub mod redis;
pub mod sources;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use participant::Participant;

/// The environment variable naming the PostgreSQL server for tests, e.g.
/// `postgres://postgres@127.0.0.1:5432`.
pub const POSTGRES_ENV: &str = "TESSERA_TEST_POSTGRES";

/// The server URL for a suite, or `None` after printing why the test is skipped.
/// Panics when `CI=true`: CI must run every suite.
pub fn server_url(variable: &str, suite: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => skip(&format!("the {suite} suite needs {variable}; it is not set")),
    }
}

/// `binary` if it runs (`binary --version`), or `None` after a loud SKIPPED line naming how to
/// install it. Panics when `CI=true`: CI must run every suite.
pub fn tool<'a>(binary: &'a str, suite: &str, install: &str) -> Option<&'a str> {
    tool_checked_with(binary, &["--version"], suite, install)
}

/// As [`tool`], for a binary that says its version otherwise (`kubectl version --client`).
pub fn tool_checked_with<'a>(
    binary: &'a str,
    version_args: &[&str],
    suite: &str,
    install: &str,
) -> Option<&'a str> {
    let runs =
        std::process::Command::new(binary).args(version_args).output().is_ok_and(|o| o.status.success());
    if runs { Some(binary) } else { skip(&format!("the {suite} needs {binary} ({install})")) }
}

pub(crate) fn skip<T>(why: &str) -> Option<T> {
    let message = format!("SKIPPED: {why}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}, and CI=true forbids skipping");
    }
    // Straight to the stream, past the test harness's capture, so that it shows.
    let _ = writeln!(std::io::stderr(), "\n========== {message} ==========\n");
    None
}

/// A fresh, uniquely named PostgreSQL database, dropped (with its sessions) when this value is.
#[derive(Debug)]
pub struct TempPostgres {
    url: String,
}

impl TempPostgres {
    /// `None` (after a loud SKIPPED line) when no server is configured.
    pub async fn create() -> Option<Self> {
        let server = server_url(POSTGRES_ENV, "PostgreSQL")?;
        let name = format!("tessera_test_{}", uuid::Uuid::now_v7().simple());
        let url = tessera_store::database_url(&server, &name);
        tessera_store::create_database(&url).await.expect("create the test database");
        Some(Self { url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let url = self.url.clone();
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(tessera_store::drop_database(&url)).ok()
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop test database {}", self.url);
        }
    }
}

/// A temporary folder for SQLite files, removed when dropped if this value created it.
#[derive(Debug)]
pub struct TempDataDir {
    path: PathBuf,
    owned: Option<tempfile::TempDir>,
}

impl TempDataDir {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary folder");
        Self { path: dir.path().to_path_buf(), owned: Some(dir) }
    }

    /// A folder someone else owns (a child process working in its parent's folder); it is
    /// left in place when this value is dropped.
    pub fn at(path: PathBuf) -> Self {
        Self { path, owned: None }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn is_owned(&self) -> bool {
        self.owned.is_some()
    }
}

impl Default for TempDataDir {
    fn default() -> Self {
        Self::new()
    }
}

/// A vault on a store of its own in a temporary folder that lives as long as the test
/// process, with a fresh master key: for service tests that seal personal data.
pub async fn temporary_vault() -> std::sync::Arc<dyn tessera_vault::Sealer> {
    let dir: &'static TempDataDir = Box::leak(Box::new(TempDataDir::new()));
    let config = tessera_store::StoreConfig::Sqlite {
        path: dir.file("vault.db"),
        options: tessera_store::SqliteOptions::default(),
    };
    let store =
        tessera_store::Store::open(&config, &[tessera_vault::MIGRATIONS]).await.expect("the vault's store");
    let master = tessera_vault::MasterKey::generate().expect("a master key");
    std::sync::Arc::new(tessera_vault::Vault::open(store, master, Vec::new()).await.expect("open the vault"))
}
