//! The distributed gateway's `/openapi.json` when a service starts after it: the routes of a
//! service that was down at the gateway's start appear once it answers, with no restart.
//! Needs `TESSERA_TEST_POSTGRES` and `TESSERA_TEST_NATS`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::http::request;
use crate::tessera;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_address() -> String {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").to_string()
}

/// Starts `tessera serve <args>` and waits for its address.
fn serve(args: &[String], env: &[(&str, &str)]) -> Running {
    let mut child = tessera()
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tessera serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    while let Some(Ok(line)) = lines.next() {
        if line.starts_with("listening on ") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Running(child)
}

#[test]
fn the_gateway_documents_a_service_that_starts_after_it() {
    let _turn = crate::distributed_turn();
    let (Some(postgres), Some(nats)) = (
        tessera_testkit::server_url("TESSERA_TEST_POSTGRES", "gateway's documents"),
        tessera_testkit::server_url("TESSERA_TEST_NATS", "gateway's documents"),
    ) else {
        return;
    };
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let prefix = format!("docs{}", nanos % 1_000_000_000_000);
    let gateway = free_address();
    let services: Vec<(&str, String)> = ["inventory", "orders", "payments", "customers", "support"]
        .into_iter()
        .map(|s| (s, free_address()))
        .collect();
    let env = [
        ("TESSERA_DATABASE_URL", postgres.as_str()),
        ("TESSERA_NATS_URL", nats.as_str()),
        ("TESSERA_DATABASE_PREFIX", prefix.as_str()),
        ("TESSERA_NATS_NAMESPACE", prefix.as_str()),
        ("TESSERA_MASTER_KEY", "dGVzc2VyYS1vcGVuYXBpLWRvY3VtZW50cy0zMmJ5dGU="),
    ];
    let mut args = vec!["gateway".to_owned(), format!("--listen={gateway}")];
    args.extend(services.iter().map(|(name, address)| format!("--service-url={name}=http://{address}")));
    // Every service is down while the gateway starts.
    let _gateway = serve(&args, &env);
    let base = format!("http://{gateway}");
    let paths = || {
        let (code, document) = request(&base, "GET", "/openapi.json", None, &[]);
        assert_eq!(code, 200);
        document["paths"]
            .as_object()
            .map(|paths| paths.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert!(!paths().iter().any(|path| path == "/api/v1/products"), "inventory is not up yet");

    let inventory = &services[0].1;
    let jwks = format!("--jwks-url={base}/.well-known/jwks.json");
    let _inventory = serve(&["inventory".to_owned(), format!("--listen={inventory}"), jwks], &env);
    let started = Instant::now();
    while !paths().iter().any(|path| path == "/api/v1/products") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "inventory's routes never appeared: {:?}",
            paths()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(_inventory);
    drop(_gateway);
    let purged = tessera().args(["down", "--purge"]).envs(env).output().expect("tessera down");
    assert!(purged.status.success(), "{}", String::from_utf8_lossy(&purged.stderr));
}
