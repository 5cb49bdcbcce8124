//! The notifier role against a real SMTP server (aiosmtpd) and loopback HTTP servers standing
//! in for Telegram's API and a webhook receiver: exact messages, recipients, signatures,
//! retries, and nothing lost while the notifier is down.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use gallery::domain::Lang;
use gallery::notifier::channels::Webhook;
use gallery::notifier::{self, NotifierSettings};
use gallery::queue::{Listener, NOTIFY_LISTENER};
use gallery::retry::RetryPolicy;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::helpers::{
    admin_env, jpeg_fixture, spawn_app, temp_data_dir, Api, BackendSet, Logged, TestApp,
};
use crate::metrics::Scrape;
use crate::serve::free_port;

#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A loopback HTTP server that records what it is sent, after refusing the first `fail_first`
/// (with 500, or `refusal` when set), and everything while `failing` is on. While `open` is
/// off, requests wait unanswered: a receiver that hangs.
#[derive(Clone)]
struct Recorder {
    received: Arc<Mutex<Vec<Received>>>,
    /// Requests that arrived, answered or not.
    attempts: Arc<AtomicUsize>,
    fail_first: usize,
    refusal: Option<u16>,
    failing: Arc<AtomicBool>,
    open: Arc<watch::Sender<bool>>,
    url: String,
}

impl Recorder {
    async fn start(fail_first: usize) -> Recorder {
        Self::start_refusing(fail_first, None).await
    }

    async fn start_refusing(fail_first: usize, refusal: Option<u16>) -> Recorder {
        Self::launch(fail_first, refusal, false, true).await
    }

    /// Answers 500 until `succeed` is called.
    async fn failing() -> Recorder {
        Self::launch(0, None, true, true).await
    }

    /// Holds every request unanswered until `release` is called.
    async fn hanging() -> Recorder {
        Self::launch(0, None, false, false).await
    }

    fn succeed(&self) {
        self.failing.store(false, Ordering::SeqCst);
    }

    fn release(&self) {
        self.open.send_replace(true);
    }

    async fn launch(
        fail_first: usize,
        refusal: Option<u16>,
        failing: bool,
        open: bool,
    ) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let recorder = Recorder {
            received: Arc::default(),
            attempts: Arc::default(),
            fail_first,
            refusal,
            failing: Arc::new(AtomicBool::new(failing)),
            open: Arc::new(watch::channel(open).0),
            url,
        };
        let shared = recorder.clone();
        let server = HttpServer::new(move || {
            let shared = shared.clone();
            App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
                let shared = shared.clone();
                async move {
                    let attempt = shared.attempts.fetch_add(1, Ordering::SeqCst);
                    let _ = shared.open.subscribe().wait_for(|open| *open).await;
                    if attempt < shared.fail_first || shared.failing.load(Ordering::SeqCst) {
                        let status = shared.refusal.unwrap_or(500);
                        let status =
                            actix_web::http::StatusCode::from_u16(status).expect("a valid status");
                        return HttpResponse::build(status).finish();
                    }
                    let headers = request
                        .headers()
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_owned(),
                                v.to_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect();
                    let received = Received {
                        path: request.path().to_owned(),
                        headers,
                        body: body.to_vec(),
                    };
                    shared.received.lock().expect("lock").push(received);
                    HttpResponse::Ok().json(serde_json::json!({"ok": true}))
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        recorder
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// How many of the requests received mention `name` (a file name) in their JSON body.
    fn about(&self, name: &str) -> usize {
        self.received()
            .iter()
            .filter(|received| String::from_utf8_lossy(&received.body).contains(name))
            .count()
    }
}

/// Debian's Python, where `make test-deps` installs aiosmtpd (a pyenv `python3` earlier on
/// PATH would not have it); `GALLERY_TEST_PYTHON` picks another.
fn python() -> String {
    std::env::var("GALLERY_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into())
}

/// aiosmtpd writing every mail it accepts into a Maildir.
struct Smtp {
    process: Child,
    port: u16,
    maildir: PathBuf,
}

impl Smtp {
    fn start() -> Smtp {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let maildir =
            std::env::temp_dir().join(format!("gallery-mail-{}", uuid::Uuid::new_v4().simple()));
        let process = Command::new(python())
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let smtp = Smtp {
            process,
            port,
            maildir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return smtp;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "aiosmtpd did not start: run `make test-deps` (it installs Debian's python3-aiosmtpd)"
        );
    }

    /// Every mail received, parsed by Python's email package: (to, subject, text body).
    fn mails(&self) -> Vec<(String, String, String)> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|entry| {
                let script = "import email,sys\nm=email.message_from_bytes(open(sys.argv[1],'rb').read())\n\
                              print(m['To']);print(m['Subject']);print(m.get_payload(decode=True).decode().strip())";
                let output = Command::new(python()).args(["-c", script]).arg(entry.path()).output().expect("python3");
                let text = String::from_utf8_lossy(&output.stdout).into_owned();
                let mut lines = text.splitn(3, '\n');
                let mut next = || lines.next().unwrap_or_default().trim().to_owned();
                (next(), next(), next())
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

fn config(
    smtp: Option<&Smtp>,
    telegram: Option<&Recorder>,
    webhook: Option<&Recorder>,
    lang: Lang,
) -> NotifierSettings {
    NotifierSettings {
        smtp_url: smtp.map(|s| format!("smtp://127.0.0.1:{}", s.port).into()),
        smtp_from: Some("gallery@example.com".into()),
        telegram_token: telegram.map(|_| "TOKEN123".into()),
        telegram_api: telegram.map(|t| t.url.clone()).unwrap_or_default(),
        webhook_url: webhook.map(|w| format!("{}/hooks/gallery", w.url)),
        webhook_secret: Some("s3cret".into()),
        default_email: None,
        default_telegram: None,
        lang,
        attempts: 4,
        retry: RetryPolicy::doubling(Duration::from_millis(50)),
        concurrency: 16,
    }
}

fn start_notifier(app: &TestApp, config: NotifierSettings) -> watch::Sender<bool> {
    start_notifier_task(app, config).0
}

/// An in-process notifier, its stop switch and its task.
fn start_notifier_task(
    app: &TestApp,
    config: NotifierSettings,
) -> (watch::Sender<bool>, JoinHandle<anyhow::Result<()>>) {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(notifier::run(app.backends.clone(), config, stopped));
    (stop, task)
}

/// Gives the uploader (the test's admin) contacts and a language in their profile, then
/// uploads a photo with `ops`.
async fn upload_with_targets(app: &TestApp, ops: &str, lang: &str) -> String {
    upload_named(app, "perfil.jpg", ops, lang).await
}

/// `upload_with_targets` of a file called `name`.
async fn upload_named(app: &TestApp, name: &str, ops: &str, lang: &str) -> String {
    let profile = serde_json::json!({
        "notify_email": "ana@example.com",
        "notify_telegram": "4242",
        "lang": lang,
    });
    let response = app
        .client
        .patch(app.url("/api/me"))
        .json(&profile)
        .send()
        .await
        .expect("profile");
    assert_eq!(response.status(), 200);
    let response = app
        .upload_with(&[("ops", ops)], &[(name, jpeg_fixture(400, 300))])
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("json");
    body["photos"][0]["id"].as_str().expect("id").to_owned()
}

async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    for _ in 0..400 {
        if let Some(value) = probe() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never happened");
}

async fn a_finished_photo_is_announced_by_mail_telegram_and_signed_webhook(set: BackendSet) {
    let app = spawn_app(set).await;
    let smtp = Smtp::start();
    let telegram = Recorder::start(0).await;
    let webhook = Recorder::start(0).await;
    let _stop = start_notifier(
        &app,
        config(Some(&smtp), Some(&telegram), Some(&webhook), Lang::En),
    );
    // The uploader reads Portuguese; the operator (the webhook) English.
    let id = upload_with_targets(&app, "rotate90,grayscale", "pt-BR").await;
    assert_eq!(app.wait_done(&id).await["status"], "done");
    // A 400×300 photo turned upright: the thumb fits 320, the preview keeps its own size.
    let expected = "perfil.jpg was rotated 90° and converted to black and white. \
                    Resized versions are ready: thumbnail 240×320 and preview 300×400.";
    let theirs = "O arquivo perfil.jpg foi rotacionado 90° e transformado em preto e branco. \
                  As versões redimensionadas estão prontas: miniatura 240×320 e prévia 300×400.";

    let mails = eventually("the e-mail", || {
        Some(smtp.mails()).filter(|m| !m.is_empty())
    })
    .await;
    assert_eq!(
        mails,
        vec![(
            "ana@example.com".to_owned(),
            "Foto pronta: perfil.jpg".to_owned(),
            theirs.to_owned()
        )]
    );

    let sent = eventually("the Telegram message", || {
        Some(telegram.received()).filter(|r| !r.is_empty())
    })
    .await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/botTOKEN123/sendMessage");
    let body: Value = serde_json::from_slice(&sent[0].body).expect("json");
    assert_eq!(body, serde_json::json!({"chat_id": "4242", "text": theirs}));

    let hooks = eventually("the webhook", || {
        Some(webhook.received()).filter(|r| !r.is_empty())
    })
    .await;
    assert_eq!(hooks[0].path, "/hooks/gallery");
    assert_eq!(
        hooks[0].headers["x-gallery-signature"],
        Webhook::sign(b"s3cret", &hooks[0].body)
    );
    assert_ne!(
        hooks[0].headers["x-gallery-signature"],
        Webhook::sign(b"wrong", &hooks[0].body)
    );
    let body: Value = serde_json::from_slice(&hooks[0].body).expect("json");
    assert_eq!(body["type"], "photo.done");
    assert_eq!(body["photo"]["id"], id);
    assert_eq!(body["photo"]["filename"], "perfil.jpg");
    assert_eq!(body["message"], expected);

    // Each send counted once, by channel and outcome, in the process's metrics.
    let sends = |labels: &[(&str, &str)]| {
        Scrape::parse(&app.backends.metrics.render()).value("gallery_notifier_sends_total", labels)
    };
    eventually("the sends counted", || {
        ["e-mail", "telegram", "webhook"]
            .iter()
            .all(|channel| sends(&[("channel", channel), ("outcome", "sent")]) == 1.0)
            .then_some(())
    })
    .await;
    assert_eq!(sends(&[]), 3.0, "nothing but the three sends");
}

async fn events_wait_for_a_notifier_that_is_down_and_failing_receivers_get_one_message(
    set: BackendSet,
) {
    let app = spawn_app(set).await;
    // The notifier has subscribed once (its durable queue exists) and is down now: the photo
    // finishes and its event waits.
    let subscription = app
        .backends
        .queue
        .subscribe_events(Listener::Durable {
            name: NOTIFY_LISTENER.into(),
            prefetch: 16,
        })
        .await
        .expect("subscribe");
    drop(subscription);
    let id = upload_with_targets(&app, "rotate180", "en").await;
    assert_eq!(app.wait_done(&id).await["status"], "done");
    let webhook = Recorder::start(2).await;
    let telegram = Recorder::start(0).await;
    let _stop = start_notifier(
        &app,
        config(None, Some(&telegram), Some(&webhook), Lang::PtBr),
    );

    let hooks = eventually("the webhook", || {
        Some(webhook.received()).filter(|r| !r.is_empty())
    })
    .await;
    let message = "O arquivo perfil.jpg foi rotacionado 180°. \
                   As versões redimensionadas estão prontas: miniatura 320×240 e prévia 400×300.";
    let body: Value = serde_json::from_slice(&hooks[0].body).expect("json");
    assert_eq!(body["message"], message);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        webhook.attempts.load(Ordering::SeqCst),
        3,
        "two refusals, then one delivery"
    );
    assert_eq!(webhook.received().len(), 1, "delivered once");
    assert_eq!(
        telegram.received().len(),
        1,
        "a channel that worked is not sent again"
    );
    assert_eq!(app.queue_depth(".notify").await, 0, "the event was acked");
}

async fn an_event_whose_receiver_keeps_failing_is_dead_lettered(set: BackendSet) {
    let app = spawn_app(set).await;
    let webhook = Recorder::start(usize::MAX).await;
    let _stop = start_notifier(&app, config(None, None, Some(&webhook), Lang::En));
    let id = upload_with_targets(&app, "grayscale", "en").await;
    assert_eq!(app.wait_done(&id).await["status"], "done");
    for _ in 0..200 {
        if app.queue_depth(".notify.dead").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.queue_depth(".notify.dead").await,
        1,
        "parked for a person to look at"
    );
    assert_eq!(
        app.queue_depth(".notify").await,
        0,
        "not redelivered forever"
    );
    assert_eq!(
        webhook.attempts.load(Ordering::SeqCst),
        4,
        "tried as often as configured"
    );
    assert!(webhook.received().is_empty());
}

/// A receiver that says no for good (HTTP 403) is asked once, and the event is parked.
async fn a_refusal_is_not_retried(set: BackendSet) {
    let app = spawn_app(set).await;
    let refusing = Recorder::start_refusing(usize::MAX, Some(403)).await;
    let _stop = start_notifier(&app, config(None, None, Some(&refusing), Lang::En));
    let id = upload_with_targets(&app, "", "en").await;
    assert_eq!(app.wait_done(&id).await["status"], "done");
    for _ in 0..200 {
        if app.queue_depth(".notify.dead").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.queue_depth(".notify.dead").await, 1, "parked");
    assert_eq!(refusing.attempts.load(Ordering::SeqCst), 1, "asked once");
    let sends = Scrape::parse(&app.backends.metrics.render());
    assert_eq!(
        sends.value(
            "gallery_notifier_sends_total",
            &[("channel", "webhook"), ("outcome", "failed")]
        ),
        1.0
    );
    assert_eq!(sends.value("gallery_notifier_sends_total", &[]), 1.0);
}

/// Photo A's webhook receiver hangs; B, uploaded after it, is told on Telegram while A's
/// webhook call is still unanswered (so A's event is not settled), and both end well once
/// the receiver answers.
async fn a_dead_receiver_holds_back_no_other_event(set: BackendSet) {
    let app = spawn_app(set).await;
    let telegram = Recorder::start(0).await;
    let webhook = Recorder::hanging().await;
    let _stop = start_notifier(
        &app,
        config(None, Some(&telegram), Some(&webhook), Lang::En),
    );
    let first = upload_named(&app, "first.jpg", "", "en").await;
    assert_eq!(app.wait_done(&first).await["status"], "done");
    eventually("the first photo's webhook call", || {
        (webhook.attempts.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;

    let second = upload_named(&app, "second.jpg", "", "en").await;
    assert_eq!(app.wait_done(&second).await["status"], "done");
    eventually("the second photo's Telegram message", || {
        (telegram.about("second.jpg") == 1).then_some(())
    })
    .await;
    assert!(
        webhook.received().is_empty(),
        "no webhook call has been answered yet: the first event is still in hand"
    );
    assert_eq!(app.queue_depth(".notify.dead").await, 0);

    webhook.release();
    eventually("both webhooks", || {
        (webhook.about("first.jpg") >= 1 && webhook.about("second.jpg") >= 1).then_some(())
    })
    .await;
    for _ in 0..200 {
        if app.queue_depth(".notify").await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.queue_depth(".notify").await, 0, "both events acked");
    assert_eq!(app.queue_depth(".notify.dead").await, 0);
    assert_eq!(telegram.about("first.jpg"), 1, "told once");
    assert_eq!(telegram.about("second.jpg"), 1, "told once");
}

/// A notifier stopped while an event's webhook waits for its next try leaves the event in
/// its queue (neither acked nor parked); the next notifier sends only the webhook.
async fn a_stopped_notifier_leaves_unsent_events_for_the_next_one(set: BackendSet) {
    let app = spawn_app(set).await;
    let telegram = Recorder::start(0).await;
    let webhook = Recorder::failing().await;
    let mut slow = config(None, Some(&telegram), Some(&webhook), Lang::En);
    // The next try is far off: the stop comes while the event waits for it.
    slow.retry = RetryPolicy::doubling(Duration::from_secs(3600));
    let (stop, task) = start_notifier_task(&app, slow);
    let id = upload_with_targets(&app, "", "en").await;
    assert_eq!(app.wait_done(&id).await["status"], "done");
    eventually("the Telegram message and a failed webhook call", || {
        (telegram.received().len() == 1 && webhook.attempts.load(Ordering::SeqCst) >= 1)
            .then_some(())
    })
    .await;

    stop.send(true).expect("notifier running");
    let stopped = tokio::time::timeout(Duration::from_secs(30), task).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "the notifier did not stop by itself: {stopped:?}"
    );
    // Back in its queue (RabbitMQ requeues it once the closed connection is noticed).
    for _ in 0..200 {
        if app.queue_depth(".notify").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.queue_depth(".notify").await, 1, "left for redelivery");
    assert_eq!(app.queue_depth(".notify.dead").await, 0, "not parked");

    webhook.succeed();
    let _next = start_notifier(
        &app,
        config(None, Some(&telegram), Some(&webhook), Lang::En),
    );
    eventually("the webhook", || {
        Some(webhook.received()).filter(|r| !r.is_empty())
    })
    .await;
    for _ in 0..200 {
        if app.queue_depth(".notify").await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.queue_depth(".notify").await, 0, "acked");
    assert_eq!(webhook.received().len(), 1);
    assert_eq!(telegram.received().len(), 1, "Telegram was not sent again");
}

/// The notifier's environment for the stand-ins (on top of the backends' `env`).
fn channels_env(telegram: &Recorder, webhook: &Recorder) -> Vec<(&'static str, String)> {
    vec![
        ("GALLERY_TELEGRAM_TOKEN", "TOKEN123".into()),
        ("GALLERY_TELEGRAM_API", telegram.url.clone()),
        (
            "GALLERY_WEBHOOK_URL",
            format!("{}/hooks/gallery", webhook.url),
        ),
        ("GALLERY_WEBHOOK_SECRET", "s3cret".into()),
    ]
}

/// After a kill -9 mid-retry, the redelivered event sends only what had not gone out: the
/// webhook that was failing, not the Telegram message that had been sent. The notifier is a
/// `gallery notifier` process on RabbitMQ and Redis, with the production retry schedule.
#[tokio::test]
async fn a_notifier_killed_mid_retry_sends_only_what_had_not_gone_out() {
    let app = spawn_app(BackendSet::Services).await;
    let telegram = Recorder::start(0).await;
    let webhook = Recorder::failing().await;
    let mut env = app.env();
    env.extend(channels_env(&telegram, &webhook));
    let first = Logged::start("info", &["notifier"], &env);
    assert!(
        first.wait_for("notifier listening").await,
        "{}",
        first.text()
    );
    let id = upload_with_targets(&app, "rotate90", "en").await;
    assert_eq!(app.wait_done(&id).await["status"], "done");
    for line in ["Telegram sent", "webhook send failed (try 1)"] {
        assert!(
            first.wait_for(line).await,
            "never said {line:?}:\n{}",
            first.text()
        );
    }
    assert_eq!(telegram.received().len(), 1);
    drop(first); // kill -9 while the webhook waits for its next try

    webhook.succeed();
    let second = Logged::start("info", &["notifier"], &env);
    assert!(
        second.wait_for("event notified and acked").await,
        "{}",
        second.text()
    );
    assert!(
        second
            .text()
            .contains("Telegram already sent for this event; not sent again"),
        "{}",
        second.text()
    );
    assert_eq!(webhook.received().len(), 1, "the webhook delivered once");
    assert_eq!(telegram.received().len(), 1, "Telegram told once");
    assert_eq!(app.queue_depth(".notify.dead").await, 0);
}

/// The same on the embedded backends: the notifier runs inside `gallery serve`, so the whole
/// gallery is killed mid-retry and started again on its data dir.
#[tokio::test]
async fn gallery_serve_killed_mid_retry_sends_only_what_had_not_gone_out() {
    let telegram = Recorder::start(0).await;
    let webhook = Recorder::failing().await;
    let data_dir = temp_data_dir();
    let port = free_port();
    let listen = format!("--listen=127.0.0.1:{port}");
    let dir = format!("--data-dir={}", data_dir.display());
    let args = ["serve", listen.as_str(), dir.as_str()];
    let mut env = channels_env(&telegram, &webhook);
    env.push(("GALLERY_NOTIFY_TELEGRAM", "4242".into()));
    env.extend(admin_env());

    let first = Logged::start("info", &args, &env);
    assert!(
        first.wait_for("gallery listening").await,
        "{}",
        first.text()
    );
    let api = Api::admin(&format!("http://127.0.0.1:{port}")).await;
    let id = api
        .upload_ok("perfil.jpg", jpeg_fixture(400, 300), None)
        .await;
    assert_eq!(api.wait_done(&id).await["status"], "done");
    for line in ["Telegram sent", "webhook send failed (try 1)"] {
        assert!(
            first.wait_for(line).await,
            "never said {line:?}:\n{}",
            first.text()
        );
    }
    assert_eq!(telegram.received().len(), 1);
    drop(first); // kill -9 of the whole gallery

    webhook.succeed();
    let second = Logged::start("info", &args, &env);
    assert!(
        second.wait_for("event notified and acked").await,
        "{}",
        second.text()
    );
    assert!(
        second
            .text()
            .contains("Telegram already sent for this event; not sent again"),
        "{}",
        second.text()
    );
    assert_eq!(webhook.received().len(), 1, "the webhook delivered once");
    assert_eq!(telegram.received().len(), 1, "Telegram told once");
    drop(second);
    let _ = std::fs::remove_dir_all(&data_dir);
}

on_both_backends!(
    a_dead_receiver_holds_back_no_other_event,
    a_stopped_notifier_leaves_unsent_events_for_the_next_one,
    a_refusal_is_not_retried,
    a_finished_photo_is_announced_by_mail_telegram_and_signed_webhook,
    events_wait_for_a_notifier_that_is_down_and_failing_receivers_get_one_message,
    an_event_whose_receiver_keeps_failing_is_dead_lettered,
);
