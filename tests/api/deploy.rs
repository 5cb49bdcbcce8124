//! The deployment files as files: the compose files' structure (the single stack and the HA
//! stack of deploy/ha), the Dockerfile's essentials, and the Kubernetes manifests of deploy/k8s,
//! rendered as kustomize does and validated offline against the Kubernetes and KEDA schemas.
//! Quick and without Docker; the single stack runs for real in `tests/compose/`, the nginx
//! config in `gateway.rs`, and Docker Compose reads the HA stack in `tests/compose/` too.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml_ng::Value;

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn compose() -> Value {
    compose_at("docker-compose.yml")
}

/// A compose file, its YAML merge keys (`<<: *app`) resolved.
fn compose_at(path: &str) -> Value {
    let mut value: Value = serde_yaml_ng::from_str(&repo_file(path))
        .unwrap_or_else(|e| panic!("{path} does not parse: {e}"));
    // A merged mapping may merge another in turn (x-sentinel merges x-redis): until none left.
    for _ in 0..4 {
        value.apply_merge().expect("YAML merge keys resolve");
    }
    value
}

fn services(compose: &Value) -> Vec<(String, Value)> {
    let services = compose["services"].as_mapping().expect("services");
    services
        .iter()
        .map(|(name, body)| (name.as_str().expect("name").to_owned(), body.clone()))
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn service(compose: &Value, name: &str) -> Value {
    services(compose)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no service {name}"))
        .1
}

const APP: [&str; 3] = ["web", "worker", "notifier"];
const STORES: [&str; 3] = ["minio", "redis", "rabbitmq"];
const SECRETS_DIR: &str = "/run/gallery-secrets";

#[test]
fn every_service_has_a_healthcheck_and_restarts_but_the_one_shot_secrets() {
    let compose = compose();
    let names: BTreeSet<String> = services(&compose)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let expected = [
        "secrets", "nginx", "web", "worker", "notifier", "minio", "redis", "rabbitmq",
    ];
    assert_eq!(names, expected.iter().map(|s| s.to_string()).collect());
    for (name, service) in services(&compose) {
        if name == "secrets" {
            // Runs once per `up`, then exits: no health check, no restart, no network at all.
            assert_eq!(service["restart"], "no");
            assert_eq!(service["network_mode"], "none");
            assert_eq!(service["user"], "root");
            continue;
        }
        assert!(
            service["healthcheck"]["test"].is_sequence(),
            "{name} has no healthcheck"
        );
        assert_eq!(
            service["restart"], "unless-stopped",
            "{name} restart policy"
        );
    }
}

#[test]
fn the_image_is_built_once_and_every_role_runs_it() {
    let compose = compose();
    let built: Vec<String> = services(&compose)
        .into_iter()
        .filter(|(_, s)| s.get("build").is_some())
        .map(|(n, _)| n)
        .collect();
    // The first service everything depends on builds it; the roles only name it.
    assert_eq!(built, ["secrets"], "services with a build section");
    let image = service(&compose, "secrets")["image"].clone();
    assert!(image.as_str().is_some_and(|i| i.starts_with("gallery:")));
    for role in APP {
        let role_service = service(&compose, role);
        assert_eq!(role_service["image"], image, "{role} runs the built image");
        assert_eq!(
            role_service["pull_policy"], "never",
            "{role} never pulls it"
        );
    }
}

#[test]
fn everything_waits_for_its_secrets_and_the_app_for_healthy_stores() {
    let compose = compose();
    for role in APP {
        let depends = &service(&compose, role)["depends_on"];
        assert_eq!(
            depends["secrets"]["condition"],
            "service_completed_successfully"
        );
        for store in STORES {
            assert_eq!(
                depends[store]["condition"], "service_healthy",
                "{role} waits for {store}"
            );
        }
    }
    for store in STORES {
        assert_eq!(
            service(&compose, store)["depends_on"]["secrets"]["condition"],
            "service_completed_successfully",
            "{store} waits for its secrets"
        );
    }
    assert_eq!(
        service(&compose, "nginx")["depends_on"]["web"]["condition"],
        "service_healthy"
    );
    assert_eq!(strings(&service(&compose, "web")["command"]), ["web"]);
    assert_eq!(
        strings(&service(&compose, "worker")["command"])[0],
        "worker"
    );
    assert_eq!(
        strings(&service(&compose, "notifier")["command"]),
        ["notifier"]
    );
    // The notifier gets the shared store settings plus its own.
    let environment = &service(&compose, "notifier")["environment"];
    assert!(environment["GALLERY_AMQP_URL_FILE"].is_string());
    assert!(environment["GALLERY_SMTP_URL"].is_string());
    // Behind nginx, web takes the client's address from X-Forwarded-For (per-client limits).
    let web = &service(&compose, "web")["environment"];
    assert_eq!(web["GALLERY_TRUST_PROXY"], "true");
    assert!(
        web["GALLERY_REDIS_URL_FILE"].is_string(),
        "web keeps the shared settings"
    );
    let nginx = repo_file("deploy/nginx/nginx.conf");
    assert!(nginx.contains("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"));
}

#[test]
fn stops_fit_their_grace_periods() {
    let compose = compose();
    // The web role drains for GALLERY_SHUTDOWN_TIMEOUT_S (8 s by default); the worker finishes
    // the jobs it holds. Both must be done before Docker's SIGKILL.
    let grace = |name: &str| {
        service(&compose, name)["stop_grace_period"]
            .as_str()
            .and_then(|s| s.strip_suffix('s'))
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(10)
    };
    assert!(grace("web") > 8, "web's grace period");
    assert!(grace("worker") >= 30, "worker's grace period");
    let nginx = repo_file("deploy/nginx/nginx.conf");
    assert!(
        nginx.contains("worker_shutdown_timeout 5s;"),
        "nginx must close open event streams before Docker's 10 s"
    );
}

#[test]
fn only_the_gateway_is_published_and_only_the_notifier_reaches_out() {
    let compose = compose();
    for (name, service) in services(&compose) {
        let published = service.get("ports").is_some();
        assert_eq!(
            published,
            name == "nginx",
            "{name} publishes ports: {published}"
        );
        assert!(
            service.get("container_name").is_none(),
            "{name} has a container_name: it could not scale"
        );
        let networks = strings(&service["networks"]);
        match name.as_str() {
            "secrets" => assert!(networks.is_empty()),
            // `ingress` carries the published port (no NAT out), `frontend` reaches web.
            "nginx" => assert_eq!(networks, ["ingress", "frontend"]),
            "web" => assert_eq!(networks, ["frontend", "backend"]),
            // It alone talks to the outside world (SMTP, Telegram, webhooks).
            "notifier" => assert_eq!(networks, ["backend", "egress"]),
            _ => assert_eq!(networks, ["backend"], "{name}"),
        }
    }
    assert_eq!(compose["networks"]["frontend"]["internal"], true);
    assert_eq!(compose["networks"]["backend"]["internal"], true);
    assert_eq!(
        compose["networks"]["ingress"]["driver_opts"]
            ["com.docker.network.bridge.enable_ip_masquerade"],
        "false"
    );
    assert_eq!(
        strings(&service(&compose, "nginx")["ports"]),
        ["${GALLERY_PORT:-8080}:80"]
    );
}

#[test]
fn every_store_keeps_its_data_on_a_named_volume() {
    let compose = compose();
    let declared: BTreeSet<String> = compose["volumes"]
        .as_mapping()
        .expect("volumes")
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    for (store, data_dir) in [
        ("minio", "/data"),
        ("redis", "/data"),
        ("rabbitmq", "/var/lib/rabbitmq"),
    ] {
        let mounts = strings(&service(&compose, store)["volumes"]);
        let mount = mounts
            .iter()
            .find(|m| m.ends_with(&format!(":{data_dir}")))
            .unwrap_or_else(|| panic!("{store} data dir not mounted"));
        let volume = mount.split(':').next().unwrap_or_default();
        assert!(
            declared.contains(volume),
            "{store} mounts {volume}, which is not a named volume"
        );
    }
    let redis = strings(&service(&compose, "redis")["entrypoint"]).join(" ");
    assert!(
        redis.contains("--appendonly yes"),
        "redis persistence off: {redis}"
    );
    // The nginx cache volume is gone: photo bytes are never cached at the gateway.
    assert!(!declared.contains("nginx-cache"));
    let nginx = repo_file("deploy/nginx/nginx.conf");
    assert!(
        !nginx.contains("proxy_cache_path"),
        "nginx caches responses"
    );
}

#[test]
fn secrets_come_from_the_secrets_volume_never_from_the_file() {
    let compose = compose();
    assert_no_default_secrets(
        "docker-compose.yml",
        &[
            "MINIO_ROOT_USER",
            "MINIO_ROOT_PASSWORD",
            "REDIS_PASSWORD",
            "RABBITMQ_PASSWORD",
            "GALLERY_TELEGRAM_TOKEN",
            "GALLERY_WEBHOOK_SECRET",
            "GALLERY_SMTP_URL",
        ],
    );
    assert_secrets_by_file_and_images_pinned(&compose);
    // The app reads every store secret from a file; the stores from the same volume, read-only.
    let environment = &service(&compose, "web")["environment"];
    for variable in [
        "GALLERY_S3_ACCESS_KEY_FILE",
        "GALLERY_S3_SECRET_KEY_FILE",
        "GALLERY_REDIS_URL_FILE",
        "GALLERY_AMQP_URL_FILE",
    ] {
        assert!(environment[variable].is_string(), "web lacks {variable}");
    }
    for name in ["web", "worker", "notifier", "minio", "redis", "rabbitmq"] {
        assert!(
            strings(&service(&compose, name)["volumes"])
                .contains(&format!("secrets:{SECRETS_DIR}:ro")),
            "{name} does not mount the secrets read-only"
        );
    }
    assert!(strings(&service(&compose, "secrets")["volumes"])
        .contains(&format!("secrets:{SECRETS_DIR}")));
    // .env.example documents bring-your-own secrets, all commented out: none is needed.
    let example = repo_file(".env.example");
    for variable in ["MINIO_ROOT_PASSWORD", "REDIS_PASSWORD", "RABBITMQ_PASSWORD"] {
        assert!(
            example.contains(&format!("# {variable}=")),
            ".env.example lacks {variable}"
        );
    }
    for line in example.lines().map(str::trim) {
        assert!(
            line.is_empty() || line.starts_with('#'),
            ".env.example sets something: {line}"
        );
    }
}

/// No default or placeholder password in a compose file: each secret variable defaults to empty
/// or nothing.
fn assert_no_default_secrets(path: &str, variables: &[&str]) {
    let text = repo_file(path);
    for variable in variables {
        for (at, _) in text.match_indices(&format!("${{{variable}")) {
            let rest = &text[at + variable.len() + 2..];
            assert!(
                rest.starts_with(":-}") || rest.starts_with('}'),
                "{variable} has a default value in {path}"
            );
        }
    }
    assert!(!text.to_lowercase().contains("change-me"), "{path}");
}

/// No setting of any service holds a secret itself: a `…_FILE` setting points into the secrets
/// volume, and a secret-looking one is empty or comes from the environment (`${…}`). And every
/// image is pinned to a tag.
fn assert_secrets_by_file_and_images_pinned(compose: &Value) {
    for (name, service) in services(compose) {
        if let Some(environment) = service["environment"].as_mapping() {
            for (key, value) in environment {
                let key = key.as_str().unwrap_or_default();
                let value = value.as_str().unwrap_or_default();
                if key.ends_with("_FILE") {
                    assert!(
                        value.starts_with(&format!("{SECRETS_DIR}/")),
                        "{name}.{key} reads {value}, outside the secrets volume"
                    );
                    continue;
                }
                let secret = [
                    "PASSWORD",
                    "SECRET",
                    "ACCESS_KEY",
                    "_USER",
                    "TOKEN",
                    "AUTH",
                    "_URL",
                ]
                .iter()
                .any(|s| key.contains(s));
                if secret && !value.is_empty() && value != "http://minio:9000" {
                    assert!(value.contains("${"), "{name}.{key} is a literal: {value}");
                }
            }
        }
        let image = service["image"].as_str().unwrap_or_default();
        let tag = image
            .rsplit_once(':')
            .map(|(_, tag)| tag)
            .unwrap_or_default();
        assert!(
            !tag.is_empty() && tag != "latest",
            "{name} image {image:?} is not pinned"
        );
    }
}

#[test]
fn the_image_is_multi_stage_non_root_and_checks_itself() {
    let dockerfile = repo_file("Dockerfile");
    assert!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")) >= 2,
        "not multi-stage"
    );
    assert!(
        dockerfile.contains("cargo chef cook"),
        "dependencies are not built in their own layer"
    );
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert_ne!(user.trim(), "USER root");
    assert!(dockerfile.contains(r#"ENTRYPOINT ["gallery"]"#));
    // Run alone, the image is the whole gallery on embedded backends, in /data.
    assert!(dockerfile.contains(r#"CMD ["serve"]"#));
    assert!(dockerfile.contains("GALLERY_DATA_DIR=/data"));
    // No VOLUME: it leaves an anonymous volume behind every container.
    assert!(
        !dockerfile
            .lines()
            .any(|l| l.trim_start().starts_with("VOLUME")),
        "the Dockerfile declares a VOLUME"
    );
    assert!(
        dockerfile.contains(r#"CMD ["gallery", "healthcheck""#),
        "HEALTHCHECK without curl"
    );
    assert!(dockerfile.contains("gallery-secrets-init"));
    let dockerignore = repo_file(".dockerignore");
    assert!(dockerignore
        .lines()
        .any(|l| l.trim() == "target/" || l.trim() == "target"));
    assert!(dockerignore.lines().any(|l| l.trim() == ".env"));
}

/// The metric families a PromQL expression reads: every `gallery_…` name in it, a histogram's
/// series (`…_seconds_bucket`, `_sum`, `_count`) taken back to their family.
fn metric_families(expr: &str, exported: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if word.starts_with("gallery_") {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .filter_map(|suffix| word.strip_suffix(suffix))
                .find(|family| family.ends_with("_seconds") && exported.iter().any(|e| e == family))
                .unwrap_or(&word)
                .to_owned();
            names.push(family);
        }
        word.clear();
    }
    names
}

/// Every string under a key named `key`, anywhere in `value`.
fn strings_under(value: &serde_json::Value, key: &str, found: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (name, inner) in map {
                match inner {
                    serde_json::Value::String(text) if name == key => found.push(text.clone()),
                    other => strings_under(other, key, found),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                strings_under(item, key, found);
            }
        }
        _ => {}
    }
}

#[test]
fn the_dashboard_charts_every_exported_metric_and_nothing_else() {
    let exported = gallery::metrics::Metrics::new("web").names();
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo_file("deploy/grafana/gallery.json")).expect("valid JSON");
    assert_eq!(dashboard["uid"], "gallery-overview");
    let mut exprs = Vec::new();
    strings_under(&dashboard, "expr", &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut charted = BTreeSet::new();
    for expr in &exprs {
        let families = metric_families(expr, &exported);
        assert!(!families.is_empty(), "{expr} reads no gallery metric");
        for family in families {
            assert!(
                exported.contains(&family),
                "{expr} reads {family}, which the gallery does not export ({exported:?})"
            );
            charted.insert(family);
        }
    }
    let uncharted: Vec<&String> = exported.iter().filter(|e| !charted.contains(*e)).collect();
    assert!(uncharted.is_empty(), "not on the dashboard: {uncharted:?}");
    // Every panel asks the dashboard's own data source, chosen when it is imported.
    let mut sources = Vec::new();
    strings_under(&dashboard, "uid", &mut sources);
    assert!(sources
        .iter()
        .filter(|uid| *uid != "gallery-overview")
        .all(|uid| uid == "${datasource}"));
}

/// Every (name, port) a Prometheus config scrapes at `/metrics`, through DNS service discovery.
fn scrape_targets(path: &str) -> Vec<(String, u64)> {
    let config: Value =
        serde_yaml_ng::from_str(&repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut targets = Vec::new();
    for job in config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
    {
        assert_eq!(job["metrics_path"], "/metrics");
        for sd in job["dns_sd_configs"].as_sequence().expect("dns_sd_configs") {
            let port = sd["port"].as_u64().expect("port");
            for name in strings(&sd["names"]) {
                targets.push((name, port));
            }
        }
    }
    targets
}

/// The port a gallery role serves `/metrics` on in the image: the web role's own port, the
/// other roles' health listener.
fn metrics_port(role: &str) -> u64 {
    let dockerfile = repo_file("Dockerfile");
    assert!(dockerfile.contains("GALLERY_LISTEN=0.0.0.0:8080"));
    assert!(dockerfile.contains("GALLERY_HEALTH_LISTEN=0.0.0.0:8081"));
    if role == "web" {
        8080
    } else {
        8081
    }
}

#[test]
fn prometheus_scrapes_every_role_where_it_serves_metrics() {
    let compose = compose();
    let mut scraped = BTreeSet::new();
    for (name, port) in scrape_targets("deploy/prometheus/prometheus.yml") {
        // Each name is a compose service (Docker's DNS answers every replica).
        service(&compose, &name);
        assert_eq!(port, metrics_port(&name), "{name}");
        scraped.insert(name);
    }
    let roles: BTreeSet<String> = APP.iter().map(|r| r.to_string()).collect();
    assert_eq!(scraped, roles);
}

// ---- deploy/ha: the same gallery with every store on three nodes ----

const HA_COMPOSE: &str = "deploy/ha/docker-compose.yml";
const RABBITMQ_NODES: [&str; 3] = ["rabbitmq-1", "rabbitmq-2", "rabbitmq-3"];
const REDIS_NODES: [&str; 3] = ["redis-1", "redis-2", "redis-3"];
const SENTINELS: [&str; 3] = ["sentinel-1", "sentinel-2", "sentinel-3"];
const GARAGE_NODES: [&str; 3] = ["garage-1", "garage-2", "garage-3"];
/// Services that run once per `up` and exit.
const HA_ONE_SHOTS: [&str; 2] = ["secrets", "garage-init"];

fn ha_compose() -> Value {
    compose_at(HA_COMPOSE)
}

/// The HA stack's store nodes, every one of them.
fn ha_stores() -> Vec<&'static str> {
    [RABBITMQ_NODES, REDIS_NODES, SENTINELS, GARAGE_NODES].concat()
}

/// The networks a service joins, listed or given with settings (aliases).
fn networks_of(service: &Value) -> Vec<String> {
    match &service["networks"] {
        Value::Mapping(networks) => networks
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        listed => strings(listed),
    }
}

/// The named volume a service mounts at `path`, which must be declared at the top level.
fn named_volume_at(compose: &Value, service_name: &str, path: &str) -> String {
    let mounts = strings(&service(compose, service_name)["volumes"]);
    let mount = mounts
        .iter()
        .find(|m| m.ends_with(&format!(":{path}")))
        .unwrap_or_else(|| panic!("{service_name} does not mount {path}"));
    let volume = mount.split(':').next().unwrap_or_default().to_owned();
    assert!(
        compose["volumes"].get(volume.as_str()).is_some(),
        "{service_name} mounts {volume} at {path}, which is not a named volume"
    );
    volume
}

#[test]
fn the_ha_stack_runs_every_store_on_three_nodes_two_webs_and_scaled_workers() {
    let compose = ha_compose();
    let names: BTreeSet<String> = services(&compose).into_iter().map(|(n, _)| n).collect();
    let mut expected: BTreeSet<String> = ha_stores().iter().map(|s| s.to_string()).collect();
    for other in ["secrets", "garage-init", "nginx", "prometheus"]
        .into_iter()
        .chain(APP)
    {
        expected.insert(other.to_owned());
    }
    assert_eq!(names, expected);
    // Two web replicas; nginx's upstream `web:8080` resolves to each of them.
    assert!(service(&compose, "web")["deploy"]["replicas"].as_u64() >= Some(2));
    assert_eq!(
        service(&compose, "worker")["deploy"]["replicas"],
        "${GALLERY_WORKERS:-3}"
    );
    assert!(strings(&service(&compose, "nginx")["volumes"])
        .contains(&"../nginx/nginx.conf:/etc/nginx/nginx.conf:ro".to_owned()));
    assert!(repo_file("deploy/nginx/nginx.conf").contains("server web:8080;"));
    for (name, service) in services(&compose) {
        assert!(
            service.get("container_name").is_none(),
            "{name} has a container_name"
        );
        if HA_ONE_SHOTS.contains(&name.as_str()) {
            assert_eq!(service["restart"], "no", "{name}");
            assert!(service.get("healthcheck").is_none(), "{name}");
            continue;
        }
        assert!(
            service["healthcheck"]["test"].is_sequence(),
            "{name} has no healthcheck"
        );
        assert_eq!(service["restart"], "unless-stopped", "{name}");
    }
    // Each store node is named by its compose name: the names the others and the app use.
    for node in ha_stores() {
        assert_eq!(service(&compose, node)["hostname"], node);
    }
}

#[test]
fn the_ha_stack_keeps_the_single_stacks_rules() {
    let compose = ha_compose();
    for (name, service) in services(&compose) {
        assert_eq!(
            service.get("ports").is_some(),
            name == "nginx",
            "{name} publishes ports"
        );
        let networks = networks_of(&service);
        match name.as_str() {
            "secrets" => {
                assert_eq!(service["network_mode"], "none");
                assert!(networks.is_empty());
            }
            "nginx" => assert_eq!(networks, ["ingress", "frontend"]),
            "web" => assert_eq!(networks, ["frontend", "backend"]),
            "notifier" => assert_eq!(networks, ["backend", "egress"]),
            _ => assert_eq!(networks, ["backend"], "{name}"),
        }
    }
    assert_eq!(compose["networks"]["frontend"]["internal"], true);
    assert_eq!(compose["networks"]["backend"]["internal"], true);
    assert_eq!(
        compose["networks"]["ingress"]["driver_opts"]
            ["com.docker.network.bridge.enable_ip_masquerade"],
        "false"
    );
    // The image is built once, by `secrets`, from the repository; the roles only run it.
    let secrets = service(&compose, "secrets");
    assert_eq!(secrets["build"], "../..");
    for role in APP {
        let role_service = service(&compose, role);
        assert_eq!(role_service["image"], secrets["image"], "{role}");
        assert_eq!(role_service["pull_policy"], "never", "{role}");
        assert!(role_service.get("build").is_none(), "{role}");
    }
    // Every node keeps its data on a named volume of its own.
    let mut data_volumes = BTreeSet::new();
    for (node, paths) in [
        (RABBITMQ_NODES, &["/var/lib/rabbitmq"][..]),
        (REDIS_NODES, &["/data"][..]),
        (SENTINELS, &["/data"][..]),
        (
            GARAGE_NODES,
            &["/var/lib/garage/meta", "/var/lib/garage/data"][..],
        ),
    ]
    .iter()
    .flat_map(|(nodes, paths)| nodes.iter().map(move |node| (*node, *paths)))
    {
        for path in paths {
            assert!(
                data_volumes.insert(named_volume_at(&compose, node, path)),
                "{node} shares its volume for {path}"
            );
        }
    }
    named_volume_at(&compose, "prometheus", "/prometheus");
    // Secrets: generated into the volume, read-only for whoever only reads them.
    assert_no_default_secrets(
        HA_COMPOSE,
        &[
            "REDIS_PASSWORD",
            "RABBITMQ_PASSWORD",
            "RABBITMQ_ERLANG_COOKIE",
            "GARAGE_ADMIN_TOKEN",
            "GALLERY_TELEGRAM_TOKEN",
            "GALLERY_WEBHOOK_SECRET",
            "GALLERY_SMTP_URL",
        ],
    );
    assert_secrets_by_file_and_images_pinned(&compose);
    let read_only = format!("secrets:{SECRETS_DIR}:ro");
    let writable = format!("secrets:{SECRETS_DIR}");
    for (name, service) in services(&compose) {
        let mounts = strings(&service["volumes"]);
        match name.as_str() {
            // They write the secrets: `secrets` all but the S3 key, garage-init that key.
            "secrets" | "garage-init" => assert!(mounts.contains(&writable), "{name}"),
            // They hold none.
            "nginx" | "prometheus" => {
                assert!(mounts.iter().all(|m| !m.starts_with("secrets:")), "{name}")
            }
            _ => assert!(mounts.contains(&read_only), "{name}"),
        }
    }
    // The app starts once its stores are there: secrets made, S3 laid out with its key, the
    // broker's nodes and the Sentinels answering.
    let mut wanted = vec![
        ("secrets", "service_completed_successfully"),
        ("garage-init", "service_completed_successfully"),
    ];
    wanted.extend(RABBITMQ_NODES.map(|n| (n, "service_healthy")));
    wanted.extend(SENTINELS.map(|n| (n, "service_healthy")));
    for role in APP {
        let depends = &service(&compose, role)["depends_on"];
        for (dependency, condition) in &wanted {
            assert_eq!(
                depends[*dependency]["condition"], *condition,
                "{role} on {dependency}"
            );
        }
    }
    for node in ha_stores() {
        assert_eq!(
            service(&compose, node)["depends_on"]["secrets"]["condition"],
            "service_completed_successfully",
            "{node}"
        );
    }
    for node in GARAGE_NODES {
        assert_eq!(
            service(&compose, "garage-init")["depends_on"][node]["condition"],
            "service_healthy"
        );
    }
}

#[test]
fn the_ha_stores_form_clusters_of_three() {
    let compose = ha_compose();
    let secrets_script = repo_file("deploy/ha/secrets-init.sh");

    // RabbitMQ: classic config peer discovery naming the three nodes, one shared cookie.
    let rabbitmq = repo_file("deploy/ha/rabbitmq.conf");
    assert!(rabbitmq.contains("cluster_formation.peer_discovery_backend = classic_config"));
    for (n, node) in RABBITMQ_NODES.iter().enumerate() {
        assert!(
            rabbitmq.contains(&format!(
                "cluster_formation.classic_config.nodes.{} = rabbit@{node}",
                n + 1
            )),
            "{node} is not among the cluster's nodes"
        );
        let rabbit = service(&compose, node);
        assert!(strings(&rabbit["volumes"])
            .contains(&"./rabbitmq.conf:/etc/rabbitmq/conf.d/20-gallery-cluster.conf:ro".into()));
        let entrypoint = strings(&rabbit["entrypoint"]).join("\n");
        assert!(entrypoint
            .contains("< /run/gallery-secrets/erlang_cookie > /var/lib/rabbitmq/.erlang.cookie"));
    }
    assert!(secrets_script.contains("secret erlang_cookie RABBITMQ_ERLANG_COOKIE"));
    let amqp_url = secrets_script
        .lines()
        .find(|l| l.starts_with("write amqp_url "))
        .expect("amqp_url written");
    assert_eq!(amqp_url.matches("amqp://").count(), 3, "{amqp_url}");
    for node in RABBITMQ_NODES {
        assert!(amqp_url.contains(&format!("@{node}:5672/")), "{amqp_url}");
    }

    // Redis: one primary, two replicas of it, three Sentinels watching it with a quorum of 2.
    let redis_node = repo_file("deploy/ha/redis-node.sh");
    assert!(redis_node.contains("sentinel monitor gallery redis-1 6379 2"));
    assert!(redis_node.contains("replicaof redis-1 6379"));
    for (node, role) in [
        ("redis-1", "primary"),
        ("redis-2", "replica"),
        ("redis-3", "replica"),
        ("sentinel-1", "sentinel"),
        ("sentinel-2", "sentinel"),
        ("sentinel-3", "sentinel"),
    ] {
        let redis = service(&compose, node);
        assert_eq!(strings(&redis["command"]), [role], "{node}");
        assert!(strings(&redis["volumes"])
            .contains(&"./redis-node.sh:/usr/local/bin/gallery-redis-node:ro".into()));
    }
    let redis_url = secrets_script
        .lines()
        .find(|l| l.starts_with("write redis_url "))
        .expect("redis_url written");
    assert!(
        redis_url.contains("\"redis-sentinel://:$redis@sentinel-1:26379/0?"),
        "{redis_url}"
    );
    // The app asks the Sentinels for the master they watch, by the name they watch it under.
    assert!(redis_url.contains("sentinelServiceName=gallery"));
    for sentinel in &SENTINELS[1..] {
        assert!(redis_url.contains(&format!("&node={sentinel}:26379")));
    }

    // Garage: every object on three nodes, laid out and keyed by the one-shot garage-init.
    let garage = repo_file("deploy/ha/garage.toml");
    assert!(garage.lines().any(|l| l.trim() == "replication_factor = 3"));
    // Photos do not compress: blocks are stored as they are (Garage's default is zstd).
    assert!(garage
        .lines()
        .any(|l| l.trim() == "compression_level = \"none\""));
    // Garage refuses a file that sets a key twice in one table.
    let mut keys = BTreeSet::new();
    let mut table = String::new();
    for line in garage.lines().map(str::trim) {
        if line.starts_with('[') {
            table = line.to_owned();
        } else if let Some((key, _)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            let key = format!("{table}{}", key.trim());
            assert!(keys.insert(key.clone()), "{key} set twice in garage.toml");
        }
    }
    assert!(garage.contains("rpc_secret_file = \"/run/gallery-secrets/garage_rpc_secret\""));
    assert!(secrets_script.contains("hex32 garage_rpc_secret"));
    for node in GARAGE_NODES {
        let garage_node = service(&compose, node);
        assert!(
            strings(&garage_node["volumes"]).contains(&"./garage.toml:/etc/garage.toml:ro".into())
        );
        // Every node answers S3 under one name, the app's endpoint.
        assert_eq!(
            strings(&garage_node["networks"]["backend"]["aliases"]),
            ["s3"]
        );
    }
    let init = service(&compose, "garage-init");
    assert_eq!(
        init["environment"]["GARAGE_NODES"],
        GARAGE_NODES.join(",").as_str()
    );
    let init_script = repo_file("deploy/ha/garage-init.py");
    for step in [
        "ConnectClusterNodes",
        "UpdateClusterLayout",
        "ApplyClusterLayout",
        "CreateKey",
        "CreateBucket",
        "AllowBucketKey",
    ] {
        assert!(init_script.contains(&format!("\"{step}\"")), "{step}");
    }
    let app_env = &service(&compose, "web")["environment"];
    assert_eq!(app_env["GALLERY_S3_ENDPOINT"], "http://s3:3900");
    assert_eq!(app_env["GALLERY_S3_REGION"], "garage");
    assert!(garage.contains("s3_region = \"garage\""));

    // The HA secrets reuse the single stack's rules (bring your own, keep, or generate).
    assert!(secrets_script.contains(". /usr/local/bin/gallery-secrets-init"));
    assert!(repo_file("deploy/secrets-init.sh")
        .contains("if [ -n \"${GALLERY_SECRETS_FUNCTIONS_ONLY:-}\" ]; then return 0; fi"));
    assert!(strings(&service(&compose, "secrets")["volumes"])
        .contains(&"./secrets-init.sh:/usr/local/bin/gallery-ha-secrets-init:ro".into()));
}

#[test]
fn the_ha_prometheus_scrapes_every_role_and_every_store_node() {
    let compose = ha_compose();
    let prometheus = service(&compose, "prometheus");
    assert!(strings(&prometheus["volumes"])
        .contains(&"./prometheus.yml:/etc/prometheus/prometheus.yml:ro".into()));
    let mut scraped = BTreeSet::new();
    for (name, port) in scrape_targets("deploy/ha/prometheus.yml") {
        service(&compose, &name);
        let expected = match name.as_str() {
            role if APP.contains(&role) => metrics_port(role),
            node if RABBITMQ_NODES.contains(&node) => 15692,
            node if GARAGE_NODES.contains(&node) => 3903,
            other => panic!("{other} is scraped, but it serves no metrics"),
        };
        assert_eq!(port, expected, "{name}");
        scraped.insert(name);
    }
    let mut wanted: BTreeSet<String> = APP.iter().map(|r| r.to_string()).collect();
    wanted.extend(RABBITMQ_NODES.iter().map(|n| n.to_string()));
    wanted.extend(GARAGE_NODES.iter().map(|n| n.to_string()));
    assert_eq!(scraped, wanted);
}

// ---- deploy/k8s: rendered as kustomize does, validated offline ----

const K8S: &str = "deploy/k8s";
/// The Kubernetes version whose schemas the manifests must pass (kubernetes-validate's).
const KUBERNETES_VERSION: &str = "1.32.0";
/// Kinds without a namespace: kustomize's `namespace:` leaves them alone.
const CLUSTER_SCOPED: [&str; 6] = [
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
];
/// The image's user (Dockerfile: `useradd --uid 10001`).
const IMAGE_UID: u64 = 10001;

/// deploy/k8s as `kubectl kustomize deploy/k8s` renders it: every document of every resource
/// file in order, put in the kustomization's namespace, its `gallery` images set per `images`.
/// No kustomize binary comes from the registries the tests install from, so the render is done
/// here, and the kustomization may use only the fields rendered (the test fails on any other).
fn kustomize() -> Vec<Value> {
    let kustomization: Value =
        serde_yaml_ng::from_str(&repo_file(&format!("{K8S}/kustomization.yaml")))
            .expect("kustomization.yaml parses");
    for key in kustomization.as_mapping().expect("a mapping").keys() {
        let key = key.as_str().unwrap_or_default();
        assert!(
            ["apiVersion", "kind", "namespace", "resources", "images"].contains(&key),
            "kustomization.yaml uses `{key}`, which this render does not do: extend kustomize()"
        );
    }
    let namespace = kustomization["namespace"].as_str().expect("namespace");
    let images: Vec<(String, String)> = kustomization["images"]
        .as_sequence()
        .map(|images| {
            images
                .iter()
                .map(|image| {
                    let name = image["name"].as_str().expect("name");
                    let new_name = image["newName"].as_str().unwrap_or(name);
                    let tag = image["newTag"].as_str().expect("newTag");
                    (name.to_owned(), format!("{new_name}:{tag}"))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut rendered = Vec::new();
    for file in strings(&kustomization["resources"]) {
        let text = repo_file(&format!("{K8S}/{file}"));
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let mut resource = <Value as serde::Deserialize>::deserialize(document)
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            if resource.is_null() {
                continue;
            }
            let kind = resource["kind"].as_str().expect("kind").to_owned();
            if !CLUSTER_SCOPED.contains(&kind.as_str()) {
                resource["metadata"]["namespace"] = Value::from(namespace);
            }
            let mut pod = resource
                .get_mut("spec")
                .and_then(|spec| spec.get_mut("template"))
                .and_then(|template| template.get_mut("spec"));
            for list in ["containers", "initContainers"] {
                let containers = pod
                    .as_deref_mut()
                    .and_then(|pod| pod.get_mut(list))
                    .and_then(Value::as_sequence_mut);
                if let Some(containers) = containers {
                    for container in containers {
                        let image = container["image"].as_str().unwrap_or_default();
                        let bare = image.split(':').next().unwrap_or_default();
                        if let Some((_, new)) = images.iter().find(|(name, _)| name == bare) {
                            container["image"] = Value::from(new.as_str());
                        }
                    }
                }
            }
            rendered.push(resource);
        }
    }
    rendered
}

fn resource<'a>(rendered: &'a [Value], kind: &str, name: &str) -> &'a Value {
    rendered
        .iter()
        .find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {K8S}"))
}

fn of_kind<'a>(rendered: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    rendered.iter().filter(move |r| r["kind"] == kind)
}

/// KEDA's resources, which the Kubernetes schemas do not know.
fn is_keda(resource: &Value) -> bool {
    resource["apiVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("keda.sh/"))
}

/// Every (key, value) of a mapping of strings.
fn string_map(value: &Value) -> Vec<(String, String)> {
    value
        .as_mapping()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether every label a selector asks for is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let labels = string_map(labels);
    let wanted = string_map(selector);
    !wanted.is_empty() && wanted.iter().all(|pair| labels.contains(pair))
}

/// Runs a validator; a tool that is not installed fails the test saying how to install it.
fn validator_output(program: &Path, args: &[String]) -> (bool, String) {
    assert!(
        program.exists(),
        "{} is not installed: run `bash tests/support/install-deps.sh` (`make test-deps` does)",
        program.display()
    );
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_kubernetes_manifests_pass_the_kubernetes_and_keda_schemas() {
    let rendered = kustomize();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Replaced at each run, kept after it: what failed can be read there.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("k8s-rendered");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("render dir");
    let (keda, core): (Vec<&Value>, Vec<&Value>) = rendered.iter().partition(|r| is_keda(r));
    assert!(core.len() >= 10 && keda.len() == 2, "{rendered:?}");

    // Kubernetes' own kinds: strict (an unknown field is an error, as `kubectl apply` has it).
    // Written as JSON documents (YAML too), so no string is read back as another type.
    let manifest = dir.join("rendered.yaml");
    let documents: Vec<String> = core
        .iter()
        .map(|r| serde_json::to_string(r).expect("JSON"))
        .collect();
    std::fs::write(&manifest, documents.join("\n---\n")).expect("write rendered");
    let (passed, output) = validator_output(
        &root.join("target/k8s-tools/bin/kubernetes-validate"),
        &[
            "--strict".into(),
            "--kubernetes-version".into(),
            KUBERNETES_VERSION.into(),
            manifest.display().to_string(),
        ],
    );
    assert!(passed, "kubernetes-validate refused {K8S}:\n{output}");
    // Each one checked against a schema, none passed over as unknown.
    assert_eq!(
        output.matches(" passed for resource ").count(),
        core.len(),
        "{output}"
    );
    assert!(!output.contains("WARN"), "{output}");

    // KEDA's kinds, against KEDA's schemas.
    let mut files = Vec::new();
    for (n, resource) in keda.iter().enumerate() {
        let file = dir.join(format!("keda-{n}.json"));
        let json = serde_json::to_string(resource).expect("JSON");
        std::fs::write(&file, json).expect("write KEDA resource");
        files.push(file.display().to_string());
    }
    let script = root.join("tests/k8s/validate-crds.mjs");
    assert!(
        root.join("tests/k8s/node_modules/@kubernetes-models/keda")
            .exists(),
        "KEDA's schemas are not installed: run `bash tests/support/install-deps.sh`"
    );
    let mut args = vec![script.display().to_string()];
    args.extend(files);
    let (passed, output) = validator_output(Path::new("/usr/bin/node"), &args);
    assert!(passed, "KEDA's schemas refused {K8S}:\n{output}");
    assert_eq!(output.matches(" passed").count(), keda.len(), "{output}");
}

#[test]
fn the_kubernetes_web_role_is_redundant_gated_on_readiness_and_kept_by_a_budget() {
    let rendered = kustomize();
    let web = resource(&rendered, "Deployment", "gallery-web");
    let replicas = web["spec"]["replicas"].as_u64().expect("replicas");
    assert!(replicas >= 2, "{replicas} web replicas");
    let pod_labels = &web["spec"]["template"]["metadata"]["labels"];
    assert!(selects(&web["spec"]["selector"]["matchLabels"], pod_labels));
    // A rollout keeps every replica until its successor is ready.
    assert_eq!(
        web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    let container = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(strings(&container["args"]), ["web"]);
    assert_eq!(container["ports"][0]["containerPort"], metrics_port("web"));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            container[probe]["httpGet"]["port"], container["ports"][0]["name"],
            "{probe} asks the web port"
        );
    }
    // The budget covers exactly these pods and lets a drain take one while another serves.
    let budgets: Vec<&Value> = of_kind(&rendered, "PodDisruptionBudget")
        .filter(|b| selects(&b["spec"]["selector"]["matchLabels"], pod_labels))
        .collect();
    assert_eq!(budgets.len(), 1, "budgets selecting the web pods");
    let min_available = budgets[0]["spec"]["minAvailable"]
        .as_u64()
        .expect("minAvailable");
    assert!((1..replicas).contains(&min_available), "{min_available}");
    let other_pods =
        of_kind(&rendered, "Deployment").filter(|d| d["metadata"]["name"] != "gallery-web");
    for other in other_pods {
        assert!(
            !selects(
                &budgets[0]["spec"]["selector"]["matchLabels"],
                &other["spec"]["template"]["metadata"]["labels"]
            ),
            "the web budget also holds {:?}",
            other["metadata"]["name"]
        );
    }
    // The Service reaches these pods, and the Ingress that Service, with room for uploads.
    let service = resource(&rendered, "Service", "gallery-web");
    assert!(selects(&service["spec"]["selector"], pod_labels));
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let ingress = resource(&rendered, "Ingress", "gallery");
    let annotations = &ingress["metadata"]["annotations"];
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/proxy-body-size"], "256m",
        "as the compose gateway (client_max_body_size)"
    );
    assert!(repo_file("deploy/nginx/nginx.conf").contains("client_max_body_size 256m;"));
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"],
        "off"
    );
    for ingress in of_kind(&rendered, "Ingress") {
        for path in ingress["spec"]["rules"][0]["http"]["paths"]
            .as_sequence()
            .expect("paths")
        {
            assert_eq!(path["backend"]["service"]["name"], "gallery-web");
            assert_eq!(path["backend"]["service"]["port"]["name"], "http");
        }
    }
    // /metrics stays inside the cluster, as the compose gateway keeps it.
    let refused = resource(&rendered, "Ingress", "gallery-metrics-refused");
    assert_eq!(
        refused["spec"]["rules"][0]["http"]["paths"][0]["path"],
        "/metrics"
    );
    assert_eq!(
        refused["metadata"]["annotations"]["nginx.ingress.kubernetes.io/denylist-source-range"],
        "0.0.0.0/0,::/0"
    );
}

#[test]
fn every_kubernetes_container_is_sized_and_locked_down() {
    let rendered = kustomize();
    let dockerfile = repo_file("Dockerfile");
    assert!(dockerfile.contains(&format!("--uid {IMAGE_UID}")));
    assert!(dockerfile.contains("GALLERY_DATA_DIR=/data"));
    let kustomization = repo_file(&format!("{K8S}/kustomization.yaml"));
    let mut roles = BTreeSet::new();
    for deployment in of_kind(&rendered, "Deployment") {
        let name = deployment["metadata"]["name"].as_str().expect("name");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false, "{name}");
        let pod_security = &pod["securityContext"];
        assert_eq!(pod_security["runAsNonRoot"], true, "{name}");
        assert_eq!(pod_security["runAsUser"], IMAGE_UID, "{name}");
        assert_eq!(pod_security["seccompProfile"]["type"], "RuntimeDefault");
        let writable: Vec<String> = pod["volumes"]
            .as_sequence()
            .expect("volumes")
            .iter()
            .filter(|v| v.get("emptyDir").is_some())
            .map(|v| v["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        for container in pod["containers"].as_sequence().expect("containers") {
            let resources = &container["resources"];
            for (bound, what) in [
                ("requests", "cpu"),
                ("requests", "memory"),
                ("limits", "cpu"),
                ("limits", "memory"),
            ] {
                assert!(
                    resources[bound][what].is_string(),
                    "{name} has no {bound}.{what}"
                );
            }
            let security = &container["securityContext"];
            assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
            assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
            assert_eq!(
                strings(&security["capabilities"]["drop"]),
                ["ALL"],
                "{name}"
            );
            // The image, as kustomize sets it: from the registry the kustomization names.
            let image = container["image"].as_str().expect("image");
            assert!(
                kustomization.contains(&format!(
                    "newName: {}",
                    image.split(':').next().unwrap_or_default()
                )),
                "{name} runs {image}"
            );
            // A read-only root: the role writes only into its emptyDirs, /tmp, and for the web
            // role its upload spool in the data dir.
            let mut written = BTreeSet::new();
            for mount in container["volumeMounts"].as_sequence().expect("mounts") {
                if writable.iter().any(|w| mount["name"] == w.as_str()) {
                    written.insert(mount["mountPath"].as_str().unwrap_or_default().to_owned());
                }
            }
            let role = strings(&container["args"])[0].clone();
            let expected: BTreeSet<String> = match role.as_str() {
                "web" => ["/data", "/tmp"].map(String::from).into(),
                _ => ["/tmp"].map(String::from).into(),
            };
            assert_eq!(written, expected, "{name} writes");
            roles.insert(role);
        }
    }
    let expected: BTreeSet<String> = APP.iter().map(|r| r.to_string()).collect();
    assert_eq!(roles, expected);
    let namespace = resource(&rendered, "Namespace", "gallery");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn the_kubernetes_workers_scale_with_keda_on_the_queues_the_app_uses() {
    let rendered = kustomize();
    let worker = resource(&rendered, "Deployment", "gallery-worker");
    let scaled = resource(&rendered, "ScaledObject", "gallery-worker");
    // It scales this Deployment (a ScaledObject's target kind is Deployment unless named).
    assert_eq!(
        scaled["spec"]["scaleTargetRef"]["name"],
        worker["metadata"]["name"]
    );
    assert!(scaled["spec"]["scaleTargetRef"].get("kind").is_none());
    assert!(scaled["spec"]["minReplicaCount"].as_u64() >= Some(2));
    assert!(
        scaled["spec"]["maxReplicaCount"].as_u64() > scaled["spec"]["minReplicaCount"].as_u64()
    );
    // On the queues the workers consume: the job queue the app is given, and its bulk lane.
    let settings = resource(&rendered, "ConfigMap", "gallery-settings");
    let queue = settings["data"]["GALLERY_JOB_QUEUE"]
        .as_str()
        .expect("job queue");
    assert_eq!(queue, gallery::queue::QueueSettings::default().name);
    let mut queues = BTreeSet::new();
    for trigger in scaled["spec"]["triggers"].as_sequence().expect("triggers") {
        assert_eq!(trigger["type"], "rabbitmq");
        assert_eq!(trigger["metadata"]["mode"], "QueueLength");
        queues.insert(
            trigger["metadata"]["queueName"]
                .as_str()
                .expect("queue")
                .to_owned(),
        );
        // Its credentials: a TriggerAuthentication, reading a Secret's key, both rendered here.
        let auth_name = trigger["authenticationRef"]["name"].as_str().expect("auth");
        let auth = resource(&rendered, "TriggerAuthentication", auth_name);
        let reference = &auth["spec"]["secretTargetRef"][0];
        assert_eq!(reference["parameter"], "host");
        let secret = resource(
            &rendered,
            "Secret",
            reference["name"].as_str().expect("name"),
        );
        let key = reference["key"].as_str().expect("key");
        assert!(secret["stringData"][key]
            .as_str()
            .is_some_and(|h| h.starts_with("amqp://")));
    }
    assert_eq!(queues, [queue.to_owned(), format!("{queue}.bulk")].into());
    // Its pods are checked on their health listener, the port the image gives it.
    let container = &worker["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(strings(&container["args"])[0], "worker");
    assert_eq!(
        container["ports"][0]["containerPort"],
        metrics_port("worker")
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz", "{probe}");
        assert_eq!(
            container[probe]["httpGet"]["port"],
            container["ports"][0]["name"]
        );
    }
    // Time to finish the jobs it holds before it is killed.
    assert!(
        worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_u64() >= Some(30)
    );
}

#[test]
fn no_kubernetes_deployment_holds_a_secret_itself() {
    let rendered = kustomize();
    let stores = resource(&rendered, "Secret", "gallery-stores");
    let secret_keys: BTreeSet<String> = string_map(&stores["stringData"])
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let settings = string_map(&resource(&rendered, "ConfigMap", "gallery-settings")["data"]);
    // The settings hold no credential: every secret setting is a file in the mounted Secret.
    let mut files = BTreeSet::new();
    for (key, value) in &settings {
        assert!(!value.contains('@'), "{key} holds credentials: {value}");
        if let Some(setting) = key.strip_suffix("_FILE") {
            let file = value
                .strip_prefix(&format!("{SECRETS_DIR}/"))
                .unwrap_or_else(|| panic!("{key} reads {value}, outside the Secret"));
            assert!(
                secret_keys.contains(file),
                "{key}: no key {file} in gallery-stores"
            );
            assert!(
                !settings.iter().any(|(k, _)| k == setting),
                "both {setting} and {key}"
            );
            files.insert(file.to_owned());
        }
    }
    assert_eq!(files, secret_keys, "every key of gallery-stores is read");
    for deployment in of_kind(&rendered, "Deployment") {
        let name = deployment["metadata"]["name"].as_str().expect("name");
        let pod = &deployment["spec"]["template"]["spec"];
        let volume = pod["volumes"]
            .as_sequence()
            .expect("volumes")
            .iter()
            .find(|v| v["secret"]["secretName"] == "gallery-stores")
            .unwrap_or_else(|| panic!("{name} does not mount gallery-stores"));
        for container in pod["containers"].as_sequence().expect("containers") {
            let mount = container["volumeMounts"]
                .as_sequence()
                .expect("mounts")
                .iter()
                .find(|m| m["name"] == volume["name"])
                .unwrap_or_else(|| panic!("{name} does not mount its secrets"));
            assert_eq!(mount["mountPath"], SECRETS_DIR, "{name}");
            assert_eq!(mount["readOnly"], true, "{name}");
            assert_eq!(
                container["envFrom"][0]["configMapRef"]["name"], "gallery-settings",
                "{name}"
            );
            // Only plain settings inline; nothing that looks like a secret.
            for variable in container["env"].as_sequence().into_iter().flatten() {
                let variable_name = variable["name"].as_str().unwrap_or_default();
                assert!(
                    !["PASSWORD", "SECRET", "KEY", "TOKEN", "_URL"]
                        .iter()
                        .any(|s| variable_name.contains(s)),
                    "{name} sets {variable_name} inline"
                );
            }
        }
    }
}
