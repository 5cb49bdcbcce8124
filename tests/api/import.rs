//! Bulk import: the API records each original's SHA-256 and finds photos by it, and
//! `gallery import` uploads a folder through the API, skipping what the gallery already has,
//! so an import killed half way and run again uploads nothing twice.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{jpeg_fixture, spawn_app, Api, BackendSet};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The ids `GET /api/photos?sha256=HASH` answers, newest first.
async fn ids_with_hash(api: &Api, hash: &str) -> Vec<String> {
    api.list(&format!("?sha256={hash}")).await["photos"]
        .as_array()
        .expect("photos")
        .iter()
        .map(|photo| photo["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn photos_are_found_by_the_sha256_of_their_original(set: BackendSet) {
    let app = spawn_app(set).await;
    let bytes = jpeg_fixture(640, 480);
    let hash = sha256_hex(&bytes);
    assert_eq!(ids_with_hash(&app, &hash).await, Vec::<String>::new());

    let first = app.upload_ok("a.jpg", bytes.clone(), None).await;
    // Processing rewrites the record: the hash stays.
    let photo = app.wait_done(&first).await;
    assert_eq!(photo["sha256"], hash.as_str(), "{photo}");
    assert_eq!(ids_with_hash(&app, &hash).await, [first.clone()]);
    assert_eq!(
        ids_with_hash(&app, &hash.to_ascii_uppercase()).await,
        [first.clone()],
        "either case"
    );
    let other = jpeg_fixture(64, 48);
    assert_eq!(ids_with_hash(&app, &sha256_hex(&other)).await.len(), 0);

    // The same file again is a second photo (uploads are not refused for it): both found.
    let second = app.upload_ok("again.jpg", bytes.clone(), None).await;
    assert_eq!(
        ids_with_hash(&app, &hash).await,
        [second.clone(), first.clone()]
    );
    assert_eq!(
        app.list(&format!("?sha256={hash}&limit=1")).await["photos"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Deleting a photo forgets its hash.
    let response = app
        .client
        .delete(app.url(&format!("/api/photos/{second}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 204);
    assert_eq!(ids_with_hash(&app, &hash).await, [first]);

    for bad in ["abc", &"z".repeat(64), &"a".repeat(65)] {
        let response = app
            .client
            .get(app.url(&format!("/api/photos?sha256={bad}")))
            .send()
            .await
            .expect("list");
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], "bad_sha256", "{body}");
    }
    let response = app
        .anonymous()
        .client
        .get(app.url(&format!("/api/photos?sha256={hash}")))
        .send()
        .await
        .expect("list");
    assert_eq!(response.status(), 401, "only for logged-in callers");
}

on_both_backends!(photos_are_found_by_the_sha256_of_their_original);
