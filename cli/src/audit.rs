//! `tessera audit verify`: walks every service's audit chain in its own database and checks it
//! against the newest head the gateway witnessed, so an edited, deleted, reordered or inserted
//! record, or a chain cut short, is reported with the first bad index. Exits non-zero on any.
//! A chain whose old segments were archived is proved from its newest anchor; `--archived`
//! fetches the segments and proves each against its anchor too. `tessera audit archive`
//! archives what is old enough now, as the running system does hourly.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use object_store::ObjectStore;
use tessera_runtime::audit_archive::{
    ArchivePolicy, archive_audit, embedded_archive_url, open_archive, verify_archived,
};
use tessera_store::Store;

use crate::store_target::StoreTarget;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    stores: StoreTarget,
    /// Where archived segments are (`file:///absolute/folder` or `s3://bucket`); by default the
    /// embedded data folder's `archive`.
    #[arg(long, global = true, env = "TESSERA_AUDIT_ARCHIVE_URL", value_name = "URL")]
    archive_url: Option<String>,
    #[command(subcommand)]
    action: AuditAction,
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Check every service's chain; print records checked and the first bad index.
    Verify {
        #[arg(long)]
        json: bool,
        /// Also fetch every archived segment and verify it against its anchor.
        #[arg(long)]
        archived: bool,
    },
    /// Archive, in every service's chain, the segments whose records are all older than
    /// `--older-than-days`, leaving an anchor in the database.
    Archive {
        #[arg(long, default_value_t = 365)]
        older_than_days: u32,
        /// Records per segment (the same for every run, so that segments line up).
        #[arg(long, default_value_t = 10_000)]
        segment_records: usize,
    },
}

async fn open(args: &AuditArgs, service: &str) -> anyhow::Result<Store> {
    args.stores.open(service).await
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

fn archive(args: &AuditArgs) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let url = match (&args.archive_url, &args.stores.database_url) {
        (Some(url), _) => url.clone(),
        (None, None) => embedded_archive_url(&args.stores.data),
        (None, Some(_)) => {
            bail!("where are the archived segments? --archive-url (or TESSERA_AUDIT_ARCHIVE_URL)")
        }
    };
    Ok(open_archive(&url)?)
}

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    match args.action {
        AuditAction::Verify { json, archived } => verify(&args, json, archived).await,
        AuditAction::Archive { older_than_days, segment_records } => {
            let objects = archive(&args)?;
            let policy = ArchivePolicy {
                older_than: Duration::from_secs(u64::from(older_than_days) * 86_400),
                segment_records: segment_records.max(1),
            };
            for service in crate::registry::names().chain([tessera_gateway::SERVICE]) {
                let store = open(&args, service).await?;
                let anchors = archive_audit(service, &store, &objects, policy).await?;
                match (anchors.first(), anchors.last()) {
                    (Some(first), Some(last)) => println!(
                        "{service:<10} archived {} segment(s), records {} to {}",
                        anchors.len(),
                        first.first_index,
                        last.last_index
                    ),
                    _ => println!("{service:<10} nothing old enough"),
                }
            }
            Ok(())
        }
    }
}

async fn verify(args: &AuditArgs, json: bool, archived: bool) -> anyhow::Result<()> {
    let objects = if archived { Some(archive(args)?) } else { None };
    // The gateway's store holds the witnessed heads; without it, truncation at the end of a
    // chain cannot be told apart from a chain that is simply short.
    let gateway = open(args, tessera_gateway::SERVICE).await.ok();
    let mut results = Vec::new();
    for service in crate::registry::names() {
        let store = open(args, service).await?;
        let head = witnessed(gateway.as_ref(), service).await?;
        let verification = store.verify_audit(head).await.with_context(|| format!("{service}'s chain"))?;
        let anchors = store.audit_anchors().await?;
        let mut segments = Vec::new();
        if let Some(objects) = &objects {
            for check in verify_archived(&store, objects).await? {
                segments.push(serde_json::json!({
                    "object_key": check.anchor.object_key,
                    "first_index": check.anchor.first_index,
                    "last_index": check.anchor.last_index,
                    "records": check.verification.records,
                    "ok": check.ok(),
                    "first_bad_index": check.verification.first_bad_index,
                    "problem": check.problem.clone().or(check.verification.problem.map(|p| p.to_string())),
                }));
            }
        }
        let ok = verification.ok && segments.iter().all(|s| s["ok"] == true);
        results.push(serde_json::json!({
            "service": service,
            "records": verification.records,
            "ok": ok,
            "first_bad_index": verification.first_bad_index,
            "problem": verification.problem.map(|p| p.to_string()),
            "witnessed_head": head.map(|(index, _)| index),
            "anchor": anchors.last().map(|a| a.last_index),
            "archived_segments": segments,
        }));
    }
    let ok = results.iter().all(|r| r["ok"] == true);
    if json {
        println!("{}", serde_json::json!({"ok": ok, "services": results}));
    } else {
        println!(
            "{:<10} {:>8} {:>7} {:>5} {:>10}  problem",
            "service", "records", "anchor", "ok", "first bad"
        );
        let number = |value: &serde_json::Value| value.as_u64().map_or("-".to_owned(), |i| i.to_string());
        for r in &results {
            println!(
                "{:<10} {:>8} {:>7} {:>5} {:>10}  {}",
                r["service"].as_str().unwrap_or_default(),
                number(&r["records"]),
                number(&r["anchor"]),
                if r["ok"] == true { "yes" } else { "NO" },
                number(&r["first_bad_index"]),
                r["problem"].as_str().unwrap_or(""),
            );
            for segment in r["archived_segments"].as_array().into_iter().flatten() {
                println!(
                    "  archived {}  records {}  ok {}  first bad {}  {}",
                    segment["object_key"].as_str().unwrap_or_default(),
                    number(&segment["records"]),
                    if segment["ok"] == true { "yes" } else { "NO" },
                    number(&segment["first_bad_index"]),
                    segment["problem"].as_str().unwrap_or(""),
                );
            }
        }
    }
    if !ok {
        bail!("an audit chain does not verify");
    }
    Ok(())
}
