//! The S3 store restarted in the middle of a batch (#12 point 5): the test's own s3s-fs is
//! killed while photos are being uploaded and processed, and started again a few seconds later
//! on the same port and data dir. Every photo answered 202 ends `done`, processed once; the
//! listing holds exactly those; an upload made while the store was away is answered 503 naming
//! it (and the client sends that photo again); and nothing is left half-written. And a photo
//! whose job comes round many times while the store is away is not given up. The machine's
//! shared S3 server is left alone; Redis and RabbitMQ are the shared ones, namespaced.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use gallery::domain::PhotoId;
use gallery::retry::RetryPolicy;
use serde_json::Value;

use crate::helpers::{jpeg_fixture, spawn_app_with, BackendSet, TestApp};
use crate::metrics::{scrape_when_done, Scrape};
use crate::own_services::OwnS3;

/// Photos in the batch, and how many are accepted before the store is killed.
const BATCH: usize = 30;
const KILLED_AFTER: usize = 10;
/// How long the store stays away.
const OUTAGE: Duration = Duration::from_secs(3);
/// A client's pause before it sends a refused photo again.
const CLIENT_RETRY: Duration = Duration::from_millis(200);

/// The batch's photos: small, and each different (sizes differ).
fn photo(n: usize) -> (String, Vec<u8>) {
    let side = 48 + 4 * n as u32;
    (format!("batch-{n:02}.jpg"), jpeg_fixture(side + 16, side))
}

/// What the uploads saw.
struct Batch {
    /// (id, name, bytes) of every photo answered 202.
    accepted: Vec<(String, String, Vec<u8>)>,
    /// Uploads answered 503 while the store was away.
    refused: usize,
    /// When the store was killed, when it listened again, and when an upload was next accepted.
    killed: Instant,
    back: Instant,
    accepted_again: Instant,
}

/// Uploads the batch one photo at a time, as a client does: a photo refused with 503 is sent
/// again after a pause. After the KILLED_AFTER-th photo is accepted, the store is killed, and
/// started again OUTAGE later, while the uploads go on.
async fn upload_through_a_restart(app: &TestApp, s3: OwnS3) -> (Batch, OwnS3) {
    let mut accepted = Vec::new();
    let mut refused = 0;
    let mut restart = None;
    let mut killed = None;
    let mut accepted_again = None;
    let mut s3 = Some(s3);
    for n in 0..BATCH {
        let (name, bytes) = photo(n);
        loop {
            let response = app.upload(&[(name.as_str(), bytes.clone())], None).await;
            let status = response.status();
            let body: Value = response.json().await.expect("JSON answer");
            if status == 202 {
                let id = body["photos"][0]["id"].as_str().expect("id").to_owned();
                accepted.push((id, name.clone(), bytes.clone()));
                if killed.is_some() && accepted_again.is_none() {
                    accepted_again = Some(Instant::now());
                }
                break;
            }
            // Refused only while the store is away, and saying so.
            assert!(killed.is_some(), "{name} refused with the store up: {body}");
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["code"], "unavailable");
            assert_eq!(
                body["error"],
                format!("{name}: storing the original failed (S3); try again later")
            );
            refused += 1;
            tokio::time::sleep(CLIENT_RETRY).await;
        }
        if accepted.len() == KILLED_AFTER {
            let mut server = s3.take().expect("the store");
            server.kill();
            killed = Some(Instant::now());
            restart = Some(tokio::spawn(async move {
                tokio::time::sleep(OUTAGE).await;
                server.restart().await;
                (server, Instant::now())
            }));
        }
    }
    let (s3, back) = restart
        .expect("the store was killed")
        .await
        .expect("restart");
    let batch = Batch {
        accepted,
        refused,
        killed: killed.expect("killed"),
        back,
        accepted_again: accepted_again.expect("accepted after the restart"),
    };
    (batch, s3)
}

#[tokio::test]
async fn a_restart_of_the_s3_store_mid_batch_loses_nothing_and_doubles_nothing() {
    let s3 = OwnS3::start().await;
    let app = spawn_app_with(BackendSet::Services, |settings| {
        settings.backends.s3.as_mut().expect("S3 settings").endpoint = s3.endpoint();
        // Jobs wait in the queue and in the worker's hands when the store goes away.
        settings.worker.job_delay = Duration::from_millis(500);
        settings.worker.retry = RetryPolicy::doubling(Duration::from_millis(250));
    })
    .await;
    let metrics_url = app.url("/metrics");
    let (batch, s3) = upload_through_a_restart(&app, s3).await;
    assert_eq!(batch.accepted.len(), BATCH);
    assert!(
        batch.refused >= 1,
        "no upload was made while the store was away"
    );

    // Every accepted photo is processed, on its first attempt: the outage cost none. First
    // those accepted before the kill, whose jobs were queued or held when the store went.
    let mut retried_done = None;
    for (n, (id, name, _)) in batch.accepted.iter().enumerate() {
        let photo = app.wait_done(id).await;
        assert_eq!(photo["status"], "done", "{name}: {photo}");
        let record = app
            .backends
            .index
            .get(&PhotoId::parse(id).expect("id"))
            .await
            .expect("index answers")
            .expect("recorded");
        assert_eq!(record.attempts, 1, "{name} lost an attempt to the outage");
        if n + 1 == KILLED_AFTER {
            retried_done = Some(Instant::now());
        }
    }
    let all_done = Instant::now();
    // Processed once each, and some of them met the outage (the worker path was exercised).
    let scrape = scrape_when_done(&metrics_url, BATCH as f64).await;
    assert_eq!(scrape.value("gallery_jobs_done_total", &[]), BATCH as f64);
    let outage_failures = scrape.value("gallery_jobs_failed_total", &[("reason", "outage")]);
    assert!(outage_failures >= 1.0, "no job met the outage");
    assert_eq!(scrape.value("gallery_jobs_dead_lettered_total", &[]), 0.0);
    for queue in ["", ".retry", ".dead"] {
        assert_eq!(app.queue_depth(queue).await, 0, "queue {queue:?}");
    }

    // The listing holds exactly the accepted photos, once each.
    let listed = app.list("?limit=100").await;
    let listed: Vec<String> = listed["photos"]
        .as_array()
        .expect("photos")
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_owned())
        .collect();
    let ids: BTreeSet<String> = batch.accepted.iter().map(|(id, _, _)| id.clone()).collect();
    assert_eq!(listed.len(), BATCH, "{listed:?}");
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), ids);

    // Nothing half-written: the bucket holds each photo's original, byte for byte, and its
    // variants, and nothing else; the server has no partial file left.
    let mut expected_keys: Vec<String> = ids
        .iter()
        .flat_map(|id| {
            ["original", "preview", "thumb"].map(|object| format!("photos/{id}/{object}"))
        })
        .collect();
    expected_keys.sort();
    assert_eq!(app.object_keys().await, expected_keys);
    for (id, name, bytes) in &batch.accepted {
        let (status, _, stored) = app.get_bytes(&format!("/api/photos/{id}/original")).await;
        assert_eq!(status, 200, "{name}");
        assert!(
            stored == *bytes,
            "{name}'s original differs from what was sent"
        );
    }
    assert_eq!(s3.partial_files(), Vec::<String>::new());

    eprintln!(
        "S3 restart mid-batch: the store was away {:?} (killed, then listening again); {} \
         uploads answered 503 meanwhile; uploads refused for {:?} in all (kill to the next 202); \
         {} job attempts met the outage (retried at no cost); the photos accepted before the \
         kill all done {:?} after the store was back; the whole batch {:?} after",
        batch.back - batch.killed,
        batch.refused,
        batch.accepted_again - batch.killed,
        outage_failures,
        retried_done
            .expect("counted")
            .saturating_duration_since(batch.back),
        all_done.saturating_duration_since(batch.back),
    );
}

#[tokio::test]
async fn a_photo_waiting_through_a_long_s3_outage_is_not_given_up() {
    let mut s3 = OwnS3::start().await;
    let app = spawn_app_with(BackendSet::Services, |settings| {
        settings.backends.s3.as_mut().expect("S3 settings").endpoint = s3.endpoint();
        // The worker holds the job a moment before fetching its original: the store goes then.
        settings.worker.job_delay = Duration::from_millis(700);
        settings.worker.retry = RetryPolicy::doubling(Duration::from_millis(100));
    })
    .await;
    let metrics_url = app.url("/metrics");
    let id = app
        .upload_ok("patient.jpg", jpeg_fixture(320, 240), None)
        .await;
    app.wait_status(&id, &["processing"]).await;
    s3.kill();
    // The job comes round more times than a photo may be attempted while the store is away.
    let rounds = f64::from(app.settings.worker.max_attempts + 2);
    let mut waited = 0;
    loop {
        let scrape = Scrape::of(&metrics_url).await;
        let retried = scrape.value("gallery_jobs_failed_total", &[("reason", "outage")]);
        if retried >= rounds || app.photo(&id).await["status"] == "failed" {
            break;
        }
        assert!(waited < 600, "the job came round {retried} times in 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    s3.restart().await;
    let photo = app.wait_done(&id).await;
    assert_eq!(photo["status"], "done", "{photo}");
    let record = app
        .backends
        .index
        .get(&PhotoId::parse(&id).expect("id"))
        .await
        .expect("index answers")
        .expect("recorded");
    assert_eq!(record.attempts, 1, "the outage cost an attempt");
}
