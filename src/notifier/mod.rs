//! The notifier role: listens for finished photos on a durable queue and tells the uploader
//! by e-mail, Telegram or webhook what was done to which file. Each channel is retried with
//! backoff on its own (one that succeeded is never sent twice); an event whose sends keep
//! failing is dead-lettered. It runs apart from the workers, so it never slows processing,
//! and its queue keeps events while it is down.

pub mod channels;
pub mod message;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::future::join_all;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;

use self::channels::{Email, Refused, Telegram, Webhook};
use self::message::Message;
use crate::backends::Backends;
use crate::domain::Event;
use crate::domain::Lang;
use crate::queue::{EventDelivery, Listener, NOTIFY_LISTENER};
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
}

impl Default for NotifierSettings {
    /// Every channel off; 5 tries per send, 2 s apart doubling.
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

/// Runs until `shutdown` turns true; resubscribes whenever the bus connection drops.
pub async fn run(
    backends: Backends,
    config: NotifierSettings,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let channels = Channels::new(&config)?;
    loop {
        let listener = || {
            backends.queue.subscribe_events(Listener::Durable {
                name: NOTIFY_LISTENER.into(),
            })
        };
        let subscribed = until_ok(
            RetryPolicy::RECONNECT,
            "cannot subscribe to photo events",
            Some(&mut shutdown),
            listener,
        );
        let Some(mut events) = subscribed.await else {
            break;
        };
        tracing::info!("notifier listening for finished photos");
        loop {
            let delivery = tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                delivery = events.next() => delivery,
            };
            let Some(delivery) = delivery else {
                tracing::warn!("event subscription ended (broker connection lost); resubscribing");
                break;
            };
            handle(&channels, &config, delivery).await;
        }
    }
    tracing::info!("notifier stopped");
    Ok(())
}

async fn handle(channels: &Channels, config: &NotifierSettings, delivery: EventDelivery) {
    let event = &delivery.event;
    // The uploader reads their own language; the operator's recipients and webhook, the
    // operator's.
    let rendered = (
        message::render(event, event.photo.notify.lang),
        message::render(event, config.lang),
    );
    let settled = match rendered {
        (None, _) | (_, None) => delivery.settle.ack().await,
        (Some(own), Some(operator)) => {
            if notify(channels, config, event, &own, &operator).await {
                delivery.settle.ack().await
            } else {
                tracing::error!(id = %event.photo.id, "notification failed for good; dead-lettering it");
                delivery.settle.dead_letter().await
            }
        }
    };
    if let Err(error) = settled {
        tracing::warn!(id = %event.photo.id, "could not settle the event: {error:#}");
    }
}

/// Sends on every configured channel, each retried on its own; true when all succeeded.
/// The uploader's contacts get `own`, the operator's default recipients and the webhook get
/// `operator`.
async fn notify<'a>(
    channels: &'a Channels,
    config: &'a NotifierSettings,
    event: &'a Event,
    own: &'a Message,
    operator: &'a Message,
) -> bool {
    let notify = &event.photo.notify;
    // Every send at once, each retried on its own: a dead receiver holds up none of the others.
    let mut sends: Vec<Pin<Box<dyn Future<Output = bool> + Send + 'a>>> = Vec::new();
    if let Some(email) = &channels.email {
        let to = targets(notify.email.as_deref(), config.default_email.as_deref());
        for (to, message) in to
            .into_iter()
            .zip([own, operator])
            .filter_map(|(t, m)| Some((t?, m)))
        {
            sends.push(Box::pin(retry(config, "e-mail", move || {
                email.send(to, message)
            })));
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
            sends.push(Box::pin(retry(config, "Telegram", move || {
                telegram.send(chat, message)
            })));
        }
    }
    if let Some(webhook) = &channels.webhook {
        sends.push(Box::pin(retry(config, "webhook", move || {
            webhook.send(event, operator)
        })));
    }
    join_all(sends).await.into_iter().all(|sent| sent)
}

/// The uploader's target and the configured default, the default dropped when it is the
/// same one (it is told once, in the uploader's language).
fn targets<'a>(own: Option<&'a str>, default: Option<&'a str>) -> [Option<&'a str>; 2] {
    [own, default.filter(|default| Some(*default) != own)]
}

async fn retry<F, Fut>(config: &NotifierSettings, channel: &str, mut send: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for attempt in 1..=config.attempts.max(1) {
        match send().await {
            Ok(()) => return true,
            Err(error) if error.is::<Refused>() => {
                tracing::error!("{channel} send refused, not retried: {error:#}");
                return false;
            }
            Err(error) if attempt < config.attempts => {
                let delay = config.retry.delay(attempt);
                tracing::warn!(
                    "{channel} send failed (try {attempt}): {error:#}; retrying in {delay:?}"
                );
                tokio::time::sleep(delay).await;
            }
            Err(error) => tracing::error!("{channel} send failed after {attempt} tries: {error:#}"),
        }
    }
    false
}
