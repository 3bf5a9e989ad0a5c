//! Mistakes a user makes, and what the binary answers: one human line and exit 1 (never a
//! backtrace, even with `RUST_BACKTRACE=1`), a usage error (exit 2) for a missing option, and
//! an API that explains a wrong body in its own words.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::Stdio;

use serde_json::json;

use crate::http::request;
use crate::{Up, tessera};

/// Runs `tessera up` to its failure with backtraces asked for: (exit code, stderr).
fn failed_up(args: &[&str]) -> (Option<i32>, String) {
    let output = tessera()
        .arg("up")
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run tessera up");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn assert_one_human_error(stderr: &str) {
    assert!(stderr.starts_with("error: "), "a human message: {stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "no backtrace for a user's error: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn up_on_a_taken_port_fails_in_one_line_without_a_backtrace_and_writes_nothing() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = taken.local_addr().expect("its address").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let (code, stderr) = failed_up(&["--listen", &address, "--data", data.to_str().expect("utf-8")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_one_human_error(&stderr);
    assert!(stderr.contains(&format!("cannot listen on {address}")), "{stderr}");
    assert!(!data.exists(), "nothing written to the data folder, not even the folder");
}

#[test]
fn a_second_up_on_the_same_data_folder_is_refused_naming_the_first_ones_pid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let first = Up::start(&data);
    let (code, stderr) = failed_up(&["--listen", "127.0.0.1:0", "--data", data.to_str().expect("utf-8")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_one_human_error(&stderr);
    assert!(stderr.contains(&format!("pid {}", first.child.id())), "names the first one: {stderr}");
    // The first one is untouched and still serves.
    let (status, _) = first.call("GET", "/ready", None);
    assert_eq!(status, 200);
    // Once it is gone (even by SIGKILL), the folder is free again.
    first.kill();
    let second = Up::start(&data);
    assert_eq!(second.call("GET", "/health", None).0, 200);
}

#[test]
fn up_listens_on_a_host_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = tessera()
        .args(["up", "--listen", "localhost:0", "--data"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tessera up");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.starts_with("listening on "))
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let base = line.strip_prefix("listening on ").unwrap_or_else(|| panic!("no address printed: {line:?}"));
    assert!(base.starts_with("http://127.0.0.1:"), "localhost resolved to its IPv4 address: {base}");
}

#[test]
fn dlq_without_a_service_is_a_usage_error_and_its_help_shows_no_empty_default() {
    let output = tessera().args(["dlq", "list"]).output().expect("run tessera dlq list");
    assert_eq!(output.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--service"), "{stderr}");
    let help = tessera().args(["dlq", "list", "--help"]).output().expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(!help.contains("[default: ]"), "{help}");
}

#[test]
fn a_wrong_order_body_is_explained_in_the_apis_words() {
    let dir = tempfile::tempdir().expect("temp dir");
    let up = Up::start(&dir.path().join("data"));
    let (_, token) = up.customer("wrong-body@example.com");
    let bearer = format!("Bearer {token}");
    for (key, body, detail) in [
        (
            "words-1",
            json!({"items": [{"sku": "TEA-001", "quantity": "2"}], "payment_token": "tok_x"}),
            "items[0].quantity: must be an integer",
        ),
        (
            "words-2",
            json!({"items": [{"sku": "TEA-001", "quantity": 1}], "payment_token": "tok_x", "colour": "red"}),
            "colour: is not a field of this request",
        ),
        ("words-3", json!({"items": [{"sku": "TEA-001", "quantity": 1}]}), "payment_token: is required"),
    ] {
        let headers = [("Authorization", bearer.as_str()), ("Idempotency-Key", key)];
        let (code, problem) = request(&up.base, "POST", "/api/v1/orders", Some(&body), &headers);
        assert_eq!((code, problem["detail"].as_str()), (422, Some(detail)), "{body} → {problem}");
        let text = problem.to_string();
        for rust in ["expected", "u32", "i64", "request_key", "`"] {
            assert!(!text.contains(rust), "no Rust words ({rust}) in {problem}");
        }
    }
}
