//! Erasure through the real binary: a customer whose every personal field holds a canary
//! places an order, saves a card and opens a ticket, then asks to be forgotten. Every service
//! reports its part done, the person shows as `[erased]` in what stays (the order), nothing
//! about them opens any more, and no file of the data folder holds the canary in clear.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{Up, card, place};

fn files_containing(folder: &std::path::Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(folder).expect("read the data folder").flatten() {
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        if bytes.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes())) {
            hits.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    hits
}

#[test]
fn an_erased_customer_is_forgotten_by_every_service() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let up = Up::start(&data);
    let canary = "Qxcanary";
    let registration = json!({
        "email": format!("{canary}@example.com"), "name": format!("{canary} Person"), "password": "canary-password",
        "address": {"line1": format!("1 {canary} Street"), "city": format!("{canary}town"), "postal_code": "QX1 1XQ", "country": "GB"},
    });
    let (code, created) = up.call("POST", "/api/v1/customers", Some(registration));
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let me = up.sign_in(&format!("{canary}@example.com"), "canary-password");
    let (other_id, other) = up.customer("bystander@example.com");
    let support = up.sign_in("support@tessera.local", "support");
    let admin = up.sign_in("admin@tessera.local", "admin");
    let token = card(&up, &me, "4242424242424242");
    let order = place(&up, &me, &token, "TEA-001", 1);
    up.settle(&me, std::slice::from_ref(&order), Duration::from_secs(20));
    let (code, ticket) = up.call_as(
        &me,
        "POST",
        "/api/v1/tickets",
        Some(json!({"order_id": order, "subject": format!("{canary} subject"), "message": format!("{canary} message")})),
    );
    assert_eq!(code, 201, "{ticket}");
    let ticket = ticket["id"].as_str().expect("ticket").to_owned();

    // Who may erase: the person and an admin; support is refused, another customer learns nothing.
    let path = format!("/api/v1/customers/{id}");
    assert_eq!(up.call("DELETE", &path, None).0, 401);
    assert_eq!(up.call_as(&other, "DELETE", &path, None).0, 404);
    assert_eq!(up.call_as(&support, "DELETE", &path, None).0, 403);
    assert_eq!(up.call_as(&support, "GET", &format!("{path}/erasure"), None).0, 403);
    assert_eq!(up.call_as(&me, "GET", &format!("{path}/erasure"), None).0, 404, "nothing asked yet");

    let (code, accepted) = up.call_as(&me, "DELETE", &path, None);
    assert_eq!(code, 202, "{accepted}");
    let erasure = accepted["erasure_id"].as_str().expect("erasure_id").to_owned();
    let started = Instant::now();
    let progress = loop {
        let (code, progress) = up.call_as(&admin, "GET", &format!("{path}/erasure"), None);
        assert_eq!(code, 200, "{progress}");
        if progress["complete"] == true {
            break progress;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "every service reports done: {progress}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(progress["erasure_id"], erasure);
    let services: Vec<&str> = progress["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["service"].as_str())
        .collect();
    assert_eq!(services, ["customers", "orders", "payments", "support"]);

    // What stays is a business record, with the person shown as erased.
    assert_eq!(up.call_as(&admin, "GET", &path, None).0, 404);
    let (code, view) = up.call_as(&admin, "GET", &format!("/api/v1/orders/{order}"), None);
    assert_eq!(code, 200, "{view}");
    assert_eq!(view["customer"]["name"], "[erased]", "{view}");
    assert_eq!(view["status"], "confirmed");
    let (_, ticket) = up.call_as(&support, "GET", &format!("/api/v1/tickets/{ticket}"), None);
    assert!(!ticket.to_string().to_lowercase().contains(&canary.to_lowercase()), "{ticket}");
    // The saved card can no longer be charged.
    let body = json!({"items": [{"sku": "TEA-001", "quantity": 1}], "payment_token": token});
    let bearer = format!("Bearer {me}");
    let (code, _) = crate::http::request(
        &up.base,
        "POST",
        "/api/v1/orders",
        Some(&body),
        &[("Authorization", &bearer), ("Idempotency-Key", "after-erasure")],
    );
    assert!(code >= 400, "an erased customer's card places nothing: {code}");
    // The bystander is untouched.
    let (code, profile) = up.call_as(&other, "GET", &format!("/api/v1/customers/{other_id}"), None);
    assert_eq!((code, profile["name"].as_str()), (200, Some("Ada Lovelace")), "{profile}");

    up.kill();
    let hits = files_containing(&data, canary);
    assert!(hits.is_empty(), "the canary is in clear in {hits:?}");
}
