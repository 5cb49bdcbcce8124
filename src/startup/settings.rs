//! From the command line to typed settings: each component owns its settings type
//! (`storage::S3Settings`, `cache::RedisSettings`, `queue::QueueSettings`, `ingest::Limits`,
//! `worker::WorkerSettings`, `notifier::NotifierSettings`, `routes::WebSettings`,
//! `telemetry::LogFormat`, `import::ImportSettings`), and this is the one place that fills
//! them from `cli`. Tests build the same types directly, without a command line. Secrets are
//! read here (from the flag, the variable or its `…_FILE`) and held as `SecretString`, which
//! never prints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};

use crate::accounts::Password;
use crate::backends::BackendSettings;
use crate::cache::RedisSettings;
use crate::cli::{Cli, HttpArgs, ImportArgs, NotifyChannels, SharedArgs, WorkerTuning};
use crate::domain::{Email, VariantSpec};
use crate::image_cache::ImageCacheSettings;
use crate::import::ImportSettings;
use crate::ingest::Limits;
use crate::notifier::NotifierSettings;
use crate::queue::QueueSettings;
use crate::resize;
use crate::retry::RetryPolicy;
use crate::routes::events::StreamLimits;
use crate::routes::{FirstAdmin, WebSettings};
use crate::storage::S3Settings;
use crate::telemetry::LogFormat;
use crate::worker::WorkerSettings;

/// What every role shares: where the backends are, the limits on input, the variants every
/// photo gets, and how jobs are processed.
#[derive(Debug, Clone)]
pub struct Settings {
    pub backends: BackendSettings,
    pub limits: Limits,
    pub variants: Vec<VariantSpec>,
    pub worker: WorkerSettings,
}

impl Settings {
    /// Everything embedded under `data_dir`, every other setting at its default.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Settings {
            backends: BackendSettings::embedded(data_dir),
            limits: Limits::default(),
            variants: VariantSpec::standard(),
            worker: WorkerSettings::default(),
        }
    }

    /// Retries failed jobs after `retry`'s delays: the worker's schedule, and the delay queues
    /// the broker keeps for it, which must match.
    pub fn set_retry(&mut self, retry: RetryPolicy) {
        self.worker.retry = retry;
        self.backends.queue.retry_delays = self.worker.retry_delays();
    }

    pub fn from_args(args: &SharedArgs, tuning: Option<&WorkerTuning>) -> anyhow::Result<Self> {
        let s3 = match &args.s3_endpoint {
            None => None,
            Some(endpoint) => Some(S3Settings {
                endpoint: endpoint.clone(),
                region: args.s3_region.clone(),
                bucket: args.s3_bucket.clone(),
                access_key: secret(
                    "GALLERY_S3_ACCESS_KEY",
                    &args.s3_access_key,
                    &args.s3_access_key_file,
                )?
                .context("GALLERY_S3_ENDPOINT is set: set GALLERY_S3_ACCESS_KEY (or …_FILE) too")?,
                secret_key: secret(
                    "GALLERY_S3_SECRET_KEY",
                    &args.s3_secret_key,
                    &args.s3_secret_key_file,
                )?
                .context("GALLERY_S3_ENDPOINT is set: set GALLERY_S3_SECRET_KEY (or …_FILE) too")?,
            }),
        };
        let redis =
            secret("GALLERY_REDIS_URL", &args.redis_url, &args.redis_url_file)?.map(|url| {
                RedisSettings {
                    url,
                    prefix: args.redis_prefix.clone(),
                    min_replicas: args.redis_min_replicas,
                }
            });
        let defaults = WorkerSettings::default();
        let worker = WorkerSettings {
            concurrency: tuning.map_or(defaults.concurrency, |t| t.concurrency),
            max_attempts: args.max_attempts,
            retry: RetryPolicy::doubling(Duration::from_millis(args.retry_backoff_ms)),
            engine: resize::Settings {
                jpeg_quality: args.jpeg_quality,
                max_pixels: args.max_pixels,
                max_decode_bytes: args.max_decode_bytes,
            },
            #[cfg(feature = "test-hooks")]
            job_delay: Duration::from_millis(tuning.map_or(0, |t| t.job_delay_ms)),
            #[cfg(feature = "test-hooks")]
            fail_first_start_of: tuning
                .and_then(|t| t.fail_first_start_of.clone())
                .filter(|prefix| !prefix.is_empty()),
        };
        let queue = QueueSettings {
            amqp_url: secret("GALLERY_AMQP_URL", &args.amqp_url, &args.amqp_url_file)?,
            name: args.job_queue.clone(),
            retry_delays: worker.retry_delays(),
        };
        Ok(Settings {
            backends: BackendSettings {
                data_dir: args.data_dir.clone(),
                s3,
                redis,
                queue,
                deadline: Duration::from_millis(args.dependency_timeout_ms),
            },
            limits: Limits {
                max_upload_bytes: args.max_upload_bytes,
                max_pixels: args.max_pixels,
                max_files: args.max_files,
                max_decode_bytes: args.max_decode_bytes,
                max_request_bytes: args
                    .max_request_bytes
                    .unwrap_or((args.max_files as u64).saturating_mul(args.max_upload_bytes)),
            },
            variants: VariantSpec::parse_list(&args.variants)
                .map_err(|problem| anyhow::anyhow!("GALLERY_VARIANTS: {problem}"))?,
            worker,
        })
    }
}

impl WebSettings {
    pub fn from_args(args: &HttpArgs) -> anyhow::Result<Self> {
        let password = secret(
            "GALLERY_ADMIN_PASSWORD",
            &args.admin_password,
            &args.admin_password_file,
        )?;
        let admin = match (&args.admin_email, password) {
            (Some(email), Some(password)) => Some(FirstAdmin {
                email: Email::parse(email)
                    .map_err(|problem| anyhow::anyhow!("GALLERY_ADMIN_EMAIL: {problem}"))?,
                password: Password::parse(password.expose_secret())
                    .map_err(|problem| anyhow::anyhow!("GALLERY_ADMIN_PASSWORD: {problem}"))?,
            }),
            (Some(_), None) => anyhow::bail!(
                "GALLERY_ADMIN_EMAIL is set: set GALLERY_ADMIN_PASSWORD (or …_FILE) too"
            ),
            (None, Some(_)) => {
                tracing::warn!(
                    "GALLERY_ADMIN_PASSWORD is set without GALLERY_ADMIN_EMAIL: no admin is \
                     created at start"
                );
                None
            }
            (None, None) => None,
        };
        Ok(WebSettings {
            listen: args.listen,
            static_dir: args.static_dir.clone(),
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout_s),
            streams: StreamLimits {
                per_client: args.max_streams_per_client,
                total: args.max_streams,
                ..StreamLimits::default()
            },
            trust_proxy: args.trust_proxy,
            admin,
            upload_pace: Default::default(),
            stranded_after: Duration::from_secs(args.stranded_after_s),
            image_cache: ImageCacheSettings {
                capacity_bytes: args.image_cache_mb.saturating_mul(1024 * 1024),
                max_item_bytes: args.image_cache_item_kb.saturating_mul(1024),
            },
        })
    }
}

impl NotifierSettings {
    /// The notifier's settings, with the production retry schedule (2 s, 4 s, 8 s, 16 s).
    pub fn from_args(args: &NotifyChannels) -> anyhow::Result<Self> {
        Ok(NotifierSettings {
            lang: args.lang.parse().map_err(anyhow::Error::msg)?,
            smtp_url: secret("GALLERY_SMTP_URL", &args.smtp_url, &args.smtp_url_file)?,
            smtp_from: args.smtp_from.clone(),
            telegram_token: secret(
                "GALLERY_TELEGRAM_TOKEN",
                &args.telegram_token,
                &args.telegram_token_file,
            )?,
            telegram_api: args.telegram_api.clone(),
            webhook_url: args.webhook_url.clone(),
            webhook_secret: secret(
                "GALLERY_WEBHOOK_SECRET",
                &args.webhook_secret,
                &args.webhook_secret_file,
            )?,
            default_email: args.notify_email.clone(),
            default_telegram: args.notify_telegram.clone(),
            concurrency: args.notify_concurrency,
            ..NotifierSettings::default()
        })
    }
}

impl LogFormat {
    pub fn from_args(cli: &Cli) -> anyhow::Result<Self> {
        cli.log_format
            .parse()
            .map_err(|problem| anyhow::anyhow!("GALLERY_LOG_FORMAT: {problem}"))
    }
}

impl ImportSettings {
    pub fn from_args(args: &ImportArgs) -> anyhow::Result<Self> {
        let server = reqwest::Url::parse(&args.server)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--server {}: not an http(s) address, e.g. https://photos.example.com",
                    args.server
                )
            })?;
        let token = secret("GALLERY_TOKEN", &args.token, &args.token_file)?.ok_or_else(|| {
            anyhow::anyhow!(
                "no API token: set GALLERY_TOKEN (or GALLERY_TOKEN_FILE, or --token); the \
                 page's account menu makes one"
            )
        })?;
        Ok(ImportSettings {
            jobs: usize::from(args.jobs),
            ..ImportSettings::new(args.dir.clone(), server, token)
        })
    }
}

/// A secret given directly or as a file (`…_FILE`, for compose and Kubernetes secrets): the
/// file's content, trailing whitespace removed, is the value. Both at once is an error, and so
/// is an empty file (an empty secret is a mistake, not "unset").
fn secret(
    name: &str,
    value: &Option<String>,
    file: &Option<PathBuf>,
) -> anyhow::Result<Option<SecretString>> {
    match (value, file) {
        (Some(_), Some(_)) => anyhow::bail!("set either {name} or {name}_FILE, not both"),
        (Some(value), None) => Ok(Some(SecretString::from(value.clone()))),
        (None, Some(path)) => read_secret_file(name, path).map(Some),
        (None, None) => Ok(None),
    }
}

fn read_secret_file(name: &str, path: &Path) -> anyhow::Result<SecretString> {
    let content = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {name}_FILE ({})", path.display()))?;
    let value = content.trim_end();
    if value.is_empty() {
        anyhow::bail!("{name}_FILE ({}) is empty", path.display());
    }
    Ok(SecretString::from(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::cli::{Cli, Command};

    /// The settings of `gallery serve ARGS`, with no environment variable involved (every
    /// flag is given, so the process's own `GALLERY_*` variables cannot leak in).
    fn serve(args: &[&str]) -> anyhow::Result<(Settings, NotifierSettings)> {
        let mut argv = vec!["gallery", "serve"];
        argv.extend_from_slice(args);
        let Command::Serve(serve) = Cli::try_parse_from(argv)?.command else {
            anyhow::bail!("not serve");
        };
        Ok((
            Settings::from_args(&serve.shared, Some(&serve.worker))?,
            NotifierSettings::from_args(&serve.channels)?,
        ))
    }

    fn secret_file(content: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("gallery-secret-{}", uuid::Uuid::now_v7()));
        std::fs::write(&path, content).expect("write secret file");
        path
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let (settings, notifier) = serve(&[
            "--s3-endpoint=http://s3.local:9000",
            "--s3-access-key=access-4f1d",
            "--s3-secret-key=secret-9a7b",
            "--redis-url=redis://:redispass-3c5e@redis:6379",
            "--amqp-url=amqp://gallery:amqppass-8e2a@rabbitmq:5672/%2f",
            "--smtp-url=smtps://mail:smtppass-1b9f@smtp.local:465",
            "--smtp-from=gallery@example.com",
            "--telegram-token=123:tgtoken-6d4c",
            "--webhook-url=https://hooks.local/x",
            "--webhook-secret=hooksecret-2a8d",
        ])
        .expect("valid settings");
        let printed = format!("{settings:?} {notifier:?} {:#?}", settings.backends);
        for secret in [
            "access-4f1d",
            "secret-9a7b",
            "redispass-3c5e",
            "amqppass-8e2a",
            "smtppass-1b9f",
            "tgtoken-6d4c",
            "hooksecret-2a8d",
        ] {
            assert!(!printed.contains(secret), "{secret} printed in {printed}");
        }
        assert!(printed.contains("REDACTED"), "{printed}");
        // The values themselves are intact for the code that needs them.
        let s3 = settings.backends.s3.expect("S3 configured");
        assert_eq!(s3.secret_key.expose_secret(), "secret-9a7b");
        assert_eq!(
            notifier
                .telegram_token
                .map(|t| t.expose_secret().to_owned()),
            Some("123:tgtoken-6d4c".into())
        );
    }

    #[test]
    fn redis_writes_wait_for_no_replica_unless_told() {
        let (settings, _) = serve(&["--redis-url=redis://redis:6379"]).expect("valid settings");
        assert_eq!(settings.backends.redis.expect("Redis").min_replicas, 0);
        let (settings, _) = serve(&[
            "--redis-url=redis-sentinel://s1:26379/0?sentinelServiceName=gallery",
            "--redis-min-replicas=1",
        ])
        .expect("valid settings");
        assert_eq!(settings.backends.redis.expect("Redis").min_replicas, 1);
    }

    #[test]
    fn a_secret_can_come_from_a_file_but_not_from_both() {
        let file = secret_file("from-file-5e3a\n");
        let flag = format!("--s3-secret-key-file={}", file.display());
        let (settings, _) = serve(&[
            "--s3-endpoint=http://s3.local:9000",
            "--s3-access-key=a",
            &flag,
        ])
        .expect("valid settings");
        let s3 = settings.backends.s3.expect("S3 configured");
        assert_eq!(s3.secret_key.expose_secret(), "from-file-5e3a");

        let both = serve(&[
            "--s3-endpoint=http://s3.local:9000",
            "--s3-access-key=a",
            "--s3-secret-key=b",
            &flag,
        ]);
        let error = format!("{:#}", both.expect_err("both refused"));
        assert!(
            error.contains("GALLERY_S3_SECRET_KEY or GALLERY_S3_SECRET_KEY_FILE"),
            "{error}"
        );

        let empty = secret_file("\n");
        let flag = format!("--redis-url-file={}", empty.display());
        let error = format!("{:#}", serve(&[&flag]).expect_err("empty refused"));
        assert!(
            error.contains("GALLERY_REDIS_URL_FILE") && error.contains("is empty"),
            "{error}"
        );
        let _ = std::fs::remove_file(file);
        let _ = std::fs::remove_file(empty);
    }

    #[test]
    fn s3_without_credentials_is_refused_by_name() {
        let error = serve(&["--s3-endpoint=http://s3.local:9000"]).err();
        let error = format!("{:#}", error.expect("refused"));
        assert!(error.contains("GALLERY_S3_ACCESS_KEY"), "{error}");
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let (settings, notifier) = serve(&[]).expect("defaults");
        assert!(settings.backends.s3.is_none() && settings.backends.redis.is_none());
        assert_eq!(settings.limits, Limits::default());
        assert_eq!(settings.limits.max_upload_bytes, 52_428_800);
        assert_eq!(settings.worker.max_attempts, 3);
        assert_eq!(settings.worker.retry.delay(2), Duration::from_secs(4));
        // One delay queue per wait a retry can have: attempts 1 to 3.
        assert_eq!(
            settings.backends.queue.retry_delays,
            [2, 4, 8].map(Duration::from_secs)
        );
        assert_eq!(settings.worker.engine.jpeg_quality, 82);
        assert_eq!(settings.backends.queue.name, "gallery.jobs");
        assert_eq!(settings.variants, VariantSpec::standard());
        assert!(!notifier.any_channel());
    }

    #[test]
    fn the_variant_list_is_a_setting_refused_by_name_when_wrong() {
        let (settings, _) = serve(&["--variants=thumb:320,mini:96,preview:1600"]).expect("valid");
        assert_eq!(
            settings.variants,
            [("preview", 1600), ("thumb", 320), ("mini", 96)].map(|(n, s)| VariantSpec::new(n, s))
        );
        let error = format!(
            "{:#}",
            serve(&["--variants=thumb:big"]).expect_err("refused")
        );
        assert!(
            error.contains("GALLERY_VARIANTS") && error.contains("'thumb:big'"),
            "{error}"
        );
    }
}
