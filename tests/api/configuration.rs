//! The configuration boundary as an operator meets it: empty variables mean "not set", and no
//! secret reaches a log line, even at debug level and on the failure paths where error
//! messages are most tempted to quote a URL.

use std::time::Duration;

use crate::helpers::{jpeg_fixture, spawn_web_only_with, temp_data_dir, BackendSet, Logged};
use crate::serve::{free_port, serve};

/// Secrets the runs below are given; none may appear in their logs.
const REDIS_PASSWORD: &str = "redispass-3c5e";
const AMQP_PASSWORD: &str = "amqppass-8e2a";
const TELEGRAM_TOKEN: &str = "123:tgtoken-6d4c";

#[tokio::test]
async fn empty_variables_count_as_unset() {
    let data_dir = temp_data_dir();
    // As compose passes `${VAR:-}` through: before, "" was an SMTP URL and serve died on it.
    let empty = [
        "GALLERY_SMTP_URL",
        "GALLERY_TELEGRAM_TOKEN",
        "GALLERY_WEBHOOK_URL",
        "GALLERY_S3_ENDPOINT",
        "GALLERY_REDIS_URL",
        "GALLERY_MAX_FILES",
    ]
    .map(|name| (name, String::new()));
    let served = serve(&data_dir, &empty).await;
    let config: serde_json::Value = served
        .api
        .client
        .get(served.api.url("/api/config"))
        .send()
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert_eq!(config["max_files"], 32, "the default, not an error");
    let id = served
        .api
        .upload_ok("plain.jpg", jpeg_fixture(64, 48), None)
        .await;
    assert_eq!(served.api.wait_done(&id).await["status"], "done");
    drop(served);
    let _ = std::fs::remove_dir_all(data_dir);
}

fn assert_no_secret(log: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !log.contains(secret),
            "secret {secret:?} in the log:\n{log}"
        );
    }
}

#[tokio::test]
async fn no_secret_reaches_the_log_even_at_debug_level() {
    let services = spawn_web_only_with(BackendSet::Services, |_| {}).await;
    let env = services.env();
    let with = |name: &'static str, value: String| -> Vec<(&'static str, String)> {
        env.iter()
            .filter(|(key, _)| *key != name)
            .cloned()
            .chain([(name, value)])
            .collect()
    };
    let data_dir = temp_data_dir();
    let dir = format!("--data-dir={}", data_dir.display());
    let serve = ["serve", "--listen=127.0.0.1:0", dir.as_str()];

    // Redis cannot be reached: the retry line names Redis and its address, not the password.
    let redis_url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}", free_port());
    let log = Logged::start("debug", &serve, &with("GALLERY_REDIS_URL", redis_url))
        .stop_after("waiting for Redis")
        .await;
    assert_no_secret(&log, &[REDIS_PASSWORD, super::helpers::S3_SECRET_KEY]);

    // RabbitMQ refuses the password.
    let amqp_url = format!("amqp://guest:{AMQP_PASSWORD}@127.0.0.1:5672/%2f");
    let log = Logged::start("debug", &serve, &with("GALLERY_AMQP_URL", amqp_url))
        .stop_after("waiting for RabbitMQ")
        .await;
    assert_no_secret(&log, &[AMQP_PASSWORD, super::helpers::S3_SECRET_KEY]);

    // Telegram cannot be reached: the failure is logged without the token, which is part of
    // Telegram's URL (and so of the HTTP client's errors).
    let mut notify = env.clone();
    notify.extend([
        ("GALLERY_TELEGRAM_TOKEN", TELEGRAM_TOKEN.to_owned()),
        ("GALLERY_TELEGRAM_API", "http://127.0.0.1:9".to_owned()),
        ("GALLERY_NOTIFY_TELEGRAM", "4242".to_owned()),
    ]);
    let port = free_port();
    let listen = format!("--listen=127.0.0.1:{port}");
    let running = Logged::start("debug", &["serve", &listen, dir.as_str()], &notify);
    let api = crate::helpers::Api::new(&format!("http://127.0.0.1:{port}"));
    let mut accepted = false;
    for _ in 0..200 {
        if let Ok(response) = api.client.get(api.url("/readyz")).send().await {
            if response.status() == 200 {
                accepted = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(accepted, "serve did not become ready:\n{}", running.text());
    // On the services of `services`, whose admin exists already.
    let api = crate::helpers::Api::admin(&api.address).await;
    let id = api.upload_ok("told.jpg", jpeg_fixture(64, 48), None).await;
    api.wait_done(&id).await;
    let log = running.stop_after("Telegram send failed").await;
    assert_no_secret(
        &log,
        &[TELEGRAM_TOKEN, "tgtoken", super::helpers::S3_SECRET_KEY],
    );
    let _ = std::fs::remove_dir_all(data_dir);
}
