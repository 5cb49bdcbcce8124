//! The three backends a role works with, connected at start-up: each the shared service when
//! its address is configured, the embedded one otherwise. Each service is waited for with
//! backoff and a log line, so a container started before its dependencies waits instead of
//! crash-looping.
//!
//! A new backend implements `ObjectStore`, `PhotoIndex` or `JobQueue` in its own file beside
//! the others, owns its settings type there, and is chosen in `Backends::connect`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;

use crate::accounts::store::{AccountStore, EmbeddedAccounts, RedisAccounts};
use crate::accounts::Accounts;
use crate::cache::{self, EmbeddedIndex, PhotoIndex, RedisIndex, RedisSettings};
use crate::deadline::{self, Bounded};
use crate::domain::{Event, Photo};
use crate::metrics::Metrics;
use crate::queue::{AmqpQueue, EmbeddedQueue, JobQueue, QueueSettings};
use crate::retry::{until_ok, RetryPolicy};
use crate::storage::{FsStore, ObjectStore, S3Settings, S3Store};

/// Where each backend is: a service when its settings are given, else embedded in `data_dir`.
#[derive(Debug, Clone)]
pub struct BackendSettings {
    pub data_dir: PathBuf,
    pub s3: Option<S3Settings>,
    pub redis: Option<RedisSettings>,
    pub queue: QueueSettings,
    /// How long any one call into a backend may take (`deadline`).
    pub deadline: Duration,
}

impl BackendSettings {
    /// Every backend embedded under `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        BackendSettings {
            data_dir: data_dir.into(),
            s3: None,
            redis: None,
            queue: QueueSettings::default(),
            deadline: deadline::DEFAULT,
        }
    }

    /// A role that runs beside others (`web`, `worker`, `notifier`) needs every backend to be
    /// a shared service: two processes cannot share the embedded ones.
    pub fn require_shared(&self, role: &str) -> anyhow::Result<()> {
        let missing: Vec<&str> = [
            ("GALLERY_S3_ENDPOINT", self.s3.is_none()),
            ("GALLERY_REDIS_URL", self.redis.is_none()),
            ("GALLERY_AMQP_URL", self.queue.amqp_url.is_none()),
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

    /// Which implementation each backend is, for the start-up log line.
    pub fn describe(&self) -> String {
        format!(
            "storage: {}, index: {}, queue: {}",
            if self.s3.is_some() { "S3" } else { "files" },
            if self.redis.is_some() {
                "Redis"
            } else {
                "embedded"
            },
            if self.queue.amqp_url.is_some() {
                "RabbitMQ"
            } else {
                "embedded"
            },
        )
    }
}

#[derive(Clone)]
pub struct Backends {
    pub storage: Arc<dyn ObjectStore>,
    pub index: Arc<dyn PhotoIndex>,
    pub queue: Arc<dyn JobQueue>,
    /// People, sessions and tokens: beside the index, in Redis or in the data dir.
    pub accounts: Accounts,
    /// What the process measures, served at `/metrics`: one per process, shared by the
    /// roles it runs, so it travels with the backends every role is handed.
    pub metrics: Metrics,
}

impl Backends {
    /// Connects every backend, waiting for each service as long as it takes. A backend
    /// whose service address is not set is the embedded one, under the data dir. Each is
    /// wrapped in the deadline every later call runs under. The process's measurements start
    /// here, afresh.
    pub async fn connect(settings: &BackendSettings, role: &str) -> anyhow::Result<Self> {
        Self::connect_measured(settings, role, Metrics::new(role)).await
    }

    /// `connect`, counting into `metrics`: for a role that serves them before its backends
    /// are reached (the worker's and notifier's health listener).
    pub async fn connect_measured(
        settings: &BackendSettings,
        role: &str,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let limit = settings.deadline;
        let storage: Arc<dyn ObjectStore> = match &settings.s3 {
            Some(s3) => {
                let s3_store: Arc<dyn ObjectStore> = Arc::new(S3Store::new(s3)?);
                let storage: Arc<dyn ObjectStore> = Bounded::new(s3_store, "S3", limit);
                wait_for("S3", &s3.endpoint, || storage.prepare()).await;
                storage
            }
            None => {
                let files: Arc<dyn ObjectStore> =
                    Arc::new(FsStore::in_data_dir(&settings.data_dir));
                let storage: Arc<dyn ObjectStore> = Bounded::new(files, "the file store", limit);
                storage.prepare().await?;
                storage
            }
        };
        let (index, accounts) = Self::connect_index(settings).await?;
        let queue: Arc<dyn JobQueue> = match &settings.queue.amqp_url {
            Some(url) => {
                let amqp: Arc<dyn JobQueue> = Arc::new(AmqpQueue::new(url, &settings.queue, role)?);
                let queue: Arc<dyn JobQueue> = Bounded::new(amqp, "RabbitMQ", limit);
                let nodes = AmqpQueue::describe_nodes(url);
                wait_for("RabbitMQ", &nodes, || queue.prepare()).await;
                queue
            }
            None => {
                let embedded: Arc<dyn JobQueue> =
                    Arc::new(EmbeddedQueue::open_in(&settings.data_dir)?);
                Bounded::new(embedded, "the embedded queue", limit)
            }
        };
        Ok(Backends {
            storage,
            index,
            queue,
            accounts,
            metrics,
        })
    }

    /// The photo index and the accounts beside it: all `gallery user` needs.
    pub async fn connect_index(
        settings: &BackendSettings,
    ) -> anyhow::Result<(Arc<dyn PhotoIndex>, Accounts)> {
        let limit = settings.deadline;
        let (index, accounts, store): (Arc<dyn PhotoIndex>, Arc<dyn AccountStore>, _) =
            match &settings.redis {
                Some(redis) => {
                    let connection = wait_for("Redis", &redact(redis.url.expose_secret()), || {
                        cache::redis::connect(redis, limit)
                    })
                    .await;
                    (
                        Arc::new(RedisIndex::new(connection.clone(), &redis.prefix)),
                        Arc::new(RedisAccounts::new(connection, &redis.prefix)),
                        "Redis",
                    )
                }
                // The accounts first: held by a running `serve`, they say so plainly.
                None => {
                    let accounts = EmbeddedAccounts::open_in(&settings.data_dir)?;
                    (
                        Arc::new(EmbeddedIndex::open_in(&settings.data_dir)?),
                        Arc::new(accounts),
                        "the embedded index",
                    )
                }
            };
        Ok((
            Bounded::new(index, store, limit),
            Accounts::new(Bounded::new(accounts, store, limit)),
        ))
    }

    /// Announces the photo's current status to listeners. Best effort: a lost announcement
    /// must never fail or undo the work it reports.
    pub async fn announce(&self, photo: &Photo) {
        self.announce_event(&Event::status_of(photo)).await;
    }

    /// Announces that the photo is gone. Best effort, like [`Backends::announce`].
    pub async fn announce_deleted(&self, photo: &Photo) {
        self.announce_event(&Event::deleted(photo)).await;
    }

    async fn announce_event(&self, event: &Event) {
        if let Err(error) = self.queue.publish_event(event).await {
            tracing::warn!(id = %event.photo.id, "could not announce {}: {error:#}", event.kind.as_str());
        }
    }

    /// Which backends are unreachable now, by name; empty when all answer.
    pub async fn unready(&self) -> Vec<(&'static str, String)> {
        let limit = Duration::from_secs(3);
        let check =
            |name: &'static str,
             result: Result<anyhow::Result<()>, tokio::time::error::Elapsed>| {
                match result {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some((name, format!("{error:#}"))),
                    Err(_) => Some((name, format!("no answer within {limit:?}"))),
                }
            };
        // The accounts live beside the index (same Redis, or a file opened at start).
        let (s3, redis, amqp) = tokio::join!(
            tokio::time::timeout(limit, self.storage.check()),
            tokio::time::timeout(limit, self.index.check()),
            tokio::time::timeout(limit, self.queue.check()),
        );
        [
            check("s3", s3),
            check("redis", redis),
            check("rabbitmq", amqp),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Retries `attempt` with the reconnect backoff until it succeeds, logging what it waits for.
async fn wait_for<T, F, Fut>(name: &str, address: &str, attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let what = format!("waiting for {name} at {address}");
    let Some(value) = until_ok(RetryPolicy::RECONNECT, &what, None, attempt).await else {
        unreachable!("until_ok without a shutdown signal only returns on success")
    };
    tracing::info!("{name} ready at {address}");
    value
}

/// The URL without its credentials, for logs.
fn redact(url: &str) -> String {
    // The query may hold a password too (Sentinel's `sentinelPassword`).
    let (url, query) = match url.split_once('?') {
        Some((url, _)) => (url, "?…"),
        None => (url, ""),
    };
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}{query}", &url[..scheme], &url[at + 1..])
        }
        _ => format!("{url}{query}"),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_logged_address_holds_no_password() {
        assert_eq!(
            redact("redis://:data-secret@redis:6379/0"),
            "redis://…@redis:6379/0"
        );
        assert_eq!(
            redact(
                "redis-sentinel://:data-secret@s1:26379/0?sentinelServiceName=gallery\
                 &node=s2:26379&sentinelPassword=sentinel-secret"
            ),
            "redis-sentinel://…@s1:26379/0?…"
        );
        assert_eq!(redact("redis://redis:6379"), "redis://redis:6379");
    }
}
