//! The ledger of sends: one durable record per notification that went out, keyed by the
//! event (`Event::identity`), the channel and the recipient, so that an event delivered again
//! (the notifier was killed mid-retry, or lost its broker connection before the ack) skips
//! whoever was already told and retries only the others.
//!
//! It lives in the account store's `Sent` table (Redis beside the index, or redb for `gallery
//! serve`): the keyed store with expiry every role already has, on both backend sets. Records
//! expire after `KEPT`, far longer than any event waits for its notifier. The recipient is
//! kept only as a hash: a webhook URL may carry a token, and the key needs no address.
//!
//! A record is written right after the receiver accepted the message. A kill between the two
//! is the one window where a recipient can be told twice.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::accounts::store::{AccountStore, Table};
use crate::domain::Event;

/// How long a send is remembered.
pub const KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// One notification: this event, on this channel, to this recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry(String);

impl Entry {
    pub fn of(event: &Event, channel: &str, recipient: &str) -> Entry {
        let digest = Sha256::digest(recipient.as_bytes());
        // 128 bits tell recipients apart; the whole digest would only lengthen the key.
        let recipient: String = digest[..16]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Entry(format!("{}:{channel}:{recipient}", event.identity()))
    }
}

#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn AccountStore>,
}

impl Ledger {
    pub fn new(store: Arc<dyn AccountStore>) -> Self {
        Ledger { store }
    }

    /// Whether this notification went out already.
    pub async fn sent(&self, entry: &Entry) -> anyhow::Result<bool> {
        Ok(self.store.get(Table::Sent, &entry.0).await?.is_some())
    }

    /// Records that it went out; returns once the store has it.
    pub async fn record(&self, entry: &Entry) -> anyhow::Result<()> {
        self.store
            .put(Table::Sent, &entry.0, b"1", Some(KEPT))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventKind, Photo, PhotoId, Status};

    fn event(id: &PhotoId, kind: EventKind, deliveries: u32) -> Event {
        let photo = Photo {
            id: id.clone(),
            filename: "perfil.jpg".into(),
            content_type: "image/jpeg".into(),
            bytes: 1,
            sha256: None,
            width: 1,
            height: 1,
            status: Status::Done,
            ops: Vec::new(),
            created_at: chrono::Utc::now(),
            error: None,
            attempts: 1,
            deliveries,
            variants: Default::default(),
            lane: Default::default(),
            notify: Default::default(),
            owner: None,
        };
        Event { kind, photo }
    }

    #[test]
    fn entries_tell_events_channels_and_recipients_apart() {
        let id = PhotoId::new();
        let done = event(&id, EventKind::Done, 1);
        let entry = Entry::of(&done, "Telegram", "4242");
        // The same outcome announced again is the same event...
        assert_eq!(entry, Entry::of(&done.clone(), "Telegram", "4242"));
        // ...anything else is not.
        for other in [
            Entry::of(&event(&id, EventKind::Done, 2), "Telegram", "4242"),
            Entry::of(&event(&id, EventKind::Failed, 1), "Telegram", "4242"),
            Entry::of(
                &event(&PhotoId::new(), EventKind::Done, 1),
                "Telegram",
                "4242",
            ),
            Entry::of(&done, "e-mail", "4242"),
            Entry::of(&done, "Telegram", "4243"),
        ] {
            assert_ne!(entry, other);
        }
    }

    #[test]
    fn recipients_are_kept_only_as_a_hash() {
        let done = event(&PhotoId::new(), EventKind::Done, 1);
        let Entry(key) = Entry::of(&done, "webhook", "https://hooks.example/?token=SECRET");
        assert!(
            !key.contains("SECRET") && !key.contains("hooks.example"),
            "{key}"
        );
    }
}
