//! `tessera load`: drives a running system through its gateway with a mix of shop requests,
//! at a fixed arrival rate (open loop) or from a fixed number of clients (closed loop), and
//! reports latency per operation, errors by code, and how long orders took to settle.
//!
//! It is built to keep counting while the system is being broken (the chaos command runs it
//! while processes are killed): a `POST /orders` without a definitive answer is sent again
//! with the same Idempotency-Key until it gets one, so every order the gateway accepted is
//! known by its id; tokens are renewed on 401; odd answers are counted, never trusted.

mod client;
mod mix;
mod report;
mod run;
mod schedule;
mod setup;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;

use self::client::{Client, Identity};
pub use self::mix::Mix;
pub use self::report::LoadReport;
use self::run::Shared;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The gateway's address.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "TESSERA_URL")]
    url: String,
    /// Open loop: arrivals per second, scheduled by the clock whatever the answers.
    #[arg(long, conflicts_with = "clients")]
    rate: Option<f64>,
    /// Closed loop: clients that each start the next scenario when the last is done
    /// (the default, with 8 clients, when neither --rate nor --clients is given).
    #[arg(long)]
    clients: Option<usize>,
    /// Length of the load phase (30 s when neither --seconds nor --orders is given).
    #[arg(long)]
    seconds: Option<f64>,
    /// Stop once this many orders were attempted.
    #[arg(long)]
    orders: Option<u64>,
    /// Scenario weights, e.g. `browse=60,order=30,cancel=5,ticket=5` (the default).
    #[arg(long)]
    mix: Option<String>,
    /// Test card weights, e.g. `approved=5,declined=1`; by default every card alike:
    /// approved, declined, insufficient_funds, transient_error, slow.
    #[arg(long)]
    cards: Option<String>,
    /// After the load phase, wait this long at most for orders to reach a terminal state.
    #[arg(long, default_value_t = 30.0)]
    settle_seconds: f64,
    /// Customers signed up before the run (each with one card of every type).
    #[arg(long, default_value_t = 32)]
    customers: usize,
    /// Seed of the scenario draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = "admin@tessera.local")]
    admin_email: String,
    #[arg(long, default_value = "admin")]
    admin_password: String,
    /// Do not top the products' stock up before the run (orders may then be rejected as out of stock).
    #[arg(long)]
    no_restock: bool,
    /// Read each placed order every this many milliseconds until it settles, instead of
    /// waiting for it with `Prefer: wait` (one request that answers when it settles).
    #[arg(long)]
    poll_ms: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// How a run is driven (see [`run_load`]).
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub url: String,
    pub mode: LoadMode,
    /// Length of the load phase; with `max_orders` too, whichever comes first.
    pub duration: Option<Duration>,
    /// Stop once this many orders were attempted.
    pub max_orders: Option<u64>,
    pub mix: Mix,
    /// After the load phase, how long orders (and retries of unanswered ones) may still take.
    pub settle: Duration,
    pub seed: u64,
    pub admin_email: String,
    pub admin_password: String,
    pub customers: usize,
    /// Top every product's stock up before the run.
    pub restock: bool,
    /// How often a placed order is read until it settles; `None` to wait for it with
    /// `Prefer: wait` instead.
    pub poll_interval: Option<Duration>,
    /// One request's limit; past it, it counts as a `timeout`.
    pub request_timeout: Duration,
    /// Told when the set-up is done and the load phase's clock starts (chaos injects its
    /// faults into the load phase only).
    pub started: Option<Arc<tokio::sync::Notify>>,
}

impl LoadOptions {
    /// The defaults against `url`: closed loop with 8 clients for 30 s, the default mix.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            mode: LoadMode::Closed { clients: 8 },
            duration: Some(Duration::from_secs(30)),
            max_orders: None,
            mix: Mix::default(),
            settle: Duration::from_secs(30),
            seed: 1,
            admin_email: "admin@tessera.local".into(),
            admin_password: "admin".into(),
            customers: 32,
            restock: true,
            poll_interval: None,
            request_timeout: Duration::from_secs(15),
            started: None,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum LoadMode {
    Open { rate: f64 },
    Closed { clients: usize },
}

impl std::fmt::Display for LoadMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Open { rate } => write!(f, "open loop at {rate}/s"),
            Self::Closed { clients } => write!(f, "closed loop, {clients} clients"),
        }
    }
}

impl LoadArgs {
    fn options(&self) -> anyhow::Result<LoadOptions> {
        let mut mix = Mix::default();
        if let Some(text) = &self.mix {
            mix.parse_scenarios(text)?;
        }
        if let Some(text) = &self.cards {
            mix.parse_cards(text)?;
        }
        let mode = match (self.rate, self.clients) {
            (Some(rate), _) if !(rate.is_finite() && rate > 0.0) => bail!("--rate must be positive"),
            (Some(rate), _) => LoadMode::Open { rate },
            (None, clients) => LoadMode::Closed { clients: clients.unwrap_or(8).max(1) },
        };
        let duration = match (self.seconds, self.orders) {
            (None, None) => Some(Duration::from_secs(30)),
            (seconds, _) => seconds.map(|s| self::seconds(s, "--seconds")).transpose()?,
        };
        Ok(LoadOptions {
            url: self.url.clone(),
            mode,
            duration,
            max_orders: self.orders,
            mix,
            settle: seconds(self.settle_seconds, "--settle-seconds")?,
            seed: self.seed,
            admin_email: self.admin_email.clone(),
            admin_password: self.admin_password.clone(),
            customers: self.customers.max(1),
            restock: !self.no_restock,
            poll_interval: self.poll_ms.map(|ms| Duration::from_millis(ms.max(1))),
            request_timeout: Duration::from_secs(15),
            started: None,
        })
    }
}

fn seconds(value: f64, name: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| anyhow::anyhow!("{name} must be a non-negative number"))
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let options = args.options()?;
    let report = run_load(options, !args.json).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        report.print_table();
    }
    Ok(())
}

fn bar(progress: bool, length: u64, template: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    // The templates are constants of this file; a bad one falls back to the default style.
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Sets up, runs the load phase, waits for orders to settle, and reports.
pub async fn run_load(options: LoadOptions, progress: bool) -> anyhow::Result<LoadReport> {
    if options.duration.is_none() && options.max_orders.is_none() {
        bail!("a load run needs a duration or a number of orders");
    }
    if options.duration.is_none() && options.mix.order == 0 {
        bail!("a run bounded by a number of orders needs orders in its mix");
    }
    let client = Client::new(&options.url, options.request_timeout);
    setup::wait_until_ready(&client, &options.url, Duration::from_secs(30)).await?;
    let admin_token = client.sign_in(&options.admin_email, &options.admin_password).await?;
    let admin = Identity::new(options.admin_email.clone(), options.admin_password.clone(), admin_token);
    let skus = setup::products(&client, &admin, options.restock && options.mix.order > 0).await?;
    let run_id = format!(
        "{}-{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis(),
        options.seed
    );
    let signing_up = bar(progress, options.customers as u64, "{spinner} customers signed up {pos}/{len}");
    let customers = setup::customers(&client, &run_id, options.customers, &signing_up).await?;
    signing_up.finish_and_clear();

    let shared = Arc::new(Shared::new(
        client,
        customers,
        skus,
        options.mix.clone(),
        run_id,
        options.max_orders,
        options.poll_interval,
    ));
    let end = options.duration.map(|d| shared.started + d);
    let sent_before_load = shared.client.sent();
    if let Some(started) = &options.started {
        started.notify_one();
    }
    let watch = watch_progress(&shared, &options, progress);
    let mut tasks = JoinSet::new();
    match options.mode {
        LoadMode::Open { rate } => run::open_loop(&shared, rate, options.seed, end, &mut tasks).await,
        LoadMode::Closed { clients } => {
            run::closed_loop(&shared, clients, options.seed, end, &mut tasks).await
        }
    }
    let elapsed = shared.started.elapsed();
    watch.abort();

    // Settling: what is in flight may finish (orders followed, unanswered ones retried)
    // until the deadline; then every order not known to be settled is read once more.
    let deadline = Instant::now() + options.settle;
    shared.give_up_at(deadline);
    let settling = bar(progress, 0, "{spinner} settling: {msg}");
    while !tasks.is_empty() {
        settling.set_message(format!("{} requests in flight", tasks.len()));
        match tokio::time::timeout_at(deadline.into(), tasks.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    tasks.abort_all();
    settling.set_message("reading the orders' final state");
    run::final_statuses(&shared, deadline).await;
    settling.finish_and_clear();
    let requests = shared.client.sent() - sent_before_load;
    Ok(report(&shared, &options, elapsed, requests))
}

/// The bar of the load phase: elapsed seconds, or orders attempted when there is no duration.
fn watch_progress(
    shared: &Arc<Shared>,
    options: &LoadOptions,
    progress: bool,
) -> tokio::task::JoinHandle<()> {
    let by_orders = options.duration.is_none();
    let length = match (options.duration, options.max_orders) {
        (Some(duration), _) => duration.as_secs().max(1),
        (None, orders) => orders.unwrap_or(0),
    };
    let bar = bar(progress, length, "{spinner} {bar:30} {pos}/{len} {msg}");
    let shared = shared.clone();
    tokio::spawn(async move {
        loop {
            let (ok, errors) = shared.recorder.counts();
            let attempted = shared.attempted.load(std::sync::atomic::Ordering::Relaxed);
            bar.set_position(if by_orders { attempted } else { shared.started.elapsed().as_secs() });
            bar.set_message(format!("{ok} ok, {errors} errors, {attempted} orders"));
            if shared.is_stopped() {
                bar.finish_and_clear();
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

fn report(shared: &Shared, options: &LoadOptions, elapsed: Duration, requests: u64) -> LoadReport {
    use std::sync::atomic::Ordering::Relaxed;
    let (operations, errors, settle) = shared.recorder.summarise(elapsed);
    let orders = shared.placed_orders();
    let count =
        |status: &str| orders.iter().filter(|o| o.final_status.as_deref() == Some(status)).count() as u64;
    let (confirmed, rejected, cancelled) = (count("confirmed"), count("rejected"), count("cancelled"));
    let (attempted, accepted, refused) =
        (shared.attempted.load(Relaxed), shared.accepted.load(Relaxed), shared.refused.load(Relaxed));
    LoadReport {
        mode: format!("{}, mix {}", options.mode, options.mix),
        elapsed,
        requests,
        operations,
        errors,
        settle,
        attempted_orders: attempted,
        accepted_orders: accepted,
        refused_orders: refused,
        // An attempt neither accepted nor refused got no definitive answer (or one without an id).
        unanswered_orders: attempted.saturating_sub(accepted + refused),
        non_terminal: (orders.len() as u64).saturating_sub(confirmed + rejected + cancelled),
        confirmed,
        rejected,
        cancelled,
        orders,
    }
}
