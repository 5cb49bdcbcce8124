//! The command line, and nothing else: clap's view of every flag and its `GALLERY_*`
//! environment fallback. No other module sees these types; `configuration` turns them into
//! the typed settings each component owns.
//!
//! A new setting starts here as a flag (with `env = "GALLERY_…"` and a default taken from the
//! owning component's `Default`), then gets a field in that component's settings, filled in
//! `configuration`. A secret gets a `…_FILE` twin and `hide_env_values`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::domain::VariantSpec;
use crate::image_cache::ImageCacheSettings;
use crate::import::ImportSettings;
use crate::ingest::Limits;
use crate::notifier::NotifierSettings;
use crate::resize;
use crate::routes::events::StreamLimits;
use crate::routes::WebSettings;
use crate::worker::WorkerSettings;

#[derive(Debug, Parser)]
#[command(
    name = "gallery",
    version,
    about = "Self-hosted photo gallery and processing pipeline"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How log lines are written: text, or json (one object per line, for log shippers).
    #[arg(long, global = true, env = "GALLERY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

impl Cli {
    /// Parses the process's arguments. An empty `GALLERY_*` variable counts as unset, as in
    /// compose files that pass `${VAR:-}` through: it would otherwise be read as a value
    /// (an SMTP URL of "", a port of "").
    pub fn parse_process() -> Cli {
        forget_empty_variables();
        Cli::parse()
    }
}

/// Drops every empty `GALLERY_*` variable from the environment. Called before any thread
/// starts, so nothing reads the environment concurrently.
fn forget_empty_variables() {
    let empty: Vec<OsString> = std::env::vars_os()
        .filter(|(name, value)| {
            value.is_empty() && name.to_str().is_some_and(|n| n.starts_with("GALLERY_"))
        })
        .map(|(name, _)| name)
        .collect();
    for name in empty {
        std::env::remove_var(name);
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// HTTP role: upload API, gallery API, image serving, health and the page in static/.
    Web(WebArgs),
    /// Processing role: consumes jobs from RabbitMQ and makes each photo's variants.
    Worker(WorkerArgs),
    /// Notification role: tells uploaders by e-mail, Telegram or webhook when a photo is done.
    Notifier(NotifierArgs),
    /// Everything in one process: web and worker (and the notifier when a channel is set),
    /// on embedded storage, index and queue unless their services are configured.
    Serve(ServeArgs),
    /// Runs the worker's exact image pipeline over every image in DIR (no services) and prints
    /// images, seconds, img/s, MP/s and peak RSS.
    Bench(BenchArgs),
    /// Manages the people who may use the gallery, on the configured backends (stop a
    /// `gallery serve` on the same data dir first).
    User(UserArgs),
    /// Uploads every JPEG, PNG and WebP file under DIR to a gallery through its API, skipping
    /// files it already has; exits 1 if any file was refused or failed.
    Import(ImportArgs),
    /// Queues photos again on the bulk lane, behind every new upload, and shows them through:
    /// those lacking a variant of GALLERY_VARIANTS, and failed ones (--missing), or all
    /// (--all). Safe to stop and run again.
    Reprocess(ReprocessArgs),
    /// Exits 0 when URL answers 2xx within 3 s, else 1 (container health checks without curl).
    Healthcheck {
        /// The URL to probe, e.g. http://127.0.0.1:8080/healthz
        url: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Folder of JPEG, PNG or WebP photos.
    pub dir: PathBuf,
    /// Longest side of each variant, largest first.
    #[arg(long, value_delimiter = ',', default_value = "1280,320")]
    pub sizes: Vec<u32>,
    /// Photos processed at once.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Write the variants here, to look at them.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print each photo's decode, resize and encode times.
    #[arg(long)]
    pub per_photo: bool,
    /// Skip the (untimed) quality pass after the timed loop.
    #[arg(long)]
    pub no_quality: bool,
    /// Write each variant's luma PSNR to this CSV file (the format of
    /// src/resize/engine-psnr.csv).
    #[arg(long)]
    pub quality_csv: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Folder of photos; every subfolder is included.
    pub dir: PathBuf,
    /// The gallery's address, e.g. https://photos.example.com
    #[arg(long, env = "GALLERY_SERVER")]
    pub server: String,
    /// An API token (the page's account menu makes one). Prefer GALLERY_TOKEN: a flag shows
    /// in the process list.
    #[arg(long, env = "GALLERY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the API token (instead of GALLERY_TOKEN).
    #[arg(long, env = "GALLERY_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Files uploaded at once.
    #[arg(long, env = "GALLERY_IMPORT_JOBS", default_value_t = ImportSettings::DEFAULT_JOBS as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
}

#[derive(Debug, Clone, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub action: UserAction,
    #[command(flatten)]
    pub shared: SharedArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum UserAction {
    /// Adds a person; reads their password from the first line of stdin.
    Add {
        email: String,
        /// The name the gallery shows.
        #[arg(long)]
        name: String,
        /// May manage every photo and the people (default: member).
        #[arg(long)]
        admin: bool,
    },
    /// Lists everyone.
    List,
    /// Removes a person; their photos become the first admin's.
    Remove { email: String },
    /// Sets a new password, read from the first line of stdin; ends their sessions.
    ResetPassword { email: String },
}

#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["missing", "all"])))]
pub struct ReprocessArgs {
    /// Photos lacking a variant of the current list (or holding one of another size), and
    /// failed photos.
    #[arg(long)]
    pub missing: bool,
    /// Every photo.
    #[arg(long)]
    pub all: bool,
    /// Only photos created at or after DATE (2024-05-01, or 2024-05-01T12:00:00Z).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    #[command(flatten)]
    pub shared: SharedArgs,
}

#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub shared: SharedArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub worker: WorkerTuning,
    #[command(flatten)]
    pub channels: NotifyChannels,
    #[command(flatten)]
    pub shared: SharedArgs,
}

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub worker: WorkerTuning,
    /// Address of the worker's own /healthz endpoint (for container health checks; the image
    /// sets 0.0.0.0:8081). Unset: none, so several workers can share a host.
    #[arg(long, env = "GALLERY_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub shared: SharedArgs,
}

#[derive(Debug, Clone, Args)]
pub struct NotifierArgs {
    #[command(flatten)]
    pub channels: NotifyChannels,
    /// Address of the notifier's own /healthz endpoint (the image sets 0.0.0.0:8081).
    /// Unset: none.
    #[arg(long, env = "GALLERY_HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub shared: SharedArgs,
}

/// The web role's own listener and page.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Address the HTTP server listens on.
    #[arg(long, env = "GALLERY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Folder with the page's files (index.html, app.js, ...).
    #[arg(long, env = "GALLERY_STATIC_DIR", default_value = "static")]
    pub static_dir: PathBuf,
    /// Seconds a stopping web role waits for open requests to finish (live event streams are
    /// ended at once); keep it under the container's stop grace period.
    #[arg(long, env = "GALLERY_SHUTDOWN_TIMEOUT_S", default_value_t = WebSettings::default().shutdown_timeout.as_secs())]
    pub shutdown_timeout_s: u64,
    /// Live event streams (open gallery pages) allowed from one client address.
    #[arg(long, env = "GALLERY_MAX_STREAMS_PER_CLIENT", default_value_t = StreamLimits::default().per_client)]
    pub max_streams_per_client: usize,
    /// Live event streams allowed in all.
    #[arg(long, env = "GALLERY_MAX_STREAMS", default_value_t = StreamLimits::default().total)]
    pub max_streams: usize,
    /// Take the client's address from the last X-Forwarded-For entry: set it only behind
    /// your own proxy (compose sets it for nginx), or clients could claim any address.
    #[arg(long, env = "GALLERY_TRUST_PROXY")]
    pub trust_proxy: bool,
    /// Seconds a recorded photo may wait for its job to be queued before the web role queues
    /// it again (after a crash between the two; keep it well above any upload's own time).
    #[arg(long, env = "GALLERY_STRANDED_AFTER_S", default_value_t = WebSettings::default().stranded_after.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub stranded_after_s: u64,
    /// MiB of small images (thumbnails, previews) the web role keeps in memory to serve them
    /// again without reading storage; 0: none.
    #[arg(long, env = "GALLERY_IMAGE_CACHE_MB", default_value_t = ImageCacheSettings::default().capacity_bytes / (1024 * 1024))]
    pub image_cache_mb: u64,
    /// KiB: larger images are neither kept in memory nor read whole, but streamed.
    #[arg(long, env = "GALLERY_IMAGE_CACHE_ITEM_KB", default_value_t = ImageCacheSettings::default().max_item_bytes / 1024, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub image_cache_item_kb: u64,
    /// With GALLERY_ADMIN_PASSWORD (or …_FILE): create this admin at start while the gallery
    /// has no account yet (headless installs). Unset: the page asks for the first account.
    #[arg(long, env = "GALLERY_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    #[arg(long, env = "GALLERY_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// File holding the first admin's password (instead of GALLERY_ADMIN_PASSWORD).
    #[arg(long, env = "GALLERY_ADMIN_PASSWORD_FILE")]
    pub admin_password_file: Option<PathBuf>,
}

/// How a worker runs its jobs.
#[derive(Debug, Clone, Args)]
pub struct WorkerTuning {
    /// How many photos one worker processes at once (one per core is right); it holds one
    /// job more (its RabbitMQ prefetch), fetched and ready while the others are processed.
    #[arg(long, env = "GALLERY_WORKER_CONCURRENCY", default_value_t = WorkerSettings::default().concurrency)]
    pub concurrency: u16,
    /// Pause after marking a job processing (tests use it to stop a worker mid-job).
    #[cfg(feature = "test-hooks")]
    #[arg(long, env = "GALLERY_JOB_DELAY_MS", default_value_t = 0, hide = true)]
    pub job_delay_ms: u64,
    /// Fail the first start of each photo whose file name begins so (the browser tests' failed
    /// photo, which a retry then processes).
    #[cfg(feature = "test-hooks")]
    #[arg(long, env = "GALLERY_FAIL_FIRST_START_OF", hide = true)]
    pub fail_first_start_of: Option<String>,
}

/// Where notifications go; a channel without its settings is off.
#[derive(Debug, Clone, Args)]
pub struct NotifyChannels {
    /// SMTP server: smtp://host:25 (plain), smtp://user:pass@host:587?tls=required (STARTTLS),
    /// smtps://user:pass@host:465 (TLS). Unset: no e-mail.
    #[arg(long, env = "GALLERY_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// File holding the SMTP URL (instead of GALLERY_SMTP_URL).
    #[arg(long, env = "GALLERY_SMTP_URL_FILE")]
    pub smtp_url_file: Option<PathBuf>,
    /// Sender address of the e-mails.
    #[arg(long, env = "GALLERY_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Telegram bot token. Unset: no Telegram messages.
    #[arg(long, env = "GALLERY_TELEGRAM_TOKEN", hide_env_values = true)]
    pub telegram_token: Option<String>,
    /// File holding the Telegram bot token (instead of GALLERY_TELEGRAM_TOKEN).
    #[arg(long, env = "GALLERY_TELEGRAM_TOKEN_FILE")]
    pub telegram_token_file: Option<PathBuf>,
    #[arg(
        long,
        env = "GALLERY_TELEGRAM_API",
        default_value = "https://api.telegram.org"
    )]
    pub telegram_api: String,
    /// URL that gets a signed JSON POST for every finished photo. Unset: no webhook.
    #[arg(long, env = "GALLERY_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// Key of the HMAC-SHA256 in the X-Gallery-Signature header.
    #[arg(long, env = "GALLERY_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// File holding the webhook key (instead of GALLERY_WEBHOOK_SECRET).
    #[arg(long, env = "GALLERY_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Also tell this address about every photo.
    #[arg(long, env = "GALLERY_NOTIFY_EMAIL")]
    pub notify_email: Option<String>,
    /// Also tell this Telegram chat about every photo.
    #[arg(long, env = "GALLERY_NOTIFY_TELEGRAM")]
    pub notify_telegram: Option<String>,
    /// Language of the messages: en or pt-BR.
    #[arg(long, env = "GALLERY_LANG", default_value = "en")]
    pub lang: String,
    /// Finished photos the notifier handles at once, so one whose receiver is slow or down
    /// holds back none of the others (also its RabbitMQ prefetch).
    #[arg(long, env = "GALLERY_NOTIFY_CONCURRENCY", default_value_t = NotifierSettings::default().concurrency, value_parser = clap::value_parser!(u16).range(1..))]
    pub notify_concurrency: u16,
}

/// Settings shared by every role: where the backends are and the limits every role enforces.
#[derive(Debug, Clone, Args)]
pub struct SharedArgs {
    /// Where the embedded backends keep their data (objects, index, queue) when the
    /// corresponding service is not configured.
    #[arg(long, env = "GALLERY_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// S3 endpoint (path-style: MinIO, Garage, s3s, AWS all work). Unset: files in the data dir.
    #[arg(long, env = "GALLERY_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "GALLERY_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Bucket for originals and variants; created at start-up when missing.
    #[arg(long, env = "GALLERY_S3_BUCKET", default_value = "gallery")]
    pub s3_bucket: String,
    #[arg(long, env = "GALLERY_S3_ACCESS_KEY", hide_env_values = true)]
    pub s3_access_key: Option<String>,
    /// File holding the S3 access key (instead of GALLERY_S3_ACCESS_KEY).
    #[arg(long, env = "GALLERY_S3_ACCESS_KEY_FILE")]
    pub s3_access_key_file: Option<PathBuf>,
    #[arg(long, env = "GALLERY_S3_SECRET_KEY", hide_env_values = true)]
    pub s3_secret_key: Option<String>,
    /// File holding the S3 secret key (instead of GALLERY_S3_SECRET_KEY).
    #[arg(long, env = "GALLERY_S3_SECRET_KEY_FILE")]
    pub s3_secret_key_file: Option<PathBuf>,
    /// Redis holding photo metadata and the gallery index (`redis://…`, or `redis-sentinel://…`
    /// to find the primary through Sentinel). Unset: embedded, in the data dir.
    #[arg(long, env = "GALLERY_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// File holding the Redis URL (instead of GALLERY_REDIS_URL).
    #[arg(long, env = "GALLERY_REDIS_URL_FILE")]
    pub redis_url_file: Option<PathBuf>,
    /// Prefix of every Redis key this gallery writes (several galleries can share one Redis).
    #[arg(long, env = "GALLERY_REDIS_PREFIX", default_value = "gallery:")]
    pub redis_prefix: String,
    /// Redis replicas that must hold each write before the gallery acknowledges it (WAIT), so
    /// a failover loses none; 0 waits for none, as a single Redis needs.
    #[arg(long, env = "GALLERY_REDIS_MIN_REPLICAS", default_value_t = 0)]
    pub redis_min_replicas: u32,
    /// RabbitMQ carrying the processing jobs: its URL, or one URL per node of a cluster,
    /// comma-separated (each connection takes the next node that answers). Unset: embedded,
    /// in the data dir.
    #[arg(long, env = "GALLERY_AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,
    /// File holding the RabbitMQ URL (instead of GALLERY_AMQP_URL).
    #[arg(long, env = "GALLERY_AMQP_URL_FILE")]
    pub amqp_url_file: Option<PathBuf>,
    /// Name of the job queue; the bulk lane, retry, dead-letter and notifier queues are named
    /// after it.
    #[arg(long, env = "GALLERY_JOB_QUEUE", default_value = "gallery.jobs")]
    pub job_queue: String,
    /// Longest any one call into S3, Redis or RabbitMQ may take before it counts as failed
    /// (a frozen store then answers 503 instead of hanging the request).
    #[arg(long, env = "GALLERY_DEPENDENCY_TIMEOUT_MS", default_value_t = crate::deadline::DEFAULT.as_millis() as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub dependency_timeout_ms: u64,
    /// Largest accepted upload, per file, in bytes.
    #[arg(long, env = "GALLERY_MAX_UPLOAD_BYTES", default_value_t = Limits::default().max_upload_bytes)]
    pub max_upload_bytes: u64,
    /// Largest accepted image, in pixels (width × height from the header, before any decode).
    #[arg(long, env = "GALLERY_MAX_PIXELS", default_value_t = Limits::default().max_pixels)]
    pub max_pixels: u64,
    /// Most memory decoding one image may need, in bytes (figured from the header, before any
    /// decode: pixels × channels × bytes per sample, plus libjpeg's buffer for progressive JPEGs).
    #[arg(long, env = "GALLERY_MAX_DECODE_BYTES", default_value_t = Limits::default().max_decode_bytes)]
    pub max_decode_bytes: u64,
    /// Largest accepted upload request, in bytes, all its files together (default: most
    /// files × largest file).
    #[arg(long, env = "GALLERY_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<u64>,
    /// Most files one upload request may carry.
    #[arg(long, env = "GALLERY_MAX_FILES", default_value_t = Limits::default().max_files)]
    pub max_files: usize,
    /// The variants every photo gets: name:longest side in pixels, comma-separated. The web
    /// role and the workers must agree; after a change, `gallery reprocess --missing` makes
    /// the new ones for the photos already there.
    #[arg(long, env = "GALLERY_VARIANTS", default_value_t = VariantSpec::format_list(&VariantSpec::standard()))]
    pub variants: String,
    /// JPEG quality of the variants (1-100).
    #[arg(long, env = "GALLERY_JPEG_QUALITY", default_value_t = resize::Settings::default().jpeg_quality, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,
    /// Processing attempts per photo before it is marked failed and dead-lettered.
    #[arg(long, env = "GALLERY_MAX_ATTEMPTS", default_value_t = WorkerSettings::default().max_attempts, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// Delay before the first retry; doubles with every further attempt.
    #[arg(long, env = "GALLERY_RETRY_BACKOFF_MS", default_value_t = WorkerSettings::default().retry.initial.as_millis() as u64)]
    pub retry_backoff_ms: u64,
}
