//! `Event`: what happened to a photo, announced to whoever listens (the page's live updates,
//! the notifier). It carries the whole record, so listeners never need to read it back.

use serde::{Deserialize, Serialize};

use super::{Photo, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "photo.queued")]
    Queued,
    #[serde(rename = "photo.processing")]
    Processing,
    #[serde(rename = "photo.done")]
    Done,
    #[serde(rename = "photo.failed")]
    Failed,
    /// The photo is gone: deleted, or its upload was undone after it had been announced.
    #[serde(rename = "photo.deleted")]
    Deleted,
}

impl EventKind {
    /// Also the routing key on the message bus.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Queued => "photo.queued",
            EventKind::Processing => "photo.processing",
            EventKind::Done => "photo.done",
            EventKind::Failed => "photo.failed",
            EventKind::Deleted => "photo.deleted",
        }
    }

    pub fn of(status: Status) -> Self {
        match status {
            Status::Queued => EventKind::Queued,
            Status::Processing => EventKind::Processing,
            Status::Done => EventKind::Done,
            Status::Failed => EventKind::Failed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub photo: Photo,
}

impl Event {
    /// The event announcing the photo's current status.
    pub fn status_of(photo: &Photo) -> Self {
        Event {
            kind: EventKind::of(photo.status),
            photo: photo.clone(),
        }
    }

    /// The event announcing that the photo is gone.
    pub fn deleted(photo: &Photo) -> Self {
        Event {
            kind: EventKind::Deleted,
            photo: photo.clone(),
        }
    }

    /// What tells this event from every other: the photo, what happened to it, and which
    /// worker start it ended (`Photo::deliveries`, which only grows). A later processing of
    /// the same photo is a new event; the same outcome announced twice (a publish retried
    /// after a lost confirm) is the same one. The notifier's ledger of sends is keyed by it.
    pub fn identity(&self) -> String {
        format!(
            "{}:{}:{}",
            self.photo.id,
            self.kind.as_str(),
            self.photo.deliveries
        )
    }
}
