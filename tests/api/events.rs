//! `GET /api/events`: every status change of a photo reaches an open page, live.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::helpers::{jpeg_fixture, spawn_app, BackendSet};

async fn a_page_sees_every_status_change_in_order_as_it_happens(set: BackendSet) {
    let app = spawn_app(set).await;
    let response = app
        .client
        .get(app.url("/api/events"))
        .send()
        .await
        .expect("events");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let first = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("first chunk in time");
    text.push_str(&String::from_utf8_lossy(
        &first.expect("chunk").expect("bytes"),
    ));
    assert!(text.starts_with(": connected"), "{text}");

    // The bus subscription is made in the background at start-up; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = app
        .upload_ok("live.jpg", jpeg_fixture(300, 200), Some("grayscale"))
        .await;
    let mut kinds = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut deleted = false;
    while !kinds.contains(&"photo.deleted".to_owned()) {
        if kinds.contains(&"photo.done".to_owned()) && !deleted {
            // Other open pages drop a deleted photo without reloading.
            let response = app
                .client
                .delete(app.url(&format!("/api/photos/{id}")))
                .send()
                .await
                .expect("delete");
            assert_eq!(response.status(), 204);
            deleted = true;
        }
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("events in time");
        text.push_str(&String::from_utf8_lossy(
            &chunk.expect("chunk").expect("bytes"),
        ));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let Some(data) = frame.lines().find_map(|line| line.strip_prefix("data: ")) else {
                continue;
            };
            let event: Value = serde_json::from_str(data).expect("event json");
            if event["photo"]["id"] == id.as_str() {
                assert_eq!(event["photo"]["filename"], "live.jpg");
                kinds.push(event["type"].as_str().expect("type").to_owned());
            }
        }
    }
    assert_eq!(
        kinds,
        [
            "photo.queued",
            "photo.processing",
            "photo.done",
            "photo.deleted"
        ]
    );
}

async fn notification_targets_are_checked_at_upload(set: BackendSet) {
    let app = spawn_app(set).await;
    let file = [("a.jpg", jpeg_fixture(20, 20))];
    let response = app
        .upload_with(&[("notify_email", "not-an-address")], &file)
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "bad_notify");
    assert!(body["error"]
        .as_str()
        .is_some_and(|e| e.contains("not-an-address")));

    let targets = [
        ("notify_email", "ana@example.com"),
        ("notify_telegram", "123456"),
    ];
    let response = app.upload_with(&targets, &file).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("json");
    let id = body["photos"][0]["id"].as_str().expect("id");
    let photo = app.photo(id).await;
    assert!(
        photo.get("notify").is_none(),
        "notification targets are private: {photo}"
    );
}

on_both_backends!(
    a_page_sees_every_status_change_in_order_as_it_happens,
    notification_targets_are_checked_at_upload,
);
