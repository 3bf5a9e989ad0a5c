//! The distributed topology through the real binary: every service in its own process on its
//! own PostgreSQL database, NATS JetStream between them, the gateway calling them over HTTP.
//! Orders are placed through the gateway, the payments process is killed with SIGKILL mid-run
//! and started again, and every order must still end terminal with money and stock right.
//! The bus is locked down as in production: a nats-server of the test's own with TLS, and one
//! user per service made by `tessera nats auth`.
//! Needs `TESSERA_TEST_POSTGRES`, `TESSERA_TEST_NATS` (the NATS suites on) and nats-server.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::http::{exchange, header, request};
use crate::tessera;

struct Process {
    child: Child,
    base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    postgres: String,
    nats: tessera_testkit::nats::NatsServer,
    /// The folder `tessera nats auth` wrote the services' seeds to.
    nats_credentials: std::path::PathBuf,
    prefix: String,
    /// The gateway's address, chosen before anything starts: every service checks tokens
    /// with the gateway's JWKS.
    gateway: String,
    /// Every process's log lines (at info), one file per start, scanned at the end.
    logs: tempfile::TempDir,
}

impl Cluster {
    fn start(&self, service: &str, listen: &str, extra: &[String]) -> Process {
        let mut child = tessera()
            .args([
                "serve",
                service,
                "--listen",
                listen,
                "--database-url",
                &self.postgres,
                "--database-prefix",
                &self.prefix,
            ])
            .args([
                "--nats-url",
                &self.nats.url(),
                "--nats-namespace",
                &self.prefix,
                "--payment-timeout",
                "5",
            ])
            .arg(format!(
                "--nats-nkey-file={}",
                self.nats_credentials.join(format!("{service}.nk")).display()
            ))
            .arg(format!("--nats-ca={}", self.nats.ca.display()))
            .args(extra)
            .args(
                (service != "gateway")
                    .then(|| format!("--jwks-url=http://{}/.well-known/jwks.json", self.gateway)),
            )
            .env("RUST_LOG", "info")
            // The vault's master key (base64 of 32 bytes), as a Secret would hand it over.
            .env("TESSERA_MASTER_KEY", MASTER_KEY)
            // Support's attachments, in a folder every replica shares.
            .env(
                "TESSERA_ATTACHMENTS_URL",
                format!("file://{}", self.logs.path().join("attachments").display()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                tempfile::Builder::new()
                    .prefix(&format!("{service}-"))
                    .suffix(".log")
                    .tempfile_in(self.logs.path())
                    .expect("a log file")
                    .keep()
                    .expect("keep the log")
                    .0,
            ))
            .spawn()
            .expect("start tessera serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines.next().expect("serve printed its address").expect("read stdout");
            if let Some(base) = line.strip_prefix("listening on ") {
                break base.trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Process { child, base }
    }
}

impl Cluster {
    /// The bus as the operator reaches it.
    fn bus(&self) -> crate::forged_messages::Bus {
        crate::forged_messages::Bus {
            url: self.nats.url(),
            ca: self.nats.ca.clone(),
            credentials: self.nats_credentials.clone(),
            namespace: self.prefix.clone(),
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        for service in ["inventory", "orders", "payments", "customers", "support", "gateway", "vault"] {
            let url = tessera_store::database_url(&self.postgres, &format!("{}_{service}", self.prefix));
            let _ = runtime.block_on(tessera_store::drop_database(&url));
        }
    }
}

fn call(
    base: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (u16, Value) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    if let Some(key) = key {
        headers.push(("Idempotency-Key", key));
    }
    request(base, method, path, body.as_ref(), &headers)
}

#[test]
fn distributed_orders_survive_a_killed_payments_process() {
    let _turn = crate::distributed_turn();
    let (Some(postgres), Some(_), Some(nats_server)) = (
        tessera_testkit::server_url("TESSERA_TEST_POSTGRES", "distributed end-to-end"),
        tessera_testkit::server_url("TESSERA_TEST_NATS", "distributed end-to-end"),
        tessera_testkit::nats::server_binary("distributed end-to-end test"),
    ) else {
        return;
    };
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let gateway_address = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port for the gateway")
        .to_string();
    let prefix = format!("e2e{}", nanos % 1_000_000_000_000);
    let logs = tempfile::tempdir().expect("a log folder");
    // The operator's recipe: credentials for the namespace, then a server that includes them.
    let nats_credentials = logs.path().join("nats");
    let made = tessera()
        .args(["nats", "auth", "--namespace", &prefix, "--out"])
        .arg(&nats_credentials)
        .output()
        .expect("run tessera nats auth");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let nats = tessera_testkit::nats::NatsServer::start(&nats_server, &nats_credentials.join("auth.conf"));
    let cluster =
        Cluster { postgres, nats, nats_credentials, prefix, gateway: gateway_address.clone(), logs };
    let mut services = std::collections::BTreeMap::new();
    for service in ["inventory", "orders", "payments", "customers", "support"] {
        services.insert(service, cluster.start(service, "127.0.0.1:0", &[]));
    }
    let mut urls: Vec<String> =
        services.iter().map(|(name, p)| format!("--service-url={name}={}", p.base)).collect();
    urls.push("--staff=admin:admin@tessera.local:admin".to_owned());
    // The catalogue cache in a Redis of the test's own (so that it can be killed), shared by
    // two gateway replicas.
    let mut redis = tessera_testkit::redis::PrivateRedis::start();
    if let Some(redis) = &redis {
        urls.push(format!("--redis-url={}", redis.url()));
    }
    let gateway = cluster.start("gateway", &gateway_address, &urls);
    let g = gateway.base.as_str();
    let replica = cluster.start("gateway", "127.0.0.1:0", &urls);

    let (code, _) = call(g, None, "GET", "/ready", None, None);
    assert_eq!(code, 200);
    let admin = sign_in(g, "admin@tessera.local", "admin");
    let demo_support = json!({"email": "support@tessera.local", "password": "support"});
    let (code, _) = call(g, None, "POST", "/api/v1/auth/token", Some(demo_support), None);
    assert_eq!(code, 401, "the distributed gateway has no demo users beyond those it is given");
    let product = json!({"sku": "DIST-001", "name": "Distributed tea", "price": {"amount": 500, "currency": "EUR"}, "stock": 100});
    assert_eq!(call(g, Some(&admin), "POST", "/api/v1/products", Some(product), None).0, 201);
    let registration = json!({"email": "dist@example.com", "name": "Dist", "password": "distributed",
        "address": {"line1": "1 Main St", "city": "Oslo", "postal_code": "0150", "country": "NO"}});
    assert_eq!(call(g, None, "POST", "/api/v1/customers", Some(registration), None).0, 201);
    let me = sign_in(g, "dist@example.com", "distributed");
    let card =
        json!({"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": CANARY_CVC});
    let (code, card) = call(g, Some(&me), "POST", "/api/v1/payment-methods", Some(card), None);
    assert_eq!(code, 201, "{card}");
    let card = card["token"].as_str().expect("token").to_owned();

    let place = |n: usize| {
        let body = json!({"items": [{"sku": "DIST-001", "quantity": 1}], "payment_token": card});
        let (code, placed) =
            call(g, Some(&me), "POST", "/api/v1/orders", Some(body), Some(&format!("d-{n}")));
        assert_eq!(code, 202, "{placed}");
        placed["id"].as_str().expect("id").to_owned()
    };
    let mut orders: Vec<String> = (0..10).map(place).collect();
    // Kill payments while these are in flight (their authorisations wait in JetStream), keep it
    // down a moment, then start it again on the same address and place more.
    let payments = services.remove("payments").expect("payments");
    let address = payments.base.trim_start_matches("http://").to_owned();
    drop(payments);
    std::thread::sleep(Duration::from_millis(500));
    let (code, _) = call(
        g,
        Some(&me),
        "POST",
        "/api/v1/orders",
        Some(json!({"items": [{"sku": "DIST-001", "quantity": 1}], "payment_token": card})),
        Some("while-down"),
    );
    assert_eq!(code, 503, "with payments down the token cannot be checked: a retryable 503, not a 4xx");
    services.insert("payments", cluster.start("payments", &address, &[]));
    orders.extend((10..15).map(place));

    let started = Instant::now();
    let keys = gateway_keys(&cluster);
    services_check_tokens_again(&services["orders"].base, &keys, &me, &admin, &orders[0]);
    let views: Vec<Value> = loop {
        let views: Vec<Value> = orders
            .iter()
            .map(|id| call(g, Some(&me), "GET", &format!("/api/v1/orders/{id}"), None, None).1)
            .collect();
        if views.iter().all(|v| v["status"] == "confirmed" || v["status"] == "rejected") {
            break views;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "orders still pending: {views:?}");
        std::thread::sleep(Duration::from_millis(250));
    };
    let confirmed = views.iter().filter(|v| v["status"] == "confirmed").count();
    // Capture follows confirmation (a retriable step of the saga): wait for each.
    for view in views.iter().filter(|v| v["status"] == "confirmed") {
        let id = view["id"].as_str().unwrap_or_default();
        let started = Instant::now();
        loop {
            let (_, payments) =
                call(g, Some(&me), "GET", &format!("/api/v1/payments?order_id={id}"), None, None);
            if payments[0]["status"] == "captured" {
                assert_eq!(payments[0]["amount"]["amount"], 500);
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{id} is captured: {payments}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let started = Instant::now();
    loop {
        let (_, product) = call(g, None, "GET", "/api/v1/products/DIST-001", None, None);
        if product["available"].as_i64() == Some(100 - i64::try_from(confirmed).unwrap_or(0))
            && product["reserved"] == 0
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stock conserved: {product}, {confirmed} confirmed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(confirmed >= 10, "only payments died; the card approves: {confirmed} of {}", orders.len());
    // An admin finds the customer's sagas (their id read out of the sagas' JSON on PostgreSQL)
    // through the gateway and orders' own check of the admin's token, each step timed.
    let first =
        views.iter().find(|v| v["status"] == "confirmed").map(|v| v["id"].clone()).expect("confirmed");
    let search = format!("/api/v1/admin/sagas?q={}&type=place_order&state=completed", subject(&me));
    let started = Instant::now();
    let found = loop {
        // A saga completes once orders has the capture's reply, a moment after payments' record.
        let (code, found) = call(g, Some(&admin), "GET", &search, None, None);
        assert_eq!(code, 200, "{found}");
        if found["items"].as_array().is_some_and(|items| items.len() == confirmed) {
            break found;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{confirmed} sagas completed: {found}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let items = found["items"].as_array().expect("items");
    let saga = items.iter().find(|s| s["id"] == first).expect("the first confirmed order's saga");
    let steps: Vec<&Value> = saga["steps"].as_array().expect("steps").iter().map(|s| &s["name"]).collect();
    assert_eq!(
        steps,
        ["reserve_stock", "authorise_payment", "commit_reservation", "capture_payment"],
        "{saga}"
    );
    assert!(saga["steps"].as_array().expect("steps").iter().all(|s| s["duration_ms"].is_f64()), "{saga}");
    let (code, _) = call(g, Some(&me), "GET", &search, None, None);
    assert_eq!(code, 403, "a customer does not search sagas");

    // `tessera top` at the gateway shows every process, each from its own figures: the
    // gateway gathers them (a process's /metrics holds its own only).
    crate::top::check_in_terminal(g, "/api/v1/admin/metrics", &[]);
    let order_path = format!("/api/v1/orders/{}", orders[0]);
    let overview = crate::top::json_overview(g, || {
        for _ in 0..15 {
            assert_eq!(call(g, Some(&me), "GET", &order_path, None, None).0, 200);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let served = |service: &str| crate::top::service_row(&overview, service)["requests_per_second"].as_f64();
    assert!(served("gateway").is_some_and(|r| r > 0.0), "{overview}");
    assert!(served("orders").is_some_and(|r| r > 0.0), "the orders process's own figure: {overview}");

    // Waiting instead of polling, across gateway replicas: each watches the orders' messages
    // on NATS, so a waiter on one replica is woken whichever replica placed the order.
    let (code, head, settled) =
        crate::waiting::place_sku_waiting(&replica.base, &me, "DIST-001", &card, "wait-1", 20);
    assert_eq!((code, settled["status"].clone()), (201, json!("confirmed")), "{head}\n{settled}");
    let waited_for = settled["id"].as_str().expect("id").to_owned();
    let story = crate::waiting::events(g, &me, &waited_for, None);
    assert_eq!(story.iter().map(|(_, e, _)| e.as_str()).collect::<Vec<_>>(), ["pending", "confirmed"]);
    let (code, _, pending) =
        crate::waiting::place_sku_waiting(&replica.base, &me, "DIST-001", &card, "wait-2", 0);
    assert_eq!(code, 202, "{pending}");
    let auth = format!("Bearer {me}");
    let (code, head, view) = exchange(
        g,
        "GET",
        &format!("/api/v1/orders/{}", pending["id"].as_str().expect("id")),
        None,
        &[("Authorization", auth.as_str()), ("Prefer", "wait=20")],
    );
    assert_eq!((code, view["status"].clone()), (200, json!("confirmed")), "{head}\n{view}");
    assert_eq!(header(&head, "preference-applied").as_deref(), Some("wait=20"));

    if let Some(redis) = redis.as_mut() {
        shared_catalogue_cache(g, &replica.base, &admin, redis);
    }
    drop(replica);

    // With the customers process stopped, the composed view still answers, naming the part
    // it could not get.
    let customers = services.remove("customers").expect("customers");
    let address = customers.base.trim_start_matches("http://").to_owned();
    drop(customers);
    let (code, view) = call(g, Some(&me), "GET", &format!("/api/v1/orders/{}", orders[0]), None, None);
    assert_eq!((code, view["degraded"].clone()), (200, json!(["customers"])), "{view}");
    assert_eq!(view["status"], "confirmed", "the rest of the view is there: {view}");
    services.insert("customers", cluster.start("customers", &address, &[]));
    let started = Instant::now();
    loop {
        let (_, view) = call(g, Some(&me), "GET", &format!("/api/v1/orders/{}", orders[0]), None, None);
        if view["degraded"] == json!([]) {
            assert_eq!(view["customer"]["name"], "Dist");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "customers is back: {view}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Erasure across processes: every service reports its part done over NATS. The person
    // wrote to support first, with a canary only they could have written.
    let canary = "Dzcanary";
    let ticket = json!({"order_id": orders[0], "subject": format!("{canary} subject"), "message": format!("{canary} message")});
    let (code, opened) = call(g, Some(&me), "POST", "/api/v1/tickets", Some(ticket), None);
    assert_eq!(code, 201, "{opened}");
    let me_id = subject(&me);

    // The access report gathered over HTTP from every service process's trail and the gateway's.
    let (code, report) =
        call(g, Some(&admin), "GET", &format!("/api/v1/customers/{me_id}/accesses"), None, None);
    assert_eq!(code, 200, "{report}");
    crate::governance::assert_reports(
        &report["items"],
        &[
            ("gateway", "customer", "session.create"),
            ("customers", "customer", "customer.read"),
            ("orders", "customer", "order.place"),
            ("payments", "customer", "payment.read"),
            ("support", "customer", "ticket.open"),
        ],
    );

    // Another customer, inside the cluster, goes after this one's data on every service port.
    let registration = json!({"email": "mallory@example.com", "name": "Mallory", "password": "mallory-pass",
        "address": {"line1": "2 Side St", "city": "Oslo", "postal_code": "0151", "country": "NO"}});
    assert_eq!(call(g, None, "POST", "/api/v1/customers", Some(registration), None).0, 201);
    let mallory = sign_in(g, "mallory@example.com", "mallory-pass");
    let mallory_id = subject(&mallory);
    let now = tessera_kernel::Timestamp::from_system_time(std::time::SystemTime::now());
    let attacker = crate::inside_attacker::Attacker {
        service_tokens: ["inventory", "orders", "payments", "customers", "support"]
            .into_iter()
            .map(|service| {
                let token = keys
                    .issue_for_service(service, &mallory_id, "customer", Duration::from_secs(600), now)
                    .expect("a token");
                (service, token)
            })
            .collect(),
        customer_id: mallory_id,
        gateway_token: mallory,
    };
    let victim = crate::inside_attacker::Victim {
        customer_id: &me_id,
        email: "dist@example.com",
        password: "distributed",
        order_id: &orders[0],
        ticket_id: opened["id"].as_str().expect("ticket id"),
        card_token: &card,
        sku: "DIST-001",
    };
    https_to_a_service(&cluster, &urls, &me);

    let bases = services.iter().map(|(name, process)| (*name, process.base.clone())).collect();
    crate::inside_attacker::attack(&bases, &victim, &attacker, &|| database_texts(&cluster));
    crate::forged_messages::forge(&cluster.bus(), &me_id, &|| database_texts(&cluster));
    let (code, accepted) = call(g, Some(&me), "DELETE", &format!("/api/v1/customers/{me_id}"), None, None);
    assert_eq!(code, 202, "{accepted}");
    let started = Instant::now();
    loop {
        let (_, progress) =
            call(g, Some(&admin), "GET", &format!("/api/v1/customers/{me_id}/erasure"), None, None);
        if progress["complete"] == true {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "every service reports done: {progress}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, view) = call(g, Some(&admin), "GET", &format!("/api/v1/orders/{}", orders[0]), None, None);
    assert_eq!(view["customer"]["name"], "[erased]", "{view}");

    // No card number or CVC anywhere, and the person never in clear: every table of every
    // database, every message of every stream.
    let personal = ["dist@example.com", "1 Main St", "Oslo", canary];
    assert_clean(&database_texts(&cluster), &personal);
    assert_clean(&stream_texts(&cluster), &personal);
    drop(gateway);
    drop(services);
    let logs: Vec<(String, String)> = std::fs::read_dir(cluster.logs.path())
        .expect("logs")
        .flatten()
        .map(|entry| {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            (entry.file_name().to_string_lossy().into_owned(), text)
        })
        .collect();
    assert!(logs.iter().any(|(_, text)| !text.is_empty()), "the processes logged");
    assert_clean(&logs, &personal);
}

/// A service answers nobody who lacks a token the gateway minted for it, even on the inside
/// network: not a client's own gateway token, not an admin's.
/// A support replica serving HTTPS under the test's own CA: a gateway told to trust that CA
/// reaches it; one that is not refuses the certificate and answers 503.
fn https_to_a_service(cluster: &Cluster, urls: &[String], me: &str) {
    let tls = [
        format!("--tls-cert={}", cluster.nats.ca.display()),
        format!("--tls-key={}", cluster.nats.key.display()),
    ];
    let support = cluster.start("support", "127.0.0.1:0", &tls);
    assert!(support.base.starts_with("https://"), "{}", support.base);
    let over_https: Vec<String> = urls
        .iter()
        .filter(|url| !url.starts_with("--redis-url="))
        .map(|url| {
            if url.starts_with("--service-url=support=") {
                format!("--service-url=support={}", support.base)
            } else {
                url.clone()
            }
        })
        .collect();
    let mut trusting = over_https.clone();
    trusting.push(format!("--service-ca={}", cluster.nats.ca.display()));
    let gateway = cluster.start("gateway", "127.0.0.1:0", &trusting);
    let (code, tickets) = call(&gateway.base, Some(me), "GET", "/api/v1/tickets", None, None);
    assert_eq!(code, 200, "through a gateway that trusts the CA: {tickets}");
    assert!(tickets["items"].as_array().is_some_and(|t| !t.is_empty()), "{tickets}");
    drop(gateway);
    let gateway = cluster.start("gateway", "127.0.0.1:0", &over_https);
    let (code, refused) = call(&gateway.base, Some(me), "GET", "/api/v1/tickets", None, None);
    assert_eq!(code, 503, "a gateway that does not trust the CA refuses the certificate: {refused}");
    assert_eq!(refused["code"], "unavailable", "{refused}");
}

fn services_check_tokens_again(
    service: &str,
    keys: &tessera_gateway::KeyRing,
    customer: &str,
    admin: &str,
    order: &str,
) {
    let path = format!("/orders/{order}");
    assert_eq!(call(service, None, "GET", "/health", None, None).0, 200, "probes stay open");
    let (code, body) = call(service, None, "GET", &path, None, None);
    assert_eq!(code, 401, "no token: {body}");
    assert_eq!(body["code"], "unauthorized");
    let now = tessera_kernel::Timestamp::from_system_time(std::time::SystemTime::now());
    let minted = |role: &str, sub: &str| {
        keys.issue_for_service("orders", sub, role, Duration::from_secs(60), now).expect("a token")
    };
    let as_customer = minted("customer", &subject(customer));
    // The minted token with its payload changed (role raised), the signature kept.
    let parts: Vec<&str> = as_customer.split('.').collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url")).expect("claims");
    let raised = URL_SAFE_NO_PAD.encode(payload.replace("\"customer\"", "\"admin\""));
    let tampered = format!("{}.{raised}.{}", parts[0], parts[2]);
    assert_eq!(call(service, Some(&tampered), "GET", "/admin/status", None, None).0, 401, "tampered");
    assert_eq!(call(service, Some("not.a.token"), "GET", &path, None, None).0, 401, "garbage");
    let (code, body) = call(service, Some(customer), "GET", &path, None, None);
    assert_eq!(code, 401, "a client's own gateway token is not for services: {body}");
    assert_eq!(call(service, Some(admin), "GET", "/admin/status", None, None).0, 401, "nor an admin's");
    assert_eq!(call(service, Some(&as_customer), "GET", &path, None, None).0, 200, "minted for orders");
    let (code, body) = call(service, Some(&as_customer), "GET", "/admin/status", None, None);
    assert_eq!(code, 403, "operator routes are for admins: {body}");
    let as_admin = minted("admin", "admin@tessera.local");
    assert_eq!(call(service, Some(&as_admin), "GET", "/admin/status", None, None).0, 200);
}

/// The `sub` of a token.
fn subject(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("claims");
    claims["sub"].as_str().expect("sub").to_owned()
}

/// The gateway's signing key, read from its database and opened with the vault's master key,
/// as an attacker who stole both could: the test mints the tokens the gateway would mint for a
/// service. The database alone holds the key sealed, which opens nothing.
fn gateway_keys(cluster: &Cluster) -> tessera_gateway::KeyRing {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let der = runtime.block_on(async {
        let url = tessera_store::database_url(&cluster.postgres, &format!("{}_gateway", cluster.prefix));
        let (client, connection) =
            tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(connection);
        let row = client
            .query_one("SELECT pkcs8 FROM gateway_keys ORDER BY created_at DESC, kid LIMIT 1", &[])
            .await
            .expect("the gateway's key");
        let stored: String = row.get(0);
        let in_clear = base64::engine::general_purpose::STANDARD.decode(&stored);
        assert!(
            in_clear.is_err()
                || tessera_gateway::SigningKey::from_pkcs8(&in_clear.unwrap_or_default()).is_err(),
            "the signing key is stored sealed, not in clear"
        );
        let storage = tessera_runtime::Storage::Postgres {
            server: cluster.postgres.clone(),
            prefix: cluster.prefix.clone(),
        };
        let vault_store = tessera_runtime::open_store(&storage, "vault", &[tessera_vault::MIGRATIONS])
            .await
            .expect("the vault's store");
        let master = tessera_vault::MasterKey::from_base64(MASTER_KEY).expect("the master key");
        let vault = tessera_vault::Vault::open(vault_store, master, Vec::new()).await.expect("the vault");
        let text = tessera_vault::Sealer::open(&vault, "gateway:signing-keys", &stored)
            .await
            .expect("opened")
            .expect("the key's data key is there");
        base64::engine::general_purpose::STANDARD.decode(text).expect("base64")
    });
    let key = tessera_gateway::SigningKey::from_pkcs8(&der).expect("a signing key");
    tessera_gateway::KeyRing::new(key, tessera_gateway::TokenSettings::default())
}

/// The vault's master key every process of the run shares.
const MASTER_KEY: &str = "dGVzc2VyYS1kaXN0cmlidXRlZC10ZXN0LWtleS0zMmI=";

/// A CVC no database, stream or log may ever hold.
const CANARY_CVC: &str = "8642";

/// Every row of every table of this run's databases, as JSON text, by database and table.
fn database_texts(cluster: &Cluster) -> Vec<(String, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut texts = Vec::new();
        for service in ["inventory", "orders", "payments", "customers", "support", "gateway", "vault"] {
            let name = format!("{}_{service}", cluster.prefix);
            let url = tessera_store::database_url(&cluster.postgres, &name);
            let (client, connection) =
                tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(connection);
            let tables = client
                .query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'", &[])
                .await
                .expect("tables");
            for table in tables {
                let table: String = table.get(0);
                let sql = format!(
                    "SELECT coalesce(string_agg(row_to_json(t)::text, E'\\n'), '') FROM \"{table}\" t"
                );
                let row = client.query_one(&sql, &[]).await.expect("rows");
                texts.push((format!("{name}.{table}"), row.get::<_, String>(0)));
            }
        }
        texts
    })
}

/// Every message of this run's NATS streams (headers and payload), by stream.
fn stream_texts(cluster: &Cluster) -> Vec<(String, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(cluster.bus().messages())
}

/// No card number, CVC or `forbidden` text in any of `texts`.
fn assert_clean(texts: &[(String, String)], forbidden: &[&str]) {
    assert!(!texts.is_empty());
    for (place, text) in texts {
        let numbers = crate::privacy::card_numbers(text.as_bytes());
        assert!(numbers.is_empty(), "{place} holds card numbers: {numbers:?}");
        let lower = text.to_lowercase();
        assert!(
            !lower.contains("\"cvc\"") && !lower.contains(&format!("\"{CANARY_CVC}\"")),
            "{place} holds a CVC"
        );
        for needle in forbidden {
            assert!(!lower.contains(&needle.to_lowercase()), "{place} holds {needle:?} in clear");
        }
    }
}

fn sign_in(base: &str, email: &str, password: &str) -> String {
    let (code, body) = call(
        base,
        None,
        "POST",
        "/api/v1/auth/token",
        Some(json!({"email": email, "password": password})),
        None,
    );
    assert_eq!(code, 200, "{body}");
    body["access_token"].as_str().expect("token").to_owned()
}

/// Price changes made through one gateway (100 of them) show through the other within 100 ms
/// at the 99th percentile (both read the one cache in Redis, emptied by inventory's events over NATS);
/// with Redis killed, reads keep answering.
fn shared_catalogue_cache(
    g: &str,
    replica: &str,
    admin: &str,
    redis: &mut tessera_testkit::redis::PrivateRedis,
) {
    let path = "/api/v1/products/DIST-001";
    let bearer = format!("Bearer {admin}");
    let mut latencies = Vec::new();
    for _ in 0..100 {
        // The orders placed just before may still move this product's stock (a reservation
        // committed after the order confirmed), and the cached copy is emptied by that event a
        // moment later: a 412 then is the cache being honest, and the client reads again.
        let mut attempts = 0;
        let price = loop {
            let (code, head, before) = exchange(replica, "GET", path, None, &[]);
            assert_eq!(code, 200, "{before}");
            let etag = header(&head, "etag").expect("an ETag through the cache");
            let price = before["price"]["amount"].as_i64().expect("price") + 1;
            let patch = json!({"price": {"amount": price, "currency": "EUR"}}).to_string();
            let headers = [("Authorization", bearer.as_str()), ("If-Match", etag.as_str())];
            let (code, _, changed) = exchange(g, "PATCH", path, Some(patch.as_bytes()), &headers);
            attempts += 1;
            if code == 412 && attempts < 20 {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            assert_eq!(code, 200, "{changed}");
            break price;
        };
        let committed = Instant::now();
        loop {
            let (_, seen) = call(replica, None, "GET", path, None, None);
            if seen["price"]["amount"] == json!(price) {
                latencies.push(committed.elapsed());
                break;
            }
            assert!(committed.elapsed() < Duration::from_secs(5), "the change never showed: {seen}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    println!(
        "distributed, visible at the other gateway after commit: p50 {:?}, p99 {p99:?}",
        latencies[latencies.len() / 2]
    );
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    let (_, _, metrics) = exchange(g, "GET", "/metrics", None, &[]);
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    let (_, _, replica_metrics) = exchange(replica, "GET", "/metrics", None, &[]);
    let all = format!("{metrics}{}", replica_metrics.as_str().unwrap_or_default());
    assert!(all.contains("tessera_gateway_cache_requests_total{result=\"hit\"}"), "hits are counted");
    assert!(all.contains("tessera_gateway_cache_invalidations_total"), "invalidations are counted");

    redis.kill();
    for _ in 0..50 {
        assert_eq!(call(replica, None, "GET", path, None, None).0, 200, "reads survive Redis");
        assert_eq!(call(g, None, "GET", path, None, None).0, 200, "reads survive Redis");
    }
    let (_, _, metrics) = exchange(replica, "GET", "/metrics", None, &[]);
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains("tessera_gateway_cache_requests_total{result=\"degraded\"}"),
        "reads without Redis are counted as degraded"
    );
    redis.restart();
}
