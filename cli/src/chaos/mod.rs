//! `tessera chaos`: starts a system of its own (embedded or distributed), drives it with the
//! load generator and, meanwhile, injects faults at seeded random instants: SIGKILL and restart
//! of a process, SIGSTOP / SIGCONT, a NATS or PostgreSQL restart, a failing and slow card
//! network. Then it lets the system settle and runs `verify`. What must be zero is zero, or the
//! command fails: orders lost, effects duplicated, orders not terminal after the settle time.

pub(crate) mod system;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::Request;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use tessera_gateway::{Http, ServiceClient};

use crate::load::{LoadMode, LoadOptions, LoadReport, run_load};
use crate::verify::{VerifyReport, verify};
use system::{ADMIN, CardNetwork, System};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Topology {
    Embedded,
    Distributed,
}

#[derive(Debug, Args)]
pub struct ChaosArgs {
    #[arg(long, value_enum, default_value = "embedded")]
    topology: Topology,
    /// Orders to place.
    #[arg(long, default_value_t = 2_000)]
    orders: u64,
    /// Faults to inject while they are placed.
    #[arg(long, default_value_t = 10)]
    faults: u32,
    /// Orders per second the load places (open loop).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seeds the instants and kinds of the faults and the load's choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long the system may take to settle after the load before `verify` judges it.
    #[arg(long, default_value_t = 120)]
    settle_seconds: u64,
    /// Distributed: the PostgreSQL server (a database per service is created on it).
    #[arg(long, env = "TESSERA_DATABASE_URL")]
    database_url: Option<String>,
    /// Distributed: the NATS server.
    #[arg(long, env = "TESSERA_NATS_URL")]
    nats_url: Option<String>,
    /// Distributed: the subjects' and streams' prefix [default: chaos<pid>]. With
    /// --nats-credentials, the namespace they were made for.
    #[arg(long)]
    nats_namespace: Option<String>,
    /// Distributed: the folder of `tessera nats auth`'s seeds; each service signs in to NATS
    /// as itself.
    #[arg(long, value_name = "DIR")]
    nats_credentials: Option<PathBuf>,
    /// A shell command that restarts NATS (a fault is injected with it when given).
    #[arg(long)]
    nats_restart_command: Option<String>,
    /// A shell command that restarts PostgreSQL (a fault is injected with it when given).
    #[arg(long)]
    postgres_restart_command: Option<String>,
    /// Where the embedded data and every process's log go [default: a temporary folder].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the data (and the distributed databases) afterwards.
    #[arg(long)]
    keep: bool,
    #[arg(long)]
    json: bool,
}

/// One kind of fault.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Fault {
    /// SIGKILL, then a restart at once.
    Kill(String),
    /// SIGSTOP for a while, then SIGCONT.
    Pause(String),
    RestartNats,
    RestartPostgres,
    /// The card network fails a share of operations and answers slowly, for a while.
    CardNetwork,
}

impl Fault {
    fn kind(&self) -> &'static str {
        match self {
            Fault::Kill(_) => "kill -9 and restart",
            Fault::Pause(_) => "SIGSTOP / SIGCONT",
            Fault::RestartNats => "restart NATS",
            Fault::RestartPostgres => "restart PostgreSQL",
            Fault::CardNetwork => "failing, slow card network",
        }
    }

    fn describe(&self) -> String {
        match self {
            Fault::Kill(name) | Fault::Pause(name) => format!("{} {name}", self.kind()),
            _ => self.kind().to_owned(),
        }
    }
}

/// A fault as it happened.
#[derive(Debug)]
struct Injected {
    at: Duration,
    fault: String,
    took: Duration,
}

/// The faults this system can take, one of each process-level kind per process.
fn possible(args: &ChaosArgs, system: &System) -> Vec<Fault> {
    let mut faults = Vec::new();
    for name in system.names() {
        faults.push(Fault::Kill(name.clone()));
        faults.push(Fault::Pause(name));
    }
    if args.nats_restart_command.is_some() {
        faults.push(Fault::RestartNats);
    }
    if args.postgres_restart_command.is_some() {
        faults.push(Fault::RestartPostgres);
    }
    faults.push(Fault::CardNetwork);
    faults
}

/// `count` faults at seeded instants in the middle of the run: every kind at least once when
/// `count` allows, the rest drawn at random.
fn plan(rng: &mut fastrand::Rng, possible: &[Fault], count: u32, run: Duration) -> Vec<(Duration, Fault)> {
    let mut kinds: Vec<&'static str> = Vec::new();
    for fault in possible {
        if !kinds.contains(&fault.kind()) {
            kinds.push(fault.kind());
        }
    }
    let mut chosen: Vec<Fault> = Vec::new();
    for kind in kinds {
        let of_kind: Vec<&Fault> = possible.iter().filter(|f| f.kind() == kind).collect();
        if chosen.len() < count as usize {
            chosen.push(of_kind[rng.usize(..of_kind.len())].clone());
        }
    }
    while chosen.len() < count as usize {
        chosen.push(possible[rng.usize(..possible.len())].clone());
    }
    rng.shuffle(&mut chosen);
    let mut instants: Vec<Duration> = (0..count).map(|_| run.mul_f64(0.1 + 0.75 * rng.f64())).collect();
    instants.sort();
    instants.into_iter().zip(chosen).collect()
}

async fn shell(command: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .with_context(|| format!("cannot run `{command}`"))?;
    if !status.success() {
        bail!("`{command}` exited with {status}");
    }
    Ok(())
}

async fn inject(
    fault: &Fault,
    system: &mut System,
    args: &ChaosArgs,
    rng: &mut fastrand::Rng,
) -> anyhow::Result<()> {
    match fault {
        Fault::Kill(name) => {
            system.kill(name)?;
            tokio::time::sleep(Duration::from_millis(rng.u64(0..500))).await;
            system.start(name, CardNetwork::default()).await?;
        }
        Fault::Pause(name) => {
            system.pause(name)?;
            tokio::time::sleep(Duration::from_millis(rng.u64(500..3_000))).await;
            system.resume(name)?;
        }
        Fault::RestartNats => shell(args.nats_restart_command.as_deref().unwrap_or("false")).await?,
        Fault::RestartPostgres => shell(args.postgres_restart_command.as_deref().unwrap_or("false")).await?,
        Fault::CardNetwork => {
            let payments = system.payments();
            let degraded = CardNetwork { failure_rate: 0.3 + 0.4 * rng.f64(), latency_ms: rng.u64(50..400) };
            system.kill(&payments)?;
            system.start(&payments, degraded).await?;
            tokio::time::sleep(Duration::from_millis(rng.u64(1_000..3_000))).await;
            system.kill(&payments)?;
            system.start(&payments, CardNetwork::default()).await?;
        }
    }
    Ok(())
}

/// Products of the run's own: one with stock for every order, one that runs out (so that
/// rejections for stock happen under faults too).
async fn seed_products(gateway: &str) -> anyhow::Result<()> {
    create_products(
        gateway,
        &[("CHAOS-PLENTY", "Chaos tea", 10_000_000, 500), ("CHAOS-SCARCE", "Chaos teapot", 40, 4_500)],
    )
    .await
}

/// Creates (sku, name, stock, price in cents) through the gateway as the admin; one that
/// exists already is left as it is.
pub(crate) async fn create_products(
    gateway: &str,
    products: &[(&str, &str, i64, i64)],
) -> anyhow::Result<()> {
    let http = Http::new("chaos", gateway);
    let token = sign_in(&http).await?;
    for (sku, name, stock, price) in products {
        let body =
            json!({"sku": sku, "name": name, "price": {"amount": price, "currency": "EUR"}, "stock": stock});
        let request = Request::post("/api/v1/products")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))?;
        let status = http.send(request).await.context("POST /api/v1/products")?.status();
        if !status.is_success() && status != 409 {
            bail!("creating {sku} answered {status}");
        }
    }
    Ok(())
}

async fn sign_in(http: &Http) -> anyhow::Result<String> {
    use http_body_util::BodyExt;
    let body = json!({"email": ADMIN.0, "password": ADMIN.1});
    let request = Request::post("/api/v1/auth/token")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))?;
    let response = http.send(request).await.context("POST /api/v1/auth/token")?;
    let bytes = response.into_body().collect().await?.to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    answer["access_token"].as_str().map(str::to_owned).context("the admin cannot sign in")
}

/// The run's outcome; `lost`, `duplicated` and `non_terminal` must be zero.
struct ChaosReport {
    topology: Topology,
    seed: u64,
    faults: Vec<Injected>,
    restarts: BTreeMap<String, u32>,
    load: LoadReport,
    verify: VerifyReport,
    settled_in: Duration,
    lost: u64,
    duplicated: u64,
    non_terminal: u64,
}

impl ChaosReport {
    fn ok(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.non_terminal == 0 && self.verify.ok()
    }

    fn to_json(&self) -> Value {
        json!({
            "ok": self.ok(),
            "topology": format!("{:?}", self.topology).to_lowercase(),
            "seed": self.seed,
            "faults": self.faults.iter().map(|f| json!({
                "at_ms": f.at.as_millis() as u64, "fault": f.fault, "took_ms": f.took.as_millis() as u64,
            })).collect::<Vec<_>>(),
            "restarts": self.restarts,
            "orders": {
                "attempted": self.load.attempted_orders,
                "accepted": self.load.accepted_orders,
                "confirmed": self.verify.orders.get("confirmed").copied().unwrap_or_default(),
                "rejected": self.verify.orders.get("rejected").copied().unwrap_or_default(),
                "cancelled": self.verify.orders.get("cancelled").copied().unwrap_or_default(),
            },
            "lost": self.lost,
            "duplicated": self.duplicated,
            "non_terminal": self.non_terminal,
            "settled_in_ms": self.settled_in.as_millis() as u64,
            "verify": self.verify.to_json(),
            "load": self.load.to_json(),
        })
    }

    fn print(&self) {
        println!("faults injected: {}", self.faults.len());
        for f in &self.faults {
            println!("  {:>8.1} s  {} ({:.1} s)", f.at.as_secs_f64(), f.fault, f.took.as_secs_f64());
        }
        let count = |status: &str| self.verify.orders.get(status).copied().unwrap_or_default();
        println!(
            "orders: {} attempted, {} accepted, {} confirmed, {} rejected, {} cancelled",
            self.load.attempted_orders,
            self.load.accepted_orders,
            count("confirmed"),
            count("rejected"),
            count("cancelled")
        );
        println!("settled {:.1} s after the load", self.settled_in.as_secs_f64());
        self.verify.print_table();
        println!(
            "lost {}, duplicated effects {}, non-terminal after settle {}: {}",
            self.lost,
            self.duplicated,
            self.non_terminal,
            if self.ok() { "ok" } else { "FAILED" }
        );
    }
}

/// The checks whose violations mean an effect happened twice or disagrees across services.
const DUPLICATION_CHECKS: [&str; 4] =
    ["order events once", "stock conserved", "reservations match orders", "payments match orders"];
/// The checks whose violations mean something never arrived.
const LOSS_CHECKS: [&str; 2] = ["outbox drained", "commands applied"];
const PROGRESS_CHECKS: [&str; 2] = ["orders terminal", "sagas finished"];

fn sum(report: &VerifyReport, checks: &[&str]) -> u64 {
    checks.iter().map(|c| report.violations(c)).sum()
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    let temporary = tempfile::tempdir()?;
    let work = args.work_dir.clone().unwrap_or_else(|| temporary.path().to_path_buf());
    let logs = work.join("logs");
    std::fs::create_dir_all(&logs)?;
    let mut system = match args.topology {
        Topology::Embedded => System::embedded(&work.join("data"), &logs)?,
        Topology::Distributed => {
            let (Some(postgres), Some(nats)) = (&args.database_url, &args.nats_url) else {
                bail!("the distributed topology needs --database-url and --nats-url");
            };
            let prefix = format!("chaos{}", std::process::id());
            let bus = system::Bus {
                url: nats.clone(),
                namespace: args.nats_namespace.clone().unwrap_or_else(|| prefix.clone()),
                credentials: args.nats_credentials.clone(),
            };
            System::distributed(postgres, &bus, &prefix, &logs)?
        }
    };
    let outcome = drive(&args, &mut system).await;
    // A failed run keeps everything it wrote: its data and logs are where the cause is.
    let failed = !matches!(&outcome, Ok(report) if report.ok());
    system.shut_down(args.keep || failed).await;
    if args.keep || failed {
        let kept = temporary.keep();
        eprintln!(
            "chaos: data and logs kept in {}",
            if args.work_dir.is_some() { &work } else { &kept }.display()
        );
    }
    let report = outcome?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        report.print();
    }
    if !report.ok() {
        bail!("the system lost, duplicated or left unfinished work under faults (seed {})", args.seed);
    }
    Ok(())
}

async fn drive(args: &ChaosArgs, system: &mut System) -> anyhow::Result<ChaosReport> {
    system.start_all().await?;
    seed_products(&system.gateway).await?;
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let run = Duration::from_secs_f64(args.orders as f64 / args.rate.max(1.0));
    let faults = plan(&mut rng, &possible(args, system), args.faults, run);

    let started = std::sync::Arc::new(tokio::sync::Notify::new());
    let options = LoadOptions {
        max_orders: Some(args.orders),
        seed: args.seed,
        settle: Duration::from_secs(args.settle_seconds),
        mode: LoadMode::Open { rate: args.rate },
        duration: None,
        started: Some(started.clone()),
        ..LoadOptions::new(&system.gateway)
    };
    let mut load = tokio::spawn(run_load(options, !args.json));
    // Faults begin with the load phase, not during its set-up (signing customers up).
    tokio::select! {
        () = started.notified() => {}
        outcome = &mut load => {
            outcome.context("the load task failed")??;
            bail!("the load ended before its load phase began");
        }
    }
    let started = Instant::now();
    let mut injected = Vec::new();
    for (at, fault) in &faults {
        if let Some(wait) = at.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let began = started.elapsed();
        inject(fault, system, args, &mut rng)
            .await
            .with_context(|| format!("injecting {}", fault.describe()))?;
        injected.push(Injected { at: began, fault: fault.describe(), took: started.elapsed() - began });
    }
    system.heal().await?;
    let load = load.await.context("the load task failed")??;

    // Settle: until every check passes, or the time is up (then the report says what is wrong).
    let settling = Instant::now();
    let limit = Duration::from_secs(args.settle_seconds);
    let verify = loop {
        let report = verify(&system.stores, Duration::ZERO).await?;
        if report.ok() || settling.elapsed() > limit {
            break report;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let settled_in = settling.elapsed();
    let accepted: HashSet<&str> = load.orders.iter().map(|o| o.id.as_str()).collect();
    let lost = accepted.iter().filter(|id| !verify.order_ids.contains(**id)).count() as u64
        + sum(&verify, &LOSS_CHECKS);
    let duplicated = sum(&verify, &DUPLICATION_CHECKS);
    let non_terminal = sum(&verify, &PROGRESS_CHECKS);
    Ok(ChaosReport {
        topology: args.topology,
        seed: args.seed,
        faults: injected,
        restarts: system
            .starts()
            .into_iter()
            .map(|(name, starts)| (name, starts.saturating_sub(1)))
            .collect(),
        load,
        verify,
        settled_in,
        lost,
        duplicated,
        non_terminal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults() -> Vec<Fault> {
        vec![
            Fault::Kill("a".into()),
            Fault::Pause("a".into()),
            Fault::Kill("b".into()),
            Fault::Pause("b".into()),
            Fault::RestartNats,
            Fault::CardNetwork,
        ]
    }

    #[test]
    fn a_plan_is_its_seed_and_covers_every_kind() {
        let run = Duration::from_secs(20);
        let first = plan(&mut fastrand::Rng::with_seed(7), &faults(), 10, run);
        let again = plan(&mut fastrand::Rng::with_seed(7), &faults(), 10, run);
        let other = plan(&mut fastrand::Rng::with_seed(8), &faults(), 10, run);
        assert_eq!(first, again);
        assert_ne!(first, other);
        assert_eq!(first.len(), 10);
        let kinds: HashSet<&str> = first.iter().map(|(_, f)| f.kind()).collect();
        assert_eq!(kinds.len(), 4, "{first:?}");
        assert!(first.windows(2).all(|w| w[0].0 <= w[1].0), "instants in order");
        assert!(first.iter().all(|(at, _)| *at >= run / 10 && *at <= run.mul_f64(0.85)));
    }
}
