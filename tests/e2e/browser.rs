//! The storefront and the operator console in a real browser: `tessera up`, then Debian's
//! chromium driven by playwright-core (`tests/browser/scenarios.mjs`). Needs
//! `TESSERA_TEST_BROWSER` (the chromium binary) and `npm ci --prefix tests/browser`; without
//! the variable the test says SKIPPED and passes, except in CI, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Up;

fn browser_or_skip() -> Option<String> {
    // With the variable set, `npm ci --prefix tests/browser` must have run too.
    tessera_testkit::server_url(
        "TESSERA_TEST_BROWSER",
        "browser (the chromium binary, e.g. /usr/bin/chromium)",
    )
}

fn browser_tests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser")
}

/// Files a dead letter in orders' store, as its customers subscription would after giving up
/// on a message: the public API offers no way to make a handler fail for good, so the letter
/// is a real message (the registration `customer` caused, read from customers' outbox) parked
/// by hand. Orders has already taken that message (it ignores registrations), so a retry finds
/// it applied and the letter goes away, as after a real fix.
fn seed_dead_letter(data: &Path) {
    let orders = rusqlite::Connection::open(data.join("orders.db")).expect("open orders.db");
    orders.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    let customers = data.join("customers.db");
    orders
        .execute("ATTACH DATABASE ?1 AS customers", [customers.to_str().expect("a UTF-8 path")])
        .expect("attach customers.db");
    let started = Instant::now();
    loop {
        let filed = orders
            .execute(
                "INSERT INTO tessera_dead_letters (consumer, message_id, envelope, error, attempts, state, failed_at)
                 SELECT 'orders__customers', o.message_id, e.envelope,
                        'handler failed: seeded by the browser test', 5, 'parked', o.created_at
                 FROM customers.tessera_outbox o
                 JOIN customers.tessera_outbox_envelopes e ON e.position = o.position
                 ORDER BY o.position DESC LIMIT 1",
                [],
            )
            .expect("file a dead letter");
        if filed == 1 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "customers' outbox stayed empty");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_newcomer_orders_in_the_shop_and_an_admin_follows_it_and_retries_a_dead_letter_in_the_console() {
    let Some(chromium) = browser_or_skip() else { return };
    let scripts = browser_tests();
    assert!(
        scripts.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser`"
    );
    let data = tempfile::tempdir().expect("temp dir");
    let up = Up::start(data.path());
    up.customer("dead.letter@example.com");
    seed_dead_letter(data.path());

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    println!("browser screenshots: {}", shots.display());
    let output = Command::new("node")
        .arg(scripts.join("scenarios.mjs"))
        .arg(&up.base)
        .arg(&shots)
        .env("TESSERA_TEST_BROWSER", chromium)
        .output()
        .expect("run node (is Node.js installed?)");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(output.status.success(), "the browser scenarios failed ({}): {stderr}", output.status);
    println!("browser screenshots: {}", shots.display());
}
