//! The operator's tools a user of Temporal's or Dapr's CLI expects: an order and its sagas by
//! id (text and `--json`, each step timed), sagas searched and filtered, shell completions, man
//! pages, and the commit in `--version`.

use std::time::Duration;

use serde_json::Value;

use crate::{Up, card, place, tessera};

fn run(args: &[&str]) -> (bool, String, String) {
    let output = tessera().args(args).output().expect("run tessera");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn orders_show_and_sagas_show_print_an_order_and_its_sagas_as_text_and_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let up = Up::start(&dir.path().join("data"));
    let (_, token) = up.customer("operator-tools@example.com");
    let declined = card(&up, &token, "4000000000000002");
    let order = place(&up, &token, &declined, "TEA-001", 1);
    up.settle(&token, std::slice::from_ref(&order), Duration::from_secs(30));

    let (ok, text, stderr) = run(&["orders", "show", &order, "--url", &up.base]);
    assert!(ok, "{stderr}");
    for expected in [
        &format!("order     {order}") as &str,
        "status    rejected (payment_declined)",
        "TEA-001",
        "orders.Placed",
        "place_order",
    ] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
    let (ok, json, stderr) = run(&["orders", "show", &order, "--url", &up.base, "--json"]);
    assert!(ok, "{stderr}");
    let json: Value = serde_json::from_str(&json).expect("one JSON object");
    assert_eq!(json["order"]["status"], "rejected");
    assert!(json["history"]["events"].as_array().is_some_and(|e| e.len() >= 2), "{json}");

    // The saga goes on undoing the reservation after the rejection: wait until it is done.
    let started = std::time::Instant::now();
    let sagas = loop {
        let (ok, json, stderr) = run(&["sagas", "show", &order, "--url", &up.base, "--json"]);
        assert!(ok, "{stderr}");
        let sagas: Value = serde_json::from_str(&json).expect("a JSON array");
        if sagas[0]["status"] == "compensated" {
            break sagas;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the saga was not compensated: {sagas}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(sagas[0]["saga"], "place_order", "{sagas}");
    let steps: Vec<(&str, &str, &str)> = sagas[0]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or("?"),
                s["kind"].as_str().unwrap_or("?"),
                s["outcome"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("reserve_stock", "forward", "succeeded"),
            ("authorise_payment", "forward", "failed"),
            ("reserve_stock", "compensation", "compensated"),
        ]
    );
    let (ok, text, stderr) = run(&["sagas", "show", &order, "--url", &up.base]);
    assert!(ok, "{stderr}");
    for expected in ["place_order  compensated", "authorise_payment", "failed", "↩ undo", "compensated"] {
        assert!(text.contains(expected), "{expected:?} in:\n{text}");
    }
    let (ok, text, stderr) = run(&["sagas", "list", "--url", &up.base]);
    assert!(ok && text.contains("no stuck sagas"), "{text}{stderr}");
    let (ok, text, stderr) = run(&["sagas", "list", "-q", &order, "--url", &up.base]);
    assert!(ok && text.contains(&order) && text.contains("compensated"), "{text}{stderr}");
    let (ok, json, stderr) = run(&[
        "sagas",
        "list",
        "--state",
        "failed",
        "--type",
        "place_order",
        "--limit",
        "1",
        "--url",
        &up.base,
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let page: Value = serde_json::from_str(&json).expect("one JSON object");
    assert_eq!(page["items"][0]["id"], order.as_str(), "{page}");
    let (ok, _, stderr) = run(&["sagas", "list", "--state", "lost", "--url", &up.base]);
    assert!(!ok && stderr.contains("state"), "{stderr}");
    let (ok, _, stderr) = run(&["sagas", "show", "0195f2a8-5f7e-7c3a-9d3e-3b1f6a0c2d11", "--url", &up.base]);
    assert!(!ok && stderr.contains("404"), "{stderr}");

    // The compose file's health check: `probe` passes on /ready, fails on anything else.
    let (ok, _, stderr) = run(&["probe", "--url", &format!("{}/ready", up.base)]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(&["probe", "--url", &format!("{}/nowhere", up.base)]);
    assert!(!ok && stderr.contains("answered 404"), "{stderr}");

    // A wrong password or an unknown order is one human line, exit 1.
    let output = tessera()
        .args(["orders", "show", &order, "--url", &up.base, "--password", "wrong"])
        .output()
        .expect("run tessera");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: cannot sign in"));
    let (ok, _, stderr) = run(&["orders", "show", "0195f2a8-5f7e-7c3a-9d3e-3b1f6a0c2d11", "--url", &up.base]);
    assert!(!ok && stderr.contains("404") && stderr.contains("no such order"), "{stderr}");
}

#[test]
fn completions_and_man_pages_are_generated_for_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let (ok, script, stderr) = run(&["completions", shell]);
        assert!(ok, "{stderr}");
        for command in ["up", "serve", "dlq", "orders", "sagas"] {
            assert!(script.contains(command), "{shell} completes {command}");
        }
    }
    let (ok, page, stderr) = run(&["man"]);
    assert!(ok && page.contains(".TH tessera"), "{page}{stderr}");
    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, _, stderr) = run(&["man", "--out-dir", dir.path().to_str().expect("utf-8")]);
    assert!(ok, "{stderr}");
    for page in ["tessera.1", "tessera-up.1", "tessera-dlq.1", "tessera-orders.1"] {
        assert!(dir.path().join(page).exists(), "{page} written");
    }
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let (ok, version, _) = run(&["--version"]);
    assert!(ok);
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let expected = std::env::var("TESSERA_GIT_COMMIT").ok().or(head).unwrap_or_else(|| "unknown".to_owned());
    assert_eq!(
        version.trim(),
        format!("tessera {} (commit {expected})", env!("CARGO_PKG_VERSION")),
        "built from this checkout's HEAD"
    );
}

#[test]
fn config_print_json_is_one_object_with_secrets_hidden_and_host_names_resolved() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = tessera()
        .args(["config", "print", "--json", "--listen", "localhost:9103"])
        .current_dir(dir.path())
        .output()
        .expect("run tessera config print");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let config: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(config["listen"], "127.0.0.1:9103", "localhost resolved: {config}");
    assert_eq!(config["gateway"]["staff"][0]["password"], "***");
}

/// Every operator command that reads stores names them the same way, and a place without a
/// Tessera store is an error naming where it looked, never an empty answer.
#[test]
fn ops_commands_address_stores_alike_and_refuse_a_place_without_one() {
    let empty = tempfile::tempdir().expect("a folder");
    let data = empty.path().to_str().expect("utf-8");
    for args in [
        vec!["dlq", "list", "--service", "inventory", "--data", data],
        vec!["projections", "list", "--data", data],
        vec!["audit", "verify", "--data", data],
        vec!["verify", "--data", data],
    ] {
        let (ok, _, stderr) = run(&args);
        assert!(!ok, "{args:?} fails");
        assert!(
            stderr.contains(data) && stderr.contains("--data"),
            "{args:?} says where it looked: {stderr}"
        );
    }
    let Some(postgres) = tessera_testkit::server_url("TESSERA_TEST_POSTGRES", "operator tools on PostgreSQL")
    else {
        return;
    };
    // A database that is there but holds no Tessera store.
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let prefix = format!("ops{}", nanos % 1_000_000_000_000);
    let url = tessera_store::database_url(&postgres, &format!("{prefix}_inventory"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(tessera_store::create_database(&url)).expect("an empty database");
    for args in
        [vec!["dlq", "list", "--service", "inventory"], vec!["projections", "list"], vec!["audit", "verify"]]
    {
        let mut args = args;
        args.extend(["--database-url", &postgres, "--database-prefix", &prefix]);
        let (ok, _, stderr) = run(&args);
        assert!(!ok, "{args:?} fails");
        assert!(stderr.contains(&format!("{prefix}_")), "{args:?} names the database: {stderr}");
    }
    runtime.block_on(tessera_store::drop_database(&url)).expect("dropped");
}
