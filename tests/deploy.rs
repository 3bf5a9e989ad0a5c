//! Every file under deploy/ parses and says what the distributed topology needs. The
//! Kubernetes manifests are a kustomize base and overlays: each overlay is rendered with
//! `kubectl kustomize` (the test is skipped loudly without kubectl) and every Deployment checked
//! for probes, resources, a pinned image and a pod that runs as nobody with nothing to gain;
//! the compose file and the Dockerfile are checked for the same promises; the NATS configuration
//! asks for disk syncs on every write.

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

const SERVICES: [&str; 6] = ["inventory", "orders", "payments", "customers", "support", "gateway"];
const OVERLAYS: [&str; 2] = ["production", "development"];

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The documents `kubectl kustomize` renders for an overlay, or `None` (skipped loudly) without
/// kubectl.
fn rendered(overlay: &str) -> Option<Vec<Yaml>> {
    let kubectl = tessera_testkit::tool_checked_with(
        "kubectl",
        &["version", "--client"],
        "Kubernetes manifests' test",
        "https://kubernetes.io/docs/tasks/tools/",
    )?;
    let folder = deploy().join("kubernetes/overlays").join(overlay);
    let output = std::process::Command::new(kubectl).arg("kustomize").arg(&folder).output().expect("kubectl");
    assert!(
        output.status.success(),
        "kubectl kustomize {}:\n{}",
        folder.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let documents =
        YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{overlay} renders YAML: {e}"));
    for document in &documents {
        for field in ["apiVersion", "kind"] {
            assert!(document[field].as_str().is_some(), "{overlay}: a document without {field}");
        }
        assert!(document["metadata"]["name"].as_str().is_some(), "{overlay}: a document without a name");
    }
    Some(documents)
}

fn find<'a>(documents: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    documents
        .iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} named {name}"))
}

fn strings(value: &Yaml) -> Vec<&str> {
    value.as_vec().map(|items| items.iter().filter_map(Yaml::as_str).collect()).unwrap_or_default()
}

#[test]
fn every_overlay_deploys_every_service_with_probes_and_its_configuration() {
    for overlay in OVERLAYS {
        let Some(documents) = rendered(overlay) else { return };
        for service in SERVICES {
            let deployment = find(&documents, "Deployment", service);
            let container = &deployment["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(container["readinessProbe"]["httpGet"]["path"].as_str(), Some("/ready"), "{service}");
            assert_eq!(container["livenessProbe"]["httpGet"]["path"].as_str(), Some("/health"), "{service}");
            let args = strings(&container["args"]);
            assert_eq!(args.first().copied(), Some("serve"), "{overlay} {service}");
            assert!(args.contains(&service), "{overlay} {service}: {args:?}");
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
            let selected = &find(&documents, "Service", service)["spec"]["selector"]["app"];
            assert_eq!(selected.as_str(), Some(service), "{overlay}: the {service} Service selects its pods");
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
        let jwks =
            config["data"]["TESSERA_JWKS_URL"].as_str().expect("services verify tokens: TESSERA_JWKS_URL");
        assert!(jwks.starts_with("http://gateway/"), "the gateway's Service: {jwks}");
        let replicas = config["data"]["TESSERA_NATS_REPLICAS"].as_str();
        assert_eq!(replicas, Some(if overlay == "production" { "3" } else { "1" }), "{overlay}");
        let namespace =
            find(&documents, "Namespace", if overlay == "production" { "tessera" } else { "tessera-dev" });
        let name = namespace["metadata"]["name"].as_str();
        for document in documents.iter().filter(|d| d["kind"].as_str() != Some("Namespace")) {
            assert_eq!(document["metadata"]["namespace"].as_str(), name, "{overlay}: one namespace for all");
        }
    }
}

#[test]
fn every_deployment_runs_a_pinned_image_within_limits_as_nobody_with_nothing_to_gain() {
    for overlay in OVERLAYS {
        let Some(documents) = rendered(overlay) else { return };
        let deployments: Vec<&Yaml> =
            documents.iter().filter(|d| d["kind"].as_str() == Some("Deployment")).collect();
        assert_eq!(deployments.len(), SERVICES.len(), "{overlay}");
        for deployment in deployments {
            let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
            let pod = &deployment["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true), "{overlay} {name}");
            assert!(pod["securityContext"]["runAsUser"].as_i64().is_some_and(|u| u > 0), "{overlay} {name}");
            assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false), "{overlay} {name}");
            assert!(
                pod["terminationGracePeriodSeconds"].as_i64().is_some_and(|s| s > 10),
                "{overlay} {name}: the 10 s graceful stop fits"
            );
            let containers = pod["containers"].as_vec().expect("containers");
            for container in containers {
                let image = container["image"].as_str().unwrap_or_default();
                let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or_default();
                assert!(
                    !tag.is_empty() && tag != "latest" && !tag.contains('/'),
                    "{overlay} {name}: a pinned tag, not {image:?}"
                );
                let security = &container["securityContext"];
                assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false), "{overlay} {name}");
                assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true), "{overlay} {name}");
                assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"], "{overlay} {name}");
                for (kind, resource) in
                    [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")]
                {
                    assert!(
                        !container["resources"][kind][resource].is_badvalue(),
                        "{overlay} {name}: resources.{kind}.{resource}"
                    );
                }
                assert!(
                    !container["readinessProbe"].is_badvalue() && !container["livenessProbe"].is_badvalue(),
                    "{overlay} {name}"
                );
            }
        }
    }
}

/// deploy/compose.yaml: the backing servers and every service, each with a health check, the
/// services started as `tessera serve <name>` from the repository's own image.
#[test]
fn the_compose_file_runs_every_service_and_its_backing_servers_with_health_checks() {
    let text = std::fs::read_to_string(deploy().join("compose.yaml")).expect("deploy/compose.yaml");
    let compose = YamlLoader::load_from_str(&text).expect("compose.yaml parses").remove(0);
    let services = &compose["services"];
    for backing in ["postgres", "nats", "redis"] {
        assert!(!services[backing]["healthcheck"]["test"].is_badvalue(), "{backing} has a health check");
        let image = services[backing]["image"].as_str().unwrap_or_default();
        assert!(
            image.contains(':') && !image.ends_with(":latest"),
            "{backing}: a pinned image, not {image:?}"
        );
    }
    assert!(strings(&services["nats"]["command"]).contains(&"--jetstream"), "NATS with JetStream");
    for service in SERVICES {
        let definition = &services[service];
        let command = strings(&definition["command"]);
        assert_eq!(command.get(..2), Some(&["serve", service][..]), "{service}: {command:?}");
        assert!(command.contains(&"--listen=0.0.0.0:8080"), "{service}: {command:?}");
        assert!(
            strings(&definition["healthcheck"]["test"]).contains(&"probe"),
            "{service}: checked by `tessera probe`"
        );
        assert_eq!(
            definition["image"].as_str(),
            Some("tessera:dev"),
            "{service}: the image the Dockerfile builds"
        );
        for server in ["postgres", "nats"] {
            let condition = &definition["depends_on"][server]["condition"];
            assert_eq!(condition.as_str(), Some("service_healthy"), "{service} waits for {server}");
        }
    }
    assert!(!services["gateway"]["ports"].is_badvalue(), "the gateway is published");
    assert!(
        strings(&services["gateway"]["command"]).iter().filter(|a| a.starts_with("--service-url=")).count()
            == 5
    );
}

/// The Dockerfile builds in one stage and runs in another, small and not as root.
#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_as_nobody_in_a_small_one() {
    let text = std::fs::read_to_string(deploy().join("../Dockerfile")).expect("Dockerfile");
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    for stage in &stages {
        assert!(
            !stage.contains(":latest") && stage.split_whitespace().nth(1).is_some_and(|i| i.contains(':')),
            "pinned: {stage}"
        );
    }
    let runtime = text.rsplit("\nFROM ").next().unwrap_or_default();
    assert!(runtime.starts_with("gcr.io/distroless/"), "a small runtime image: {runtime}");
    let user = runtime
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("a USER in the runtime stage");
    assert!(!["root", "0", "0:0"].contains(&user.trim()), "not root: {user}");
    let ignored = std::fs::read_to_string(deploy().join("../.dockerignore")).expect(".dockerignore");
    assert!(ignored.lines().any(|l| l.trim() == "target"), "the build context leaves target/ out");
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
