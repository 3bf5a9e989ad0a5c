//! Clients that wait instead of polling: `Prefer: wait=N` on placing and reading an order, a
//! retry with the same key during the wait, a waiter whose connection drops, and the order's
//! Server-Sent Events, resumed with `Last-Event-ID`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::{exchange, header};
use crate::{Up, card, uuid_like};

/// `POST /orders` with `Prefer: wait=N` and the given key: (status, head, body).
pub(crate) fn place_waiting(
    base: &str,
    bearer: &str,
    card: &str,
    key: &str,
    wait: u64,
) -> (u16, String, Value) {
    place_sku_waiting(base, bearer, "TEA-001", card, key, wait)
}

/// [`place_waiting`] for one unit of `sku`.
pub(crate) fn place_sku_waiting(
    base: &str,
    bearer: &str,
    sku: &str,
    card: &str,
    key: &str,
    wait: u64,
) -> (u16, String, Value) {
    let order = json!({"items": [{"sku": sku, "quantity": 1}], "payment_token": card});
    let auth = format!("Bearer {bearer}");
    let prefer = format!("wait={wait}");
    let headers = [("Authorization", auth.as_str()), ("Idempotency-Key", key), ("Prefer", prefer.as_str())];
    exchange(base, "POST", "/api/v1/orders", Some(order.to_string().as_bytes()), &headers)
}

/// The events of a whole stream (it ends once the order settles): (id, event, data) each.
pub(crate) fn events(
    base: &str,
    bearer: &str,
    order: &str,
    last_event_id: Option<&str>,
) -> Vec<(u64, String, Value)> {
    let auth = format!("Bearer {bearer}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(last) = last_event_id {
        headers.push(("Last-Event-ID", last));
    }
    let (status, head, body) =
        exchange(base, "GET", &format!("/api/v1/orders/{order}/events"), None, &headers);
    assert_eq!(status, 200, "{head}\n{body}");
    assert_eq!(header(&head, "content-type").as_deref(), Some("text/event-stream"), "{head}");
    parse_events(body.as_str().unwrap_or_default())
}

fn parse_events(text: &str) -> Vec<(u64, String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let field = |name: &str| {
                block.lines().find_map(|line| line.strip_prefix(name).map(|v| v.trim_start().to_owned()))
            };
            let id = field("id:")?.parse().ok()?;
            let data = serde_json::from_str(&field("data:")?).ok()?;
            Some((id, field("event:")?, data))
        })
        .collect()
}

fn waiters(up: &Up) -> f64 {
    let (_, metrics) = crate::http::request(&up.base, "GET", "/metrics", None, &[]);
    metrics
        .as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("tessera_gateway_orders_waited_for "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn clients_wait_for_orders_to_settle_instead_of_polling() {
    let dir = tempfile::tempdir().expect("temp dir");
    let up = Up::start(&dir.path().join("data"));
    let (_, me) = up.customer("wait@example.com");
    let approved = card(&up, &me, "4242424242424242");
    let declined = card(&up, &me, "4000000000000002");
    // Answers after 5 s, past the 2 s payment timeout `Up` starts with: rejected at about 2 s.
    let slow = card(&up, &me, "4000000000003220");

    // Placing, waiting: the final state in the answer, 201.
    let key = uuid_like();
    let (status, head, confirmed) = place_waiting(&up.base, &me, &approved, &key, 10);
    assert_eq!(status, 201, "{head}\n{confirmed}");
    assert_eq!(confirmed["status"], "confirmed", "{confirmed}");
    assert_eq!(confirmed["customer"]["name"], "Ada Lovelace", "the composed view");
    assert_eq!(header(&head, "preference-applied").as_deref(), Some("wait=10"), "{head}");
    // The stored answer is the final one.
    let (status, head, replayed) = place_waiting(&up.base, &me, &approved, &key, 10);
    assert_eq!((status, replayed["status"].clone()), (201, json!("confirmed")), "{head}");
    assert_eq!(header(&head, "idempotent-replayed").as_deref(), Some("true"));
    let (status, _, rejected) = place_waiting(&up.base, &me, &declined, &uuid_like(), 10);
    assert_eq!(
        (status, rejected["status"].clone(), rejected["reason"].clone()),
        (201, json!("rejected"), json!("payment_declined"))
    );

    // A wait shorter than the saga: 202 pending when it runs out, with the wait applied.
    let started = Instant::now();
    let (status, head, pending) = place_waiting(&up.base, &me, &slow, &uuid_like(), 1);
    assert_eq!((status, pending["status"].clone()), (202, json!("pending")), "{head}\n{pending}");
    assert!(started.elapsed() >= Duration::from_millis(900), "answered before the wait ran out");
    assert_eq!(header(&head, "preference-applied").as_deref(), Some("wait=1"));
    let order = pending["id"].as_str().expect("id").to_owned();
    // Reading, waiting: answered when the payment times out, not at the end of the wait.
    let auth = format!("Bearer {me}");
    let started = Instant::now();
    let (status, head, view) = exchange(
        &up.base,
        "GET",
        &format!("/api/v1/orders/{order}"),
        None,
        &[("Authorization", auth.as_str()), ("Prefer", "wait=20")],
    );
    assert_eq!(
        (status, view["status"].clone(), view["reason"].clone()),
        (200, json!("rejected"), json!("payment_timeout")),
        "{head}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "woken by the rejection, not by the deadline");

    // The order's events: the whole story, then from where a client left off.
    let story = events(&up.base, &me, &order, None);
    let statuses: Vec<&str> = story.iter().map(|(_, event, _)| event.as_str()).collect();
    assert_eq!(statuses, ["pending", "rejected"], "{story:?}");
    assert_eq!(story[1].2["reason"], "payment_timeout");
    let resumed = events(&up.base, &me, &order, Some(&story[0].0.to_string()));
    assert_eq!(resumed.iter().map(|(_, e, _)| e.as_str()).collect::<Vec<_>>(), ["rejected"]);
    // Someone else's order has no stream for them.
    let (_, eve) = up.customer("eve-wait@example.com");
    let eve_auth = format!("Bearer {eve}");
    let (status, _, _) = exchange(
        &up.base,
        "GET",
        &format!("/api/v1/orders/{order}/events"),
        None,
        &[("Authorization", eve_auth.as_str())],
    );
    assert_eq!(status, 404);
    let (status, _, _) = exchange(
        &up.base,
        "GET",
        &format!("/api/v1/orders/{order}/events"),
        None,
        &[("Authorization", auth.as_str()), ("Last-Event-ID", "soon")],
    );
    assert_eq!(status, 422, "a Last-Event-ID that is no event id");

    // A retry with the same key during the wait waits too, and gets the same answer.
    let key = uuid_like();
    let first = std::thread::spawn({
        let (base, me, slow, key) = (up.base.clone(), me.clone(), slow.clone(), key.clone());
        move || place_waiting(&base, &me, &slow, &key, 15)
    });
    std::thread::sleep(Duration::from_millis(300));
    let (status, head, retried) = place_waiting(&up.base, &me, &slow, &key, 15);
    let (first_status, _, first_answer) = first.join().expect("first request");
    assert_eq!((first_status, status), (201, 201), "{head}\n{retried}");
    assert_eq!(retried["id"], first_answer["id"], "one order for one key");
    assert_eq!(retried["status"], "rejected");

    // A waiter whose client hangs up: the order still settles, a retry with its key answers with
    // it as it is now, and nothing is left waiting.
    let key = uuid_like();
    let order_body = json!({"items": [{"sku": "TEA-001", "quantity": 1}], "payment_token": slow}).to_string();
    {
        let authority = up.base.strip_prefix("http://").expect("http");
        let mut stream = TcpStream::connect(authority).expect("connect");
        write!(
            stream,
            "POST /api/v1/orders HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {me}\r\nIdempotency-Key: {key}\r\nPrefer: wait=15\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{order_body}",
            order_body.len()
        )
        .expect("send");
        std::thread::sleep(Duration::from_millis(300));
    }
    // And a stream whose client hangs up after the first event.
    let (status, _, pending) = place_waiting(&up.base, &me, &slow, &uuid_like(), 0);
    assert_eq!(status, 202, "{pending}");
    let streamed = pending["id"].as_str().expect("id").to_owned();
    {
        let authority = up.base.strip_prefix("http://").expect("http");
        let mut stream = TcpStream::connect(authority).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        write!(stream, "GET /api/v1/orders/{streamed}/events HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {me}\r\n\r\n")
            .expect("send");
        let mut lines = BufReader::new(stream);
        let mut line = String::new();
        while !line.starts_with("event: pending") {
            line.clear();
            assert!(lines.read_line(&mut line).expect("read") > 0, "the stream ended before its first event");
        }
        assert!(waiters(&up) >= 1.0, "the stream's waiter is registered while the order is pending");
    }
    let started = Instant::now();
    loop {
        let (status, head, answer) = place_waiting(&up.base, &me, &slow, &key, 0);
        assert_eq!(header(&head, "idempotent-replayed").as_deref(), Some("true"), "orders kept the key");
        if answer["status"] != "pending" {
            assert_eq!(
                (status, answer["status"].clone()),
                (201, json!("rejected")),
                "a replay answers with the order as it is now"
            );
            break;
        }
        assert_eq!(status, 202, "{answer}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the hung-up request's order never settled: {status} {answer}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = Instant::now();
    while waiters(&up) > 0.0 {
        assert!(started.elapsed() < Duration::from_secs(20), "waiters left behind by clients that hung up");
        std::thread::sleep(Duration::from_millis(200));
    }
    let rest = events(&up.base, &me, &streamed, Some("1"));
    assert_eq!(rest.iter().map(|(_, e, _)| e.as_str()).collect::<Vec<_>>(), ["rejected"]);
}
