//! The notifier role: listens for finished photos on a durable queue and tells the uploader
//! by e-mail, Telegram or webhook what was done to which file. It runs apart from the
//! workers, so it never slows processing, and its queue keeps events while it is down.
//! Photos reprocessed in bulk (`gallery reprocess`) are nobody's news: their events are acked
//! untold.
//!
//! One failure holds back nothing else:
//! - up to `concurrency` events are handled at once (also the queue's prefetch), and each
//!   send of an event (every channel, every recipient) runs and is retried on its own, so a
//!   receiver that hangs or keeps failing delays no other event and no other channel;
//! - a receiver that refuses for good (HTTP 4xx but 408 and 429, SMTP 5xx) is not asked again;
//! - each send that succeeds is recorded at once in the ledger of sends (`ledger`), and an
//!   event delivered again skips whoever the ledger says was told: after a kill -9 mid-retry,
//!   only the sends that had not succeeded are made again.
//!
//! An event is acked once all its sends succeeded, dead-lettered once one failed for good
//! (refused, or out of tries), and left unsettled, to be delivered again, when the notifier
//! stops or loses its subscription first: then each send finishes the try it is in (so no
//! answer is lost between the receiver and the ledger) and starts no other. It is never acked
//! with a send unmade.
//!
//! What that promises: every recipient of a finished photo is told, unless its receiver
//! refused or failed through every try (the event then waits in the dead-letter queue, and
//! whoever was told is in the ledger should it be sent again). And told once, but for one
//! window where it is at least once: a send whose success did not reach the ledger (the
//! process died between the receiver's answer and the ledger write, or the write failed,
//! which is logged) is made again if its event is delivered again. A ledger that cannot be
//! read counts as "not sent" too: better told twice than never.

pub mod channels;
pub mod ledger;
pub mod message;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use self::channels::{Email, Refused, Telegram, Webhook};
use self::ledger::{Entry, Ledger};
use self::message::Message;
use crate::backends::Backends;
use crate::domain::Event;
use crate::domain::{Lane, Lang};
use crate::metrics::{Metrics, SendOutcome};
use crate::queue::{EventDelivery, EventStream, Listener, NOTIFY_LISTENER};
use crate::retry::{until_ok, RetryPolicy};

/// Where and how to send; a channel without its settings is off.
#[derive(Debug, Clone)]
pub struct NotifierSettings {
    pub smtp_url: Option<SecretString>,
    pub smtp_from: Option<String>,
    pub telegram_token: Option<SecretString>,
    pub telegram_api: String,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<SecretString>,
    /// Told about every photo, besides the uploader's own targets.
    pub default_email: Option<String>,
    pub default_telegram: Option<String>,
    pub lang: Lang,
    /// Tries per channel and message, and the waits between them.
    pub attempts: u32,
    pub retry: RetryPolicy,
    /// Events handled at once (also the queue's prefetch): one whose receivers are slow or
    /// dead holds back none of the others while fewer than this many are stuck.
    pub concurrency: u16,
}

impl Default for NotifierSettings {
    /// Every channel off; 5 tries per send, 2 s apart doubling; 16 events at once.
    fn default() -> Self {
        NotifierSettings {
            smtp_url: None,
            smtp_from: None,
            telegram_token: None,
            telegram_api: "https://api.telegram.org".into(),
            webhook_url: None,
            webhook_secret: None,
            default_email: None,
            default_telegram: None,
            lang: Lang::En,
            attempts: 5,
            retry: RetryPolicy::doubling(Duration::from_secs(2)),
            concurrency: 16,
        }
    }
}

impl NotifierSettings {
    /// Whether any channel is configured at all.
    pub fn any_channel(&self) -> bool {
        self.smtp_url.is_some() || self.telegram_token.is_some() || self.webhook_url.is_some()
    }
}

struct Channels {
    email: Option<Email>,
    telegram: Option<Telegram>,
    webhook: Option<Webhook>,
}

impl Channels {
    fn new(config: &NotifierSettings) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()?;
        let email = match (&config.smtp_url, &config.smtp_from) {
            (Some(url), Some(from)) => Some(Email::new(url.expose_secret(), from)?),
            _ => {
                tracing::info!("e-mail off: set GALLERY_SMTP_URL and GALLERY_SMTP_FROM to send it");
                None
            }
        };
        let telegram = config.telegram_token.as_ref().map(|token| {
            Telegram::new(client.clone(), &config.telegram_api, token.expose_secret())
        });
        if telegram.is_none() {
            tracing::info!("Telegram off: set GALLERY_TELEGRAM_TOKEN to send it");
        }
        let webhook = config.webhook_url.as_ref().map(|url| {
            Webhook::new(
                client.clone(),
                url,
                config
                    .webhook_secret
                    .as_ref()
                    .map(|secret| secret.expose_secret())
                    .unwrap_or_default(),
            )
        });
        if webhook.is_none() {
            tracing::info!("webhook off: set GALLERY_WEBHOOK_URL to send it");
        }
        Ok(Channels {
            email,
            telegram,
            webhook,
        })
    }
}

/// Everything a send needs, shared by the events in hand.
struct Context {
    channels: Channels,
    config: NotifierSettings,
    ledger: Ledger,
    /// Counts every send by channel and outcome.
    metrics: Metrics,
}

/// How the sends of an event ended, worst last: an event's outcome is its sends' worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Sent,
    /// Refused, or out of tries.
    Failed,
    /// Stopped before it was done (the notifier stops, or its subscription ended).
    Halted,
}

/// Runs until `shutdown` turns true (or its sender is gone); resubscribes whenever the bus
/// connection drops.
pub async fn run(
    backends: Backends,
    config: NotifierSettings,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let concurrency = config.concurrency.max(1);
    let context = Arc::new(Context {
        channels: Channels::new(&config)?,
        ledger: Ledger::new(backends.accounts.store()),
        metrics: backends.metrics.clone(),
        config,
    });
    loop {
        let listener = || {
            backends.queue.subscribe_events(Listener::Durable {
                name: NOTIFY_LISTENER.into(),
                prefetch: concurrency,
            })
        };
        let subscribed = until_ok(
            RetryPolicy::RECONNECT,
            "cannot subscribe to photo events",
            Some(&mut shutdown),
            listener,
        );
        let Some(events) = subscribed.await else {
            break;
        };
        tracing::info!(concurrency, "notifier listening for finished photos");
        listen(&context, events, concurrency, &mut shutdown).await;
        if stopping(&shutdown) {
            break;
        }
    }
    tracing::info!("notifier stopped");
    Ok(())
}

/// Handles the events of one subscription, up to `concurrency` at once, until it ends or the
/// notifier stops; returns once every event it took has ended.
async fn listen(
    context: &Arc<Context>,
    mut events: Box<dyn EventStream>,
    concurrency: u16,
    shutdown: &mut watch::Receiver<bool>,
) {
    // Turned on when this subscription is over. The events in hand then stop retrying rather
    // than go on: their acks could no longer reach the broker (or the process is leaving), so
    // they will be delivered again, and a copy still retrying beside the redelivered one
    // could tell someone twice.
    let (halt, halted) = watch::channel(false);
    let mut in_flight = JoinSet::new();
    loop {
        while in_flight.try_join_next().is_some() {}
        if in_flight.len() >= usize::from(concurrency) {
            // The queue hands out no more than this either (prefetch); waiting here keeps
            // the bound whatever the queue does.
            tokio::select! {
                biased;
                () = stopped(shutdown) => break,
                _ = in_flight.join_next() => continue,
            }
        }
        let delivery = tokio::select! {
            biased;
            () = stopped(shutdown) => break,
            delivery = events.next() => delivery,
        };
        let Some(delivery) = delivery else {
            tracing::warn!("event subscription ended (broker connection lost); resubscribing");
            break;
        };
        let span = tracing::info_span!("event", id = %delivery.event.photo.id);
        in_flight.spawn(handle(context.clone(), delivery, halted.clone()).instrument(span));
    }
    let _ = halt.send(true);
    if !in_flight.is_empty() {
        tracing::info!(
            events = in_flight.len(),
            "letting the events in hand finish the tries in progress; the unfinished ones \
             will be delivered again"
        );
    }
    while in_flight.join_next().await.is_some() {}
}

/// Whether the notifier is to stop: told so, or nobody is left to tell it.
fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Returns once `stopping` holds.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn handle(context: Arc<Context>, delivery: EventDelivery, halted: watch::Receiver<bool>) {
    let event = &delivery.event;
    // The uploader reads their own language; the operator's recipients and webhook, the
    // operator's.
    let rendered = (
        message::render(event, event.photo.notify.lang),
        message::render(event, context.config.lang),
    );
    let outcome = match rendered {
        // Reprocessing (the bulk lane) changes nothing anyone asked for: nobody is told.
        _ if event.photo.lane == Lane::Bulk => Outcome::Sent,
        (Some(own), Some(operator)) => notify(&context, event, &own, &operator, &halted).await,
        // Nothing to tell about this kind of event.
        _ => Outcome::Sent,
    };
    let settled = match outcome {
        Outcome::Sent => delivery.settle.ack().await,
        Outcome::Failed => {
            tracing::error!("notification failed for good; dead-lettering it");
            delivery.settle.dead_letter().await
        }
        Outcome::Halted => {
            // Dropped unsettled: the queue delivers it again, and the ledger skips what
            // was sent.
            tracing::info!("not every send done; the event is left for redelivery");
            return;
        }
    };
    match settled {
        Ok(()) if outcome == Outcome::Sent => tracing::info!("event notified and acked"),
        Ok(()) => {}
        Err(error) => tracing::warn!("could not settle the event: {error:#}"),
    }
}

/// Sends on every configured channel, each retried on its own; the worst outcome of them.
/// The uploader's contacts get `own`, the operator's default recipients and the webhook get
/// `operator`.
async fn notify<'a>(
    context: &'a Context,
    event: &'a Event,
    own: &'a Message,
    operator: &'a Message,
    halted: &watch::Receiver<bool>,
) -> Outcome {
    let (channels, config) = (&context.channels, &context.config);
    let notify = &event.photo.notify;
    // Every send at once, each retried on its own: a dead receiver holds up none of the others.
    let mut sends: Vec<Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>> = Vec::new();
    if let Some(email) = &channels.email {
        let to = targets(notify.email.as_deref(), config.default_email.as_deref());
        for (to, message) in to
            .into_iter()
            .zip([own, operator])
            .filter_map(|(t, m)| Some((t?, m)))
        {
            sends.push(Box::pin(deliver(
                context,
                event,
                "e-mail",
                to,
                halted.clone(),
                move || email.send(to, message),
            )));
        }
    }
    if let Some(telegram) = &channels.telegram {
        let chats = targets(
            notify.telegram.as_deref(),
            config.default_telegram.as_deref(),
        );
        for (chat, message) in chats
            .into_iter()
            .zip([own, operator])
            .filter_map(|(t, m)| Some((t?, m)))
        {
            sends.push(Box::pin(deliver(
                context,
                event,
                "Telegram",
                chat,
                halted.clone(),
                move || telegram.send(chat, message),
            )));
        }
    }
    if let Some(webhook) = &channels.webhook {
        sends.push(Box::pin(deliver(
            context,
            event,
            "webhook",
            webhook.url(),
            halted.clone(),
            move || webhook.send(event, operator),
        )));
    }
    join_all(sends)
        .await
        .into_iter()
        .max()
        .unwrap_or(Outcome::Sent)
}

/// The uploader's target and the configured default, the default dropped when it is the
/// same one (it is told once, in the uploader's language).
fn targets<'a>(own: Option<&'a str>, default: Option<&'a str>) -> [Option<&'a str>; 2] {
    [own, default.filter(|default| Some(*default) != own)]
}

/// One send to one recipient, retried on its own: skipped when the ledger has it (the event
/// is a redelivery and this one went out before), recorded in the ledger once it succeeds.
async fn deliver<F, Fut>(
    context: &Context,
    event: &Event,
    channel: &'static str,
    recipient: &str,
    mut halted: watch::Receiver<bool>,
    send: F,
) -> Outcome
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let entry = Entry::of(event, channel, recipient);
    match context.ledger.sent(&entry).await {
        Ok(true) => {
            tracing::info!("{channel} already sent for this event; not sent again");
            context
                .metrics
                .notifier_send(channel, SendOutcome::AlreadySent);
            return Outcome::Sent;
        }
        Ok(false) => {}
        // Better told twice than never.
        Err(error) => {
            tracing::warn!("cannot read the ledger of sends ({error:#}); sending {channel} anyway")
        }
    }
    let outcome = retry(&context.config, channel, &mut halted, send).await;
    let counted = match outcome {
        Outcome::Sent => SendOutcome::Sent,
        Outcome::Failed => SendOutcome::Failed,
        Outcome::Halted => SendOutcome::Halted,
    };
    context.metrics.notifier_send(channel, counted);
    if outcome == Outcome::Sent {
        match context.ledger.record(&entry).await {
            Ok(()) => tracing::info!("{channel} sent"),
            // Sent all the same; only a redelivery of this event would repeat it.
            Err(error) => tracing::warn!(
                "{channel} sent, but the ledger did not record it (a redelivery of this \
                 event would send it again): {error:#}"
            ),
        }
    }
    outcome
}

/// Tries `send` up to `attempts` times with the configured waits between; gives up at once
/// on a refusal, and before any further try once `halted` turns on.
async fn retry<F, Fut>(
    config: &NotifierSettings,
    channel: &str,
    halted: &mut watch::Receiver<bool>,
    mut send: F,
) -> Outcome
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let attempts = config.attempts.max(1);
    for attempt in 1..=attempts {
        if stopping(halted) {
            return Outcome::Halted;
        }
        match send().await {
            Ok(()) => return Outcome::Sent,
            Err(error) if error.is::<Refused>() => {
                tracing::error!("{channel} send refused, not retried: {error:#}");
                return Outcome::Failed;
            }
            Err(error) if attempt < attempts => {
                let delay = config.retry.delay(attempt);
                tracing::warn!(
                    "{channel} send failed (try {attempt}): {error:#}; retrying in {delay:?}"
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stopped(halted) => return Outcome::Halted,
                }
            }
            Err(error) => tracing::error!("{channel} send failed after {attempt} tries: {error:#}"),
        }
    }
    Outcome::Failed
}
