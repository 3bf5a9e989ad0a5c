//! An attacker inside the cluster: a signed-up customer who can reach every service's port
//! directly, holding their own gateway token and tokens the gateway minted for them (as if
//! captured off the network), goes after another customer's data on every route each service
//! describes in its `/openapi.json`. Every attempt must be refused or answer nothing of the
//! victim's, and the victim's rows must be the same afterwards.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::request;

/// Who is attacked, and with what they were seen to have.
pub struct Victim<'a> {
    pub customer_id: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub order_id: &'a str,
    pub ticket_id: &'a str,
    pub card_token: &'a str,
    pub sku: &'a str,
}

/// The attacker's credentials.
pub struct Attacker {
    pub customer_id: String,
    /// Their own token from the gateway (audience `tessera-api`).
    pub gateway_token: String,
    /// Tokens the gateway minted for them, by the service they were minted for.
    pub service_tokens: BTreeMap<&'static str, String>,
}

/// Routes a customer may call on a service with a token minted for them: each answers only
/// the caller's own objects or public ones, which the body check below proves.
const OPEN_TO_CUSTOMERS: [(&str, &str); 5] = [
    ("GET", "/products"),
    ("GET", "/products/{sku}"),
    ("GET", "/orders"),
    ("GET", "/tickets"),
    ("GET", "/payments"),
];

/// Paths every caller reaches without a token.
const PROBES: [&str; 4] = ["/health", "/ready", "/openapi.json", "/metrics"];

fn with_token(base: &str, token: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    request(base, method, path, body, &[("Authorization", &bearer)])
}

/// The concrete path of `template` aimed at the victim's objects, with a query naming them.
fn aimed(template: &str, victim: &Victim<'_>, service: &str) -> String {
    let id = match service {
        "customers" => victim.customer_id,
        "orders" => victim.order_id,
        "support" => victim.ticket_id,
        _ => victim.customer_id,
    };
    let path = template
        .replace("{id}", id)
        .replace("{attachment_id}", "0190c1d2-0000-7000-8000-000000000000")
        .replace("{token}", victim.card_token)
        .replace("{sku}", victim.sku)
        .replace("{name}", "order-summaries");
    let query = match template {
        "/payments" => format!("order_id={}", victim.order_id),
        "/order-requests" => format!("customer_id={}&request_key=d-0", victim.customer_id),
        "/analytics/sales" => String::new(),
        _ => format!("customer_id={}", victim.customer_id),
    };
    if query.is_empty() { path } else { format!("{path}?{query}") }
}

/// A body that would do the victim harm if it were accepted.
fn harmful_body(method: &str, template: &str, victim: &Victim<'_>) -> Option<Value> {
    let body = match (method, template) {
        ("GET" | "DELETE", _) => return None,
        (_, "/customers/credentials") => json!({"email": victim.email, "password": victim.password}),
        (_, "/orders") => json!({"customer_id": victim.customer_id, "payment_token": victim.card_token,
            "items": [{"sku": victim.sku, "quantity": 1}]}),
        (_, "/tickets") => json!({"customer_id": victim.customer_id, "order_id": victim.order_id,
            "subject": "hi", "message": "hi"}),
        (_, "/tickets/{id}/messages") => json!({"author": "support", "message": "pay me"}),
        (_, "/payment-methods") => {
            json!({"customer_id": victim.customer_id, "card_number": "4242424242424242",
            "exp_month": 12, "exp_year": 2031, "cvc": "123"})
        }
        (_, "/customers") => json!({"email": "x@example.com", "name": "X", "password": "xxxxxxxxxx",
            "address": {"line1": "1 St", "city": "Oslo", "postal_code": "0150", "country": "NO"}}),
        (_, "/customers/{id}") => json!({"name": "Mallory"}),
        (_, "/products") => {
            json!({"sku": "EVIL-001", "name": "Evil", "price": {"amount": 1, "currency": "EUR"}, "stock": 1})
        }
        (_, "/products/{sku}") => json!({"price": {"amount": 1, "currency": "EUR"}}),
        (_, "/products/{sku}/stock") => json!({"delta": -5}),
        _ => json!({"customer_id": victim.customer_id}),
    };
    Some(body)
}

/// Every (method, path template) a service describes.
fn described_routes(base: &str) -> Vec<(String, String)> {
    let (code, document) = request(base, "GET", "/openapi.json", None, &[]);
    assert_eq!(code, 200, "{base} describes itself");
    let paths = document["paths"].as_object().expect("paths");
    let mut routes = Vec::new();
    for (path, operations) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if operations.get(method).is_some() {
                routes.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// The victim's rows in every table of every database of the run (`texts` as read by the
/// caller): those naming the victim's customer, order or ticket. The outbox is left out: the
/// relay prunes sent rows by itself, whatever anybody does.
fn victim_rows(texts: &[(String, String)], victim: &Victim<'_>) -> Vec<String> {
    let needles = [victim.customer_id, victim.order_id, victim.ticket_id];
    texts
        .iter()
        .filter(|(table, _)| !table.contains("tessera_outbox"))
        .flat_map(|(table, rows)| {
            rows.lines()
                .filter(|row| needles.iter().any(|needle| row.contains(needle)))
                .map(|row| format!("{table}: {row}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Runs the attack on every service in `services` (name → base URL). `snapshot` reads every
/// table of every store.
pub fn attack(
    services: &BTreeMap<&'static str, String>,
    victim: &Victim<'_>,
    attacker: &Attacker,
    snapshot: &dyn Fn() -> Vec<(String, String)>,
) {
    // Settled: the victim's rows read the same twice in a row before anything is tried.
    let started = Instant::now();
    let before = loop {
        let first = victim_rows(&snapshot(), victim);
        std::thread::sleep(Duration::from_millis(500));
        if victim_rows(&snapshot(), victim) == first {
            break first;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the victim's rows never settled");
    };
    assert!(!before.is_empty(), "the victim has rows to protect");

    let mut attempts = 0;
    for (&service, base) in services {
        let own = &attacker.service_tokens[service];
        let foreign = attacker
            .service_tokens
            .iter()
            .find(|(other, _)| **other != service)
            .map(|(_, token)| token.as_str())
            .expect("a token minted for another service");
        for (method, template) in described_routes(base) {
            if PROBES.contains(&template.as_str()) {
                continue;
            }
            let path = aimed(&template, victim, service);
            let body = harmful_body(&method, &template, victim);
            let route = format!("{method} {service}{path}");
            // A client's own token, and a token captured from a call to another service, open
            // nothing here.
            for (kind, token) in [
                ("the gateway's client token", attacker.gateway_token.as_str()),
                ("a token for another service", foreign),
            ] {
                let (code, answer) = with_token(base, token, &method, &path, body.as_ref());
                assert_eq!(code, 401, "{route} with {kind}: {answer}");
                attempts += 1;
            }
            // A token minted for this service on the attacker's behalf reaches only what the
            // attacker could reach through the gateway.
            let (code, answer) = with_token(base, own, &method, &path, body.as_ref());
            attempts += 1;
            let open = OPEN_TO_CUSTOMERS.contains(&(method.as_str(), template.as_str()));
            if (200..300).contains(&code) {
                assert!(open, "{route} answered {code} to the attacker: {answer}");
            } else {
                assert!((400..500).contains(&code), "{route} refused with a 4xx, not {code}: {answer}");
            }
            let text = answer.to_string();
            for secret in [victim.customer_id, victim.email, victim.order_id, victim.ticket_id] {
                assert!(!text.contains(secret), "{route} gave the attacker {secret}: {text}");
            }
        }
    }
    assert!(attempts > 60, "every service's routes were tried ({attempts} attempts)");
    // The attacker's own data stays theirs to read: the rules refuse the victim's, not all.
    let (code, mine) = with_token(
        &services["customers"],
        &attacker.service_tokens["customers"],
        "GET",
        &format!("/customers/{}", attacker.customer_id),
        None,
    );
    assert_eq!(code, 200, "the attacker reads their own profile: {mine}");

    let after = victim_rows(&snapshot(), victim);
    assert_eq!(before, after, "the victim's rows are as they were");
}
