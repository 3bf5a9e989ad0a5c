//! The system under test as processes this command owns: one `tessera up` (embedded) or one
//! `tessera serve` per service and the gateway (distributed), each on an address fixed before
//! the first start, so that a killed process comes back where its callers expect it.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::verify::StoreTarget;

/// The master key the distributed processes share (base64 of 32 bytes); the embedded one makes
/// its own in the data folder.
const MASTER_KEY: &str = "dGVzc2VyYS1jaGFvcy1ydW4tbWFzdGVyLWtleS0zMmI=";
pub const ADMIN: (&str, &str) = ("admin@tessera.local", "admin");

/// Every process of the distributed topology: each service of the registry, and the gateway.
fn distributed_processes() -> impl Iterator<Item = &'static str> {
    crate::registry::names().chain([tessera_gateway::SERVICE])
}

/// How a process is started: its arguments, where it listens, what it logs to.
struct Spec {
    name: String,
    args: Vec<String>,
    address: String,
}

struct Process {
    spec: Spec,
    child: Option<Child>,
    paused: bool,
    starts: u32,
}

/// The card network a process is started with.
#[derive(Clone, Copy, Debug, Default)]
pub struct CardNetwork {
    pub failure_rate: f64,
    pub latency_ms: u64,
}

pub struct System {
    processes: BTreeMap<String, Process>,
    logs: PathBuf,
    pub gateway: String,
    pub stores: StoreTarget,
    /// The distributed databases' prefix, dropped at the end unless kept.
    databases: Option<(String, String)>,
}

fn free_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free port")?;
    Ok(listener.local_addr()?.to_string())
}

/// The NATS the distributed system runs on.
#[derive(Debug)]
pub struct Bus {
    pub url: String,
    pub namespace: String,
    /// `tessera nats auth`'s folder, when the server checks who connects.
    pub credentials: Option<PathBuf>,
}

impl System {
    /// One `tessera up` on `data`.
    pub fn embedded(data: &Path, logs: &Path) -> anyhow::Result<Self> {
        let address = free_address()?;
        let spec = Spec {
            name: "tessera".to_owned(),
            args: vec![
                "up".into(),
                format!("--data={}", data.display()),
                format!("--listen={address}"),
                "--payment-timeout=5".into(),
                "--slow-card-delay=2".into(),
            ],
            address: address.clone(),
        };
        let mut processes = BTreeMap::new();
        processes.insert(spec.name.clone(), Process { spec, child: None, paused: false, starts: 0 });
        Ok(Self {
            processes,
            logs: logs.to_path_buf(),
            gateway: format!("http://{address}"),
            stores: StoreTarget {
                data: data.to_path_buf(),
                database_url: None,
                database_prefix: "tessera".to_owned(),
            },
            databases: None,
        })
    }

    /// Every service and the gateway, each its own `tessera serve`.
    pub fn distributed(postgres: &str, bus: &Bus, prefix: &str, logs: &Path) -> anyhow::Result<Self> {
        let mut addresses = BTreeMap::new();
        for name in distributed_processes() {
            addresses.insert(name, free_address()?);
        }
        let gateway = addresses["gateway"].clone();
        let mut processes = BTreeMap::new();
        for name in distributed_processes() {
            let mut args = vec![
                "serve".to_owned(),
                name.to_owned(),
                format!("--listen={}", addresses[name]),
                format!("--database-url={postgres}"),
                format!("--database-prefix={prefix}"),
                format!("--nats-url={}", bus.url),
                format!("--nats-namespace={}", bus.namespace),
                "--payment-timeout=5".into(),
                "--slow-card-delay=2".into(),
            ];
            if name == "gateway" {
                for service in crate::registry::names() {
                    args.push(format!("--service-url={service}=http://{}", addresses[service]));
                }
                args.push(format!("--staff=admin:{}:{}", ADMIN.0, ADMIN.1));
            } else {
                args.push(format!("--jwks-url=http://{gateway}/.well-known/jwks.json"));
            }
            if let Some(credentials) = &bus.credentials {
                let seed = crate::bus_credentials::seed_file(credentials, name);
                args.push(format!("--nats-nkey-file={}", seed.display()));
            }
            if name == "support" {
                args.push(format!("--attachments-url=file://{}", logs.join("attachments").display()));
            }
            let spec = Spec { name: name.to_owned(), args, address: addresses[name].clone() };
            processes.insert(name.to_owned(), Process { spec, child: None, paused: false, starts: 0 });
        }
        Ok(Self {
            processes,
            logs: logs.to_path_buf(),
            gateway: format!("http://{gateway}"),
            stores: StoreTarget {
                data: PathBuf::new(),
                database_url: Some(postgres.to_owned()),
                database_prefix: prefix.to_owned(),
            },
            databases: Some((postgres.to_owned(), prefix.to_owned())),
        })
    }

    /// The process ids of the running processes.
    pub fn pids(&self) -> Vec<u32> {
        self.processes.values().filter_map(|p| p.child.as_ref().map(Child::id)).collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.processes.keys().cloned().collect()
    }

    /// The process that holds the card network (payments, or the one embedded process).
    pub fn payments(&self) -> String {
        if self.processes.contains_key("payments") { "payments".to_owned() } else { "tessera".to_owned() }
    }

    /// Starts every process (services before the gateway) and waits until each is ready.
    pub async fn start_all(&mut self) -> anyhow::Result<()> {
        for name in self.names() {
            if name != "gateway" {
                self.start(&name, CardNetwork::default()).await?;
            }
        }
        if self.processes.contains_key("gateway") {
            self.start("gateway", CardNetwork::default()).await?;
        }
        Ok(())
    }

    pub async fn start(&mut self, name: &str, network: CardNetwork) -> anyhow::Result<()> {
        let process = self.processes.get_mut(name).with_context(|| format!("no process {name}"))?;
        process.starts += 1;
        let log_path = self.logs.join(format!("{name}-{}.log", process.starts));
        let log = File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
        let child = Command::new(std::env::current_exe()?)
            .args(&process.spec.args)
            .arg(format!("--card-failure-rate={}", network.failure_rate))
            .arg(format!("--card-latency-ms={}", network.latency_ms))
            .env("TESSERA_MASTER_KEY", MASTER_KEY)
            .env("TESSERA_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        process.child = Some(child);
        process.paused = false;
        let address = process.spec.address.clone();
        wait_ready(name, &address, &log_path, Duration::from_secs(60)).await
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let process = self.processes.get_mut(name).with_context(|| format!("no process {name}"))?;
        if let Some(mut child) = process.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
        process.paused = false;
        Ok(())
    }

    fn signal(&mut self, name: &str, signal: &str) -> anyhow::Result<()> {
        let process = self.processes.get_mut(name).with_context(|| format!("no process {name}"))?;
        let Some(child) = &process.child else { bail!("{name} is not running") };
        let status = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status()?;
        if !status.success() {
            bail!("kill -{signal} {name} failed");
        }
        process.paused = signal == "STOP";
        Ok(())
    }

    pub fn pause(&mut self, name: &str) -> anyhow::Result<()> {
        self.signal(name, "STOP")
    }

    pub fn resume(&mut self, name: &str) -> anyhow::Result<()> {
        self.signal(name, "CONT")
    }

    /// Whatever a fault left stopped or paused, running again (with a healthy card network).
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        for name in self.names() {
            let process = &self.processes[&name];
            if process.paused {
                self.resume(&name)?;
            } else if process.child.is_none() {
                self.start(&name, CardNetwork::default()).await?;
            }
        }
        Ok(())
    }

    /// The start count per process (a restart is a start after the first).
    pub fn starts(&self) -> BTreeMap<String, u32> {
        self.processes.iter().map(|(name, p)| (name.clone(), p.starts)).collect()
    }

    /// Stops everything; drops the distributed databases unless `keep`.
    pub async fn shut_down(&mut self, keep: bool) {
        for name in self.names() {
            let _ = self.resume(&name);
            let _ = self.kill(&name);
        }
        if let (Some((postgres, prefix)), false) = (&self.databases, keep) {
            for service in distributed_processes().chain(["vault"]) {
                let url = tessera_store::database_url(postgres, &format!("{prefix}_{service}"));
                let _ = tessera_store::drop_database(&url).await;
            }
        }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        for process in self.processes.values_mut() {
            if let Some(mut child) = process.child.take() {
                if process.paused {
                    let _ = Command::new("kill").arg("-CONT").arg(child.id().to_string()).status();
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Polls `/ready` until it answers 200; a process that exits first is an error with its log.
async fn wait_ready(name: &str, address: &str, log: &Path, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if ready(address).await {
            return Ok(());
        }
        if started.elapsed() > limit {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(20).collect();
            bail!(
                "{name} was not ready on {address} within {limit:?}; its log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ready(address: &str) -> bool {
    use tessera_gateway::ServiceClient;
    let http = tessera_gateway::Http::new("chaos", &format!("http://{address}"));
    let Ok(request) = axum::http::Request::get("/ready").body(axum::body::Body::empty()) else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), http.send(request)).await,
        Ok(Ok(response)) if response.status() == 200
    )
}
