//! Every file under deploy/ parses and says what the distributed topology needs. The
//! Kubernetes manifests are a kustomize base and overlays: each overlay is rendered with
//! `kubectl kustomize` (the test is skipped loudly without kubectl) and every Deployment checked
//! for probes, resources, a pinned image and a pod that runs as nobody with nothing to gain, and
//! for the zero-trust promises: each pod gets only its own Secret, the gateway alone takes
//! requests from outside, the services only from the gateway. The compose file and the
//! Dockerfile are checked for the same promises; the NATS configuration asks for disk syncs on
//! every write, credentials and TLS; the PostgreSQL roles script is run against a real server
//! when TESSERA_TEST_POSTGRES names one.

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
    render(&deploy().join("kubernetes/overlays").join(overlay), overlay)
}

/// The documents of `folder`, a kustomization, rendered by `kubectl kustomize`.
fn render(folder: &Path, overlay: &str) -> Option<Vec<Yaml>> {
    let kubectl = tessera_testkit::tool_checked_with(
        "kubectl",
        &["version", "--client"],
        "Kubernetes manifests' test",
        "https://kubernetes.io/docs/tasks/tools/",
    )?;
    let output = std::process::Command::new(kubectl).arg("kustomize").arg(folder).output().expect("kubectl");
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

/// The processes that seal with the vault, so the only ones to hold its master key: the
/// services that keep personal data (cli/src/registry.rs) and the gateway, for its signing keys.
const SEALING: [&str; 4] = ["orders", "customers", "support", "gateway"];
/// Where every pod finds its own NATS seed (TESSERA_NATS_NKEY_FILE).
const SEED_FOLDER: &str = "/var/run/tessera/nats";

/// The keys of its own Secret a service's pod takes, besides its NATS seed.
fn secret_keys_of(service: &str) -> Vec<&'static str> {
    let mut keys = vec!["TESSERA_DATABASE_URL"];
    if SEALING.contains(&service) {
        keys.push("TESSERA_MASTER_KEY");
    }
    match service {
        "gateway" => keys.extend(["TESSERA_STAFF", "TESSERA_REDIS_URL"]),
        "support" => keys.extend(["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]),
        _ => {}
    }
    keys.sort_unstable();
    keys
}

/// Every (Secret, key) a Deployment's containers take into their environment; `*` for a
/// whole Secret.
fn secret_keys(deployment: &Yaml) -> Vec<(&str, &str)> {
    let mut keys = Vec::new();
    for container in deployment["spec"]["template"]["spec"]["containers"].as_vec().into_iter().flatten() {
        for variable in container["env"].as_vec().into_iter().flatten() {
            let reference = &variable["valueFrom"]["secretKeyRef"];
            if let (Some(name), Some(key)) = (reference["name"].as_str(), reference["key"].as_str()) {
                keys.push((name, key));
            }
        }
        for source in container["envFrom"].as_vec().into_iter().flatten() {
            if let Some(name) = source["secretRef"]["name"].as_str() {
                keys.push((name, "*"));
            }
        }
    }
    keys
}

/// Every Secret a Deployment's pods read, through their environment or their volumes.
fn secrets_read(deployment: &Yaml) -> Vec<&str> {
    let pod = &deployment["spec"]["template"]["spec"];
    let mut names: Vec<&str> = secret_keys(deployment).into_iter().map(|(name, _)| name).collect();
    for volume in pod["volumes"].as_vec().into_iter().flatten() {
        names.extend(volume["secret"]["secretName"].as_str());
        for source in volume["projected"]["sources"].as_vec().into_iter().flatten() {
            names.extend(source["secret"]["name"].as_str());
        }
    }
    names.extend(pod["imagePullSecrets"].as_vec().into_iter().flatten().filter_map(|s| s["name"].as_str()));
    names.sort_unstable();
    names.dedup();
    names
}

/// The `app` labels a label selector picks in its namespace; `None` for every pod.
fn apps_selected(selector: &Yaml) -> Option<Vec<&str>> {
    let mut apps = Vec::new();
    if let Some(app) = selector["matchLabels"]["app"].as_str() {
        apps.push(app);
    }
    for expression in selector["matchExpressions"].as_vec().into_iter().flatten() {
        if expression["key"].as_str() == Some("app") && expression["operator"].as_str() == Some("In") {
            apps.extend(strings(&expression["values"]));
        }
    }
    let everything = selector.as_hash().is_some_and(|h| h.is_empty()) || selector.is_null();
    if everything { None } else { Some(apps) }
}

fn ports(rule: &Yaml) -> Vec<i64> {
    rule["ports"].as_vec().into_iter().flatten().filter_map(|p| p["port"].as_i64()).collect()
}

/// The user of a PostgreSQL URL, placeholder text before it or not.
fn database_user(url: &str) -> &str {
    let authority = url.rsplit_once("://").map_or(url, |(_, rest)| rest);
    authority.split(['@', ':']).next().unwrap_or_default()
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
            assert_eq!(sources, ["tessera"], "{service}: the shared settings from the ConfigMap");
            assert!(
                secret_keys(deployment).iter().any(|(_, key)| *key == "TESSERA_DATABASE_URL"),
                "{overlay} {service}: its database from its Secret"
            );
            let selected = &find(&documents, "Service", service)["spec"]["selector"]["app"];
            assert_eq!(selected.as_str(), Some(service), "{overlay}: the {service} Service selects its pods");
        }
        let ingress = find(&documents, "Ingress", "tessera");
        let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"];
        assert_eq!(backend.as_str(), Some("gateway"), "only the gateway is public");
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

/// A pod broken into gives away its own credentials and no one else's: each Deployment reads
/// only the Secret named after it, and only the keys it needs; the seed is a file, never in the
/// environment.
#[test]
fn every_deployment_reads_only_its_own_secret_and_only_what_it_needs() {
    for overlay in OVERLAYS {
        let Some(documents) = rendered(overlay) else { return };
        let config = &find(&documents, "ConfigMap", "tessera")["data"];
        for service in SERVICES {
            let deployment = find(&documents, "Deployment", service);
            assert_eq!(secrets_read(deployment), [service], "{overlay} {service} reads only its own Secret");
            let mut keys: Vec<&str> = secret_keys(deployment).into_iter().map(|(_, key)| key).collect();
            keys.sort_unstable();
            assert_eq!(keys, secret_keys_of(service), "{overlay} {service}: the keys it takes");
            let pod = &deployment["spec"]["template"]["spec"];
            let container = &pod["containers"][0];
            let literal: Vec<&str> = container["env"]
                .as_vec()
                .into_iter()
                .flatten()
                .filter(|v| v["valueFrom"].is_badvalue())
                .filter_map(|v| v["name"].as_str())
                .collect();
            for secret in
                ["TESSERA_STAFF", "TESSERA_MASTER_KEY", "AWS_SECRET_ACCESS_KEY", "TESSERA_DATABASE_URL"]
            {
                assert!(
                    !literal.contains(&secret),
                    "{overlay} {service}: {secret} written in the Deployment"
                );
            }
            let seeds: Vec<&Yaml> = pod["volumes"]
                .as_vec()
                .into_iter()
                .flatten()
                .filter(|v| v["secret"]["secretName"].as_str() == Some(service))
                .collect();
            assert_eq!(seeds.len(), 1, "{overlay} {service}: its NATS seed as a volume");
            let items = seeds[0]["secret"]["items"].as_vec().expect("only the seed's key is mounted");
            assert_eq!(items.len(), 1, "{overlay} {service}: nothing but the seed in the volume");
            assert_eq!(items[0]["key"].as_str(), Some("nats.nk"), "{overlay} {service}");
            let mode = seeds[0]["secret"]["defaultMode"].as_i64().unwrap_or(0o644);
            assert_eq!(mode & 0o007, 0, "{overlay} {service}: the seed is not world-readable ({mode:o})");
            let volume = seeds[0]["name"].as_str();
            let mounted = container["volumeMounts"]
                .as_vec()
                .into_iter()
                .flatten()
                .find(|m| m["name"].as_str() == volume)
                .unwrap_or_else(|| panic!("{overlay} {service}: the seed's volume is mounted"));
            assert_eq!(mounted["mountPath"].as_str(), Some(SEED_FOLDER), "{overlay} {service}");
            assert_eq!(mounted["readOnly"].as_bool(), Some(true), "{overlay} {service}");
            assert!(
                pod["securityContext"]["fsGroup"].as_i64().is_some()
                    && pod["securityContext"]["fsGroup"].as_i64()
                        == pod["securityContext"]["runAsGroup"].as_i64(),
                "{overlay} {service}: the seed's group is the process's"
            );
        }
        for key in ["TESSERA_STAFF", "TESSERA_MASTER_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            assert!(config[key].is_badvalue(), "{overlay}: {key} in the ConfigMap every pod reads");
        }
        if overlay == "production" {
            let seed = config["TESSERA_NATS_NKEY_FILE"].as_str();
            assert_eq!(seed, Some(format!("{SEED_FOLDER}/nats.nk").as_str()), "every service uses its seed");
            let ca = config["TESSERA_NATS_CA"].as_str().expect("production's NATS connections need TLS");
            for service in SERVICES {
                let container =
                    &find(&documents, "Deployment", service)["spec"]["template"]["spec"]["containers"][0];
                let mounts: Vec<&str> = container["volumeMounts"]
                    .as_vec()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["mountPath"].as_str())
                    .collect();
                assert!(
                    mounts.iter().any(|m| ca.starts_with(&format!("{m}/"))),
                    "{service} mounts the NATS CA at {ca}: {mounts:?}"
                );
            }
        }
    }
}

/// Each Secret holds its own service's credentials: its own database role, its own NATS
/// identity; the master key only where personal data is sealed. The base's placeholders stop a
/// service rather than work; production renders no Secret (they come from a secret manager);
/// development's work.
#[test]
fn each_secret_holds_one_service_s_credentials_and_placeholders_do_not_work() {
    let Some(production) = rendered("production") else { return };
    assert!(
        !production.iter().any(|d| d["kind"].as_str() == Some("Secret")),
        "production's Secrets come from a secret manager, not from the repository"
    );
    let Some(base) = render(&deploy().join("kubernetes/base"), "base") else { return };
    let Some(development) = rendered("development") else { return };
    let decodes_to_a_key = |text: &str| tessera_vault::MasterKey::from_base64(text).is_ok();
    for (name, documents) in [("base", &base), ("development", &development)] {
        let secrets: Vec<&Yaml> = documents.iter().filter(|d| d["kind"].as_str() == Some("Secret")).collect();
        let names: Vec<&str> = secrets.iter().filter_map(|s| s["metadata"]["name"].as_str()).collect();
        assert_eq!(
            names.len(),
            SERVICES.len(),
            "{name}: one Secret per service and no shared one: {names:?}"
        );
        let mut urls = Vec::new();
        let mut seeds = Vec::new();
        let mut master_keys = Vec::new();
        for service in SERVICES {
            let data = &find(documents, "Secret", service)["stringData"];
            let mut keys: Vec<&str> =
                data.as_hash().expect("stringData").keys().filter_map(Yaml::as_str).collect();
            keys.sort_unstable();
            let mut expected = secret_keys_of(service);
            expected.push("nats.nk");
            expected.sort_unstable();
            assert_eq!(keys, expected, "{name}: {service}'s Secret holds what it needs and nothing else");
            let url = data["TESSERA_DATABASE_URL"].as_str().expect("a database URL");
            assert_eq!(database_user(url), format!("tessera_{service}"), "{name}: {service}'s own role");
            urls.push(url);
            seeds.push(data["nats.nk"].as_str().expect("a seed"));
            if let Some(key) = data["TESSERA_MASTER_KEY"].as_str() {
                master_keys.push(key);
            }
            let working = name == "development";
            assert_eq!(url.starts_with("postgres://"), working, "{name} {service}: {url}");
            if let Some(key) = data["TESSERA_MASTER_KEY"].as_str() {
                assert_eq!(decodes_to_a_key(key), working, "{name} {service}: the master key");
            }
            if let Some(staff) = data["TESSERA_STAFF"].as_str() {
                let roles_known = staff
                    .split(',')
                    .all(|entry| ["admin:", "support:"].iter().any(|r| entry.trim().starts_with(r)));
                assert_eq!(roles_known, working, "{name}: the staff entry {staff:?}");
            }
            if name == "base" {
                assert!(!seeds.last().is_some_and(|s| s.starts_with("SU")), "{service}: a placeholder seed");
            }
        }
        for (i, url) in urls.iter().enumerate() {
            assert!(!urls[..i].contains(url), "{name}: two services share a database login: {url}");
            assert!(!seeds[..i].contains(&seeds[i]), "{name}: two services share a NATS seed");
        }
        assert_eq!(master_keys.len(), SEALING.len(), "{name}");
        assert!(master_keys.windows(2).all(|pair| pair[0] == pair[1]), "{name}: one vault, one master key");
    }
}

/// Nothing in the namespace talks unless allowed; the services take requests only from the
/// gateway (and Prometheus on the metrics port) and never call one another; only the gateway
/// takes traffic from outside the namespace.
#[test]
fn the_network_policies_deny_by_default_and_only_the_gateway_calls_the_services() {
    let services: Vec<&str> = SERVICES.iter().copied().filter(|s| *s != "gateway").collect();
    for overlay in OVERLAYS {
        let Some(documents) = rendered(overlay) else { return };
        let policies: Vec<&Yaml> =
            documents.iter().filter(|d| d["kind"].as_str() == Some("NetworkPolicy")).collect();
        let deny_all = policies.iter().any(|p| {
            let spec = &p["spec"];
            apps_selected(&spec["podSelector"]).is_none()
                && strings(&spec["policyTypes"]).contains(&"Ingress")
                && strings(&spec["policyTypes"]).contains(&"Egress")
                && spec["ingress"].is_badvalue()
                && spec["egress"].is_badvalue()
        });
        assert!(deny_all, "{overlay}: a default-deny policy for ingress and egress");
        let dns = policies.iter().any(|p| {
            apps_selected(&p["spec"]["podSelector"]).is_none()
                && p["spec"]["egress"].as_vec().into_iter().flatten().any(|rule| ports(rule).contains(&53))
        });
        assert!(dns, "{overlay}: every pod may ask DNS");
        let selecting = |app: &str| -> Vec<&Yaml> {
            policies
                .iter()
                .copied()
                .filter(|p| apps_selected(&p["spec"]["podSelector"]).is_none_or(|apps| apps.contains(&app)))
                .collect()
        };
        for service in &services {
            let mut from_gateway = false;
            for policy in selecting(service) {
                for rule in policy["spec"]["ingress"].as_vec().into_iter().flatten() {
                    let name = policy["metadata"]["name"].as_str().unwrap_or_default();
                    for peer in rule["from"].as_vec().expect("an ingress rule names its peers") {
                        if ports(rule) == [9090] && !peer["namespaceSelector"].is_badvalue() {
                            continue; // Prometheus, from its own namespace, on the metrics port.
                        }
                        assert!(
                            peer["namespaceSelector"].is_badvalue() && peer["ipBlock"].is_badvalue(),
                            "{overlay}: {name} lets {service} take requests from outside the namespace"
                        );
                        assert_eq!(
                            apps_selected(&peer["podSelector"]),
                            Some(vec!["gateway"]),
                            "{overlay}: {name} lets {service} take requests from other than the gateway"
                        );
                        from_gateway = true;
                    }
                }
                for rule in policy["spec"]["egress"].as_vec().into_iter().flatten() {
                    for peer in rule["to"].as_vec().into_iter().flatten() {
                        let reached = apps_selected(&peer["podSelector"]);
                        assert!(
                            reached.as_ref().is_some_and(|apps| !apps.iter().any(|a| services.contains(a))),
                            "{overlay}: {service} may reach {reached:?} (the services talk through the gateway)"
                        );
                    }
                }
            }
            assert!(from_gateway, "{overlay}: the gateway reaches {service}");
        }
        let gateway = selecting("gateway");
        let from_outside =
            gateway.iter().flat_map(|p| p["spec"]["ingress"].as_vec().into_iter().flatten()).any(|rule| {
                ports(rule) == [8080]
                    && rule["from"][0]["namespaceSelector"]["matchLabels"].as_hash().is_some()
            });
        assert!(from_outside, "{overlay}: the ingress controller reaches the gateway");
        for service in &services {
            let reached =
                gateway.iter().flat_map(|p| p["spec"]["egress"].as_vec().into_iter().flatten()).any(|rule| {
                    rule["to"].as_vec().into_iter().flatten().any(|peer| {
                        apps_selected(&peer["podSelector"]).is_some_and(|apps| apps.contains(service))
                    })
                });
            assert!(reached, "{overlay}: the gateway may call {service}");
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

/// deploy/nats/nats.conf without its comments.
fn nats_conf() -> String {
    let text = std::fs::read_to_string(deploy().join("nats/nats.conf")).expect("deploy/nats/nats.conf");
    text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n")
}

/// The text of the block `name {` that starts at the beginning of a line in `text`.
fn nats_block<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = text.find(&format!("\n{name} {{"))? + 1;
    let mut depth = 0;
    for (at, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 1 => return Some(&text[start..=start + at]),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

#[test]
fn the_nats_cluster_acknowledges_only_what_is_on_disk() {
    let text = nats_conf();
    assert!(text.contains("sync_interval: always"));
    assert_eq!(text.matches("nats-route://").count(), 3, "three nodes");
    let opened = text.matches('{').count();
    assert_eq!(opened, text.matches('}').count(), "balanced blocks");
}

/// Only the services' own nkeys get in, over TLS, each to its own subjects; the routes between
/// nodes are mutual TLS; monitoring, which has no authentication, is not on the network.
#[test]
fn the_nats_cluster_lets_in_only_known_services_over_tls() {
    let text = nats_conf();
    assert!(
        text.lines().any(|l| l.trim() == "include \"auth/auth.conf\""),
        "the users and permissions of `tessera nats auth`"
    );
    assert!(!text.contains("authorization"), "the permissions come from auth.conf alone");
    let cluster = nats_block(&text, "cluster").expect("a cluster block");
    let outside: String = text.replace(cluster, "");
    let clients = nats_block(&outside, "tls").expect("TLS for clients");
    assert!(clients.contains("cert_file") && clients.contains("key_file"), "{clients}");
    let routes = &cluster[cluster.find("tls {").expect("TLS for the cluster's routes")..];
    assert!(
        routes.contains("ca_file") && routes.contains("verify: true"),
        "mutual TLS between nodes: {routes}"
    );
    for line in outside.lines().map(str::trim) {
        let monitoring = ["http", "https", "http_port", "https_port", "monitor_port"]
            .iter()
            .any(|key| line.starts_with(&format!("{key}:")) || line.starts_with(&format!("{key} ")));
        if monitoring {
            assert!(line.contains("127.0.0.1"), "monitoring only on loopback: {line}");
        }
    }
}

/// nats-server itself accepts the configuration, with an auth.conf as `tessera nats auth`
/// writes it and a certificate where the Secret nats-tls puts one.
#[test]
fn nats_server_accepts_the_configuration() {
    let Some(server) =
        tessera_testkit::tool("nats-server", "NATS configuration's test", "apt-get install nats-server")
    else {
        return;
    };
    let Some(openssl) = tessera_testkit::tool_checked_with(
        "openssl",
        &["version"],
        "NATS configuration's test",
        "apt-get install openssl",
    ) else {
        return;
    };
    let folder = tempfile::tempdir().expect("a folder");
    let root = folder.path();
    std::fs::create_dir_all(root.join("auth")).expect("auth/");
    std::fs::create_dir_all(root.join("tls")).expect("tls/");
    // The public nkey of NATS' own documentation: auth.conf holds public keys only.
    std::fs::write(
        root.join("auth/auth.conf"),
        "authorization { users = [ { nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4, \
         permissions: { publish: [\"tessera.>\"], subscribe: [\"tessera.>\"] } } ] }\n",
    )
    .expect("auth.conf");
    let tls = root.join("tls");
    let made = std::process::Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=nats", "-addext", "subjectAltName=DNS:nats-0.nats"])
        .arg("-keyout")
        .arg(tls.join("tls.key"))
        .arg("-out")
        .arg(tls.join("tls.crt"))
        .output()
        .expect("openssl");
    assert!(made.status.success(), "openssl: {}", String::from_utf8_lossy(&made.stderr));
    std::fs::copy(tls.join("tls.crt"), tls.join("ca.crt")).expect("ca.crt");
    let mut text = std::fs::read_to_string(deploy().join("nats/nats.conf"))
        .expect("nats.conf")
        .replace("/etc/nats/", &format!("{}/", root.display()));
    let version =
        std::process::Command::new(server).arg("--version").output().expect("nats-server --version");
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    let minor = version
        .trim()
        .rsplit('v')
        .next()
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    if minor.is_some_and(|m| m < 10) {
        // sync_interval is 2.10's (checked by the test above); an older server knows the rest.
        text = text.lines().filter(|l| !l.contains("sync_interval")).collect::<Vec<_>>().join("\n");
    }
    let conf = root.join("nats.conf");
    std::fs::write(&conf, text).expect("nats.conf");
    let output = std::process::Command::new(server)
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .env("SERVER_NAME", "nats-0")
        .output()
        .expect("nats-server -t");
    assert!(
        output.status.success(),
        "nats-server -t ({}):\n{}{}",
        version.trim(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
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
    let sources = platform_sources();
    for name in names {
        assert!(sources.contains(&format!("\"{name}\"")), "{name} is used by an alert but recorded nowhere");
    }
}

/// The roles and databases of deploy/postgres/roles.sql under a unique prefix, dropped when
/// this value is, however the test ends.
struct ServiceRoles {
    psql: &'static str,
    admin: String,
    prefix: String,
}

impl ServiceRoles {
    const DATABASES: [&'static str; 7] =
        ["inventory", "orders", "payments", "customers", "support", "gateway", "vault"];

    fn psql(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(self.psql)
            .arg("--no-psqlrc")
            .arg("--quiet")
            .arg(format!("--dbname={}", self.admin))
            .args(args)
            .output()
            .expect("psql")
    }
}

impl Drop for ServiceRoles {
    fn drop(&mut self) {
        // One -c each: DROP DATABASE refuses to run inside the transaction psql makes of one
        // -c with several statements.
        let mut statements = Vec::new();
        for name in Self::DATABASES {
            statements.push(format!("DROP DATABASE IF EXISTS \"{}_{name}\" WITH (FORCE)", self.prefix));
        }
        for name in Self::DATABASES {
            statements.push(format!("DROP ROLE IF EXISTS \"{}_{name}\"", self.prefix));
        }
        let mut args = vec!["-v", "ON_ERROR_STOP=1"];
        for statement in &statements {
            args.extend(["-c", statement.as_str()]);
        }
        let output = self.psql(&args);
        let message = format!("dropping {}_*: {}", self.prefix, String::from_utf8_lossy(&output.stderr));
        if std::thread::panicking() {
            eprintln!("{message}");
        } else {
            assert!(output.status.success(), "{message}");
        }
    }
}

/// The script gives each service a role of its own that gets into its own database and no
/// other's; the services that seal personal data share the vault's database whichever of them
/// migrates it first; and a service starts on a database the script created, with no CREATEDB.
#[tokio::test]
async fn the_database_roles_keep_each_service_in_its_own_database() {
    let Some(server) = tessera_testkit::server_url(tessera_testkit::POSTGRES_ENV, "PostgreSQL roles") else {
        return;
    };
    let Some(psql) =
        tessera_testkit::tool("psql", "PostgreSQL roles' test", "apt-get install postgresql-client")
    else {
        return;
    };
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").subsec_nanos();
    let roles = ServiceRoles {
        psql,
        admin: tessera_store::database_url(&server, "postgres"),
        prefix: format!("tessera_roles_{}_{nanos}", std::process::id()),
    };
    let password = format!("pw-{nanos}");
    let script = deploy().join("postgres/roles.sql");
    for run in ["first", "second"] {
        let output = roles.psql(&[
            "-v",
            &format!("prefix={}", roles.prefix),
            "-v",
            &format!("development_password={password}"),
            "-f",
            script.to_str().expect("a UTF-8 path"),
        ]);
        assert!(
            output.status.success(),
            "roles.sql, {run} run:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let host = server.split_once("://").map_or(server.as_str(), |(_, rest)| rest);
    let host =
        host.rsplit_once('@').map_or(host, |(_, host)| host).split(['/', '?']).next().unwrap_or_default();
    let login = |service: &str| format!("postgres://{}_{service}:{password}@{host}", roles.prefix);
    let connect = |service: &str, database: &str| {
        let url = tessera_store::database_url(&login(service), &format!("{}_{database}", roles.prefix));
        async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client.simple_query("SELECT 1").await.map(|_| ())
        }
    };
    connect("orders", "orders").await.expect("orders gets into its own database");
    for (service, database) in
        [("orders", "payments"), ("payments", "orders"), ("inventory", "vault"), ("gateway", "customers")]
    {
        let refused = connect(service, database).await.expect_err("refused");
        assert_eq!(
            refused.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{service} into {database}'s database: {refused}"
        );
    }

    // As `tessera serve orders` opens its stores: its own, migrated, then the vault's.
    let storage = |service: &str| tessera_runtime::Storage::Postgres {
        server: login(service),
        prefix: roles.prefix.clone(),
    };
    let orders = tessera_runtime::open_store(&storage("orders"), "orders", &tessera_orders::migrations())
        .await
        .expect("orders starts on the database the script made");
    let master =
        tessera_vault::MasterKey::from_base64("ZGV2ZWxvcG1lbnQgb25seTogbm90IGEgc2VjcmV0ISE=").expect("a key");
    let mut vaults = Vec::new();
    for service in ["orders", "customers"] {
        let store = tessera_runtime::open_store(&storage(service), "vault", &[tessera_vault::MIGRATIONS])
            .await
            .unwrap_or_else(|e| panic!("{service} opens the vault's database: {e}"));
        vaults.push(tessera_vault::Vault::open(store, master.clone(), Vec::new()).await.expect("the vault"));
    }
    use tessera_vault::Sealer as _;
    let sealed = vaults[0].seal("customer-1", "Ada Lovelace").await.expect("orders seals");
    let opened = vaults[1].open("customer-1", &sealed).await.expect("customers opens");
    assert_eq!(opened.as_deref(), Some("Ada Lovelace"), "one vault for the services that seal");
    drop((orders, vaults));
}

/// Every Rust source of the platform crates and the services, where metrics are recorded.
fn platform_sources() -> String {
    let mut sources = String::new();
    let mut folders = vec![deploy().join("../crates"), deploy().join("../services")];
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
    sources
}

/// deploy/grafana/tessera.json: every panel draws from the Prometheus data source the user
/// picks, and every metric and label its queries use is one the services record.
#[test]
fn every_dashboard_panel_queries_metrics_the_services_record() {
    let text = std::fs::read_to_string(deploy().join("grafana/tessera.json")).expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "a panel per concern");
    let sources = platform_sources();
    let mut metrics = 0;
    for panel in panels {
        let title = panel["title"].as_str().expect("a title");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title} uses the chosen data source");
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty()).expect("a query");
        for target in targets {
            let expr = target["expr"].as_str().expect("an expression");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(name) = word.strip_prefix("tessera_").map(|_| word) {
                    let recorded = ["_bucket", "_sum", "_count"]
                        .iter()
                        .fold(name, |name, suffix| name.strip_suffix(suffix).unwrap_or(name));
                    assert!(
                        sources.contains(&format!("\"{recorded}\"")),
                        "{title}: {recorded} is recorded nowhere"
                    );
                    metrics += 1;
                }
            }
            // Every label it groups by is one some metric carries.
            for group in expr.split("by (").skip(1) {
                let labels = group.split(')').next().unwrap_or_default();
                for label in labels.split(',').map(str::trim).filter(|l| *l != "le") {
                    assert!(
                        sources.contains(&format!("\"{label}\"")),
                        "{title}: no metric has the label {label}"
                    );
                }
            }
        }
    }
    assert!(metrics >= 15, "the queries name the services' metrics ({metrics})");
}
