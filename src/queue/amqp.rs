//! `JobQueue` on RabbitMQ via amqprs, on one node or a cluster.
//!
//! Topology, all durable quorum queues (replicated on every node of a cluster, so one node
//! can fail with nothing lost), named after the job queue `Q` (`topology` declares them):
//! - `Q` and `Q.bulk`: the two lanes' work queues (uploads, bulk work); rejected messages
//!   of both dead-letter to the fanout exchange `Q.dlx`, which feeds `Q.dead`, the one place
//!   an operator looks;
//! - `Q.retry.<ms>ms` and `Q.bulk.retry.<ms>ms`: one delay queue per step of the retry
//!   schedule (`QueueSettings::retry_delays`) and lane, whose queue-level TTL is that step's
//!   delay, after which a job dead-letters back to its lane's queue through the default
//!   exchange: a delayed retry with no plugin, which keeps a bulk job in the bulk lane. All
//!   jobs of a step queue wait the same time, so none waits behind a longer one (per-message
//!   TTLs on one queue expire only at its head: a 1 s retry would sit behind a 60 s one). A
//!   delay that is not a step takes the nearest step (the shorter on a tie); the worker only
//!   asks for the schedule's own delays.
//!
//! Dead-lettering is at least once (`x-dead-letter-strategy`, with the `reject-publish`
//! overflow it requires; RabbitMQ 3.10+): a retried or dead job leaves its queue only once the
//! queue it goes to has it, so none is dropped on the way, even while a node fails. There is no
//! `x-delivery-limit`: the worker counts deliveries in the photo's record and fails the photo
//! itself, where a broker-side limit would drop the job into `Q.dead` and leave the photo
//! `processing`.
//!
//! A worker consumes `Q` with its prefetch, and takes a bulk job with `basic.get`, one at a
//! time, only when it has a free slot and nothing from `Q` is waiting in its buffer: bulk
//! jobs are never pushed to it, so none sits in a worker while an upload arrives. An upload
//! published just as a worker takes a bulk job waits for one job, no more. With both lanes
//! empty, the worker waits for an upload and asks for bulk work again every `BULK_POLL`.
//!
//! - `Q.events`: a topic exchange for photo events (`photo.queued`, `photo.processing`,
//!   `photo.done`, `photo.failed`); live listeners bind an exclusive (classic, server-named)
//!   queue to it, durable listeners (the notifier) a durable queue `Q.NAME` with its own
//!   `Q.NAME.dead`.
//!
//! Publishing waits for the broker's confirm; a job is published `mandatory`, so one that no
//! queue took (its queue deleted) is an error, not a silent loss. The publishing connection is
//! opened lazily and opened again after any failure, so a broker restart costs one failed
//! attempt.
//!
//! Nodes: the URL setting may list one URL per node, comma-separated. Each new connection (the
//! publisher's, each subscription's) starts at the next node in turn, from a random first one,
//! and takes the first that answers: connections spread over the cluster, and a reconnect
//! after a failure moves on to a node that is up. No URL, which holds a password, is logged:
//! only `host:port`.

mod topology;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicGetArguments, BasicNackArguments,
    BasicPublishArguments, BasicQosArguments, Channel, ConfirmSelectArguments, ConsumerMessage,
    QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, FieldTable, Nack, Return};
use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, Mutex, OwnedSemaphorePermit, Semaphore};

use super::{
    Delivery, Depths, EventDelivery, EventStream, JobQueue, JobStream, Listener, QueueSettings,
    Settle, SettleEvent,
};
use crate::domain::{Event, Job, Lane};
use crate::retry::RetryPolicy;

const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a `basic.get` may go unanswered before the subscription counts as lost.
const GET_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle worker asks for bulk work (uploads are pushed to it at once).
const BULK_POLL: Duration = Duration::from_secs(1);
/// How many times a publish is tried, and the waits in between: 0.1 s, 0.2 s, 0.4 s, 0.8 s
/// (1.5 s in all), time for a quorum queue to elect a new leader when its leader's node
/// fails, yet a broker that is down altogether is reported within seconds.
const PUBLISH_ATTEMPTS: u32 = 5;
const PUBLISH_RETRY: RetryPolicy = RetryPolicy {
    initial: Duration::from_millis(100),
    factor: 2,
    max: Duration::from_secs(1),
    jitter: 0.2,
};
/// How long one node may take to accept a connection before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The notifier's durable listener name.
pub const NOTIFY_LISTENER: &str = "notify";

pub struct AmqpQueue {
    inner: Arc<Inner>,
}

struct Inner {
    /// One per node, in the order the URL setting lists them.
    nodes: Vec<OpenConnectionArguments>,
    /// The node the next connection tries first (modulo their number).
    next_node: AtomicUsize,
    /// What the broker lists this process's connections as, each with what it is for.
    connection_name: String,
    queue: String,
    /// The retry schedule's steps, shortest first, never empty: one delay queue each per lane.
    retry_delays: Vec<Duration>,
    publisher: Mutex<Option<Publisher>>,
}

impl AmqpQueue {
    /// Checks the URLs only; connections are opened when first needed.
    pub fn new(url: &SecretString, settings: &QueueSettings, role: &str) -> anyhow::Result<Self> {
        let urls = node_urls(url.expose_secret());
        let count = urls.len();
        let nodes = urls
            .into_iter()
            .enumerate()
            .map(|(at, url)| {
                connection_args(url).with_context(|| format!("URL {} of {count}", at + 1))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if nodes.is_empty() {
            bail!("no AMQP URL given (expected amqp://user:password@host:port/vhost)");
        }
        let mut retry_delays: Vec<Duration> = settings
            .retry_delays
            .iter()
            // Whole milliseconds, as the queue's TTL is; none zero (it would not wait at all).
            .map(|delay| {
                Duration::from_millis(delay.as_millis().clamp(1, u128::from(u32::MAX)) as u64)
            })
            .collect();
        retry_delays.sort();
        retry_delays.dedup();
        if retry_delays.is_empty() {
            bail!("no retry delay: a retried job would have no delay queue to wait in");
        }
        Ok(AmqpQueue {
            inner: Arc::new(Inner {
                next_node: AtomicUsize::new(fastrand::usize(..nodes.len())),
                nodes,
                connection_name: format!("gallery-{role}-{}", settings.name),
                queue: settings.name.clone(),
                retry_delays,
                publisher: Mutex::new(None),
            }),
        })
    }

    /// The queues this one declares that outlive a connection, then its exchanges: what
    /// deleting the gallery's topology removes (a durable listener's other than the
    /// notifier's aside).
    pub fn durable_names(&self) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        self.inner.durable_names()
    }

    /// The nodes of a URL setting as `host:port`, for logs (the URLs hold passwords).
    pub fn describe_nodes(url: &SecretString) -> String {
        node_urls(url.expose_secret())
            .into_iter()
            .map(|url| match connection_args(url) {
                Ok(node) => address(&node),
                Err(_) => "(an invalid URL)".into(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Inner {
    /// Opens a connection for `purpose` ("publish", "jobs", …: it ends the name the broker
    /// lists it by), trying every node in turn from the next one; fails only when none answers.
    async fn connect(&self, purpose: &str) -> anyhow::Result<Connection> {
        let count = self.nodes.len();
        let first = self.next_node.fetch_add(1, Ordering::Relaxed);
        let mut failures = Vec::new();
        for offset in 0..count {
            let mut node = self.nodes[(first + offset) % count].clone();
            node.connection_name(&format!("{}-{purpose}", self.connection_name));
            let failure = match tokio::time::timeout(CONNECT_TIMEOUT, Connection::open(&node)).await
            {
                Ok(Ok(connection)) => {
                    if !failures.is_empty() {
                        tracing::warn!(
                            "connected to RabbitMQ at {} after {}",
                            address(&node),
                            failures.join("; ")
                        );
                    }
                    return Ok(connection);
                }
                Ok(Err(error)) => format!("{error}"),
                Err(_) => format!("no answer within {CONNECT_TIMEOUT:?}"),
            };
            failures.push(format!("{}: {failure}", address(&node)));
        }
        bail!("RabbitMQ is not reachable ({})", failures.join("; "))
    }

    /// Opens a connection and channel that deliver from `queue`, at most `prefetch` unsettled.
    async fn subscribe(
        &self,
        queue: &str,
        prefetch: u16,
        manual_ack: bool,
    ) -> anyhow::Result<Subscription> {
        let connection = self.connect("jobs").await?;
        self.declare(&connection).await?;
        let channel = connection.open_channel(None).await?;
        Subscription::start(connection, channel, queue, prefetch, manual_ack).await
    }

    /// The publishing connection, opened when it is not.
    async fn publishing_connection(&self) -> anyhow::Result<Connection> {
        let mut guard = self.publisher.lock().await;
        if !guard.as_ref().is_some_and(Publisher::is_open) {
            *guard = Some(Publisher::open(self).await?);
        }
        let publisher = guard.as_ref().ok_or_else(|| anyhow!("no publisher"))?;
        Ok(publisher.connection.clone())
    }

    /// Messages ready in `queue` (not those delivered and unsettled).
    async fn ready(channel: &Channel, queue: &str) -> anyhow::Result<u64> {
        let mut passive = QueueDeclareArguments::new(queue);
        passive.passive(true);
        let (_, ready, _) = channel
            .queue_declare(passive)
            .await?
            .ok_or_else(|| anyhow!("no declare-ok for {queue}"))?;
        Ok(u64::from(ready))
    }

    /// Publishes and waits for the confirm. A failure (a refusal, a lost connection) is tried
    /// again a few times over `PUBLISH_RETRY`, each time on a new connection, to the next node
    /// that answers: a quorum queue whose leader's node just failed refuses messages until it
    /// has a new leader, and a channel opened while it had none may go on refusing after it
    /// has one (RabbitMQ 3.10 was seen nacking for 45 s on such a channel, while a new
    /// one published at once).
    async fn publish(&self, message: Outgoing<'_>) -> anyhow::Result<()> {
        let mut attempt = 1;
        loop {
            let error = match self.publish_once(&message).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            *self.publisher.lock().await = None;
            if attempt >= PUBLISH_ATTEMPTS {
                return Err(error);
            }
            let delay = PUBLISH_RETRY.delay(attempt);
            tracing::warn!("publish failed; trying again in {delay:.1?}: {error:#}");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn publish_once(&self, message: &Outgoing<'_>) -> anyhow::Result<()> {
        let confirmed = {
            // Held across register + publish so confirm tags match publish order.
            let mut guard = self.publisher.lock().await;
            let usable = guard.as_ref().is_some_and(Publisher::is_open);
            if !usable {
                *guard = Some(Publisher::open(self).await?);
            }
            let publisher = guard.as_ref().ok_or_else(|| anyhow!("no publisher"))?;
            let (tag, confirmed) = publisher.confirms.register();
            let mut properties = BasicProperties::default();
            properties
                .with_persistence(true)
                .with_content_type("application/json")
                // Names the publish in a `basic.return`, which has no delivery tag.
                .with_message_id(&tag.to_string());
            if let Some(headers) = &message.headers {
                properties.with_headers(headers.clone());
            }
            let mut arguments = BasicPublishArguments::new(message.exchange, message.routing_key);
            arguments.mandatory = message.mandatory;
            publisher
                .channel
                .basic_publish(properties, message.body.clone(), arguments)
                .await
                .context("publish failed")?;
            (publisher.connection.clone(), confirmed)
        };
        let (connection, confirmed) = confirmed;
        // A connection that fails (its node died) ends the wait: amqprs answers the waiting
        // confirms of a channel the broker closes, not of a connection that drops.
        let answer = tokio::select! {
            answer = tokio::time::timeout(CONFIRM_TIMEOUT, confirmed) => answer,
            _ = connection.listen_network_io_failure() => {
                bail!("the connection failed before RabbitMQ confirmed the message")
            }
        };
        match answer {
            Ok(Ok(Confirm::Ack)) => Ok(()),
            Ok(Ok(Confirm::Nack)) => bail!("RabbitMQ refused the message (nack)"),
            Ok(Ok(Confirm::Returned(why))) => bail!(
                "no queue took the message ({why}; exchange \"{}\", routing key \"{}\")",
                message.exchange,
                message.routing_key
            ),
            Ok(Err(_)) => bail!("channel closed before RabbitMQ confirmed the message"),
            Err(_) => bail!("RabbitMQ did not confirm the message within {CONFIRM_TIMEOUT:?}"),
        }
    }

    /// Publishes a job to `queue` through the default exchange: an error unless the queue
    /// took it.
    async fn publish_job(&self, queue: &str, body: Vec<u8>) -> anyhow::Result<()> {
        self.publish(Outgoing {
            exchange: "",
            routing_key: queue,
            body,
            mandatory: true,
            headers: None,
        })
        .await
    }
}

/// One message to publish.
struct Outgoing<'a> {
    exchange: &'a str,
    routing_key: &'a str,
    body: Vec<u8>,
    /// Refused (`basic.return`) when no queue takes it, instead of dropped.
    mandatory: bool,
    headers: Option<FieldTable>,
}

/// The URLs of a URL setting: one per node, comma-separated. A comma starts a new URL only
/// where one follows (`amqp://`, `amqps://`), so a comma inside a password stays there.
fn node_urls(setting: &str) -> Vec<&str> {
    let mut urls = Vec::new();
    let mut start = 0;
    for (at, _) in setting.match_indices(',') {
        let rest = setting[at + 1..].trim_start();
        if rest.starts_with("amqp://") || rest.starts_with("amqps://") {
            urls.push(setting[start..at].trim());
            start = at + 1;
        }
    }
    urls.push(setting[start..].trim());
    urls.retain(|url| !url.is_empty());
    urls
}

/// A node's `host:port`, what logs name it by.
fn address(node: &OpenConnectionArguments) -> String {
    format!("{}:{}", node.get_host(), node.get_port())
}

/// Connection settings from an AMQP URL (`amqp://user:pass@host:port/vhost`).
pub fn connection_args(url: &str) -> anyhow::Result<OpenConnectionArguments> {
    // The parser's error could quote the URL, password included: say only what was expected.
    let mut args = OpenConnectionArguments::try_from(url)
        .map_err(|_| anyhow!("invalid AMQP URL (expected amqp://user:password@host:port/vhost)"))?;
    // amqprs takes the vhost verbatim; the AMQP URI spec percent-encodes it ("%2f" is "/").
    args.virtual_host(&vhost_of(url));
    Ok(args)
}

/// The virtual host named by an AMQP URL's path, percent-decoded; "/" when there is none.
fn vhost_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.split_once('/').map_or("", |(_, path)| path);
    let path = path.split(['?', '#']).next().unwrap_or("");
    if path.is_empty() {
        return "/".into();
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// A connection and channel in confirm mode, used for every publish of this process.
struct Publisher {
    connection: Connection,
    channel: Channel,
    confirms: Arc<Confirms>,
}

impl Publisher {
    async fn open(inner: &Inner) -> anyhow::Result<Self> {
        let connection = inner.connect("publish").await?;
        let channel = connection.open_channel(None).await?;
        let confirms = Arc::new(Confirms::default());
        channel
            .register_callback(ConfirmListener(confirms.clone()))
            .await?;
        channel
            .confirm_select(ConfirmSelectArguments::default())
            .await?;
        Ok(Publisher {
            connection,
            channel,
            confirms,
        })
    }

    fn is_open(&self) -> bool {
        self.connection.is_open() && self.channel.is_open()
    }
}

/// Publisher confirms awaiting the broker's answer, by delivery tag (1, 2, ... per channel).
#[derive(Default)]
struct Confirms {
    state: SyncMutex<ConfirmState>,
}

#[derive(Default)]
struct ConfirmState {
    last_tag: u64,
    waiting: BTreeMap<u64, oneshot::Sender<Confirm>>,
}

/// The broker's answer to one publish.
enum Confirm {
    Ack,
    Nack,
    /// No queue took a mandatory message (why, in the broker's words).
    Returned(String),
}

impl Confirms {
    /// The next publish's tag, and its answer to come.
    fn register(&self) -> (u64, oneshot::Receiver<Confirm>) {
        let (tx, rx) = oneshot::channel();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.last_tag += 1;
        let tag = state.last_tag;
        state.waiting.insert(tag, tx);
        (tag, rx)
    }

    fn settle(&self, tag: u64, multiple: bool, answer: impl Fn() -> Confirm) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tags: Vec<u64> = if multiple {
            state.waiting.range(..=tag).map(|(tag, _)| *tag).collect()
        } else {
            vec![tag]
        };
        for tag in tags {
            if let Some(waiter) = state.waiting.remove(&tag) {
                let _ = waiter.send(answer());
            }
        }
    }

    /// Dropping the senders wakes every waiter with an error.
    fn fail_all(&self) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.waiting.clear();
    }
}

struct ConfirmListener(Arc<Confirms>);

#[async_trait]
impl ChannelCallback for ConfirmListener {
    async fn close(
        &mut self,
        _channel: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        tracing::warn!(?close, "publishing channel closed by the broker");
        self.0.fail_all();
        Ok(())
    }
    async fn cancel(
        &mut self,
        _channel: &Channel,
        _cancel: Cancel,
    ) -> Result<(), amqprs::error::Error> {
        Ok(())
    }
    async fn flow(
        &mut self,
        _channel: &Channel,
        active: bool,
    ) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _channel: &Channel, ack: Ack) {
        self.0
            .settle(ack.delivery_tag(), ack.mutiple(), || Confirm::Ack);
    }
    async fn publish_nack(&mut self, _channel: &Channel, nack: Nack) {
        self.0
            .settle(nack.delivery_tag(), nack.multiple(), || Confirm::Nack);
    }
    async fn publish_return(
        &mut self,
        _channel: &Channel,
        ret: Return,
        properties: BasicProperties,
        _content: Vec<u8>,
    ) {
        // Sent just before the message's ack, which then finds nobody waiting.
        let tag = properties.message_id().and_then(|id| id.parse().ok());
        if let Some(tag) = tag {
            let why = format!("{} {}", ret.reply_code(), ret.reply_text());
            self.0.settle(tag, false, || Confirm::Returned(why.clone()));
        }
    }
}

/// Watches a consumer's channel: a consumer the broker cancels (its queue deleted) ends the
/// subscription, which the caller then opens again, instead of waiting forever.
struct ConsumerWatch;

#[async_trait]
impl ChannelCallback for ConsumerWatch {
    async fn close(
        &mut self,
        _channel: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        tracing::warn!(?close, "consuming channel closed by the broker");
        Ok(())
    }
    async fn cancel(
        &mut self,
        _channel: &Channel,
        cancel: Cancel,
    ) -> Result<(), amqprs::error::Error> {
        tracing::warn!(?cancel, "consumer cancelled by the broker");
        Ok(())
    }
    async fn flow(
        &mut self,
        _channel: &Channel,
        active: bool,
    ) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _channel: &Channel, _ack: Ack) {}
    async fn publish_nack(&mut self, _channel: &Channel, _nack: Nack) {}
    async fn publish_return(
        &mut self,
        _channel: &Channel,
        _ret: Return,
        _properties: BasicProperties,
        _content: Vec<u8>,
    ) {
    }
}

#[async_trait]
impl JobQueue for AmqpQueue {
    async fn prepare(&self) -> anyhow::Result<()> {
        let connection = self.inner.connect("prepare").await?;
        let prepared = self.inner.prepare(&connection).await;
        let _ = connection.close().await;
        prepared.context("could not declare the RabbitMQ queues")
    }

    async fn check(&self) -> anyhow::Result<()> {
        self.inner.publishing_connection().await.map(drop)
    }

    async fn publish(&self, job: &Job) -> anyhow::Result<()> {
        let inner = &self.inner;
        inner
            .publish_job(&inner.lane_queue(job.lane), serde_json::to_vec(job)?)
            .await
    }

    async fn consume(&self, prefetch: u16) -> anyhow::Result<Box<dyn JobStream>> {
        let inner = &self.inner;
        let subscription = inner
            .subscribe(&inner.lane_queue(Lane::Upload), prefetch, true)
            .await?;
        Ok(Box::new(AmqpJobs {
            subscription,
            inner: inner.clone(),
            bulk: inner.lane_queue(Lane::Bulk),
            slots: Arc::new(Semaphore::new(usize::from(prefetch.max(1)))),
        }))
    }

    async fn depths(&self) -> anyhow::Result<Depths> {
        let inner = &self.inner;
        let connection = inner.publishing_connection().await?;
        let channel = connection.open_channel(None).await?;
        let counted = async {
            let mut depths = Depths {
                upload: Inner::ready(&channel, &inner.lane_queue(Lane::Upload)).await?,
                bulk: Inner::ready(&channel, &inner.lane_queue(Lane::Bulk)).await?,
                dead: Inner::ready(&channel, &inner.dead_queue()).await?,
                retrying: 0,
            };
            for lane in Lane::ALL {
                for delay in &inner.retry_delays {
                    depths.retrying +=
                        Inner::ready(&channel, &inner.step_queue(lane, *delay)).await?;
                }
            }
            anyhow::Ok(depths)
        }
        .await;
        let _ = channel.close().await;
        counted
    }

    async fn publish_event(&self, event: &Event) -> anyhow::Result<()> {
        let inner = &self.inner;
        inner
            .publish(Outgoing {
                exchange: &inner.events_exchange(),
                routing_key: event.kind.as_str(),
                body: serde_json::to_vec(event)?,
                // Nobody may be listening to this kind: not an error.
                mandatory: false,
                headers: None,
            })
            .await
    }

    async fn subscribe_events(&self, listener: Listener) -> anyhow::Result<Box<dyn EventStream>> {
        let inner = &self.inner;
        let connection = inner.connect("events").await?;
        inner.declare(&connection).await?;
        let channel = connection.open_channel(None).await?;
        let (queue, manual_ack, prefetch) = match &listener {
            Listener::Live => {
                // Server-named, exclusive, auto-deleted: gone with this connection (and so
                // classic: a quorum queue cannot be exclusive).
                let (queue, ..) = channel
                    .queue_declare(QueueDeclareArguments::exclusive_server_named())
                    .await?
                    .ok_or_else(|| anyhow!("no queue name from the broker"))?;
                channel
                    .queue_bind(QueueBindArguments::new(
                        &queue,
                        &inner.events_exchange(),
                        "photo.*",
                    ))
                    .await?;
                // Auto-acked: the broker ignores a prefetch there.
                (queue, false, 16)
            }
            Listener::Durable { name, prefetch } => {
                let queue = inner.declare_durable_listener(&connection, name).await?;
                (queue, true, *prefetch)
            }
        };
        let subscription =
            Subscription::start(connection, channel, &queue, prefetch, manual_ack).await?;
        Ok(Box::new(AmqpEvents {
            subscription,
            manual_ack,
        }))
    }
}

/// A consumer on one connection of its own; ends when the connection does.
struct Subscription {
    connection: Connection,
    channel: Channel,
    deliveries: mpsc::UnboundedReceiver<amqprs::channel::ConsumerMessage>,
}

impl Subscription {
    async fn start(
        connection: Connection,
        channel: Channel,
        queue: &str,
        prefetch: u16,
        manual_ack: bool,
    ) -> anyhow::Result<Self> {
        channel.register_callback(ConsumerWatch).await?;
        channel
            .basic_qos(BasicQosArguments::new(0, prefetch, false))
            .await?;
        let mut consume = BasicConsumeArguments::new(queue, "");
        consume.manual_ack(manual_ack);
        let (_tag, deliveries) = channel.basic_consume_rx(consume).await?;
        Ok(Subscription {
            connection,
            channel,
            deliveries,
        })
    }

    /// The next message that parses as `T`, with its delivery tag.
    async fn next<T: serde::de::DeserializeOwned>(&mut self, manual_ack: bool) -> Option<(T, u64)> {
        loop {
            let message = tokio::select! {
                message = self.deliveries.recv() => message?,
                _ = self.connection.listen_network_io_failure() => return None,
            };
            if let Some(found) = self.read(message, manual_ack).await {
                return Some(found);
            }
        }
    }

    /// A pushed message as `T`, with its delivery tag; `None` when it does not parse.
    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        message: ConsumerMessage,
        manual_ack: bool,
    ) -> Option<(T, u64)> {
        let (Some(deliver), Some(content)) = (message.deliver, message.content) else {
            return None;
        };
        self.parse(deliver.delivery_tag(), &content, manual_ack)
            .await
    }

    /// A message's body as `T`. One that does not parse is dead-lettered: not ours to guess
    /// at, but kept where an operator will see it.
    async fn parse<T: serde::de::DeserializeOwned>(
        &self,
        tag: u64,
        content: &[u8],
        manual_ack: bool,
    ) -> Option<(T, u64)> {
        match serde_json::from_slice::<T>(content) {
            Ok(value) => Some((value, tag)),
            Err(error) => {
                tracing::error!(%error, "malformed message; dead-lettering it");
                if manual_ack {
                    let _ = self
                        .channel
                        .basic_nack(BasicNackArguments::new(tag, false, false))
                        .await;
                }
                None
            }
        }
    }

    fn settle(&self, tag: u64, inner: Option<Arc<Inner>>) -> AmqpSettle {
        AmqpSettle {
            channel: self.channel.clone(),
            tag,
            inner,
            _slot: None,
        }
    }

    async fn close(self) {
        let _ = self.channel.close().await;
        let _ = self.connection.close().await;
    }
}

/// A worker's jobs: uploads pushed by the broker (its consumer on `Q`), bulk jobs fetched one
/// by one from `Q.bulk` when no upload waits.
struct AmqpJobs {
    subscription: Subscription,
    inner: Arc<Inner>,
    bulk: String,
    /// The jobs it may run at once; a delivery holds one until it is settled or dropped.
    /// (The broker's prefetch bounds only the pushed uploads, not the fetched bulk jobs.)
    slots: Arc<Semaphore>,
}

impl AmqpJobs {
    fn delivery(&self, job: Job, tag: u64, slot: OwnedSemaphorePermit) -> Delivery {
        let settle = AmqpSettle {
            _slot: Some(slot),
            ..self.subscription.settle(tag, Some(self.inner.clone()))
        };
        Delivery {
            job,
            settle: Box::new(settle),
        }
    }

    /// One bulk job, if one waits; those that do not parse are dead-lettered on the way.
    async fn take_bulk(&self) -> anyhow::Result<Option<(Job, u64)>> {
        loop {
            let get = self
                .subscription
                .channel
                .basic_get(BasicGetArguments::new(&self.bulk));
            let got = tokio::time::timeout(GET_TIMEOUT, get)
                .await
                .map_err(|_| anyhow!("RabbitMQ did not answer within {GET_TIMEOUT:?}"))??;
            let Some((get_ok, _, content)) = got else {
                return Ok(None);
            };
            let parsed = self
                .subscription
                .parse::<Job>(get_ok.delivery_tag(), &content, true)
                .await;
            if parsed.is_some() {
                return Ok(parsed);
            }
        }
    }
}

#[async_trait]
impl JobStream for AmqpJobs {
    async fn next(&mut self) -> Option<Delivery> {
        // A free slot first: a job is taken only to be run at once.
        let slot = self.slots.clone().acquire_owned().await.ok()?;
        loop {
            // An upload the broker has already pushed goes before any bulk job.
            match self.subscription.deliveries.try_recv() {
                Ok(message) => {
                    if let Some((job, tag)) = self.subscription.read::<Job>(message, true).await {
                        return Some(self.delivery(job, tag, slot));
                    }
                    continue;
                }
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => {}
            }
            match self.take_bulk().await {
                Ok(Some((job, tag))) => return Some(self.delivery(job, tag, slot)),
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!("cannot take bulk work: {error:#}");
                    return None;
                }
            }
            // Both lanes empty: an upload is taken the moment it comes; bulk work is asked
            // for again after a while.
            tokio::select! {
                message = self.subscription.deliveries.recv() => {
                    if let Some((job, tag)) = self.subscription.read::<Job>(message?, true).await {
                        return Some(self.delivery(job, tag, slot));
                    }
                }
                _ = self.subscription.connection.listen_network_io_failure() => return None,
                _ = tokio::time::sleep(BULK_POLL) => {}
            }
        }
    }

    async fn close(self: Box<Self>) {
        self.subscription.close().await;
    }
}

struct AmqpEvents {
    subscription: Subscription,
    manual_ack: bool,
}

#[async_trait]
impl EventStream for AmqpEvents {
    async fn next(&mut self) -> Option<EventDelivery> {
        let (event, tag) = self.subscription.next::<Event>(self.manual_ack).await?;
        let settle: Box<dyn SettleEvent> = if self.manual_ack {
            Box::new(self.subscription.settle(tag, None))
        } else {
            Box::new(AutoAcked)
        };
        Some(EventDelivery { event, settle })
    }
}

/// Settles a delivery on the channel it came from.
struct AmqpSettle {
    channel: Channel,
    tag: u64,
    /// For publishing retries; jobs only.
    inner: Option<Arc<Inner>>,
    /// The worker's slot the job holds until it is settled (or dropped); jobs only.
    _slot: Option<OwnedSemaphorePermit>,
}

impl AmqpSettle {
    async fn ack(&self) -> anyhow::Result<()> {
        self.channel
            .basic_ack(BasicAckArguments::new(self.tag, false))
            .await
            .context("ack failed")
    }

    async fn dead_letter(&self) -> anyhow::Result<()> {
        self.channel
            .basic_nack(BasicNackArguments::new(self.tag, false, false))
            .await
            .context("dead-lettering failed")
    }
}

#[async_trait]
impl Settle for AmqpSettle {
    async fn ack(&self) -> anyhow::Result<()> {
        AmqpSettle::ack(self).await
    }

    async fn retry(&self, next: &Job, delay: Duration) -> anyhow::Result<()> {
        let inner = self
            .inner
            .as_ref()
            .ok_or_else(|| anyhow!("not a job delivery"))?;
        // Publish first: if we crash in between, the job runs twice, never zero times.
        let step = inner.step_queue(next.lane, inner.retry_step(delay));
        let published = inner.publish_job(&step, serde_json::to_vec(next)?).await;
        if let Err(error) = published {
            // Handed back rather than held: an unsettled delivery would take one of this
            // worker's prefetch slots for as long as its connection lives.
            let _ = self
                .channel
                .basic_nack(BasicNackArguments::new(self.tag, false, true))
                .await;
            return Err(error);
        }
        AmqpSettle::ack(self).await
    }

    async fn dead_letter(&self) -> anyhow::Result<()> {
        AmqpSettle::dead_letter(self).await
    }
}

#[async_trait]
impl SettleEvent for AmqpSettle {
    async fn ack(&self) -> anyhow::Result<()> {
        AmqpSettle::ack(self).await
    }

    async fn dead_letter(&self) -> anyhow::Result<()> {
        AmqpSettle::dead_letter(self).await
    }
}

/// Live events are acknowledged by the broker on delivery: nothing to settle.
struct AutoAcked;

#[async_trait]
impl SettleEvent for AutoAcked {
    async fn ack(&self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn dead_letter(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_setting_lists_one_url_per_node_and_a_password_may_hold_a_comma() {
        assert_eq!(
            node_urls("amqp://u:p@a:5672/%2f, amqp://u:p@b:5673/%2f,amqps://v:q@c/x"),
            [
                "amqp://u:p@a:5672/%2f",
                "amqp://u:p@b:5673/%2f",
                "amqps://v:q@c/x"
            ]
        );
        assert_eq!(
            node_urls("amqp://u:p,w@a/%2f,amqp://u:p,w@b/%2f"),
            ["amqp://u:p,w@a/%2f", "amqp://u:p,w@b/%2f"]
        );
        assert_eq!(
            node_urls("amqp://guest:guest@rabbitmq"),
            ["amqp://guest:guest@rabbitmq"]
        );
    }

    #[test]
    fn an_invalid_url_is_named_by_its_place_not_its_text() {
        let setting = SecretString::from("amqp://u:p@a/%2f,amqp://u:secret-7@b:notaport/%2f");
        let error = AmqpQueue::new(&setting, &QueueSettings::default(), "test")
            .err()
            .expect("refused");
        let error = format!("{error:#}");
        assert!(error.starts_with("URL 2 of 2: invalid AMQP URL"), "{error}");
        assert!(!error.contains("secret-7"), "{error}");
    }

    #[test]
    fn nodes_are_described_without_their_credentials() {
        let setting =
            SecretString::from("amqp://gallery:pw-1,x@10.0.0.1:5672/%2f,amqp://gallery:pw-2@r2/v");
        let described = AmqpQueue::describe_nodes(&setting);
        assert_eq!(described, "10.0.0.1:5672, r2:5672");
    }

    #[test]
    fn connections_go_round_the_nodes() {
        let settings = QueueSettings::default();
        let url = SecretString::from("amqp://u:p@a:1/%2f,amqp://u:p@b:2/%2f,amqp://u:p@c:3/%2f");
        let queue = AmqpQueue::new(&url, &settings, "test").expect("valid");
        let inner = &queue.inner;
        let first = inner.next_node.load(Ordering::Relaxed);
        let picks: Vec<u16> = (0..4)
            .map(|_| {
                let at = inner.next_node.fetch_add(1, Ordering::Relaxed);
                inner.nodes[at % 3].get_port()
            })
            .collect();
        let expected: Vec<u16> = (0..4).map(|n| [1, 2, 3][(first + n) % 3]).collect();
        assert_eq!(picks, expected);
    }

    #[test]
    fn a_retry_waits_in_the_nearest_step_of_its_lane() {
        let settings = QueueSettings {
            name: "jobs".into(),
            retry_delays: [4000, 2000, 8000, 2000].map(Duration::from_millis).to_vec(),
            ..QueueSettings::default()
        };
        let queue =
            AmqpQueue::new(&SecretString::from("amqp://u:p@h/%2f"), &settings, "t").expect("ok");
        let inner = &queue.inner;
        assert_eq!(
            inner.retry_delays,
            [2000, 4000, 8000].map(Duration::from_millis)
        );
        let step = |ms| inner.retry_step(Duration::from_millis(ms)).as_millis();
        assert_eq!([step(2000), step(4000), step(8000)], [2000, 4000, 8000]);
        assert_eq!(
            [step(0), step(2999), step(3000), step(3001)],
            [2000, 2000, 2000, 4000]
        );
        assert_eq!(step(3_600_000), 8000);
        assert_eq!(
            inner.step_queue(Lane::Bulk, Duration::from_millis(4000)),
            "jobs.bulk.retry.4000ms"
        );
    }

    #[test]
    fn vhost_is_percent_decoded_and_defaults_to_root() {
        assert_eq!(vhost_of("amqp://guest:guest@rabbitmq:5672/%2f"), "/");
        assert_eq!(vhost_of("amqp://guest:guest@rabbitmq:5672"), "/");
        assert_eq!(vhost_of("amqp://u:p@h:5672/photos?heartbeat=10"), "photos");
        assert_eq!(vhost_of("amqp://u:p@h/team%2Fphotos"), "team/photos");
    }
}
