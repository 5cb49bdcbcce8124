//! The message bus: the job queue between the web role and the workers, and the photo events
//! the page and the notifier listen to. The roles use only the `JobQueue` trait; `amqp` is
//! the RabbitMQ implementation (durable queues, persistent messages, publisher confirms,
//! delayed retries, dead-letter queues, a topic exchange for events); `embedded` keeps the
//! same promises in a redb file under the data dir, for `gallery serve`.
//!
//! Jobs wait in two lanes (`domain::Lane`), one queue each: a worker takes a bulk job only
//! when it has a free slot and no upload job waits, and never holds bulk jobs it is not
//! running, so a new upload waits at most one job's time behind any amount of bulk work.
//! (RabbitMQ's quorum queues have no priorities, and a classic queue's priorities would not
//! stop a worker from prefetching bulk jobs ahead of an upload.)

mod amqp;
mod embedded;

use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;

pub use self::amqp::{connection_args, AmqpQueue, NOTIFY_LISTENER};
pub use self::embedded::EmbeddedQueue;
use crate::domain::{Event, Job};

/// Which broker carries the jobs and what the queues are called.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// RabbitMQ, `amqp://user:password@host:port/vhost` (secret: it holds the password), or
    /// one such URL per node of a cluster, comma-separated. `None`: the embedded queue in the
    /// data dir.
    pub amqp_url: Option<SecretString>,
    /// The job queue; the retry, dead-letter, exchange and notifier queues are named after it.
    pub name: String,
    /// The waits a retried job may be given: the worker's schedule
    /// (`WorkerSettings::retry_delays`), one delay queue per step on RabbitMQ.
    pub retry_delays: Vec<Duration>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            amqp_url: None,
            name: "gallery.jobs".into(),
            retry_delays: crate::worker::WorkerSettings::default().retry_delays(),
        }
    }
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Declares what the queue needs (queues, exchanges). Safe to call at every start.
    async fn prepare(&self) -> anyhow::Result<()>;
    /// Answers whether the broker can be reached right now (for /readyz).
    async fn check(&self) -> anyhow::Result<()>;
    /// Returns once the broker has taken responsibility for the job (it survives a broker
    /// restart); an error means the job may not have been stored. The job waits in its lane.
    async fn publish(&self, job: &Job) -> anyhow::Result<()>;
    /// Starts receiving jobs, at most `prefetch` unsettled at once: upload jobs first, a
    /// bulk job only when no upload job waits.
    async fn consume(&self, prefetch: u16) -> anyhow::Result<Box<dyn JobStream>>;
    /// How many jobs wait, per lane, for their retry and in the dead-letter queue.
    async fn depths(&self) -> anyhow::Result<Depths>;
    /// Announces what happened to a photo to every listener.
    async fn publish_event(&self, event: &Event) -> anyhow::Result<()>;
    /// Starts receiving photo events.
    async fn subscribe_events(&self, listener: Listener) -> anyhow::Result<Box<dyn EventStream>>;
}

/// What waits in the job queue: for the operator (`GET /api/admin/queues`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Depths {
    /// Jobs waiting for a worker, not yet taken.
    pub upload: u64,
    pub bulk: u64,
    /// Failed attempts waiting out their delay before they run again (both lanes).
    pub retrying: u64,
    /// Jobs given up on, kept for an operator to look at (both lanes).
    pub dead: u64,
}

/// Who listens to photo events, which decides what is kept while nobody listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listener {
    /// Every event from now on; nothing is kept while away (the page's live view, which
    /// catches up by reading the gallery).
    Live,
    /// Only finished photos (done, failed), kept in a durable queue named after `name` until
    /// settled, so a listener that is down loses nothing (the notifier). At most `prefetch`
    /// are delivered and unsettled at once, so a listener can handle that many side by side.
    Durable { name: String, prefetch: u16 },
}

/// Events as they are delivered to one listener.
#[async_trait]
pub trait EventStream: Send {
    /// The next event; `None` once the subscription has ended: the caller subscribes again.
    async fn next(&mut self) -> Option<EventDelivery>;
}

pub struct EventDelivery {
    pub event: Event,
    pub settle: Box<dyn SettleEvent>,
}

#[async_trait]
pub trait SettleEvent: Send + Sync {
    /// Handled: remove it.
    async fn ack(&self) -> anyhow::Result<()>;
    /// Give up on it: keep it in the listener's dead-letter queue.
    async fn dead_letter(&self) -> anyhow::Result<()>;
}

/// Jobs as they are delivered to one worker.
#[async_trait]
pub trait JobStream: Send {
    /// The next job; `None` once the subscription has ended (connection lost): the caller
    /// subscribes again. Jobs not settled by then are delivered again, to someone.
    async fn next(&mut self) -> Option<Delivery>;
    /// Stops receiving; jobs delivered but not settled go back to the queue.
    async fn close(self: Box<Self>);
}

/// One delivered job and the means to settle it. Settle only after the job's results are
/// stored: until then the queue keeps it.
pub struct Delivery {
    pub job: Job,
    pub settle: Box<dyn Settle>,
}

#[async_trait]
pub trait Settle: Send + Sync {
    /// The job is finished: remove it.
    async fn ack(&self) -> anyhow::Result<()>;
    /// Run `next` (the next attempt) after `delay`, then remove this delivery.
    async fn retry(&self, next: &Job, delay: Duration) -> anyhow::Result<()>;
    /// Give up: move the job to the dead-letter queue, where an operator can look at it.
    async fn dead_letter(&self) -> anyhow::Result<()>;
}
