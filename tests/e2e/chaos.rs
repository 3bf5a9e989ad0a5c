//! `tessera chaos` on the embedded topology, small: the whole process is killed and restarted,
//! paused, and given a failing card network while orders are placed, and the report must say
//! nothing was lost, duplicated or left unfinished. (.ci/run runs the long ones, on both
//! topologies, with NATS and PostgreSQL restarts.)

use serde_json::Value;

use crate::tessera;

#[test]
fn chaos_on_the_embedded_system_loses_and_duplicates_nothing() {
    let work = tempfile::tempdir().expect("a folder");
    let output = tessera()
        .args(["chaos", "--topology", "embedded", "--orders", "240", "--faults", "4", "--rate", "40"])
        .args(["--seed", "11", "--settle-seconds", "60", "--json", "--work-dir"])
        .arg(work.path())
        .output()
        .expect("run tessera chaos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stdout}\n{stderr}"));
    assert!(output.status.success(), "chaos failed: {report}\n{stderr}");
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["duplicated"], 0, "{report}");
    assert_eq!(report["non_terminal"], 0, "{report}");
    assert_eq!(report["faults"].as_array().map(Vec::len), Some(4), "{report}");
    assert!(report["restarts"]["tessera"].as_u64().unwrap_or_default() >= 1, "{report}");
    let orders = &report["orders"];
    assert!(orders["accepted"].as_u64().unwrap_or_default() >= 200, "{report}");
    assert!(orders["confirmed"].as_u64().unwrap_or_default() > 0, "{report}");
    assert_eq!(report["verify"]["ok"], true, "{report}");
}
