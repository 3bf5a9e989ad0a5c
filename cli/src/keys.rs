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
/// Master keys still accepted while a rotation is under way, base64, comma-separated.
const PREVIOUS_ENV: &str = "TESSERA_MASTER_KEY_PREVIOUS";

/// The master keys a rotation is moving away from.
pub fn previous() -> anyhow::Result<Vec<MasterKey>> {
    let Ok(text) = std::env::var(PREVIOUS_ENV) else { return Ok(Vec::new()) };
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            MasterKey::from_base64(t)
                .with_context(|| format!("{PREVIOUS_ENV}: each key is base64 of 32 bytes"))
        })
        .collect()
}

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
    let vault = Vault::open(store, master, previous()?).await.context("cannot open the vault")?;
    Ok(Arc::new(vault))
}

/// `tessera vault rotate`: rewraps every data key still under a previous master key
/// (`TESSERA_MASTER_KEY_PREVIOUS`) under the current one; sealed data is not touched.
#[derive(Debug, clap::Args)]
pub struct VaultArgs {
    #[command(subcommand)]
    action: VaultAction,
    /// The embedded data folder.
    #[arg(long, global = true, default_value = "tessera-data", env = "TESSERA_DATA")]
    data: PathBuf,
    /// The PostgreSQL server of the distributed topology, instead of `--data`.
    #[arg(long, global = true, env = "TESSERA_DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long, global = true, env = "TESSERA_DATABASE_PREFIX", default_value = "tessera")]
    database_prefix: String,
    /// The current master key's file, when `TESSERA_MASTER_KEY` is not set.
    #[arg(long, global = true, env = "TESSERA_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum VaultAction {
    /// Rewrap every data key under the current master key. Start every process with the new
    /// key as TESSERA_MASTER_KEY and the old one in TESSERA_MASTER_KEY_PREVIOUS first; once
    /// this has run, the old key can go.
    Rotate,
}

pub async fn run(args: VaultArgs) -> anyhow::Result<()> {
    let VaultAction::Rotate = args.action;
    let storage = match &args.database_url {
        Some(server) => Storage::Postgres { server: server.clone(), prefix: args.database_prefix.clone() },
        None => Storage::Files(args.data.clone()),
    };
    let current = distributed(args.master_key_file.as_ref())?;
    let previous = previous()?;
    if previous.is_empty() {
        bail!("nothing to rotate from: give the old master key in {PREVIOUS_ENV}");
    }
    let store = open_store(&storage, "vault", &[tessera_vault::MIGRATIONS])
        .await
        .context("cannot open the vault's store")?;
    let vault = Vault::open(store, current.clone(), previous).await.context("cannot open the vault")?;
    let rewrapped = vault.rotate_master(current.clone()).await.context("rotation")?;
    println!("rewrapped {rewrapped} data keys under master key {}", current.id());
    Ok(())
}
