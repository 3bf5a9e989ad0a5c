//! End-to-end tests: the real `tessera` binary, started as a user would start it.

use std::process::Command;

fn tessera() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
}

#[test]
fn help_lists_the_subcommands() {
    let output = tessera().arg("--help").output().expect("run tessera --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for subcommand in ["up", "bench"] {
        assert!(help.contains(subcommand), "--help lacks `{subcommand}`:\n{help}");
    }
}

#[test]
fn up_creates_the_data_folder_and_reports_the_stores_in_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let first = tessera().arg("up").arg("--data").arg(&data).output().expect("run tessera up");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(data.is_dir(), "up creates the data folder");
    assert!(String::from_utf8_lossy(&first.stdout).contains("no service stores yet"));

    // A store file in the folder is opened and reported.
    std::fs::write(data.join("inventory.db"), b"").expect("create an empty store file");
    let second = tessera().arg("up").arg("--data").arg(&data).output().expect("run tessera up");
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let listing = String::from_utf8_lossy(&second.stdout);
    assert!(listing.contains("inventory.db") && listing.contains("0 events"), "{listing}");
}

#[test]
fn an_unknown_subcommand_fails_with_a_usage_error() {
    let output = tessera().arg("frobnicate").output().expect("run tessera");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unrecognized subcommand"));
}
