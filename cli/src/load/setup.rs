//! Before the clock starts: the system is ready, the admin signs in, the catalogue is read
//! (and topped up, so that orders test the saga rather than run out of stock), and a pool of
//! customers signs up, each with one saved card of every test type.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::http::Method;
use indicatif::ProgressBar;
use serde_json::json;

use super::client::{Client, Identity, Outcome};
use super::mix::CARDS;

/// Stock each product is topped up to before the run, when restocking.
pub const STOCK_FLOOR: i64 = 10_000_000;

/// One customer of the pool, with a payment token per entry of [`CARDS`].
#[derive(Debug)]
pub struct Customer {
    pub identity: Arc<Identity>,
    pub cards: Vec<String>,
}

pub async fn wait_until_ready(client: &Client, url: &str, patience: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match client.call(Method::GET, "/ready", None, None, None).await {
            Outcome::Answer { status: 200, .. } => return Ok(()),
            outcome if started.elapsed() > patience => {
                bail!("{url} is not ready after {patience:?} (last answer: {})", outcome.code())
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The skus on sale, topped up to [`STOCK_FLOOR`] when `restock`.
pub async fn products(client: &Client, admin: &Identity, restock: bool) -> anyhow::Result<Vec<String>> {
    let listing = client.call(Method::GET, "/api/v1/products?limit=200", None, None, None).await;
    if !listing.is_success() {
        bail!("listing the products answered {}: {}", listing.code(), listing.body());
    }
    let mut skus = Vec::new();
    for item in listing.body()["items"].as_array().map_or(&[][..], Vec::as_slice) {
        let Some(sku) = item["sku"].as_str() else { continue };
        let available = item["available"].as_i64().unwrap_or(0);
        if restock && available < STOCK_FLOOR {
            let body = json!({"delta": STOCK_FLOOR - available, "reason": "tessera load"});
            let path = format!("/api/v1/products/{sku}/stock");
            let topped = admin.call(client, Method::POST, &path, Some(&body), None).await;
            if !topped.is_success() {
                bail!("restocking {sku} answered {}: {}", topped.code(), topped.body());
            }
        }
        skus.push(sku.to_owned());
    }
    if skus.is_empty() {
        bail!("the catalogue is empty: there is nothing to order");
    }
    Ok(skus)
}

/// `count` new customers named after `run_id`, signed up a few at a time.
pub async fn customers(
    client: &Client,
    run_id: &str,
    count: usize,
    bar: &ProgressBar,
) -> anyhow::Result<Vec<Customer>> {
    let mut pending = tokio::task::JoinSet::new();
    let mut customers = Vec::with_capacity(count);
    for n in 0..count {
        // A few sign-ups in flight: enough to be quick, few enough not to trip rate limits.
        if pending.len() >= 8
            && let Some(done) = pending.join_next().await
        {
            customers.push(done.context("a sign-up task failed")??);
            bar.inc(1);
        }
        let (client, email) = (client.clone(), format!("load-{run_id}-{n}@example.com"));
        pending.spawn(async move { sign_up(&client, email, n).await });
    }
    while let Some(done) = pending.join_next().await {
        customers.push(done.context("a sign-up task failed")??);
        bar.inc(1);
    }
    Ok(customers)
}

async fn sign_up(client: &Client, email: String, n: usize) -> anyhow::Result<Customer> {
    let password = "load-password".to_owned();
    let registration = json!({"email": email, "name": format!("Load Customer {n}"), "password": password,
        "address": {"line1": "1 Load Street", "city": "Lisbon", "postal_code": "1100-001", "country": "PT"}});
    let created = client.call(Method::POST, "/api/v1/customers", None, Some(&registration), None).await;
    if !created.is_success() {
        bail!("signing up {email} answered {}: {}", created.code(), created.body());
    }
    let token = client.sign_in(&email, &password).await?;
    let identity = Identity::new(email, password, token);
    let mut cards = Vec::with_capacity(CARDS.len());
    for (number, name) in CARDS {
        let card = json!({"card_number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"});
        let saved = identity.call(client, Method::POST, "/api/v1/payment-methods", Some(&card), None).await;
        let token = saved.body()["token"].as_str().map(str::to_owned);
        match token {
            Some(token) if saved.is_success() => cards.push(token),
            _ => bail!("saving the {name} card answered {}: {}", saved.code(), saved.body()),
        }
    }
    Ok(Customer { identity, cards })
}
