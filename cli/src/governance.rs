//! `tessera governance`: the data map, generated from the declarations each service makes of
//! the personal data it keeps (the same declarations its sealing and masking code act on),
//! and the scan that holds a data folder to them: a canary's bytes found where no declaration
//! says they may be fail it. `retention` shows what each declared retention has due and done.

mod retention;
mod scan;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use tessera_kernel::personal::PersonalField;
use tessera_kernel::{Clock, SystemClock};
use tessera_store::{SqliteOptions, Store, StoreConfig, StoredAuditRecord};

#[derive(Debug, Args)]
pub struct GovernanceArgs {
    #[command(subcommand)]
    action: GovernanceAction,
}

#[derive(Debug, Subcommand)]
enum GovernanceAction {
    /// Print the data map: each personal field every service keeps, its class, protection,
    /// retention, purpose and where it lies.
    Map {
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        #[arg(long)]
        markdown: bool,
    },
    /// Search every table and column of every store in an embedded data folder, and its
    /// object store, for a person's bytes (say a canary customer's id and text); fail on any
    /// place no declaration covers.
    Scan {
        /// The embedded data folder.
        #[arg(long, default_value = "tessera-data", env = "TESSERA_DATA")]
        data: PathBuf,
        /// Text to look for (case-insensitively); repeat for several.
        #[arg(long = "needle", required = true)]
        needles: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Who read or changed a customer's data, when, under which role, in which service and
    /// through which action, from every service's hash-chained audit trail: read from the
    /// stores of an embedded data folder (`--data`), or asked of a running system's gateway
    /// (the report its export carries).
    Access {
        /// The customer's id.
        #[arg(long)]
        customer: String,
        /// Read the stores of this embedded data folder instead of asking the gateway.
        #[arg(long, env = "TESSERA_DATA")]
        data: Option<PathBuf>,
        #[command(flatten)]
        target: crate::api_client::GatewayTarget,
        #[arg(long)]
        json: bool,
    },
    /// Per service, each declared retention, the job that carries it out, what is due now and
    /// what was done, read from the stores of an embedded data folder.
    Retention {
        /// The embedded data folder.
        #[arg(long, default_value = "tessera-data", env = "TESSERA_DATA")]
        data: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// Every declaration of every service, the platform's first.
pub fn declarations() -> Vec<PersonalField> {
    [
        &tessera_store::personal_data::FIELDS[..],
        &tessera_vault::personal_data::FIELDS,
        &tessera_gateway::personal_data::FIELDS,
        &tessera_customers::personal_data::FIELDS,
        &tessera_orders::personal_data::FIELDS,
        &tessera_payments::personal_data::FIELDS,
        &tessera_support::personal_data::FIELDS,
    ]
    .concat()
}

pub async fn run(args: GovernanceArgs) -> anyhow::Result<()> {
    match args.action {
        GovernanceAction::Map { json: true, .. } => {
            println!("{}", serde_json::to_string_pretty(&declarations())?);
        }
        GovernanceAction::Map { markdown: true, .. } => print!("{}", markdown(&declarations())),
        GovernanceAction::Map { .. } => print!("{}", table(&declarations())),
        GovernanceAction::Scan { data, needles, json } => {
            let declared = declarations();
            let findings = scan::scan(&data, &needles)?;
            let judged: Vec<scan::Judged> = findings.into_iter().map(|s| scan::judge(s, &declared)).collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&judged)?);
            } else {
                for finding in &judged {
                    match finding.declared_by.first() {
                        Some(field) => println!("{}  declared: {field}", finding.sighting),
                        None => println!("{}  UNDECLARED", finding.sighting),
                    }
                }
            }
            let undeclared = judged.iter().filter(|j| j.declared_by.is_empty()).count();
            if undeclared > 0 {
                bail!("{undeclared} place(s) hold the person's data and no declaration covers them");
            }
            eprintln!("{} place(s) hold the person's data; every one is declared", judged.len());
        }
        GovernanceAction::Access { customer, data, target, json } => {
            let accesses = match data {
                Some(data) => tessera_store::audit_access::person_report(&trails(&data).await?, &customer),
                None => gateway_report(&target, &customer).await?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&accesses)?);
            } else {
                println!(
                    "{:<27} {:<10} {:<38} {:<9} {:<18} {:<8} resource",
                    "at", "service", "actor", "role", "action", "outcome"
                );
                for a in &accesses {
                    println!(
                        "{:<27} {:<10} {:<38} {:<9} {:<18} {:<8} {}",
                        a.at.to_rfc3339(),
                        a.service,
                        a.actor,
                        a.role,
                        a.action,
                        a.outcome,
                        a.resource
                    );
                }
            }
        }
        GovernanceAction::Retention { data, json } => {
            let declared = declarations();
            let now = SystemClock.now();
            // The embedded configuration's archive age (tessera.toml), as `up` would use it.
            let audit = crate::config::Config::load(None, &serde_json::json!({}))
                .map(|config| config.audit)
                .unwrap_or_default();
            let archive_after = std::time::Duration::from_secs(u64::from(audit.archive_after_days) * 86_400);
            let mut lines = Vec::new();
            for service in crate::registry::names().chain([tessera_gateway::SERVICE]) {
                if let Some(store) = open_embedded(&data, service).await? {
                    lines.extend(retention::lines(service, &store, &declared, now, archive_after).await);
                }
            }
            if lines.is_empty() {
                bail!("no store in {}: check --data", data.display());
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&lines)?);
            } else {
                print!("{}", retention::table(&lines));
            }
        }
    }
    Ok(())
}

/// The access report a running system's export carries, asked by a member of staff.
async fn gateway_report(
    target: &crate::api_client::GatewayTarget,
    customer: &str,
) -> anyhow::Result<Vec<tessera_store::audit_access::Access>> {
    let (client, token) = target.connect().await?;
    let path = format!("/api/v1/customers/{customer}/export");
    let export = client.expect(axum::http::Method::GET, &path, Some(&token), None, None).await?;
    serde_json::from_value(export["accesses"].clone())
        .context("the gateway's export carries no access report this tessera can read")
}

/// `service`'s store in an embedded data folder, if it has one.
async fn open_embedded(data: &Path, service: &str) -> anyhow::Result<Option<Store>> {
    let path = data.join(format!("{service}.db"));
    if !path.exists() {
        return Ok(None);
    }
    let config = StoreConfig::Sqlite { path, options: SqliteOptions::default() };
    let store =
        Store::open(&config, &[]).await.with_context(|| format!("cannot open the {service} store"))?;
    Ok(Some(store))
}

/// Every service's audit trail in an embedded data folder, the gateway's too.
async fn trails(data: &Path) -> anyhow::Result<Vec<(String, Vec<StoredAuditRecord>)>> {
    let mut trails = Vec::new();
    for service in crate::registry::names().chain([tessera_gateway::SERVICE]) {
        let Some(store) = open_embedded(data, service).await? else { continue };
        let mut records: Vec<StoredAuditRecord> = Vec::new();
        loop {
            let page = store.audit_records(records.last().map(|r| r.index), 1000).await?;
            if page.is_empty() {
                break;
            }
            records.extend(page);
        }
        trails.push((service.to_owned(), records));
    }
    Ok(trails)
}

fn protection(field: &PersonalField) -> String {
    field.protection.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

fn locations(field: &PersonalField, separator: &str) -> String {
    field.locations.iter().map(ToString::to_string).collect::<Vec<_>>().join(separator)
}

/// One block per field, for a terminal.
fn table(fields: &[PersonalField]) -> String {
    let mut out = String::new();
    for field in fields {
        out.push_str(&format!("{} · {} ({})\n", field.service, field.field, field.class));
        out.push_str(&format!("  protection  {}\n", protection(field)));
        out.push_str(&format!("  retention   {}\n", field.retention));
        out.push_str(&format!("  purpose     {}\n", field.purpose));
        out.push_str(&format!("  where       {}\n\n", locations(field, "\n              ")));
    }
    out
}

fn markdown(fields: &[PersonalField]) -> String {
    let cell = |text: String| text.replace('|', "\\|");
    let mut out = String::from(
        "| service | field | class | protection | retention | purpose | where |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for field in fields {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            field.service,
            field.field,
            field.class,
            cell(protection(field)),
            cell(field.retention.to_string()),
            cell(field.purpose.to_owned()),
            cell(locations(field, "<br>")),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use tessera_kernel::personal::Location;

    use super::*;

    #[test]
    fn the_map_covers_every_service_that_keeps_personal_data() {
        let fields = declarations();
        for service in ["platform", "vault", "gateway", "customers", "orders", "payments", "support"] {
            assert!(fields.iter().any(|f| f.service == service), "{service} declares nothing");
        }
        let markdown = markdown(&fields);
        assert_eq!(markdown.lines().count(), fields.len() + 2, "{markdown}");
        assert!(markdown.contains("| customers | email | contact | sealed by the vault; masked for support"));
    }

    #[test]
    fn every_column_a_declaration_names_exists_in_its_services_migrations() {
        let schema = |service: &str| -> String {
            let sets = match service {
                "customers" => vec![tessera_customers::MIGRATIONS],
                "orders" => vec![tessera_orders::MIGRATIONS],
                "payments" => vec![tessera_payments::MIGRATIONS],
                "support" => vec![tessera_support::MIGRATIONS],
                "gateway" => vec![tessera_gateway::MIGRATIONS],
                "vault" => vec![tessera_vault::MIGRATIONS],
                _ => return String::new(),
            };
            sets.iter().flat_map(|set| set.migrations).map(|m| m.sqlite).collect()
        };
        for field in declarations() {
            let sql = schema(field.service);
            if sql.is_empty() {
                continue;
            }
            for location in field.locations {
                if let Location::Column { table, column } = location {
                    assert!(
                        sql.contains(table) && sql.contains(column),
                        "{}: no {table}.{column}",
                        field.service
                    );
                }
            }
        }
    }
}
