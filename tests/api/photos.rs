//! Listing newest first with pagination, reading one photo and its images, deleting.

use serde_json::Value;

use crate::helpers::{jpeg_fixture, spawn_app, spawn_web_only_with, BackendSet};

async fn listing_is_newest_first_and_paginates_with_a_cursor(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            app.upload_ok(&format!("p{n}.jpg"), jpeg_fixture(16, 16), None)
                .await,
        );
    }
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for expected_len in [2, 2, 1] {
        let page: Value = app
            .client
            .get(app.url(&format!("/api/photos?limit=2&cursor={cursor}")))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let photos = page["photos"].as_array().expect("photos");
        assert_eq!(photos.len(), expected_len);
        seen.extend(
            photos
                .iter()
                .map(|p| p["id"].as_str().expect("id").to_owned()),
        );
        cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
    }
    assert_eq!(seen, ids);
    assert_eq!(cursor, "", "last page has no next cursor");

    let response = app
        .client
        .get(app.url("/api/photos?cursor=nope"))
        .send()
        .await
        .expect("list");
    assert_eq!(response.status(), 400);
    let response = app
        .client
        .get(app.url("/api/photos?limit=0"))
        .send()
        .await
        .expect("list");
    assert_eq!(response.status(), 400);
}

async fn a_photo_shows_every_field_and_serves_its_images_with_caching_headers(set: BackendSet) {
    let app = spawn_app(set).await;
    let id = app
        .upload_ok("<b>bold</b> & \"quoted\".jpg", jpeg_fixture(800, 600), None)
        .await;
    let photo = app.wait_done(&id).await;
    assert_eq!(
        photo["filename"], "<b>bold</b> & \"quoted\".jpg",
        "filename returned as uploaded"
    );
    assert_eq!(photo["original_url"], format!("/api/photos/{id}/original"));
    assert!(chrono::DateTime::parse_from_rfc3339(
        photo["created_at"].as_str().expect("created_at")
    )
    .is_ok());
    for field in [
        "content_type",
        "bytes",
        "width",
        "height",
        "status",
        "ops",
        "variants",
    ] {
        assert!(photo.get(field).is_some(), "missing {field}");
    }

    let url = photo["variants"]["thumb"]["url"].as_str().expect("url");
    let (status, headers, _) = app.get_bytes(url).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(
        headers["cache-control"],
        "private, max-age=31536000, immutable"
    );
    let etag = headers["etag"].to_str().expect("etag").to_owned();
    let revalidated = app
        .client
        .get(app.url(url))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("get");
    assert_eq!(revalidated.status(), 304);

    let (status, headers, _) = app.get_bytes(&format!("/api/photos/{id}/original")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert!(headers.contains_key("etag"));

    let (status, _, body) = app
        .get_bytes(&format!("/api/photos/{id}/variants/huge"))
        .await;
    assert_eq!(status, 404);
    let body: Value = serde_json::from_slice(&body).expect("json error");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("huge")));
}

async fn delete_removes_objects_and_metadata(set: BackendSet) {
    let app = spawn_app(set).await;
    let id = app
        .upload_ok("gone.jpg", jpeg_fixture(500, 400), None)
        .await;
    app.wait_done(&id).await;
    assert_eq!(app.object_keys().await.len(), 3, "original, preview, thumb");

    let response = app
        .client
        .delete(app.url(&format!("/api/photos/{id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 204);
    assert_eq!(app.object_keys().await, Vec::<String>::new());
    let response = app
        .client
        .get(app.url(&format!("/api/photos/{id}")))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 404);
    let listed = app.list("").await;
    assert_eq!(listed["photos"], serde_json::json!([]));

    let response = app
        .client
        .delete(app.url(&format!("/api/photos/{id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 404, "deleting twice is 404");
    let body: Value = response.json().await.expect("json");
    assert!(body["error"].as_str().is_some_and(|e| e.contains(&id)));
}

on_both_backends!(
    listing_is_newest_first_and_paginates_with_a_cursor,
    a_photo_shows_every_field_and_serves_its_images_with_caching_headers,
    delete_removes_objects_and_metadata,
);
