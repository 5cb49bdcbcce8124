//! Photo metadata and the newest-first gallery index. The roles use only the `PhotoIndex`
//! trait; `redis` keeps it in Redis (one JSON record per photo plus a sorted set for order),
//! `embedded` in a redb file under the data dir, for `gallery serve`.
//!
//! Besides the records, the index keeps the photos whose job is not known to be queued yet
//! (`unqueued`), so a process killed between recording a photo (or requeueing it) and
//! queueing its job leaves a trace that `ingest::requeue_stranded` follows. And it finds
//! photos by the SHA-256 of their original (`with_hash`), kept in step with the records:
//! indexed in the same write that inserts a record, forgotten in the one that removes it.

mod embedded;
pub mod redis;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use self::embedded::EmbeddedIndex;
pub use self::redis::{RedisIndex, RedisSettings};
use crate::domain::{ContentHash, Photo, PhotoId};

/// One page of the gallery, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    pub photos: Vec<Photo>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_cursor: Option<PhotoId>,
}

#[async_trait]
pub trait PhotoIndex: Send + Sync {
    /// Answers whether the store can be reached right now (for /readyz).
    async fn check(&self) -> anyhow::Result<()>;
    /// Records a new photo and lists it, marked as not yet queued (see `unqueued`) until
    /// `queued` clears the mark, and findable by its hash (`with_hash`), all in one write.
    async fn insert(&self, photo: &Photo) -> anyhow::Result<()>;
    /// Clears the photo's not-yet-queued mark: the queue has its job.
    async fn queued(&self, id: &PhotoId) -> anyhow::Result<()>;
    /// Up to `limit` photos recorded before `before` that are still marked as not yet queued,
    /// oldest first: an ingest cut off between recording and queueing left them behind.
    async fn unqueued(&self, before: DateTime<Utc>, limit: usize) -> anyhow::Result<Vec<PhotoId>>;
    async fn get(&self, id: &PhotoId) -> anyhow::Result<Option<Photo>>;
    /// Overwrites an existing record; returns false, writing nothing, when the photo is gone
    /// (deleted while a worker held it), so a late worker never resurrects it.
    async fn update(&self, photo: &Photo) -> anyhow::Result<bool>;
    /// `update`, and the photo marked as not yet queued (as of now) in the same step: for a
    /// photo queued again (`reprocess`), whose new job is published next. Returns false,
    /// writing nothing, when the photo is gone.
    async fn requeue(&self, photo: &Photo) -> anyhow::Result<bool>;
    /// Removes the record, its listing, its mark and its hash; returns whether it existed.
    async fn remove(&self, id: &PhotoId) -> anyhow::Result<bool>;
    /// Up to `limit` photos whose original has this SHA-256, newest first (none: an empty
    /// list). Photos recorded before hashes were have none, and are never found here.
    async fn with_hash(&self, hash: &ContentHash, limit: usize) -> anyhow::Result<Vec<Photo>>;
    /// Up to `limit` photos older than `cursor` (or the newest ones), newest first.
    async fn list(&self, limit: usize, cursor: Option<&PhotoId>) -> anyhow::Result<Page>;
}
