//! Photo metadata and the newest-first gallery index. The roles use only the `PhotoIndex`
//! trait; `redis` keeps it in Redis (one JSON record per photo plus a sorted set for order),
//! `embedded` in a redb file under the data dir, for `gallery serve`.
//!
//! Besides the records, the index keeps the photos whose job is not known to be queued yet
//! (`unqueued`), so a process killed between recording a photo (or requeueing it) and
//! queueing its job leaves a trace that `ingest::requeue_stranded` follows. And it finds
//! photos by the SHA-256 of their original (`with_hash`), kept in step with the records:
//! indexed in the same write that inserts a record, forgotten in the one that removes it.
//! Likewise the failed photos (`failed`), listed in the write that records a photo as failed
//! and dropped in the one that records it otherwise or removes it, so the admin page finds
//! them without reading every record.
//!
//! Beside the photos it keeps the jobs finished per minute, done and failed (`count_finished`,
//! `finished_per_minute`): one count for every worker process, kept two hours.

mod embedded;
pub mod redis;

use std::ops::RangeInclusive;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

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

/// How a job ended, as counted per minute: its photo done, or failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    Done,
    Failed,
}

/// How long the per-minute counts are kept: the page shows the last hour.
pub const ACTIVITY_KEPT: chrono::Duration = chrono::Duration::hours(2);

/// The jobs finished in one minute, by every worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MinuteCount {
    /// The minute's start.
    pub minute: DateTime<Utc>,
    pub done: u64,
    pub failed: u64,
}

/// The minute a time falls in, as minutes since the Unix epoch: the key of its count.
pub fn minute_of(time: DateTime<Utc>) -> i64 {
    time.timestamp().div_euclid(60)
}

/// The `minutes` minutes up to and including `until`'s, oldest first, as `minute_of` numbers
/// them.
pub fn minutes_up_to(until: DateTime<Utc>, minutes: usize) -> RangeInclusive<i64> {
    let last = minute_of(until);
    last - minutes as i64 + 1..=last
}

impl MinuteCount {
    /// The counts of a minute as `minute_of` numbers it.
    pub fn new(minute: i64, done: u64, failed: u64) -> Self {
        MinuteCount {
            minute: DateTime::from_timestamp(minute * 60, 0).unwrap_or_default(),
            done,
            failed,
        }
    }
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
    /// `list`, of the failed photos only: those whose record says `failed`, from the set kept
    /// by every write of a record (`insert`, `update`, `requeue`, `remove`).
    ///
    /// A photo that failed before this set existed is not in it: it is listed once its record
    /// is written again. `gallery reprocess --missing` (or the admin page's "Reprocess
    /// missing") queues every failed photo again, and one that fails again is listed.
    async fn failed(&self, limit: usize, cursor: Option<&PhotoId>) -> anyhow::Result<Page>;
    /// Counts one job finished at `at` in its minute's count, shared by every worker.
    async fn count_finished(&self, finished: Finished, at: DateTime<Utc>) -> anyhow::Result<()>;
    /// The jobs finished in each of the `minutes` minutes up to and including `until`'s,
    /// oldest first (`minutes_up_to`); at most `ACTIVITY_KEPT` back.
    async fn finished_per_minute(
        &self,
        until: DateTime<Utc>,
        minutes: usize,
    ) -> anyhow::Result<Vec<MinuteCount>>;
}
