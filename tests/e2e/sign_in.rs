//! Sign-in under a flood: 200 concurrent sign-ins, right and wrong passwords, against one
//! `tessera up`. Password checks are bounded per process (one per core, a short wait for a
//! turn, then 503) and failures are throttled per account and address (429), so the process
//! neither runs out of memory nor stops answering real sign-ins.

use std::time::Instant;

use serde_json::json;

use crate::Up;
use crate::http::request;

/// The most memory the process may have touched, from `/proc/<pid>/status`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn two_hundred_concurrent_sign_ins_neither_exhaust_the_process_nor_starve_real_answers() {
    let data = tempfile::tempdir().expect("temporary folder");
    let up = Up::start(&data.path().join("data"));
    let accounts: Vec<String> = (0..4).map(|n| format!("flood-{n}@example.com")).collect();
    for email in &accounts {
        up.customer(email);
    }
    let started = Instant::now();
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..200)
            .map(|n| {
                let (base, email) = (up.base.clone(), accounts[n % accounts.len()].clone());
                scope.spawn(move || {
                    let password = if n % 2 == 0 { "correct horse battery" } else { "wrong horse" };
                    let body = json!({"email": email, "password": password});
                    request(&base, "POST", "/api/v1/auth/token", Some(&body), &[]).0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a sign-in thread")).collect()
    });
    let took = started.elapsed().as_secs_f64();
    let count = |status: u16| answers.iter().filter(|s| **s == status).count();
    let unexpected: Vec<&u16> = answers.iter().filter(|s| ![200, 401, 429, 503].contains(*s)).collect();
    assert!(unexpected.is_empty(), "only 200, 401, 429 or 503: {unexpected:?}");
    let real = count(200) + count(401);
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    println!(
        "200 sign-ins in {took:.2} s: {} × 200, {} × 401, {} × 429, {} × 503",
        count(200),
        count(401),
        count(429),
        count(503)
    );
    assert!(real as f64 >= cores * took, "at least one real answer per core-second: {real} in {took:.2} s");
    let peak = peak_rss_kib(up.child.id());
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB, over 256 MiB");
    let (code, _) = up.call("GET", "/health", None);
    assert_eq!(code, 200, "the process still answers");
}
