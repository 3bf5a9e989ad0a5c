//! `tessera verify`: checks the whole system's invariants from each service's own data, the
//! way an auditor would: orders' event streams are folded with the orders service's own
//! `evolve`, and every other service's tables are reconciled against that truth. Each check
//! prints what it counted and its first violations; any violation makes the command fail.
//!
//! The checks read; they never write. They may run against a live system: anything younger
//! than the settle time is still allowed to be in flight and is left out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use tessera_kernel::Timestamp;
use tessera_orders::domain::{Order, OrderEvent, OrderStatus};
use tessera_store::{PostgresOptions, SqliteOptions, Statement, Store, StoreConfig};

/// Where the services' stores are: an embedded data folder or a PostgreSQL server.
#[derive(Clone, Debug, Args)]
pub struct StoreTarget {
    /// The embedded data folder.
    #[arg(long, default_value = "tessera-data", env = "TESSERA_DATA")]
    pub data: PathBuf,
    /// The PostgreSQL server of the distributed topology, instead of `--data`.
    #[arg(long, env = "TESSERA_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Prefix of the database names (`<prefix>_<service>`).
    #[arg(long, env = "TESSERA_DATABASE_PREFIX", default_value = "tessera")]
    pub database_prefix: String,
}

impl StoreTarget {
    /// Opens one service's store as it is, creating and migrating nothing.
    pub async fn open(&self, service: &str) -> anyhow::Result<Store> {
        let config = match &self.database_url {
            Some(server) => StoreConfig::Postgres {
                url: tessera_store::database_url(server, &format!("{}_{service}", self.database_prefix)),
                options: PostgresOptions { create_database: false, ..PostgresOptions::default() },
            },
            None => {
                let path = self.data.join(format!("{service}.db"));
                if !path.exists() {
                    bail!("no store at {}: check --data", path.display());
                }
                StoreConfig::Sqlite { path, options: SqliteOptions::default() }
            }
        };
        Store::open(&config, &[]).await.with_context(|| format!("cannot open the {service} store"))
    }
}

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

impl Check {
    fn new(name: &'static str) -> Self {
        Self { name, checked: 0, violations: 0, examples: Vec::new() }
    }

    fn violation(&mut self, what: String) {
        self.violations += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(what);
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

/// One order as its stream tells it.
struct OrderFacts {
    state: Order,
    placed_at: Timestamp,
    last_at: Timestamp,
    /// Each event kind the stream holds more than once.
    repeated: Vec<&'static str>,
}

impl OrderFacts {
    fn settled(&self, cutoff: Timestamp) -> bool {
        self.last_at < cutoff
    }
}

fn micros(value: i64) -> Timestamp {
    Timestamp::from_micros(u64::try_from(value).unwrap_or_default())
}

async fn rows(store: &Store, sql: &str) -> anyhow::Result<Vec<tessera_store::Row>> {
    store.query(Statement::new(sql)).await.with_context(|| format!("query failed: {sql}"))
}

/// Every order, folded from the orders service's event store with its own `evolve`.
async fn orders(store: &Store) -> anyhow::Result<HashMap<String, OrderFacts>> {
    let mut facts: HashMap<String, OrderFacts> = HashMap::new();
    let mut seen: HashMap<String, HashSet<&'static str>> = HashMap::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for recorded in &page {
            if !recorded.stream.as_str().starts_with("order-") {
                continue;
            }
            let event: OrderEvent = recorded.decode().with_context(|| {
                format!("event {} of {} does not decode", recorded.version, recorded.stream)
            })?;
            let key = recorded.stream.as_str().to_owned();
            let entry = facts.entry(key.clone()).or_insert_with(|| OrderFacts {
                state: Order::default(),
                placed_at: recorded.recorded_at,
                last_at: recorded.recorded_at,
                repeated: Vec::new(),
            });
            if !seen.entry(key).or_default().insert(event.name()) {
                entry.repeated.push(event.name());
            }
            entry.state = std::mem::take(&mut entry.state).evolve(&event);
            entry.last_at = recorded.recorded_at;
        }
    }
    // Keyed by the order id the other services use.
    Ok(facts.into_values().filter_map(|f| f.state.id.map(|id| (id.to_string(), f))).collect())
}

fn terminal(status: OrderStatus) -> bool {
    matches!(status, OrderStatus::Confirmed | OrderStatus::Rejected | OrderStatus::Cancelled)
}

fn status_name(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::New => "new",
        OrderStatus::Pending => "pending",
        OrderStatus::Confirmed => "confirmed",
        OrderStatus::Rejected => "rejected",
        OrderStatus::Cancelling => "cancelling",
        OrderStatus::Cancelled => "cancelled",
    }
}

/// The five services whose stores hold the shop's data.
pub const SERVICES: [&str; 5] = ["inventory", "orders", "payments", "customers", "support"];

/// Runs every check against the stores `target` names.
pub async fn verify(target: &StoreTarget, settle: Duration) -> anyhow::Result<VerifyReport> {
    let mut stores = BTreeMap::new();
    for service in SERVICES {
        stores.insert(service, target.open(service).await?);
    }
    let gateway = target.open(tessera_gateway::SERVICE).await.ok();
    let cutoff = Timestamp::from_system_time(std::time::SystemTime::now()).saturating_sub(settle);
    let orders = orders(&stores["orders"]).await?;

    let mut report = VerifyReport {
        checks: Vec::new(),
        orders: BTreeMap::new(),
        unsettled: 0,
        order_ids: orders.keys().cloned().collect(),
    };
    for facts in orders.values() {
        if facts.settled(cutoff) {
            *report.orders.entry(status_name(facts.state.status)).or_default() += 1;
        } else {
            report.unsettled += 1;
        }
    }
    report.checks.push(orders_terminal(&orders, cutoff));
    report.checks.push(order_streams(&orders));
    report.checks.push(stock_conserved(&stores["inventory"]).await?);
    report.checks.push(reservations_match(&stores["inventory"], &orders, cutoff).await?);
    report.checks.push(payments_match(&stores["payments"], &orders, cutoff).await?);
    report.checks.push(sagas_finished(&stores["orders"], cutoff).await?);
    report.checks.push(outbox_drained(&stores, cutoff).await?);
    report.checks.push(commands_delivered(&stores, cutoff).await?);
    report.checks.push(dead_letters(&stores).await?);
    report.checks.push(read_models(&stores, &orders, cutoff).await?);
    report.checks.push(audit_chains(&stores, gateway.as_ref()).await?);
    Ok(report)
}

fn orders_terminal(orders: &HashMap<String, OrderFacts>, cutoff: Timestamp) -> Check {
    let mut check = Check::new("orders terminal");
    for (id, facts) in orders {
        if facts.placed_at >= cutoff {
            continue;
        }
        check.checked += 1;
        if !terminal(facts.state.status) {
            check.violation(format!("order {id} is still {}", status_name(facts.state.status)));
        }
    }
    check
}

/// An event applied twice shows as a repeated kind in the stream: each happens once per order.
fn order_streams(orders: &HashMap<String, OrderFacts>) -> Check {
    let mut check = Check::new("order events once");
    for (id, facts) in orders {
        check.checked += 1;
        if !facts.repeated.is_empty() {
            check.violation(format!("order {id} has {} more than once", facts.repeated.join(", ")));
        }
    }
    check
}

/// Per sku: every adjustment (initial stock included) equals available + reserved + sold, none
/// below zero; `reserved` is what held reservations hold, `sold` what committed ones do.
async fn stock_conserved(inventory: &Store) -> anyhow::Result<Check> {
    let mut check = Check::new("stock conserved");
    let mut adjusted: HashMap<String, i64> = HashMap::new();
    for row in
        rows(inventory, "SELECT sku, CAST(sum(delta) AS BIGINT) AS total FROM adjustments GROUP BY sku")
            .await?
    {
        adjusted.insert(row.text("sku")?.to_owned(), row.int("total")?);
    }
    let mut held: HashMap<String, i64> = HashMap::new();
    let mut committed: HashMap<String, i64> = HashMap::new();
    for row in rows(inventory, "SELECT sku, state, quantity FROM reservations").await? {
        let target = match row.text("state")? {
            "held" => &mut held,
            "committed" => &mut committed,
            _ => continue,
        };
        *target.entry(row.text("sku")?.to_owned()).or_default() += row.int("quantity")?;
    }
    for row in rows(inventory, "SELECT sku, available, reserved, sold FROM products").await? {
        check.checked += 1;
        let sku = row.text("sku")?;
        let (available, reserved, sold) = (row.int("available")?, row.int("reserved")?, row.int("sold")?);
        let total = adjusted.get(sku).copied().unwrap_or_default();
        if available < 0 || reserved < 0 || sold < 0 {
            check.violation(format!(
                "{sku}: below zero (available {available}, reserved {reserved}, sold {sold})"
            ));
        }
        if available + reserved + sold != total {
            check.violation(format!(
                "{sku}: adjustments sum to {total} but available {available} + reserved {reserved} + sold {sold} = {}",
                available + reserved + sold
            ));
        }
        let holding = held.get(sku).copied().unwrap_or_default();
        if reserved != holding {
            check.violation(format!("{sku}: reserved {reserved} but held reservations hold {holding}"));
        }
        let selling = committed.get(sku).copied().unwrap_or_default();
        if sold != selling {
            check.violation(format!("{sku}: sold {sold} but committed reservations hold {selling}"));
        }
    }
    Ok(check)
}

/// Each settled order's reservations in inventory, against what the order says happened.
async fn reservations_match(
    inventory: &Store,
    orders: &HashMap<String, OrderFacts>,
    cutoff: Timestamp,
) -> anyhow::Result<Check> {
    let mut check = Check::new("reservations match orders");
    let mut by_order: HashMap<String, Vec<(String, i64, String)>> = HashMap::new();
    for row in rows(inventory, "SELECT order_id, sku, quantity, state FROM reservations").await? {
        by_order.entry(row.text("order_id")?.to_owned()).or_default().push((
            row.text("sku")?.to_owned(),
            row.int("quantity")?,
            row.text("state")?.to_owned(),
        ));
    }
    for (id, facts) in orders {
        if !facts.settled(cutoff) {
            continue;
        }
        check.checked += 1;
        let held = by_order.remove(id).unwrap_or_default();
        let wanted_state = match facts.state.status {
            OrderStatus::Confirmed => "committed",
            OrderStatus::Cancelled => "restocked",
            OrderStatus::Rejected => "released",
            _ => continue,
        };
        let expected: BTreeMap<String, i64> = facts
            .state
            .priced
            .iter()
            .map(|line| (line.sku.as_str().to_owned(), i64::from(line.quantity.get())))
            .collect();
        let found: BTreeMap<String, i64> = held.iter().map(|(sku, q, _)| (sku.clone(), *q)).collect();
        // A rejection before anything was reserved leaves no rows at all.
        let nothing_reserved = facts.state.status == OrderStatus::Rejected && facts.state.priced.is_empty();
        if !nothing_reserved && found != expected {
            check.violation(format!("order {id}: reserved {found:?}, the order says {expected:?}"));
        }
        for (sku, _, state) in &held {
            if state != wanted_state {
                check.violation(format!(
                    "order {id} is {}: its {sku} reservation is {state}, not {wanted_state}",
                    status_name(facts.state.status)
                ));
            }
        }
    }
    for (id, held) in by_order {
        if !orders.contains_key(&id)
            && held.iter().any(|(_, _, state)| state == "held" || state == "committed")
        {
            check.violation(format!("order {id} is unknown to orders but holds stock in inventory"));
        }
    }
    Ok(check)
}

/// Money: a confirmed order captured once for its total, a rejected one never, a cancelled
/// one captured and refunded in full; no money moved for an order orders does not know.
async fn payments_match(
    payments: &Store,
    orders: &HashMap<String, OrderFacts>,
    cutoff: Timestamp,
) -> anyhow::Result<Check> {
    let mut check = Check::new("payments match orders");
    let mut captures: HashMap<String, Vec<i64>> = HashMap::new();
    for row in rows(payments, "SELECT order_id, amount FROM captures").await? {
        captures.entry(row.text("order_id")?.to_owned()).or_default().push(row.int("amount")?);
    }
    let mut refunds: HashMap<String, Vec<i64>> = HashMap::new();
    for row in rows(payments, "SELECT order_id, amount FROM refunds").await? {
        refunds.entry(row.text("order_id")?.to_owned()).or_default().push(row.int("amount")?);
    }
    let mut statuses: HashMap<String, String> = HashMap::new();
    for row in rows(payments, "SELECT order_id, status FROM payments").await? {
        statuses.insert(row.text("order_id")?.to_owned(), row.text("status")?.to_owned());
    }
    for (id, facts) in orders {
        if !facts.settled(cutoff) {
            continue;
        }
        let total = facts.state.total.as_ref().map(|m| m.amount);
        let captured = captures.get(id).cloned().unwrap_or_default();
        let refunded = refunds.get(id).cloned().unwrap_or_default();
        check.checked += 1;
        match facts.state.status {
            OrderStatus::Confirmed => {
                if captured.len() != 1 || Some(captured[0]) != total {
                    check.violation(format!("confirmed order {id} (total {total:?}): captures {captured:?}"));
                }
                if !refunded.is_empty() {
                    check.violation(format!("confirmed order {id}: refunded {refunded:?}"));
                }
            }
            OrderStatus::Cancelled => {
                if captured.len() != 1 || Some(captured[0]) != total {
                    check.violation(format!("cancelled order {id} (total {total:?}): captures {captured:?}"));
                }
                if refunded.len() != 1 || Some(refunded[0]) != total {
                    check.violation(format!("cancelled order {id} (total {total:?}): refunds {refunded:?}"));
                }
            }
            OrderStatus::Rejected => {
                if !captured.is_empty() {
                    check.violation(format!("rejected order {id}: captured {captured:?}"));
                }
                if let Some(status) = statuses.get(id).filter(|s| *s == "authorised" || *s == "captured") {
                    check.violation(format!("rejected order {id}: its payment is still {status}"));
                }
            }
            _ => {}
        }
    }
    for id in captures.keys() {
        if !orders.contains_key(id) {
            check.violation(format!("a capture for order {id}, which orders does not know"));
        }
    }
    Ok(check)
}

async fn sagas_finished(orders: &Store, cutoff: Timestamp) -> anyhow::Result<Check> {
    let mut check = Check::new("sagas finished");
    for row in rows(orders, "SELECT saga, saga_id, status, stuck, started_at FROM tessera_sagas").await? {
        if micros(row.int("started_at")?) >= cutoff {
            continue;
        }
        check.checked += 1;
        let status = row.text("status")?;
        if status != "completed" && status != "compensated" {
            let stuck = row.opt_text("stuck")?.map(|s| format!(", stuck: {s}")).unwrap_or_default();
            check.violation(format!("{} {} is {status}{stuck}", row.text("saga")?, row.text("saga_id")?));
        }
    }
    Ok(check)
}

async fn outbox_drained(stores: &BTreeMap<&str, Store>, cutoff: Timestamp) -> anyhow::Result<Check> {
    let mut check = Check::new("outbox drained");
    for (service, store) in stores {
        for row in rows(store, "SELECT message_id, name, created_at, sent_at FROM tessera_outbox").await? {
            if micros(row.int("created_at")?) >= cutoff {
                continue;
            }
            check.checked += 1;
            if row.opt_int("sent_at")?.is_none() {
                check.violation(format!(
                    "{service}: {} ({}) never sent",
                    row.text("message_id")?,
                    row.text("name")?
                ));
            }
        }
    }
    Ok(check)
}

/// Every command and reply one service sent another, applied by its target: its id is in the
/// target's inbox. (That it was applied only once is what the reconciliations above show.)
async fn commands_delivered(stores: &BTreeMap<&str, Store>, cutoff: Timestamp) -> anyhow::Result<Check> {
    let mut check = Check::new("commands applied");
    let mut inboxes: HashMap<&str, HashSet<String>> = HashMap::new();
    for (service, store) in stores {
        let ids = rows(store, "SELECT message_id FROM tessera_inbox").await?;
        inboxes.insert(
            service,
            ids.iter().filter_map(|r| r.text("message_id").ok().map(str::to_owned)).collect(),
        );
    }
    for (service, store) in stores {
        for row in rows(
            store,
            "SELECT o.message_id, e.envelope, o.created_at FROM tessera_outbox o
             LEFT JOIN tessera_outbox_envelopes e ON e.position = o.position",
        )
        .await?
        {
            if micros(row.int("created_at")?) >= cutoff {
                continue;
            }
            let Some(text) = row.opt_text("envelope")? else {
                check.checked += 1;
                check.violation(format!("{service}: outbox row {} has no envelope", row.text("message_id")?));
                continue;
            };
            let envelope: Value = serde_json::from_str(text).unwrap_or(Value::Null);
            let Some(target) = envelope["target"].as_str() else { continue };
            let Some(inbox) = inboxes.get(target) else { continue };
            check.checked += 1;
            let id = row.text("message_id")?;
            if !inbox.contains(id) {
                let name = envelope["name"].as_str().unwrap_or("?");
                check.violation(format!("{service} → {target}: {name} {id} never applied"));
            }
        }
    }
    Ok(check)
}

async fn dead_letters(stores: &BTreeMap<&str, Store>) -> anyhow::Result<Check> {
    let mut check = Check::new("no dead letters");
    for (service, store) in stores {
        let parked = tessera_bus::list_dead_letters(store, None).await?;
        check.checked += 1;
        for letter in parked {
            check.violation(format!(
                "{service}: {} parked by {} after {} attempts: {}",
                letter.envelope.name, letter.consumer, letter.attempts, letter.error
            ));
        }
    }
    Ok(check)
}

/// The orders service's summaries and support's replicas of them, against a fold of the
/// events they are built from.
async fn read_models(
    stores: &BTreeMap<&str, Store>,
    orders: &HashMap<String, OrderFacts>,
    cutoff: Timestamp,
) -> anyhow::Result<Check> {
    let mut check = Check::new("read models match events");
    let summaries: HashMap<String, (String, Option<i64>)> =
        rows(&stores["orders"], "SELECT order_id, status, total FROM order_summaries")
            .await?
            .iter()
            .map(|r| {
                Ok((r.text("order_id")?.to_owned(), (r.text("status")?.to_owned(), r.opt_int("total")?)))
            })
            .collect::<anyhow::Result<_>>()?;
    let replicas: HashMap<String, String> =
        rows(&stores["support"], "SELECT order_id, status FROM order_replicas")
            .await?
            .iter()
            .map(|r| Ok((r.text("order_id")?.to_owned(), r.text("status")?.to_owned())))
            .collect::<anyhow::Result<_>>()?;
    for (id, facts) in orders {
        if !facts.settled(cutoff) {
            continue;
        }
        check.checked += 1;
        let status = facts.state.status.public();
        let total = facts.state.total.as_ref().map(|m| m.amount);
        match summaries.get(id) {
            Some((s, t)) if s == status && *t == total => {}
            found => {
                check.violation(format!("order {id}: summary {found:?}, events say ({status}, {total:?})"))
            }
        }
        match replicas.get(id) {
            Some(s) if s == status => {}
            found => check.violation(format!("order {id}: support's replica {found:?}, events say {status}")),
        }
    }
    Ok(check)
}

async fn audit_chains(stores: &BTreeMap<&str, Store>, gateway: Option<&Store>) -> anyhow::Result<Check> {
    let mut check = Check::new("audit chains verify");
    for (service, store) in stores {
        let head = crate::audit::witnessed(gateway, service).await?;
        let verification = store.verify_audit(head).await?;
        check.checked += verification.records;
        if !verification.ok {
            let problem = verification.problem.map(|p| p.to_string()).unwrap_or_default();
            check.violation(format!(
                "{service}: first bad record {:?}: {problem}",
                verification.first_bad_index
            ));
        }
    }
    Ok(check)
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
