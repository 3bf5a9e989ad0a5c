//! A nats-server of a test's own, for suites that need the bus locked down as in production:
//! JetStream in a temporary folder, a free port, the `authorization` block the test gives
//! (`tessera nats auth`'s `auth.conf`), and TLS with a certificate made for it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nats-server binary: `TESSERA_NATS_SERVER`, else `nats-server` on the PATH or in
/// /usr/sbin; `None` after a loud SKIPPED line (a panic under `CI=true`).
pub fn server_binary(suite: &str) -> Option<String> {
    let candidates = std::env::var("TESSERA_NATS_SERVER")
        .into_iter()
        .chain(["nats-server".to_owned(), "/usr/sbin/nats-server".to_owned()]);
    for candidate in candidates {
        let runs = Command::new(&candidate).arg("--version").output().is_ok_and(|o| o.status.success());
        if runs {
            return Some(candidate);
        }
    }
    crate::skip(&format!(
        "the {suite} needs nats-server (apt-get install nats-server, or set TESSERA_NATS_SERVER)"
    ))
}

/// A running server; stopped when dropped.
#[derive(Debug)]
pub struct NatsServer {
    binary: String,
    config: PathBuf,
    child: Option<Child>,
    port: u16,
    /// The PEM file of the certificate the server presents (its own CA: self-signed), for
    /// 127.0.0.1 and localhost.
    pub ca: PathBuf,
    /// Its private key (PEM): a test may serve HTTPS with the same certificate.
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts `binary` with JetStream, TLS, and the users of `auth_conf` (included as is).
    pub fn start(binary: &str, auth_conf: &Path) -> Self {
        let dir = tempfile::tempdir().expect("a folder for the server");
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("a certificate");
        let ca = dir.path().join("ca.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&ca, certified.cert.pem()).expect("write the certificate");
        std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write the key");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let config = dir.path().join("nats.conf");
        let text = format!(
            "listen: 127.0.0.1:{port}\n\
             jetstream {{ store_dir: \"{store}\" }}\n\
             tls {{ cert_file: \"{ca}\", key_file: \"{key}\", timeout: 5 }}\n\
             include \"auth.conf\"\n",
            store = dir.path().join("jetstream").display(),
            ca = ca.display(),
            key = key.display(),
        );
        // nats-server reads an include relative to the including file, absolute or not.
        std::fs::copy(auth_conf, dir.path().join("auth.conf")).expect("copy the users");
        std::fs::write(&config, text).expect("write the configuration");
        let mut server = Self { binary: binary.to_owned(), config, child: None, port, ca, key, _dir: dir };
        server.spawn();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.config.with_extension("log")).expect("a log file");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.log()).unwrap_or_default();
                panic!("nats-server did not listen:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log file.
    pub fn log(&self) -> PathBuf {
        self.config.with_extension("log")
    }

    /// Kills the server and starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
