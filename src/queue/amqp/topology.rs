//! What `AmqpQueue` declares, and how an older version's classic queues become quorum ones.
//!
//! `specs` lists every durable queue, in the order they are declared. `Inner::declare`
//! declares them as they are (on every subscription); `Inner::prepare`, which every role runs
//! at start, also moves the classic queues an older version left under the same names, since
//! RabbitMQ refuses to declare a quorum queue over a classic one (`406 PRECONDITION_FAILED -
//! inequivalent arg`, naming `x-queue-type` or another argument the older queue lacks):
//! 1. it holds a lock, the exclusive queue `Q.preparing`, so one process moves at a time (and a
//!    crashed one's lock goes with its connection); another process starting meanwhile waits;
//! 2. it moves the classic queue's messages, and those of the older retry queue feeding it
//!    (`Q.retry`, `Q.bulk.retry`, whose jobs then run before their delay is out), into the
//!    durable queue `Q.migrating`, each marked with the queue it belongs to, each confirmed
//!    there before it is acked where it was;
//! 3. it deletes the classic queue once it is empty and nobody consumes it (an older worker
//!    or notifier still attached stops the move, saying so), and declares the quorum queue;
//! 4. once every queue is quorum, it moves `Q.migrating`'s messages to their queues and
//!    deletes it, again only once it is empty. (`Q.migrating` is a classic queue: RabbitMQ
//!    3.10 deletes a quorum queue only unconditionally, and refuses an if-empty delete by
//!    closing the connection.)
//!
//! Interrupted anywhere, the next start takes up where it stopped (`Q.migrating` is looked for
//! at every start): a message is copied before it is removed, so it may arrive twice (a job
//! or an event handled twice is harmless) but is never lost. What it cannot see: an older
//! process still publishing (a `gallery web` of the older version), whose job would be
//! dropped in the instant between the classic queue's deletion and the quorum queue's
//! declaration; hence stop the older roles before starting this version.

use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{
    BasicAckArguments, BasicGetArguments, BasicNackArguments, Channel, ExchangeDeclareArguments,
    QueueBindArguments, QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::connection::Connection;
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, FieldTable, FieldValue, Nack, Return};
use anyhow::{anyhow, bail};
use async_trait::async_trait;

use super::{Inner, Outgoing, NOTIFY_LISTENER};
use crate::domain::{EventKind, Lane};

/// The header that says which queue a message waiting in `Q.migrating` belongs to.
const HOME_HEADER: &str = "x-gallery-home";

/// A durable queue: a quorum queue with its arguments and bindings.
pub(super) struct QueueSpec {
    name: String,
    arguments: FieldTable,
    /// (exchange, routing key)
    bindings: Vec<(String, String)>,
    /// The older version's queues besides this name whose messages belong here now.
    older: Vec<String>,
}

impl QueueSpec {
    fn new(name: String, arguments: FieldTable) -> Self {
        QueueSpec {
            name,
            arguments,
            bindings: Vec::new(),
            older: Vec::new(),
        }
    }

    fn bound(mut self, exchange: String, routing_key: &str) -> Self {
        self.bindings.push((exchange, routing_key.to_owned()));
        self
    }
}

/// A quorum queue's arguments: where its messages dead-letter (exchange, and routing key
/// unless they keep their own), and how long they wait before they do.
fn quorum(
    dead_letter: Option<(&str, Option<&str>)>,
    ttl: Option<Duration>,
) -> anyhow::Result<FieldTable> {
    let mut arguments = vec![("x-queue-type", FieldValue::from("quorum"))];
    if let Some((exchange, routing_key)) = dead_letter {
        arguments.push(("x-dead-letter-exchange", exchange.into()));
        if let Some(routing_key) = routing_key {
            arguments.push(("x-dead-letter-routing-key", routing_key.into()));
        }
        // A dead letter leaves its queue only once its destination has confirmed it. Needs the
        // reject-publish overflow: with any other, RabbitMQ falls back to at most once and
        // says so only in its own log.
        arguments.push(("x-dead-letter-strategy", "at-least-once".into()));
        arguments.push(("x-overflow", "reject-publish".into()));
    }
    if let Some(ttl) = ttl {
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        arguments.push(("x-message-ttl", FieldValue::l(millis)));
    }
    table(arguments)
}

fn table(entries: Vec<(&str, FieldValue)>) -> anyhow::Result<FieldTable> {
    let mut table = FieldTable::new();
    for (name, value) in entries {
        let key = name
            .try_into()
            .map_err(|_| anyhow!("invalid AMQP argument name {name}"))?;
        table.insert(key, value);
    }
    Ok(table)
}

impl Inner {
    /// The queue a lane's jobs wait in.
    pub(super) fn lane_queue(&self, lane: Lane) -> String {
        match lane {
            Lane::Upload => self.queue.clone(),
            Lane::Bulk => format!("{}.bulk", self.queue),
        }
    }

    /// Where a lane's retried jobs wait out one step of the retry schedule.
    pub(super) fn step_queue(&self, lane: Lane, step: Duration) -> String {
        format!("{}.retry.{}ms", self.lane_queue(lane), step.as_millis())
    }

    /// The schedule's step nearest to `delay` (the shorter on a tie).
    pub(super) fn retry_step(&self, delay: Duration) -> Duration {
        self.retry_delays
            .iter()
            .copied()
            .min_by_key(|&step| step.max(delay) - step.min(delay))
            .unwrap_or(delay)
    }

    pub(super) fn dead_exchange(&self) -> String {
        format!("{}.dlx", self.queue)
    }

    pub(super) fn dead_queue(&self) -> String {
        format!("{}.dead", self.queue)
    }

    pub(super) fn events_exchange(&self) -> String {
        format!("{}.events", self.queue)
    }

    /// Where messages wait while their classic queue becomes a quorum one.
    fn holding_queue(&self) -> String {
        format!("{}.migrating", self.queue)
    }

    /// Held (exclusively) by the process preparing the queues.
    fn lock_queue(&self) -> String {
        format!("{}.preparing", self.queue)
    }

    /// Every durable queue, in the order they are declared: a dead-letter queue before the
    /// queues that feed it, a lane's delay queues before the lane.
    fn specs(&self) -> anyhow::Result<Vec<QueueSpec>> {
        let mut specs =
            vec![QueueSpec::new(self.dead_queue(), quorum(None, None)?)
                .bound(self.dead_exchange(), "")];
        // Declared by every role, so finished photos are kept for the notifier even before
        // it first starts.
        specs.extend(self.listener_specs(NOTIFY_LISTENER)?);
        for lane in Lane::ALL {
            let lane_queue = self.lane_queue(lane);
            for step in &self.retry_delays {
                let back = Some(("", Some(lane_queue.as_str())));
                specs.push(QueueSpec::new(
                    self.step_queue(lane, *step),
                    quorum(back, Some(*step))?,
                ));
            }
            let dead = self.dead_exchange();
            let mut work = QueueSpec::new(lane_queue.clone(), quorum(Some((&dead, None)), None)?);
            work.older.push(format!("{lane_queue}.retry"));
            specs.push(work);
        }
        Ok(specs)
    }

    /// A durable listener's queues: `Q.NAME.dead`, then `Q.NAME`, which takes finished photos'
    /// events.
    fn listener_specs(&self, name: &str) -> anyhow::Result<[QueueSpec; 2]> {
        let queue = format!("{}.{name}", self.queue);
        let dead = format!("{queue}.dead");
        let dead_spec = QueueSpec::new(dead.clone(), quorum(None, None)?);
        let mut spec = QueueSpec::new(queue, quorum(Some(("", Some(&dead))), None)?);
        for kind in [EventKind::Done, EventKind::Failed] {
            spec = spec.bound(self.events_exchange(), kind.as_str());
        }
        Ok([dead_spec, spec])
    }

    /// Every durable queue (with the holding queue of a move from classic ones), then every
    /// exchange.
    pub(super) fn durable_names(&self) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let mut queues: Vec<String> = self.specs()?.into_iter().map(|spec| spec.name).collect();
        queues.push(self.holding_queue());
        Ok((queues, vec![self.dead_exchange(), self.events_exchange()]))
    }

    /// Declares the exchanges and every durable queue as they are.
    pub(super) async fn declare(&self, connection: &Connection) -> anyhow::Result<()> {
        let mut declarer = Declarer::open(connection).await?;
        let declared = self.declare_with(&mut declarer).await;
        declarer.close().await;
        declared
    }

    async fn declare_with(&self, declarer: &mut Declarer<'_>) -> anyhow::Result<()> {
        self.declare_exchanges(declarer).await?;
        for spec in self.specs()? {
            declarer
                .queue(&spec)
                .await
                .map_err(|error| explained(&spec, error))?;
        }
        Ok(())
    }

    /// Declares a durable listener's queues; answers the one to consume.
    pub(super) async fn declare_durable_listener(
        &self,
        connection: &Connection,
        name: &str,
    ) -> anyhow::Result<String> {
        let mut declarer = Declarer::open(connection).await?;
        let mut declared = Ok(());
        let specs = self.listener_specs(name)?;
        for spec in &specs {
            declared = declarer
                .queue(spec)
                .await
                .map_err(|error| explained(spec, error));
            if declared.is_err() {
                break;
            }
        }
        declarer.close().await;
        declared.map(|()| specs[1].name.clone())
    }

    async fn declare_exchanges(&self, declarer: &mut Declarer<'_>) -> anyhow::Result<()> {
        declarer.exchange(&self.dead_exchange(), "fanout").await?;
        declarer.exchange(&self.events_exchange(), "topic").await
    }

    /// Declares everything, moving an older version's classic queues to quorum ones first
    /// (see the module's doc), and finishes a move an earlier start left half done.
    pub(super) async fn prepare(&self, connection: &Connection) -> anyhow::Result<()> {
        let mut declarer = Declarer::open(connection).await?;
        let prepared = self.prepare_with(&mut declarer).await;
        declarer.close().await;
        prepared
    }

    async fn prepare_with(&self, declarer: &mut Declarer<'_>) -> anyhow::Result<()> {
        declarer.lock(&self.lock_queue()).await?;
        self.declare_exchanges(declarer).await?;
        let mut moved = false;
        for spec in self.specs()? {
            match declarer.queue(&spec).await {
                Ok(()) => continue,
                Err(error) if is_older(&error) => {}
                Err(error) => return Err(explained(&spec, error)),
            }
            tracing::warn!(
                "{} is a queue of an older gallery (classic): moving its messages to a quorum \
                 queue of the same name",
                spec.name
            );
            // The older retry queue first: its jobs expire into the classic queue.
            for older in spec.older.iter().chain([&spec.name]) {
                self.hold(declarer, older, &spec.name).await?;
            }
            declarer
                .queue(&spec)
                .await
                .map_err(|error| explained(&spec, error))?;
            moved = true;
        }
        if moved || declarer.passive(&self.holding_queue()).await?.is_some() {
            self.return_held(declarer).await?;
        }
        Ok(())
    }

    /// Moves every message of the older queue `from` into the holding queue, marked as
    /// belonging to `home`, then deletes `from`. Nothing to do when `from` does not exist.
    async fn hold(
        &self,
        declarer: &mut Declarer<'_>,
        from: &str,
        home: &str,
    ) -> anyhow::Result<()> {
        let classic = table(vec![("x-queue-type", "classic".into())])?;
        let holding = QueueSpec::new(self.holding_queue(), classic);
        declarer.queue(&holding).await?;
        let mut moved = 0;
        loop {
            let Some((_, consumers)) = declarer.passive(from).await? else {
                break;
            };
            if consumers > 0 {
                bail!(
                    "{from} is a queue of an older gallery (classic) and {consumers} consumer(s) \
                     still read it (a worker or notifier of the older version?): stop every role \
                     of the older version; its messages move to a quorum queue at the next start"
                );
            }
            moved += self
                .move_messages(declarer, from, Destination::Hold { home })
                .await?;
            // Something arrived meanwhile, or someone attached: round again.
            if declarer.delete_if_drained(from).await? {
                break;
            }
        }
        if moved > 0 {
            tracing::info!(
                "moved {moved} messages from the older queue {from} to {} for {home}",
                holding.name
            );
        }
        Ok(())
    }

    /// Moves the holding queue's messages to the queues they belong to, then deletes it.
    async fn return_held(&self, declarer: &mut Declarer<'_>) -> anyhow::Result<()> {
        let holding = self.holding_queue();
        let mut moved = 0;
        loop {
            moved += self
                .move_messages(declarer, &holding, Destination::Home)
                .await?;
            if declarer.delete_if_drained(&holding).await? {
                break;
            }
        }
        tracing::info!("moved {moved} messages from {holding} to their quorum queues");
        Ok(())
    }

    /// Moves messages out of `from` one at a time until it is empty, each confirmed where it
    /// goes before it is acked where it was: a move cut short leaves a message in both
    /// places, never in neither. Answers how many moved.
    async fn move_messages(
        &self,
        declarer: &mut Declarer<'_>,
        from: &str,
        destination: Destination<'_>,
    ) -> anyhow::Result<u64> {
        let holding = self.holding_queue();
        let mut moved = 0;
        while let Some((tag, properties, body)) = declarer.get(from).await? {
            let (routing_key, headers) = match destination {
                Destination::Hold { home } => (
                    holding.clone(),
                    Some(table(vec![(HOME_HEADER, home.into())])?),
                ),
                // A message with no home (put there by hand?) is kept where an operator looks.
                Destination::Home => (
                    home_of(&properties).unwrap_or_else(|| self.dead_queue()),
                    None,
                ),
            };
            let published = self
                .publish(Outgoing {
                    exchange: "",
                    routing_key: &routing_key,
                    body,
                    mandatory: true,
                    headers,
                })
                .await;
            if let Err(error) = published {
                declarer.requeue(tag).await;
                return Err(error.context(format!("could not move a message from {from}")));
            }
            declarer.ack(tag).await?;
            moved += 1;
        }
        Ok(moved)
    }
}

/// Where `move_messages` sends each message.
#[derive(Clone, Copy)]
enum Destination<'a> {
    /// To the holding queue, marked as belonging to `home`.
    Hold { home: &'a str },
    /// To the queue its mark names.
    Home,
}

/// The queue a held message belongs to.
fn home_of(properties: &BasicProperties) -> Option<String> {
    let key = HOME_HEADER.try_into().ok()?;
    match properties.headers()?.get(&key)? {
        FieldValue::S(home) => Some(String::from(home.clone())),
        _ => None,
    }
}

/// Whether the broker refused a queue because an older version's has its name: not a quorum
/// queue, or one without the dead-lettering arguments this version adds. (RabbitMQ names the
/// first argument it finds different, which may be any of those.)
fn is_older(error: &anyhow::Error) -> bool {
    let Some(refusal) = error.downcast_ref::<Refusal>() else {
        return false;
    };
    let differs = |argument: &str| {
        refusal
            .text
            .contains(&format!("inequivalent arg '{argument}'"))
    };
    refusal.code == 406
        && (differs("x-queue-type")
            || ((differs("x-overflow") || differs("x-dead-letter-strategy"))
                && refusal.text.contains("current is none")))
}

/// A refused declaration, with what to do about it.
fn explained(spec: &QueueSpec, error: anyhow::Error) -> anyhow::Error {
    let name = &spec.name;
    if is_older(&error) {
        error.context(format!(
            "{name} is a queue of an older gallery (classic), and this version uses quorum \
             queues: starting any gallery role moves its messages to a quorum queue (stop the \
             older version's roles first)"
        ))
    } else if error.downcast_ref::<Refusal>().is_some() {
        error.context(format!(
            "RabbitMQ refused the queue {name} as this version declares it: an existing queue \
             of that name differs (delete it once it is empty, e.g. `rabbitmqctl delete_queue \
             {name} --if-empty`)"
        ))
    } else {
        error.context(format!("could not declare the queue {name}"))
    }
}

/// Why the broker closed a channel, in its words (`406 PRECONDITION_FAILED - …`).
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    code: u16,
    text: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RabbitMQ refused: {} {}", self.code, self.text)
    }
}

impl std::error::Error for Refusal {}

/// A channel to declare and move queues on. The broker answers a refused call by closing the
/// channel: this one keeps why (`Refusal`, in the call's error) and opens another.
struct Declarer<'c> {
    connection: &'c Connection,
    channel: Channel,
    refusal: Arc<SyncMutex<Option<Refusal>>>,
}

impl<'c> Declarer<'c> {
    async fn open(connection: &'c Connection) -> anyhow::Result<Declarer<'c>> {
        let refusal = Arc::new(SyncMutex::new(None));
        let channel = Self::channel(connection, &refusal).await?;
        Ok(Declarer {
            connection,
            channel,
            refusal,
        })
    }

    async fn channel(
        connection: &Connection,
        refusal: &Arc<SyncMutex<Option<Refusal>>>,
    ) -> anyhow::Result<Channel> {
        let channel = connection.open_channel(None).await?;
        channel
            .register_callback(RefusalListener(refusal.clone()))
            .await?;
        Ok(channel)
    }

    /// The call's result; a failure carries the broker's refusal when there was one, and
    /// leaves an open channel for the next call.
    async fn checked<T>(&mut self, result: Result<T, amqprs::error::Error>) -> anyhow::Result<T> {
        let error = match result {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        // The close callback runs before the call sees its channel gone.
        let refusal = self
            .refusal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if !self.channel.is_open() {
            self.channel = Self::channel(self.connection, &self.refusal).await?;
        }
        Err(match refusal {
            Some(refusal) => anyhow::Error::new(refusal),
            None => anyhow::Error::new(error),
        })
    }

    async fn exchange(&mut self, name: &str, kind: &str) -> anyhow::Result<()> {
        let mut exchange = ExchangeDeclareArguments::new(name, kind);
        exchange.durable = true;
        let declared = self.channel.exchange_declare(exchange).await;
        self.checked(declared).await
    }

    /// Declares a queue and its bindings.
    async fn queue(&mut self, spec: &QueueSpec) -> anyhow::Result<()> {
        let mut queue = QueueDeclareArguments::durable_client_named(&spec.name);
        queue.arguments(spec.arguments.clone());
        let declared = self.channel.queue_declare(queue).await;
        self.checked(declared).await?;
        for (exchange, routing_key) in &spec.bindings {
            let bound = self
                .channel
                .queue_bind(QueueBindArguments::new(&spec.name, exchange, routing_key))
                .await;
            self.checked(bound).await?;
        }
        Ok(())
    }

    /// Messages ready and consumers of `queue`; `None` when there is no such queue.
    async fn passive(&mut self, queue: &str) -> anyhow::Result<Option<(u32, u32)>> {
        let mut passive = QueueDeclareArguments::new(queue);
        passive.passive(true);
        let declared = self.channel.queue_declare(passive).await;
        match self.checked(declared).await {
            Ok(Some((_, messages, consumers))) => Ok(Some((messages, consumers))),
            Ok(None) => Err(anyhow!("no declare-ok for {queue}")),
            Err(error) if refused_with(&error, 404) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Deletes the classic queue `queue` if it is empty and unused; answers whether it is
    /// gone. (A quorum queue's broker would close the connection instead.)
    async fn delete_if_drained(&mut self, queue: &str) -> anyhow::Result<bool> {
        let mut delete = QueueDeleteArguments::new(queue);
        delete.if_empty = true;
        delete.if_unused = true;
        let deleted = self.channel.queue_delete(delete).await;
        match self.checked(deleted).await {
            Ok(_) => Ok(true),
            Err(error) if refused_with(&error, 406) => Ok(false),
            Err(error) if refused_with(&error, 404) => Ok(true),
            Err(error) => Err(error),
        }
    }

    /// The next message of `queue`, to be acked or requeued.
    async fn get(
        &mut self,
        queue: &str,
    ) -> anyhow::Result<Option<(u64, BasicProperties, Vec<u8>)>> {
        let got = self.channel.basic_get(BasicGetArguments::new(queue)).await;
        Ok(self
            .checked(got)
            .await?
            .map(|(get_ok, properties, body)| (get_ok.delivery_tag(), properties, body)))
    }

    async fn ack(&mut self, tag: u64) -> anyhow::Result<()> {
        let acked = self
            .channel
            .basic_ack(BasicAckArguments::new(tag, false))
            .await;
        self.checked(acked).await
    }

    /// Hands a message back; if that fails, the channel's end hands it back anyway.
    async fn requeue(&mut self, tag: u64) {
        let _ = self
            .channel
            .basic_nack(BasicNackArguments::new(tag, false, true))
            .await;
    }

    /// Takes the lock `queue` (an exclusive queue) for as long as the connection lives.
    async fn lock(&mut self, queue: &str) -> anyhow::Result<()> {
        let mut lock = QueueDeclareArguments::new(queue);
        lock.exclusive(true).auto_delete(true);
        // Classic whatever the broker's default type: a quorum queue cannot be exclusive.
        lock.arguments(table(vec![("x-queue-type", "classic".into())])?);
        let declared = self.channel.queue_declare(lock).await;
        match self.checked(declared).await {
            Ok(_) => Ok(()),
            Err(error) if refused_with(&error, 405) => Err(error.context(
                "another gallery process is preparing the queues (moving classic ones to \
                 quorum queues?): waiting for it",
            )),
            Err(error) => Err(error),
        }
    }

    async fn close(self) {
        let _ = self.channel.close().await;
    }
}

fn refused_with(error: &anyhow::Error, code: u16) -> bool {
    error
        .downcast_ref::<Refusal>()
        .is_some_and(|refusal| refusal.code == code)
}

/// Keeps why the broker closed a `Declarer`'s channel.
struct RefusalListener(Arc<SyncMutex<Option<Refusal>>>);

#[async_trait]
impl ChannelCallback for RefusalListener {
    async fn close(
        &mut self,
        _channel: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Refusal {
            code: close.reply_code(),
            text: close.reply_text().clone(),
        });
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
