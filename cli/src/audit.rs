//! `tessera audit verify`: walks every service's audit chain in its own database and checks it
//! against the newest head the gateway witnessed, so an edited, deleted, reordered or inserted
//! record, or a chain cut short, is reported with the first bad index. Exits non-zero on any.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tessera_store::Store;

use crate::store_target::StoreTarget;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    stores: StoreTarget,
    #[command(subcommand)]
    action: AuditAction,
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Check every service's chain; print records checked and the first bad index.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

/// The newest head of `service` the gateway witnessed, if its store has one (the gateway's
/// own `facts` read it).
pub(crate) async fn witnessed(
    gateway: Option<&Store>,
    service: &str,
) -> anyhow::Result<Option<(u64, [u8; 32])>> {
    let Some(gateway) = gateway else { return Ok(None) };
    Ok(tessera_gateway::facts::witnessed_head(gateway, service).await?)
}

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let AuditAction::Verify { json } = args.action;
    // The gateway's store holds the witnessed heads; without it, truncation at the end of a
    // chain cannot be told apart from a chain that is simply short.
    let gateway = args.stores.open(tessera_gateway::SERVICE).await.ok();
    let mut results = Vec::new();
    for service in crate::registry::names() {
        let store = args.stores.open(service).await?;
        let head = witnessed(gateway.as_ref(), service).await?;
        let verification = store.verify_audit(head).await.with_context(|| format!("{service}'s chain"))?;
        results.push(serde_json::json!({
            "service": service,
            "records": verification.records,
            "ok": verification.ok,
            "first_bad_index": verification.first_bad_index,
            "problem": verification.problem.map(|p| p.to_string()),
            "witnessed_head": head.map(|(index, _)| index),
        }));
    }
    let ok = results.iter().all(|r| r["ok"] == true);
    if json {
        println!("{}", serde_json::json!({"ok": ok, "services": results}));
    } else {
        println!("{:<10} {:>8} {:>5} {:>10}  problem", "service", "records", "ok", "first bad");
        for r in &results {
            println!(
                "{:<10} {:>8} {:>5} {:>10}  {}",
                r["service"].as_str().unwrap_or_default(),
                r["records"],
                if r["ok"] == true { "yes" } else { "NO" },
                r["first_bad_index"].as_u64().map_or("-".to_owned(), |i| i.to_string()),
                r["problem"].as_str().unwrap_or(""),
            );
        }
    }
    if !ok {
        bail!("an audit chain does not verify");
    }
    Ok(())
}
