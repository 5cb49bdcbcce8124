//! `/healthz`, `/readyz` and `/api/config`.

use std::sync::Arc;

use gallery::backends::Backends;
use gallery::routes::WebSettings;
use gallery::startup::Application;
use gallery::storage::S3Store;
use serde_json::Value;

use crate::helpers::{connect_services, remove_queues, spawn_app, test_settings, BackendSet};

async fn healthz_and_readyz_answer_when_everything_is_up(set: BackendSet) {
    let app = spawn_app(set).await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(response.status(), 200);
    let response = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn readyz_names_the_unreachable_dependency() {
    let settings = test_settings();
    let healthy = connect_services(&settings).await;
    // The discard port: nothing listens.
    let mut unreachable = settings.backends.s3.clone().expect("S3 configured");
    unreachable.endpoint = "http://127.0.0.1:9".into();
    let backends = Backends {
        storage: Arc::new(S3Store::new(&unreachable).expect("store")),
        ..healthy
    };
    let web = WebSettings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..WebSettings::default()
    };
    let app = Application::build(&web, &settings, backends)
        .await
        .expect("build");
    let url = format!("http://127.0.0.1:{}/readyz", app.port());
    tokio::spawn(app.run_until_stopped());
    let response = reqwest::get(url).await.expect("readyz");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "not ready: s3 unreachable");
    assert_eq!(body["unreachable"], serde_json::json!(["s3"]));
    // It is open to anyone: which store fails, never why (no host, port or error text).
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");
    remove_queues(&settings);
}

async fn config_tells_the_page_the_limits(set: BackendSet) {
    let app = spawn_app(set).await;
    let config: Value = app
        .client
        .get(app.url("/api/config"))
        .send()
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert_eq!(config["max_upload_bytes"], app.max_upload_bytes);
    assert_eq!(
        config["accepted_types"],
        serde_json::json!(["image/jpeg", "image/png", "image/webp"])
    );
    assert_eq!(
        config["ops"],
        serde_json::json!(["rotate90", "rotate180", "rotate270", "grayscale"])
    );
}

on_both_backends!(
    healthz_and_readyz_answer_when_everything_is_up,
    config_tells_the_page_the_limits,
);
