//! Support end to end on a real SQLite file: tickets through its HTTP routes, and its replica of
//! order summaries fed through the real relay, in-process transport and subscriber by order
//! events that arrive reordered and duplicated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tessera_contracts::Message;
use tessera_contracts::orders::{OrderConfirmed, OrderPlaced, OrderRejected, RejectionReason};
use tessera_kernel::{Envelope, HlcTimestamp, MessageKind, SystemClock, UuidV7Gen};
use tessera_support::Support;
use tessera_testkit::Participant;
use tessera_testkit::http::call;
use uuid::Uuid;

async fn support() -> (Participant, Arc<Support>, Router) {
    let vault = tessera_testkit::temporary_vault().await;
    let (participant, support) = Participant::start("support", &tessera_support::migrations(), |store| {
        Support::new(
            store,
            vault,
            tessera_support::AttachmentStore::in_memory(),
            Arc::new(UuidV7Gen),
            Arc::new(SystemClock),
        )
    })
    .await;
    let (router, _) = tessera_support::http::router().split_for_parts();
    let router = tessera_web::standard_layers(router.with_state(support.as_ref().clone()));
    (participant, support, router)
}

fn event<M: Message>(order_id: Uuid, message: &M) -> Envelope {
    Envelope::new(
        &UuidV7Gen,
        MessageKind::Event,
        M::NAME,
        "orders",
        order_id.to_string(),
        HlcTimestamp::default(),
        serde_json::to_value(message).expect("payload"),
    )
}

fn lines() -> Value {
    json!([{"sku": "TEA-001", "quantity": 2}, {"sku": "MUG-001", "quantity": 1}])
}

#[tokio::test]
async fn the_replica_converges_under_reordering_and_duplicates_and_tickets_show_it() {
    let (participant, support, router) = support().await;
    let (order_id, customer_id) = (Uuid::now_v7(), Uuid::now_v7());
    let placed: OrderPlaced = serde_json::from_value(
        json!({"order_id": order_id, "customer_id": customer_id, "lines": lines(), "version": 1}),
    )
    .expect("placed");
    let confirmed: OrderConfirmed = serde_json::from_value(json!({
        "order_id": order_id, "customer_id": customer_id, "version": 4,
        "lines": [{"sku": "TEA-001", "name": "Sencha", "quantity": 2, "unit_price": {"amount": 850, "currency": "EUR"}},
                  {"sku": "MUG-001", "name": "Mug", "quantity": 1, "unit_price": {"amount": 1800, "currency": "EUR"}}],
        "total": {"amount": 3500, "currency": "EUR"}}))
    .expect("confirmed");
    // The confirmation first, then the placement twice as two messages (the same message twice
    // is the inbox's business, covered by the bus suite; the same fact twice is the merge's).
    participant.publish(&event(order_id, &confirmed)).await;
    participant.publish(&event(order_id, &placed)).await;
    participant.publish(&event(order_id, &placed)).await;
    participant.publish(&event(order_id, &confirmed)).await;

    let started = Instant::now();
    let replica = loop {
        if let Some(replica) = support.replica(order_id).await.expect("replica")
            && replica.item_count.is_some()
            && replica.status == "confirmed"
        {
            break replica;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the replica converges");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((replica.item_count, replica.source_version), (Some(3), 4));
    assert_eq!(replica.total.map(|t| t.amount), Some(3500));

    // A second order, rejected, reported before its placement.
    let other = Uuid::now_v7();
    let rejected =
        OrderRejected { order_id: other, customer_id, reason: RejectionReason::OutOfStock, version: 2 };
    participant.publish(&event(other, &rejected)).await;
    let placed_other: OrderPlaced = serde_json::from_value(
        json!({"order_id": other, "customer_id": customer_id, "lines": lines(), "version": 1}),
    )
    .expect("placed");
    participant.publish(&event(other, &placed_other)).await;
    let started = Instant::now();
    while support.replica(other).await.expect("replica").is_none_or(|r| r.item_count.is_none()) {
        assert!(started.elapsed() < Duration::from_secs(10), "the second replica converges");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let other_replica = support.replica(other).await.expect("replica").expect("exists");
    assert_eq!(
        (other_replica.status.as_str(), other_replica.reason.as_deref()),
        ("rejected", Some("out_of_stock"))
    );

    let opened = call(
        &router,
        Method::POST,
        "/tickets",
        Some(json!({"customer_id": customer_id, "order_id": order_id, "subject": "Cracked mug", "message": "It arrived broken."})),
    )
    .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    let id = opened.body["id"].as_str().expect("id").to_owned();
    let ticket = call(&router, Method::GET, &format!("/tickets/{id}"), None).await;
    assert_eq!(ticket.body["order"]["status"], "confirmed", "{}", ticket.body);
    assert_eq!(ticket.body["order"]["item_count"], 3);
    participant.stop().await;
}

#[tokio::test]
async fn tickets_open_take_replies_and_close_once() {
    let (participant, _support, router) = support().await;
    let customer = Uuid::now_v7();
    let opened = call(
        &router,
        Method::POST,
        "/tickets",
        Some(json!({"customer_id": customer, "subject": "Hello", "message": "A question"})),
    )
    .await;
    assert_eq!(opened.status, StatusCode::CREATED);
    let id = opened.body["id"].as_str().expect("id").to_owned();
    let reply = call(
        &router,
        Method::POST,
        &format!("/tickets/{id}/messages"),
        Some(json!({"author": "support", "message": "An answer"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let ticket = call(&router, Method::GET, &format!("/tickets/{id}"), None).await;
    let authors: Vec<_> =
        ticket.body["messages"].as_array().expect("messages").iter().map(|m| m["author"].clone()).collect();
    assert_eq!(authors, [json!("customer"), json!("support")]);
    assert!(ticket.body.get("order").is_none());

    let open =
        call(&router, Method::GET, &format!("/tickets?status=open&customer_id={customer}"), None).await;
    assert_eq!(open.body["items"].as_array().map(Vec::len), Some(1));
    let closed = call(&router, Method::POST, &format!("/tickets/{id}/close"), None).await;
    assert_eq!((closed.status, closed.body["status"].clone()), (StatusCode::OK, json!("closed")));
    let again = call(&router, Method::POST, &format!("/tickets/{id}/close"), None).await;
    assert_eq!((again.status, again.problem_code()), (StatusCode::CONFLICT, "ticket_closed"));
    let late = call(
        &router,
        Method::POST,
        &format!("/tickets/{id}/messages"),
        Some(json!({"author": "customer", "message": "Hello?"})),
    )
    .await;
    assert_eq!((late.status, late.problem_code()), (StatusCode::CONFLICT, "ticket_closed"));
    let none =
        call(&router, Method::GET, &format!("/tickets?status=open&customer_id={customer}"), None).await;
    assert_eq!(none.body["items"], json!([]));

    for (path, body, field) in [
        ("/tickets", json!({"customer_id": customer, "subject": " ", "message": "x"}), "subject"),
        (
            "/tickets",
            json!({"customer_id": customer, "subject": "x", "message": "y".repeat(5001)}),
            "message",
        ),
        (
            "/tickets",
            json!({"customer_id": customer, "subject": "x", "message": "y", "status": "closed"}),
            "",
        ),
        (&*format!("/tickets/{id}/messages"), json!({"author": "admin", "message": "x"}), "author"),
    ] {
        let answer = call(&router, Method::POST, path, Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            answer.body["errors"][0]["field"].as_str().unwrap_or_default().starts_with(field),
            "{}",
            answer.body
        );
    }
    let missing = call(&router, Method::GET, &format!("/tickets/{}", Uuid::now_v7()), None).await;
    assert_eq!((missing.status, missing.problem_code()), (StatusCode::NOT_FOUND, "not_found"));
    let bad = call(&router, Method::GET, "/tickets?status=lost", None).await;
    assert_eq!(bad.body["errors"][0]["field"], "status");
    participant.stop().await;
}
