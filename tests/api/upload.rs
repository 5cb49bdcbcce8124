//! `POST /api/photos`: what is accepted, what is refused and with which error, and that a
//! refused file leaves nothing behind (no object, no metadata, no job). Hostile inputs (memory
//! bombs, stuffed metadata and names) come from `gallery::resize::hostile`.

use gallery::resize::hostile;
use serde_json::Value;

use crate::helpers::{
    jpeg_fixture, png_rgba_fixture, spawn_app, spawn_web_only_with, BackendSet, TestApp,
};

/// Nothing stored anywhere for this test's namespace.
async fn assert_nothing_left(app: &TestApp) {
    let listed = app.list("").await;
    assert_eq!(
        listed["photos"],
        serde_json::json!([]),
        "metadata left behind"
    );
    assert_eq!(
        app.object_keys().await,
        Vec::<String>::new(),
        "objects left behind"
    );
    assert_eq!(app.queue_depth("").await, 0, "job left behind");
}

async fn assert_rejected(response: reqwest::Response, status: u16, code: &str, message_part: &str) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("json error body");
    assert_eq!(body["code"], code, "{body}");
    let message = body["error"].as_str().expect("error message");
    assert!(
        message.contains(message_part),
        "error {message:?} does not mention {message_part:?}"
    );
}

async fn accepted_upload_stores_original_metadata_and_job(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    let jpeg = jpeg_fixture(64, 48);
    let response = app
        .upload(&[("cat.jpg", jpeg.clone())], Some("rotate90"))
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("json");
    let id = body["photos"][0]["id"].as_str().expect("id");
    assert_eq!(body["photos"][0]["status"], "queued");
    assert_eq!(body["photos"][0]["url"], format!("/api/photos/{id}"));
    assert_eq!(body["rejected"], serde_json::json!([]));

    let photo = app.photo(id).await;
    assert_eq!(photo["filename"], "cat.jpg");
    assert_eq!(photo["content_type"], "image/jpeg");
    assert_eq!(photo["bytes"], jpeg.len());
    assert_eq!(photo["ops"], serde_json::json!(["rotate90"]));
    assert_eq!(photo["status"], "queued");
    assert_eq!(
        app.object_keys().await,
        vec![format!("photos/{id}/original")]
    );
    assert_eq!(app.queue_depth("").await, 1);
    let (status, _, original) = app.get_bytes(&format!("/api/photos/{id}/original")).await;
    assert_eq!(status, 200);
    assert_eq!(original, jpeg, "original is stored byte for byte");
}

/// A valid JPEG of about `bytes` bytes: a small image followed by zeros (ignored by decoders).
fn padded_jpeg(bytes: usize) -> Vec<u8> {
    let mut jpeg = jpeg_fixture(64, 48);
    jpeg.resize(bytes, 0);
    jpeg
}

async fn a_large_image_is_stored_byte_for_byte(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    // Larger than an S3 multipart part (8 MiB) and than the head read to check it (4 MiB).
    let mut jpeg = padded_jpeg(20 << 20);
    let tail = jpeg.len() - 1000;
    for (n, byte) in jpeg[tail..].iter_mut().enumerate() {
        *byte = n as u8;
    }
    let id = app.upload_ok("large.jpg", jpeg.clone(), None).await;
    assert_eq!(app.photo(&id).await["bytes"], jpeg.len());
    let (status, headers, original) = app.get_bytes(&format!("/api/photos/{id}/original")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert!(original == jpeg, "the original differs from the upload");
    let spool = app.settings.backends.data_dir.join("spool");
    let left = std::fs::read_dir(spool).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "spooled files left");
}

/// A TCP proxy to `upstream` (host:port) that cuts each connection once the client has sent
/// `budget` bytes through it: an S3 that fails half way through a large upload.
async fn cutting_proxy(upstream: String, budget: u64) -> String {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (client_read, mut client_write) = client.split();
                let (mut server_read, mut server_write) = server.split();
                let mut limited = client_read.take(budget);
                // Whichever ends first (the budget, or either side closing) ends both.
                tokio::select! {
                    _ = tokio::io::copy(&mut limited, &mut server_write) => {}
                    _ = tokio::io::copy(&mut server_read, &mut client_write) => {}
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

async fn a_failed_store_leaves_nothing(set: BackendSet) {
    let app = match set {
        BackendSet::Services => {
            let s3 = crate::helpers::s3_endpoint();
            let upstream = s3.trim_start_matches("http://").trim_end_matches('/');
            let proxy = cutting_proxy(upstream.to_owned(), 1 << 20).await;
            spawn_web_only_with(set, |s| {
                if let Some(s3) = s.backends.s3.as_mut() {
                    s3.endpoint = proxy;
                }
            })
            .await
        }
        BackendSet::Embedded => {
            let app = spawn_web_only_with(set, |_| {}).await;
            // A file where the photos' directory goes: no object can be written.
            let objects = app.settings.backends.data_dir.join("objects");
            std::fs::write(objects.join("photos"), b"in the way").expect("block");
            app
        }
    };
    let response = app.upload(&[("cut.jpg", padded_jpeg(4 << 20))], None).await;
    assert_rejected(response, 503, "unavailable", "storing the original").await;
    assert_eq!(app.list("").await["photos"], serde_json::json!([]));
    assert_eq!(app.queue_depth("").await, 0, "job left behind");
    let objects: Vec<String> = app
        .object_keys()
        .await
        .into_iter()
        .filter(|key| key.starts_with("photos/"))
        .collect();
    assert_eq!(objects, Vec::<String>::new(), "objects left behind");
}

async fn unsupported_type_is_415_and_leaves_nothing(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    let response = app
        .upload(
            &[("notes.jpg", b"just some text, named like a photo".to_vec())],
            None,
        )
        .await;
    assert_rejected(response, 415, "unsupported_type", "JPEG, PNG or WebP").await;
    assert_nothing_left(&app).await;
}

async fn oversized_file_is_413_and_leaves_nothing(set: BackendSet) {
    let app = spawn_web_only_with(set, |s| s.limits.max_upload_bytes = 4_000).await;
    let big = jpeg_fixture(600, 600);
    assert!(big.len() > 4_000, "fixture is {} bytes", big.len());
    let response = app.upload(&[("big.jpg", big)], None).await;
    assert_rejected(response, 413, "too_large", "4000 bytes").await;
    assert_nothing_left(&app).await;
}

async fn too_many_pixels_is_422_from_the_header_and_leaves_nothing(set: BackendSet) {
    let app = spawn_web_only_with(set, |s| s.limits.max_pixels = 10_000).await;
    let response = app
        .upload(&[("wide.png", png_rgba_fixture(200, 100))], None)
        .await;
    assert_rejected(response, 422, "too_many_pixels", "20000 pixels").await;
    assert_nothing_left(&app).await;
}

async fn too_large_to_decode_is_422_from_the_header_and_leaves_nothing(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    // 800 MB of 16-bit RGBA pixels (plus the 8-bit copy) in a 1 MiB file: under the pixel
    // limit, over the default 512 MiB decode budget.
    let bomb = hostile::png_rgba16_zeros(10_000, 10_000);
    let response = app.upload(&[("bomb.png", bomb)], None).await;
    assert_rejected(
        response,
        422,
        "too_large_to_decode",
        "needs 1200000000 bytes (1145 MiB) of memory to decode, more than the limit of 536870912 bytes (512 MiB)",
    )
    .await;
    assert_nothing_left(&app).await;

    let app = spawn_web_only_with(set, |s| s.limits.max_decode_bytes = 10_000).await;
    let response = app
        .upload(&[("small.png", png_rgba_fixture(100, 100))], None)
        .await;
    assert_rejected(response, 422, "too_large_to_decode", "limit of 10000 bytes").await;
    assert_nothing_left(&app).await;
}

async fn png_metadata_bomb_is_422_and_leaves_nothing(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    // 1×1 pixel, 1 MiB of file, an iCCP chunk that inflates to 1 GiB.
    let bomb = hostile::png_iccp_bomb(1024);
    let response = app.upload(&[("icc.png", bomb)], None).await;
    assert_rejected(response, 422, "bad_image", "iCCP chunk").await;
    assert_nothing_left(&app).await;
}

async fn file_names_are_cleaned(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    // Long, but within the 8 KiB a part's headers may take.
    let long = format!("{}.jpg", "a".repeat(6000));
    let id = app.upload_ok(&long, jpeg_fixture(16, 16), None).await;
    let stored = app.photo(&id).await["filename"]
        .as_str()
        .expect("filename")
        .to_owned();
    assert_eq!(stored, "a".repeat(255), "cut to 255 bytes");

    // Bidi overrides and isolates, a mark, a tab (the one control a header can carry as is),
    // padding. (A newline cannot travel in a part header; `FileName`'s own tests cover it.)
    let id = app
        .upload_ok(
            "  evil\u{202E}gpj\u{2066}.exe\u{200F}\t.jpg ",
            jpeg_fixture(16, 16),
            None,
        )
        .await;
    assert_eq!(app.photo(&id).await["filename"], "evilgpj.exe.jpg");
    let listed = app.list("").await;
    let names: Vec<&str> = listed["photos"]
        .as_array()
        .expect("photos")
        .iter()
        .filter_map(|p| p["filename"].as_str())
        .collect();
    assert_eq!(names, ["evilgpj.exe.jpg", "a".repeat(255).as_str()]);

    // A name past what a part's headers may take ends the request there.
    let endless = format!("{}.jpg", "a".repeat(1 << 20));
    let response = app.upload(&[(&endless, jpeg_fixture(16, 16))], None).await;
    assert_rejected(response, 400, "bad_multipart", "8192 bytes").await;

    // Nothing left to name: "unnamed"; a rejected file is named cleaned too.
    let response = app
        .upload(&[("\u{202E}\u{2066}\t", b"not an image".to_vec())], None)
        .await;
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["rejected"][0]["filename"], "unnamed");
}

async fn truncated_header_is_422(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    let jpeg = jpeg_fixture(64, 64);
    let response = app.upload(&[("cut.jpg", jpeg[..20].to_vec())], None).await;
    assert_rejected(response, 422, "bad_image", "header").await;
    assert_nothing_left(&app).await;
}

async fn unknown_op_is_400_and_stores_nothing(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    let response = app
        .upload(&[("a.jpg", jpeg_fixture(32, 32))], Some("rotate90,sepia"))
        .await;
    assert_rejected(response, 400, "unknown_op", "'sepia'").await;
    assert_nothing_left(&app).await;
}

async fn request_without_file_is_400(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    let form = reqwest::multipart::Form::new().text("ops", "grayscale");
    let response = app
        .client
        .post(app.url("/api/photos"))
        .multipart(form)
        .send()
        .await
        .expect("post");
    assert_rejected(response, 400, "no_file", "'file'").await;
    let response = app
        .client
        .post(app.url("/api/photos"))
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(
        response.status(),
        400,
        "a non-multipart body is a bad request"
    );
}

async fn mixed_batch_accepts_the_good_and_names_the_bad(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    let files = [
        ("good.jpg", jpeg_fixture(40, 30)),
        ("bad.gif", b"GIF89a not supported".to_vec()),
        ("alpha.png", png_rgba_fixture(20, 20)),
    ];
    let response = app.upload(&files, None).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["photos"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["rejected"][0]["filename"], "bad.gif");
    assert_eq!(body["rejected"][0]["code"], "unsupported_type");
    assert_eq!(app.queue_depth("").await, 2);
    assert_eq!(app.object_keys().await.len(), 2);
}

/// Every photo in the gallery, page after page.
async fn every_photo(app: &TestApp) -> Vec<Value> {
    let mut photos = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app.list(&format!("?limit=100&cursor={cursor}")).await;
        photos.extend(page["photos"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return photos,
        }
    }
}

/// A whole 32-file upload sent, then the connection reset before the answer: whatever the
/// server had accepted must be complete (stored, recorded, queued, then processed), never
/// left `queued` with no job; whatever it had not must leave nothing behind.
async fn uploads_cut_off_by_the_client_leave_nothing_half_done(set: BackendSet) {
    use tokio::io::AsyncWriteExt;

    let app = spawn_app(set).await;
    let jpeg = jpeg_fixture(64, 48);
    let boundary = "gallery-reset-boundary";
    let mut body = Vec::new();
    for n in 0..32 {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
                 filename=\"cut-{n}.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&jpeg);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST /api/photos HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; \
         boundary={boundary}\r\nContent-Length: {}\r\nAuthorization: Bearer {}\r\n\r\n",
        body.len(),
        app.token.as_deref().expect("the app's token")
    );
    // Ten rounds with a head start of 0 to 45 ms. A reset that lands before the server read
    // the body discards it (nothing to accept, nothing to check), which on a loaded machine
    // can be every one of those; then the head start doubles, up to 3.2 s, until the server
    // recorded something, so the files checked below are ones a reset really cut into.
    for round in 0..17u32 {
        if round >= 10 && !every_photo(&app).await.is_empty() {
            break;
        }
        let head_start = if round < 10 {
            5 * u64::from(round)
        } else {
            50 << (round - 10)
        };
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
            .await
            .expect("connect");
        stream.write_all(head.as_bytes()).await.expect("head");
        stream.write_all(&body).await.expect("body");
        // Give the server the head start, then reset (RST, not FIN) mid-ingest.
        tokio::time::sleep(std::time::Duration::from_millis(head_start)).await;
        stream.set_zero_linger().expect("linger");
        drop(stream);
    }
    // Every photo the server recorded finishes; none waits forever for a job. Waited until
    // the objects match the records too: an ingest the reset did not stop may still be
    // between storing its original and recording it (its own task, with an fsync or two).
    let mut photos = Vec::new();
    for _ in 0..600 {
        photos = every_photo(&app).await;
        // Nothing recorded yet is not settled: under load the first ingest may not have
        // reached the index when this first looks.
        let settled = !photos.is_empty()
            && photos.iter().all(|photo| photo["status"] == "done")
            && app.object_keys().await.len() == photos.len() * 3;
        if settled {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let stuck: Vec<&Value> = photos.iter().filter(|p| p["status"] != "done").collect();
    assert!(stuck.is_empty(), "photos never finished: {stuck:?}");
    // Nothing half-written: three objects (original, preview, thumb) per recorded photo.
    let all = photos.len();
    assert!(
        all > 0,
        "no cut-off file was accepted at all: the requests never got in"
    );
    assert_eq!(
        app.object_keys().await.len(),
        all * 3,
        "{all} photos recorded"
    );
    eprintln!("{all} cut-off files were accepted, every one complete");
}

/// A `/proc/PID/status` memory figure (`VmHWM`, the peak so far, or `VmRSS`, now), in bytes.
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("memory figure");
    kib * 1024
}

/// Starts measuring how far a process's resident memory rises: resets its peak (as
/// `clear_refs` allows since Linux 4.0) and answers the memory in use now. Where the reset is
/// not allowed the peak so far stays, and the rise measured is only larger.
fn start_rise(pid: u32) -> u64 {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    memory(pid, "VmRSS")
}

/// How far the resident memory rose (at its peak) since `start_rise` answered `start`.
fn rise(pid: u32, start: u64) -> u64 {
    memory(pid, "VmHWM").saturating_sub(start)
}

/// A multipart body of `parts` file parts of `part_bytes` each, made chunk by chunk as it is
/// sent: each part is `head` followed by zeros (so a JPEG head makes a valid JPEG with
/// trailing bytes, anything else a non-image).
fn generated_body(
    boundary: &'static str,
    parts: usize,
    part_bytes: usize,
    head: Vec<u8>,
) -> reqwest::Body {
    use futures_util::stream;
    let chunk = 256 * 1024;
    let pieces = (0..parts).flat_map(move |n| {
        let mut first = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big-{n}.jpg\"\r\n\r\n"
        )
        .into_bytes();
        first.extend_from_slice(&head);
        let rest = part_bytes - head.len();
        std::iter::once(first)
            .chain((0..rest.div_ceil(chunk)).map(move |i| vec![0u8; chunk.min(rest - i * chunk)]))
            .chain(std::iter::once(b"\r\n".to_vec()))
    });
    let pieces = pieces.chain(std::iter::once(format!("--{boundary}--\r\n").into_bytes()));
    reqwest::Body::wrap_stream(stream::iter(pieces.map(Ok::<_, std::io::Error>)))
}

/// Sends a part header that never ends (64 MiB, no blank line) and answers what the server
/// said, as soon as it says it.
async fn endless_part_header(port: u16, token: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /api/photos HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; \
         boundary=endless\r\nContent-Length: {}\r\nAuthorization: Bearer {token}\r\n\r\n\
         --endless\r\nContent-Disposition: form-data; name=\"file\"; filename=\"",
        64 << 20
    );
    let sending = tokio::spawn(async move {
        write.write_all(head.as_bytes()).await?;
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..1024 {
            write.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(write)
    });
    // The answer comes while the client is still sending (its write then fails, or goes on
    // into a connection that discards it).
    let mut answer = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(120), read.read(&mut buffer))
                .await
                .expect("an answer within 2 minutes")
                .unwrap_or(0);
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer);
        if read == 0 || (text.contains("\r\n\r\n") && text.trim_end().ends_with('}')) {
            break;
        }
    }
    sending.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A request of many large parts holds a few chunks at a time, not a part and never the
/// request: a part header that never ends (64 MiB without a blank line) is refused past 8 KiB
/// while `/healthz` still answers; 32 non-image parts of 32 MiB (1 GiB) are each refused from
/// their first bytes and drained unread; and 32 images of 32 MiB (1 GiB) are spooled as they
/// arrive, checked from their heads and streamed to storage one by one. Each grows the web
/// role by ≤ 64 MiB, measured on a `gallery web` process's own peak RSS (no worker in it).
#[tokio::test]
async fn a_huge_request_holds_one_part_at_a_time() {
    use crate::helpers::{Api, Logged};
    // The namespace on the services, its admin set up; the web role measured is a child.
    let services = spawn_web_only_with(BackendSet::Services, |_| {}).await;
    let data_dir = crate::helpers::temp_data_dir();
    let port = crate::serve::free_port();
    let mut env = services.env();
    env.push(("GALLERY_LISTEN", format!("127.0.0.1:{port}")));
    env.push(("GALLERY_DATA_DIR", data_dir.display().to_string()));
    let running = Logged::start("warn", &["web"], &env);
    let address = format!("http://127.0.0.1:{port}");
    let mut api = None;
    for _ in 0..200 {
        if Api::new(&address)
            .client
            .get(format!("{address}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            api = Some(Api::admin(&address).await);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let api = api.unwrap_or_else(|| panic!("web never became ready: {}", running.text()));
    // Warm: one ordinary upload through every step, so later growth is the request's own.
    api.upload_ok("warm.jpg", jpeg_fixture(640, 480), None)
        .await;
    let pid = running.pid();
    let before = start_rise(pid);

    let answer = endless_part_header(port, api.token.as_deref().expect("token")).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("bad_multipart"), "{answer}");
    assert!(answer.contains("8192 bytes"), "{answer}");
    let health = api
        .client
        .get(format!("{address}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let header_rise = rise(pid, before);

    let send = |body: reqwest::Body| {
        api.client
            .post(api.url("/api/photos"))
            .header(
                "content-type",
                "multipart/form-data; boundary=x-gallery-test",
            )
            .body(body)
            .send()
    };
    let start_refused = start_rise(pid);
    let refused = send(generated_body(
        "x-gallery-test",
        32,
        32 << 20,
        b"not an image".to_vec(),
    ))
    .await
    .expect("1 GiB request");
    assert_rejected(refused, 415, "unsupported_type", "JPEG").await;
    let refused_rise = rise(pid, start_refused);

    let jpeg = jpeg_fixture(64, 48);
    let start_accepted = start_rise(pid);
    let accepted = send(generated_body("x-gallery-test", 32, 32 << 20, jpeg))
        .await
        .expect("1 GiB request of images");
    assert_eq!(accepted.status(), 202);
    let body: Value = accepted.json().await.expect("json");
    assert_eq!(body["photos"].as_array().map(Vec::len), Some(32), "{body}");
    let accepted_rise = rise(pid, start_accepted);
    eprintln!(
        "web RSS {} MiB at the start; its peak rose by {} KiB with an endless part header, \
         {} KiB with 1 GiB of refused parts, {} KiB with 1 GiB of images",
        before >> 20,
        header_rise >> 10,
        refused_rise >> 10,
        accepted_rise >> 10
    );
    assert!(
        header_rise <= 16 << 20,
        "an endless part header grew RSS by {} MiB",
        header_rise >> 20
    );
    assert!(
        refused_rise <= 64 << 20,
        "1 GiB of refused parts grew RSS by {} MiB",
        refused_rise >> 20
    );
    assert!(
        accepted_rise <= 64 << 20,
        "1 GiB of images grew RSS by {} MiB",
        accepted_rise >> 20
    );
    // Nothing waits in the spool once the request is answered.
    let spool: Vec<_> = std::fs::read_dir(data_dir.join("spool"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(spool.is_empty(), "spooled files left: {spool:?}");
    // 1 GiB of originals would otherwise stay in the S3 test server after every run.
    for photo in body["photos"].as_array().into_iter().flatten() {
        if let Some(id) = photo["id"].as_str() {
            let deleted = api
                .client
                .delete(api.url(&format!("/api/photos/{id}")))
                .send()
                .await
                .expect("delete");
            assert!(
                deleted.status().is_success(),
                "delete {id}: {}",
                deleted.status()
            );
        }
    }
    drop(running);
    let _ = std::fs::remove_dir_all(&data_dir);
}

async fn a_request_over_its_cap_is_413_and_leaves_nothing(set: BackendSet) {
    let app = spawn_web_only_with(set, |s| s.limits.max_request_bytes = 200_000).await;
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.jpg", crate::helpers::noisy_jpeg_fixture(200, 200)),
        ("b.jpg", crate::helpers::noisy_jpeg_fixture(200, 200)),
        ("c.jpg", crate::helpers::noisy_jpeg_fixture(200, 200)),
    ];
    assert!(files.iter().map(|(_, b)| b.len()).sum::<usize>() > 200_000);
    let response = app.upload(&files, None).await;
    assert_rejected(response, 413, "request_too_large", "200000 bytes").await;
    assert_nothing_left(&app).await;
    // Every byte counts, part headers too: 30 empty fields with 7 KB of headers each.
    let mut form = reqwest::multipart::Form::new();
    for n in 0..30 {
        let name = format!("pad{n}-{}", "x".repeat(7000));
        form = form.part(name, reqwest::multipart::Part::text(""));
    }
    let file = reqwest::multipart::Part::bytes(jpeg_fixture(8, 8)).file_name("a.jpg");
    let response = app
        .client
        .post(app.url("/api/photos"))
        .multipart(form.part("file", file))
        .send()
        .await
        .expect("post");
    assert_rejected(response, 413, "request_too_large", "200000 bytes").await;
    assert_nothing_left(&app).await;
    // A text field is short.
    let long_ops = "grayscale,".repeat(500);
    let response = app
        .upload(&[("a.jpg", jpeg_fixture(8, 8))], Some(&long_ops))
        .await;
    assert_rejected(response, 400, "bad_field", "4096 bytes").await;
    assert_nothing_left(&app).await;
}

async fn a_client_that_sends_too_slowly_is_cut_off(set: BackendSet) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_web_tuned(set, |web| {
        web.upload_pace = gallery::routes::form::UploadPace {
            idle: std::time::Duration::from_secs(1),
            window: std::time::Duration::from_secs(1),
            min_bytes_per_s: 1024,
        }
    })
    .await;
    let api = &app;
    let jpeg = jpeg_fixture(64, 48);
    let head = format!(
        "POST /api/photos HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; \
         boundary=slow\r\nContent-Length: 100000\r\nAuthorization: Bearer {}\r\n\r\n\
         --slow\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.jpg\"\r\n\r\n",
        api.token.as_deref().expect("token")
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    // One byte every 200 ms: far below 1 KiB/s.
    let mut answer = Vec::new();
    for byte in jpeg.iter().take(100) {
        if stream.write_all(&[*byte]).await.is_err() {
            break;
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(
            std::time::Duration::from_millis(200),
            stream.read(&mut chunk),
        )
        .await
        {
            Ok(Ok(0)) => break,
            Ok(Ok(read)) => {
                answer.extend_from_slice(&chunk[..read]);
                break;
            }
            _ => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("upload_too_slow"), "{answer}");
    // A client that stops sending is cut off after the idle time, not held open.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&jpeg[..10]).await.expect("a few bytes");
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("answered within 10 s")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(api.list("").await["photos"], serde_json::json!([]));
}

on_both_backends!(
    uploads_cut_off_by_the_client_leave_nothing_half_done,
    accepted_upload_stores_original_metadata_and_job,
    unsupported_type_is_415_and_leaves_nothing,
    oversized_file_is_413_and_leaves_nothing,
    too_many_pixels_is_422_from_the_header_and_leaves_nothing,
    too_large_to_decode_is_422_from_the_header_and_leaves_nothing,
    png_metadata_bomb_is_422_and_leaves_nothing,
    file_names_are_cleaned,
    truncated_header_is_422,
    unknown_op_is_400_and_stores_nothing,
    request_without_file_is_400,
    mixed_batch_accepts_the_good_and_names_the_bad,
    a_request_over_its_cap_is_413_and_leaves_nothing,
    a_client_that_sends_too_slowly_is_cut_off,
    a_large_image_is_stored_byte_for_byte,
    a_failed_store_leaves_nothing,
);
