//! The authorisation matrix, through the real binary: every public endpoint, called by nobody,
//! by the owning customer, by another customer, by support and by an admin, each answered with
//! the status API.md gives that role for that object. And forged tokens, refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::http::request;
use crate::{Up, card, place};

/// One row of the matrix: method, path, body, extra headers, and the status for each actor.
type Row<'a> = (&'a str, String, Option<Value>, &'a [(&'a str, &'a str)], [u16; 5]);

/// Who calls, in the order of each row's expected statuses.
const ACTORS: [&str; 5] = ["nobody", "owner", "other customer", "support", "admin"];

#[test]
fn every_endpoint_answers_each_role_and_owner_as_specified() {
    let dir = tempfile::tempdir().expect("temp dir");
    let up = Up::start(&dir.path().join("data"));
    let (alice_id, alice) = up.customer("alice@example.com");
    let (_, bob) = up.customer("bob@example.com");
    let support = up.sign_in("support@tessera.local", "support");
    let admin = up.sign_in("admin@tessera.local", "admin");
    let alice_card = card(&up, &alice, "4242424242424242");
    let order = place(&up, &alice, &alice_card, "TEA-002", 1);
    up.settle(&alice, std::slice::from_ref(&order), std::time::Duration::from_secs(20));
    let (code, ticket) = up.call_as(
        &alice,
        "POST",
        "/api/v1/tickets",
        Some(json!({"order_id": order, "subject": "Hi", "message": "Hello"})),
    );
    assert_eq!(code, 201, "{ticket}");
    let ticket = ticket["id"].as_str().expect("ticket id").to_owned();

    let tokens =
        [None, Some(alice.as_str()), Some(bob.as_str()), Some(support.as_str()), Some(admin.as_str())];
    let card_body =
        json!({"card_number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"});
    let order_body = json!({"items": [{"sku": "TEA-001", "quantity": 1}], "payment_token": alice_card});
    let rows: Vec<Row> = vec![
        ("GET", "/api/v1/products".into(), None, &[], [200, 200, 200, 200, 200]),
        ("GET", "/api/v1/products/TEA-001".into(), None, &[], [200, 200, 200, 200, 200]),
        (
            "POST",
            "/api/v1/products".into(),
            Some(
                json!({"sku": "NEW-001", "name": "New", "price": {"amount": 100, "currency": "EUR"}, "stock": 1}),
            ),
            &[],
            [401, 403, 403, 403, 201],
        ),
        (
            "PATCH",
            "/api/v1/products/MUG-001".into(),
            Some(json!({"price": {"amount": 1, "currency": "EUR"}})),
            &[("If-Match", "*")],
            [401, 403, 403, 403, 200],
        ),
        (
            "POST",
            "/api/v1/products/MUG-001/stock".into(),
            Some(json!({"delta": 1, "reason": "count"})),
            &[],
            [401, 403, 403, 403, 200],
        ),
        ("GET", format!("/api/v1/customers/{alice_id}"), None, &[], [401, 200, 404, 200, 200]),
        (
            "PATCH",
            format!("/api/v1/customers/{alice_id}"),
            Some(json!({"name": "Alice Liddell"})),
            &[("If-Match", "*")],
            [401, 200, 404, 403, 200],
        ),
        (
            "PATCH",
            format!("/api/v1/customers/{alice_id}"),
            Some(json!({"role": "admin"})),
            &[("If-Match", "*")],
            [401, 422, 404, 403, 422],
        ),
        ("GET", format!("/api/v1/customers/{alice_id}/export"), None, &[], [401, 200, 404, 403, 200]),
        ("POST", "/api/v1/payment-methods".into(), Some(card_body.clone()), &[], [401, 201, 201, 403, 403]),
        (
            "POST",
            "/api/v1/payment-methods".into(),
            Some(
                json!({"customer_id": alice_id, "card_number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}),
            ),
            &[],
            [401, 201, 403, 403, 403],
        ),
        ("GET", format!("/api/v1/payments?order_id={order}"), None, &[], [401, 200, 404, 200, 200]),
        ("GET", format!("/api/v1/orders/{order}"), None, &[], [401, 200, 404, 200, 200]),
        ("GET", format!("/api/v1/orders?customer_id={alice_id}"), None, &[], [401, 200, 403, 200, 200]),
        ("GET", "/api/v1/orders".into(), None, &[], [401, 200, 200, 200, 200]),
        ("GET", format!("/api/v1/orders/{order}/history"), None, &[], [401, 403, 403, 200, 200]),
        (
            "POST",
            "/api/v1/orders".into(),
            Some(order_body.clone()),
            &[("Idempotency-Key", "matrix-1")],
            [401, 202, 422, 403, 403],
        ),
        (
            "POST",
            "/api/v1/orders".into(),
            Some(
                json!({"customer_id": alice_id, "items": [{"sku": "TEA-001", "quantity": 1}], "payment_token": alice_card}),
            ),
            &[("Idempotency-Key", "matrix-2")],
            [401, 202, 403, 403, 403],
        ),
        (
            "POST",
            "/api/v1/tickets".into(),
            Some(json!({"order_id": order, "subject": "Mine?", "message": "x"})),
            &[],
            [401, 201, 422, 403, 403],
        ),
        ("GET", format!("/api/v1/tickets/{ticket}"), None, &[], [401, 200, 404, 200, 200]),
        ("GET", "/api/v1/tickets".into(), None, &[], [401, 200, 200, 200, 200]),
        ("GET", format!("/api/v1/tickets?customer_id={alice_id}"), None, &[], [401, 200, 403, 200, 200]),
        (
            "POST",
            format!("/api/v1/tickets/{ticket}/messages"),
            Some(json!({"message": "More"})),
            &[],
            [401, 201, 404, 201, 403],
        ),
        (
            "POST",
            format!("/api/v1/tickets/{ticket}/messages"),
            Some(json!({"message": "x", "author": "support"})),
            &[],
            [401, 422, 422, 422, 422],
        ),
        ("POST", format!("/api/v1/tickets/{ticket}/close"), None, &[], [401, 403, 403, 200, 409]),
        ("GET", "/api/v1/admin/services".into(), None, &[], [401, 403, 403, 403, 200]),
        ("GET", "/api/v1/admin/metrics".into(), None, &[], [401, 403, 403, 403, 200]),
        ("GET", "/api/v1/admin/dlq".into(), None, &[], [401, 403, 403, 403, 200]),
        ("GET", "/api/v1/admin/sagas?state=stuck".into(), None, &[], [401, 403, 403, 403, 200]),
        ("GET", format!("/api/v1/admin/sagas?q={alice_id}"), None, &[], [401, 403, 403, 403, 200]),
        ("GET", format!("/api/v1/admin/sagas/{order}"), None, &[], [401, 403, 403, 403, 200]),
        ("GET", "/api/v1/admin/sagas?state=lost".into(), None, &[], [401, 403, 403, 403, 422]),
        (
            "POST",
            "/api/v1/admin/projections/order_summaries/rebuild".into(),
            None,
            &[],
            [401, 403, 403, 403, 202],
        ),
        ("POST", "/api/v1/admin/dlq/orders:12345/retry".into(), None, &[], [401, 403, 403, 403, 404]),
        ("POST", format!("/api/v1/orders/{order}/cancel"), None, &[], [401, 202, 404, 409, 409]),
    ];
    let mut failures = Vec::new();
    for (method, path, body, extra, expected) in &rows {
        for ((actor, token), want) in ACTORS.iter().zip(tokens).zip(expected) {
            let bearer = token.map(|t| format!("Bearer {t}"));
            let mut headers: Vec<(&str, &str)> = extra.to_vec();
            if let Some(bearer) = &bearer {
                headers.push(("Authorization", bearer));
            }
            let (code, answer) = request(&up.base, method, path, body.as_ref(), &headers);
            if code != *want {
                failures.push(format!("{method} {path} as {actor}: {code}, expected {want}: {answer}"));
            } else if code >= 400 && !answer["code"].is_string() {
                failures.push(format!("{method} {path} as {actor}: {code} is not a problem: {answer}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} calls answered wrongly:\n{}",
        failures.len(),
        rows.len() * 5,
        failures.join("\n")
    );

    // The operators' view covers every service.
    let (_, overview) = up.call_as(&admin, "GET", "/api/v1/admin/services", None);
    let services = overview["services"].as_array().expect("services");
    assert_eq!(services.len(), 5, "{overview}");
    assert!(services.iter().all(|s| s["health"] == "up" && s["outbox"]["unsent"].is_u64()), "{overview}");
    let orders = services.iter().find(|s| s["service"] == "orders").expect("orders");
    let projections: Vec<&str> = orders["projections"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(projections, ["analytics_sales", "order_summaries"], "{orders}");
    // API.md's consumer lag and store commit latency: by now orders has applied the saga
    // replies of inventory and payments and committed units of its own. (Customers'
    // registrations are not orders' business: it acknowledges them unread, and they leave
    // the lag alone.)
    let lag = orders["consumer_lag"].as_object().expect("consumer lag per subscription");
    assert!(
        lag.keys().any(|c| c == "orders__inventory") && lag.keys().any(|c| c == "orders__payments"),
        "{orders}"
    );
    assert!(lag.values().all(|l| l["seconds"].as_f64().is_some_and(|s| s >= 0.0)), "{orders}");
    assert!(orders["store_commit_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{orders}");
    let (code, _) = up.call_as(&admin, "POST", "/api/v1/admin/projections/nothing_here/rebuild", None);
    assert_eq!(code, 404);

    // Support sees the customer, masked.
    let (_, profile) = up.call_as(&support, "GET", &format!("/api/v1/customers/{alice_id}"), None);
    assert!(
        profile["email"].as_str().is_some_and(|e| e.contains("***") && !e.contains("alice@")),
        "{profile}"
    );
    assert_eq!(profile["address"]["line1"], "***");
    // Lists hold only the caller's own objects.
    let (_, bobs) = up.call_as(&bob, "GET", "/api/v1/orders", None);
    assert_eq!(bobs["items"], json!([]), "bob sees none of alice's orders");
    let (_, bobs) = up.call_as(&bob, "GET", "/api/v1/tickets", None);
    assert_eq!(bobs["items"], json!([]), "bob sees none of alice's tickets");
}

#[test]
fn forged_and_broken_tokens_get_401() {
    let dir = tempfile::tempdir().expect("temp dir");
    let up = Up::start(&dir.path().join("data"));
    let (_, alice) = up.customer("carol@example.com");
    let parts: Vec<&str> = alice.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("claims");
    claims["role"] = json!("admin");
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("header");
    let none_header = json!({"alg": "none", "typ": "JWT", "kid": header["kid"]});
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(none_header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let other_kid = json!({"alg": "EdDSA", "typ": "JWT", "kid": "not-a-key-of-ours"});
    let unknown_kid = format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(other_kid.to_string()), parts[1], parts[2]);
    for (what, authorization) in [
        ("garbage", "Bearer garbage".to_owned()),
        ("empty", "Bearer ".to_owned()),
        ("another scheme", format!("Basic {alice}")),
        ("tampered payload", format!("Bearer {tampered}")),
        ("alg none", format!("Bearer {unsigned}")),
        ("unknown kid", format!("Bearer {unknown_kid}")),
    ] {
        let (code, answer) =
            request(&up.base, "GET", "/api/v1/orders", None, &[("Authorization", &authorization)]);
        assert_eq!(code, 401, "{what}: {answer}");
        assert_eq!(answer["code"], "unauthorized", "{what}");
    }
    let (code, _) =
        request(&up.base, "GET", "/api/v1/orders", None, &[("Authorization", &format!("Bearer {alice}"))]);
    assert_eq!(code, 200, "the genuine token works");
    let (code, jwks) = up.call("GET", "/.well-known/jwks.json", None);
    assert_eq!(
        (code, jwks["keys"][0]["alg"].clone(), jwks["keys"][0]["crv"].clone()),
        (200, json!("EdDSA"), json!("Ed25519"))
    );
}
