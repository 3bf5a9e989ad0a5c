//! The README's distributed quick start, run as written: the test reads the section's shell
//! blocks from README.md itself and runs them in one bash, in a fresh folder, with the test's
//! binary as `target/release/tessera` and a `cargo` that has nothing left to build. The
//! environment picks a database prefix and NATS namespace of the run's own (the README says
//! those two choose where), so nothing of anyone else's is touched. Needs
//! `TESSERA_TEST_POSTGRES`, `TESSERA_TEST_NATS`, and ports 8080 and 9001–9005 free.

use std::process::{Command, Stdio};

/// The `sh` blocks of the README's section headed `heading`, in order.
fn section_blocks(readme: &str, heading: &str) -> Vec<String> {
    let start = readme.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("README has no {heading}"));
    let rest = &readme[start + heading.len() + 2..];
    let section = rest.find("\n## ").map_or(rest, |end| &rest[..end]);
    section
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn the_distributed_quick_start_works_as_written() {
    let _turn = crate::distributed_turn();
    let (Some(postgres), Some(nats)) = (
        tessera_testkit::server_url("TESSERA_TEST_POSTGRES", "README's distributed quick start"),
        tessera_testkit::server_url("TESSERA_TEST_NATS", "README's distributed quick start"),
    ) else {
        return;
    };
    for port in [8080, 9001, 9002, 9003, 9004, 9005] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "the README's quick start needs port {port}, which something else holds"
        );
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README");
    let blocks = section_blocks(&readme, "## Distributed");
    assert_eq!(blocks.len(), 2, "the quick start, then the teardown: {blocks:?}");
    assert!(blocks[0].contains("tessera demo") && blocks[1].contains("tessera down --purge"));

    let folder = tempfile::tempdir().expect("a folder");
    let release = folder.path().join("target/release");
    std::fs::create_dir_all(&release).expect("target/release");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tessera"), release.join("tessera")).expect("the binary");
    let shims = folder.path().join("shims");
    std::fs::create_dir_all(&shims).expect("shims");
    let cargo = shims.join("cargo");
    std::fs::write(&cargo, "#!/bin/sh\necho \"cargo $*: the test's binary is built already\"\n")
        .expect("cargo");
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("mode");

    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let prefix = format!("readme{}", nanos % 1_000_000_000_000);
    // Each block as written; the first failing command ends the run (set -e), and whatever
    // it left running is stopped with the process group below.
    let script = format!("set -e\n{}\n{}", blocks[0], blocks[1]);
    let mut bash = Command::new("bash");
    bash.arg("-c")
        .arg(&script)
        .current_dir(folder.path())
        .env("PATH", format!("{}:{}", shims.display(), std::env::var("PATH").unwrap_or_default()))
        .env("TESSERA_DATABASE_URL", &postgres)
        .env("TESSERA_NATS_URL", &nats)
        .env("TESSERA_DATABASE_PREFIX", &prefix)
        .env("TESSERA_NATS_NAMESPACE", &prefix)
        .env_remove("TESSERA_MASTER_KEY")
        .env_remove("TESSERA_URL")
        .env("RUST_LOG", "warn")
        // Files, not pipes: processes a failed run leaves behind would hold a pipe open.
        .stdout(std::fs::File::create(folder.path().join("stdout")).expect("stdout"))
        .stderr(std::fs::File::create(folder.path().join("stderr")).expect("stderr"));
    std::os::unix::process::CommandExt::process_group(&mut bash, 0);
    let mut child = bash.spawn().expect("bash");
    let group = child.id();
    let status = child.wait().expect("the quick start runs");
    // Whatever a failed run left behind.
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{group}")]).stderr(Stdio::null()).status();
    let stdout = std::fs::read_to_string(folder.path().join("stdout")).unwrap_or_default();
    let stderr = std::fs::read_to_string(folder.path().join("stderr")).unwrap_or_default();
    assert!(status.success(), "the quick start failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("added 5 products"), "tessera seed added the catalogue:\n{stdout}");
    assert!(stdout.contains("confirmed"), "the demo's order was confirmed:\n{stdout}");
    assert!(stdout.contains("erased"), "the demo's customer was erased:\n{stdout}");
    assert!(stdout.contains("dropped the databases"), "tessera down --purge ran:\n{stdout}");
    for service in crate::top::ROWS {
        assert!(
            stdout.lines().any(|line| line.starts_with(&format!("{service} "))
                && line.split_whitespace().nth(1) == Some("up")),
            "tessera top --once has a row for {service}, up:\n{stdout}"
        );
    }
    let key = folder.path().join("tessera-master.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key).expect("the key file").permissions(),
    );
    assert_eq!(mode & 0o077, 0, "the master key file is private");

    // Nothing of the run is left: no database, no stream.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        for service in ["inventory", "orders", "payments", "customers", "support", "gateway", "vault"] {
            let url = tessera_store::database_url(&postgres, &format!("{prefix}_{service}"));
            assert!(
                tokio_postgres::connect(&url, tokio_postgres::NoTls).await.is_err(),
                "{prefix}_{service} was dropped"
            );
        }
        let jetstream = async_nats::jetstream::new(async_nats::connect(&nats).await.expect("NATS"));
        for source in ["inventory", "orders", "payments", "customers", "support", "gateway"] {
            let stream = format!("{prefix}_{source}").to_ascii_uppercase();
            assert!(jetstream.get_stream(&stream).await.is_err(), "{stream} was deleted");
        }
    });
}
