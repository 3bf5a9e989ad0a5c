//! Every file under deploy/ parses, and the Kubernetes manifests say what the distributed
//! topology needs: a Deployment and a Service per service, probes on `/ready` and `/health`,
//! the gateway behind an Ingress, configuration from the ConfigMap and the Secret; the NATS
//! configuration asks for disk syncs on every write.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn documents() -> Vec<(String, Yaml)> {
    let mut all = Vec::new();
    let folder = deploy().join("kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .expect("deploy/kubernetes")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read a manifest");
        let parsed = YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
        for document in parsed {
            for field in ["apiVersion", "kind"] {
                assert!(document[field].as_str().is_some(), "{}: a document without {field}", file.display());
            }
            assert!(
                document["metadata"]["name"].as_str().is_some(),
                "{}: a document without a name",
                file.display()
            );
            all.push((file.display().to_string(), document));
        }
    }
    all
}

fn find<'a>(documents: &'a [(String, Yaml)], kind: &str, name: &str) -> &'a Yaml {
    documents
        .iter()
        .map(|(_, d)| d)
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} named {name}"))
}

#[test]
fn every_manifest_parses_and_every_service_is_deployed_with_probes() {
    let documents = documents();
    for service in ["inventory", "orders", "payments", "customers", "support", "gateway"] {
        let deployment = find(&documents, "Deployment", service);
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["readinessProbe"]["httpGet"]["path"].as_str(), Some("/ready"), "{service}");
        assert_eq!(container["livenessProbe"]["httpGet"]["path"].as_str(), Some("/health"), "{service}");
        let args: Vec<&str> =
            container["args"].as_vec().expect("args").iter().filter_map(Yaml::as_str).collect();
        assert_eq!(args.first().copied(), Some("serve"), "{service}");
        assert!(args.contains(&service), "{service}: {args:?}");
        let sources: Vec<&str> = container["envFrom"]
            .as_vec()
            .expect("envFrom")
            .iter()
            .filter_map(|s| s["configMapRef"]["name"].as_str().or(s["secretRef"]["name"].as_str()))
            .collect();
        assert_eq!(
            sources,
            ["tessera", "tessera"],
            "{service}: configuration from the ConfigMap and the Secret"
        );
        find(&documents, "Service", service);
    }
    let ingress = find(&documents, "Ingress", "tessera");
    let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"];
    assert_eq!(backend.as_str(), Some("gateway"), "only the gateway is public");
    let secret = find(&documents, "Secret", "tessera");
    assert!(secret["stringData"]["TESSERA_DATABASE_URL"].as_str().is_some());
    assert!(
        secret["stringData"]["TESSERA_MASTER_KEY"].as_str().is_some(),
        "the vault's master key is a Secret"
    );
    let config = find(&documents, "ConfigMap", "tessera");
    assert_eq!(config["data"]["TESSERA_NATS_REPLICAS"].as_str(), Some("3"));
    let jwks = config["data"]["TESSERA_JWKS_URL"].as_str().expect("services verify tokens: TESSERA_JWKS_URL");
    assert!(jwks.starts_with("http://gateway/"), "the gateway's Service: {jwks}");
}

#[test]
fn the_nats_cluster_acknowledges_only_what_is_on_disk() {
    let text = std::fs::read_to_string(deploy().join("nats/nats.conf")).expect("deploy/nats/nats.conf");
    assert!(text.contains("sync_interval: always"));
    assert_eq!(text.matches("nats-route://").count(), 3, "three nodes");
    let opened = text.matches('{').count();
    assert_eq!(opened, text.matches('}').count(), "balanced blocks");
}

#[test]
fn the_alert_rules_are_valid_and_pass_their_unit_tests() {
    let Some(promtool) =
        tessera_testkit::tool("promtool", "alert rules' tests", "apt-get install prometheus")
    else {
        return;
    };
    let folder = deploy().join("prometheus");
    for args in [["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]] {
        let output =
            std::process::Command::new(promtool).args(args).current_dir(&folder).output().expect("promtool");
        assert!(
            output.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// An alert on a metric nothing records would never fire: every `tessera_*` name the rules use
/// must appear in the code that records it.
#[test]
fn every_metric_the_alerts_use_is_recorded_somewhere() {
    let rules = std::fs::read_to_string(deploy().join("prometheus/alerts.yml")).expect("alerts.yml");
    let mut names: Vec<String> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("tessera_"))
        .map(|word| word.trim_end_matches("_bucket").to_owned())
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 8, "{names:?}");
    let mut sources = String::new();
    let root = deploy().join("..");
    let mut folders = vec![root.join("crates"), root.join("services")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("read a folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    for name in names {
        assert!(sources.contains(&format!("\"{name}\"")), "{name} is used by an alert but recorded nowhere");
    }
}
