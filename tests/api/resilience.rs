//! Nothing accepted is lost: a worker killed mid-job, a worker asked to stop mid-job, a broker
//! connection cut, a job that keeps failing, a job delivered twice, a web process killed
//! between recording a photo and queueing its job. And roles share a host.

use std::time::Duration;

use gallery::cache::{EmbeddedIndex, PhotoIndex};
use gallery::domain::{Job, Lane, PhotoId, Status};
use serde_json::Value;

use crate::helpers::{
    admin_env, jpeg_fixture, queued_photo, signal, spawn_app, spawn_web_only_with, temp_data_dir,
    wait_exit, Api, BackendSet, Logged, TestApp,
};
use crate::serve::free_port;

async fn wait_queue_empty(app: &TestApp) {
    for _ in 0..200 {
        if app.queue_depth("").await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job queue never drained");
}

#[tokio::test]
async fn a_job_whose_worker_is_killed_mid_job_is_redelivered_and_finishes() {
    let app = spawn_web_only_with(BackendSet::Services, |_| {}).await;
    let mut doomed = app.spawn_worker_process(60_000);
    let id = app
        .upload_ok("survivor.jpg", jpeg_fixture(640, 480), None)
        .await;
    app.wait_status(&id, &["processing"]).await;
    doomed.kill().expect("kill -9");
    let _ = doomed.wait();

    let mut rescuer = app.spawn_worker_process(0);
    let photo = app.wait_done(&id).await;
    assert_eq!(photo["status"], "done", "{photo}");
    assert_eq!(photo["variants"]["thumb"]["width"], 320);
    wait_queue_empty(&app).await;
    signal(&rescuer, "TERM");
    assert!(wait_exit(&mut rescuer).await.success());
}

#[tokio::test]
async fn sigterm_lets_the_worker_finish_its_job_and_exit_0() {
    let app = spawn_web_only_with(BackendSet::Services, |_| {}).await;
    let mut worker = app.spawn_worker_process(1_500);
    let id = app
        .upload_ok("inflight.jpg", jpeg_fixture(640, 480), None)
        .await;
    app.wait_status(&id, &["processing"]).await;
    signal(&worker, "TERM");
    let status = wait_exit(&mut worker).await;
    assert!(status.success(), "worker exited with {status}");
    let photo = app.photo(&id).await;
    assert_eq!(
        photo["status"], "done",
        "in-flight job finished before exit: {photo}"
    );
    assert_eq!(app.queue_depth("").await, 0, "and was acked");
}

/// Closes every broker connection of this test's app, as a broker restart would.
fn cut_broker_connections(app: &TestApp) -> usize {
    let output = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "--no-table-headers",
            "--silent",
            "pid",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl runs (it ships with RabbitMQ; run tests as root)");
    let listing = String::from_utf8_lossy(&output.stdout);
    let pids: Vec<&str> = listing
        .lines()
        .filter(|line| line.contains(app.job_queue()))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for pid in &pids {
        let status = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test: broker connection cut"])
            .status()
            .expect("rabbitmqctl");
        assert!(status.success());
    }
    pids.len()
}

#[tokio::test]
async fn uploads_and_jobs_survive_a_dropped_broker_connection() {
    let app = spawn_app(BackendSet::Services).await;
    let first = app
        .upload_ok("before.jpg", jpeg_fixture(400, 300), None)
        .await;
    assert_eq!(app.wait_done(&first).await["status"], "done");

    let cut = cut_broker_connections(&app);
    assert!(
        cut >= 2,
        "expected the publisher's and the worker's connections, cut {cut}"
    );

    let second = app
        .upload_ok("after.jpg", jpeg_fixture(400, 300), None)
        .await;
    let photo = app.wait_done(&second).await;
    assert_eq!(photo["status"], "done", "{photo}");
}

async fn a_job_that_keeps_failing_is_retried_then_failed_and_dead_lettered(set: BackendSet) {
    let app = spawn_app(set).await;
    // Metadata and a job, but no original in storage: every attempt fails.
    let photo = queued_photo("lost.jpg", Lane::Upload, 1, 1);
    let id = photo.id.clone();
    app.backends.index.insert(&photo).await.expect("insert");
    app.backends
        .queue
        .publish(&Job::of(&photo))
        .await
        .expect("publish");

    let failed: Value = app.wait_status(id.as_str(), &["failed"]).await;
    assert_eq!(
        failed["error"],
        format!("the original (photos/{id}/original) is missing from storage")
    );
    let stored = app
        .backends
        .index
        .get(&id)
        .await
        .expect("get")
        .expect("still there");
    assert_eq!(stored.attempts, app.settings.worker.max_attempts);
    for _ in 0..100 {
        if app.queue_depth(".dead").await == 1 {
            assert_eq!(
                app.queue_depth("").await + app.queue_depth(".retry").await,
                0
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the failed job never reached the dead-letter queue");
}

async fn a_job_delivered_again_after_done_changes_nothing(set: BackendSet) {
    let app = spawn_app(set).await;
    let id = app
        .upload_ok("twice.jpg", jpeg_fixture(400, 300), Some("grayscale"))
        .await;
    let done = app.wait_done(&id).await;
    let objects = app.object_keys().await;

    let photo_id = PhotoId::parse(&id).expect("id");
    let stored = app.backends.index.get(&photo_id).await.expect("get");
    app.backends
        .queue
        .publish(&Job::of(&stored.expect("recorded")))
        .await
        .expect("publish");
    wait_queue_empty(&app).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.photo(&id).await, done);
    assert_eq!(app.object_keys().await, objects);
}

on_both_backends!(
    a_job_that_keeps_failing_is_retried_then_failed_and_dead_lettered,
    a_job_delivered_again_after_done_changes_nothing,
);

#[tokio::test]
async fn two_workers_and_a_notifier_share_one_host() {
    let app = spawn_web_only_with(BackendSet::Services, |_| {}).await;
    // As someone runs them on one machine: the three service addresses, nothing else.
    let env: Vec<(&str, String)> = app
        .env()
        .into_iter()
        .filter(|(name, _)| *name != "GALLERY_HEALTH_LISTEN")
        .collect();
    let worker = ["worker", "--concurrency", "1"];
    let mut roles = [
        Logged::start("info", &worker, &env),
        Logged::start("info", &worker, &env),
        Logged::start("info", &["notifier"], &env),
    ];
    for (role, ready) in roles.iter().zip([
        "worker consuming jobs",
        "worker consuming jobs",
        "notifier listening",
    ]) {
        assert!(role.wait_for(ready).await, "never ready:\n{}", role.text());
    }
    let mut ids = Vec::new();
    for n in 0..6 {
        let name = format!("shared-{n}.jpg");
        ids.push(app.upload_ok(&name, jpeg_fixture(800, 600), None).await);
    }
    for id in &ids {
        assert_eq!(app.wait_done(id).await["status"], "done");
    }
    for role in roles.iter_mut() {
        assert!(role.running(), "a role exited:\n{}", role.text());
    }
    for worker in &roles[..2] {
        let finished = worker.text().matches("job finished").count();
        assert!(finished >= 1, "a worker did no job:\n{}", worker.text());
    }
}

#[tokio::test]
async fn a_job_that_keeps_killing_its_worker_ends_failed_and_dead_lettered() {
    let app = spawn_web_only_with(BackendSet::Services, |_| {}).await;
    let id = app
        .upload_ok("poison.jpg", jpeg_fixture(640, 480), None)
        .await;
    let mut env = app.env();
    env.push(("GALLERY_JOB_DELAY_MS", "60000".into()));
    let worker = ["worker", "--concurrency", "1"];
    for delivery in 1..=app.settings.worker.max_attempts {
        // Each worker dies while it holds the job, as one would on a photo that crashes it.
        let doomed = Logged::start("info", &worker, &env);
        let started = format!("delivery={delivery}");
        assert!(doomed.wait_for(&started).await, "{}", doomed.text());
        drop(doomed); // kill -9
    }
    let rescuer = Logged::start("info", &worker, &app.env());
    let photo = app.wait_status(&id, &["failed", "done"]).await;
    assert_eq!(photo["status"], "failed", "{photo}");
    assert_eq!(
        photo["error"],
        "processing stopped the worker 3 times; given up after 3 deliveries"
    );
    for _ in 0..100 {
        if app.queue_depth(".dead").await == 1 {
            assert_eq!(app.queue_depth("").await, 0);
            drop(rescuer);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the job never reached the dead-letter queue");
}

/// Uploads one photo to a gallery that dies (abort, as kill -9) after recording the photo and
/// before queueing its job. `uploader` holds the token to send.
async fn upload_into_a_dying_web(doomed: &mut Logged, address: &str, uploader: &Api) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(jpeg_fixture(320, 240)).file_name("stranded.jpg"),
    );
    let token = uploader.token.as_deref().unwrap_or_default();
    let cut_off = uploader
        .client
        .post(format!("{address}/api/photos"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await;
    assert!(cut_off.is_err(), "the doomed web answered: {cut_off:?}");
    for _ in 0..100 {
        if !doomed.running() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!doomed.running(), "the hook did not stop the web");
}

/// The one photo listed, which must be `queued`: recorded, with no job behind it.
async fn the_stranded_photo(api: &Api) -> String {
    let list = api.list("").await;
    let photos = list["photos"].as_array().expect("photos");
    assert_eq!(photos.len(), 1, "{list}");
    assert_eq!(photos[0]["status"], "queued", "{list}");
    photos[0]["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn a_photo_whose_web_died_before_queueing_it_is_queued_by_the_next_web() {
    let app = spawn_app(BackendSet::Services).await;
    let web = |port: u16, extra: (&'static str, &str)| {
        let mut env = app.env();
        env.push(("GALLERY_LISTEN", format!("127.0.0.1:{port}")));
        env.push((extra.0, extra.1.to_owned()));
        Logged::start("info", &["web"], &env)
    };
    let port = free_port();
    let mut doomed = web(port, ("GALLERY_TEST_ABORT_BEFORE_QUEUE", "1"));
    assert!(doomed.wait_for("web listening").await, "{}", doomed.text());
    upload_into_a_dying_web(&mut doomed, &format!("http://127.0.0.1:{port}"), &app).await;
    let id = the_stranded_photo(&app).await;
    assert_eq!(app.queue_depth("").await, 0, "a job was queued after all");

    // Any web process sweeps; this one is told a photo is stranded after 1 s.
    let healer = web(free_port(), ("GALLERY_STRANDED_AFTER_S", "1"));
    assert!(healer.wait_for("web listening").await, "{}", healer.text());
    let photo = app.wait_done(&id).await;
    assert_eq!(photo["status"], "done", "{photo}");
    assert!(
        healer.wait_for("whose upload was cut off").await,
        "{}",
        healer.text()
    );
    assert_eq!(
        app.list("").await["photos"].as_array().map(Vec::len),
        Some(1)
    );
    wait_queue_empty(&app).await;
}

#[tokio::test]
async fn a_photo_whose_serve_died_before_queueing_it_is_queued_after_the_restart() {
    let data_dir = temp_data_dir();
    let port = free_port();
    let address = format!("http://127.0.0.1:{port}");
    let listen = format!("--listen=127.0.0.1:{port}");
    let dir = format!("--data-dir={}", data_dir.display());
    let args = ["serve", listen.as_str(), dir.as_str()];
    let [email, password] = admin_env();
    let with = |extra: (&'static str, &str)| {
        vec![
            email.clone(),
            password.clone(),
            (extra.0, extra.1.to_owned()),
        ]
    };

    let mut doomed = Logged::start(
        "info",
        &args,
        &with(("GALLERY_TEST_ABORT_BEFORE_QUEUE", "1")),
    );
    assert!(
        doomed.wait_for("gallery listening").await,
        "{}",
        doomed.text()
    );
    let api = Api::admin(&address).await;
    upload_into_a_dying_web(&mut doomed, &address, &api).await;

    // Read while nothing runs: recorded, `queued`, and still marked as never queued.
    let id = {
        let index = EmbeddedIndex::open_in(&data_dir).expect("index");
        let page = index.list(10, None).await.expect("list");
        assert_eq!(page.photos.len(), 1);
        assert_eq!(page.photos[0].status, Status::Queued);
        let marked = index.unqueued(chrono::Utc::now(), 10).await.expect("marks");
        assert_eq!(marked, [page.photos[0].id.clone()]);
        page.photos[0].id.to_string()
    };

    let restarted = Logged::start("info", &args, &with(("GALLERY_STRANDED_AFTER_S", "1")));
    assert!(
        restarted.wait_for("gallery listening").await,
        "{}",
        restarted.text()
    );
    let photo = api.wait_done(&id).await;
    assert_eq!(photo["status"], "done", "{photo}");
    assert!(
        restarted.wait_for("whose upload was cut off").await,
        "{}",
        restarted.text()
    );
    drop(restarted);
    let _ = std::fs::remove_dir_all(&data_dir);
}
