//! Serving a photo's images: each with its length, `HEAD` answered with the same headers and
//! no body, 304 for the image the browser holds and 200 once it was made again, the web
//! role's memory of hot images kept to small ones (its hits and misses counted in `/metrics`),
//! and no one let in by it (nor by the memory of recent sessions) who is not let in without it.

use gallery::domain::{Photo, PhotoId, VariantSpec};
use gallery::image_cache::ImageCacheSettings;
use gallery::routes::WebSettings;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    decode, jpeg_fixture, noisy_jpeg_fixture, spawn_app, Api, BackendSet, TestApp, ADMIN_EMAIL,
    ADMIN_PASSWORD,
};
use crate::metrics::Scrape;

/// Status, headers and body of one request with extra `headers`.
async fn send(
    api: &Api,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = api.client.request(method, api.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

fn length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("content-length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}

/// The addresses of a done photo's thumb, preview and original.
fn image_paths(photo: &Value) -> [String; 3] {
    let url = |name: &str| {
        photo["variants"][name]["url"]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {photo}"))
            .to_owned()
    };
    let id = photo["id"].as_str().expect("id");
    [
        url("thumb"),
        url("preview"),
        format!("/api/photos/{id}/original"),
    ]
}

async fn images_have_their_length_and_head_answers_the_same_headers_without_a_body(
    set: BackendSet,
) {
    let app = spawn_app(set).await;
    let id = app.upload_ok("a.jpg", jpeg_fixture(1600, 1200), None).await;
    let photo = app.wait_done(&id).await;
    let anonymous = app.anonymous();
    for path in image_paths(&photo) {
        // The second time from memory, where the image is small enough to be kept.
        let mut bodies = Vec::new();
        for _ in 0..2 {
            // A browser always offers gzip: images are not compressed, so keep their length.
            let (status, headers, body) =
                send(&app, Method::GET, &path, &[("accept-encoding", "gzip")]).await;
            assert_eq!(status, 200, "{path}");
            assert_eq!(length(&headers), Some(body.len() as u64), "{path}");
            assert!(!headers.contains_key("content-encoding"), "{path}");
            let (status, head_headers, head_body) = send(&app, Method::HEAD, &path, &[]).await;
            assert_eq!(status, 200, "HEAD {path}");
            assert!(head_body.is_empty(), "HEAD {path} has no body");
            for name in ["content-length", "content-type", "etag", "cache-control"] {
                assert_eq!(
                    head_headers.get(name),
                    headers.get(name),
                    "HEAD {path}: {name}"
                );
            }
            bodies.push(body);
        }
        assert_eq!(bodies[0], bodies[1], "{path}");
        decode(&bodies[0]);
        for method in [Method::GET, Method::HEAD] {
            let (status, _, _) = send(&anonymous, method.clone(), &path, &[]).await;
            assert_eq!(status, 401, "{method} {path} without credentials");
        }
    }
    let (_, headers, _) = send(&app, Method::HEAD, &image_paths(&photo)[2], &[]).await;
    assert_eq!(
        length(&headers),
        photo["bytes"].as_u64(),
        "the original's size"
    );
    let unknown = format!("/api/photos/{}/variants/thumb", PhotoId::new());
    for method in [Method::GET, Method::HEAD] {
        let (status, _, _) = send(&app, method.clone(), &unknown, &[]).await;
        assert_eq!(status, 404, "{method} of an unknown photo");
    }
}

async fn a_held_image_is_answered_304_and_one_made_again_200(set: BackendSet) {
    let mut app = spawn_app(set).await;
    let id = app.upload_ok("a.jpg", jpeg_fixture(1600, 1200), None).await;
    let photo = app.wait_done(&id).await;
    let [thumb, _, original] = image_paths(&photo);

    let (_, headers, _) = send(&app, Method::GET, &thumb, &[]).await;
    let etag = headers["etag"].to_str().expect("etag").to_owned();
    let weak = format!("W/{etag}");
    for held in [
        etag.as_str(),
        weak.as_str(),
        "*",
        &format!("\"other\", {etag}"),
    ] {
        for method in [Method::GET, Method::HEAD] {
            let (status, headers, body) =
                send(&app, method.clone(), &thumb, &[("if-none-match", held)]).await;
            assert_eq!(status, 304, "{method} If-None-Match: {held}");
            assert!(body.is_empty());
            assert_eq!(headers["etag"], etag.as_str());
            assert_eq!(
                headers["cache-control"],
                "private, max-age=31536000, immutable"
            );
        }
    }
    let (status, _, _) = send(&app, Method::GET, &thumb, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(status, 200, "another tag");

    let (_, headers, _) = send(&app, Method::GET, &original, &[]).await;
    let modified = headers["last-modified"].to_str().expect("date").to_owned();
    let (status, _, _) = send(
        &app,
        Method::GET,
        &original,
        &[("if-modified-since", &modified)],
    )
    .await;
    assert_eq!(status, 304, "If-Modified-Since its upload");
    let long_ago = "Sun, 06 Nov 1994 08:49:37 GMT";
    let (status, _, _) = send(
        &app,
        Method::GET,
        &original,
        &[("if-modified-since", long_ago)],
    )
    .await;
    assert_eq!(status, 200, "If-Modified-Since long before it");
    let (status, _, _) = send(
        &app,
        Method::GET,
        &original,
        &[
            ("if-modified-since", &modified),
            ("if-none-match", "\"other\""),
        ],
    )
    .await;
    assert_eq!(status, 200, "If-None-Match decides when both are sent");

    // Made again at another size: this web role held the old thumb, and must not answer
    // with it, nor 304 to a browser holding it.
    let api = app
        .reconfigure(|settings| {
            settings.variants = VariantSpec::parse_list("preview:1280,thumb:400").expect("list");
        })
        .await;
    let response = api
        .client
        .post(api.url("/api/admin/reprocess"))
        .json(&json!({"missing": true}))
        .send()
        .await
        .expect("reprocess");
    assert_eq!(response.status(), 202);
    let after = api.wait_done(&id).await;
    assert_eq!(after["variants"]["thumb"]["width"], 400, "{after}");
    for path in [
        after["variants"]["thumb"]["url"].as_str().expect("url"),
        thumb.as_str(),
    ] {
        let (status, headers, body) =
            send(&app, Method::GET, path, &[("if-none-match", &etag)]).await;
        assert_eq!(status, 200, "{path} made again");
        assert_ne!(headers["etag"], etag.as_str());
        assert_eq!(length(&headers), Some(body.len() as u64));
        assert_eq!(decode(&body).width(), 400, "{path} is the new thumb");
    }
}

/// A web role on `app`'s backends whose memory keeps images up to `max_item_bytes`; answers
/// a client with `app`'s token.
async fn web_with_memory(app: &TestApp, max_item_bytes: u64) -> Api {
    let web = WebSettings {
        image_cache: ImageCacheSettings {
            capacity_bytes: 4 * 1024 * 1024,
            max_item_bytes,
        },
        ..app.web_settings()
    };
    let anonymous = app.start_another_web(web).await;
    Api::with_token(&anonymous.address, app.token.as_deref().expect("token"))
}

/// The images read whole between two scrapes: (from memory, from storage).
fn reads_since(before: &Scrape, after: &Scrape) -> (f64, f64) {
    let count = |scrape: &Scrape, outcome: &str| {
        scrape.value("gallery_image_cache_reads_total", &[("outcome", outcome)])
    };
    (
        count(after, "hit") - count(before, "hit"),
        count(after, "miss") - count(before, "miss"),
    )
}

async fn memory_keeps_small_images_only_and_lets_no_one_in(set: BackendSet) {
    let app = spawn_app(set).await;
    // Noise keeps the preview large; the thumb averages it away.
    let id = app
        .upload_ok("noise.jpg", noisy_jpeg_fixture(1600, 1200), None)
        .await;
    let photo = app.wait_done(&id).await;
    let [thumb, preview, original] = image_paths(&photo);
    let cap = 128 * 1024;
    let web = web_with_memory(&app, cap).await;
    let scrape_url = web.url("/metrics");
    let before = Scrape::of(&scrape_url).await;
    let mut sizes = Vec::new();
    for path in [&thumb, &preview, &original] {
        let (status, headers, body) = send(&web, Method::GET, path, &[]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(length(&headers), Some(body.len() as u64), "{path}");
        sizes.push(body.len() as u64);
    }
    assert!(
        sizes[0] < cap && sizes[1] > cap,
        "the fixture must give a thumb under {cap} bytes and a preview over it: {sizes:?}"
    );
    // Counted: the thumb read whole from storage; the preview and the original streamed.
    let after_first = Scrape::of(&scrape_url).await;
    assert_eq!(
        reads_since(&before, &after_first),
        (0.0, 1.0),
        "(hits, misses)"
    );
    let held = after_first.value("gallery_image_cache_bytes", &[]);
    assert!(
        held > sizes[0] as f64 && held < cap as f64,
        "the memory holds the thumb alone: {held} bytes"
    );
    // Over the cap, the original is streamed: HEAD still tells its length.
    let (status, headers, body) = send(&web, Method::HEAD, &original, &[]).await;
    assert_eq!(
        (status, length(&headers), body.len()),
        (StatusCode::OK, Some(sizes[2]), 0)
    );

    let link = web
        .client
        .post(web.url(&format!("/api/photos/{id}/links")))
        .json(&json!({"expires_in_s": 3600}))
        .send()
        .await
        .expect("share")
        .json::<Value>()
        .await
        .expect("json");
    let shared = format!("{}/preview", link["url"].as_str().expect("url"));
    let (status, headers, body) = send(&web.anonymous(), Method::HEAD, &shared, &[]).await;
    assert_eq!(status, 200, "a share link's preview");
    assert_eq!((length(&headers), body.len()), (Some(sizes[1]), 0));

    // Gone from storage behind the web role's back: what it keeps, it still serves (to
    // whoever may see it); what is over the cap it reads every time.
    let photo_id = PhotoId::parse(&id).expect("id");
    for name in ["thumb", "preview"] {
        app.backends
            .storage
            .delete(&Photo::variant_key(&photo_id, name))
            .await
            .expect("delete");
    }
    let (status, _, body) = send(&web, Method::GET, &thumb, &[]).await;
    assert_eq!(
        (status, body.len() as u64),
        (StatusCode::OK, sizes[0]),
        "kept"
    );
    let after_kept = Scrape::of(&scrape_url).await;
    assert_eq!(
        reads_since(&after_first, &after_kept),
        (1.0, 0.0),
        "(hits, misses)"
    );
    let (status, _, _) = send(&web, Method::GET, &preview, &[]).await;
    assert_eq!(status, 404, "over the cap: not kept, read from storage");
    let (status, _, _) = send(&web.anonymous(), Method::GET, &thumb, &[]).await;
    assert_eq!(status, 401, "a kept image still needs a login");
    let bad_token = Api::with_token(&web.address, "gallery_not-a-token");
    let (status, _, _) = send(&bad_token, Method::GET, &thumb, &[]).await;
    assert_eq!(status, 401, "and a valid token");

    let revoked = web
        .client
        .delete(web.url(&format!(
            "/api/photos/{id}/links/{}",
            link["id"].as_str().expect("link id")
        )))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 204);
    let (status, _, _) = send(&web.anonymous(), Method::GET, &shared, &[]).await;
    assert_eq!(status, 404, "a revoked link");

    let deleted = web
        .client
        .delete(web.url(&format!("/api/photos/{id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    for method in [Method::GET, Method::HEAD] {
        let (status, _, _) = send(&web, method.clone(), &thumb, &[]).await;
        assert_eq!(status, 404, "{method} of a deleted photo's kept thumb");
    }
}

/// A page's burst of images is let in on one check of its session; a logout, a demotion or a
/// removal in the same web process still counts from the very next request.
async fn a_logout_or_removal_shuts_images_at_once(set: BackendSet) {
    let app = spawn_app(set).await;
    let id = app.upload_ok("a.jpg", jpeg_fixture(640, 480), None).await;
    let photo = app.wait_done(&id).await;
    let [thumb, _, _] = image_paths(&photo);
    let anonymous = app.anonymous();
    let cookie = anonymous
        .log_in(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await
        .unwrap_or_else(|refused| panic!("login refused: {}", refused.status()));
    for _ in 0..3 {
        let (status, _, _) = send(&anonymous, Method::GET, &thumb, &[("cookie", &cookie)]).await;
        assert_eq!(status, 200, "with the session");
    }
    let logout = anonymous
        .client
        .delete(anonymous.url("/api/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 204);
    let (status, _, _) = send(&anonymous, Method::GET, &thumb, &[("cookie", &cookie)]).await;
    assert_eq!(status, 401, "right after logout");

    let (member, member_id) = app.add_person("member@gallery.test", "member").await;
    for _ in 0..3 {
        let (status, _, _) = send(&member, Method::HEAD, &thumb, &[]).await;
        assert_eq!(status, 200, "a member sees every photo");
    }
    let removed = app
        .client
        .delete(app.url(&format!("/api/users/{member_id}")))
        .send()
        .await
        .expect("remove");
    assert_eq!(removed.status(), 204);
    for method in [Method::GET, Method::HEAD] {
        let (status, _, _) = send(&member, method.clone(), &thumb, &[]).await;
        assert_eq!(status, 401, "{method} right after the removal");
    }
}

on_both_backends!(
    images_have_their_length_and_head_answers_the_same_headers_without_a_body,
    a_held_image_is_answered_304_and_one_made_again_200,
    memory_keeps_small_images_only_and_lets_no_one_in,
    a_logout_or_removal_shuts_images_at_once,
);
