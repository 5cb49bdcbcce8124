//! The project's nginx.conf, run with Debian's nginx on loopback in front of the real
//! `gallery web`: uploads near and over the limit, the upload rate limit's answer, variants
//! never cached (a private photo never reaches an anonymous caller, a deleted photo is gone at
//! once), the page's cookie working through it, unbuffered events, an access log that joins
//! the app's by request id and never holds a share or invite token.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::helpers::{noisy_jpeg_fixture, spawn_app_with, BackendSet, TestApp};

const NGINX: &str = "/usr/sbin/nginx";

struct Gateway {
    address: String,
    process: Child,
    dir: TempDir,
}

impl Gateway {
    /// What nginx has logged so far, one request a line.
    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("access.log")).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // TERM, not KILL: a killed master leaves its workers running (holding the port and
        // the test harness's output pipe); on TERM it stops them first.
        let _ = Command::new("kill")
            .args(["-TERM", &self.process.id().to_string()])
            .status();
        let _ = self.process.wait();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The shipped config with only the lines marked `# test:` pointed at this machine.
fn render(config: &str, upstream_port: u16, listen_port: u16, dir: &Path) -> String {
    let dir = dir.display();
    config
        .lines()
        .map(|line| {
            let Some((_, marker)) = line.split_once("# test: ") else {
                return line.to_owned();
            };
            let indent = &line[..line.len() - line.trim_start().len()];
            match marker.trim() {
                "pid" => format!("pid {dir}/nginx.pid;"),
                "upstream" => format!("{indent}server 127.0.0.1:{upstream_port};"),
                "listen" => format!("{indent}listen 127.0.0.1:{listen_port};"),
                "access log" => format!("{indent}access_log {dir}/access.log gallery;"),
                "temp" => line
                    .split('#')
                    .next()
                    .unwrap_or(line)
                    .replace("/tmp/", &format!("{dir}/")),
                other => panic!("unknown test marker {other:?} in nginx.conf"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn start_gateway(app: &TestApp) -> Gateway {
    start_gateway_to(app.port).await
}

/// nginx with the shipped config in front of whatever listens on `upstream_port` (or nothing).
async fn start_gateway_to(upstream_port: u16) -> Gateway {
    assert!(
        Path::new(NGINX).exists(),
        "nginx is not installed: run `make test-deps` (apt-get install nginx-light)"
    );
    let dir = std::env::temp_dir().join(format!("gallery-nginx-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // nginx workers drop root to `nobody`: they must be able to write here.
    let _ = Command::new("chmod")
        .args(["0777", &dir.display().to_string()])
        .status();
    let listen_port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/nginx.conf"),
    )
    .expect("nginx.conf");
    let config = dir.join("nginx.conf");
    std::fs::write(&config, render(&shipped, upstream_port, listen_port, &dir))
        .expect("write config");
    let check = Command::new(NGINX)
        .args(["-t", "-q", "-c"])
        .arg(&config)
        .output()
        .expect("nginx -t");
    assert!(
        check.status.success(),
        "nginx rejects the config: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let process = Command::new(NGINX)
        .args(["-c"])
        .arg(&config)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .spawn()
        .expect("start nginx");
    // Owned from here on, so nginx is stopped whatever happens next.
    let gateway = Gateway {
        address: format!("http://127.0.0.1:{listen_port}"),
        process,
        dir: TempDir(dir),
    };
    for _ in 0..100 {
        if reqwest::get(format!("{}/nginx-health", gateway.address))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return gateway;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nginx did not start");
}

async fn upload(gateway: &Gateway, app: &TestApp, name: &str, bytes: Vec<u8>) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    );
    app.client
        .post(format!("{}/api/photos", gateway.address))
        .multipart(form)
        .send()
        .await
        .expect("upload through nginx")
}

#[tokio::test]
async fn uploads_near_the_limit_pass_and_over_it_get_413() {
    let limit = 3 * 1024 * 1024;
    let app = spawn_app_with(BackendSet::Services, |s| s.limits.max_upload_bytes = limit).await;
    let gateway = start_gateway(&app).await;
    let near = noisy_jpeg_fixture(1200, 1000);
    assert!(
        near.len() as u64 > limit * 2 / 3 && (near.len() as u64) < limit,
        "fixture is {} bytes",
        near.len()
    );
    let response = upload(&gateway, &app, "near.jpg", near).await;
    assert_eq!(response.status(), 202);

    let over = noisy_jpeg_fixture(1800, 1500);
    assert!(over.len() as u64 > limit);
    let response = upload(&gateway, &app, "over.jpg", over).await;
    assert_eq!(response.status(), 413);
    let body: Value = response
        .json()
        .await
        .expect("the app's JSON error comes through");
    assert_eq!(body["code"], "too_large");
}

#[tokio::test]
async fn variants_are_private_uncached_and_a_deleted_photo_is_gone_at_once() {
    let app = spawn_app_with(BackendSet::Services, |_| {}).await;
    let gateway = start_gateway(&app).await;
    let response = upload(&gateway, &app, "passed.jpg", noisy_jpeg_fixture(600, 400)).await;
    let body: Value = response.json().await.expect("json");
    let id = body["photos"][0]["id"].as_str().expect("id");
    let photo = app.wait_done(id).await;
    let url = format!(
        "{}{}",
        gateway.address,
        photo["variants"]["thumb"]["url"].as_str().expect("url")
    );
    let first = app.client.get(&url).send().await.expect("get");
    assert_eq!(first.status(), 200);
    // The app's own caching headers reach the browser; the gateway adds its security headers once.
    assert_eq!(
        first.headers()["cache-control"],
        "private, max-age=31536000, immutable"
    );
    assert!(first.headers().get("x-cache-status").is_none());
    assert_eq!(first.headers()["x-frame-options"], "DENY");
    assert_eq!(
        first
            .headers()
            .get_all("x-content-type-options")
            .iter()
            .count(),
        1
    );
    // Just loaded by a logged-in person, the same URL is still refused to anyone else.
    let anonymous = reqwest::get(&url).await.expect("anonymous get");
    assert_eq!(anonymous.status(), 401, "served to a caller without access");

    // The page's way: log in through the gateway, delete by cookie from the gateway's origin
    // (nginx passes the Host with its port, which the app compares with Origin).
    let gateway_api = crate::helpers::Api::new(&gateway.address);
    let cookie = gateway_api
        .log_in(crate::helpers::ADMIN_EMAIL, crate::helpers::ADMIN_PASSWORD)
        .await
        .expect("login through nginx");
    let deleted = gateway_api
        .client
        .delete(format!("{}/api/photos/{id}", gateway.address))
        .header("cookie", &cookie)
        .header("origin", &gateway.address)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    for variant in ["thumb", "preview"] {
        let url = format!(
            "{}{}",
            gateway.address,
            photo["variants"][variant]["url"].as_str().expect("url")
        );
        let after = app.client.get(&url).send().await.expect("get");
        assert_eq!(after.status(), 404, "{variant} served after DELETE");
        let after = reqwest::get(&url).await.expect("anonymous get");
        assert_eq!(after.status(), 401, "{variant} served after DELETE");
    }
}

#[tokio::test]
async fn uploads_over_the_rate_limit_get_429_with_retry_after_in_the_api_shape() {
    let app = spawn_app_with(BackendSet::Services, |_| {}).await;
    let gateway = start_gateway(&app).await;
    // 2 uploads/s with a burst of 20: 30 uploads at once overflow it. (One-byte files: the app
    // refuses them at once with its own 415, so only the gateway's limit is measured.)
    let mut limited = None;
    for n in 0..30 {
        let response = upload(&gateway, &app, &format!("burst-{n}.txt"), b"x".to_vec()).await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let response = limited.expect("no 429 after 30 uploads in a burst");
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("application/json"));
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["code"], "rate_limited");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    // Other requests are never limited.
    let listing = app
        .client
        .get(format!("{}/api/photos", gateway.address))
        .send()
        .await
        .expect("list");
    assert_eq!(listing.status(), 200);
}

#[tokio::test]
async fn server_sent_events_are_not_buffered() {
    let app = spawn_app_with(BackendSet::Services, |_| {}).await;
    let gateway = start_gateway(&app).await;
    let response = app
        .client
        .get(format!("{}/api/events", gateway.address))
        .send()
        .await
        .expect("events");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    // A few bytes, far below any buffer size: they only arrive if nothing buffers them.
    let first = tokio::time::timeout(Duration::from_secs(3), body.next())
        .await
        .expect("first event without delay");
    let first = first.expect("chunk").expect("bytes");
    assert!(String::from_utf8_lossy(&first).starts_with(": connected"));

    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = upload(&gateway, &app, "live.jpg", noisy_jpeg_fixture(64, 64)).await;
    assert_eq!(response.status(), 202);
    let event = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("event without delay");
    let event = String::from_utf8_lossy(&event.expect("chunk").expect("bytes")).into_owned();
    assert!(event.contains("photo.queued"), "{event}");
}

#[tokio::test]
async fn the_gateways_own_refusals_speak_the_api_shape() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // Nothing listens upstream: nginx's own 502 is the API's JSON error.
    let dead = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let gateway = start_gateway_to(dead).await;
    for path in ["/api/photos", "/api/photos/some-id", "/api/events"] {
        let response = reqwest::get(format!("{}{path}", gateway.address))
            .await
            .expect("through nginx");
        assert_eq!(response.status(), 502, "{path}");
        assert!(response.headers().contains_key("retry-after"), "{path}");
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body["code"], "unavailable", "{path}");
    }

    // A body over the gateway's own cap is refused from its headers alone, in the same shape.
    let address = gateway.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let request = "POST /api/photos HTTP/1.1\r\nHost: gallery\r\n\
                   Content-Type: multipart/form-data; boundary=x\r\n\
                   Content-Length: 300000000\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.expect("send");
    // nginx answers at once but keeps the connection open a while to drain the body it
    // refused, so read until the answer is complete rather than to the end of the stream.
    let mut answer = Vec::new();
    let complete = |answer: &[u8]| String::from_utf8_lossy(answer).trim_end().ends_with('}');
    while !complete(&answer) {
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("answered in time")
            .expect("read");
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..read]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body: Value = serde_json::from_str(body.trim()).expect("a JSON body");
    assert_eq!(body["code"], "too_large");
}

#[tokio::test]
async fn metrics_are_never_served_through_the_gateway() {
    let app = spawn_app_with(BackendSet::Services, |_| {}).await;
    let gateway = start_gateway(&app).await;
    // Straight to the app (inside the deployment, where Prometheus scrapes), they are there.
    let direct = reqwest::get(app.url("/metrics")).await.expect("direct");
    assert_eq!(direct.status(), 200);
    assert!(direct
        .text()
        .await
        .expect("body")
        .contains("gallery_build_info"));
    // Through the gateway, under every spelling nginx folds into the same path.
    for path in [
        "/metrics",
        "/metrics?format=text",
        "//metrics",
        "/%6Detrics",
        "/./metrics",
    ] {
        let response = app
            .client
            .get(format!("{}{path}", gateway.address))
            .send()
            .await
            .expect("through nginx");
        assert_eq!(response.status(), 404, "{path}");
        let body = response.text().await.expect("body");
        assert!(!body.contains("gallery_"), "{path}: {body}");
    }
}

#[tokio::test]
async fn the_access_log_masks_tokens_and_carries_the_request_id() {
    let app = spawn_app_with(BackendSet::Services, |_| {}).await;
    let gateway = start_gateway(&app).await;
    let listing = app
        .client
        .get(format!("{}/api/photos", gateway.address))
        .send()
        .await
        .expect("through nginx");
    assert_eq!(listing.status(), 200);
    let request_id = listing
        .headers()
        .get("x-request-id")
        .and_then(|id| id.to_str().ok())
        .expect("an X-Request-Id")
        .to_owned();
    // Unknown tokens: the app refuses them, but the address reaches the log all the same.
    let secret_paths = [
        ("/s/sharetoken1secret", "/s/***"),
        ("/s/sharetoken2secret/photo?x=1", "/s/***/photo?x=1"),
        ("//s//sharetoken3secret/preview", "/s/***/preview"),
        ("/%73/sharetoken4secret", "/s/***"),
        ("/invite/invitetoken5secret", "/invite/***"),
        ("/api/invites/invitetoken6secret", "/api/invites/***"),
    ];
    for (path, _) in secret_paths {
        app.client
            .get(format!("{}{path}", gateway.address))
            .send()
            .await
            .expect("through nginx");
    }
    // nginx writes a request's line after its answer has gone out: wait for all of them (the
    // listing's and one a secret path).
    let mut log = gateway.access_log();
    for _ in 0..100 {
        if log.lines().count() > secret_paths.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        log = gateway.access_log();
    }
    assert!(
        log.lines().any(|line| line.contains("\"GET /api/photos ")
            && line.contains(&format!("request_id={request_id}"))),
        "the listing's line carries the app's request id {request_id}:\n{log}"
    );
    assert!(!log.contains("secret"), "a token reached the log:\n{log}");
    for (path, logged) in secret_paths {
        assert!(
            log.contains(&format!("\"GET {logged} HTTP/1.1\"")),
            "{path} is logged as {logged}:\n{log}"
        );
    }
}
