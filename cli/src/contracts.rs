//! `tessera contracts check`: holds today's message types to the JSON Schemas committed under
//! `services/contracts/schemas/`, both ways (old consumers read new messages, new code replays
//! old ones), and old versions to their upcasters. Exits non-zero naming each field and the
//! rule it breaks. `--write` commits the schemas of new versions and of compatible changes.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use clap::{Args, Subcommand};
use tessera_bus::Upcasters;
use tessera_contracts::catalogue::contracts;
use tessera_contracts::schemas::{SCHEMAS_DIR, check, write};
use tessera_contracts::upcasting::UPCASTERS;

#[derive(Debug, Args)]
pub struct ContractsArgs {
    #[command(subcommand)]
    action: ContractsAction,
}

#[derive(Debug, Subcommand)]
enum ContractsAction {
    /// Compare every message type with its committed schemas; non-zero exit on a break.
    Check {
        /// The committed schemas (by default those of the source tree `tessera` was built from).
        #[arg(long, default_value = SCHEMAS_DIR)]
        schemas: PathBuf,
        /// Write the schemas of new versions and refresh those changed compatibly; a version
        /// a change breaks is never overwritten.
        #[arg(long)]
        write: bool,
    },
}

pub fn run(args: ContractsArgs) -> anyhow::Result<()> {
    let ContractsAction::Check { schemas, write: writing } = args.action;
    let catalogue = contracts();
    if writing {
        for path in write(&schemas, &catalogue)? {
            println!("wrote {}", path.display());
        }
    }
    let findings = check(&schemas, &catalogue, UPCASTERS)?;
    for finding in &findings {
        println!("{finding}");
    }
    if !findings.is_empty() {
        bail!("{} contract problem(s) in {} message types", findings.len(), catalogue.len());
    }
    println!("{} message types match their committed schemas ({})", catalogue.len(), schemas.display());
    Ok(())
}

/// The contracts' upcasters as the bus applies them: the same list the check verifies.
pub fn upcasters() -> Arc<Upcasters> {
    Arc::new(UPCASTERS.iter().fold(Upcasters::new(), |all, u| all.with(u.name, u.from_version, u.step)))
}
