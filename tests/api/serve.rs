//! `gallery serve` as a user runs it, a child process on a data dir: nothing but the binary
//! needed, data and pending jobs surviving a clean restart and a kill -9 mid-batch, the
//! services used when configured, and the split roles refusing the embedded backends.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{
    admin_env, jpeg_fixture, signal, spawn_web_only_with, stored_files, temp_data_dir, wait_exit,
    Api, BackendSet, Logged,
};

/// A `gallery serve` child process and the address it answers on.
pub struct Served {
    child: Child,
    pub api: Api,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// Starts `gallery serve` with nothing configured but `env` (and the tests' admin, created
/// at its first start), waits until it answers, and logs in as that admin.
pub async fn serve(data_dir: &Path, env: &[(&str, String)]) -> Served {
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_gallery"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("GALLERY_") {
            command.env_remove(name);
        }
    }
    let child = command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .envs(admin_env())
        .spawn()
        .expect("start gallery serve");
    let mut served = Served {
        child,
        api: Api::new(&format!("http://127.0.0.1:{port}")),
    };
    for _ in 0..200 {
        if let Ok(response) = served
            .api
            .client
            .get(served.api.url("/readyz"))
            .send()
            .await
        {
            if response.status() == 200 {
                served.api = Api::admin(&served.api.address).await;
                return served;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gallery serve did not become ready");
}

async fn listed_ids(api: &Api) -> Vec<String> {
    api.list("?limit=100").await["photos"]
        .as_array()
        .expect("photos")
        .iter()
        .map(|photo| photo["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn photos_and_pending_jobs_survive_a_clean_restart() {
    let data_dir = temp_data_dir();
    let slow = [
        ("GALLERY_WORKER_CONCURRENCY", "1".to_owned()),
        ("GALLERY_JOB_DELAY_MS", "1500".to_owned()),
    ];
    let mut first = serve(&data_dir, &slow).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let name = format!("clean-{n}.jpg");
        ids.push(
            first
                .api
                .upload_ok(&name, jpeg_fixture(400, 300), None)
                .await,
        );
    }
    first.api.wait_status(&ids[0], &["processing"]).await;
    // One job in hand, two waiting: SIGTERM lets the one in hand finish.
    signal(&first.child, "TERM");
    assert!(wait_exit(&mut first.child).await.success(), "clean exit");
    drop(first);

    let second = serve(&data_dir, &[]).await;
    assert_eq!(second.api.photo(&ids[0]).await["status"], "done");
    for id in &ids {
        let photo = second.api.wait_done(id).await;
        assert_eq!(photo["status"], "done", "{photo}");
        assert_eq!(photo["variants"]["thumb"]["width"], 320);
    }
    let mut listed = listed_ids(&second.api).await;
    listed.reverse();
    assert_eq!(listed, ids, "every photo listed once, newest first");
    drop(second);
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn after_kill_9_mid_batch_every_photo_finishes_exactly_once() {
    let data_dir = temp_data_dir();
    let slow = [
        ("GALLERY_WORKER_CONCURRENCY", "2".to_owned()),
        ("GALLERY_JOB_DELAY_MS", "400".to_owned()),
    ];
    let mut first = serve(&data_dir, &slow).await;
    let mut ids = Vec::new();
    for n in 0..8 {
        let name = format!("batch-{n}.jpg");
        ids.push(
            first
                .api
                .upload_ok(&name, jpeg_fixture(320, 240), None)
                .await,
        );
    }
    first.api.wait_done(&ids[0]).await;
    first.child.kill().expect("kill -9");
    let _ = first.child.wait();
    drop(first);

    let second = serve(&data_dir, &[]).await;
    for id in &ids {
        let photo = second.api.wait_done(id).await;
        assert_eq!(photo["status"], "done", "{photo}");
        assert!(photo.get("error").is_none_or(Value::is_null), "{photo}");
        assert_eq!(photo["variants"]["thumb"]["width"], 320);
    }
    let listed: BTreeSet<String> = listed_ids(&second.api).await.into_iter().collect();
    assert_eq!(
        listed,
        ids.iter().cloned().collect(),
        "no photo lost or doubled"
    );
    // Original, preview and thumb per photo, nothing else (no half-written leftovers).
    assert_eq!(stored_files(&data_dir).len(), ids.len() * 3);
    drop(second);
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn serve_uses_the_services_when_they_are_configured() {
    // An app on the services only to read this test's namespace back; it runs no worker.
    let services = spawn_web_only_with(BackendSet::Services, |_| {}).await;
    let data_dir = temp_data_dir();
    let served = serve(&data_dir, &services.env()).await;
    let id = served
        .api
        .upload_ok("shared.jpg", jpeg_fixture(400, 300), None)
        .await;
    assert_eq!(served.api.wait_done(&id).await["status"], "done");
    assert_eq!(
        services.object_keys().await.len(),
        3,
        "original and variants in S3"
    );
    assert_eq!(
        services.photo(&id).await["status"],
        "done",
        "metadata in Redis"
    );
    assert!(
        stored_files(&data_dir).is_empty(),
        "nothing written to the data dir"
    );
    drop(served);
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn split_roles_refuse_the_embedded_backends_and_say_why() {
    for role in ["web", "worker", "notifier"] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gallery"));
        for (name, _) in std::env::vars() {
            if name.starts_with("GALLERY_") {
                command.env_remove(name);
            }
        }
        let output = command
            .arg(role)
            .env("GALLERY_REDIS_URL", "redis://127.0.0.1:6379")
            .env("GALLERY_LOG", "error")
            .output()
            .expect("run gallery");
        assert!(
            !output.status.success(),
            "{role} started without S3 and RabbitMQ"
        );
        let said = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        for part in ["GALLERY_S3_ENDPOINT", "GALLERY_AMQP_URL", "gallery serve"] {
            assert!(said.contains(part), "{role} did not mention {part}: {said}");
        }
        // Exactly the missing ones: Redis was set.
        assert!(
            said.contains("set GALLERY_S3_ENDPOINT, GALLERY_AMQP_URL."),
            "{said}"
        );
    }
}

#[tokio::test]
async fn open_pages_do_not_hold_a_stop_up() {
    let data_dir = temp_data_dir();
    // A drain timeout far longer than the bound below: only ending the streams meets it.
    let served = serve(&data_dir, &[("GALLERY_SHUTDOWN_TIMEOUT_S", "60".into())]).await;
    let mut pages = Vec::new();
    for _ in 0..3 {
        let page = served
            .api
            .client
            .get(served.api.url("/api/events"))
            .send()
            .await
            .expect("events");
        assert_eq!(page.status(), 200);
        pages.push(page);
    }
    let mut served = served;
    let stopping = std::time::Instant::now();
    signal(&served.child, "TERM");
    let status = wait_exit(&mut served.child).await;
    let took = stopping.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(15),
        "stopping took {took:?}: the open streams held it up"
    );
    for page in pages {
        // Each stream was ended by the server, not cut: the body reads to its end.
        let body = tokio::time::timeout(Duration::from_secs(5), page.text())
            .await
            .expect("stream ended");
        assert!(body.expect("complete body").starts_with(": connected"));
    }
    eprintln!("gallery serve stopped in {took:?} with 3 pages open");
    let _ = std::fs::remove_dir_all(data_dir);
}

#[tokio::test]
async fn serve_does_not_crash_loop_on_a_photo_that_kills_it() {
    let data_dir = temp_data_dir();
    let port = free_port();
    let listen = format!("--listen=127.0.0.1:{port}");
    let dir = format!("--data-dir={}", data_dir.display());
    let args = ["serve", listen.as_str(), dir.as_str()];
    let [email, password] = admin_env();
    let slow = [
        ("GALLERY_JOB_DELAY_MS", "60000".to_owned()),
        email.clone(),
        password.clone(),
    ];
    let address = format!("http://127.0.0.1:{port}");
    let mut api = Api::new(&address);
    let mut id = None;
    for delivery in 1..=3 {
        let doomed = Logged::start("info", &args, &slow);
        assert!(
            doomed.wait_for("gallery listening").await,
            "{}",
            doomed.text()
        );
        if id.is_none() {
            api = Api::admin(&address).await;
            id = Some(
                api.upload_ok("poison.jpg", jpeg_fixture(640, 480), None)
                    .await,
            );
        }
        let started = format!("delivery={delivery}");
        assert!(doomed.wait_for(&started).await, "{}", doomed.text());
        drop(doomed); // kill -9 of the whole gallery
    }
    let id = id.expect("uploaded");
    let last = Logged::start("info", &args, &[]);
    assert!(last.wait_for("gallery listening").await, "{}", last.text());
    let photo = api.wait_status(&id, &["failed", "done"]).await;
    assert_eq!(photo["status"], "failed", "{photo}");
    assert_eq!(
        photo["error"],
        "processing stopped the worker 3 times; given up after 3 deliveries"
    );
    // And the gallery goes on: the next photo is processed as usual.
    let next = api
        .upload_ok("fine.jpg", jpeg_fixture(320, 240), None)
        .await;
    assert_eq!(api.wait_done(&next).await["status"], "done");
    drop(last);
    let _ = std::fs::remove_dir_all(&data_dir);
}
