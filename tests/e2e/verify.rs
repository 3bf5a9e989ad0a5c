//! `tessera verify` against the real binary's data: a healthy system passes every check, and
//! each way of breaking the system leaves a mark that a named check reports. The breakages
//! are written into copies of the stores as the bug would have left them, because the
//! services defend in depth (inventory and payments also key their effects by order), so a
//! switched-off inbox alone cannot make them apply a message twice.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::{Up, card, place, tessera};

/// `tessera verify --json` on `data`: (exit success, report).
fn verify(data: &Path) -> (bool, Value) {
    let output = tessera()
        .args(["verify", "--settle-seconds", "0", "--json", "--data"])
        .arg(data)
        .output()
        .expect("run tessera verify");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("verify printed no JSON ({e}): {stdout}\n{}", String::from_utf8_lossy(&output.stderr))
    });
    (output.status.success(), report)
}

fn violations(report: &Value, check: &str) -> u64 {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == check)
        .unwrap_or_else(|| panic!("no check named {check}: {report}"))["violations"]
        .as_u64()
        .expect("a count")
}

/// A copy of every file of the data folder (stores, their WAL files, keys).
fn copy_of(data: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("a folder");
    for entry in std::fs::read_dir(data).expect("the data folder") {
        let entry = entry.expect("an entry");
        if entry.file_type().expect("a type").is_file() {
            std::fs::copy(entry.path(), copy.path().join(entry.file_name())).expect("copy");
        }
    }
    copy
}

fn sql(data: &Path, store: &str, statements: &str) {
    let connection = rusqlite::Connection::open(data.join(format!("{store}.db"))).expect("open the store");
    connection.execute_batch(statements).expect("the breakage applies");
}

#[test]
fn verify_passes_a_healthy_system_and_catches_each_broken_invariant() {
    let data = tempfile::tempdir().expect("a data folder");
    let up = Up::start(data.path());
    let (_, me) = up.customer("verify@example.com");
    let approved = card(&up, &me, "4242424242424242");
    let declined = card(&up, &me, "4000000000000002");
    let mut orders: Vec<String> = (0..3).map(|_| place(&up, &me, &approved, "TEA-001", 1)).collect();
    orders.extend((0..2).map(|_| place(&up, &me, &declined, "TEA-002", 2)));
    up.settle(&me, &orders, Duration::from_secs(30));
    // Past confirmation, commit and capture run on: give them a moment, then stop the system.
    let settled = std::time::Instant::now();
    loop {
        let (ok, report) = verify(data.path());
        if ok {
            assert_eq!(report["orders"]["confirmed"], 3, "{report}");
            assert_eq!(report["orders"]["rejected"], 2, "{report}");
            for check in report["checks"].as_array().expect("checks") {
                assert!(check["checked"].as_u64().expect("a count") > 0, "{check} looked at nothing");
            }
            break;
        }
        assert!(settled.elapsed() < Duration::from_secs(20), "a healthy system fails verify: {report}");
        std::thread::sleep(Duration::from_millis(200));
    }
    up.kill();
    assert!(verify(data.path()).0, "the stopped system no longer verifies");

    // Each breakage: where it is written, what it does, and the check that must report it.
    let breakages: [(&str, &str, &str, &str); 5] = [
        (
            "inbox dedupe off: a reply recorded twice in an order's stream",
            "orders",
            "INSERT INTO tessera_events (stream_id, version, event_id, name, schema_version, payload, metadata, recorded_at)
             SELECT stream_id, version + 1,
               -- Another UUID: the last hex digit moved on by one.
               printf('%s%x', substr(event_id, 1, 35), instr('0123456789abcdef', substr(event_id, 36, 1)) % 16), name, schema_version, payload, metadata, recorded_at
             FROM tessera_events e WHERE name = 'orders.Confirmed'
               AND version = (SELECT max(version) FROM tessera_events WHERE stream_id = e.stream_id) LIMIT 1;",
            "order events once",
        ),
        (
            "inbox dedupe off: a reservation's stock taken twice",
            "inventory",
            "UPDATE products SET available = available - 1, reserved = reserved + 1 WHERE sku = 'TEA-001';",
            "stock conserved",
        ),
        (
            "stock not released on payment failure",
            "inventory",
            "UPDATE products SET available = available - 4, reserved = reserved + 4 WHERE sku = 'TEA-002';
             UPDATE reservations SET state = 'held' WHERE sku = 'TEA-002' AND state = 'released';",
            "reservations match orders",
        ),
        (
            "a capture command dropped: the payment never taken",
            "payments",
            "DELETE FROM captures WHERE order_id = (SELECT min(order_id) FROM captures);",
            "payments match orders",
        ),
        (
            "a message never sent",
            "orders",
            "UPDATE tessera_outbox SET sent_at = NULL WHERE position = (SELECT max(position) FROM tessera_outbox);",
            "outbox drained",
        ),
    ];
    // A command orders sent payments, forgotten by payments as if it had never arrived.
    let authorisation: String = rusqlite::Connection::open(data.path().join("orders.db"))
        .expect("open orders")
        .query_row(
            "SELECT message_id FROM tessera_outbox WHERE name = 'payments.AuthorisePayment' LIMIT 1",
            [],
            |row| row.get(0),
        )
        .expect("an authorisation command in orders' outbox");
    let dropped = format!("DELETE FROM tessera_inbox WHERE message_id = '{authorisation}';");
    let breakages = breakages.into_iter().map(|(w, s, q, c)| (w, s, q.to_owned(), c)).chain([(
        "a message dropped between the outbox and its target",
        "payments",
        dropped,
        "commands applied",
    )]);
    for (what, store, statements, check) in breakages {
        let broken = copy_of(data.path());
        sql(broken.path(), store, &statements);
        let (ok, report) = verify(broken.path());
        assert!(!ok, "verify passed with {what}: {report}");
        assert!(violations(&report, check) > 0, "{what}: `{check}` reported nothing: {report}");
    }
}
