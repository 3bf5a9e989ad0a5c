//! A real Prometheus scrapes the embedded system and loads the alert rules: every target is
//! up, the request metrics arrive with their labels, and every rule evaluates.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Up;
use crate::http::request;

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn query(base: &str, path: &str) -> Value {
    let (code, body) = request(base, "GET", path, None, &[]);
    assert_eq!(code, 200, "{path}: {body}");
    body
}

#[test]
fn a_real_prometheus_scrapes_every_target_and_loads_the_alert_rules() {
    let Some(binary) =
        tessera_testkit::tool("prometheus", "Prometheus scrape test", "apt-get install prometheus")
    else {
        return;
    };
    let data = tempfile::tempdir().expect("data");
    let up = Up::start(data.path());
    // Some traffic, so that request metrics exist.
    for _ in 0..5 {
        assert_eq!(up.call("GET", "/api/v1/products", None).0, 200);
    }
    let (code, metrics) = request(&up.base, "GET", "/metrics", None, &[]);
    assert_eq!(code, 200);
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    for name in [
        "tessera_http_requests_total",
        "tessera_http_request_duration_seconds_bucket",
        "tessera_store_commit_seconds",
    ] {
        assert!(metrics.contains(name), "/metrics has {name}");
    }

    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let target = up.base.trim_start_matches("http://").to_owned();
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus/alerts.yml");
    let config = data.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: tessera\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        ),
    )
    .expect("write the configuration");
    let storage = data.path().join("tsdb");
    let prometheus = Prometheus(
        Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let ready = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && request(&base, "GET", "/-/ready", None, &[]).0 == 200;
        if ready {
            let targets = query(&base, "/api/v1/targets");
            let active = targets["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
            if !active.is_empty() && active.iter().all(|t| t["health"] == "up") {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "every target up within a minute");
        std::thread::sleep(Duration::from_millis(250));
    }
    // The samples arrived with the service and route labels.
    let started = Instant::now();
    loop {
        let result =
            query(&base, "/api/v1/query?query=tessera_http_requests_total%7Bservice%3D%22gateway%22%7D");
        let series = result["data"]["result"].as_array().cloned().unwrap_or_default();
        if series.iter().any(|s| s["metric"]["route"] == "/api/v1/products") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "gateway requests scraped: {result}");
        std::thread::sleep(Duration::from_millis(250));
    }
    // Every alert rule loaded and evaluates without error; none fires on a healthy system.
    let started = Instant::now();
    loop {
        let rules = query(&base, "/api/v1/rules");
        let all: Vec<Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = all.iter().all(|r| r["health"] == "ok");
        if all.len() == 8 && evaluated {
            assert!(
                all.iter().all(|r| r["state"] == "inactive"),
                "nothing fires on a healthy system: {rules}"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the rules evaluate: {rules}");
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(prometheus);

    // `tessera top` reads the same endpoint: one overview, with the gateway's traffic in it.
    let reader = std::thread::spawn({
        let base = up.base.clone();
        move || {
            for _ in 0..40 {
                request(&base, "GET", "/api/v1/products", None, &[]);
                std::thread::sleep(Duration::from_millis(25));
            }
        }
    });
    let output =
        crate::tessera().args(["top", "--once", "--every", "0.8", "--url", &up.base]).output().expect("top");
    reader.join().expect("reader");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "top: {text}{}", String::from_utf8_lossy(&output.stderr));
    let gateway =
        text.lines().find(|l| l.starts_with("gateway")).unwrap_or_else(|| panic!("a gateway row: {text}"));
    // service, health, req/s, …
    let rate: f64 = gateway.split_whitespace().nth(2).and_then(|r| r.parse().ok()).expect("req/s");
    assert!(rate > 0.0, "the gateway's requests per second: {text}");
}
