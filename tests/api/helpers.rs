//! Test harness: `spawn_app` starts the real web role on a random port, plus an in-process
//! worker, on one of the two backend sets: the services (real Redis, RabbitMQ and S3, each
//! test in its own namespace: bucket, Redis key prefix, queue names) or the embedded ones
//! (files and redb under a fresh data dir). `on_both_backends!` runs a test on each set.
//! Nothing here fakes a backend.

use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use amqprs::channel::{QueueDeclareArguments, QueueDeleteArguments};
use amqprs::connection::Connection;
use gallery::accounts::store::EmbeddedAccounts;
use gallery::accounts::Accounts;
use gallery::backends::Backends;
use gallery::cache::{EmbeddedIndex, RedisSettings};
use gallery::domain::{Lane, Photo, PhotoId, Status};
use gallery::metrics::Metrics;
use gallery::queue::{EmbeddedQueue, EventStream, Listener};
use gallery::retry::RetryPolicy;
use gallery::routes::WebSettings;
use gallery::startup::{Application, Settings};
use gallery::storage::{FsStore, S3Settings};
use gallery::worker;
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::sync::watch;

pub const S3_ACCESS_KEY: &str = "gallery-test";
pub const S3_SECRET_KEY: &str = "gallery-test-secret";

pub fn s3_endpoint() -> String {
    std::env::var("GALLERY_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9100".into())
}
fn redis_url() -> String {
    std::env::var("GALLERY_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}
fn amqp_url() -> String {
    std::env::var("GALLERY_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Fails the test, saying how to start the service, when something does not listen.
fn require(service: &str, url: &str, how: &str) {
    let authority = url.split("://").nth(1).unwrap_or(url);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let authority = authority.split('/').next().unwrap_or(authority);
    if TcpStream::connect(authority).is_err() {
        panic!("{service} is not reachable at {authority}: {how}");
    }
}

fn require_services() {
    require(
        "S3 test server",
        &s3_endpoint(),
        "run `make test` (or `bash tests/support/s3-server.sh`) to start one",
    );
    require(
        "Redis",
        &redis_url(),
        "start it with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`",
    );
    require(
        "RabbitMQ",
        &amqp_url(),
        "start it with `rabbitmq-server -detached`",
    );
}

/// Connects to the local services as a role does, but gives up after a minute: the app itself
/// waits for its services as long as it takes, which in a test is a hang.
pub async fn connect_services(settings: &Settings) -> Backends {
    require_services();
    let limit = Duration::from_secs(60);
    match tokio::time::timeout(limit, Backends::connect(&settings.backends, "web")).await {
        Ok(connected) => connected.expect("backends connect"),
        Err(_) => panic!(
            "the services did not all answer within {limit:?} (S3 at {}, Redis at {}, RabbitMQ \
             at {}): see the log above for which; `make test-deps` checks and starts them",
            s3_endpoint(),
            redis_url(),
            amqp_url().rsplit('@').next().unwrap_or_default(),
        ),
    }
}

/// The longest any one test on both backend sets may run: a test that waits on something
/// that never comes fails, naming itself, instead of holding up the whole run.
pub const TEST_LIMIT: Duration = Duration::from_secs(600);

/// Runs one test body under `TEST_LIMIT`.
pub async fn bounded(name: &str, test: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(TEST_LIMIT, test).await.is_err() {
        panic!("{name} did not finish within {TEST_LIMIT:?}");
    }
}

/// Which implementations of storage, index and queue a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendSet {
    /// S3, Redis and RabbitMQ.
    Services,
    /// Files and redb under a data dir, as `gallery serve` uses them by default.
    Embedded,
}

/// Runs each named test (`async fn name(set: BackendSet)`) once per backend set, as
/// `name::services` and `name::embedded`: the same assertions for both.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn services() {
                    $crate::helpers::bounded(
                        concat!(stringify!($name), "::services"),
                        super::$name($crate::helpers::BackendSet::Services),
                    )
                    .await
                }
                #[tokio::test]
                async fn embedded() {
                    $crate::helpers::bounded(
                        concat!(stringify!($name), "::embedded"),
                        super::$name($crate::helpers::BackendSet::Embedded),
                    )
                    .await
                }
            }
        )+
    };
}

/// A fresh, empty data dir for the embedded backends.
pub fn temp_data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("gallery-test-{}", uuid::Uuid::new_v4().simple()))
}

/// Settings for `set`, isolated: a fresh namespace on the services, a fresh data dir for the
/// embedded backends.
pub fn settings_on(set: BackendSet) -> Settings {
    match set {
        BackendSet::Services => test_settings(),
        BackendSet::Embedded => {
            let mut settings = Settings::embedded(temp_data_dir());
            settings.set_retry(RetryPolicy::doubling(Duration::from_millis(50)));
            settings
        }
    }
}

/// Settings pointing at the local services, isolated under a fresh namespace.
pub fn test_settings() -> Settings {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mut settings = Settings::embedded(temp_data_dir());
    settings.backends.s3 = Some(S3Settings {
        endpoint: s3_endpoint(),
        region: "us-east-1".into(),
        bucket: format!("test-{}", &tag[..20]),
        access_key: S3_ACCESS_KEY.into(),
        secret_key: S3_SECRET_KEY.into(),
    });
    settings.backends.redis = Some(RedisSettings {
        url: redis_url().into(),
        prefix: format!("test:{tag}:"),
        min_replicas: 0,
    });
    settings.backends.queue.amqp_url = Some(amqp_url().into());
    settings.backends.queue.name = format!("test.{tag}");
    settings.set_retry(RetryPolicy::doubling(Duration::from_millis(50)));
    settings
}

/// The first admin every test app is set up with.
pub const ADMIN_EMAIL: &str = "admin@gallery.test";
pub const ADMIN_PASSWORD: &str = "admin password 1";

/// An HTTP client for one running gallery: in-process (`TestApp`) or a `gallery serve` child.
/// Unless made with `Api::new` (anonymous), it sends a person's API token with every request.
pub struct Api {
    pub address: String,
    pub client: reqwest::Client,
    /// The API token the client sends, for requests made by hand.
    pub token: Option<String>,
}

pub struct TestApp {
    pub set: BackendSet,
    api: Api,
    pub port: u16,
    web: WebSettings,
    pub settings: Settings,
    pub max_upload_bytes: u64,
    pub backends: Backends,
    /// The embedded queue itself, to count what waits in it.
    embedded_queue: Option<Arc<EmbeddedQueue>>,
    worker_stop: Option<watch::Sender<bool>>,
}

pub async fn spawn_app(set: BackendSet) -> TestApp {
    spawn_app_with(set, |_| {}).await
}

pub async fn spawn_app_with(set: BackendSet, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = settings_on(set);
    configure(&mut settings);
    build(set, settings, test_web(), true).await
}

/// A gallery nobody has set up yet: its client is anonymous.
pub async fn spawn_unset(set: BackendSet) -> TestApp {
    build_with(set, settings_on(set), test_web(), false, false).await
}

/// The web role alone: jobs stay in the queue (to inspect them, or for a worker process).
pub async fn spawn_web_only_with(
    set: BackendSet,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = settings_on(set);
    configure(&mut settings);
    build(set, settings, test_web(), false).await
}

/// The web role alone, with its own settings (not the shared ones) changed.
pub async fn spawn_web_tuned(set: BackendSet, configure: impl FnOnce(&mut WebSettings)) -> TestApp {
    let mut web = test_web();
    configure(&mut web);
    build(set, settings_on(set), web, false).await
}

/// The web role on a random loopback port, serving the repository's page.
fn test_web() -> WebSettings {
    WebSettings {
        listen: "127.0.0.1:0".parse().expect("address"),
        static_dir: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static"),
        ..WebSettings::default()
    }
}

/// The embedded backends, opened as `Backends::connect` opens them, keeping the queue's
/// concrete type for `queue_depth`.
fn open_embedded(settings: &Settings) -> (Backends, Arc<EmbeddedQueue>) {
    let data_dir = &settings.backends.data_dir;
    let queue = Arc::new(EmbeddedQueue::open_in(data_dir).expect("embedded queue"));
    let backends = Backends {
        storage: Arc::new(FsStore::in_data_dir(data_dir)),
        index: Arc::new(EmbeddedIndex::open_in(data_dir).expect("embedded index")),
        queue: queue.clone(),
        accounts: Accounts::new(Arc::new(
            EmbeddedAccounts::open_in(data_dir).expect("embedded accounts"),
        )),
        metrics: Metrics::new("serve"),
    };
    (backends, queue)
}

async fn build(
    set: BackendSet,
    settings: Settings,
    web: WebSettings,
    with_worker: bool,
) -> TestApp {
    // A web started with a headless admin is set up by it.
    let set_up = web.admin.is_none();
    build_with(set, settings, web, with_worker, set_up).await
}

async fn build_with(
    set: BackendSet,
    settings: Settings,
    web: WebSettings,
    with_worker: bool,
    set_up: bool,
) -> TestApp {
    // Logs go through the test harness, so they show only for failing tests.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GALLERY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_test_writer()
        .try_init();
    let (backends, embedded_queue) = match set {
        BackendSet::Services => (connect_services(&settings).await, None),
        BackendSet::Embedded => {
            let (backends, queue) = open_embedded(&settings);
            backends.storage.prepare().await.expect("storage prepares");
            (backends, Some(queue))
        }
    };
    let app = Application::build(&web, &settings, backends.clone())
        .await
        .expect("app builds");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    let address = format!("http://127.0.0.1:{port}");
    let api = if set_up {
        Api::set_up(&address).await
    } else {
        Api::new(&address)
    };
    let worker_stop = with_worker.then(|| {
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(worker::run(
            backends.clone(),
            settings.worker.clone(),
            settings.variants.clone(),
            stopped,
        ));
        stop
    });
    TestApp {
        set,
        api,
        port,
        web,
        max_upload_bytes: settings.limits.max_upload_bytes,
        settings,
        backends,
        embedded_queue,
        worker_stop,
    }
}

impl std::ops::Deref for TestApp {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Api {
    /// A client without credentials.
    pub fn new(address: &str) -> Api {
        Self::build(address, None)
    }

    /// A client that sends `Authorization: Bearer TOKEN`.
    pub fn with_token(address: &str, token: &str) -> Api {
        Self::build(address, Some(token))
    }

    fn build(address: &str, token: Option<&str>) -> Api {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse().expect("header"),
            );
        }
        Api {
            address: address.to_owned(),
            token: token.map(str::to_owned),
            // Idle connections are dropped before the server's 5 s keep-alive ends, so a
            // request never goes out on a connection the server is closing at that moment.
            client: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(2))
                .default_headers(headers)
                .build()
                .expect("HTTP client"),
        }
    }

    /// The same gallery, without credentials.
    pub fn anonymous(&self) -> Api {
        Api::new(&self.address)
    }

    /// Creates the first admin of a fresh gallery (`POST /api/setup`) and answers a client
    /// holding a token of theirs.
    pub async fn set_up(address: &str) -> Api {
        let anonymous = Api::new(address);
        let response = anonymous
            .client
            .post(anonymous.url("/api/setup"))
            .json(&serde_json::json!({"email": ADMIN_EMAIL, "name": "Admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .expect("setup request");
        assert_eq!(response.status(), 201, "first-run setup");
        let cookie = session_cookie(&response).expect("setup sets the session cookie");
        anonymous.token_for(&cookie).await
    }

    /// A client with a new token of the admin that `admin_env` created at start.
    pub async fn admin(address: &str) -> Api {
        let anonymous = Api::new(address);
        let cookie = anonymous
            .log_in(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .unwrap_or_else(|refused| panic!("admin login refused: {}", refused.status()));
        anonymous.token_for(&cookie).await
    }

    /// Logs in; answers the session cookie (`gallery_session=…`), or the refusal.
    pub async fn log_in(&self, email: &str, password: &str) -> Result<String, reqwest::Response> {
        let response = self
            .client
            .post(self.url("/api/session"))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login request");
        match session_cookie(&response) {
            Some(cookie) if response.status() == 200 => Ok(cookie),
            _ => Err(response),
        }
    }

    /// A client with a new API token made through the session `cookie` (on an anonymous
    /// client: a bearer token would win over the cookie).
    pub async fn token_for(&self, cookie: &str) -> Api {
        let response = self
            .client
            .post(self.url("/api/tokens"))
            .header(reqwest::header::COOKIE, cookie)
            .json(&serde_json::json!({"name": "tests"}))
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 201, "token creation");
        let body: Value = response.json().await.expect("json");
        Api::with_token(&self.address, body["token"].as_str().expect("token"))
    }

    /// Invites a person with `role` (as this client, an admin), has them accept with a
    /// password, and answers a client holding a token of theirs, and their user id.
    pub async fn add_person(&self, email: &str, role: &str) -> (Api, String) {
        let response = self
            .client
            .post(self.url("/api/users"))
            .json(
                &serde_json::json!({"email": email, "name": email.split('@').next(), "role": role}),
            )
            .send()
            .await
            .expect("invite request");
        assert_eq!(response.status(), 201, "invite of {email}");
        let body: Value = response.json().await.expect("json");
        let id = body["user"]["id"].as_str().expect("id").to_owned();
        let invite = body["invite_url"].as_str().expect("invite url");
        let token = invite.trim_start_matches("/invite/");
        let response = self
            .anonymous()
            .client
            .post(self.url(&format!("/api/invites/{token}")))
            .json(&serde_json::json!({"password": "member password 1"}))
            .send()
            .await
            .expect("accept request");
        assert_eq!(response.status(), 200, "invite accepted");
        let cookie = session_cookie(&response).expect("accepting logs in");
        (self.anonymous().token_for(&cookie).await, id)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Uploads files (name, bytes) with an optional `ops` field.
    pub async fn upload(&self, files: &[(&str, Vec<u8>)], ops: Option<&str>) -> reqwest::Response {
        let fields: Vec<(&str, &str)> = ops.map(|ops| ("ops", ops)).into_iter().collect();
        self.upload_with(&fields, files).await
    }

    /// Uploads files (name, bytes) with form fields (`ops`, ...).
    pub async fn upload_with(
        &self,
        fields: &[(&str, &str)],
        files: &[(&str, Vec<u8>)],
    ) -> reqwest::Response {
        let mut form = reqwest::multipart::Form::new();
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        for (name, bytes) in files {
            form = form.part(
                "file",
                reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
            );
        }
        self.client
            .post(self.url("/api/photos"))
            .multipart(form)
            .send()
            .await
            .expect("upload request")
    }

    /// `GET /api/photos{query}`, which must answer 200.
    pub async fn list(&self, query: &str) -> Value {
        let response = self
            .client
            .get(self.url(&format!("/api/photos{query}")))
            .send()
            .await
            .expect("list");
        assert_eq!(response.status(), 200, "listing {query}");
        response.json().await.expect("json")
    }

    /// Uploads one file that must be accepted; returns its id.
    pub async fn upload_ok(&self, name: &str, bytes: Vec<u8>, ops: Option<&str>) -> String {
        let response = self.upload(&[(name, bytes)], ops).await;
        assert_eq!(response.status(), 202, "upload of {name} not accepted");
        let body: Value = response.json().await.expect("json");
        body["photos"][0]["id"].as_str().expect("id").to_owned()
    }

    pub async fn photo(&self, id: &str) -> Value {
        let response = self
            .client
            .get(self.url(&format!("/api/photos/{id}")))
            .send()
            .await
            .expect("get photo");
        assert_eq!(response.status(), 200, "photo {id} not found");
        response.json().await.expect("json")
    }

    /// Polls until the photo is done or failed (30 s at most).
    pub async fn wait_done(&self, id: &str) -> Value {
        self.wait_status(id, &["done", "failed"]).await
    }

    pub async fn wait_status(&self, id: &str, wanted: &[&str]) -> Value {
        for _ in 0..600 {
            let photo = self.photo(id).await;
            if wanted.iter().any(|status| photo["status"] == *status) {
                return photo;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "photo {id} never reached {wanted:?}: {}",
            self.photo(id).await
        );
    }

    pub async fn get_bytes(
        &self,
        path: &str,
    ) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let response = self.client.get(self.url(path)).send().await.expect("get");
        let status = response.status();
        let headers = response.headers().clone();
        (
            status,
            headers,
            response.bytes().await.expect("body").to_vec(),
        )
    }
}

impl TestApp {
    /// Every event published from now on, as the web role's live pages get them.
    pub async fn live_events(&self) -> Box<dyn EventStream> {
        self.backends
            .queue
            .subscribe_events(Listener::Live)
            .await
            .expect("live events")
    }

    /// The web settings this app runs with.
    pub fn web_settings(&self) -> WebSettings {
        self.web.clone()
    }

    /// Another web role on this app's backends (as after a restart, or a second replica);
    /// answers an anonymous client of it.
    pub async fn start_another_web(&self, web: WebSettings) -> Api {
        let app = Application::build(&web, &self.settings, self.backends.clone())
            .await
            .expect("app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        Api::new(&address)
    }

    /// Runs on changed settings (a new variant list, ...), as after a restart: the worker
    /// is stopped and started again, and another web role started on the same backends.
    /// Answers a client of the new web role, with this app's token.
    pub async fn reconfigure(&mut self, configure: impl FnOnce(&mut Settings)) -> Api {
        configure(&mut self.settings);
        if let Some(stop) = self.worker_stop.take() {
            let _ = stop.send(true);
            let (stop, stopped) = watch::channel(false);
            tokio::spawn(worker::run(
                self.backends.clone(),
                self.settings.worker.clone(),
                self.settings.variants.clone(),
                stopped,
            ));
            self.worker_stop = Some(stop);
        }
        let anonymous = self.start_another_web(self.web.clone()).await;
        match &self.api.token {
            Some(token) => Api::with_token(&anonymous.address, token),
            None => anonymous,
        }
    }

    /// How many messages wait in the job queue (`suffix` "" for the upload lane, ".bulk" for
    /// the bulk lane, ".dead" for the dead letters, ".retry" for delayed retries of both
    /// lanes, ".notify" and ".notify.dead" for the notifier's events).
    pub async fn queue_depth(&self, suffix: &str) -> u32 {
        if suffix == ".retry" && self.embedded_queue.is_none() {
            // One delay queue per step of the retry schedule and lane: counted by the queue.
            let depths = self.backends.queue.depths().await.expect("queue depths");
            return depths.retrying as u32;
        }
        if let Some(queue) = &self.embedded_queue {
            // The embedded queue keeps delayed retries among the jobs, each with its due time.
            let name = match suffix {
                "" => "jobs",
                ".bulk" => "jobs.bulk",
                ".dead" => "jobs.dead",
                ".retry" => return 0,
                ".notify" => "events.notify",
                ".notify.dead" => "events.notify.dead",
                other => panic!("no embedded queue for suffix {other:?}"),
            };
            return queue.depth(name).await.expect("queue depth") as u32;
        }
        let connection = amqp_connection().await;
        let channel = connection.open_channel(None).await.expect("channel");
        let mut args = QueueDeclareArguments::new(&format!("{}{suffix}", self.job_queue()));
        args.passive(true);
        let (_, messages, _) = channel
            .queue_declare(args)
            .await
            .expect("queue exists")
            .expect("declare-ok");
        let _ = connection.close().await;
        messages
    }

    /// Keys of every object in this test's bucket (or data dir), sorted.
    pub async fn object_keys(&self) -> Vec<String> {
        let Some(s3) = &self.settings.backends.s3 else {
            return stored_files(&self.settings.backends.data_dir);
        };
        let bucket = s3::Bucket::new(
            &s3.bucket,
            s3::Region::Custom {
                region: s3.region.clone(),
                endpoint: s3.endpoint.clone(),
            },
            s3::creds::Credentials::new(Some(S3_ACCESS_KEY), Some(S3_SECRET_KEY), None, None, None)
                .expect("creds"),
        )
        .expect("bucket")
        .with_path_style();
        let pages = bucket.list(String::new(), None).await.expect("list bucket");
        let mut keys: Vec<String> = pages
            .into_iter()
            .flat_map(|page| page.contents)
            .map(|object| object.key)
            .collect();
        keys.sort();
        keys
    }

    /// Environment that makes a `gallery` child process use this test's namespace.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let backends = &self.settings.backends;
        let s3 = backends.s3.as_ref().expect("S3 configured");
        let redis = backends.redis.as_ref().expect("Redis configured");
        let amqp = backends
            .queue
            .amqp_url
            .as_ref()
            .expect("RabbitMQ configured");
        let backoff = self.settings.worker.retry.initial.as_millis();
        vec![
            ("GALLERY_S3_ENDPOINT", s3.endpoint.clone()),
            ("GALLERY_S3_BUCKET", s3.bucket.clone()),
            (
                "GALLERY_S3_ACCESS_KEY",
                s3.access_key.expose_secret().into(),
            ),
            (
                "GALLERY_S3_SECRET_KEY",
                s3.secret_key.expose_secret().into(),
            ),
            ("GALLERY_REDIS_URL", redis.url.expose_secret().into()),
            ("GALLERY_REDIS_PREFIX", redis.prefix.clone()),
            ("GALLERY_AMQP_URL", amqp.expose_secret().into()),
            ("GALLERY_JOB_QUEUE", self.job_queue().into()),
            ("GALLERY_RETRY_BACKOFF_MS", backoff.to_string()),
            ("GALLERY_HEALTH_LISTEN", "127.0.0.1:0".into()),
        ]
    }

    /// The name of this test's job queue (the others are named after it).
    pub fn job_queue(&self) -> &str {
        &self.settings.backends.queue.name
    }

    /// Starts `gallery worker` as a child process on this test's namespace.
    pub fn spawn_worker_process(&self, job_delay_ms: u64) -> std::process::Child {
        std::process::Command::new(env!("CARGO_BIN_EXE_gallery"))
            .args(["worker", "--concurrency", "1"])
            .envs(self.env())
            .env("GALLERY_JOB_DELAY_MS", job_delay_ms.to_string())
            .spawn()
            .expect("start gallery worker")
    }
}

/// A `gallery` child whose stderr is collected as it arrives.
pub struct Logged {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Logged {
    /// Starts `gallery ARGS` with only `env` of the `GALLERY_*` variables, logging at `level`.
    pub fn start(level: &str, args: &[&str], env: &[(&str, String)]) -> Logged {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gallery"));
        for (name, _) in std::env::vars() {
            if name.starts_with("GALLERY_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("GALLERY_LOG", level)
            .env("RUST_LOG", level)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gallery");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(read @ 1..) = stderr.read(&mut buffer) {
                if let Ok(mut log) = sink.lock() {
                    log.push_str(&String::from_utf8_lossy(&buffer[..read]));
                }
            }
        });
        Logged { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn text(&self) -> String {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// Waits (20 s at most) until the log says `line`; false if it never did.
    pub async fn wait_for(&self, line: &str) -> bool {
        for _ in 0..400 {
            if self.text().contains(line) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (20 s at most) until the log says `line`, then stops the process.
    pub async fn stop_after(mut self, line: &str) -> String {
        self.wait_for(line).await;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let text = self.text();
        assert!(text.contains(line), "the log never said {line:?}:\n{text}");
        text
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The keys of the objects the embedded storage holds under `data_dir`, sorted (half-written
/// files waiting in `.tmp` are not objects).
pub fn stored_files(data_dir: &std::path::Path) -> Vec<String> {
    let root = data_dir.join("objects");
    let mut keys = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && path != root.join(".tmp") {
                pending.push(path);
            } else if path.is_file() {
                let key = path.strip_prefix(&root).expect("inside");
                keys.push(key.to_string_lossy().into_owned());
            }
        }
    }
    keys.sort();
    keys
}

/// What makes a `gallery serve` or `web` child create the tests' admin at its first start.
pub fn admin_env() -> [(&'static str, String); 2] {
    [
        ("GALLERY_ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
        ("GALLERY_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
    ]
}

/// The `gallery_session=…` pair a response sets, if any.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| {
            value.starts_with("gallery_session=") && !value.starts_with("gallery_session=;")
        })
        .and_then(|value| value.split(';').next())
        .map(str::to_owned)
}

/// Sends a signal (`TERM`, `KILL`, ...) to a child process.
pub fn signal(child: &std::process::Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits (30 s at most) for a child process to exit.
pub async fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    for _ in 0..600 {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("process {} did not exit", child.id());
}

pub async fn amqp_connection() -> Connection {
    let args = gallery::queue::connection_args(&amqp_url()).expect("amqp url");
    Connection::open(&args).await.expect("RabbitMQ reachable")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.worker_stop.take() {
            let _ = stop.send(true);
        }
        if self.set == BackendSet::Embedded {
            let _ = std::fs::remove_dir_all(&self.settings.backends.data_dir);
            return;
        }
        remove_queues(&self.settings);
    }
}

/// Deletes the durable queues and exchanges the settings' job queue declares on the shared
/// broker, so runs do not pile them up there. Blocks; safe to call from `Drop`.
pub fn remove_queues(settings: &Settings) {
    let Some(url) = settings.backends.queue.amqp_url.clone() else {
        return;
    };
    let names = gallery::queue::AmqpQueue::new(&url, &settings.backends.queue, "test")
        .and_then(|queue| queue.durable_names());
    let Ok((queues, exchanges)) = names else {
        return;
    };
    let cleanup = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            let Ok(args) = gallery::queue::connection_args(&amqp_url()) else {
                return;
            };
            let Ok(connection) = Connection::open(&args).await else {
                return;
            };
            if let Ok(channel) = connection.open_channel(None).await {
                for queue in &queues {
                    let _ = channel.queue_delete(QueueDeleteArguments::new(queue)).await;
                }
                for exchange in &exchanges {
                    let _ = channel
                        .exchange_delete(amqprs::channel::ExchangeDeleteArguments::new(exchange))
                        .await;
                }
            }
            let _ = connection.close().await;
        });
    });
    let _ = cleanup.join();
}

// ---- fixtures: real encoded images made by the image crate ----

/// A colourful gradient, so resizing and orientation mistakes show in the pixels.
pub fn gradient(width: u32, height: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            (x * 255 / width.max(1)) as u8,
            (y * 255 / height.max(1)) as u8,
            128,
        ])
    })
}

pub fn jpeg_fixture(width: u32, height: u32) -> Vec<u8> {
    encode(
        image::DynamicImage::ImageRgb8(gradient(width, height)),
        image::ImageFormat::Jpeg,
    )
}

/// A JPEG of random pixels: it barely compresses, so its size is predictable (~1.5 B/pixel).
pub fn noisy_jpeg_fixture(width: u32, height: u32) -> Vec<u8> {
    let mut state: u32 = 0x9E37_79B9 ^ width.wrapping_mul(31) ^ height;
    let image = image::RgbImage::from_fn(width, height, |_, _| {
        // xorshift: deterministic noise without a dependency.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    });
    let mut bytes = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90);
    image::DynamicImage::ImageRgb8(image)
        .write_with_encoder(encoder)
        .expect("encode fixture");
    bytes
}

pub fn png_rgba_fixture(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbaImage::from_fn(width, height, |x, y| {
        let alpha = if x < width / 2 { 255 } else { 0 };
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 200, alpha])
    });
    encode(
        image::DynamicImage::ImageRgba8(image),
        image::ImageFormat::Png,
    )
}

pub fn webp_fixture(width: u32, height: u32) -> Vec<u8> {
    encode(
        image::DynamicImage::ImageRgb8(gradient(width, height)),
        image::ImageFormat::WebP,
    )
}

pub fn encode(image: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).expect("encode fixture");
    bytes.into_inner()
}

/// A JPEG carrying an EXIF Orientation tag, the way cameras write it (APP1 right after SOI).
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // first IFD right after the header
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // count
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut segment = b"Exif\0\0".to_vec();
    segment.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((segment.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Decodes a served image.
pub fn decode(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory(bytes).expect("served image decodes")
}

/// The record of a `width`×`height` JPEG called `filename`, queued on `lane`, as an upload
/// (or, on the bulk lane, `gallery reprocess`) records it before its job is published.
pub fn queued_photo(filename: &str, lane: Lane, width: u32, height: u32) -> Photo {
    Photo {
        id: PhotoId::new(),
        filename: filename.into(),
        content_type: "image/jpeg".into(),
        bytes: 1,
        sha256: None,
        width,
        height,
        status: Status::Queued,
        ops: vec![],
        created_at: chrono::Utc::now(),
        error: None,
        attempts: 0,
        deliveries: 0,
        variants: Default::default(),
        lane,
        notify: Default::default(),
        owner: None,
    }
}
