//! Command-line and environment configuration: every setting is a flag with an env fallback
//! (`GALLERY_*`) and a default. Each backend is the shared service when its address is set
//! (`GALLERY_S3_ENDPOINT`, `GALLERY_REDIS_URL`, `GALLERY_AMQP_URL`) and the embedded one
//! under `GALLERY_DATA_DIR` otherwise.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::notifier::NotifierConfig;
use crate::resize::VariantSpec;

#[derive(Debug, Parser)]
#[command(
    name = "gallery",
    version,
    about = "Self-hosted photo gallery and processing pipeline"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
}

#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Address the HTTP server listens on.
    #[arg(long, env = "GALLERY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Folder with the page's files (index.html, app.js, ...).
    #[arg(long, env = "GALLERY_STATIC_DIR", default_value = "static")]
    pub static_dir: PathBuf,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address the HTTP server listens on.
    #[arg(long, env = "GALLERY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Folder with the page's files (index.html, app.js, ...).
    #[arg(long, env = "GALLERY_STATIC_DIR", default_value = "static")]
    pub static_dir: PathBuf,
    /// How many jobs are processed at once.
    #[arg(long, env = "GALLERY_WORKER_CONCURRENCY", default_value_t = 2)]
    pub concurrency: u16,
    /// Pause after marking a job processing (tests use it to stop the process mid-job).
    #[arg(long, env = "GALLERY_JOB_DELAY_MS", default_value_t = 0, hide = true)]
    pub job_delay_ms: u64,
    #[command(flatten)]
    pub channels: NotifyChannels,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// How many jobs one worker processes at once (also its RabbitMQ prefetch).
    #[arg(long, env = "GALLERY_WORKER_CONCURRENCY", default_value_t = 2)]
    pub concurrency: u16,
    /// Address of the worker's own /healthz endpoint (for container health checks).
    #[arg(long, env = "GALLERY_HEALTH_LISTEN", default_value = "0.0.0.0:8081")]
    pub health_listen: SocketAddr,
    /// Pause after marking a job processing (tests use it to stop a worker mid-job).
    #[arg(long, env = "GALLERY_JOB_DELAY_MS", default_value_t = 0, hide = true)]
    pub job_delay_ms: u64,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Args)]
pub struct NotifierArgs {
    #[command(flatten)]
    pub channels: NotifyChannels,
    /// Address of the notifier's own /healthz endpoint.
    #[arg(long, env = "GALLERY_HEALTH_LISTEN", default_value = "0.0.0.0:8081")]
    pub health_listen: SocketAddr,
    #[command(flatten)]
    pub settings: Settings,
}

/// Where notifications go; a channel without its settings is off.
#[derive(Debug, Clone, Args)]
pub struct NotifyChannels {
    /// SMTP server: smtp://host:25 (plain), smtp://user:pass@host:587?tls=required (STARTTLS),
    /// smtps://user:pass@host:465 (TLS). Unset: no e-mail.
    #[arg(long, env = "GALLERY_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender address of the e-mails.
    #[arg(long, env = "GALLERY_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Telegram bot token. Unset: no Telegram messages.
    #[arg(long, env = "GALLERY_TELEGRAM_TOKEN", hide_env_values = true)]
    pub telegram_token: Option<String>,
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
    /// Also tell this address about every photo.
    #[arg(long, env = "GALLERY_NOTIFY_EMAIL")]
    pub notify_email: Option<String>,
    /// Also tell this Telegram chat about every photo.
    #[arg(long, env = "GALLERY_NOTIFY_TELEGRAM")]
    pub notify_telegram: Option<String>,
    /// Language of the messages: en or pt-BR.
    #[arg(long, env = "GALLERY_LANG", default_value = "en")]
    pub lang: String,
}

impl NotifyChannels {
    /// Whether any channel is configured at all.
    pub fn any(&self) -> bool {
        self.smtp_url.is_some() || self.telegram_token.is_some() || self.webhook_url.is_some()
    }

    /// The notifier's configuration, with the production retry schedule.
    pub fn notifier_config(self) -> anyhow::Result<NotifierConfig> {
        Ok(NotifierConfig {
            lang: self.lang.parse().map_err(anyhow::Error::msg)?,
            smtp_url: self.smtp_url,
            smtp_from: self.smtp_from,
            telegram_token: self.telegram_token,
            telegram_api: self.telegram_api,
            webhook_url: self.webhook_url,
            webhook_secret: self.webhook_secret,
            default_email: self.notify_email,
            default_telegram: self.notify_telegram,
            attempts: 5,
            retry_delay: Duration::from_secs(2),
        })
    }
}

/// Settings shared by every role: where the backends are and the limits every role enforces.
#[derive(Debug, Clone, Args)]
pub struct Settings {
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
    #[arg(
        long,
        env = "GALLERY_S3_ACCESS_KEY",
        default_value = "gallery",
        hide_env_values = true
    )]
    pub s3_access_key: String,
    #[arg(
        long,
        env = "GALLERY_S3_SECRET_KEY",
        default_value = "gallery-secret",
        hide_env_values = true
    )]
    pub s3_secret_key: String,
    /// Redis holding photo metadata and the gallery index. Unset: embedded, in the data dir.
    #[arg(long, env = "GALLERY_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this gallery writes (several galleries can share one Redis).
    #[arg(long, env = "GALLERY_REDIS_PREFIX", default_value = "gallery:")]
    pub redis_prefix: String,
    /// RabbitMQ carrying the processing jobs. Unset: embedded, in the data dir.
    #[arg(long, env = "GALLERY_AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,
    /// Name of the job queue; the retry and dead-letter queues are named after it.
    #[arg(long, env = "GALLERY_JOB_QUEUE", default_value = "gallery.jobs")]
    pub job_queue: String,
    /// Largest accepted upload, per file, in bytes.
    #[arg(long, env = "GALLERY_MAX_UPLOAD_BYTES", default_value_t = 50 * 1024 * 1024)]
    pub max_upload_bytes: u64,
    /// Largest accepted image, in pixels (width × height from the header, before any decode).
    #[arg(long, env = "GALLERY_MAX_PIXELS", default_value_t = 100_000_000)]
    pub max_pixels: u64,
    /// Most files one upload request may carry.
    #[arg(long, env = "GALLERY_MAX_FILES", default_value_t = 32)]
    pub max_files: usize,
    /// JPEG quality of the variants (1-100).
    #[arg(long, env = "GALLERY_JPEG_QUALITY", default_value_t = 82, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,
    /// Processing attempts per photo before it is marked failed and dead-lettered.
    #[arg(long, env = "GALLERY_MAX_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// Delay before the first retry; doubles with every further attempt.
    #[arg(long, env = "GALLERY_RETRY_BACKOFF_MS", default_value_t = 2000)]
    pub retry_backoff_ms: u64,
}

impl Settings {
    /// A role that runs beside others (`web`, `worker`, `notifier`) needs every backend to be
    /// a shared service: two processes cannot share the embedded ones.
    pub fn require_shared(&self, role: &str) -> anyhow::Result<()> {
        let missing: Vec<&str> = [
            ("GALLERY_S3_ENDPOINT", self.s3_endpoint.is_none()),
            ("GALLERY_REDIS_URL", self.redis_url.is_none()),
            ("GALLERY_AMQP_URL", self.amqp_url.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, unset)| unset.then_some(name))
        .collect();
        if missing.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "`gallery {role}` shares its storage, index and queue with the other roles, and \
             separate processes cannot share the embedded ones: set {}. To run everything in \
             one process on embedded backends, use `gallery serve`.",
            missing.join(", ")
        )
    }

    /// The variants every photo gets, largest first.
    pub fn variants(&self) -> Vec<VariantSpec> {
        vec![
            VariantSpec {
                name: "preview".into(),
                max_side: 1280,
            },
            VariantSpec {
                name: "thumb".into(),
                max_side: 320,
            },
        ]
    }

    /// Backoff before retry number `attempt` (1-based): base, 2×base, 4×base, ...
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(16);
        Duration::from_millis(self.retry_backoff_ms.saturating_mul(factor))
    }

    /// The documented defaults overlaid with any `GALLERY_*` environment variables, as a role
    /// would see them without flags; tests start from here and then isolate each backend.
    pub fn from_env() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            settings: Settings,
        }
        Only::parse_from(["gallery"]).settings
    }
}
