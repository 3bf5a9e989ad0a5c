//! End-to-end tests: the real `tessera` binary, started as a user would start it, spoken to
//! over real HTTP.

mod http;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::request;

fn tessera() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
}

#[test]
fn help_lists_the_subcommands() {
    let output = tessera().arg("--help").output().expect("run tessera --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for subcommand in ["up", "dlq", "bench"] {
        assert!(help.contains(subcommand), "--help lacks `{subcommand}`:\n{help}");
    }
}

#[test]
fn an_unknown_subcommand_fails_with_a_usage_error() {
    let output = tessera().arg("frobnicate").output().expect("run tessera");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unrecognized subcommand"));
}

/// A running `tessera up`, killed when dropped.
struct Up {
    child: Child,
    base: String,
}

impl Up {
    fn start(data: &Path) -> Self {
        let mut child = tessera()
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--payment-timeout",
                "2",
                "--slow-card-delay",
                "5",
                "--data",
            ])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tessera up");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines.next().expect("up printed its address before exiting").expect("read stdout");
            if let Some(base) = line.strip_prefix("listening on ") {
                break base.trim().to_owned();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, base }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        request(&self.base, method, path, body.as_ref())
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn status(&self, order: &str) -> Value {
        let (code, body) = self.call("GET", &format!("/api/v1/orders/{order}"), None);
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Waits until every order is out of `pending`, returning each final view.
    fn settle(&self, orders: &[String], within: Duration) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let views: Vec<Value> = orders.iter().map(|o| self.status(o)).collect();
            if views.iter().all(|v| v["status"] != "pending") {
                return views;
            }
            assert!(started.elapsed() < within, "orders still pending after {within:?}: {views:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token(up: &Up, customer: &str, number: &str) -> String {
    let card = json!({"customer_id": customer, "card_number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"});
    let (code, body) = up.call("POST", "/api/v1/payment-methods", Some(card));
    assert_eq!(code, 201, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

fn place(up: &Up, customer: &str, token: &str, sku: &str, quantity: u32) -> String {
    let order = json!({"customer_id": customer, "items": [{"sku": sku, "quantity": quantity}], "payment_token": token});
    let (code, body) = up.call("POST", "/api/v1/orders", Some(order));
    assert_eq!(code, 202, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

fn available(up: &Up, sku: &str) -> i64 {
    let (code, body) = up.call("GET", &format!("/api/v1/products/{sku}"), None);
    assert_eq!(code, 200, "{body}");
    body["available"].as_i64().expect("available")
}

#[test]
fn up_serves_the_shop_and_orders_interrupted_by_kill_9_complete_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let up = Up::start(&data);
    assert_eq!(up.call("GET", "/health", None).0, 200);
    assert_eq!(up.call("GET", "/ready", None).0, 200);
    let (code, openapi) = up.call("GET", "/openapi.json", None);
    assert_eq!(code, 200);
    assert!(
        openapi["paths"]["/api/v1/orders/{id}/history"]["get"].is_object(),
        "the document covers the routes"
    );

    let (code, products) = up.call("GET", "/api/v1/products", None);
    assert_eq!(code, 200);
    assert!(products["items"].as_array().expect("items").iter().any(|p| p["sku"] == "TEA-001"), "{products}");
    let tea_before = available(&up, "TEA-001");

    let customer = "0195f2a8-5f7e-7c3a-9d3e-3b1f6a0c2d11";
    let approved = token(&up, customer, "4242424242424242");
    let declined = token(&up, customer, "4000000000000002");
    let ok = place(&up, customer, &approved, "TEA-001", 2);
    let no = place(&up, customer, &declined, "TEA-001", 1);
    let views = up.settle(&[ok.clone(), no.clone()], Duration::from_secs(20));
    assert_eq!(views[0]["status"], "confirmed", "{}", views[0]);
    assert_eq!(views[0]["total"], json!({"amount": 1700, "currency": "EUR"}));
    assert_eq!(
        (views[1]["status"].clone(), views[1]["reason"].clone()),
        (json!("rejected"), json!("payment_declined"))
    );
    let (_, payments) = up.call("GET", &format!("/api/v1/payments?order_id={ok}"), None);
    assert_eq!(payments[0]["status"], "captured", "{payments}");

    // Orders in flight when the process dies. The slow card answers after 5 s and the payment
    // timeout is 2 s, so those two are certainly mid-saga at the kill: their timeout timers
    // must survive it and reject them after the restart, releasing their stock.
    let slow = token(&up, customer, "4000000000003220");
    let mugs_before = available(&up, "MUG-001");
    let in_flight: Vec<String> = (0..5).map(|_| place(&up, customer, &approved, "MUG-001", 1)).collect();
    let timing_out: Vec<String> = (0..2).map(|_| place(&up, customer, &slow, "MUG-001", 1)).collect();
    up.kill();

    let up = Up::start(&data);
    let views = up.settle(&in_flight, Duration::from_secs(30));
    assert!(views.iter().all(|v| v["status"] == "confirmed"), "{views:?}");
    let views = up.settle(&timing_out, Duration::from_secs(30));
    for view in &views {
        assert_eq!(
            (view["status"].clone(), view["reason"].clone()),
            (json!("rejected"), json!("payment_timeout")),
            "{view}"
        );
        let (_, payments) = up.call(
            "GET",
            &format!("/api/v1/payments?order_id={}", view["id"].as_str().unwrap_or_default()),
            None,
        );
        assert!(
            payments.as_array().is_some_and(|p| p.iter().all(|p| p["status"] != "captured")),
            "{payments}"
        );
    }
    // The release is the compensation that follows the rejection: wait for it.
    let started = Instant::now();
    while available(&up, "MUG-001") != mugs_before - 5 {
        assert!(started.elapsed() < Duration::from_secs(20), "the timed-out orders' mugs come back");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(available(&up, "TEA-001"), tea_before - 2, "the declined order's stock came back");
    let (_, list) =
        up.call("GET", &format!("/api/v1/orders?customer_id={customer}&status=confirmed&limit=200"), None);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(6), "{list}");
    let (code, products) = up.call("GET", "/api/v1/products?limit=200", None);
    assert_eq!(code, 200);
    let skus: Vec<_> =
        products["items"].as_array().expect("items").iter().map(|p| p["sku"].clone()).collect();
    let mut unique = skus.clone();
    unique.dedup();
    assert_eq!(skus, unique, "seeding twice added nothing twice");

    // Cancelling a confirmed order refunds and restocks it; a second cancel is a conflict.
    let (code, _) = up.call("POST", &format!("/api/v1/orders/{ok}/cancel"), None);
    assert_eq!(code, 202);
    let started = Instant::now();
    while up.status(&ok)["status"] != "cancelled" {
        assert!(started.elapsed() < Duration::from_secs(20), "the cancellation completes");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(available(&up, "TEA-001"), tea_before, "restocked");
    let (code, problem) = up.call("POST", &format!("/api/v1/orders/{ok}/cancel"), None);
    assert_eq!((code, problem["code"].clone()), (409, json!("already_cancelled")));

    // Support's replica of the order follows the orders service's events.
    let ticket =
        json!({"customer_id": customer, "order_id": ok, "subject": "Refund?", "message": "I cancelled it."});
    let (code, opened) = up.call("POST", "/api/v1/tickets", Some(ticket));
    assert_eq!(code, 201, "{opened}");
    let ticket_path = format!("/api/v1/tickets/{}", opened["id"].as_str().unwrap_or_default());
    let started = Instant::now();
    while up.call("GET", &ticket_path, None).1["order"]["status"] != "cancelled" {
        assert!(started.elapsed() < Duration::from_secs(20), "support's replica catches up");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Rebuilding the order summaries on the running system changes nothing a client sees.
    let listing = format!("/api/v1/orders?customer_id={customer}&limit=200");
    let (_, before) = up.call("GET", &listing, None);
    let rebuilt = tessera()
        .args(["projections", "rebuild", "orders", "order_summaries", "--wait", "--timeout", "60", "--data"])
        .arg(&data)
        .output()
        .expect("run tessera projections rebuild");
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    assert!(String::from_utf8_lossy(&rebuilt.stdout).contains("rebuilt in"));
    let (_, after) = up.call("GET", &listing, None);
    assert_eq!(before, after);
    let listed =
        tessera().args(["projections", "list", "--json", "--data"]).arg(&data).output().expect("list");
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("json");
    let summaries =
        listed.as_array().and_then(|l| l.iter().find(|p| p["name"] == "order_summaries")).expect("listed");
    assert!(summaries["rebuilds"].as_u64() >= Some(2), "the migration's rebuild and ours: {summaries}");
    assert_eq!(summaries["lag_events"], 0);

    // SIGTERM stops it cleanly and promptly.
    let mut up = up;
    let pid = up.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("send SIGTERM");
    assert!(sent.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = up.child.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "up stops within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "a graceful stop exits 0: {status}");
}

#[test]
fn bad_requests_to_up_get_problem_json_never_a_500() {
    let dir = tempfile::tempdir().expect("temp dir");
    let up = Up::start(&dir.path().join("data"));
    for (method, path, body) in [
        ("GET", "/api/v1/nowhere", None),
        ("POST", "/api/v1/orders", Some(json!({"items": []}))),
        ("POST", "/api/v1/orders", Some(json!({"customer_id": "x", "items": [], "payment_token": "t"}))),
        ("GET", "/api/v1/orders/not-a-uuid", None),
        ("GET", "/api/v1/orders?limit=1000", None),
        (
            "POST",
            "/api/v1/products",
            Some(
                json!({"sku": "TEA-001", "name": "x", "price": {"amount": 1, "currency": "EUR"}, "stock": 1}),
            ),
        ),
        ("DELETE", "/api/v1/products/TEA-001", None),
    ] {
        let (code, problem) = up.call(method, path, body);
        assert!((400..500).contains(&code), "{method} {path} → {code} {problem}");
        assert!(problem["code"].is_string() && problem["status"] == code, "{method} {path} → {problem}");
    }
    let huge = format!("{{\"sku\":\"{}\"}}", "A".repeat(1024 * 1024 + 10));
    let (code, problem) = http::request_raw(&up.base, "POST", "/api/v1/products", Some(huge.as_bytes()));
    assert_eq!((code, problem["code"].clone()), (413, json!("body_too_large")));
}
