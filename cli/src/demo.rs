//! `tessera demo`: a scripted scenario against a running system (the embedded one on
//! 127.0.0.1:8080 by default), through the public API as a client would: customers sign up,
//! pay with each test card, one order is cancelled, a ticket is opened; every order's final
//! state and its timeline are printed; then the customer is erased, and the erasure followed
//! until every service has done its part.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::http::Method;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::api_client::ApiClient;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The system's address.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "TESSERA_URL")]
    url: String,
    /// The admin sign-in (the demo's by default).
    #[arg(long, default_value = "admin@tessera.local", env = "TESSERA_ADMIN_EMAIL")]
    admin_email: String,
    #[arg(long, default_value = "admin", env = "TESSERA_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: String,
    /// Give up waiting for the orders after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// One JSON object at the end (the customer, each order with its outcome and timeline, the
    /// ticket, the erasure) instead of the story as it happens.
    #[arg(long)]
    json: bool,
}

const CARDS: [(&str, &str); 5] = [
    ("4242424242424242", "approved"),
    ("4000000000000002", "declined"),
    ("4000000000009995", "insufficient funds"),
    ("4000000000000119", "transient error, retried"),
    ("4000000000003220", "slow, times out"),
];

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(&args.url);
    let say = |line: String| {
        if !args.json {
            println!("{line}");
        }
    };
    let started = Instant::now();
    loop {
        match client.call(Method::GET, "/ready", None, None, None).await {
            Ok((200, _)) => break,
            _ if started.elapsed() > Duration::from_secs(10) => {
                bail!("{} is not ready: is `tessera up` running?", args.url)
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let admin =
        client.sign_in(&args.admin_email, &args.admin_password).await.context("the admin cannot sign in")?;
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
    let email = format!("demo-{run}@example.com");
    let registration = json!({"email": email, "name": "Demo Customer", "password": "demo-password",
        "address": {"line1": "1 Demo Street", "city": "Lisbon", "postal_code": "1100-001", "country": "PT"}});
    let customer = client.expect(Method::POST, "/api/v1/customers", None, Some(registration), None).await?;
    let token = client.sign_in(&email, "demo-password").await?;
    say(format!("customer {} signed up as {email}", customer["id"].as_str().unwrap_or_default()));

    let mut orders = Vec::new();
    for (n, (number, label)) in CARDS.iter().enumerate() {
        let card = json!({"card_number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"});
        let method =
            client.expect(Method::POST, "/api/v1/payment-methods", Some(&token), Some(card), None).await?;
        let body = json!({"items": [{"sku": "TEA-001", "quantity": 1}, {"sku": "MUG-001", "quantity": 1}],
            "payment_token": method["token"]});
        let key = format!("demo-{run}-{n}");
        let placed =
            client.expect(Method::POST, "/api/v1/orders", Some(&token), Some(body), Some(&key)).await?;
        orders.push((placed["id"].as_str().unwrap_or_default().to_owned(), *label, *number));
    }

    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(orders.len() as u64) };
    bar.set_style(ProgressStyle::with_template("{spinner} orders settled {pos}/{len} {msg}")?);
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let mut settled = 0;
        for (id, _, _) in &orders {
            let view =
                client.expect(Method::GET, &format!("/api/v1/orders/{id}"), Some(&token), None, None).await?;
            if view["status"] != "pending" {
                settled += 1;
            }
        }
        bar.set_position(settled);
        if settled == orders.len() as u64 {
            break;
        }
        if Instant::now() > deadline {
            bail!("orders still pending after {} s", args.timeout);
        }
        bar.tick();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bar.finish_with_message("done");

    // Cancel the approved order, and open a ticket about it.
    let (approved, _, _) = &orders[0];
    client
        .expect(Method::POST, &format!("/api/v1/orders/{approved}/cancel"), Some(&token), None, None)
        .await?;
    while client.expect(Method::GET, &format!("/api/v1/orders/{approved}"), Some(&token), None, None).await?["status"]
        != "cancelled"
    {
        if Instant::now() > deadline {
            bail!("the cancellation did not complete");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ticket = json!({"order_id": approved, "subject": "Changed my mind", "message": "I cancelled; is the refund on its way?"});
    let ticket = client.expect(Method::POST, "/api/v1/tickets", Some(&token), Some(ticket), None).await?;
    say(format!("ticket {} opened about order {approved}", ticket["id"].as_str().unwrap_or_default()));

    say(String::new());
    let mut outcomes = Vec::new();
    for (id, label, number) in &orders {
        let view =
            client.expect(Method::GET, &format!("/api/v1/orders/{id}"), Some(&token), None, None).await?;
        let reason = view["reason"].as_str().map(|r| format!(" ({r})")).unwrap_or_default();
        let total = view["total"]["amount"]
            .as_i64()
            .map(|a| format!("{}.{:02} EUR", a / 100, a % 100))
            .unwrap_or_default();
        say(format!(
            "order {id}  card …{}  {label:<26} {}{reason}  {total}",
            &number[12..],
            view["status"].as_str().unwrap_or("?")
        ));
        let history = client
            .expect(Method::GET, &format!("/api/v1/orders/{id}/history"), Some(&admin), None, None)
            .await?;
        let events = history["events"].as_array().cloned().unwrap_or_default();
        for event in &events {
            say(format!(
                "    {}  {}",
                event["at"].as_str().unwrap_or_default(),
                event["name"].as_str().unwrap_or_default()
            ));
        }
        outcomes.push(json!({"id": id, "card": number, "scenario": label, "status": view["status"],
            "reason": view["reason"], "total": view["total"],
            "events": events.iter().map(|e| json!({"at": e["at"], "name": e["name"]})).collect::<Vec<_>>()}));
    }
    // Finally the customer asks to be forgotten; every service reports its part done.
    let customer_id = customer["id"].as_str().unwrap_or_default();
    let erasure = client
        .expect(Method::DELETE, &format!("/api/v1/customers/{customer_id}"), Some(&token), None, None)
        .await?;
    let progress_path = format!("/api/v1/customers/{customer_id}/erasure");
    let progress = loop {
        let progress = client.expect(Method::GET, &progress_path, Some(&admin), None, None).await?;
        if progress["complete"] == true {
            break progress;
        }
        if Instant::now() > deadline {
            bail!("the erasure did not complete: {progress}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let services: Vec<&str> =
        progress["services"].as_object().map(|s| s.keys().map(String::as_str).collect()).unwrap_or_default();
    say(format!(
        "\ncustomer {customer_id} erased (erasure {}): done by {}",
        erasure["erasure_id"].as_str().unwrap_or_default(),
        services.join(", ")
    ));
    let (first, _, _) = &orders[0];
    let view =
        client.expect(Method::GET, &format!("/api/v1/orders/{first}"), Some(&admin), None, None).await?;
    say(format!(
        "order {first} is kept as a business record; its customer reads {}",
        view["customer"]["name"]
    ));
    if args.json {
        let report = json!({"customer": {"id": customer_id, "email": email}, "orders": outcomes,
            "ticket": ticket["id"], "erasure": {"id": erasure["erasure_id"], "done_by": services},
            "kept_order": {"id": first, "customer_name": view["customer"]["name"]}});
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
