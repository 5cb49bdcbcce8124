//! The deployment files as files: the compose file's structure, the Dockerfile's essentials.
//! Quick and without Docker; the stack itself runs for real in `tests/compose/` and the nginx
//! config in `gateway.rs`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml_ng::Value;

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn compose() -> Value {
    let mut value: Value =
        serde_yaml_ng::from_str(&repo_file("docker-compose.yml")).expect("compose parses");
    value.apply_merge().expect("YAML merge keys resolve");
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
    let text = repo_file("docker-compose.yml");
    // No default or placeholder password: a secret variable defaults to empty or nothing.
    for variable in [
        "MINIO_ROOT_USER",
        "MINIO_ROOT_PASSWORD",
        "REDIS_PASSWORD",
        "RABBITMQ_PASSWORD",
        "GALLERY_TELEGRAM_TOKEN",
        "GALLERY_WEBHOOK_SECRET",
        "GALLERY_SMTP_URL",
    ] {
        for (at, _) in text.match_indices(&format!("${{{variable}")) {
            let rest = &text[at + variable.len() + 2..];
            assert!(
                rest.starts_with(":-}") || rest.starts_with('}'),
                "{variable} has a default value in docker-compose.yml"
            );
        }
    }
    assert!(!text.to_lowercase().contains("change-me"));
    for (name, service) in services(&compose) {
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

#[test]
fn prometheus_scrapes_every_role_where_it_serves_metrics() {
    let config: Value = serde_yaml_ng::from_str(&repo_file("deploy/prometheus/prometheus.yml"))
        .expect("prometheus.yml parses");
    let compose = compose();
    let dockerfile = repo_file("Dockerfile");
    // The ports the image listens on: the web role's, and the other roles' health listener.
    assert!(dockerfile.contains("GALLERY_LISTEN=0.0.0.0:8080"));
    assert!(dockerfile.contains("GALLERY_HEALTH_LISTEN=0.0.0.0:8081"));
    let mut scraped = BTreeSet::new();
    for job in config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
    {
        assert_eq!(job["metrics_path"], "/metrics");
        for sd in job["dns_sd_configs"].as_sequence().expect("dns_sd_configs") {
            let port = sd["port"].as_u64().expect("port");
            for name in strings(&sd["names"]) {
                // Each name is a compose service (Docker's DNS answers every replica).
                service(&compose, &name);
                let expected = if name == "web" { 8080 } else { 8081 };
                assert_eq!(port, expected, "{name}");
                scraped.insert(name);
            }
        }
    }
    let roles: BTreeSet<String> = APP.iter().map(|r| r.to_string()).collect();
    assert_eq!(scraped, roles);
}
