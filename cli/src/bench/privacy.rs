//! `tessera bench privacy`: what sealing personal data costs. The same embedded system runs the
//! same order workload twice per round, once with the vault sealing every personal field and
//! once with a pass-through in its place, alternating over several rounds in one run. One
//! operation is what a shop does per order: place it (the gateway reads the customer's
//! profile for the market, which opens sealed fields) and read the composed view (which opens
//! the customer's name).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use clap::Args;
use serde_json::json;
use tessera_contracts::{Money, Sku};
use tessera_gateway::Role;
use tessera_kernel::Timestamp;
use tessera_vault::Sealer;
use tokio::sync::Mutex;

use super::gateway::{send, unlimited_gateway};
use super::report::{BenchResult, Report, latency_histogram, micros};
use crate::embedded::{Embedded, EmbeddedSettings};

#[derive(Debug, Args)]
pub struct PrivacyBenchArgs {
    /// Concurrent clients placing orders.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Length of each run, in seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds; each runs both systems, and the median round is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long)]
    json: bool,
}

/// The baseline: personal data kept as it is given. Never used outside this benchmark.
#[derive(Debug)]
struct PassThrough;

#[async_trait]
impl Sealer for PassThrough {
    async fn seal(&self, _subject: &str, text: &str) -> tessera_vault::Result<String> {
        Ok(text.to_owned())
    }
    async fn open(&self, _subject: &str, stored: &str) -> tessera_vault::Result<Option<String>> {
        Ok(Some(stored.to_owned()))
    }
    async fn seal_bytes(&self, _subject: &str, bytes: &[u8]) -> tessera_vault::Result<Vec<u8>> {
        Ok(bytes.to_vec())
    }
    async fn open_bytes(&self, _subject: &str, sealed: &[u8]) -> tessera_vault::Result<Option<Vec<u8>>> {
        Ok(Some(sealed.to_vec()))
    }
    // Streams (attachments) are sealed under a fixed key: the benchmark places orders only.
    async fn stream_sealing_key(&self, subject: &str) -> tessera_vault::Result<tessera_vault::StreamKey> {
        Ok(tessera_vault::StreamKey::from_bytes(&[0; 32], subject))
    }
    async fn stream_opening_key(
        &self,
        subject: &str,
    ) -> tessera_vault::Result<Option<tessera_vault::StreamKey>> {
        Ok(Some(tessera_vault::StreamKey::from_bytes(&[0; 32], subject)))
    }
    fn blind_index(&self, purpose: &str, value: &str) -> String {
        format!("{purpose}:{value}")
    }
    fn pseudonym(&self, value: &str) -> String {
        value.to_owned()
    }
    async fn shred(&self, _subject: &str) -> tessera_vault::Result<()> {
        Ok(())
    }
    fn evict(&self, _subject: &str) {}
}

/// Orders per second (place, then read the composed view) on a fresh system.
async fn orders_per_second(
    sealer: Option<Arc<dyn Sealer>>,
    args: &PrivacyBenchArgs,
) -> anyhow::Result<BenchResult> {
    let dir = tempfile::tempdir()?;
    let settings = EmbeddedSettings {
        payment_timeout: Duration::from_secs(10),
        slow_card_delay: Duration::from_secs(15),
        card_failure_rate: 0.0,
        card_latency: Duration::ZERO,
        gateway: unlimited_gateway()?,
        sealer,
        catalogue_cache: true,
        attachment_limits: tessera_support::AttachmentLimits::default(),
        retention: crate::settings::Retention::default(),
    };
    let system = Embedded::start(dir.path(), settings).await?;
    let bench = tessera_web::token::Actor::system("bench");
    system
        .inventory
        .create_product(&Sku::parse("BENCH-002")?, "Bench tea", "", &Money::eur(100)?, 10_000_000, &bench)
        .await?;
    let public = system.router.clone();
    let now = || Timestamp::from_system_time(std::time::SystemTime::now());
    let admin = system.gateway.keys().issue("admin@tessera.local", Role::Admin, now())?;
    let mut clients = Vec::new();
    for n in 0..args.concurrency {
        let registration = json!({"email": format!("bench{n}@example.com"), "name": format!("Bench Customer {n}"),
            "password": "bench-password",
            "address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}});
        let customer = send(&public, "POST", "/api/v1/customers", &admin, registration, None).await?;
        let id = customer["id"].as_str().context("customer id")?.to_owned();
        let token = system.gateway.keys().issue(&id, Role::Customer, now())?;
        let card =
            system.payments.tokenise(id.parse()?, "4242424242424242", 12, 2031, "123", &bench).await?.token;
        clients.push((token, card));
    }
    let done = Arc::new(AtomicU64::new(0));
    let histogram = Arc::new(Mutex::new(latency_histogram()));
    let duration = Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (n, (token, card)) in clients.into_iter().enumerate() {
        let (router, done, histogram) = (public.clone(), done.clone(), histogram.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = latency_histogram();
            let mut i = 0u64;
            while started.elapsed() < duration {
                let at = Instant::now();
                let body = json!({"items": [{"sku": "BENCH-002", "quantity": 1}], "payment_token": card});
                let key = format!("c{n}-{i}");
                i += 1;
                let Ok(placed) = send(&router, "POST", "/api/v1/orders", &token, body, Some(&key)).await
                else {
                    continue;
                };
                let Some(order) = placed["id"].as_str() else { continue };
                let path = format!("/api/v1/orders/{order}");
                if send(&router, "GET", &path, &token, serde_json::Value::Null, None).await.is_ok() {
                    local.record(micros(at.elapsed())).ok();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            histogram.lock().await.add(&local).ok();
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed();
    system.node.shutdown(Duration::from_secs(5)).await;
    let histogram = histogram.lock().await;
    Ok(BenchResult::new("", "embedded", args.concurrency, done.load(Ordering::Relaxed), elapsed, &histogram))
}

pub async fn run(args: PrivacyBenchArgs) -> anyhow::Result<()> {
    let (mut sealed, mut clear) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds.max(1) {
        clear.push(orders_per_second(Some(Arc::new(PassThrough)), &args).await?);
        sealed.push(orders_per_second(None, &args).await?);
    }
    let median = |mut runs: Vec<BenchResult>| {
        runs.sort_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec));
        runs.swap_remove(runs.len() / 2)
    };
    let (mut sealed, mut clear) = (median(sealed), median(clear));
    sealed.name = "orders/s, personal data sealed (vault)".into();
    clear.name = "orders/s, personal data in clear (baseline)".into();
    let slower = 1.0 - sealed.ops_per_sec / clear.ops_per_sec.max(f64::EPSILON);
    Report { bench: "privacy", results: vec![sealed, clear] }.print(args.json)?;
    if !args.json {
        println!("sealing costs {:.1} % of the order rate (target < 10 %)", slower * 100.0);
    }
    Ok(())
}
