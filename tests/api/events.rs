//! `GET /api/events`: every status change of a photo reaches an open page, live.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use gallery::routes::events::StreamLimits;

use crate::helpers::{jpeg_fixture, spawn_app, spawn_web_tuned, BackendSet};

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

async fn the_uploaders_contacts_stay_private(set: BackendSet) {
    let app = spawn_app(set).await;
    let contacts =
        serde_json::json!({"notify_email": "ana@example.com", "notify_telegram": "123456"});
    let response = app
        .client
        .patch(app.url("/api/me"))
        .json(&contacts)
        .send()
        .await
        .expect("profile");
    assert_eq!(response.status(), 200);
    let id = app.upload_ok("a.jpg", jpeg_fixture(20, 20), None).await;
    let photo = app.photo(&id).await;
    assert!(
        photo.get("notify").is_none() && !photo.to_string().contains("ana@example.com"),
        "notification targets are private: {photo}"
    );
}

/// Opens `/api/events` and reads its first chunk; the response when refused.
async fn open_stream(
    app: &crate::helpers::TestApp,
) -> Result<reqwest::Response, reqwest::Response> {
    let response = app
        .client
        .get(app.url("/api/events"))
        .send()
        .await
        .expect("events");
    if response.status() != 200 {
        return Err(response);
    }
    Ok(response)
}

async fn assert_too_many(refused: reqwest::Response, says: &str) {
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["code"], "too_many_streams");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains(says), "{error}");
}

async fn live_streams_are_capped_per_client_and_in_all(set: BackendSet) {
    let app = spawn_web_tuned(set, |web| {
        web.streams = StreamLimits {
            per_client: 3,
            total: 5,
            // A page that left is noticed at the next heartbeat.
            heartbeat: Duration::from_millis(100),
        }
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            open_stream(&app)
                .await
                .expect("within the per-client limit"),
        );
    }
    let refused = open_stream(&app)
        .await
        .expect_err("a 4th stream from one client");
    assert_too_many(refused, "127.0.0.1 already has 3").await;

    // A closed page gives its stream back.
    drop(open.pop());
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(stream) = open_stream(&app).await {
            reopened = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    open.push(reopened.expect("a stream is free again once one closed"));

    // Behind a trusted proxy, clients are told apart by X-Forwarded-For; the total still holds.
    let proxied = spawn_web_tuned(set, |web| {
        web.trust_proxy = true;
        web.streams = StreamLimits {
            per_client: 1,
            total: 2,
            ..StreamLimits::default()
        }
    })
    .await;
    let from = |client: &'static str| {
        proxied
            .client
            .get(proxied.url("/api/events"))
            // The first entry is what the client claimed; the last is what our proxy saw.
            .header("X-Forwarded-For", format!("10.9.9.9, {client}"))
            .send()
    };
    let first = from("203.0.113.1").await.expect("first client");
    assert_eq!(first.status(), 200);
    assert_too_many(
        from("203.0.113.1").await.expect("same client"),
        "203.0.113.1",
    )
    .await;
    let second = from("203.0.113.2").await.expect("second client");
    assert_eq!(second.status(), 200);
    assert_too_many(
        from("203.0.113.3").await.expect("third client"),
        "limit of 2",
    )
    .await;
}

on_both_backends!(
    a_page_sees_every_status_change_in_order_as_it_happens,
    the_uploaders_contacts_stay_private,
    live_streams_are_capped_per_client_and_in_all,
);
