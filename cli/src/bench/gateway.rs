//! `tessera bench gateway`: what the gateway adds. The same product read is timed straight
//! from the inventory service's router and through the gateway (token-free route, rate limits,
//! headers, request id, forwarding), in process, alternating, in one run; then the composed
//! order view (four services) is read at a fixed arrival rate and its latency recorded.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use clap::Args;
use http_body_util::BodyExt;
use serde_json::json;
use tessera_contracts::{Money, Sku};
use tessera_gateway::{GatewayConfig, RateLimits, Role};
use tessera_kernel::Timestamp;
use tokio::sync::Mutex;
use tower::ServiceExt;

use super::report::{BenchResult, Report, latency_histogram, micros};
use super::system_cost::{PartCost, cost_of};
use crate::embedded::{Embedded, EmbeddedSettings};

#[derive(Debug, Args)]
pub struct GatewayBenchArgs {
    /// Sequential reads timed on each path.
    #[arg(long, default_value_t = 20_000)]
    samples: u64,
    /// Concurrent clients for the throughput runs.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Length of each throughput and arrival-rate run, in seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Arrivals per second for the composed-view run.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long)]
    json: bool,
}

async fn get(router: &Router, path: &str, token: Option<&str>) -> anyhow::Result<StatusCode> {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = router.clone().oneshot(request.body(Body::empty())?).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

pub(super) async fn send(
    router: &Router,
    method: &str,
    path: &str,
    token: &str,
    body: serde_json::Value,
    key: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = router.clone().oneshot(request.body(Body::from(body.to_string()))?).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if !status.is_success() {
        bail!("{method} {path} answered {status}: {value}");
    }
    Ok(value)
}

/// Requests per second from `concurrency` clients reading `path` for `duration`.
async fn throughput(
    router: &Router,
    path: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<BenchResult> {
    let done = Arc::new(AtomicU64::new(0));
    let histogram = Arc::new(Mutex::new(latency_histogram()));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let (router, path, done, histogram) =
            (router.clone(), path.to_owned(), done.clone(), histogram.clone());
        clients.push(tokio::spawn(async move {
            let mut local = latency_histogram();
            while started.elapsed() < duration {
                let at = Instant::now();
                if get(&router, &path, None).await.is_ok_and(|s| s == StatusCode::OK) {
                    local.record(micros(at.elapsed())).ok();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            histogram.lock().await.add(&local).ok();
        }));
    }
    for client in clients {
        client.await?;
    }
    let histogram = histogram.lock().await;
    Ok(BenchResult::new(
        "",
        "in-process",
        concurrency,
        done.load(Ordering::Relaxed),
        started.elapsed(),
        &histogram,
    ))
}

/// A gateway configuration without rate limits (a benchmark is one very busy client).
pub(super) fn unlimited_gateway() -> anyhow::Result<GatewayConfig> {
    let unlimited = NonZeroU32::new(1_000_000).context("non-zero")?;
    Ok(GatewayConfig {
        rate_limits: RateLimits {
            per_token: unlimited,
            token_burst: unlimited,
            per_address: unlimited,
            address_burst: unlimited,
        },
        ..GatewayConfig::default()
    })
}

/// An embedded system in `dir` with the benchmark's product, its catalogue cache on or off.
async fn system(dir: &std::path::Path, catalogue_cache: bool) -> anyhow::Result<Embedded> {
    let settings = EmbeddedSettings {
        payment_timeout: Duration::from_secs(10),
        slow_card_delay: Duration::from_secs(15),
        card_failure_rate: 0.0,
        card_latency: Duration::ZERO,
        gateway: unlimited_gateway()?,
        sealer: None,
        catalogue_cache,
        attachment_limits: tessera_support::AttachmentLimits::default(),
        retention: crate::settings::Retention::default(),
    };
    let system = Embedded::start(dir, settings).await?;
    system
        .inventory
        .create_product(
            &Sku::parse("BENCH-001")?,
            "Bench tea",
            "For timing",
            &Money::eur(100)?,
            1_000_000,
            &tessera_web::token::Actor::system("bench"),
        )
        .await?;
    Ok(system)
}

pub async fn run(args: GatewayBenchArgs) -> anyhow::Result<()> {
    // What the gateway adds is timed without the catalogue cache (every read forwarded); the
    // cache's gain is timed on a second system, the same but for the cache, in the same run.
    let dir = tempfile::tempdir()?;
    let system = system(dir.path(), false).await?;
    let direct = system.node.service_router(tessera_inventory::SERVICE).context("inventory router")?;
    let public = system.router.clone();
    let (direct_path, public_path) = ("/products/BENCH-001", "/api/v1/products/BENCH-001");

    // Sequential, alternating, after a warm-up: the added latency, free of queueing.
    for _ in 0..1000 {
        get(&direct, direct_path, None).await?;
        get(&public, public_path, None).await?;
    }
    let (mut direct_latency, mut public_latency) = (latency_histogram(), latency_histogram());
    let started = Instant::now();
    for _ in 0..args.samples {
        let at = Instant::now();
        get(&direct, direct_path, None).await?;
        direct_latency.record(micros(at.elapsed()))?;
        let at = Instant::now();
        get(&public, public_path, None).await?;
        public_latency.record(micros(at.elapsed()))?;
    }
    let elapsed = started.elapsed() / 2;
    let mut results = vec![
        BenchResult {
            name: "GET product, service direct (1 client)".into(),
            ..BenchResult::new("", "in-process", 1, args.samples, elapsed, &direct_latency)
        },
        BenchResult {
            name: "GET product, via gateway (1 client)".into(),
            ..BenchResult::new("", "in-process", 1, args.samples, elapsed, &public_latency)
        },
    ];
    let duration = Duration::from_secs(args.seconds);
    let mut run = throughput(&direct, direct_path, args.concurrency, duration).await?;
    run.name = "GET product, service direct (max)".into();
    results.push(run);
    let mut run = throughput(&public, public_path, args.concurrency, duration).await?;
    run.name = "GET product, via gateway, uncached (max)".into();
    let uncached = run.ops_per_sec;
    results.push(run);
    let cached_dir = tempfile::tempdir()?;
    let cached_system = self::system(cached_dir.path(), true).await?;
    get(&cached_system.router, public_path, None).await?;
    let mut run = throughput(&cached_system.router, public_path, args.concurrency, duration).await?;
    run.name = "GET product, via gateway, cached (max)".into();
    let cached = run.ops_per_sec;
    results.push(run);
    cached_system.node.shutdown(Duration::from_secs(5)).await;

    // The same reads with inventory across a socket, as in the distributed topology (HTTP/1.1
    // on loopback, pooled connections): there a read the cache answers saves a network hop.
    let (uncached_http, cached_http, _stores) = over_http(&system).await?;
    let mut run = throughput(&uncached_http, public_path, args.concurrency, duration).await?;
    run.name = "GET product, gateway to inventory over HTTP, uncached (max)".into();
    let uncached_over_http = run.ops_per_sec;
    results.push(run);
    get(&cached_http, public_path, None).await?;
    let mut run = throughput(&cached_http, public_path, args.concurrency, duration).await?;
    run.name = "GET product, gateway to inventory over HTTP, cached (max)".into();
    let cached_over_http = run.ops_per_sec;
    results.push(run);

    // The composed view: confirmed orders read at a fixed arrival rate.
    let registration = json!({"email": "bench@example.com", "name": "Bench", "password": "bench-password",
        "address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}});
    let admin = system.gateway.keys().issue(
        "admin@tessera.local",
        Role::Admin,
        Timestamp::from_system_time(std::time::SystemTime::now()),
    )?;
    let customer = send(&public, "POST", "/api/v1/customers", &admin, registration, None).await?;
    let customer_id = customer["id"].as_str().context("customer id")?.to_owned();
    let token = system.gateway.keys().issue(
        &customer_id,
        Role::Customer,
        Timestamp::from_system_time(std::time::SystemTime::now()),
    )?;
    let card = system
        .payments
        .tokenise(
            customer_id.parse()?,
            "4242424242424242",
            12,
            2031,
            "123",
            &tessera_web::token::Actor::system("bench"),
        )
        .await?
        .token;
    let mut orders = Vec::new();
    for n in 0..20 {
        let body = json!({"items": [{"sku": "BENCH-001", "quantity": 1}], "payment_token": card});
        let placed =
            send(&public, "POST", "/api/v1/orders", &token, body, Some(&format!("bench-{n}"))).await?;
        orders.push(placed["id"].as_str().context("order id")?.to_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for order in &orders {
        loop {
            let path = format!("/api/v1/orders/{order}");
            let request =
                Request::get(&path).header("authorization", format!("Bearer {token}")).body(Body::empty())?;
            let response = public.clone().oneshot(request).await?;
            let view: serde_json::Value =
                serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
            if view["status"] == "confirmed" {
                break;
            }
            if Instant::now() > deadline {
                bail!("order {order} did not confirm: {view}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let histogram = Arc::new(Mutex::new(latency_histogram()));
    let completed = Arc::new(AtomicU64::new(0));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate.max(1) as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut requests = Vec::new();
    let mut n = 0usize;
    while started.elapsed() < duration {
        ticker.tick().await;
        let (router, histogram, completed, token) =
            (public.clone(), histogram.clone(), completed.clone(), token.clone());
        let path = format!("/api/v1/orders/{}", orders[n % orders.len()]);
        n += 1;
        requests.push(tokio::spawn(async move {
            let at = Instant::now();
            if get(&router, &path, Some(&token)).await.is_ok_and(|s| s == StatusCode::OK) {
                histogram.lock().await.record(micros(at.elapsed())).ok();
                completed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for request in requests {
        request.await?;
    }
    let histogram = histogram.lock().await;
    results.push(BenchResult {
        name: format!("composed order view @{}/s", args.rate),
        ..BenchResult::new(
            "",
            "in-process",
            0,
            completed.load(Ordering::Relaxed),
            started.elapsed(),
            &histogram,
        )
    });
    let added = public_latency.value_at_quantile(0.5).saturating_sub(direct_latency.value_at_quantile(0.5));
    Report { bench: "gateway", results }.print(args.json)?;
    if !args.json {
        println!(
            "added by the gateway at p50: {added} µs (target < 150 µs); composed view p99 target < 10 ms at 1,000/s"
        );
        println!(
            "catalogue cache: {:.1}x the uncached reads/s in process, {:.1}x with inventory over HTTP (target >= 3x)",
            cached / uncached.max(1.0),
            cached_over_http / uncached_over_http.max(1.0)
        );
    }
    system.node.shutdown(Duration::from_secs(5)).await;
    Ok(())
}

/// `bench gateway`'s read of a product through the gateway by one client, one request after
/// another, here with a customer's bearer token, as every request of an order carries one: the
/// gateway verifies it and calls inventory on the customer's behalf. On an embedded system in
/// a scratch folder inside `dir`, without the catalogue cache, for `duration` after a warm-up:
/// what a request costs this process's threads in CPU, inventory's read included.
pub(super) async fn authenticated_single_client_part(
    dir: &std::path::Path,
    duration: Duration,
) -> anyhow::Result<PartCost> {
    let scratch = tempfile::tempdir_in(dir)?;
    let system = system(scratch.path(), false).await?;
    let customer = tessera_kernel::MessageId::generate(&tessera_kernel::UuidV7Gen).to_string();
    let token = system.gateway.keys().issue(
        &customer,
        Role::Customer,
        Timestamp::from_system_time(std::time::SystemTime::now()),
    )?;
    let (router, path) = (system.router.clone(), "/api/v1/products/BENCH-001");
    for _ in 0..1000 {
        get(&router, path, Some(&token)).await?;
    }
    let (requests, cost) = cost_of(async {
        let started = Instant::now();
        let mut requests = 0_u64;
        while started.elapsed() < duration {
            let status = get(&router, path, Some(&token)).await?;
            anyhow::ensure!(status == StatusCode::OK, "an authenticated product read answered {status}");
            requests += 1;
        }
        anyhow::Ok(requests)
    })
    .await?;
    system.node.shutdown(Duration::from_secs(5)).await;
    Ok(PartCost::new(requests?, cost.cpu))
}

/// Two more gateways on `system`'s services, reaching inventory over HTTP on loopback: one
/// without a catalogue cache and one with one. (The benchmark changes no product, so the
/// cache needs no invalidation here.)
async fn over_http(system: &Embedded) -> anyhow::Result<(Router, Router, Vec<tempfile::TempDir>)> {
    let inventory = system.node.service_router(tessera_inventory::SERVICE).context("inventory router")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(tessera_web::serve(listener, inventory, std::future::pending()));
    let (mut routers, mut stores) = (Vec::new(), Vec::new());
    for cached in [false, true] {
        let in_process = |name: &'static str| -> anyhow::Result<Arc<dyn tessera_gateway::ServiceClient>> {
            let router = system.node.service_router(name).with_context(|| format!("{name} router"))?;
            Ok(Arc::new(tessera_gateway::InProcess::new(name, router)))
        };
        let services = tessera_gateway::Services {
            inventory: Arc::new(tessera_gateway::Http::new("inventory", &format!("http://{address}"))),
            orders: in_process(tessera_orders::SERVICE)?,
            payments: in_process(tessera_payments::SERVICE)?,
            customers: in_process(tessera_customers::SERVICE)?,
            support: in_process(tessera_support::SERVICE)?,
        };
        let dir = tempfile::tempdir()?;
        let store = tessera_runtime::open_store(
            &tessera_runtime::Storage::Files(dir.path().to_path_buf()),
            tessera_gateway::SERVICE,
            &tessera_gateway::migrations(),
        )
        .await?;
        stores.push(dir);
        let mut gateway = tessera_gateway::Gateway::new(
            services,
            store,
            unlimited_gateway()?,
            tessera_gateway::TokenSettings::default(),
        )
        .await?;
        if cached {
            let cache = tessera_gateway::catalogue::LocalCache::new(10_000, Duration::from_secs(300));
            gateway = gateway.with_catalogue(tessera_gateway::catalogue::Catalogue::new(Arc::new(cache)));
        }
        routers.push(gateway.router(utoipa::openapi::OpenApi::default(), None));
    }
    let cached = routers.pop().context("cached router")?;
    let uncached = routers.pop().context("uncached router")?;
    Ok((uncached, cached, stores))
}
