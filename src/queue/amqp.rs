//! `JobQueue` on RabbitMQ via amqprs.
//!
//! Topology, all durable, named after the job queue `Q`:
//! - `Q` and `Q.bulk`: the two lanes' work queues (uploads, bulk work); rejected messages
//!   of both dead-letter to the fanout exchange `Q.dlx`, which feeds `Q.dead`, the one place
//!   an operator looks;
//! - `Q.retry` and `Q.bulk.retry`: hold a retried job of their lane for its per-message TTL,
//!   then dead-letter it back to the lane's queue through the default exchange — a delayed
//!   retry with no plugin, which keeps a bulk job in the bulk lane.
//!
//! A worker consumes `Q` with its prefetch, and takes a bulk job with `basic.get`, one at a
//! time, only when it has a free slot and nothing from `Q` is waiting in its buffer: bulk
//! jobs are never pushed to it, so none sits in a worker while an upload arrives. An upload
//! published just as a worker takes a bulk job waits for one job, no more. With both lanes
//! empty, the worker waits for an upload and asks for bulk work again every `BULK_POLL`.
//!
//! - `Q.events`: a topic exchange for photo events (`photo.queued`, `photo.processing`,
//!   `photo.done`, `photo.failed`); live listeners bind an exclusive queue to it, durable
//!   listeners (the notifier) a durable queue `Q.NAME` with its own `Q.NAME.dead`.
//!
//! Publishing waits for the broker's confirm. The publishing connection is opened lazily
//! and opened again after any failure, so a broker restart costs one failed attempt.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicGetArguments, BasicNackArguments,
    BasicPublishArguments, BasicQosArguments, Channel, ConfirmSelectArguments, ConsumerMessage,
    ExchangeDeclareArguments, QueueBindArguments, QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, FieldTable, FieldValue, Nack, Return};
use anyhow::{anyhow, bail, Context};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, Mutex, OwnedSemaphorePermit, Semaphore};

use super::{
    Delivery, Depths, EventDelivery, EventStream, JobQueue, JobStream, Listener, Settle,
    SettleEvent,
};
use crate::domain::{Event, EventKind, Job, Lane};

const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a `basic.get` may go unanswered before the subscription counts as lost.
const GET_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle worker asks for bulk work (uploads are pushed to it at once).
const BULK_POLL: Duration = Duration::from_secs(1);

/// The notifier's durable listener name.
pub const NOTIFY_LISTENER: &str = "notify";

pub struct AmqpQueue {
    inner: Arc<Inner>,
}

struct Inner {
    connect_args: OpenConnectionArguments,
    queue: String,
    publisher: Mutex<Option<Publisher>>,
}

impl AmqpQueue {
    /// Checks the URL only; connections are opened when first needed.
    pub fn new(url: &SecretString, queue: &str, role: &str) -> anyhow::Result<Self> {
        let mut connect_args = connection_args(url.expose_secret())?;
        connect_args.connection_name(&format!("gallery-{role}-{queue}"));
        Ok(AmqpQueue {
            inner: Arc::new(Inner {
                connect_args,
                queue: queue.to_owned(),
                publisher: Mutex::new(None),
            }),
        })
    }
}

impl Inner {
    /// The queue a lane's jobs wait in.
    fn lane_queue(&self, lane: Lane) -> String {
        match lane {
            Lane::Upload => self.queue.clone(),
            Lane::Bulk => format!("{}.bulk", self.queue),
        }
    }

    /// Where a lane's retried jobs wait out their delay.
    fn retry_queue(&self, lane: Lane) -> String {
        format!("{}.retry", self.lane_queue(lane))
    }

    fn dead_exchange(&self) -> String {
        format!("{}.dlx", self.queue)
    }

    fn dead_queue(&self) -> String {
        format!("{}.dead", self.queue)
    }

    fn events_exchange(&self) -> String {
        format!("{}.events", self.queue)
    }

    /// Opens a connection and channel that deliver from `queue`, at most `prefetch` unsettled.
    async fn subscribe(
        &self,
        queue: &str,
        prefetch: u16,
        manual_ack: bool,
    ) -> anyhow::Result<Subscription> {
        let connection = self.connect().await?;
        let channel = connection.open_channel(None).await?;
        self.declare(&channel)
            .await
            .context("could not declare the RabbitMQ queues")?;
        Subscription::start(connection, channel, queue, prefetch, manual_ack).await
    }

    async fn connect(&self) -> anyhow::Result<Connection> {
        let connection = Connection::open(&self.connect_args)
            .await
            .context("RabbitMQ is not reachable")?;
        Ok(connection)
    }

    async fn declare(&self, channel: &Channel) -> anyhow::Result<()> {
        let mut dlx = ExchangeDeclareArguments::new(&self.dead_exchange(), "fanout");
        dlx.durable = true;
        channel.exchange_declare(dlx).await?;
        channel
            .queue_declare(QueueDeclareArguments::durable_client_named(
                &self.dead_queue(),
            ))
            .await?;
        channel
            .queue_bind(QueueBindArguments::new(
                &self.dead_queue(),
                &self.dead_exchange(),
                "",
            ))
            .await?;

        for lane in Lane::ALL {
            let mut work = QueueDeclareArguments::durable_client_named(&self.lane_queue(lane));
            work.arguments(table(&[("x-dead-letter-exchange", self.dead_exchange())])?);
            channel.queue_declare(work).await?;

            let mut retry = QueueDeclareArguments::durable_client_named(&self.retry_queue(lane));
            retry.arguments(table(&[
                ("x-dead-letter-exchange", String::new()),
                ("x-dead-letter-routing-key", self.lane_queue(lane)),
            ])?);
            channel.queue_declare(retry).await?;
        }

        let mut events = ExchangeDeclareArguments::new(&self.events_exchange(), "topic");
        events.durable = true;
        channel.exchange_declare(events).await?;
        // Declared by every role, so finished photos are kept for the notifier even before
        // it first starts.
        self.declare_durable_listener(channel, NOTIFY_LISTENER)
            .await?;
        Ok(())
    }

    /// The durable queue `Q.NAME` of a listener that must miss nothing: finished photos only,
    /// with its own dead letters in `Q.NAME.dead`.
    async fn declare_durable_listener(
        &self,
        channel: &Channel,
        name: &str,
    ) -> anyhow::Result<String> {
        let queue = format!("{}.{name}", self.queue);
        let dead = format!("{queue}.dead");
        channel
            .queue_declare(QueueDeclareArguments::durable_client_named(&dead))
            .await?;
        let mut durable = QueueDeclareArguments::durable_client_named(&queue);
        durable.arguments(table(&[
            ("x-dead-letter-exchange", String::new()),
            ("x-dead-letter-routing-key", dead),
        ])?);
        channel.queue_declare(durable).await?;
        for key in [EventKind::Done, EventKind::Failed] {
            channel
                .queue_bind(QueueBindArguments::new(
                    &queue,
                    &self.events_exchange(),
                    key.as_str(),
                ))
                .await?;
        }
        Ok(queue)
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

    /// Publishes and waits for the confirm; reconnects once if the
    /// cached connection turns out to be dead.
    async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Vec<u8>,
        ttl: Option<Duration>,
    ) -> anyhow::Result<()> {
        let mut last_error = None;
        for _ in 0..2 {
            match self
                .publish_once(exchange, routing_key, body.clone(), ttl)
                .await
            {
                Ok(()) => return Ok(()),
                Err(error) => {
                    tracing::warn!(%error, "publish failed; reconnecting");
                    *self.publisher.lock().await = None;
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("publish failed")))
    }

    async fn publish_once(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Vec<u8>,
        ttl: Option<Duration>,
    ) -> anyhow::Result<()> {
        let confirmed = {
            // Held across register + publish so confirm tags match publish order.
            let mut guard = self.publisher.lock().await;
            let usable = guard.as_ref().is_some_and(Publisher::is_open);
            if !usable {
                *guard = Some(Publisher::open(self).await?);
            }
            let publisher = guard.as_ref().ok_or_else(|| anyhow!("no publisher"))?;
            let confirmed = publisher.confirms.register();
            let mut properties = BasicProperties::default();
            properties
                .with_persistence(true)
                .with_content_type("application/json");
            if let Some(ttl) = ttl {
                properties.with_expiration(&ttl.as_millis().to_string());
            }
            publisher
                .channel
                .basic_publish(
                    properties,
                    body,
                    BasicPublishArguments::new(exchange, routing_key),
                )
                .await
                .context("publish failed")?;
            confirmed
        };
        match tokio::time::timeout(CONFIRM_TIMEOUT, confirmed).await {
            Ok(Ok(true)) => Ok(()),
            Ok(Ok(false)) => bail!("RabbitMQ refused the message (nack)"),
            Ok(Err(_)) => bail!("channel closed before RabbitMQ confirmed the message"),
            Err(_) => bail!("RabbitMQ did not confirm the message within {CONFIRM_TIMEOUT:?}"),
        }
    }
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

fn table(entries: &[(&str, String)]) -> anyhow::Result<FieldTable> {
    let mut table = FieldTable::new();
    for (name, value) in entries {
        let name = (*name)
            .try_into()
            .map_err(|_| anyhow!("invalid AMQP argument name {name}"))?;
        table.insert(name, FieldValue::from(value.clone()));
    }
    Ok(table)
}

/// A connection and channel in confirm mode, used for every publish of this process.
struct Publisher {
    connection: Connection,
    channel: Channel,
    confirms: Arc<Confirms>,
}

impl Publisher {
    async fn open(inner: &Inner) -> anyhow::Result<Self> {
        let connection = inner.connect().await?;
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
    waiting: BTreeMap<u64, oneshot::Sender<bool>>,
}

impl Confirms {
    fn register(&self) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.last_tag += 1;
        let tag = state.last_tag;
        state.waiting.insert(tag, tx);
        rx
    }

    fn settle(&self, tag: u64, multiple: bool, acked: bool) {
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
                let _ = waiter.send(acked);
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
        self.0.settle(ack.delivery_tag(), ack.mutiple(), true);
    }
    async fn publish_nack(&mut self, _channel: &Channel, nack: Nack) {
        self.0.settle(nack.delivery_tag(), nack.multiple(), false);
    }
    async fn publish_return(
        &mut self,
        _channel: &Channel,
        _ret: Return,
        _props: BasicProperties,
        _content: Vec<u8>,
    ) {
    }
}

#[async_trait]
impl JobQueue for AmqpQueue {
    async fn prepare(&self) -> anyhow::Result<()> {
        let connection = self.inner.connect().await?;
        let channel = connection.open_channel(None).await?;
        let declared = self.inner.declare(&channel).await;
        let _ = channel.close().await;
        let _ = connection.close().await;
        declared.context("could not declare the RabbitMQ queues")
    }

    async fn check(&self) -> anyhow::Result<()> {
        self.inner.publishing_connection().await.map(drop)
    }

    async fn publish(&self, job: &Job) -> anyhow::Result<()> {
        let inner = &self.inner;
        inner
            .publish(
                "",
                &inner.lane_queue(job.lane),
                serde_json::to_vec(job)?,
                None,
            )
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
                depths.retrying += Inner::ready(&channel, &inner.retry_queue(lane)).await?;
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
            .publish(
                &inner.events_exchange(),
                event.kind.as_str(),
                serde_json::to_vec(event)?,
                None,
            )
            .await
    }

    async fn subscribe_events(&self, listener: Listener) -> anyhow::Result<Box<dyn EventStream>> {
        let inner = &self.inner;
        let connection = inner.connect().await?;
        let channel = connection.open_channel(None).await?;
        inner
            .declare(&channel)
            .await
            .context("could not declare the RabbitMQ queues")?;
        let exchange = inner.events_exchange();
        let (queue, manual_ack, prefetch) = match &listener {
            Listener::Live => {
                // Server-named, exclusive, auto-deleted: gone with this connection.
                let (queue, ..) = channel
                    .queue_declare(QueueDeclareArguments::exclusive_server_named())
                    .await?
                    .ok_or_else(|| anyhow!("no queue name from the broker"))?;
                channel
                    .queue_bind(QueueBindArguments::new(&queue, &exchange, "photo.*"))
                    .await?;
                // Auto-acked: the broker ignores a prefetch there.
                (queue, false, 16)
            }
            Listener::Durable { name, prefetch } => {
                let queue = inner.declare_durable_listener(&channel, name).await?;
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
        let delay = delay.max(Duration::from_millis(1));
        let published = inner
            .publish(
                "",
                &inner.retry_queue(next.lane),
                serde_json::to_vec(next)?,
                Some(delay),
            )
            .await;
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
    use super::vhost_of;

    #[test]
    fn vhost_is_percent_decoded_and_defaults_to_root() {
        assert_eq!(vhost_of("amqp://guest:guest@rabbitmq:5672/%2f"), "/");
        assert_eq!(vhost_of("amqp://guest:guest@rabbitmq:5672"), "/");
        assert_eq!(vhost_of("amqp://u:p@h:5672/photos?heartbeat=10"), "photos");
        assert_eq!(vhost_of("amqp://u:p@h/team%2Fphotos"), "team/photos");
    }
}
