//! The three ways to tell someone: e-mail over SMTP (lettre), Telegram's Bot API
//! `sendMessage`, and a webhook POST signed with HMAC-SHA256. Each send either succeeds or
//! says why; retrying is the caller's business, and a `Refused` error tells it not to (the
//! receiver said no for good: an SMTP 5xx, an HTTP 4xx other than 408 and 429).

use anyhow::Context;
use hmac::{Hmac, Mac};
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::Sha256;

use super::message::Message;
use crate::domain::Event;

/// The receiver refused the message for good: sending it again cannot help.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// An HTTP answer as a send's outcome: 2xx is sent, 4xx (but 408 and 429) refused for good,
/// anything else worth another try.
fn http_outcome(channel: &str, status: reqwest::StatusCode) -> anyhow::Result<()> {
    if status.is_success() {
        return Ok(());
    }
    let message = format!("{channel} answered HTTP {status}");
    let passing = matches!(status.as_u16(), 408 | 429);
    if status.is_client_error() && !passing {
        return Err(Refused(message).into());
    }
    Err(anyhow::Error::msg(message))
}

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Email {
    /// `url`: smtp://host:port (plain), smtp://…?tls=required (STARTTLS) or smtps:// (TLS),
    /// with optional user:password@.
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .context("invalid SMTP URL")?
            .build();
        let from = from
            .parse()
            .with_context(|| format!("invalid sender address '{from}'"))?;
        Ok(Email { transport, from })
    }

    pub async fn send(&self, to: &str, message: &Message) -> anyhow::Result<()> {
        let mail = lettre::Message::builder()
            .from(self.from.clone())
            .to(to
                .parse()
                .with_context(|| format!("invalid recipient '{to}'"))?)
            .subject(&message.subject)
            .body(message.text.clone())?;
        match self.transport.send(mail).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => {
                Err(Refused(format!("the SMTP server refused the mail: {error}")).into())
            }
            Err(error) => Err(anyhow::Error::new(error).context("SMTP send failed")),
        }
    }
}

pub struct Telegram {
    client: reqwest::Client,
    /// Holds the bot token.
    endpoint: SecretString,
}

impl Telegram {
    pub fn new(client: reqwest::Client, api: &str, token: &str) -> Self {
        Telegram {
            client,
            endpoint: format!("{}/bot{token}/sendMessage", api.trim_end_matches('/')).into(),
        }
    }

    pub async fn send(&self, chat_id: &str, message: &Message) -> anyhow::Result<()> {
        let response = self
            .client
            .post(self.endpoint.expose_secret())
            .json(&json!({"chat_id": chat_id, "text": message.text}))
            .send()
            .await
            // The URL holds the bot token: keep it out of the error (and so out of the logs).
            .map_err(|error| error.without_url())
            .context("Telegram is not reachable")?;
        http_outcome("Telegram", response.status())
    }
}

pub struct Webhook {
    client: reqwest::Client,
    url: String,
    secret: Vec<u8>,
}

/// Header carrying `sha256=<hex HMAC of the body>`, so receivers can check who sent it.
pub const SIGNATURE_HEADER: &str = "X-Gallery-Signature";

impl Webhook {
    pub fn new(client: reqwest::Client, url: &str, secret: &str) -> Self {
        Webhook {
            client,
            url: url.to_owned(),
            secret: secret.as_bytes().to_vec(),
        }
    }

    /// Where it posts (which may carry a token: never logged).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn body(event: &Event, message: &Message) -> Vec<u8> {
        let photo = &event.photo;
        let body = json!({
            "type": event.kind.as_str(),
            "photo": {
                "id": photo.id, "filename": photo.filename, "status": photo.status,
                "ops": photo.ops, "error": photo.error,
            },
            "message": message.text,
        });
        body.to_string().into_bytes()
    }

    pub fn sign(secret: &[u8], body: &[u8]) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        format!("sha256={hex}")
    }

    pub async fn send(&self, event: &Event, message: &Message) -> anyhow::Result<()> {
        let body = Self::body(event, message);
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, Self::sign(&self.secret, &body))
            .header("X-Gallery-Event", event.kind.as_str())
            .body(body)
            .send()
            .await
            .map_err(|error| error.without_url())
            .context("webhook is not reachable")?;
        http_outcome("the webhook", response.status())
    }
}
