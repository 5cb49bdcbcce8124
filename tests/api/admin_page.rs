//! What the admin page reads (#14 point 6): the failed photos with their errors, newest first
//! a page at a time, until retried or deleted; the jobs every worker finished per minute,
//! counted exactly; both for admins only.

use std::time::Duration;

use chrono::Utc;
use gallery::cache::{minute_of, Finished};
use gallery::domain::{Job, Lane, Photo, PhotoId, Status};
use serde_json::{json, Value};

use crate::helpers::{jpeg_fixture, png_rgba_fixture, spawn_app_with, Api, BackendSet, TestApp};

/// Photos named so fail on their first start (a test hook): a retry processes them.
const FAILS_ONCE: &str = "fails-once";

async fn app_where_photos_fail_once(set: BackendSet) -> TestApp {
    spawn_app_with(set, |settings| {
        settings.worker.fail_first_start_of = Some(FAILS_ONCE.into());
    })
    .await
}

/// `GET path` as `api`: the status and the JSON body.
async fn get(api: &Api, path: &str) -> (u16, Value) {
    let response = api.client.get(api.url(path)).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The failed photos as the admin page reads them (the answer must be 200).
async fn failed(api: &Api, query: &str) -> Value {
    let (status, body) = get(api, &format!("/api/admin/failed{query}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn ids(page: &Value) -> Vec<&str> {
    page["photos"]
        .as_array()
        .expect("photos")
        .iter()
        .map(|photo| photo["id"].as_str().expect("id"))
        .collect()
}

/// A PNG whose header reads but whose pixels do not: it fails for good on its first attempt.
fn corrupt_png() -> Vec<u8> {
    let mut png = png_rgba_fixture(300, 300);
    let middle = png.len() / 2;
    for byte in &mut png[middle..middle + 64] {
        *byte ^= 0x5A;
    }
    png
}

async fn failed_photos_are_listed_with_their_errors_until_retried_or_deleted(set: BackendSet) {
    let app = app_where_photos_fail_once(set).await;
    let (member, _) = app.add_person("mia@gallery.test", "member").await;
    let broken = member.upload_ok("broken.png", corrupt_png(), None).await;
    let good = app
        .upload_ok("good.jpg", jpeg_fixture(400, 300), None)
        .await;
    let once = app
        .upload_ok(&format!("{FAILS_ONCE}.jpg"), jpeg_fixture(400, 300), None)
        .await;
    for id in [&broken, &good, &once] {
        app.wait_done(id).await;
    }

    // Newest first; the photo that was processed is not there.
    let page = failed(&app, "").await;
    assert_eq!(ids(&page), [once.as_str(), broken.as_str()], "{page}");
    assert_eq!(page["next_cursor"], Value::Null);
    let [newest, oldest] = page["photos"].as_array().expect("photos").as_slice() else {
        panic!("two failed photos: {page}");
    };
    assert_eq!(newest["filename"], format!("{FAILS_ONCE}.jpg"));
    assert!(
        newest["error"]
            .as_str()
            .is_some_and(|error| error.contains("failed on purpose")),
        "{newest}"
    );
    assert_eq!(newest["attempts"], 1);
    assert_eq!(newest["owner"]["name"], "Admin");
    assert_eq!(oldest["filename"], "broken.png");
    assert!(
        oldest["error"]
            .as_str()
            .is_some_and(|error| error.contains("truncated or corrupt")),
        "{oldest}"
    );
    assert_eq!(oldest["owner"]["name"], "mia");
    assert!(oldest["created_at"].as_str().is_some(), "{oldest}");

    // A page at a time, like the gallery.
    let first = failed(&app, "?limit=1").await;
    assert_eq!(ids(&first), [once.as_str()]);
    assert_eq!(first["next_cursor"], json!(once));
    let second = failed(&app, &format!("?limit=1&cursor={once}")).await;
    assert_eq!(ids(&second), [broken.as_str()]);
    assert_eq!(second["next_cursor"], Value::Null);
    for (query, code) in [("?limit=0", "bad_limit"), ("?cursor=nope", "bad_cursor")] {
        let (status, body) = get(&app, &format!("/api/admin/failed{query}")).await;
        assert_eq!(
            (status, &body["code"]),
            (400, &json!(code)),
            "{query}: {body}"
        );
    }

    // Retried: off the list at once (queued), and still off once done.
    let retry = app
        .client
        .post(app.url(&format!("/api/admin/photos/{once}/retry")))
        .send()
        .await
        .expect("retry");
    assert_eq!(retry.status(), 202);
    assert_eq!(ids(&failed(&app, "").await), [broken.as_str()]);
    assert_eq!(app.wait_done(&once).await["status"], "done");
    assert_eq!(ids(&failed(&app, "").await), [broken.as_str()]);

    // Deleted: off the list.
    let deleted = member
        .client
        .delete(member.url(&format!("/api/photos/{broken}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    let page = failed(&app, "").await;
    assert_eq!(page, json!({"photos": [], "next_cursor": null}));

    // Members see neither list nor counts.
    for path in ["/api/admin/failed", "/api/admin/activity"] {
        let (status, body) = get(&member, path).await;
        assert_eq!(
            (status, &body["code"]),
            (403, &json!("forbidden")),
            "{path}: {body}"
        );
    }
}

/// Jobs finished in the last hour, summed: (done, failed). Checks the shape on the way: 60
/// minutes one after the other, oldest first, the last one the current minute.
async fn finished_in_the_last_hour(api: &Api) -> (u64, u64) {
    let before = minute_of(Utc::now());
    let (status, body) = get(api, "/api/admin/activity").await;
    let after = minute_of(Utc::now());
    assert_eq!(status, 200, "{body}");
    let minutes = body["minutes"].as_array().expect("minutes");
    assert_eq!(minutes.len(), 60, "{body}");
    let starts: Vec<i64> = minutes
        .iter()
        .map(|minute| {
            let start = minute["minute"].as_str().expect("minute");
            let start: chrono::DateTime<Utc> = start.parse().expect("an RFC 3339 time");
            minute_of(start)
        })
        .collect();
    assert!(
        starts.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "one minute after the other: {body}"
    );
    let last = starts[59];
    assert!((before..=after).contains(&last), "ends now: {body}");
    minutes.iter().fold((0, 0), |(done, failed), minute| {
        let count = |name: &str| minute[name].as_u64().expect("a count");
        (done + count("done"), failed + count("failed"))
    })
}

/// Waits until the counts reach at least `expected` (a worker counts a job just after
/// finishing it), then answers them.
async fn counted(api: &Api, expected: (u64, u64)) -> (u64, u64) {
    for _ in 0..300 {
        let counts = finished_in_the_last_hour(api).await;
        if counts.0 >= expected.0 && counts.1 >= expected.1 {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    finished_in_the_last_hour(api).await
}

async fn jobs_per_minute_count_exactly_the_jobs_finished(set: BackendSet) {
    let app = app_where_photos_fail_once(set).await;
    assert_eq!(finished_in_the_last_hour(&app).await, (0, 0));
    let mut uploaded = Vec::new();
    for n in 0..3 {
        let name = format!("photo-{n}.jpg");
        uploaded.push(app.upload_ok(&name, jpeg_fixture(400, 300), None).await);
    }
    let once = app
        .upload_ok(&format!("{FAILS_ONCE}.jpg"), jpeg_fixture(400, 300), None)
        .await;
    for id in uploaded.iter().chain([&once]) {
        app.wait_done(id).await;
    }
    assert_eq!(counted(&app, (3, 1)).await, (3, 1));

    // A job retried on its own before failing for good counts once, when it fails.
    let lost = Photo {
        id: PhotoId::new(),
        filename: "lost.jpg".into(),
        content_type: "image/jpeg".into(),
        bytes: 1,
        sha256: None,
        width: 1,
        height: 1,
        status: Status::Queued,
        ops: vec![],
        created_at: Utc::now(),
        error: None,
        attempts: 0,
        deliveries: 0,
        variants: Default::default(),
        lane: Lane::Upload,
        notify: Default::default(),
        owner: None,
    };
    app.backends.index.insert(&lost).await.expect("recorded");
    app.backends
        .queue
        .publish(&Job::of(&lost))
        .await
        .expect("queued");
    let lost_photo = app.wait_done(lost.id.as_str()).await;
    assert_eq!(lost_photo["status"], "failed");
    assert!(app.settings.worker.max_attempts > 1);
    assert_eq!(counted(&app, (3, 2)).await, (3, 2));

    // The photo retried by an admin: done this time.
    let retry = app
        .client
        .post(app.url(&format!("/api/admin/photos/{once}/retry")))
        .send()
        .await
        .expect("retry");
    assert_eq!(retry.status(), 202);
    assert_eq!(app.wait_done(&once).await["status"], "done");
    assert_eq!(counted(&app, (4, 2)).await, (4, 2));
}

async fn counts_older_than_two_hours_are_gone(set: BackendSet) {
    let app = app_where_photos_fail_once(set).await;
    let index = &app.backends.index;
    let now = Utc::now();
    let long_ago = now - chrono::Duration::hours(3);
    index
        .count_finished(Finished::Done, long_ago)
        .await
        .expect("counted");
    index
        .count_finished(Finished::Failed, now)
        .await
        .expect("counted");
    let then = index.finished_per_minute(long_ago, 1).await.expect("read");
    assert_eq!((then[0].done, then[0].failed), (0, 0), "{then:?}");
    let hour = index.finished_per_minute(now, 60).await.expect("read");
    assert_eq!(hour.len(), 60);
    assert_eq!(minute_of(hour[59].minute), minute_of(now));
    assert_eq!((hour[59].done, hour[59].failed), (0, 1), "{hour:?}");
    assert!(
        hour[..59].iter().all(|m| m.done + m.failed == 0),
        "{hour:?}"
    );
}

on_both_backends!(
    failed_photos_are_listed_with_their_errors_until_retried_or_deleted,
    jobs_per_minute_count_exactly_the_jobs_finished,
    counts_older_than_two_hours_are_gone,
);
