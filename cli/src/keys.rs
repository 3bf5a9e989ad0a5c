//! Where the vault's master key comes from. `TESSERA_MASTER_KEY` (base64 of 32 bytes) wins
//! everywhere. Otherwise the embedded topology keeps a development key in the data folder,
//! created on first start with mode 0600 and announced with a warning; the distributed one
//! needs a key file given on purpose (a Kubernetes Secret, say) and never invents one.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use std::sync::Arc;
use tessera_runtime::{Storage, open_store};

use tessera_vault::{MasterKey, Sealer, Vault};

const ENV: &str = "TESSERA_MASTER_KEY";

fn from_environment() -> anyhow::Result<Option<MasterKey>> {
    match std::env::var(ENV) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(
            MasterKey::from_base64(text.trim())
                .with_context(|| format!("{ENV} must be base64 of 32 bytes"))?,
        )),
        _ => Ok(None),
    }
}

/// The embedded topology's master key.
pub fn embedded(data: &Path) -> anyhow::Result<MasterKey> {
    if let Some(key) = from_environment()? {
        return Ok(key);
    }
    let path = data.join("master.key");
    let (key, created) = MasterKey::load_or_create_dev(&path)
        .with_context(|| format!("the vault's master key at {}", path.display()))?;
    if created {
        tracing::warn!(
            path = %path.display(),
            "created a development master key; anyone who can read this file can read every customer's data: set {ENV} or keep the file safe"
        );
        eprintln!(
            "warning: created a development master key at {} (mode 0600); for production set {ENV}",
            path.display()
        );
    }
    Ok(key)
}

/// A `tessera serve` process's master key: the environment or a file that must exist.
pub fn distributed(file: Option<&PathBuf>) -> anyhow::Result<MasterKey> {
    if let Some(key) = from_environment()? {
        return Ok(key);
    }
    let Some(path) = file else {
        bail!("the vault needs its master key: set {ENV} (base64 of 32 bytes) or --master-key-file <path>");
    };
    if !path.exists() {
        bail!("--master-key-file {}: no such file", path.display());
    }
    let (key, _) = MasterKey::load_or_create_dev(path)
        .with_context(|| format!("the vault's master key at {}", path.display()))?;
    Ok(key)
}

/// The vault on its own store (`vault.db`, or the `<prefix>_vault` database).
pub async fn open_vault(storage: &Storage, master: MasterKey) -> anyhow::Result<Arc<dyn Sealer>> {
    let store = open_store(storage, "vault", &[tessera_vault::MIGRATIONS])
        .await
        .context("cannot open the vault's store")?;
    let vault = Vault::open(store, master, Vec::new()).await.context("cannot open the vault")?;
    Ok(Arc::new(vault))
}
