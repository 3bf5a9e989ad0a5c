//! Erasure through the real binary: a customer whose every personal field holds a canary
//! places an order, saves a card and opens a ticket, then asks to be forgotten. Every service
//! reports its part done, the person shows as `[erased]` in what stays (the order), nothing
//! about them opens any more, and no file of the data folder holds the canary in clear.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

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

/// Files under `folder`, at any depth.
fn objects_in(folder: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(folder) else { return 0 };
    entries.flatten().map(|entry| if entry.path().is_dir() { objects_in(&entry.path()) } else { 1 }).sum()
}

#[test]
fn an_erased_customer_is_forgotten_by_every_service() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let log = dir.path().join("up.log");
    let up = Up::start_logged(&data, &log);
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
    // An attachment too: kept sealed in the data folder's `attachments`, deleted by the erasure.
    let (ticket, attached) = ticket_with_attachment(&up, &me, &order, canary);
    assert_eq!(attached["content_type"], "text/plain; charset=utf-8", "{attached}");
    assert_eq!(objects_in(&data.join("attachments")), 1, "the attachment is in the data folder");

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
    assert_eq!(progress["status"], "complete");
    let services: Vec<&str> =
        progress["services"].as_object().expect("services").keys().map(String::as_str).collect();
    assert_eq!(services, ["customers", "orders", "payments", "support"]);
    assert!(progress["services"].as_object().expect("services").values().all(|s| s == "done"), "{progress}");

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

    // The read models rebuild from the event store after the erasure.
    for (service, projection) in [("orders", "order_summaries"), ("orders", "analytics_sales")] {
        let output = crate::tessera()
            .args(["projections", "rebuild", service, projection, "--wait", "--timeout", "60", "--data"])
            .arg(&data)
            .output()
            .expect("run tessera projections rebuild");
        assert!(output.status.success(), "{projection}: {}", String::from_utf8_lossy(&output.stderr));
    }
    let (code, listed) = up.call_as(&admin, "GET", &format!("/api/v1/orders?customer_id={id}"), None);
    assert_eq!((code, listed["items"].as_array().map(Vec::len)), (200, Some(1)), "{listed}");

    assert_eq!(objects_in(&data.join("attachments")), 0, "the erasure deleted the attachment");
    up.kill();
    let hits = files_containing(&data, canary);
    assert!(hits.is_empty(), "the canary is in clear in {hits:?}");
    let hits = files_containing(dir.path(), canary);
    assert!(hits.is_empty(), "the canary is in the log: {hits:?}");
}

/// Luhn-valid runs of 13 to 19 digits that look like a card network's numbers (Visa,
/// Mastercard, Amex, Discover, JCB, Diners: prefix and length), in `bytes`. Other long numbers
/// (times in microseconds, counters) are not mistaken for one unless they match both a
/// network's prefix and length and the checksum.
pub(crate) fn card_numbers(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut run = String::new();
    // A run inside a longer token (hex ids, base64) is not a number someone wrote down.
    let mut inside_a_word = false;
    let mut previous = b' ';
    for &byte in bytes.iter().chain(std::iter::once(&b' ')) {
        if byte.is_ascii_digit() {
            if run.is_empty() {
                inside_a_word = previous.is_ascii_alphabetic();
            }
            run.push(char::from(byte));
        } else {
            let whole = !inside_a_word && !byte.is_ascii_alphabetic();
            if whole && (13..=19).contains(&run.len()) && looks_like_a_card(&run) && luhn(&run) {
                found.push(run.clone());
            }
            run.clear();
        }
        previous = byte;
    }
    found
}

fn looks_like_a_card(digits: &str) -> bool {
    let prefix = |n: usize| digits[..n].parse::<u32>().unwrap_or(0);
    let len = digits.len();
    (digits.starts_with('4') && [13, 16, 19].contains(&len))
        || ((51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4))) && len == 16
        || [34, 37].contains(&prefix(2)) && len == 15
        || (prefix(4) == 6011 || prefix(2) == 65 || (644..=649).contains(&prefix(3))) && len >= 16
        || (3528..=3589).contains(&prefix(4)) && len >= 16
        || ([36, 38].contains(&prefix(2)) || (300..=305).contains(&prefix(3))) && len == 14
}

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[test]
fn no_card_number_or_cvc_is_written_anywhere() {
    assert!(luhn("4242424242424242") && !luhn("4242424242424241"), "the scanner's own check");
    assert_eq!(card_numbers(b"x 4000000000000002 y 1795000000000000 z 3997400000000"), ["4000000000000002"]);
    assert_eq!(card_numbers(b"5555555555554444,378282246310005"), ["5555555555554444", "378282246310005"]);
    assert!(card_numbers(b"019a2b4347100000000c7f").is_empty(), "part of a hex id");
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let log = dir.path().join("up.log");
    let up = Up::start_logged(&data, &log);
    let (_, me) = up.customer("cards@example.com");
    let cards =
        ["4242424242424242", "4000000000000002", "4000000000009995", "4000000000000119", "4000000000003220"];
    let canary_cvc = "8642";
    let mut orders = Vec::new();
    for number in cards {
        let body = json!({"card_number": number, "exp_month": 12, "exp_year": 2031, "cvc": canary_cvc});
        let (code, saved) = up.call_as(&me, "POST", "/api/v1/payment-methods", Some(body));
        assert_eq!(code, 201, "{saved}");
        let token = saved["token"].as_str().expect("token").to_owned();
        assert!(!token.contains(&number[6..]), "the token does not carry the number");
        orders.push(place(&up, &me, &token, "TEA-001", 1));
    }
    // A malformed one too: what is refused is not kept either.
    let body =
        json!({"card_number": "4242424242424243", "exp_month": 12, "exp_year": 2031, "cvc": canary_cvc});
    assert_eq!(up.call_as(&me, "POST", "/api/v1/payment-methods", Some(body)).0, 422);
    up.settle(&me, &orders, Duration::from_secs(30));
    up.kill();

    let mut files: Vec<std::path::PathBuf> =
        std::fs::read_dir(&data).expect("data").flatten().map(|e| e.path()).collect();
    files.push(log.clone());
    files.push(log.with_extension("stderr"));
    assert!(files.iter().any(|f| f.ends_with("payments.db")), "{files:?}");
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_default();
        let numbers = card_numbers(&bytes);
        assert!(numbers.is_empty(), "{} holds card numbers: {numbers:?}", file.display());
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        assert!(!text.contains("\"cvc\""), "{} holds a CVC field", file.display());
        assert!(!text.contains(&format!("\"{canary_cvc}\"")), "{} holds the canary CVC", file.display());
    }
}

fn sales(up: &Up, admin: &str) -> Vec<Value> {
    let (code, report) = up.call_as(admin, "GET", "/api/v1/admin/analytics/sales", None);
    assert_eq!(code, 200, "{report}");
    report["items"].as_array().expect("items").clone()
}

#[test]
fn sales_analytics_count_by_day_product_and_market_with_pseudonyms_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let up = Up::start(&data);
    let (gb_id, gb) = up.customer("gb-buyer@example.com");
    let norway = json!({"email": "no-buyer@example.com", "name": "Nora", "password": "correct horse battery",
        "address": {"line1": "Karl Johans gate 1", "city": "Oslo", "postal_code": "0154", "country": "NO"}});
    let (code, created) = up.call("POST", "/api/v1/customers", Some(norway));
    assert_eq!(code, 201, "{created}");
    let no_id = created["id"].as_str().expect("id").to_owned();
    let no = up.sign_in("no-buyer@example.com", "correct horse battery");
    let admin = up.sign_in("admin@tessera.local", "admin");
    let (gb_card, no_card) = (card(&up, &gb, "4242424242424242"), card(&up, &no, "4242424242424242"));
    let declined = card(&up, &gb, "4000000000000002");
    let mut orders = vec![
        place(&up, &gb, &gb_card, "TEA-001", 2),
        place(&up, &gb, &gb_card, "TEA-001", 1),
        place(&up, &no, &no_card, "TEA-001", 3),
    ];
    let rejected = place(&up, &gb, &declined, "TEA-001", 5);
    let cancelled = place(&up, &no, &no_card, "TEA-001", 4);
    orders.push(rejected.clone());
    orders.push(cancelled.clone());
    up.settle(&gb, &orders[..2], Duration::from_secs(20));
    up.settle(&no, &[orders[2].clone(), cancelled.clone()], Duration::from_secs(20));
    assert_eq!(up.call_as(&no, "POST", &format!("/api/v1/orders/{cancelled}/cancel"), None).0, 202);
    // The report below must be read once the cancellation is done: read earlier, a projection
    // that has not yet seen the cancelled order's confirmation also sums to 6 units, and a
    // rebuild in the middle of the cancellation counts it as sold.
    let started = Instant::now();
    while up.status(&no, &cancelled)["status"] != "cancelled" {
        assert!(started.elapsed() < Duration::from_secs(20), "the cancellation completes");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, product) = up.call("GET", "/api/v1/products/TEA-001", None);
    let price = product["price"]["amount"].as_i64().expect("price");

    // The async projection catches up a moment after the events commit.
    let started = Instant::now();
    let rows = loop {
        let rows = sales(&up, &admin);
        let units: i64 = rows.iter().filter_map(|r| r["units"].as_i64()).sum();
        if units == 6 {
            break rows;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "sold: 2 + 1 (GB) and 3 (NO): {rows:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let market = |country: &str| rows.iter().find(|r| r["country"] == country).cloned().expect(country);
    let (gb_row, no_row) = (market("GB"), market("NO"));
    assert_eq!(
        (gb_row["units"].as_i64(), gb_row["orders"].as_i64(), gb_row["buyers"].as_i64()),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(
        (no_row["units"].as_i64(), no_row["orders"].as_i64(), no_row["buyers"].as_i64()),
        (Some(3), Some(1), Some(1))
    );
    assert_eq!(gb_row["revenue"].as_i64(), Some(3 * price), "{gb_row}");
    assert_eq!(gb_row["sku"], "TEA-001");
    let text = serde_json::to_string(&rows).expect("json");
    for secret in [&gb_id, &no_id, &orders[0], &cancelled] {
        assert!(!text.contains(secret.as_str()), "the report names {secret}");
    }
    let (code, _) = up.call_as(&gb, "GET", "/api/v1/admin/analytics/sales", None);
    assert_eq!(code, 403, "customers may not read the analytics");

    // A rebuild from the event store, on the running system, gives the same report.
    let output = crate::tessera()
        .args(["projections", "rebuild", "orders", "analytics_sales", "--wait", "--timeout", "60", "--data"])
        .arg(&data)
        .output()
        .expect("run tessera projections rebuild");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(sales(&up, &admin), rows, "a rebuild gives the same report");
    up.kill();

    // The table itself holds no identity: no customer id, no order id.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let table = runtime.block_on(async {
        let config = tessera_store::StoreConfig::Sqlite {
            path: data.join("orders.db"),
            options: tessera_store::SqliteOptions::default(),
        };
        let store = tessera_store::Store::open(&config, &[]).await.expect("orders.db");
        let rows = store
            .query(tessera_store::Statement::new(
                "SELECT order_key, buyer, sku, country, day, status FROM analytics_sales",
            ))
            .await
            .expect("analytics rows");
        rows.iter()
            .map(|row| {
                ["order_key", "buyer", "sku", "country", "day", "status"]
                    .map(|column| row.text(column).unwrap_or_default().to_owned())
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    assert!(table.contains("sold") && table.contains("cancelled"), "{table}");
    for secret in [&gb_id, &no_id, &orders[0], &orders[1], &orders[2], &cancelled] {
        assert!(!table.contains(secret.as_str()), "the analytics table holds {secret}");
    }
}

#[test]
fn the_master_key_rotates_without_touching_sealed_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let up = Up::start(&data);
    let (customer, _) = up.customer("rotate@example.com");
    up.kill();
    let old = std::fs::read_to_string(data.join("master.key")).expect("the development key");
    let new = "cm90YXRlZC1tYXN0ZXIta2V5LWZvci10aGUtdGVzdCE=";
    let rotate = |previous: &str| {
        crate::tessera()
            .args(["vault", "rotate", "--data"])
            .arg(&data)
            .env("TESSERA_MASTER_KEY", new)
            .env("TESSERA_MASTER_KEY_PREVIOUS", previous)
            .output()
            .expect("run tessera vault rotate")
    };
    let output = rotate(old.trim());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let said = String::from_utf8_lossy(&output.stdout);
    // The customer's data key, and the one sealing the gateway's token signing keys.
    assert!(said.contains("rewrapped 2 data keys"), "{said}");
    assert!(!rotate("").status.success(), "nothing to rotate from without the old key");

    // The customer's sealed name opens with the new key alone; the old one opens nothing now.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let sqlite = |name: &str| tessera_store::StoreConfig::Sqlite {
            path: data.join(name),
            options: tessera_store::SqliteOptions::default(),
        };
        let customers = tessera_store::Store::open(&sqlite("customers.db"), &[]).await.expect("customers.db");
        let rows = customers
            .query(
                tessera_store::Statement::new("SELECT name FROM customers WHERE id = $1")
                    .bind(customer.as_str()),
            )
            .await
            .expect("row");
        let sealed: tessera_vault::Sealed = rows[0].text("name").expect("name").parse().expect("sealed");
        let open = |key: &str| {
            let (sqlite, sealed, customer) = (sqlite("vault.db"), sealed.clone(), customer.clone());
            let key = tessera_vault::MasterKey::from_base64(key).expect("key");
            async move {
                let store = tessera_store::Store::open(&sqlite, &[tessera_vault::MIGRATIONS])
                    .await
                    .expect("vault.db");
                let vault = tessera_vault::Vault::open(store, key, Vec::new()).await?;
                vault.decrypt_str(&customer, &sealed).await
            }
        };
        match open(new).await.expect("opens with the new key") {
            tessera_vault::Decrypted::Plain(name) => assert_eq!(name, "Ada Lovelace"),
            tessera_vault::Decrypted::Erased => panic!("not erased"),
        }
        assert!(open(old.trim()).await.is_err(), "the old key unwraps nothing any more");
    });
}

/// A ticket about `order` with a file attached, each carrying `canary` in its text and name;
/// the ticket's id and the attachment as answered.
pub(crate) fn ticket_with_attachment(up: &Up, me: &str, order: &str, canary: &str) -> (String, Value) {
    let (code, ticket) = up.call_as(
        me,
        "POST",
        "/api/v1/tickets",
        Some(json!({"order_id": order, "subject": format!("{canary} subject"), "message": format!("{canary} message")})),
    );
    assert_eq!(code, 201, "{ticket}");
    let ticket = ticket["id"].as_str().expect("ticket").to_owned();
    let form = format!(
        "--e2e-boundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{canary}.txt\"\r\n\r\n\
         {canary} attachment\r\n--e2e-boundary--\r\n"
    );
    let (code, attached) = crate::http::request_raw(
        &up.base,
        "POST",
        &format!("/api/v1/tickets/{ticket}/attachments"),
        Some(form.as_bytes()),
        &[
            ("Authorization", &format!("Bearer {me}")),
            ("Content-Type", "multipart/form-data; boundary=e2e-boundary"),
        ],
    );
    assert_eq!(code, 201, "{attached}");
    (ticket, attached)
}
