//! One order, one trace: `up` exports its spans over OTLP/HTTP to a small collector here, and
//! the order's saga (gateway, orders, inventory, payments, and every message between them)
//! arrives as one trace whose spans all hang from the gateway's request. Its log lines, as
//! JSON, carry the trace id and the service.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Up, card, place};

#[derive(Clone, Debug)]
struct Span {
    trace: String,
    id: String,
    parent: String,
    name: String,
    service: String,
}

/// An OTLP/HTTP (JSON) receiver: every span posted to `/v1/traces`, kept.
fn collector() -> (String, Arc<Mutex<Vec<Span>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let kept = kept.clone();
            std::thread::spawn(move || serve(stream, &kept));
        }
    });
    (format!("http://{address}"), spans)
}

fn serve(stream: std::net::TcpStream, kept: &Mutex<Vec<Span>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.trim().eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if line.starts_with("POST /v1/traces") {
            let document: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            kept.lock().expect("lock").extend(spans_of(&document));
        }
        let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn spans_of(document: &Value) -> Vec<Span> {
    let mut spans = Vec::new();
    let list = |value: &Value| value.as_array().cloned().unwrap_or_default();
    for resource in list(&document["resourceSpans"]) {
        for scope in list(&resource["scopeSpans"]) {
            for span in list(&scope["spans"]) {
                let service = list(&span["attributes"])
                    .iter()
                    .find(|a| a["key"] == "service")
                    .and_then(|a| a["value"]["stringValue"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let text = |key: &str| span[key].as_str().unwrap_or_default().to_owned();
                spans.push(Span {
                    trace: text("traceId"),
                    id: text("spanId"),
                    parent: text("parentSpanId"),
                    name: text("name"),
                    service,
                });
            }
        }
    }
    spans
}

#[test]
fn a_placed_order_is_one_trace_across_gateway_orders_inventory_and_payments() {
    let (endpoint, spans) = collector();
    let data = tempfile::tempdir().expect("data");
    let log = data.path().join("up.log");
    let up = Up::spawn(data.path(), &["--otlp-endpoint", &endpoint, "--log-format", "json"], Some(&log));
    let (_, token) = up.customer("traced@example.com");
    let card = card(&up, &token, "4242424242424242");
    let order = place(&up, &token, &card, "TEA-001", 1);
    let views = up.settle(&token, std::slice::from_ref(&order), Duration::from_secs(20));
    assert_eq!(views[0]["status"], "confirmed", "{}", views[0]);

    let wanted: HashSet<&str> = ["gateway", "orders", "inventory", "payments"].into();
    let started = Instant::now();
    let (trace, members) = loop {
        let all = spans.lock().expect("lock").clone();
        let placement = all.iter().find(|s| s.name == "POST /api/v1/orders" && s.service == "gateway");
        if let Some(placement) = placement {
            let members: Vec<Span> = all.iter().filter(|s| s.trace == placement.trace).cloned().collect();
            let services: HashSet<&str> = members.iter().map(|s| s.service.as_str()).collect();
            let handled = members.iter().any(|s| s.name == "handle payments.PaymentAuthorised")
                || members.iter().any(|s| s.name.starts_with("handle payments."));
            if wanted.is_subset(&services) && handled {
                break (placement.trace.clone(), members);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "one trace with spans of every service; spans so far: {:?}",
            all.iter()
                .map(|s| (&s.name, &s.service, &s.trace[..6.min(s.trace.len())], &s.parent))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Correctly parented: one root (the gateway's request), every other span's parent is in
    // the trace.
    std::thread::sleep(Duration::from_secs(1));
    let members: Vec<Span> = {
        let all = spans.lock().expect("lock").clone();
        let later: Vec<Span> = all.into_iter().filter(|s| s.trace == trace).collect();
        if later.len() >= members.len() { later } else { members }
    };
    let ids: HashMap<&str, &Span> = members.iter().map(|s| (s.id.as_str(), s)).collect();
    let roots: Vec<&Span> = members.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(roots.len(), 1, "one root: {roots:?}");
    assert_eq!((roots[0].name.as_str(), roots[0].service.as_str()), ("POST /api/v1/orders", "gateway"));
    for span in &members {
        assert!(
            span.parent.is_empty() || ids.contains_key(span.parent.as_str()),
            "{} ({}) hangs from a span outside the trace",
            span.name,
            span.service
        );
    }
    let messages = members.iter().filter(|s| s.name.starts_with("handle ")).count();
    assert!(messages >= 3, "the saga's messages are in the trace: {members:?}");
    // The orders service's own request (gateway → orders) is a child of the gateway's.
    let orders_request = members
        .iter()
        .find(|s| s.service == "orders" && s.name == "POST /orders")
        .expect("the orders service's request span");
    assert_eq!(ids[orders_request.parent.as_str()].service, "gateway");

    // Logs: JSON lines; those inside a request name its trace and service.
    drop(up);
    let text = std::fs::read_to_string(log.with_extension("stderr")).unwrap_or_default();
    let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty(), "JSON log lines: {text}");
    assert_eq!(
        lines.len(),
        text.lines().filter(|l| !l.trim().is_empty()).count(),
        "every line is JSON: {text}"
    );
    let in_trace = lines.iter().filter(|l| l["span"]["trace_id"] == trace.as_str()).count();
    assert!(in_trace > 0, "some log line names the order's trace {trace}: {text}");
    assert!(
        lines.iter().filter(|l| l["span"]["trace_id"].is_string()).all(|l| l["span"]["service"].is_string()),
        "a line with a trace id names its service"
    );
}
