//! Two lanes and reprocessing (#14 points 3 and 4): a new upload goes ahead of any amount of
//! bulk work; `gallery reprocess` and the admin API make a new variant for every photo, and a
//! run again queues nothing; an admin retries a failed photo; the queues' depths.

use std::collections::{HashMap, HashSet};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use gallery::domain::{Event, EventKind, Job, Lane, Photo, PhotoId, Status, VariantSpec};
use serde_json::{json, Value};

use crate::helpers::{
    decode, jpeg_fixture, queued_photo, spawn_app, spawn_app_with, Api, BackendSet, TestApp,
};

/// A photo recorded as `gallery reprocess` leaves it: stored, queued on the bulk lane.
async fn bulk_photo(app: &TestApp, original: &[u8]) -> Photo {
    let photo = queued_photo("queued.jpg", Lane::Bulk, 64, 48);
    let backends = &app.backends;
    backends
        .storage
        .put(
            &Photo::original_key(&photo.id),
            original.to_vec().into(),
            "image/jpeg",
        )
        .await
        .expect("original stored");
    backends.index.insert(&photo).await.expect("recorded");
    backends.index.queued(&photo.id).await.expect("unmarked");
    photo
}

/// Queues 200 bulk jobs for a worker running `at_once` jobs of about 300 ms each, uploads one
/// photo once bulk work is under way, and checks it waited for at most one job and that no
/// bulk job was taken once it waited: prints how many bulk jobs started between its
/// `photo.queued` and its `photo.processing`, and finished before its `photo.done`.
async fn upload_behind_bulk_work(set: BackendSet, at_once: u16) {
    const BULK: usize = 200;
    let job_time = Duration::from_millis(300);
    let app = spawn_app_with(set, |settings| {
        settings.worker.concurrency = at_once;
        settings.worker.job_delay = job_time;
    })
    .await;
    let mut events = app.live_events().await;
    // The same image as the upload, so a bulk job takes as long as the upload's.
    let image = jpeg_fixture(400, 300);
    let mut bulk = HashSet::new();
    for _ in 0..BULK {
        let photo = bulk_photo(&app, &image).await;
        app.backends
            .queue
            .publish(&Job::of(&photo))
            .await
            .expect("bulk job queued");
        bulk.insert(photo.id);
    }
    // How long a bulk job takes here, processing to done: one job's time.
    let mut started = HashMap::new();
    let mut longest_job = Duration::ZERO;
    let mut timed = |event: &Event| match event.kind {
        EventKind::Processing => {
            started.insert(event.photo.id.clone(), Instant::now());
        }
        EventKind::Done => {
            if let Some(at) = started.remove(&event.photo.id) {
                longest_job = longest_job.max(at.elapsed());
            }
        }
        _ => {}
    };
    // Bulk work under way: the worker is busy with it when the upload comes.
    let mut done_before = 0;
    while done_before < 2 {
        let event = events.next().await.expect("events go on").event;
        timed(&event);
        if event.kind == EventKind::Done && bulk.contains(&event.photo.id) {
            done_before += 1;
        }
    }

    let id = app.upload_ok("urgent.jpg", image.clone(), None).await;
    let (mut queued_at, mut waited) = (None, None);
    let (mut started_between, mut finished_between) = (0, 0);
    let took = loop {
        let next = tokio::time::timeout(Duration::from_secs(30), events.next());
        let delivery = next.await.expect("the upload is done within 30 s");
        let event = delivery.expect("events go on").event;
        timed(&event);
        if event.photo.id.as_str() == id {
            match event.kind {
                EventKind::Queued => queued_at = Some(Instant::now()),
                EventKind::Processing => waited = queued_at.map(|at| at.elapsed()),
                EventKind::Done => break queued_at.expect("queued before done").elapsed(),
                _ => {}
            }
        } else if queued_at.is_some() && bulk.contains(&event.photo.id) {
            match event.kind {
                EventKind::Processing if waited.is_none() => started_between += 1,
                EventKind::Done => finished_between += 1,
                _ => {}
            }
        }
    };
    let waited = waited.expect("processing announced");
    let waiting = app.queue_depth(".bulk").await;
    println!(
        "lanes ({set:?}, {at_once} job(s) at once, {} ms of delay in each): {started_between} \
         bulk jobs started and {finished_between} finished after the upload was queued and \
         before it started or was done; it waited {} ms \
         for a worker (the longest bulk job took {} ms) and was done {} ms after it was queued; \
         {waiting} of {BULK} bulk jobs still waiting",
        job_time.as_millis(),
        waited.as_millis(),
        longest_job.as_millis(),
        took.as_millis(),
    );
    // One job's time, give or take the events' own way to this test.
    assert!(
        waited < longest_job + Duration::from_millis(200),
        "the upload waited {waited:?} for a worker, more than one job's time ({longest_job:?})"
    );
    // No bulk job is taken once it waits. (How many finish before it is no measure: with two
    // at once, a bulk job beside it may finish first, the more often the busier the machine.)
    // Each slot may still take one after its `photo.queued` is seen: the announcement and
    // the job are two writes made side by side (one round trip, not two), a slot freed
    // between them takes a bulk job, and a bulk job taken just before may announce itself
    // just after (one did in 4 of 60 runs on a busy machine). Without the lanes, all 200 go first.
    assert!(
        started_between <= usize::from(at_once),
        "{started_between} bulk jobs started after the upload was queued and before it"
    );
    assert!(
        waiting > BULK as u32 / 2,
        "bulk work was not under way ({waiting} waiting)"
    );
    let photo = app.photo(&id).await;
    assert_eq!(photo["status"], "done", "{photo}");
}

async fn an_upload_goes_ahead_of_bulk_work(set: BackendSet) {
    upload_behind_bulk_work(set, 1).await;
}

async fn an_upload_waits_for_one_job_with_two_at_once(set: BackendSet) {
    upload_behind_bulk_work(set, 2).await;
}

/// The standard list plus `mini`, as an operator would set `GALLERY_VARIANTS`.
const WITH_MINI: &str = "thumb:320,preview:1280,mini:96";

async fn upload_three(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for (name, width, height) in [
        ("a.jpg", 1600, 1200),
        ("b.jpg", 400, 300),
        ("c.jpg", 80, 60),
    ] {
        ids.push(app.upload_ok(name, jpeg_fixture(width, height), None).await);
    }
    for id in &ids {
        assert_eq!(app.wait_done(id).await["status"], "done");
    }
    ids
}

/// Waits until every photo is done with a `mini` variant of the size it should have.
async fn assert_every_photo_has_mini(api: &Api, ids: &[String]) {
    for id in ids {
        let photo = api.wait_done(id).await;
        assert_eq!(photo["status"], "done", "{photo}");
        let longest = photo["width"].as_u64().max(photo["height"].as_u64());
        let mini = &photo["variants"]["mini"];
        let mini_longest = mini["width"].as_u64().max(mini["height"].as_u64());
        assert_eq!(mini_longest, longest.map(|side| side.min(96)), "{photo}");
        let url = mini["url"].as_str().expect("mini url");
        assert_eq!(api.get_bytes(url).await.0, 200, "{url}");
        assert!(photo["variants"]["thumb"].is_object(), "{photo}");
    }
}

async fn post(api: &Api, path: &str, body: Value) -> (u16, Value) {
    let response = api
        .client
        .post(api.url(path))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn admins_reprocess_what_lacks_a_new_variant_once(set: BackendSet) {
    let mut app = spawn_app(set).await;
    let ids = upload_three(&app).await;
    let api = app
        .reconfigure(|settings| {
            settings.variants = VariantSpec::parse_list(WITH_MINI).expect("variants");
        })
        .await;

    let (member, _) = api.add_person("member@gallery.test", "member").await;
    let (status, body) = post(&member, "/api/admin/reprocess", json!({"missing": true})).await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("forbidden")),
        "{body}"
    );
    for wrong in [json!({}), json!({"missing": true, "all": true})] {
        let (status, body) = post(&api, "/api/admin/reprocess", wrong).await;
        assert_eq!(
            (status, &body["code"]),
            (400, &json!("bad_field")),
            "{body}"
        );
    }
    let since = json!({"missing": true, "since": "next tuesday"});
    let (status, body) = post(&api, "/api/admin/reprocess", since).await;
    assert_eq!(
        (status, &body["code"]),
        (400, &json!("bad_field")),
        "{body}"
    );
    let later = json!({"missing": true, "since": "2999-01-01"});
    let (status, body) = post(&api, "/api/admin/reprocess", later).await;
    assert_eq!((status, body), (202, json!({"queued": 0, "in_flight": 0})));

    let (status, body) = post(&api, "/api/admin/reprocess", json!({"missing": true})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["queued"].as_u64(), Some(3), "{body}");
    assert_every_photo_has_mini(&api, &ids).await;

    let (status, body) = post(&api, "/api/admin/reprocess", json!({"missing": true})).await;
    assert_eq!((status, body), (202, json!({"queued": 0, "in_flight": 0})));
}

async fn a_variant_made_again_at_another_size_gets_a_new_address(set: BackendSet) {
    let mut app = spawn_app(set).await;
    let id = app.upload_ok("a.jpg", jpeg_fixture(1600, 1200), None).await;
    let before = app.wait_done(&id).await;
    let old_url = before["variants"]["thumb"]["url"].clone();
    let (_, old_headers, _) = app.get_bytes(old_url.as_str().expect("url")).await;
    let api = app
        .reconfigure(|settings| {
            settings.variants = VariantSpec::parse_list("preview:1280,thumb:400").expect("list");
        })
        .await;

    let (status, body) = post(&api, "/api/admin/reprocess", json!({"missing": true})).await;
    assert_eq!((status, &body["queued"]), (202, &json!(1)), "{body}");
    let after = api.wait_done(&id).await;
    assert_eq!(after["variants"]["thumb"]["width"], 400, "{after}");
    let new_url = after["variants"]["thumb"]["url"].as_str().expect("url");
    assert_ne!(
        json!(new_url),
        old_url,
        "a browser keeps the old address for a year"
    );
    let (status, headers, bytes) = api.get_bytes(new_url).await;
    assert_eq!(status, 200);
    assert_ne!(headers["etag"], old_headers["etag"]);
    assert_eq!(decode(&bytes).width(), 400);
}

async fn a_reprocessing_cut_off_before_its_job_is_queued_by_the_sweep(set: BackendSet) {
    let app = spawn_app(set).await;
    let id = app.upload_ok("a.jpg", jpeg_fixture(400, 300), None).await;
    app.wait_done(&id).await;
    // As a run leaves a photo when it is killed between recording it and publishing its job.
    let photo_id = PhotoId::parse(&id).expect("id");
    let index = &app.backends.index;
    let mut photo = index.get(&photo_id).await.expect("get").expect("there");
    (photo.status, photo.lane) = (Status::Queued, Lane::Bulk);
    assert!(index.requeue(&photo).await.expect("requeue"));

    // A run again leaves it: its job is on its way, as far as it can tell.
    let (status, body) = post(&app, "/api/admin/reprocess", json!({"all": true})).await;
    assert_eq!((status, body), (202, json!({"queued": 0, "in_flight": 1})));
    // The sweep of any web role (this one calls a photo stranded after 1 s) queues it, on
    // the bulk lane its record names.
    let mut web = app.web_settings();
    web.stranded_after = Duration::from_secs(1);
    app.start_another_web(web).await;
    assert_eq!(app.wait_done(&id).await["status"], "done");
    let photo = index.get(&photo_id).await.expect("get").expect("there");
    assert_eq!((photo.lane, photo.deliveries), (Lane::Bulk, 2));
    assert!(index
        .unqueued(chrono::Utc::now(), 10)
        .await
        .expect("marks")
        .is_empty());
}

async fn an_admin_retries_a_failed_photo(set: BackendSet) {
    let app = spawn_app(set).await;
    // Recorded and queued, but its original is not stored yet: every attempt fails.
    let photo = queued_photo("queued.jpg", Lane::Upload, 64, 48);
    let id = photo.id.clone();
    app.backends.index.insert(&photo).await.expect("recorded");
    app.backends
        .queue
        .publish(&Job::of(&photo))
        .await
        .expect("queued");
    let failed = app.wait_done(id.as_str()).await;
    assert_eq!(failed["status"], "failed", "{failed}");

    let retry = format!("/api/admin/photos/{id}/retry");
    let (member, _) = app.add_person("member@gallery.test", "member").await;
    let (status, _) = post(&member, &retry, json!(null)).await;
    assert_eq!(status, 403);
    // Now the original is there: the retry, with a full share of attempts again, succeeds.
    app.backends
        .storage
        .put(
            &Photo::original_key(&id),
            jpeg_fixture(400, 300).into(),
            "image/jpeg",
        )
        .await
        .expect("original stored");
    let (status, body) = post(&app, &retry, json!(null)).await;
    assert_eq!((status, &body["status"]), (202, &json!("queued")), "{body}");
    let done = app.wait_done(id.as_str()).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["variants"]["thumb"]["width"], 320);

    let (status, body) = post(&app, &retry, json!(null)).await;
    assert_eq!(
        (status, &body["code"]),
        (409, &json!("not_failed")),
        "{body}"
    );
    let unknown = format!("/api/admin/photos/{}/retry", PhotoId::new());
    let (status, body) = post(&app, &unknown, json!(null)).await;
    assert_eq!(
        (status, &body["code"]),
        (404, &json!("not_found")),
        "{body}"
    );

    // The first failure's job waits in the dead-letter queue; nothing else waits.
    let queues = app
        .client
        .get(app.url("/api/admin/queues"))
        .send()
        .await
        .expect("queues");
    assert_eq!(queues.status(), 200);
    let queues: Value = queues.json().await.expect("json");
    assert_eq!(
        queues,
        json!({"upload": 0, "bulk": 0, "retrying": 0, "dead": 1})
    );
    let refused = member
        .client
        .get(member.url("/api/admin/queues"))
        .send()
        .await
        .expect("queues");
    assert_eq!(refused.status(), 403);
}

on_both_backends!(
    an_upload_goes_ahead_of_bulk_work,
    an_upload_waits_for_one_job_with_two_at_once,
    admins_reprocess_what_lacks_a_new_variant_once,
    a_variant_made_again_at_another_size_gets_a_new_address,
    a_reprocessing_cut_off_before_its_job_is_queued_by_the_sweep,
    an_admin_retries_a_failed_photo,
);

/// Runs `gallery reprocess ARGS` on the app's services with `GALLERY_VARIANTS=variants`:
/// stdout a pipe, or with `terminal` a pseudo-terminal (through `script`). Off the test's
/// runtime thread, which the app's worker needs meanwhile.
async fn reprocess(app: &TestApp, variants: &str, args: &[&str], terminal: bool) -> Output {
    let binary = env!("CARGO_BIN_EXE_gallery");
    let mut command = if terminal {
        let line = format!("{binary} reprocess {}", args.join(" "));
        let mut script = Command::new("script");
        script.args(["--quiet", "--return", "--command", &line, "/dev/null"]);
        script
    } else {
        let mut command = Command::new(binary);
        command.arg("reprocess").args(args);
        command
    };
    for (name, _) in std::env::vars() {
        if name.starts_with("GALLERY_") {
            command.env_remove(name);
        }
    }
    command
        .envs(app.env())
        .env("GALLERY_VARIANTS", variants)
        .env("GALLERY_LOG", "warn");
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("joined")
        .expect("run gallery reprocess (the terminal case needs `script`, from util-linux)")
}

#[tokio::test]
async fn gallery_reprocess_shows_its_progress_and_a_second_run_queues_nothing() {
    let mut app = spawn_app(BackendSet::Services).await;
    let ids = upload_three(&app).await;
    let api = app
        .reconfigure(|settings| {
            settings.variants = VariantSpec::parse_list(WITH_MINI).expect("variants");
        })
        .await;

    let first = reprocess(&app, WITH_MINI, &["--missing"], false).await;
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    println!("gallery reprocess --missing, stdout a pipe:\n{out}");
    assert!(out.contains("3 photos to reprocess"), "{out}");
    assert!(out.contains("queued 3 of 3\n"), "{out}");
    assert!(out.contains("done 3 of 3\n"), "{out}");
    assert!(
        !out.contains('\r') && !out.contains('\u{1b}'),
        "no drawing: {out:?}"
    );
    assert_every_photo_has_mini(&api, &ids).await;

    let second = reprocess(&app, WITH_MINI, &["--missing"], false).await;
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{out}");
    assert!(out.contains("no photo to reprocess"), "{out}");
    assert_eq!(
        out.lines().count(),
        1,
        "nothing queued, nothing watched: {out}"
    );

    let drawn = reprocess(&app, WITH_MINI, &["--all"], true).await;
    let out = String::from_utf8_lossy(&drawn.stdout);
    assert!(drawn.status.success(), "{out}");
    println!("gallery reprocess --all, stdout a terminal:\n{out:?}");
    assert!(out.contains("3 photos to reprocess"), "{out}");
    assert!(
        out.contains('\u{1b}') || out.contains('\r'),
        "drawn: {out:?}"
    );
    assert!(out.contains("] 3/3"), "a bar: {out:?}");
    assert!(!out.contains("done 3 of 3\n"), "no plain lines: {out:?}");
    assert_every_photo_has_mini(&api, &ids).await;
}
