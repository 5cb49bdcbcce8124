//! The deployment files, checked as far as a machine without a Docker engine can: the compose
//! file's structure, the Dockerfile's essentials. (The nginx config is run for real in
//! `gateway.rs`.)

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

#[test]
fn every_service_has_a_healthcheck_and_restarts() {
    let compose = compose();
    let names: BTreeSet<String> = services(&compose)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let expected = [
        "nginx", "web", "worker", "notifier", "minio", "redis", "rabbitmq",
    ];
    assert_eq!(names, expected.iter().map(|s| s.to_string()).collect());
    for (name, service) in services(&compose) {
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
fn the_app_starts_only_after_its_stores_are_healthy() {
    let compose = compose();
    let service = |name: &str| {
        services(&compose)
            .into_iter()
            .find(|(n, _)| n == name)
            .expect(name)
            .1
    };
    for role in ["web", "worker", "notifier"] {
        for store in ["minio", "redis", "rabbitmq"] {
            assert_eq!(
                service(role)["depends_on"][store]["condition"],
                "service_healthy",
                "{role} waits for {store}"
            );
        }
    }
    assert_eq!(
        service("nginx")["depends_on"]["web"]["condition"],
        "service_healthy"
    );
    assert_eq!(strings(&service("web")["command"]), ["web"]);
    assert_eq!(strings(&service("worker")["command"])[0], "worker");
    assert_eq!(strings(&service("notifier")["command"]), ["notifier"]);
    // The notifier gets the shared store settings plus its own.
    let environment = &service("notifier")["environment"];
    assert!(environment["GALLERY_AMQP_URL"].is_string());
    assert!(environment["GALLERY_SMTP_URL"].is_string());
}

#[test]
fn only_the_gateway_is_published_and_the_backend_is_private() {
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
            "nginx" => assert_eq!(networks, ["edge"]),
            "web" => assert_eq!(networks, ["edge", "backend"]),
            // It alone talks to the outside world (SMTP, Telegram, webhooks).
            "notifier" => assert_eq!(networks, ["backend", "egress"]),
            _ => assert_eq!(networks, ["backend"], "{name}"),
        }
    }
    assert_eq!(compose["networks"]["backend"]["internal"], true);
    assert_eq!(
        strings(
            &services(&compose)
                .into_iter()
                .find(|(n, _)| n == "nginx")
                .expect("nginx")
                .1["ports"]
        ),
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
        let service = services(&compose)
            .into_iter()
            .find(|(n, _)| n == store)
            .expect(store)
            .1;
        let mounts = strings(&service["volumes"]);
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
    let redis = services(&compose)
        .into_iter()
        .find(|(n, _)| n == "redis")
        .expect("redis")
        .1;
    let command = strings(&redis["command"]).join(" ");
    assert!(
        command.contains("--appendonly yes"),
        "redis persistence off: {command}"
    );
}

#[test]
fn no_secret_is_written_inline_and_images_are_pinned() {
    let compose = compose();
    for (name, service) in services(&compose) {
        if let Some(environment) = service["environment"].as_mapping() {
            for (key, value) in environment {
                let key = key.as_str().unwrap_or_default();
                let value = value.as_str().unwrap_or_default();
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
    let example = repo_file(".env.example");
    for variable in ["MINIO_ROOT_PASSWORD", "REDIS_PASSWORD", "RABBITMQ_PASSWORD"] {
        assert!(
            example.contains(&format!("{variable}=")),
            ".env.example lacks {variable}"
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
    // Run alone, the image is the whole gallery on embedded backends, kept on a volume.
    assert!(dockerfile.contains(r#"CMD ["serve"]"#));
    assert!(dockerfile.contains("GALLERY_DATA_DIR=/data") && dockerfile.contains("VOLUME /data"));
    assert!(
        dockerfile.contains(r#"CMD ["gallery", "healthcheck""#),
        "HEALTHCHECK without curl"
    );
    let dockerignore = repo_file(".dockerignore");
    assert!(dockerignore
        .lines()
        .any(|l| l.trim() == "target/" || l.trim() == "target"));
}
