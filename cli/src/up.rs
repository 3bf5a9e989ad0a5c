//! `tessera up`, embedded. The services arrive with their issues; until then `up` prepares the
//! data folder and reports what each store in it holds.

use std::path::Path;

use anyhow::Context;
use tessera_store::{SqliteOptions, Store, StoreConfig};

pub async fn run(data: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(data)
        .with_context(|| format!("cannot create the data folder {}", data.display()))?;
    let data = data.canonicalize().with_context(|| format!("cannot resolve {}", data.display()))?;
    println!("Tessera (embedded) — data folder {}", data.display());
    let mut databases: Vec<_> = std::fs::read_dir(&data)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "db"))
        .collect();
    databases.sort();
    if databases.is_empty() {
        println!("  no service stores yet: each service creates <service>.db here when it first starts");
    }
    for path in databases {
        let config = StoreConfig::Sqlite { path: path.clone(), options: SqliteOptions::default() };
        let store =
            Store::open(&config, &[]).await.with_context(|| format!("cannot open {}", path.display()))?;
        let head = store.head_position().await?;
        let backlog = store.outbox_backlog().await?;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!(
            "  {:<20} {:>10} bytes  {:>8} events  {:>6} unsent outbox messages",
            path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            size,
            head,
            backlog.unsent
        );
    }
    Ok(())
}
