//! A frozen store (SIGSTOP: connections open, nothing answers) costs a request one deadline,
//! never a hang; a job the worker holds meanwhile is kept, not failed; and the gallery works
//! again once the store thaws, with no restart (#10 point 7).
//! The stores are the test's own instances; the machine's shared ones are left alone.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{jpeg_fixture, spawn_app_with, Api, BackendSet, TestApp};
use crate::own_services::{OwnRabbit, OwnRedis};

/// What the issue allows a request while a store is frozen (the deadline is 10 s).
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// Uploads one photo while a store is frozen: the answer is 503 `unavailable` naming `store`,
/// in time, and nothing of the photo is left.
async fn upload_refused_naming(app: &TestApp, store: &str) -> Duration {
    let started = Instant::now();
    let response = tokio::time::timeout(
        ANSWER_WITHIN * 2,
        app.upload(&[("frozen.jpg", jpeg_fixture(320, 240))], None),
    )
    .await
    .unwrap_or_else(|_| panic!("the upload hung while {store} was frozen"));
    let took = started.elapsed();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["code"], "unavailable", "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains(store), "{body}");
    assert!(
        took <= ANSWER_WITHIN,
        "answered after {took:?}, not within {ANSWER_WITHIN:?}"
    );
    took
}

/// Uploads until one is accepted (30 s at most) and waits for it to be processed; answers
/// how long after the thaw the first upload was accepted.
async fn works_again(api: &Api, thawed: Instant) -> Duration {
    for _ in 0..60 {
        let response = api
            .upload(&[("after.jpg", jpeg_fixture(320, 240))], None)
            .await;
        if response.status() == 202 {
            let took = thawed.elapsed();
            let body: Value = response.json().await.expect("JSON");
            let id = body["photos"][0]["id"].as_str().expect("id").to_owned();
            assert_eq!(api.wait_done(&id).await["status"], "done");
            return took;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("uploads never worked again after the thaw");
}

fn names(list: &Value) -> Vec<String> {
    list["photos"]
        .as_array()
        .expect("photos")
        .iter()
        .map(|photo| photo["filename"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_frozen_rabbitmq_or_redis_costs_a_deadline_not_a_hang() {
    let (rabbit, redis) = tokio::join!(OwnRabbit::start(), OwnRedis::start());
    let app = spawn_app_with(BackendSet::Services, |settings| {
        settings.backends.queue.amqp_url = Some(rabbit.url().into());
        if let Some(index) = settings.backends.redis.as_mut() {
            index.url = redis.url().into();
        }
        // Long enough to freeze a store while the worker holds a job.
        settings.worker.job_delay = Duration::from_millis(1500);
    })
    .await;

    // RabbitMQ frozen while the worker holds a job.
    let held = app
        .upload_ok("held.jpg", jpeg_fixture(320, 240), None)
        .await;
    app.wait_status(&held, &["processing"]).await;
    rabbit.freeze();
    let refused_by_rabbit = upload_refused_naming(&app, "RabbitMQ").await;
    // The gallery is still shown: listing needs no broker.
    assert_eq!(names(&app.list("").await), ["held.jpg"]);
    let thawed = Instant::now();
    rabbit.thaw();
    let rabbit_back = works_again(&app, thawed).await;
    assert_eq!(app.wait_done(&held).await["status"], "done");

    // Redis frozen while the worker holds a job: the job waits for it, at no attempt's cost.
    let held = app
        .upload_ok("held.jpg", jpeg_fixture(320, 240), None)
        .await;
    app.wait_status(&held, &["processing"]).await;
    redis.freeze();
    let refused_by_redis = upload_refused_naming(&app, "Redis").await;
    let thawed = Instant::now();
    redis.thaw();
    let redis_back = works_again(&app, thawed).await;
    let photo = app.wait_done(&held).await;
    assert_eq!(photo["status"], "done", "{photo}");
    let id = gallery::domain::PhotoId::parse(&held).expect("id");
    let record = app
        .backends
        .index
        .get(&id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(record.attempts, 1, "an outage cost the photo an attempt");

    // Neither refused upload left anything behind.
    assert_eq!(
        names(&app.list("").await),
        ["after.jpg", "held.jpg", "after.jpg", "held.jpg"]
    );
    eprintln!(
        "frozen RabbitMQ: 503 after {refused_by_rabbit:?}, uploads again {rabbit_back:?} after \
         the thaw; frozen Redis: 503 after {refused_by_redis:?}, again {redis_back:?} after"
    );
}
