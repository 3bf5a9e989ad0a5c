//! `tessera top` as a person uses it: in a real terminal (a detached tmux session of a fixed
//! size) every service's row appears, `s` moves the sort to the next column, `q` quits and
//! gives the terminal back; and `--json`, for scripts, is one overview with a row per service.
//! The distributed topology's check runs inside `distributed.rs`'s system.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Up;

/// Every row `top` shows: the five services and the gateway.
pub(crate) const ROWS: [&str; 6] = ["customers", "gateway", "inventory", "orders", "payments", "support"];

/// A detached tmux session of its own (its own server, on a socket no other test uses) running
/// `tessera` with some arguments; the server is killed when dropped.
struct Tmux {
    socket: String,
    /// The configuration, and the file the command's exit status is written to: tmux's own
    /// record of it (`pane_dead_status`) may never come, as its server can miss the SIGCHLD.
    files: tempfile::TempDir,
}

impl Tmux {
    fn start(command: &[&str]) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let socket = format!("tessera-top-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let files = tempfile::tempdir().expect("a folder");
        let config = files.path().join("tmux.conf");
        // Read as the server starts, so the pane and its screen outlive the command however
        // fast it exits.
        std::fs::write(&config, "set -g remain-on-exit on\n").expect("write it");
        let status = files.path().join("status");
        let started = Command::new("tmux")
            .args(["-L", &socket, "-f"])
            .arg(&config)
            .args(["new-session", "-d", "-x", "160", "-y", "40", "-s", "top", "--", "sh", "-c"])
            .arg(format!("RUST_LOG=error \"$0\" \"$@\"; echo $? > '{}'", status.display()))
            .arg(env!("CARGO_BIN_EXE_tessera"))
            .args(command)
            .output()
            .expect("run tmux");
        assert!(started.status.success(), "tmux: {}", String::from_utf8_lossy(&started.stderr));
        Self { socket, files }
    }

    /// The command's exit status, once it has exited.
    fn exit_status(&self) -> Option<String> {
        let status = std::fs::read_to_string(self.files.path().join("status")).ok()?;
        status.ends_with('\n').then(|| status.trim().to_owned())
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux").args(["-L", &self.socket]).args(args).output().expect("run tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    fn press(&self, key: &str) {
        let sent = self.tmux(&["send-keys", "-t", "top", key]);
        assert!(sent.status.success(), "send-keys: {}", String::from_utf8_lossy(&sent.stderr));
    }

    /// The screen once `shows` accepts it, failing with the last screen after `within`.
    fn wait_for(&self, what: &str, within: Duration, shows: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if shows(&screen) {
                return screen;
            }
            assert!(started.elapsed() < within, "no {what} within {within:?}; the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether the pane shows the alternate screen (a full-screen program's) rather than the
    /// terminal's own.
    fn alternate_screen(&self) -> bool {
        let shown = self.tmux(&["display-message", "-p", "-t", "top", "#{alternate_on}"]);
        String::from_utf8_lossy(&shown.stdout).trim() == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// Waits until every service of `up` has sampled its store once (the outbox gauges), so that
/// the first reading `top` takes already has every service in it: a service's rates need its
/// figures in both readings.
fn warmed_up(up: &Up) {
    let started = Instant::now();
    loop {
        let (_, metrics) = crate::http::request(&up.base, "GET", "/metrics", None, &[]);
        let metrics = metrics.as_str().unwrap_or_default().to_owned();
        let sampled =
            |service: &str| metrics.contains(&format!("tessera_outbox_unsent{{service=\"{service}\"}}"));
        if ROWS.iter().all(|service| sampled(service)) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "every service samples its store: {metrics}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The cells of `service`'s row in the services table (the table's borders left out).
fn row<'a>(screen: &'a str, service: &str) -> Option<Vec<&'a str>> {
    screen.lines().find_map(|line| {
        let cells: Vec<&str> = line.split(['│', ' ']).filter(|cell| !cell.is_empty()).collect();
        (cells.first() == Some(&service)).then_some(cells)
    })
}

/// Runs `tessera top --url <base> <extra…>` in a terminal: it reads `<base><reads>`, each of
/// [`ROWS`] appears, up, the header marks the sorted column and `s` moves the mark, `q` ends
/// the process with status 0 and leaves the terminal as it found it.
pub(crate) fn check_in_terminal(base: &str, reads: &str, extra: &[&str]) {
    if tessera_testkit::tool_checked_with(
        "tmux",
        &["-V"],
        "tessera top terminal test",
        "apt-get install tmux",
    )
    .is_none()
    {
        return;
    }
    let mut command = vec!["top", "--url", base];
    command.extend_from_slice(extra);
    let tmux = Tmux::start(&command);
    let screen = tmux.wait_for("row up for every service", Duration::from_secs(30), |screen| {
        ROWS.iter().all(|service| row(screen, service).is_some_and(|cells| cells.get(1) == Some(&"up")))
    });
    assert!(screen.contains(&format!("{base}{reads} ")), "read from {reads}:\n{screen}");
    assert!(screen.contains("1 service ▲"), "sorted by service, A to Z, at first:\n{screen}");
    let order: Vec<&str> = screen
        .lines()
        .filter_map(|line| ROWS.iter().copied().find(|service| row(line, service).is_some()))
        .collect();
    assert_eq!(order, ROWS, "one row each, by name:\n{screen}");

    tmux.press("s");
    tmux.wait_for("sort by health", Duration::from_secs(5), |screen| {
        screen.contains("2 health ▲") && !screen.contains("1 service ▲")
    });
    tmux.press("s");
    let screen = tmux.wait_for("sort by requests", Duration::from_secs(5), |screen| {
        screen.contains("3 req/s ▼") && screen.contains("sorted by req/s ▼")
    });
    assert!(ROWS.iter().all(|service| row(&screen, service).is_some()), "still every row:\n{screen}");

    tmux.press("q");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = tmux.exit_status() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "top still runs 5 s after q:\n{}", tmux.screen());
        std::thread::sleep(Duration::from_millis(100));
    };
    let after = tmux.screen();
    assert_eq!(status, "0", "{after}");
    assert!(!tmux.alternate_screen(), "the terminal is back on its own screen:\n{after}");
    assert!(!after.contains("subscriptions"), "the screen was given back:\n{after}");
}

/// `tessera top --json` against `base` while `traffic` runs: one overview, a row per service.
pub(crate) fn json_overview(base: &str, traffic: impl FnOnce() + Send) -> Value {
    let output = std::thread::scope(|scope| {
        let top = scope.spawn(|| {
            crate::tessera()
                .args(["top", "--url", base, "--json", "--every", "2"])
                .env("RUST_LOG", "error")
                .output()
                .expect("run tessera top --json")
        });
        traffic();
        top.join().expect("tessera top --json")
    });
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let overview: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("not one JSON document ({e}):\n{}", String::from_utf8_lossy(&output.stdout))
    });
    let services: Vec<&str> = overview["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|row| row["service"].as_str())
        .collect();
    assert_eq!(services, ROWS, "a row per service, by name: {overview}");
    assert!(overview["services"].as_array().into_iter().flatten().all(|r| r["health"] == "up"), "{overview}");
    assert!(overview["interval_seconds"].as_f64().is_some_and(|s| s >= 2.0), "{overview}");
    overview
}

/// The figures of `service`'s row.
pub(crate) fn service_row<'a>(overview: &'a Value, service: &str) -> &'a Value {
    overview["services"]
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["service"] == service))
        .unwrap_or_else(|| panic!("no {service} row: {overview}"))
}

#[test]
fn top_shows_every_service_sorts_and_quits_in_a_terminal() {
    let data = tempfile::tempdir().expect("data");
    let up = Up::start(data.path());
    assert_eq!(up.call("GET", "/api/v1/products", None).0, 200);
    warmed_up(&up);
    // On the same host, `up`'s one page is the whole system: no sign-in needed.
    check_in_terminal(&up.base, "/metrics", &[]);
}

#[test]
fn top_json_is_one_overview_with_rates_from_the_interval() {
    let data = tempfile::tempdir().expect("data");
    let up = Up::start(data.path());
    assert_eq!(up.call("GET", "/api/v1/products", None).0, 200);
    warmed_up(&up);
    let overview = json_overview(&up.base, || {
        // Spread over most of the interval, so that most of it falls between the readings.
        for _ in 0..15 {
            assert_eq!(up.call("GET", "/api/v1/products", None).0, 200);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let gateway = service_row(&overview, "gateway");
    assert!(gateway["requests_per_second"].as_f64().is_some_and(|r| r > 0.0), "{overview}");
    assert_eq!(gateway["errors_per_second"], 0.0, "{overview}");
    assert!(gateway["p99_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{overview}");
    for service in ROWS {
        let row = service_row(&overview, service);
        assert!(row["outbox_unsent"].is_number() && row["requests_per_second"].is_number(), "{row}");
    }
    let plain = crate::tessera()
        .args(["top", "--url", &up.base, "--once", "--every", "0.5", "--sort", "requests"])
        .output()
        .expect("run tessera top --once");
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(plain.status.success(), "{}", String::from_utf8_lossy(&plain.stderr));
    assert!(text.starts_with("service "), "{text}");
    for service in ROWS {
        assert!(text.lines().any(|line| line.starts_with(&format!("{service} "))), "{service}:\n{text}");
    }
}

#[test]
fn top_without_a_terminal_asks_for_once_or_json() {
    let output =
        crate::tessera().args(["top", "--url", "http://127.0.0.1:9"]).output().expect("run tessera top");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--once or --json"), "{stderr}");
}
