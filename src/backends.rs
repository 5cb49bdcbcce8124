//! The three backends a role works with, connected at start-up: each the shared service when
//! its address is configured, the embedded one otherwise. Each service is waited for with
//! backoff and a log line, so a container started before its dependencies waits instead of
//! crash-looping.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::cache::{EmbeddedIndex, PhotoIndex, RedisIndex};
use crate::configuration::Settings;
use crate::domain::{Event, Photo};
use crate::queue::{AmqpQueue, EmbeddedQueue, JobQueue};
use crate::storage::{FsStore, ObjectStore, S3Store};

#[derive(Clone)]
pub struct Backends {
    pub storage: Arc<dyn ObjectStore>,
    pub index: Arc<dyn PhotoIndex>,
    pub queue: Arc<dyn JobQueue>,
}

impl Backends {
    /// Connects every backend, waiting for each service as long as it takes. A backend
    /// whose service address is not set is the embedded one, under the data dir.
    pub async fn connect(settings: &Settings, role: &str) -> anyhow::Result<Self> {
        let storage: Arc<dyn ObjectStore> = match &settings.s3_endpoint {
            Some(endpoint) => {
                let storage = S3Store::new(settings, endpoint)?;
                wait_for("S3", endpoint, || storage.prepare()).await;
                Arc::new(storage)
            }
            None => {
                let storage = FsStore::in_data_dir(&settings.data_dir);
                storage.prepare().await?;
                Arc::new(storage)
            }
        };
        let index: Arc<dyn PhotoIndex> = match &settings.redis_url {
            Some(url) => Arc::new(
                wait_for("Redis", url, || {
                    RedisIndex::connect(url, &settings.redis_prefix)
                })
                .await,
            ),
            None => Arc::new(EmbeddedIndex::open_in(&settings.data_dir)?),
        };
        let queue: Arc<dyn JobQueue> = match &settings.amqp_url {
            Some(url) => {
                let queue = AmqpQueue::new(url, &settings.job_queue, role)?;
                wait_for("RabbitMQ", &redact(url), || queue.prepare()).await;
                Arc::new(queue)
            }
            None => Arc::new(EmbeddedQueue::open_in(&settings.data_dir)?),
        };
        Ok(Backends {
            storage,
            index,
            queue,
        })
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

/// Subscribes with `attempt`, retrying with backoff (0.5 s doubling to 10 s) and a log line
/// naming `what`; `None` once `shutdown` turns true first.
pub async fn subscribe_until_stopped<T, F, Fut>(
    what: &str,
    shutdown: &mut watch::Receiver<bool>,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut delay = Duration::from_millis(500);
    while !*shutdown.borrow() {
        match attempt().await {
            Ok(subscription) => return Some(subscription),
            Err(error) => {
                tracing::warn!("cannot subscribe to {what}: {error:#}; retrying in {delay:?}");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => {}
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
    None
}

/// Retries `attempt` with exponential backoff (0.5 s doubling to 10 s) until it succeeds.
pub async fn wait_for<T, F, Fut>(name: &str, address: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut delay = Duration::from_millis(500);
    loop {
        match attempt().await {
            Ok(value) => {
                tracing::info!("{name} ready at {address}");
                return value;
            }
            Err(error) => {
                tracing::warn!("waiting for {name} at {address}: {error:#}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
