//! `tessera verify`: checks the whole system's invariants from each service's own data, the
//! way an auditor would. Each service says what it knows through its `facts` module (orders
//! folds its event streams with its own `evolve`), the platform what each store's message
//! pipeline and audit chain hold, and the shared checker (`tessera-invariants`, which the
//! simulation runs too) reconciles them. Each check prints what it counted and its first
//! violations; any violation makes the command fail.
//!
//! The checks read; they never write. They may run against a live system: anything younger
//! than the settle time is still allowed to be in flight and is left out.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use serde_json::{Value, json};
use tessera_invariants::{AuditFact, DeadLetterFact, Facts, PipelineFacts};
use tessera_kernel::Timestamp;
use tessera_store::Store;

use crate::registry;
pub use crate::store_target::StoreTarget;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    target: StoreTarget,
    /// Work younger than this many seconds may still be in flight and is not judged.
    #[arg(long, default_value_t = 30)]
    settle_seconds: u64,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// Examples kept per check; the count covers them all.
const EXAMPLES: usize = 10;

/// One invariant: how many things it looked at and what broke it.
#[derive(Debug)]
pub struct Check {
    pub name: &'static str,
    pub checked: u64,
    pub violations: u64,
    pub examples: Vec<String>,
}

impl From<tessera_invariants::Check> for Check {
    fn from(check: tessera_invariants::Check) -> Self {
        Self {
            name: check.name,
            checked: check.checked,
            violations: check.violations.len() as u64,
            examples: check.violations.iter().take(EXAMPLES).map(ToString::to_string).collect(),
        }
    }
}

#[derive(Debug)]
pub struct VerifyReport {
    pub checks: Vec<Check>,
    /// Orders by their state in the orders service's event streams (judged ones only).
    pub orders: BTreeMap<&'static str, u64>,
    /// Orders younger than the settle time, left out.
    pub unsettled: u64,
    /// Every order the orders service knows, judged or not.
    pub order_ids: HashSet<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.violations == 0)
    }

    pub fn violations(&self, name: &str) -> u64 {
        self.checks.iter().filter(|c| c.name == name).map(|c| c.violations).sum()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "ok": self.ok(),
            "orders": self.orders,
            "unsettled": self.unsettled,
            "checks": self.checks.iter().map(|c| json!({
                "name": c.name, "checked": c.checked, "violations": c.violations, "examples": c.examples,
            })).collect::<Vec<_>>(),
        })
    }

    pub fn print_table(&self) {
        println!("{:<30} {:>9} {:>10}  first violations", "check", "checked", "violations");
        for check in &self.checks {
            let mark = if check.violations == 0 { "ok" } else { "FAILED" };
            println!("{:<30} {:>9} {:>10}  {mark}", check.name, check.checked, check.violations);
            for example in &check.examples {
                println!("{:>52}  {example}", "");
            }
        }
        let orders: Vec<String> = self.orders.iter().map(|(status, n)| format!("{n} {status}")).collect();
        println!(
            "orders: {} (and {} younger than the settle time, not judged)",
            if orders.is_empty() { "none".to_owned() } else { orders.join(", ") },
            self.unsettled
        );
    }
}

/// The platform's facts about one store: its message pipeline.
async fn pipeline(service: &str, store: &Store) -> anyhow::Result<PipelineFacts> {
    let dead_letters = tessera_bus::list_dead_letters(store, None)
        .await?
        .into_iter()
        .map(|letter| DeadLetterFact {
            name: letter.envelope.name,
            consumer: letter.consumer,
            attempts: letter.attempts,
            error: letter.error,
        })
        .collect();
    Ok(PipelineFacts {
        service: service.to_owned(),
        outbox: tessera_store::outbox_facts(store).await?,
        inbox: tessera_store::inbox_facts(store).await?,
        dead_letters,
    })
}

/// Gathers every fact the checker needs: each service's from its own `facts` (through the
/// registry), the platform's from each store. No service's tables are read here.
async fn facts(stores: &BTreeMap<&'static str, Store>, gateway: Option<&Store>) -> anyhow::Result<Facts> {
    let mut facts = Facts::default();
    for (service, store) in stores {
        facts.pipelines.push(pipeline(service, store).await?);
        let head = crate::audit::witnessed(gateway, service).await?;
        facts.audits.push(AuditFact {
            service: (*service).to_owned(),
            verification: store.verify_audit(head).await?,
        });
    }
    for descriptor in &registry::SERVICES {
        if let Some(read) = descriptor.facts {
            read(&stores[descriptor.name], &mut facts).await?;
        }
    }
    Ok(facts)
}

/// Runs every check against the stores `target` names.
pub async fn verify(target: &StoreTarget, settle: Duration) -> anyhow::Result<VerifyReport> {
    let mut stores = BTreeMap::new();
    for service in registry::names() {
        stores.insert(service, target.open(service).await?);
    }
    let gateway = target.open(tessera_gateway::SERVICE).await.ok();
    let cutoff = Timestamp::from_system_time(std::time::SystemTime::now()).saturating_sub(settle);
    let facts = facts(&stores, gateway.as_ref()).await?;

    let mut report = VerifyReport {
        checks: Vec::new(),
        orders: BTreeMap::new(),
        unsettled: 0,
        order_ids: facts.orders.orders.iter().map(|o| o.order_id.clone()).collect(),
    };
    for order in &facts.orders.orders {
        if order.settled(cutoff) {
            *report.orders.entry(order.state.status.name()).or_default() += 1;
        } else {
            report.unsettled += 1;
        }
    }
    report.checks = tessera_invariants::check(&facts, cutoff).checks.into_iter().map(Check::from).collect();
    Ok(report)
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let report = verify(&args.target, Duration::from_secs(args.settle_seconds)).await?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        report.print_table();
    }
    if !report.ok() {
        let failed: Vec<&str> = report.checks.iter().filter(|c| c.violations > 0).map(|c| c.name).collect();
        bail!("invariants violated: {}", failed.join(", "));
    }
    Ok(())
}
