//! The deployment files, checked without Docker or a cluster (neither can run where this project
//! is developed and tested): docker-compose.yml, Dockerfile, .dockerignore and everything under
//! deploy/ (Kubernetes Kustomize base and overlay, Prometheus configuration and alert rules,
//! Grafana provisioning and dashboard) are parsed and their structure and references asserted:
//! services, mounted files, subcommands and `ENTITYWATCH_*` variables the binary really has,
//! probes, replicas, secrets, the alert rules' two copies and the metric names they use.
//! `promtool check rules` / `promtool test rules` (scripts/test.sh) test what the rules do.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::common::exported::{HISTOGRAMS, METRICS};

const BIN: &str = env!("CARGO_BIN_EXE_entitywatch");

/// The alerts deploy/prometheus/rules.yml must define.
const ALERTS: &[&str] = &[
    "EntitywatchWatcherStale",
    "EntitywatchConsumerLagGrowing",
    "EntitywatchAlertSinkFailing",
    "EntitywatchDeadLetters",
    "EntitywatchDown",
    "EntitywatchWatermarkStuck",
    "EntitywatchRuleNotInCodifiedList",
];

/// The Secret every Kubernetes secretKeyRef must name.
const SECRET_NAME: &str = "entitywatch";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every document of a YAML file (`---`-separated), with `<<` merge keys applied; empty
/// documents are skipped.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = read(path);
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let mut value = Value::deserialize(doc)
            .unwrap_or_else(|e| panic!("{} document {i} is not valid YAML: {e}", path.display()));
        value
            .apply_merge()
            .unwrap_or_else(|e| panic!("{} document {i}: bad merge key: {e}", path.display()));
        if !value.is_null() {
            docs.push(value);
        }
    }
    docs
}

fn yaml_doc(path: &Path) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(
        docs.len(),
        1,
        "{} must hold one YAML document",
        path.display()
    );
    docs.remove(0)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn yaml_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    files_under(dir, &mut all);
    all.retain(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")));
    all
}

fn s(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

fn seq(value: &Value) -> &[Value] {
    value.as_sequence().map(|v| v.as_slice()).unwrap_or(&[])
}

fn strings(value: &Value) -> Vec<String> {
    seq(value).iter().map(|v| s(v).to_string()).collect()
}

fn keys(value: &Value) -> Vec<String> {
    value
        .as_mapping()
        .map(|m| m.keys().map(|k| s(k).to_string()).collect())
        .unwrap_or_default()
}

// --- the binary: subcommands and the environment variables each one reads -------------------

/// `entitywatch <words> --help`, run without any `ENTITYWATCH_*` variable of this process;
/// `None` when it fails (no such subcommand). Cached: tests ask for the same few many times.
fn help(words: &[String]) -> Option<String> {
    static CACHE: OnceLock<Mutex<BTreeMap<Vec<String>, Option<String>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache.lock().unwrap().get(words) {
        return hit.clone();
    }
    let mut cmd = Command::new(BIN);
    cmd.args(words).arg("--help");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("ENTITYWATCH_") {
            cmd.env_remove(name);
        }
    }
    let output = cmd.output().expect("the entitywatch binary runs");
    let result = output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned());
    cache.lock().unwrap().insert(words.to_vec(), result.clone());
    result
}

/// The leading words of a command line that name a (nested) subcommand: `["suppliers",
/// "import", "/demo/suppliers.csv"]` gives `["suppliers", "import"]`.
fn subcommand_words(command: &[String]) -> Vec<String> {
    command
        .iter()
        .take_while(|w| {
            !w.is_empty()
                && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                && !w.starts_with('-')
        })
        .cloned()
        .collect()
}

/// The subcommand's `--help`, asserting that it exists.
fn subcommand_help(command: &[String], context: &str) -> String {
    let words = subcommand_words(command);
    assert!(
        !words.is_empty(),
        "{context}: command {command:?} names no subcommand"
    );
    help(&words).unwrap_or_else(|| {
        panic!(
            "{context}: `entitywatch {} --help` fails: {words:?} is not a subcommand",
            words.join(" ")
        )
    })
}

/// Every `ENTITYWATCH_*` name in a help text (clap prints `[env: NAME=]` beside each flag).
fn env_names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("ENTITYWATCH_") {
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..len].to_string());
        rest = &tail[len..];
    }
    names
}

/// Asserts that the subcommand reads `name`: it is in the subcommand's `--help`, or it is a
/// librdkafka pass-through (`ENTITYWATCH_KAFKA__<setting>`, see src/config.rs).
fn assert_known_env(name: &str, command: &[String], context: &str) {
    if let Some(setting) = name.strip_prefix("ENTITYWATCH_KAFKA__") {
        assert!(
            !setting.is_empty()
                && setting
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_'),
            "{context}: {name} is not a librdkafka setting name"
        );
        return;
    }
    if !name.starts_with("ENTITYWATCH_") {
        return;
    }
    let known = env_names_in(&subcommand_help(command, context));
    assert!(
        known.contains(name),
        "{context}: `entitywatch {}` does not read {name}; it reads {known:?}",
        subcommand_words(command).join(" ")
    );
}

/// Names whose values are secrets: on Kubernetes they must come from a Secret.
fn is_secret_setting(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "webhook_url",
        "database_url",
        "sasl.username",
        "sasl.oauthbearer",
        "sasl.jaas",
        "ssl.key",
        "token",
    ]
    .iter()
    .any(|needle| n.contains(needle))
}

// --- docker-compose.yml ----------------------------------------------------------------------

fn compose() -> Value {
    yaml_doc(&root().join("docker-compose.yml"))
}

/// A compose `environment`, as a map or as a list of `NAME=value`.
fn compose_env(service: &Value) -> BTreeMap<String, String> {
    let env = &service["environment"];
    if let Some(map) = env.as_mapping() {
        map.iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => serde_yaml_ng::to_string(other).unwrap().trim().to_string(),
                };
                (s(k).to_string(), value)
            })
            .collect()
    } else {
        strings(env)
            .into_iter()
            .map(|line| match line.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (line, String::new()),
            })
            .collect()
    }
}

fn is_entitywatch_service(service: &Value) -> bool {
    !service["build"].is_null() || s(&service["image"]).starts_with("entitywatch")
}

/// (host path, container path) of every bind mount of a service; named volumes are checked
/// against the top-level `volumes`.
fn compose_binds(name: &str, service: &Value, named: &BTreeSet<String>) -> Vec<(String, String)> {
    let mut binds = Vec::new();
    for volume in seq(&service["volumes"]) {
        let (source, target) = if let Some(short) = volume.as_str() {
            let mut parts = short.split(':');
            let source = parts.next().unwrap_or("").to_string();
            let target = parts.next().unwrap_or("").to_string();
            (source, target)
        } else {
            (
                s(&volume["source"]).to_string(),
                s(&volume["target"]).to_string(),
            )
        };
        assert!(
            target.starts_with('/'),
            "service {name}: volume {volume:?} has no absolute container path"
        );
        if source.starts_with('.') || source.starts_with('/') {
            binds.push((source, target));
        } else {
            assert!(
                named.contains(&source),
                "service {name}: named volume {source} is not declared under top-level volumes"
            );
        }
    }
    binds
}

fn repo_path(host: &str, context: &str) -> PathBuf {
    assert!(
        host.starts_with("./"),
        "{context}: {host} must be a path relative to the repository (./...)"
    );
    let path = root().join(&host[2..]);
    assert!(
        path.exists(),
        "{context}: {host} does not exist in the repository"
    );
    path
}

#[test]
fn compose_services_exist_and_reference_real_things() {
    let compose = compose();
    let services = compose["services"]
        .as_mapping()
        .expect("docker-compose.yml has services");
    let names: BTreeSet<String> = services.keys().map(|k| s(k).to_string()).collect();
    for required in [
        "kafka",
        "postgres",
        "watcher",
        "worker",
        "webhook-receiver",
        "prometheus",
        "grafana",
    ] {
        assert!(
            names.contains(required),
            "docker-compose.yml has no {required} service (has {names:?})"
        );
    }
    let named_volumes: BTreeSet<String> = keys(&compose["volumes"]).into_iter().collect();

    for (name, service) in services {
        let name = s(name);
        let depends_on = match &service["depends_on"] {
            Value::Mapping(m) => m.keys().map(|k| s(k).to_string()).collect(),
            other => strings(other),
        };
        for target in depends_on {
            assert!(
                names.contains(&target),
                "service {name} depends on {target}, which is not a service"
            );
        }
        for (host, _) in compose_binds(name, service, &named_volumes) {
            repo_path(&host, &format!("service {name}"));
        }
        match &service["build"] {
            Value::Null => {}
            build => {
                let context = build.as_str().unwrap_or_else(|| s(&build["context"]));
                let dockerfile = build["dockerfile"].as_str().unwrap_or("Dockerfile");
                let dir = root().join(context);
                assert!(
                    dir.join(dockerfile).is_file(),
                    "service {name}: no {dockerfile} in build context {context}"
                );
            }
        }
        if is_entitywatch_service(service) {
            let command = strings(&service["command"]);
            assert!(
                !command.is_empty(),
                "service {name}: an entitywatch service needs a command as a list"
            );
            let context = format!("docker-compose.yml service {name}");
            subcommand_help(&command, &context);
            for env in compose_env(service).keys() {
                assert_known_env(env, &command, &context);
            }
        }
    }
}

#[test]
fn compose_runs_one_watcher_and_two_workers_with_alerts_to_the_receiver() {
    let compose = compose();
    let services = &compose["services"];

    let watcher = &services["watcher"];
    assert_eq!(strings(&watcher["command"])[0], "watch");
    let replicas = watcher["deploy"]["replicas"].as_u64().unwrap_or(1);
    assert_eq!(replicas, 1, "exactly one watcher");

    let worker = &services["worker"];
    assert_eq!(strings(&worker["command"])[0], "work");
    let replicas = worker["deploy"]["replicas"].as_u64().unwrap_or(1);
    assert!(replicas >= 2, "at least two workers, got {replicas}");

    for name in ["watcher", "worker"] {
        let env = compose_env(&services[name]);
        for required in ["ENTITYWATCH_KAFKA_BROKERS", "ENTITYWATCH_DATABASE_URL"] {
            assert!(env.contains_key(required), "{name} must set {required}");
        }
        assert!(
            env["ENTITYWATCH_KAFKA_BROKERS"].starts_with("kafka:"),
            "{name} must use the compose Kafka"
        );
        assert!(
            env["ENTITYWATCH_DATABASE_URL"].contains("@postgres:"),
            "{name} must use the compose PostgreSQL"
        );
        if let Some(addr) = env.get("ENTITYWATCH_HTTP_ADDR") {
            assert_eq!(addr, "0.0.0.0:8080", "{name}: metrics on all interfaces");
        }
    }

    // Alerts reach the local receiver, as Slack (unless overridden) and as a signed webhook.
    let env = compose_env(worker);
    for var in ["ENTITYWATCH_SLACK_WEBHOOK_URL", "ENTITYWATCH_WEBHOOK_URL"] {
        let value = env
            .get(var)
            .unwrap_or_else(|| panic!("worker must set {var}"));
        assert!(
            value.contains("http://webhook-receiver:"),
            "worker {var} must point at the webhook-receiver service, got {value}"
        );
    }
    assert!(
        env.get("ENTITYWATCH_WEBHOOK_SECRET")
            .is_some_and(|v| !v.is_empty()),
        "a webhook URL needs ENTITYWATCH_WEBHOOK_SECRET"
    );
}

#[test]
fn compose_prometheus_and_grafana_are_wired_to_the_deploy_files() {
    let compose = compose();
    let services = &compose["services"];
    let named: BTreeSet<String> = keys(&compose["volumes"]).into_iter().collect();
    let mounts = |name: &str| -> BTreeMap<String, PathBuf> {
        compose_binds(name, &services[name], &named)
            .into_iter()
            .map(|(host, target)| (target, repo_path(&host, name)))
            .collect()
    };

    // Prometheus: its configuration and, beside it as the configuration names it, the rules.
    let prometheus = mounts("prometheus");
    let config_target = "/etc/prometheus/prometheus.yml";
    let config_path = prometheus
        .get(config_target)
        .unwrap_or_else(|| panic!("prometheus must mount {config_target}"));
    assert_eq!(
        config_path,
        &root().join("deploy/prometheus/prometheus.yml")
    );
    let config = yaml_doc(config_path);
    for rule_file in strings(&config["rule_files"]) {
        let target = Path::new(config_target).parent().unwrap().join(&rule_file);
        let mounted = prometheus
            .get(target.to_str().unwrap())
            .unwrap_or_else(|| panic!("prometheus must mount rule file {rule_file} at {target:?}"));
        assert_eq!(mounted, &root().join("deploy/prometheus/rules.yml"));
    }
    assert!(
        !strings(&config["rule_files"]).is_empty(),
        "Prometheus must load the rules"
    );

    // Every scraped host is a compose service: the watcher and the workers by job.
    let mut jobs = BTreeMap::new();
    for job in seq(&config["scrape_configs"]) {
        let mut hosts = Vec::new();
        for sc in seq(&job["static_configs"]) {
            hosts.extend(strings(&sc["targets"]));
        }
        for sd in seq(&job["dns_sd_configs"]) {
            hosts.extend(strings(&sd["names"]));
        }
        for host in &hosts {
            let service = host.split(':').next().unwrap();
            assert!(
                service == "localhost" || !services[service].is_null(),
                "Prometheus scrapes {host}, which is no compose service"
            );
        }
        jobs.insert(s(&job["job_name"]).to_string(), hosts);
    }
    for (service, job) in [
        ("watcher", "entitywatch-watcher"),
        ("worker", "entitywatch-worker"),
    ] {
        assert!(
            jobs.get(job)
                .is_some_and(|hosts| hosts.iter().any(|h| h.split(':').next() == Some(service))),
            "Prometheus job {job} must scrape the {service} service ({jobs:?})"
        );
        // The EntitywatchDown alert matches job=~".*entitywatch.*".
        assert!(job.contains("entitywatch"));
    }

    // Grafana: data source and dashboard provider from deploy/grafana, the dashboards directory
    // mounted where the provider looks.
    let grafana = mounts("grafana");
    let provisioning: Vec<&PathBuf> = grafana
        .iter()
        .filter(|(target, _)| target.starts_with("/etc/grafana/provisioning/"))
        .map(|(_, host)| host)
        .collect();
    assert!(
        provisioning.len() >= 2,
        "grafana must mount datasource and dashboard provisioning"
    );
    let datasources =
        yaml_doc(&root().join("deploy/grafana/provisioning/datasources/prometheus.yml"));
    let url = s(&datasources["datasources"][0]["url"]);
    assert_eq!(
        url, "http://prometheus:9090",
        "Grafana reads the compose Prometheus"
    );
    let providers =
        yaml_doc(&root().join("deploy/grafana/provisioning/dashboards/entitywatch.yml"));
    let path = s(&providers["providers"][0]["options"]["path"]);
    assert_eq!(
        grafana.get(path),
        Some(&root().join("deploy/grafana/dashboards")),
        "the dashboard provider path {path} must be the mounted deploy/grafana/dashboards"
    );
}

// --- Dockerfile --------------------------------------------------------------------------------

#[test]
fn dockerfile_is_multi_stage_non_root_and_runs_a_real_subcommand() {
    let text = read(&root().join("Dockerfile"));
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let froms = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert!(froms >= 2, "multi-stage build");
    let runtime = &text[text.rfind("\nFROM ").expect("a runtime stage")..];
    assert!(runtime.contains("-slim"), "a slim runtime image");

    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    let user = user.split(':').next().unwrap().trim();
    assert!(user != "root" && user != "0", "runs as a non-root user");
    assert!(
        user.chars().all(|c| c.is_ascii_digit()),
        "a numeric uid, so Kubernetes' runAsNonRoot can check it"
    );

    assert!(lines.contains(&"EXPOSE 8080"));
    assert!(text.contains("ENTITYWATCH_HTTP_ADDR=0.0.0.0:8080"));
    let healthcheck = text
        .find("HEALTHCHECK")
        .map(|i| &text[i..])
        .expect("a HEALTHCHECK");
    assert!(healthcheck.contains("/healthz"));

    let cmd = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("CMD "))
        .expect("a CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd).expect("CMD in exec (JSON) form");
    subcommand_help(&cmd, "Dockerfile CMD");
    for name in env_names_in(&text) {
        assert_known_env(&name, &cmd, "Dockerfile ENV");
    }

    // The build needs these; .dockerignore must not leave them out of the context.
    let ignore = read(&root().join(".dockerignore"));
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in [
        "src",
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "askama.toml",
        "migrations",
        "schemas",
        "demo",
        "tests",
        "benches",
    ] {
        assert!(root().join(needed).exists(), "{needed} exists");
        assert!(
            !patterns.iter().any(
                |p| p.trim_start_matches('/').trim_end_matches('/') == needed
                    || *p == "*"
                    || *p == "**"
            ),
            ".dockerignore must not exclude {needed}"
        );
    }
}

// --- Kubernetes ----------------------------------------------------------------------------

fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
}

/// The documents of a kustomization's resources, following directory resources.
fn kustomize_resources(dir: &Path, out: &mut Vec<(PathBuf, Value)>) {
    let k = yaml_doc(&kustomization_file(dir).expect("a kustomization"));
    for resource in strings(&k["resources"]) {
        let path = dir.join(&resource);
        if path.is_dir() {
            kustomize_resources(&path, out);
        } else {
            for doc in yaml_docs(&path) {
                out.push((path.clone(), doc));
            }
        }
    }
}

fn base_dir() -> PathBuf {
    root().join("deploy/kubernetes/base")
}

fn base_docs() -> Vec<(PathBuf, Value)> {
    let mut docs = Vec::new();
    kustomize_resources(&base_dir(), &mut docs);
    docs
}

fn find<'a>(docs: &'a [(PathBuf, Value)], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| s(&d["kind"]) == kind && s(&d["metadata"]["name"]) == name)
        .unwrap_or_else(|| panic!("the base has no {kind} {name}"))
}

/// Every kustomization under deploy/, with every file it names.
fn all_kustomizations() -> Vec<PathBuf> {
    let mut all = Vec::new();
    files_under(&root().join("deploy"), &mut all);
    all.retain(|p| {
        matches!(
            p.file_name().and_then(|n| n.to_str()),
            Some("kustomization.yaml" | "kustomization.yml" | "Kustomization")
        )
    });
    all
}

#[test]
fn every_yaml_under_deploy_parses_and_every_manifest_is_complete() {
    let files = yaml_files_under(&root().join("deploy"));
    assert!(files.len() >= 10, "deploy/ holds the manifests: {files:?}");
    let kustomizations = all_kustomizations();
    for file in files {
        let docs = yaml_docs(&file);
        assert!(!docs.is_empty(), "{} is empty", file.display());
        if !file.starts_with(root().join("deploy/kubernetes")) || kustomizations.contains(&file) {
            continue;
        }
        for doc in docs {
            for field in ["apiVersion", "kind"] {
                assert!(
                    !s(&doc[field]).is_empty(),
                    "{}: a manifest without {field}",
                    file.display()
                );
            }
            assert!(
                !s(&doc["metadata"]["name"]).is_empty(),
                "{}: a {} without metadata.name",
                file.display(),
                s(&doc["kind"])
            );
            // Secrets are referenced, never shipped with values.
            if s(&doc["kind"]) == "Secret" {
                assert!(
                    doc["data"].is_null() && doc["stringData"].is_null(),
                    "{}: no Secret values in the repository",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn kustomizations_reference_only_files_that_exist() {
    let kustomizations = all_kustomizations();
    assert!(kustomizations.contains(&base_dir().join("kustomization.yaml")));
    for file in kustomizations {
        let dir = file.parent().unwrap();
        let k = yaml_doc(&file);
        assert_eq!(s(&k["kind"]), "Kustomization", "{}", file.display());
        let mut referenced = BTreeSet::new();
        for resource in strings(&k["resources"])
            .into_iter()
            .chain(strings(&k["components"]))
        {
            assert!(
                !resource.contains("://"),
                "{}: remote resource {resource}",
                file.display()
            );
            let path = dir.join(&resource);
            assert!(
                path.is_file() || (path.is_dir() && kustomization_file(&path).is_some()),
                "{}: resource {resource} is neither a file nor a kustomization directory",
                file.display()
            );
            referenced.insert(path);
        }
        for patch in seq(&k["patches"]) {
            if let Some(path) = patch["path"].as_str() {
                let path = dir.join(path);
                assert!(path.is_file(), "{}: patch {path:?} missing", file.display());
                referenced.insert(path);
            }
        }
        for generator in seq(&k["configMapGenerator"])
            .iter()
            .chain(seq(&k["secretGenerator"]))
        {
            for entry in strings(&generator["files"])
                .into_iter()
                .chain(strings(&generator["envs"]))
            {
                let path = entry.split_once('=').map_or(entry.as_str(), |(_, p)| p);
                assert!(
                    !path.contains(".."),
                    "{}: {path} is outside the kustomization root (kustomize refuses it)",
                    file.display()
                );
                assert!(
                    dir.join(path).is_file(),
                    "{}: generator file {path} missing",
                    file.display()
                );
                referenced.insert(dir.join(path));
            }
        }
        // No manifest lying beside a kustomization that it forgets to apply.
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let yaml = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yml" | "yaml")
            );
            if yaml && path != file {
                assert!(
                    referenced.contains(&path),
                    "{} is not referenced by {}",
                    path.display(),
                    file.display()
                );
            }
        }
    }
}

fn container(deployment: &Value) -> &Value {
    let containers = seq(&deployment["spec"]["template"]["spec"]["containers"]);
    assert_eq!(
        containers.len(),
        1,
        "{}: one container",
        s(&deployment["metadata"]["name"])
    );
    &containers[0]
}

fn replicas(deployment: &Value) -> u64 {
    deployment["spec"]["replicas"].as_u64().unwrap_or(1)
}

#[test]
fn watcher_never_runs_twice_and_workers_scale_out() {
    let docs = base_docs();
    let watcher = find(&docs, "Deployment", "entitywatch-watcher");
    assert_eq!(replicas(watcher), 1, "exactly one watcher");
    assert_eq!(
        s(&watcher["spec"]["strategy"]["type"]),
        "Recreate",
        "a rollout must stop the old watcher before starting the new one"
    );
    assert_eq!(strings(&container(watcher)["args"]), ["watch"]);

    let worker = find(&docs, "Deployment", "entitywatch-worker");
    assert!(replicas(worker) >= 2, "at least two workers");
    assert_eq!(strings(&container(worker)["args"]), ["work"]);

    // The overlay may scale workers, never the watcher.
    for file in all_kustomizations() {
        let k = yaml_doc(&file);
        for r in seq(&k["replicas"]) {
            assert_ne!(
                s(&r["name"]),
                "entitywatch-watcher",
                "{}: the watcher stays at one replica",
                file.display()
            );
            if s(&r["name"]) == "entitywatch-worker" {
                assert!(r["count"].as_u64().unwrap() >= 2);
            }
        }
    }
}

/// The ConfigMaps named by a container's envFrom, from every file under deploy/kubernetes
/// (base and overlay patches alike), so an overlay's additions are checked too.
fn config_map_keys(name: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for file in yaml_files_under(&root().join("deploy/kubernetes")) {
        for doc in yaml_docs(&file) {
            if s(&doc["kind"]) == "ConfigMap" && s(&doc["metadata"]["name"]) == name {
                found.extend(keys(&doc["data"]));
            }
        }
    }
    assert!(
        !found.is_empty(),
        "no ConfigMap {name} under deploy/kubernetes"
    );
    found
}

#[test]
fn deployments_are_probed_secured_and_read_only_known_settings() {
    let docs = base_docs();
    let deployments: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| s(&d["kind"]) == "Deployment")
        .collect();
    assert_eq!(deployments.len(), 2, "watcher and worker");
    for deployment in deployments {
        let name = s(&deployment["metadata"]["name"]);
        let pod = &deployment["spec"]["template"]["spec"];
        let c = container(deployment);
        let args = strings(&c["args"]);
        let context = format!("Deployment {name}");
        subcommand_help(&args, &context);

        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
        assert!(
            grace >= 45,
            "{context}: graceful stop needs ≥ 45 s, has {grace}"
        );

        // Probes on the metrics port.
        let port = seq(&c["ports"])
            .iter()
            .find(|p| s(&p["name"]) == "http")
            .unwrap_or_else(|| panic!("{context}: a port named http"));
        assert_eq!(port["containerPort"].as_u64(), Some(8080));
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &c[probe]["httpGet"];
            assert_eq!(s(&get["path"]), path, "{context}: {probe}");
            assert!(
                s(&get["port"]) == "http" || get["port"].as_u64() == Some(8080),
                "{context}: {probe} on the metrics port"
            );
        }

        // Resources and a locked-down security context.
        for key in ["requests", "limits"] {
            assert!(
                !s(&c["resources"][key]["memory"]).is_empty(),
                "{context}: resources.{key}.memory"
            );
        }
        assert!(!s(&c["resources"]["requests"]["cpu"]).is_empty());
        let sc = &c["securityContext"];
        let non_root = sc["runAsNonRoot"]
            .as_bool()
            .or(pod["securityContext"]["runAsNonRoot"].as_bool());
        assert_eq!(non_root, Some(true), "{context}: runAsNonRoot");
        assert_eq!(
            sc["readOnlyRootFilesystem"].as_bool(),
            Some(true),
            "{context}"
        );
        assert_eq!(
            sc["allowPrivilegeEscalation"].as_bool(),
            Some(false),
            "{context}"
        );
        assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"], "{context}");

        // Environment: every name known to the subcommand; secrets only through secretKeyRef.
        for env in seq(&c["env"]) {
            let var = s(&env["name"]);
            assert_known_env(var, &args, &context);
            if is_secret_setting(var) {
                assert!(
                    env["value"].is_null(),
                    "{context}: {var} is a secret and must not be inline"
                );
                let secret = &env["valueFrom"]["secretKeyRef"];
                assert_eq!(
                    s(&secret["name"]),
                    SECRET_NAME,
                    "{context}: {var} must come from the Secret {SECRET_NAME}"
                );
                assert!(!s(&secret["key"]).is_empty());
            }
        }
        for source in seq(&c["envFrom"]) {
            assert!(
                source["secretRef"].is_null() || s(&source["secretRef"]["name"]) == SECRET_NAME
            );
            if let Some(config_map) = source["configMapRef"]["name"].as_str() {
                for key in config_map_keys(config_map) {
                    assert_known_env(&key, &args, &format!("{context} ConfigMap {config_map}"));
                    assert!(
                        !is_secret_setting(&key),
                        "ConfigMap {config_map}: {key} is a secret; use the Secret"
                    );
                }
            }
        }
    }

    // The HTTP address the ConfigMap sets serves on the container port.
    let config = find(&docs, "ConfigMap", "entitywatch-config");
    assert_eq!(s(&config["data"]["ENTITYWATCH_HTTP_ADDR"]), "0.0.0.0:8080");

    // The worker reads the alert sinks' secrets; URL and HMAC key both optional (alerts still go
    // to the alert topic), the database URL required.
    let worker = container(find(&docs, "Deployment", "entitywatch-worker"));
    let optional: BTreeMap<&str, Option<bool>> = seq(&worker["env"])
        .iter()
        .filter(|e| !e["valueFrom"]["secretKeyRef"].is_null())
        .map(|e| {
            (
                s(&e["name"]),
                e["valueFrom"]["secretKeyRef"]["optional"].as_bool(),
            )
        })
        .collect();
    for var in [
        "ENTITYWATCH_SLACK_WEBHOOK_URL",
        "ENTITYWATCH_WEBHOOK_URL",
        "ENTITYWATCH_WEBHOOK_SECRET",
        "ENTITYWATCH_KAFKA__sasl.username",
        "ENTITYWATCH_KAFKA__sasl.password",
    ] {
        assert_eq!(optional.get(var), Some(&Some(true)), "worker {var}");
    }
    assert!(matches!(
        optional.get("ENTITYWATCH_DATABASE_URL"),
        Some(None | Some(false))
    ));
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (s(k).to_string(), s(v).to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    small.iter().all(|(k, v)| big.get(k) == Some(v))
}

#[test]
fn services_and_service_monitor_reach_the_metrics_port() {
    let docs = base_docs();
    let services: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| s(&d["kind"]) == "Service")
        .collect();
    let monitor = find(&docs, "ServiceMonitor", "entitywatch");
    let selector = labels(&monitor["spec"]["selector"]["matchLabels"]);
    let endpoints = seq(&monitor["spec"]["endpoints"]);
    assert!(!endpoints.is_empty());
    for endpoint in endpoints {
        assert_eq!(s(&endpoint["path"]), "/metrics");
    }
    for deployment in ["entitywatch-watcher", "entitywatch-worker"] {
        let deployment = find(&docs, "Deployment", deployment);
        let pod_labels = labels(&deployment["spec"]["template"]["metadata"]["labels"]);
        assert!(subset(
            &labels(&deployment["spec"]["selector"]["matchLabels"]),
            &pod_labels
        ));
        let service = services
            .iter()
            .find(|svc| subset(&labels(&svc["spec"]["selector"]), &pod_labels))
            .unwrap_or_else(|| panic!("no Service selects {}", s(&deployment["metadata"]["name"])));
        assert!(
            s(&service["metadata"]["name"]).contains("entitywatch"),
            "the job label (Service name) must match the rules' job=~\".*entitywatch.*\""
        );
        assert!(
            subset(&selector, &labels(&service["metadata"]["labels"])),
            "the ServiceMonitor must select Service {}",
            s(&service["metadata"]["name"])
        );
        let port_names: BTreeSet<&str> = seq(&container(deployment)["ports"])
            .iter()
            .map(|p| s(&p["name"]))
            .collect();
        let service_ports = seq(&service["spec"]["ports"]);
        for endpoint in endpoints {
            let port = service_ports
                .iter()
                .find(|p| s(&p["name"]) == s(&endpoint["port"]))
                .expect("the ServiceMonitor port is a Service port");
            assert!(
                port_names.contains(s(&port["targetPort"])),
                "Service port {} must target the container's http port",
                s(&port["name"])
            );
        }
    }
}

// --- Prometheus rules ---------------------------------------------------------------------------

fn rules() -> Value {
    yaml_doc(&root().join("deploy/prometheus/rules.yml"))
}

#[test]
fn prometheus_rule_manifest_carries_the_same_groups_as_the_rule_file() {
    let docs = base_docs();
    let manifest = find(&docs, "PrometheusRule", "entitywatch");
    assert_eq!(s(&manifest["apiVersion"]), "monitoring.coreos.com/v1");
    assert_eq!(
        manifest["spec"]["groups"],
        rules()["groups"],
        "deploy/kubernetes/base/prometheusrule.yaml spec.groups must equal deploy/prometheus/rules.yml groups"
    );
}

#[test]
fn every_alert_is_labelled_annotated_and_unit_tested() {
    let rules = rules();
    let tests = yaml_doc(&root().join("deploy/prometheus/rules_test.yml"));
    assert_eq!(strings(&tests["rule_files"]), ["rules.yml"]);
    // alert name -> (a case expecting it to fire, a case expecting quiet)
    let mut tested: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for case in seq(&tests["tests"]) {
        for t in seq(&case["alert_rule_test"]) {
            let entry = tested.entry(s(&t["alertname"]).to_string()).or_default();
            if seq(&t["exp_alerts"]).is_empty() {
                entry.1 = true;
            } else {
                entry.0 = true;
            }
        }
    }

    let mut names = BTreeSet::new();
    for group in seq(&rules["groups"]) {
        for rule in seq(&group["rules"]) {
            let name = s(&rule["alert"]);
            assert!(!name.is_empty(), "only alerting rules: {rule:?}");
            names.insert(name.to_string());
            assert!(!s(&rule["expr"]).is_empty());
            assert!(
                matches!(
                    s(&rule["labels"]["severity"]),
                    "critical" | "warning" | "info"
                ),
                "{name}: severity label"
            );
            for annotation in ["summary", "description", "runbook_url"] {
                assert!(
                    !s(&rule["annotations"][annotation]).is_empty(),
                    "{name}: {annotation} annotation"
                );
            }
            let runbook = s(&rule["annotations"]["runbook_url"]);
            assert!(
                runbook.ends_with(&format!("README.md#runbook-{}", name.to_ascii_lowercase())),
                "{name}: runbook_url must point at README.md#runbook-{}, got {runbook}",
                name.to_ascii_lowercase()
            );
            assert_eq!(
                tested.get(name),
                Some(&(true, true)),
                "{name}: rules_test.yml must show it firing and staying quiet"
            );
        }
    }
    let expected: BTreeSet<String> = ALERTS.iter().map(|a| a.to_string()).collect();
    assert_eq!(names, expected);
}

/// GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to `-`.
fn heading_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn runbook_anchors_exist_in_readme() {
    let readme = read(&root().join("README.md"));
    let mut anchors = BTreeSet::new();
    for line in readme.lines() {
        if let Some(heading) = line.strip_prefix('#') {
            anchors.insert(heading_anchor(heading.trim_start_matches('#')));
        }
        for attr in ["id=\"", "name=\""] {
            let mut rest = line;
            while let Some(at) = rest.find(attr) {
                let tail = &rest[at + attr.len()..];
                let end = tail.find('"').unwrap_or(tail.len());
                anchors.insert(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
    }
    let rules = rules();
    for group in seq(&rules["groups"]) {
        for rule in seq(&group["rules"]) {
            let url = s(&rule["annotations"]["runbook_url"]);
            let anchor = url.split_once('#').map(|(_, a)| a).unwrap_or("");
            assert!(
                anchors.contains(anchor),
                "{}: README.md has no heading or id for #{anchor}",
                s(&rule["alert"])
            );
        }
    }
}

// --- metric names --------------------------------------------------------------------------------

/// Every `entitywatch_[a-z_]+` word in a text.
fn metric_names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text[from..].find("entitywatch_").map(|i| i + from) {
        let preceded = at > 0 && {
            let c = bytes[at - 1];
            c.is_ascii_alphanumeric() || c == b'_'
        };
        let mut end = at + "entitywatch_".len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        let name = text[at..end].trim_end_matches('_');
        if !preceded && name.len() > "entitywatch".len() {
            names.insert(name.to_string());
        }
        from = end;
    }
    names
}

fn is_exported(name: &str) -> bool {
    METRICS.contains(&name)
        || HISTOGRAMS.iter().any(|h| {
            name.strip_prefix(h)
                .is_some_and(|suffix| matches!(suffix, "_bucket" | "_sum" | "_count"))
        })
}

fn dashboard() -> serde_json::Value {
    let path = root().join("deploy/grafana/dashboards/entitywatch.json");
    serde_json::from_str(&read(&path)).expect("the dashboard is valid JSON")
}

#[test]
fn rules_dashboard_and_readme_use_only_exported_metrics() {
    for file in [
        "deploy/prometheus/rules.yml",
        "deploy/prometheus/rules_test.yml",
        "deploy/kubernetes/base/prometheusrule.yaml",
        "deploy/grafana/dashboards/entitywatch.json",
        "README.md",
    ] {
        for name in metric_names_in(&read(&root().join(file))) {
            assert!(
                is_exported(&name),
                "{file} uses {name}, which entitywatch does not export \
                 (tests/it/common/exported.rs METRICS)"
            );
        }
    }
    // The rules watch the four things an operator must hear about.
    let rules = read(&root().join("deploy/prometheus/rules.yml"));
    let used = metric_names_in(&rules);
    for needed in [
        "entitywatch_watcher_last_successful_poll_timestamp_seconds",
        "entitywatch_consumer_lag",
        "entitywatch_alerts_total",
        "entitywatch_alert_delivery_retries_total",
        "entitywatch_dead_letters_total",
    ] {
        assert!(used.contains(needed), "rules.yml must use {needed}");
    }
}

#[test]
fn dashboard_parses_and_shows_every_metric() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "entitywatch");
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    assert!(
        variables
            .iter()
            .any(|v| v["type"] == "datasource" && v["name"] == "datasource"),
        "a $datasource variable, so the same JSON works in compose and on Kubernetes"
    );
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut exprs = String::new();
    for panel in panels {
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "duplicate panel id {id}");
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or("");
        assert!(!title.is_empty(), "panel {id} has a title");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "panel {title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has queries");
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            assert!(!expr.is_empty());
            exprs.push_str(expr);
            exprs.push('\n');
        }
    }
    let used = metric_names_in(&exprs);
    for metric in METRICS {
        let shown = used.contains(*metric)
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| used.contains(&format!("{metric}{suffix}")));
        assert!(shown, "the dashboard shows no panel for {metric}");
    }

    // One copy: the Kubernetes ConfigMap is generated from the same file compose mounts.
    let k = yaml_doc(&root().join("deploy/grafana/kustomization.yaml"));
    let files: Vec<String> = seq(&k["configMapGenerator"])
        .iter()
        .flat_map(|g| strings(&g["files"]))
        .collect();
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("dashboards/entitywatch.json")),
        "deploy/grafana/kustomization.yaml generates the dashboard ConfigMap: {files:?}"
    );
    assert!(
        strings(&yaml_doc(&base_dir().join("kustomization.yaml"))["resources"])
            .contains(&"../../grafana".to_string())
    );
}

#[test]
fn ci_runs_promtool_on_the_rules() {
    let script = read(&root().join("scripts/test.sh"));
    for line in [
        "promtool check rules deploy/prometheus/rules.yml",
        "promtool test rules deploy/prometheus/rules_test.yml",
    ] {
        assert!(script.contains(line), "scripts/test.sh must run `{line}`");
    }
    let services = read(&root().join("scripts/services.sh"));
    assert!(
        services.contains("promtool") && services.contains("prometheus"),
        "scripts/services.sh installs promtool (Debian package prometheus) when missing"
    );
}

/// Where kubectl is installed (developers' machines here have it; a fresh CI machine may not),
/// render the base and every overlay with its built-in kustomize and check the result.
#[test]
fn kustomize_renders_when_kubectl_is_installed() {
    let available = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!(
            "kubectl not installed: kustomize rendering not checked (structure tests still ran)"
        );
        return;
    }
    let dashboard_json = read(&root().join("deploy/grafana/dashboards/entitywatch.json"));
    for file in all_kustomizations() {
        let dir = file.parent().unwrap();
        if dir == root().join("deploy/grafana") {
            continue;
        }
        let output = Command::new("kubectl")
            .arg("kustomize")
            .arg(dir)
            .output()
            .expect("kubectl runs");
        assert!(
            output.status.success(),
            "kubectl kustomize {}: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        let rendered = String::from_utf8(output.stdout).unwrap();
        let mut kinds = BTreeMap::<String, usize>::new();
        let mut dashboard_found = false;
        for doc in serde_yaml_ng::Deserializer::from_str(&rendered) {
            let doc = Value::deserialize(doc).unwrap();
            *kinds.entry(s(&doc["kind"]).to_string()).or_default() += 1;
            if s(&doc["kind"]) == "ConfigMap"
                && s(&doc["metadata"]["name"]).contains("grafana-dashboard")
            {
                assert_eq!(s(&doc["data"]["entitywatch.json"]), dashboard_json);
                dashboard_found = true;
            }
        }
        assert!(
            dashboard_found,
            "{}: the dashboard ConfigMap",
            dir.display()
        );
        for kind in ["Deployment", "Service"] {
            assert_eq!(kinds.get(kind), Some(&2), "{}: {kind}s", dir.display());
        }
        for kind in ["ServiceMonitor", "PrometheusRule"] {
            assert_eq!(kinds.get(kind), Some(&1), "{}: {kind}", dir.display());
        }
    }
}
