//! `POST /api/photos`: what is accepted, what is refused and with which error, and that a
//! refused file leaves nothing behind (no object, no metadata, no job).

use serde_json::Value;

use crate::helpers::{jpeg_fixture, png_rgba_fixture, spawn_web_only_with, BackendSet, TestApp};

/// Nothing stored anywhere for this test's namespace.
async fn assert_nothing_left(app: &TestApp) {
    let listed = app.list("").await;
    assert_eq!(
        listed["photos"],
        serde_json::json!([]),
        "metadata left behind"
    );
    assert_eq!(
        app.object_keys().await,
        Vec::<String>::new(),
        "objects left behind"
    );
    assert_eq!(app.queue_depth("").await, 0, "job left behind");
}

async fn assert_rejected(response: reqwest::Response, status: u16, code: &str, message_part: &str) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("json error body");
    assert_eq!(body["code"], code, "{body}");
    let message = body["error"].as_str().expect("error message");
    assert!(
        message.contains(message_part),
        "error {message:?} does not mention {message_part:?}"
    );
}

async fn accepted_upload_stores_original_metadata_and_job(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    let jpeg = jpeg_fixture(64, 48);
    let response = app
        .upload(&[("cat.jpg", jpeg.clone())], Some("rotate90"))
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("json");
    let id = body["photos"][0]["id"].as_str().expect("id");
    assert_eq!(body["photos"][0]["status"], "queued");
    assert_eq!(body["photos"][0]["url"], format!("/api/photos/{id}"));
    assert_eq!(body["rejected"], serde_json::json!([]));

    let photo = app.photo(id).await;
    assert_eq!(photo["filename"], "cat.jpg");
    assert_eq!(photo["content_type"], "image/jpeg");
    assert_eq!(photo["bytes"], jpeg.len());
    assert_eq!(photo["ops"], serde_json::json!(["rotate90"]));
    assert_eq!(photo["status"], "queued");
    assert_eq!(
        app.object_keys().await,
        vec![format!("photos/{id}/original")]
    );
    assert_eq!(app.queue_depth("").await, 1);
    let (status, _, original) = app.get_bytes(&format!("/api/photos/{id}/original")).await;
    assert_eq!(status, 200);
    assert_eq!(original, jpeg, "original is stored byte for byte");
}

async fn unsupported_type_is_415_and_leaves_nothing(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    let response = app
        .upload(
            &[("notes.jpg", b"just some text, named like a photo".to_vec())],
            None,
        )
        .await;
    assert_rejected(response, 415, "unsupported_type", "JPEG, PNG or WebP").await;
    assert_nothing_left(&app).await;
}

async fn oversized_file_is_413_and_leaves_nothing(set: BackendSet) {
    let app = spawn_web_only_with(set, |s| s.limits.max_upload_bytes = 4_000).await;
    let big = jpeg_fixture(600, 600);
    assert!(big.len() > 4_000, "fixture is {} bytes", big.len());
    let response = app.upload(&[("big.jpg", big)], None).await;
    assert_rejected(response, 413, "too_large", "4000 bytes").await;
    assert_nothing_left(&app).await;
}

async fn too_many_pixels_is_422_from_the_header_and_leaves_nothing(set: BackendSet) {
    let app = spawn_web_only_with(set, |s| s.limits.max_pixels = 10_000).await;
    let response = app
        .upload(&[("wide.png", png_rgba_fixture(200, 100))], None)
        .await;
    assert_rejected(response, 422, "too_many_pixels", "20000 pixels").await;
    assert_nothing_left(&app).await;
}

async fn truncated_header_is_422(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    let jpeg = jpeg_fixture(64, 64);
    let response = app.upload(&[("cut.jpg", jpeg[..20].to_vec())], None).await;
    assert_rejected(response, 422, "bad_image", "header").await;
    assert_nothing_left(&app).await;
}

async fn unknown_op_is_400_and_stores_nothing(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    let response = app
        .upload(&[("a.jpg", jpeg_fixture(32, 32))], Some("rotate90,sepia"))
        .await;
    assert_rejected(response, 400, "unknown_op", "'sepia'").await;
    assert_nothing_left(&app).await;
}

async fn request_without_file_is_400(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    let form = reqwest::multipart::Form::new().text("ops", "grayscale");
    let response = app
        .client
        .post(app.url("/api/photos"))
        .multipart(form)
        .send()
        .await
        .expect("post");
    assert_rejected(response, 400, "no_file", "'file'").await;
    let response = app
        .client
        .post(app.url("/api/photos"))
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(
        response.status(),
        400,
        "a non-multipart body is a bad request"
    );
}

async fn mixed_batch_accepts_the_good_and_names_the_bad(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    let files = [
        ("good.jpg", jpeg_fixture(40, 30)),
        ("bad.gif", b"GIF89a not supported".to_vec()),
        ("alpha.png", png_rgba_fixture(20, 20)),
    ];
    let response = app.upload(&files, None).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["photos"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["rejected"][0]["filename"], "bad.gif");
    assert_eq!(body["rejected"][0]["code"], "unsupported_type");
    assert_eq!(app.queue_depth("").await, 2);
    assert_eq!(app.object_keys().await.len(), 2);
}

on_both_backends!(
    accepted_upload_stores_original_metadata_and_job,
    unsupported_type_is_415_and_leaves_nothing,
    oversized_file_is_413_and_leaves_nothing,
    too_many_pixels_is_422_from_the_header_and_leaves_nothing,
    truncated_header_is_422,
    unknown_op_is_400_and_stores_nothing,
    request_without_file_is_400,
    mixed_batch_accepts_the_good_and_names_the_bad,
);
