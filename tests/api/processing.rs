//! Uploads that a worker turns into variants: every format, EXIF orientation, every op, and
//! broken images failing with a readable error. Pixels are checked, not just sizes. And how
//! many jobs a worker holds at once.

use std::collections::HashSet;

use gallery::domain::EventKind;
use image::GenericImageView;
use serde_json::Value;

use crate::helpers::{
    decode, jpeg_fixture, png_rgba_fixture, spawn_app, spawn_app_with, webp_fixture,
    with_exif_orientation, BackendSet, TestApp,
};

async fn variant(app: &TestApp, photo: &Value, name: &str) -> image::DynamicImage {
    let url = photo["variants"][name]["url"]
        .as_str()
        .expect("variant url");
    let (status, headers, bytes) = app.get_bytes(url).await;
    assert_eq!(status, 200);
    let content_type = headers["content-type"].to_str().expect("ascii");
    let served = decode(&bytes);
    assert_eq!(
        (served.width(), served.height()),
        (
            photo["variants"][name]["width"].as_u64().expect("w") as u32,
            photo["variants"][name]["height"].as_u64().expect("h") as u32
        ),
        "served {name} ({content_type}) matches its metadata"
    );
    served
}

fn size(photo: &Value, name: &str) -> (u64, u64) {
    (
        photo["variants"][name]["width"].as_u64().unwrap_or(0),
        photo["variants"][name]["height"].as_u64().unwrap_or(0),
    )
}

/// The gradient fixture has red rising to the right and green rising downwards.
fn red_green(image: &image::DynamicImage, x: u32, y: u32) -> (u8, u8) {
    let pixel = image.get_pixel(x, y);
    (pixel[0], pixel[1])
}

fn near(actual: (u8, u8), expected: (u8, u8)) -> bool {
    actual.0.abs_diff(expected.0) < 40 && actual.1.abs_diff(expected.1) < 40
}

async fn jpeg_png_and_webp_reach_done_with_right_sized_variants(set: BackendSet) {
    let app = spawn_app(set).await;
    let jpeg = app
        .upload_ok("landscape.jpg", jpeg_fixture(1600, 1200), None)
        .await;
    let png = app
        .upload_ok("alpha.png", png_rgba_fixture(400, 200), None)
        .await;
    let webp = app
        .upload_ok("small.webp", webp_fixture(300, 500), None)
        .await;

    let photo = app.wait_done(&jpeg).await;
    assert_eq!(photo["status"], "done", "{photo}");
    assert_eq!(
        (photo["width"].as_u64(), photo["height"].as_u64()),
        (Some(1600), Some(1200))
    );
    assert_eq!(size(&photo, "preview"), (1280, 960));
    assert_eq!(size(&photo, "thumb"), (320, 240));
    variant(&app, &photo, "preview").await;
    variant(&app, &photo, "thumb").await;

    let photo = app.wait_done(&png).await;
    assert_eq!(photo["status"], "done", "{photo}");
    assert_eq!(size(&photo, "preview"), (400, 200), "never upscaled");
    assert_eq!(size(&photo, "thumb"), (320, 160));
    let thumb = variant(&app, &photo, "thumb").await;
    assert!(thumb.color().has_alpha(), "transparency survives");
    assert_eq!(thumb.get_pixel(10, 80)[3], 255, "opaque half stays opaque");
    assert_eq!(
        thumb.get_pixel(310, 80)[3],
        0,
        "transparent half stays transparent"
    );

    let photo = app.wait_done(&webp).await;
    assert_eq!(photo["status"], "done", "{photo}");
    assert_eq!(size(&photo, "preview"), (300, 500));
    assert_eq!(size(&photo, "thumb"), (192, 320));
}

async fn exif_orientation_6_turns_a_landscape_jpeg_portrait(set: BackendSet) {
    let app = spawn_app(set).await;
    let tagged = with_exif_orientation(&jpeg_fixture(400, 300), 6);
    let id = app.upload_ok("camera.jpg", tagged, None).await;
    let photo = app.wait_done(&id).await;
    assert_eq!(photo["status"], "done", "{photo}");
    assert_eq!(
        (photo["width"].as_u64(), photo["height"].as_u64()),
        (Some(300), Some(400))
    );
    assert_eq!(size(&photo, "thumb"), (240, 320));
    let thumb = variant(&app, &photo, "thumb").await;
    // Rotated 90° clockwise: the stored top-left corner (no red, no green) is now top-right.
    assert!(
        near(red_green(&thumb, 235, 4), (0, 0)),
        "top-right is {:?}",
        red_green(&thumb, 235, 4)
    );
    assert!(
        near(red_green(&thumb, 4, 4), (0, 255)),
        "top-left is {:?}",
        red_green(&thumb, 4, 4)
    );
    assert!(
        near(red_green(&thumb, 4, 315), (255, 255)),
        "bottom-left is {:?}",
        red_green(&thumb, 4, 315)
    );
}

async fn every_op_is_applied_in_order(set: BackendSet) {
    let app = spawn_app(set).await;
    let source = jpeg_fixture(400, 300);
    let r90 = app
        .upload_ok("r90.jpg", source.clone(), Some("rotate90"))
        .await;
    let r180 = app
        .upload_ok("r180.jpg", source.clone(), Some("rotate180"))
        .await;
    let r270 = app
        .upload_ok("r270.jpg", source.clone(), Some("rotate270"))
        .await;
    let gray = app
        .upload_ok(
            "gray.jpg",
            source.clone(),
            Some("grayscale,rotate90,rotate90"),
        )
        .await;

    let photo = app.wait_done(&r90).await;
    assert_eq!(size(&photo, "thumb"), (240, 320));
    let thumb = variant(&app, &photo, "thumb").await;
    assert!(near(red_green(&thumb, 235, 4), (0, 0)));

    let photo = app.wait_done(&r180).await;
    assert_eq!(size(&photo, "thumb"), (320, 240));
    let thumb = variant(&app, &photo, "thumb").await;
    assert!(
        near(red_green(&thumb, 315, 235), (0, 0)),
        "origin moved to bottom-right"
    );
    assert!(near(red_green(&thumb, 4, 4), (255, 255)));

    let photo = app.wait_done(&r270).await;
    assert_eq!(size(&photo, "thumb"), (240, 320));
    let thumb = variant(&app, &photo, "thumb").await;
    assert!(
        near(red_green(&thumb, 4, 315), (0, 0)),
        "origin moved to bottom-left"
    );

    let photo = app.wait_done(&gray).await;
    assert_eq!(
        photo["ops"],
        serde_json::json!(["grayscale", "rotate90", "rotate90"])
    );
    assert_eq!(
        size(&photo, "thumb"),
        (320, 240),
        "two quarter turns keep landscape"
    );
    let thumb = variant(&app, &photo, "thumb").await.to_rgb8();
    assert!(
        thumb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]),
        "grayscale variant has colour"
    );
    let brightness = |x: u32, y: u32| thumb.get_pixel(x, y)[0];
    assert!(
        brightness(4, 4) > brightness(315, 235) + 60,
        "rotated half a turn: the bright corner is top-left"
    );
}

async fn a_corrupt_image_fails_with_a_readable_error_and_is_dead_lettered(set: BackendSet) {
    let app = spawn_app(set).await;
    let mut png = png_rgba_fixture(300, 300);
    // Scramble the pixel data after the header: the header still reads, the pixels do not.
    let middle = png.len() / 2;
    for byte in &mut png[middle..middle + 64] {
        *byte ^= 0x5A;
    }
    let id = app.upload_ok("broken.png", png, None).await;
    let photo = app.wait_done(&id).await;
    assert_eq!(photo["status"], "failed", "{photo}");
    let error = photo["error"].as_str().expect("error");
    assert!(
        error.contains("truncated or corrupt"),
        "unreadable error: {error}"
    );
    assert!(
        photo
            .get("variants")
            .is_some_and(|v| v == &serde_json::json!({})),
        "no variants recorded"
    );
    for _ in 0..100 {
        if app.queue_depth(".dead").await == 1 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the failed job never reached the dead-letter queue");
}

/// A worker holds one job beyond those in its engine, ready (its record marked, its original
/// fetched) for the moment an engine turn frees up, and no more than that: with one job at
/// once and each job long in the engine, two of three photos are processing before the
/// first is done, not three.
async fn a_worker_readies_one_job_beyond_its_concurrency_and_no_more(set: BackendSet) {
    let app = spawn_app_with(set, |settings| {
        settings.worker.concurrency = 1;
        settings.worker.job_delay = std::time::Duration::from_millis(1500);
    })
    .await;
    let mut events = app.live_events().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            app.upload_ok(&format!("held-{n}.jpg"), jpeg_fixture(320, 240), None)
                .await,
        );
    }
    let mut processing = HashSet::new();
    let first_done = loop {
        let event = events.next().await.expect("events go on").event;
        match event.kind {
            EventKind::Processing => {
                processing.insert(event.photo.id.as_str().to_owned());
            }
            EventKind::Done => break event.photo.id.as_str().to_owned(),
            _ => {}
        }
    };
    assert_eq!(
        processing.len(),
        2,
        "photos processing before the first was done ({first_done}): {processing:?}"
    );
    assert!(processing.contains(&first_done));
    for id in &ids {
        assert_eq!(app.wait_done(id).await["status"], "done");
    }
}

on_both_backends!(
    jpeg_png_and_webp_reach_done_with_right_sized_variants,
    exif_orientation_6_turns_a_landscape_jpeg_portrait,
    every_op_is_applied_in_order,
    a_corrupt_image_fails_with_a_readable_error_and_is_dead_lettered,
    a_worker_readies_one_job_beyond_its_concurrency_and_no_more,
);
