//! End-to-end tests: the real `tessera` binary, started as a user would start it, spoken to
//! over real HTTP.

mod authz;
mod browser;
mod chaos;
mod distributed;
mod errors;
mod forged_messages;
mod gateway_documents;
mod governance;
mod http;
mod inside_attacker;
mod operator_tools;
mod privacy;
mod prometheus;
mod readme_distributed;
mod rotation;
mod sign_in;
mod top;
mod traces;
mod verify;
mod waiting;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::request;

/// Held by each test that starts a distributed system of its own: each such system keeps tens
/// of PostgreSQL connections open, and several at once exceed the server's limit.
static DISTRIBUTED_SYSTEM: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The turn of a test that starts a distributed system (one at a time; a panicking holder
/// still passes it on).
fn distributed_turn() -> std::sync::MutexGuard<'static, ()> {
    DISTRIBUTED_SYSTEM.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

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

#[test]
fn serve_reads_its_flags_from_the_configuration_file_and_names_a_wrong_key() {
    let dir = tempfile::tempdir().expect("a folder");
    let file = dir.path().join("tessera.toml");
    std::fs::write(
        &file,
        "[serve]\nnats_url = \"nats://127.0.0.1:4222\"\n[serve.orders]\nlisten = \"nowhere\"\n",
    )
    .expect("write");
    let output = tessera().args(["serve", "orders", "--config"]).arg(&file).output().expect("run serve");
    assert_eq!(output.status.code(), Some(2), "a bad value from the file is a usage error");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--listen") && stderr.contains("nowhere"), "{stderr}");

    std::fs::write(&file, "[serve]\nnats_urll = \"nats://127.0.0.1:4222\"\n").expect("write");
    let output = tessera().args(["serve", "orders", "--config"]).arg(&file).output().expect("run serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("[serve] nats_urll is not a setting"), "{stderr}");
}

/// A running `tessera up`, killed when dropped.
struct Up {
    child: Child,
    base: String,
}

impl Up {
    fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    fn start_with(data: &Path, extra: &[&str]) -> Self {
        Self::spawn(data, extra, None)
    }

    /// Started with every log line (at info) written to `log`, stdout and stderr alike.
    fn start_logged(data: &Path, log: &Path) -> Self {
        Self::spawn(data, &[], Some(log))
    }

    fn spawn(data: &Path, extra: &[&str], log: Option<&Path>) -> Self {
        let stderr = match log {
            Some(path) => {
                Stdio::from(std::fs::File::create(path.with_extension("stderr")).expect("log file"))
            }
            None => Stdio::inherit(),
        };
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
            .args(extra)
            .env("RUST_LOG", if log.is_some() { "info" } else { "warn" })
            .stdout(Stdio::piped())
            .stderr(stderr)
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
        let mut copy = log.map(|path| std::fs::File::create(path).expect("log file"));
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(file) = copy.as_mut() {
                    let _ = writeln!(file, "{line}");
                }
            }
        });
        Self { child, base }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        request(&self.base, method, path, body.as_ref(), &[])
    }

    fn call_as(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let bearer = format!("Bearer {token}");
        request(&self.base, method, path, body.as_ref(), &[("Authorization", &bearer)])
    }

    /// A token for the demo admin or for a customer, by email and password.
    fn sign_in(&self, email: &str, password: &str) -> String {
        let (code, body) =
            self.call("POST", "/api/v1/auth/token", Some(json!({"email": email, "password": password})));
        assert_eq!(code, 200, "{body}");
        body["access_token"].as_str().expect("token").to_owned()
    }

    /// Registers a customer and signs them in: (customer id, token).
    fn customer(&self, email: &str) -> (String, String) {
        let registration = json!({"email": email, "name": "Ada Lovelace", "password": "correct horse battery",
            "address": {"line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB"}});
        let (code, body) = self.call("POST", "/api/v1/customers", Some(registration));
        assert_eq!(code, 201, "{body}");
        let id = body["id"].as_str().expect("id").to_owned();
        (id, self.sign_in(email, "correct horse battery"))
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn status(&self, token: &str, order: &str) -> Value {
        let (code, body) = self.call_as(token, "GET", &format!("/api/v1/orders/{order}"), None);
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Waits until every order is out of `pending`, returning each final view.
    fn settle(&self, token: &str, orders: &[String], within: Duration) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let views: Vec<Value> = orders.iter().map(|o| self.status(token, o)).collect();
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

fn card(up: &Up, bearer: &str, number: &str) -> String {
    let card = json!({"card_number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"});
    let (code, body) = up.call_as(bearer, "POST", "/api/v1/payment-methods", Some(card));
    assert_eq!(code, 201, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

fn place(up: &Up, bearer: &str, card: &str, sku: &str, quantity: u32) -> String {
    let order = json!({"items": [{"sku": sku, "quantity": quantity}], "payment_token": card});
    let key = uuid_like();
    let auth = format!("Bearer {bearer}");
    let headers = [("Authorization", auth.as_str()), ("Idempotency-Key", key.as_str())];
    let (code, body) = request(&up.base, "POST", "/api/v1/orders", Some(&order), &headers);
    assert_eq!(code, 202, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

/// A fresh idempotency key.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("key-{nanos}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The customer id inside a token (its `sub`), read without verifying: a test helper.
fn uuid_of(_up: &Up, token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url"),
    )
    .expect("claims");
    claims["sub"].as_str().expect("sub").to_owned()
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

    let (customer, me) = up.customer("ada@example.com");
    let approved = card(&up, &me, "4242424242424242");
    let declined = card(&up, &me, "4000000000000002");
    let ok = place(&up, &me, &approved, "TEA-001", 2);
    let no = place(&up, &me, &declined, "TEA-001", 1);
    let views = up.settle(&me, &[ok.clone(), no.clone()], Duration::from_secs(20));
    assert_eq!(views[0]["status"], "confirmed", "{}", views[0]);
    assert_eq!(views[0]["total"], json!({"amount": 1700, "currency": "EUR"}));
    assert_eq!(views[0]["customer"]["name"], "Ada Lovelace", "the composed view names the customer");
    // Capture follows confirmation (a retriable saga step): wait for it.
    let started = Instant::now();
    while up.status(&me, &ok)["payment"]["status"] != "captured" {
        assert!(started.elapsed() < Duration::from_secs(20), "the confirmed order is captured");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(views[0]["degraded"], json!([]));
    assert_eq!(
        (views[1]["status"].clone(), views[1]["reason"].clone()),
        (json!("rejected"), json!("payment_declined"))
    );
    let (_, payments) = up.call_as(&me, "GET", &format!("/api/v1/payments?order_id={ok}"), None);
    assert_eq!(payments[0]["status"], "captured", "{payments}");

    // Another customer cannot see the order; staff can, and only staff read its history.
    let (_, eve) = up.customer("eve@example.com");
    assert_eq!(up.call_as(&eve, "GET", &format!("/api/v1/orders/{ok}"), None).0, 404);
    assert_eq!(up.call_as(&eve, "GET", &format!("/api/v1/orders/{ok}/history"), None).0, 403);
    let admin = up.sign_in("admin@tessera.local", "admin");
    assert_eq!(up.call_as(&admin, "GET", &format!("/api/v1/orders/{ok}"), None).0, 200);
    let (code, history) = up.call_as(&admin, "GET", &format!("/api/v1/orders/{ok}/history"), None);
    assert_eq!((code, history["events"][0]["name"].clone()), (200, json!("orders.Placed")));
    assert_eq!(up.call("GET", &format!("/api/v1/orders/{ok}"), None).0, 401, "no token, no order");

    // Orders in flight when the process dies. The slow card answers after 5 s and the payment
    // timeout is 2 s, so those two are certainly mid-saga at the kill: their timeout timers
    // must survive it and reject them after the restart, releasing their stock.
    let slow = card(&up, &me, "4000000000003220");
    let mugs_before = available(&up, "MUG-001");
    let in_flight: Vec<String> = (0..5).map(|_| place(&up, &me, &approved, "MUG-001", 1)).collect();
    let timing_out: Vec<String> = (0..2).map(|_| place(&up, &me, &slow, "MUG-001", 1)).collect();
    up.kill();

    let up = Up::start(&data);
    // The signing key is kept in the gateway's store: tokens survive the restart.
    let views = up.settle(&me, &in_flight, Duration::from_secs(30));
    assert!(views.iter().all(|v| v["status"] == "confirmed"), "{views:?}");
    let views = up.settle(&me, &timing_out, Duration::from_secs(30));
    for view in &views {
        assert_eq!(
            (view["status"].clone(), view["reason"].clone()),
            (json!("rejected"), json!("payment_timeout")),
            "{view}"
        );
        let (_, payments) = up.call_as(
            &me,
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
    let (_, list) = up.call_as(&me, "GET", "/api/v1/orders?status=confirmed&limit=200", None);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(6), "{list}");
    let (code, _) =
        up.call_as(&me, "GET", &format!("/api/v1/orders?customer_id={}", uuid_of(&up, &eve)), None);
    assert_eq!(code, 403, "a customer lists only their own orders");
    let (code, products) = up.call("GET", "/api/v1/products?limit=200", None);
    assert_eq!(code, 200);
    let skus: Vec<_> =
        products["items"].as_array().expect("items").iter().map(|p| p["sku"].clone()).collect();
    let mut unique = skus.clone();
    unique.dedup();
    assert_eq!(skus, unique, "seeding twice added nothing twice");

    // Cancelling a confirmed order refunds and restocks it; a second cancel is a conflict.
    let (code, _) = up.call_as(&me, "POST", &format!("/api/v1/orders/{ok}/cancel"), None);
    assert_eq!(code, 202);
    let started = Instant::now();
    while up.status(&me, &ok)["status"] != "cancelled" {
        assert!(started.elapsed() < Duration::from_secs(20), "the cancellation completes");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(available(&up, "TEA-001"), tea_before, "restocked");
    let (code, problem) = up.call_as(&me, "POST", &format!("/api/v1/orders/{ok}/cancel"), None);
    assert_eq!((code, problem["code"].clone()), (409, json!("already_cancelled")));

    // Support's replica of the order follows the orders service's events.
    let ticket = json!({"order_id": ok, "subject": "Refund?", "message": "I cancelled it."});
    let (code, opened) = up.call_as(&me, "POST", "/api/v1/tickets", Some(ticket));
    assert_eq!(code, 201, "{opened}");
    let ticket_path = format!("/api/v1/tickets/{}", opened["id"].as_str().unwrap_or_default());
    let started = Instant::now();
    while up.call_as(&me, "GET", &ticket_path, None).1["order"]["status"] != "cancelled" {
        assert!(started.elapsed() < Duration::from_secs(20), "support's replica catches up");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(up.call_as(&eve, "GET", &ticket_path, None).0, 404, "another customer's ticket");

    // Rebuilding the order summaries on the running system changes nothing a client sees.
    let listing = "/api/v1/orders?limit=200";
    let (_, before) = up.call_as(&me, "GET", listing, None);
    let rebuilt = tessera()
        .args(["projections", "rebuild", "orders", "order_summaries", "--wait", "--timeout", "60", "--data"])
        .arg(&data)
        .output()
        .expect("run tessera projections rebuild");
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    assert!(String::from_utf8_lossy(&rebuilt.stdout).contains("rebuilt in"));
    let (_, after) = up.call_as(&me, "GET", listing, None);
    assert_eq!(before, after);
    let listed =
        tessera().args(["projections", "list", "--json", "--data"]).arg(&data).output().expect("list");
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("json");
    let summaries =
        listed.as_array().and_then(|l| l.iter().find(|p| p["name"] == "order_summaries")).expect("listed");
    assert!(summaries["rebuilds"].as_u64() >= Some(2), "the migration's rebuild and ours: {summaries}");
    assert_eq!(summaries["lag_events"], 0);
    let _ = customer;

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
    let admin = up.sign_in("admin@tessera.local", "admin");
    let (_, me) = up.customer("grace@example.com");
    let product =
        |sku: &str| json!({"sku": sku, "name": "x", "price": {"amount": 1, "currency": "EUR"}, "stock": 1});
    for (token, method, path, body, expected) in [
        (None, "GET", "/api/v1/nowhere", None, 404),
        (None, "POST", "/api/v1/orders", Some(json!({"items": []})), 401),
        (Some(&me), "POST", "/api/v1/orders", Some(json!({"items": []})), 400),
        (Some(&admin), "GET", "/api/v1/orders/not-a-uuid", None, 404),
        (Some(&admin), "GET", "/api/v1/orders?limit=1000", None, 422),
        (Some(&me), "POST", "/api/v1/products", Some(product("TEA-009")), 403),
        (Some(&admin), "POST", "/api/v1/products", Some(product("TEA-001")), 409),
        (None, "DELETE", "/api/v1/products/TEA-001", None, 405),
        (
            None,
            "POST",
            "/api/v1/auth/token",
            Some(json!({"email": "admin@tessera.local", "password": "wrong"})),
            401,
        ),
        (
            None,
            "POST",
            "/api/v1/auth/token",
            Some(json!({"email": "nobody@example.com", "password": "wrong"})),
            401,
        ),
    ] {
        let (code, problem) = match token {
            Some(token) => up.call_as(token, method, path, body),
            None => up.call(method, path, body),
        };
        assert_eq!(code, expected, "{method} {path} → {problem}");
        assert!(problem["code"].is_string() && problem["status"] == code, "{method} {path} → {problem}");
    }
    // The public document and its viewer, served offline.
    let (code, document) = up.call("GET", "/openapi.json", None);
    assert_eq!(code, 200);
    // Every endpoint of API.md the gateway serves, with the errors any call may meet.
    let endpoints = [
        ("post", "/api/v1/auth/token"),
        ("get", "/.well-known/jwks.json"),
        ("get", "/api/v1/products"),
        ("post", "/api/v1/products"),
        ("get", "/api/v1/products/{sku}"),
        ("patch", "/api/v1/products/{sku}"),
        ("post", "/api/v1/products/{sku}/stock"),
        ("post", "/api/v1/customers"),
        ("get", "/api/v1/customers/{id}"),
        ("patch", "/api/v1/customers/{id}"),
        ("get", "/api/v1/customers/{id}/export"),
        ("delete", "/api/v1/customers/{id}"),
        ("get", "/api/v1/customers/{id}/erasure"),
        ("post", "/api/v1/admin/audit/verify"),
        ("get", "/api/v1/admin/analytics/sales"),
        ("post", "/api/v1/payment-methods"),
        ("get", "/api/v1/payments"),
        ("post", "/api/v1/orders"),
        ("get", "/api/v1/orders"),
        ("get", "/api/v1/orders/{id}"),
        ("post", "/api/v1/orders/{id}/cancel"),
        ("get", "/api/v1/orders/{id}/history"),
        ("post", "/api/v1/tickets"),
        ("get", "/api/v1/tickets"),
        ("get", "/api/v1/tickets/{id}"),
        ("post", "/api/v1/tickets/{id}/messages"),
        ("post", "/api/v1/tickets/{id}/close"),
        ("post", "/api/v1/tickets/{id}/attachments"),
        ("get", "/api/v1/tickets/{id}/attachments"),
        ("get", "/api/v1/tickets/{id}/attachments/{attachment_id}"),
        ("post", "/graphql"),
        ("get", "/api/v1/admin/services"),
        ("get", "/api/v1/admin/metrics"),
        ("get", "/api/v1/admin/dlq"),
        ("post", "/api/v1/admin/dlq/{id}/retry"),
        ("delete", "/api/v1/admin/dlq/{id}"),
        ("get", "/api/v1/admin/sagas"),
        ("get", "/api/v1/admin/sagas/{id}"),
        ("post", "/api/v1/admin/projections/{name}/rebuild"),
        ("get", "/health"),
        ("get", "/ready"),
    ];
    for (method, path) in endpoints {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is documented");
        for status in ["401", "429", "503"] {
            assert!(
                operation["responses"][status]["content"]["application/problem+json"].is_object(),
                "{method} {path} documents {status} as problem+json"
            );
        }
    }
    let composed = &document["paths"]["/api/v1/orders/{id}"]["get"]["responses"]["200"];
    assert!(composed.to_string().contains("ComposedOrder"), "the gateway's own view: {composed}");
    let place = document["paths"]["/api/v1/orders"]["post"]["parameters"].to_string();
    assert!(place.contains("Idempotency-Key"), "{place}");
    let body =
        &document["paths"]["/api/v1/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["required"], json!(["items", "payment_token"]), "API.md's body: {body}");
    assert!(body["properties"]["country"].is_null() && body["properties"]["items"].is_object(), "{body}");
    assert!(document["paths"]["/api/v1/customers/credentials"].is_null(), "internal routes are not public");
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let (code, page) = up.call("GET", "/docs/", None);
    assert_eq!(code, 200);
    assert!(page.as_str().is_some_and(|html| html.contains("swagger")), "Swagger UI: {page}");

    // Path segments and tokens never smuggle anything into a service's path.
    let some_order = "0195f2a8-5f7e-7c3a-9d3e-3b1f6a0c2d11";
    for path in [
        "/api/v1/orders/%20",
        &format!("/api/v1/orders/{some_order}%2Fcancel"),
        "/api/v1/products/..%2Forders",
    ] {
        let (code, problem) = up.call_as(&admin, "GET", path, None);
        assert_eq!((code, problem["code"].clone()), (404, json!("not_found")), "{path}");
    }
    let mine = format!("Bearer {me}");
    let order_headers = [("Authorization", mine.as_str()), ("Idempotency-Key", "bad-1")];
    let smuggled = json!({"items": [{"sku": "TEA-001", "quantity": 1}], "payment_token": "tok_x#y"});
    let (code, problem) = request(&up.base, "POST", "/api/v1/orders", Some(&smuggled), &order_headers);
    assert_eq!((code, problem["errors"][0]["field"].clone()), (422, json!("payment_token")), "{problem}");
    let many: Vec<Value> = (0..101).map(|n| json!({"sku": format!("SKU-{n:04}"), "quantity": 1})).collect();
    let order_headers = [("Authorization", mine.as_str()), ("Idempotency-Key", "bad-2")];
    let (code, problem) = request(
        &up.base,
        "POST",
        "/api/v1/orders",
        Some(&json!({"items": many, "payment_token": "tok_x"})),
        &order_headers,
    );
    assert_eq!((code, problem["errors"][0]["field"].clone()), (422, json!("items")), "{problem}");
    let order_headers = [("Authorization", mine.as_str()), ("Idempotency-Key", "bad-3")];
    let huge_order = format!("{{\"items\":\"{}\"}}", "A".repeat(1024 * 1024 + 10));
    let (code, problem) =
        http::request_raw(&up.base, "POST", "/api/v1/orders", Some(huge_order.as_bytes()), &order_headers);
    assert_eq!((code, problem["code"].clone()), (413, json!("body_too_large")));

    let huge = format!("{{\"sku\":\"{}\"}}", "A".repeat(1024 * 1024 + 10));
    let bearer = format!("Bearer {admin}");
    let (code, problem) = http::request_raw(
        &up.base,
        "POST",
        "/api/v1/products",
        Some(huge.as_bytes()),
        &[("Authorization", &bearer)],
    );
    assert_eq!((code, problem["code"].clone()), (413, json!("body_too_large")));
}

#[test]
fn up_serves_tls_1_2_or_newer_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let up = Up::start_with(&data, &["--tls-self-signed"]);
    assert!(up.base.starts_with("https://"), "{}", up.base);
    let certificate = data.join("tls").join("self-signed.pem");
    let curl = Command::new("curl")
        .args(["--silent", "--show-error", "--include", "--cacert"])
        .arg(&certificate)
        .arg(format!("{}/api/v1/products?limit=1", up.base))
        .output()
        .expect("run curl");
    let answer = String::from_utf8_lossy(&curl.stdout).to_ascii_lowercase();
    assert!(curl.status.success(), "{}", String::from_utf8_lossy(&curl.stderr));
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("strict-transport-security: max-age="), "{answer}");
    let untrusted =
        Command::new("curl").args(["--silent", &format!("{}/health", up.base)]).status().expect("curl");
    assert!(!untrusted.success(), "without the certificate the connection is refused by the client");

    let authority = up.base.trim_start_matches("https://").to_owned();
    let handshake = |version: &str| {
        Command::new("openssl")
            .args(["s_client", "-connect", &authority, version])
            .stdin(Stdio::null())
            .output()
            .expect("run openssl")
    };
    let old = handshake("-tls1_1");
    let text = String::from_utf8_lossy(&old.stdout);
    assert!(text.contains("Cipher is (NONE)"), "TLS 1.1 is refused: {text}");
    let tls12 = handshake("-tls1_2");
    let text = String::from_utf8_lossy(&tls12.stdout);
    assert!(text.contains("New, TLSv1.2, Cipher is ECDHE"), "TLS 1.2 is accepted: {text}");
}

#[test]
fn demo_runs_its_scenario_against_a_running_system() {
    let dir = tempfile::tempdir().expect("temp dir");
    let up = Up::start(&dir.path().join("data"));
    let output =
        tessera().args(["demo", "--url", &up.base, "--timeout", "60"]).output().expect("run tessera demo");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}\n{}", String::from_utf8_lossy(&output.stderr));
    for expected in [
        "approved                   cancelled",
        "declined                   rejected (payment_declined)",
        "insufficient funds         rejected (payment_declined)",
        "transient error, retried   confirmed",
        "slow, times out            rejected (payment_timeout)",
        "orders.Placed",
        "ticket ",
        "erased (erasure ",
        "done by customers, orders, payments, support",
        "its customer reads \"[erased]\"",
    ] {
        assert!(printed.contains(expected), "the demo prints {expected:?}:\n{printed}");
    }
    let output = tessera()
        .args(["demo", "--url", &up.base, "--timeout", "60", "--json"])
        .output()
        .expect("run tessera demo --json");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("only one JSON object on stdout");
    let outcomes: Vec<(&str, &str)> = report["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| (o["scenario"].as_str().unwrap_or_default(), o["status"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(outcomes[0], ("approved", "cancelled"), "{report}");
    assert_eq!(outcomes[3], ("transient error, retried", "confirmed"), "{report}");
    assert_eq!(report["erasure"]["done_by"], json!(["customers", "orders", "payments", "support"]));
}

#[test]
fn configuration_layers_defaults_file_environment_and_flags() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("tessera.toml");
    std::fs::write(&file, "payment_timeout_seconds = 3.0\nlisten = \"127.0.0.1:9999\"\n[gateway]\ncors_origins = [\"https://shop.example\"]\n")
        .expect("write");
    let print = |extra: &[&str], env: &[(&str, &str)]| {
        let mut command = tessera();
        command.args(["config", "print", "--config"]).arg(&file).args(extra);
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().expect("run tessera config print")
    };
    let output = print(&[], &[]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("payment_timeout_seconds = 3.0"), "the file: {text}");
    assert!(text.contains("slow_card_delay_seconds = 15.0"), "a default: {text}");
    assert!(text.contains("https://shop.example"), "a nested key from the file: {text}");
    assert!(
        text.contains("password = \"***\"") && !text.contains("\"admin\"\nrole"),
        "secrets hidden: {text}"
    );
    let output = print(
        &["--listen", "127.0.0.1:7777"],
        &[("TESSERA_LISTEN", "127.0.0.1:8888"), ("TESSERA_SLOW_CARD_DELAY_SECONDS", "2.5")],
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("listen = \"127.0.0.1:7777\""),
        "the flag beats the environment and the file: {text}"
    );
    assert!(text.contains("slow_card_delay_seconds = 2.5"), "the environment beats the default: {text}");

    std::fs::write(&file, "listne = \"127.0.0.1:1\"\n").expect("write");
    let output = print(&[], &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("listne"), "the unknown key is named");
    std::fs::write(&file, "[tls]\ncert = \"c.pem\"\n").expect("write");
    let output = print(&[], &[]);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("tls.cert and tls.key"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `tessera audit verify --json` on a data folder.
fn audit_verify(data: &Path) -> (bool, Value) {
    let output = tessera()
        .args(["audit", "verify", "--json", "--data"])
        .arg(data)
        .output()
        .expect("run tessera audit verify");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (output.status.success(), report)
}

/// Runs one SQL statement on a stopped system's customers database, as an intruder would.
fn tamper(data: &Path, sql: &str) {
    let config = tessera_store::StoreConfig::Sqlite {
        path: data.join("customers.db"),
        options: tessera_store::SqliteOptions::default(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let store = tessera_store::Store::open(&config, &[]).await.expect("open customers.db");
        let mut unit = store.begin();
        unit.execute(tessera_store::Statement::new(sql));
        unit.commit().await.expect("tamper");
    });
}

fn customers_report(report: &Value) -> Value {
    report["services"]
        .as_array()
        .and_then(|s| s.iter().find(|r| r["service"] == "customers"))
        .cloned()
        .unwrap_or_default()
}

#[test]
fn audit_trails_verify_and_tampering_is_found_at_its_index() {
    let data = tempfile::tempdir().expect("temp dir");
    let up = Up::start(data.path());
    let (customer, me) = up.customer("audit@example.com");
    assert_eq!(up.call_as(&me, "GET", &format!("/api/v1/customers/{customer}"), None).0, 200);
    let token = card(&up, &me, "4242424242424242");
    let order = place(&up, &me, &token, "TEA-001", 1);
    let ticket = json!({"order_id": order, "subject": "Where is it?", "message": "Hello"});
    let (code, ticket) = up.call_as(&me, "POST", "/api/v1/tickets", Some(ticket));
    assert_eq!(code, 201, "{ticket}");
    let ticket_path = format!("/api/v1/tickets/{}", ticket["id"].as_str().expect("ticket id"));
    assert_eq!(up.call_as(&me, "GET", &ticket_path, None).0, 200);
    let admin = up.sign_in("admin@tessera.local", "admin");
    let (code, report) = up.call_as(&admin, "POST", "/api/v1/admin/audit/verify", None);
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    // Every service keeps a trail: the seeded catalogue, the card, the order, the ticket.
    for service in report["services"].as_array().expect("services") {
        assert!(service["records"].as_u64().is_some_and(|n| n >= 1), "{service}");
    }
    let support = report["services"].as_array().and_then(|s| s.iter().find(|r| r["service"] == "support"));
    assert!(
        support.and_then(|s| s["records"].as_u64()).is_some_and(|n| n >= 2),
        "the ticket's opening and its reading: {report}"
    );
    let customers = customers_report(&report);
    // Registration, the sign-in and the profile read, with the caller named.
    assert!(customers["records"].as_u64().is_some_and(|n| n >= 3), "{report}");
    let (code, _) = up.call_as(&me, "POST", "/api/v1/admin/audit/verify", None);
    assert_eq!(code, 403, "customers may not run the check");
    up.kill();

    let (ok, report) = audit_verify(data.path());
    assert!(ok, "an untouched trail verifies: {report}");
    assert!(customers_report(&report)["records"].as_u64().is_some_and(|n| n >= 3), "{report}");

    // Someone rewrites who did it, in the first record.
    tamper(data.path(), "UPDATE tessera_audit SET actor = 'someone-else' WHERE idx = 0");
    let (ok, report) = audit_verify(data.path());
    assert!(!ok, "an edit is found: {report}");
    assert_eq!(customers_report(&report)["first_bad_index"], 0, "{report}");

    // A fresh folder's trail, cut short at its end: only the witnessed head can tell.
    let data = tempfile::tempdir().expect("temp dir");
    let up = Up::start(data.path());
    let (customer, me) = up.customer("audit2@example.com");
    assert_eq!(up.call_as(&me, "GET", &format!("/api/v1/customers/{customer}"), None).0, 200);
    let admin = up.sign_in("admin@tessera.local", "admin");
    assert_eq!(up.call_as(&admin, "POST", "/api/v1/admin/audit/verify", None).1["ok"], true);
    up.kill();
    tamper(data.path(), "DELETE FROM tessera_audit WHERE idx = (SELECT MAX(idx) FROM tessera_audit)");
    let (ok, report) = audit_verify(data.path());
    assert!(!ok, "a truncated chain is found against the witnessed head: {report}");
    assert!(customers_report(&report)["first_bad_index"].is_u64(), "{report}");
}
