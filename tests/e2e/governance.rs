//! The data map held to a real system: a canary customer registers, saves a card, places an
//! order and opens a ticket with an attachment; then every table and column of every store,
//! and the object store, are searched for the canary's id and text (`tessera governance
//! scan`). Every place found must be declared; the text must be nowhere in clear; and a
//! column added to a store without a declaration is caught.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Up, card, place, tessera};

/// `tessera governance scan --json` of `data` for `needles`: (success, judged sightings, stdout).
fn scan(data: &Path, needles: &[&str]) -> (bool, Vec<Value>, String) {
    let mut command = tessera();
    command.args(["governance", "scan", "--json", "--data"]).arg(data);
    for needle in needles {
        command.args(["--needle", needle]);
    }
    let output = command.output().expect("run tessera governance scan");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let judged = serde_json::from_str(stdout.trim()).unwrap_or_default();
    (output.status.success(), judged, format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)))
}

/// `(service, role, action)` of each access a report lists.
fn accesses(report: &Value) -> Vec<(String, String, String)> {
    report
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let text = |key: &str| a[key].as_str().unwrap_or_default().to_owned();
            (text("service"), text("role"), text("action"))
        })
        .collect()
}

/// Fails unless `report` (an array of accesses) lists each `(service, role, action)` wanted.
pub(crate) fn assert_reports(report: &Value, wanted: &[(&str, &str, &str)]) {
    let seen = accesses(report);
    for (service, role, action) in wanted {
        let wanted = ((*service).to_owned(), (*role).to_owned(), (*action).to_owned());
        assert!(seen.contains(&wanted), "{wanted:?} is in the report: {seen:?}");
    }
}

#[test]
fn a_canary_customers_data_lies_only_where_the_data_map_says() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let up = Up::start(&data);
    let canary = "Qxgovcanary";
    let registration = json!({
        "email": format!("{canary}@example.com"), "name": format!("{canary} Person"), "password": "canary-password",
        "address": {"line1": format!("1 {canary} Street"), "city": format!("{canary}town"), "postal_code": "QX1 1XQ", "country": "GB"},
    });
    let (code, created) = up.call("POST", "/api/v1/customers", Some(registration));
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let me = up.sign_in(&format!("{canary}@example.com"), "canary-password");
    let token = card(&up, &me, "4242424242424242");
    let order = place(&up, &me, &token, "TEA-001", 1);
    up.settle(&me, std::slice::from_ref(&order), Duration::from_secs(20));
    let (ticket, _) = crate::privacy::ticket_with_attachment(&up, &me, &order, canary);
    let support = up.sign_in("support@tessera.local", "support");
    let (code, read) = up.call_as(&support, "GET", &format!("/api/v1/tickets/{ticket}"), None);
    assert_eq!(code, 200, "{read}");
    let (code, masked) = up.call_as(&support, "GET", &format!("/api/v1/customers/{id}"), None);
    assert_eq!(code, 200, "{masked}");
    assert_eq!(masked["email"], "Q***@example.com", "masked as the declaration says: {masked}");
    assert_eq!(
        (masked["address"]["city"].as_str(), masked["address"]["country"].as_str()),
        (Some("***"), Some("GB"))
    );
    let (code, read) = up.call_as(&support, "GET", &format!("/api/v1/orders/{order}"), None);
    assert_eq!(code, 200, "{read}");
    let (bystander, theirs) = up.customer("bystander-gov@example.com");
    assert_eq!(up.call_as(&theirs, "GET", &format!("/api/v1/customers/{bystander}"), None).0, 200);
    // Let the messages about the order and the ticket reach every subscriber.
    std::thread::sleep(Duration::from_secs(2));

    // The person's own export says who received their data (GDPR Art. 15): the gateway's
    // sign-in and export, and the reads each service served, under the reader's role.
    let (code, export) = up.call_as(&me, "GET", &format!("/api/v1/customers/{id}/export"), None);
    assert_eq!(code, 200, "{export}");
    assert_reports(
        &export["accesses"],
        &[
            ("gateway", "customer", "session.create"),
            ("gateway", "customer", "customer.export"),
            ("customers", "support", "customer.read"),
            ("orders", "customer", "order.place"),
            ("orders", "support", "order.read"),
            ("payments", "customer", "payment_method.add"),
            ("support", "customer", "ticket.open"),
            ("support", "support", "ticket.read"),
        ],
    );
    assert!(!export["accesses"].to_string().contains(&bystander), "nobody else's records");
    // Staff ask the same of the running system.
    let output = tessera()
        .args(["governance", "access", "--json", "--customer", &id, "--url", &up.base])
        .output()
        .expect("run tessera governance access --url");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let asked: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_reports(&asked, &[("gateway", "admin", "customer.export")]);
    up.kill();

    let (ok, judged, shown) = scan(&data, &[canary, &id]);
    assert!(ok, "every place holding the canary is declared:\n{shown}");
    for store in ["customers", "orders", "payments", "support", "objects"] {
        assert!(
            judged.iter().any(|j| j["sighting"]["store"] == store),
            "the canary's id is in {store}:\n{shown}"
        );
    }
    let (ok, judged, shown) = scan(&data, &[canary]);
    assert!(ok && judged.is_empty(), "what the canary wrote is sealed everywhere:\n{shown}");

    // The access report: the customer's own actions, and support's read of their profile
    // under support's role, each from the trail of the service that served it; nobody else's.
    let output = tessera()
        .args(["governance", "access", "--json", "--customer", &id, "--data"])
        .arg(&data)
        .output()
        .expect("run tessera governance access");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_reports(
        &report,
        &[
            // Registering is done before anyone is signed in.
            ("customers", "none", "customer.register"),
            ("customers", "support", "customer.read"),
            ("payments", "customer", "payment_method.add"),
            ("orders", "customer", "order.place"),
            // Reads of their order and card, theirs and support's, in the services that served them.
            ("orders", "customer", "order.read"),
            ("orders", "support", "order.read"),
            ("payments", "customer", "payment_method.read"),
            ("support", "customer", "ticket.open"),
            ("support", "customer", "ticket.attach"),
        ],
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains(&bystander),
        "another customer's records are not theirs"
    );

    // A careless change keeps a copy of the ticket's subject in a column nobody declared.
    let support_db = rusqlite::Connection::open(data.join("support.db")).expect("support.db");
    support_db
        .execute_batch(&format!(
            "ALTER TABLE tickets ADD COLUMN preview TEXT; UPDATE tickets SET preview = '{canary} subject';"
        ))
        .expect("add a column");
    drop(support_db);
    let (ok, judged, shown) = scan(&data, &[canary, &id]);
    assert!(!ok, "an undeclared copy fails the scan:\n{shown}");
    let undeclared: Vec<String> = judged
        .iter()
        .filter(|j| j["declared_by"].as_array().is_some_and(Vec::is_empty))
        .map(|j| {
            format!("{}.{}.{}", j["sighting"]["store"], j["sighting"]["table"], j["sighting"]["column"])
                .replace('"', "")
        })
        .collect();
    assert_eq!(undeclared, ["support.tickets.preview"], "{shown}");
}
