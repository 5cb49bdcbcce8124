//! A deadline on every call into a backend, whichever it is. A frozen RabbitMQ or Redis
//! (SIGSTOP, a stuck disk, a half-open connection) answers nothing and closes nothing, and
//! most clients wait on it forever: an upload would hang, holding its connection and spool
//! file. `Bounded` wraps each backend at start-up (`Backends::connect`) so each call ends
//! within the deadline (`GALLERY_DEPENDENCY_TIMEOUT_MS`, 10 s by default) with an error naming
//! the store, which `routes` answers as 503 `unavailable`.
//!
//! What is bounded: every call of `ObjectStore`, `PhotoIndex`, `JobQueue` and
//! `AccountStore`; a call that moves an object's bytes gets extra time for them
//! (`SLOWEST_BYTES_PER_S`). What is not: waiting for the next job or event (waiting is their job),
//! settling a delivery (its broker write is buffered; RabbitMQ redelivers what a lost
//! connection leaves unsettled), and the body of a streamed image once it started.
//!
//! A call cut off may still take effect later (a put that lands after its deadline): every
//! caller already treats an error as "may or may not have happened" and undoes or retries.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::accounts::store::{AccountStore, Table};
use crate::cache::{Finished, MinuteCount, Page, PhotoIndex};
use crate::domain::{ContentHash, Event, Job, Photo, PhotoId};
use crate::queue::{Depths, EventStream, JobQueue, JobStream, Listener};
use crate::storage::{ObjectStore, ObjectStream};

/// The default deadline of one backend call.
pub const DEFAULT: Duration = Duration::from_secs(10);
/// The slowest a working store moves an object's bytes (1 MiB/s): calls that move data get
/// the deadline plus their bytes at this rate, so a big original to a distant store is not
/// cut off, while a store that moves nothing still fails within the deadline plus that.
const SLOWEST_BYTES_PER_S: u64 = 1024 * 1024;
/// What a read is allowed when its size is not known: the default largest upload (50 MiB).
const LARGEST_READ: u64 = 50 * 1024 * 1024;

/// Which store failed; found in an error's chain by [`failing_store`] so the client can be
/// told what is down without the cause's details.
#[derive(Debug, Clone, Copy)]
pub struct Store(pub &'static str);

impl std::fmt::Display for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed", self.0)
    }
}

/// The name of the store an error came from, when it came through `Bounded`.
pub fn failing_store(error: &anyhow::Error) -> Option<&'static str> {
    error.downcast_ref::<Store>().map(|store| store.0)
}

/// A backend whose every call ends within `limit`.
pub struct Bounded<T: ?Sized> {
    inner: Arc<T>,
    store: Store,
    limit: Duration,
}

impl<T: ?Sized> Bounded<T> {
    /// `store` names the backend in errors ("RabbitMQ", "Redis", "S3", ...).
    pub fn new(inner: Arc<T>, store: &'static str, limit: Duration) -> Arc<Self> {
        Arc::new(Bounded {
            inner,
            store: Store(store),
            limit,
        })
    }

    async fn call<R>(&self, call: impl Future<Output = anyhow::Result<R>>) -> anyhow::Result<R> {
        self.call_within(self.limit, call).await
    }

    /// A call that moves `bytes`: the deadline plus the time they take at the slowest rate a
    /// working store is expected to manage.
    async fn transfer<R>(
        &self,
        bytes: u64,
        call: impl Future<Output = anyhow::Result<R>>,
    ) -> anyhow::Result<R> {
        let moving = Duration::from_secs(bytes / SLOWEST_BYTES_PER_S);
        self.call_within(self.limit + moving, call).await
    }

    async fn call_within<R>(
        &self,
        limit: Duration,
        call: impl Future<Output = anyhow::Result<R>>,
    ) -> anyhow::Result<R> {
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(error.context(self.store)),
            Err(_) => Err(
                anyhow::anyhow!("{} did not answer within {limit:?}", self.store.0)
                    .context(self.store),
            ),
        }
    }
}

#[async_trait]
impl ObjectStore for Bounded<dyn ObjectStore> {
    async fn prepare(&self) -> anyhow::Result<()> {
        self.call(self.inner.prepare()).await
    }
    async fn check(&self) -> anyhow::Result<()> {
        self.call(self.inner.check()).await
    }
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> anyhow::Result<()> {
        let size = bytes.len() as u64;
        self.transfer(size, self.inner.put(key, bytes, content_type))
            .await
    }
    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> anyhow::Result<()> {
        let size = tokio::fs::metadata(path).await.map_or(0, |meta| meta.len());
        self.transfer(size, self.inner.put_file(key, path, content_type))
            .await
    }
    fn keeps_put_files(&self) -> bool {
        self.inner.keeps_put_files()
    }
    async fn get(&self, key: &str) -> anyhow::Result<Option<Bytes>> {
        // The size is not known before: allowed as much as the largest upload by default.
        self.transfer(LARGEST_READ, self.inner.get(key)).await
    }
    async fn get_sized(&self, key: &str, length: u64) -> anyhow::Result<Option<Bytes>> {
        // At least what `get` is allowed: a length that turns out wrong ends in a whole read.
        self.transfer(length.max(LARGEST_READ), self.inner.get_sized(key, length))
            .await
    }
    async fn stream(&self, key: &str) -> anyhow::Result<Option<ObjectStream>> {
        self.call(self.inner.stream(key)).await
    }
    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.call(self.inner.delete(key)).await
    }
}

#[async_trait]
impl PhotoIndex for Bounded<dyn PhotoIndex> {
    async fn check(&self) -> anyhow::Result<()> {
        self.call(self.inner.check()).await
    }
    async fn insert(&self, photo: &Photo) -> anyhow::Result<()> {
        self.call(self.inner.insert(photo)).await
    }
    async fn queued(&self, id: &PhotoId) -> anyhow::Result<()> {
        self.call(self.inner.queued(id)).await
    }
    async fn unqueued(&self, before: DateTime<Utc>, limit: usize) -> anyhow::Result<Vec<PhotoId>> {
        self.call(self.inner.unqueued(before, limit)).await
    }
    async fn get(&self, id: &PhotoId) -> anyhow::Result<Option<Photo>> {
        self.call(self.inner.get(id)).await
    }
    async fn update(&self, photo: &Photo) -> anyhow::Result<bool> {
        self.call(self.inner.update(photo)).await
    }
    async fn requeue(&self, photo: &Photo) -> anyhow::Result<bool> {
        self.call(self.inner.requeue(photo)).await
    }
    async fn remove(&self, id: &PhotoId) -> anyhow::Result<bool> {
        self.call(self.inner.remove(id)).await
    }
    async fn list(&self, limit: usize, cursor: Option<&PhotoId>) -> anyhow::Result<Page> {
        self.call(self.inner.list(limit, cursor)).await
    }
    async fn with_hash(&self, hash: &ContentHash, limit: usize) -> anyhow::Result<Vec<Photo>> {
        self.call(self.inner.with_hash(hash, limit)).await
    }
    async fn failed(&self, limit: usize, cursor: Option<&PhotoId>) -> anyhow::Result<Page> {
        self.call(self.inner.failed(limit, cursor)).await
    }
    async fn count_finished(&self, finished: Finished, at: DateTime<Utc>) -> anyhow::Result<()> {
        self.call(self.inner.count_finished(finished, at)).await
    }
    async fn finished_per_minute(
        &self,
        until: DateTime<Utc>,
        minutes: usize,
    ) -> anyhow::Result<Vec<MinuteCount>> {
        self.call(self.inner.finished_per_minute(until, minutes))
            .await
    }
}

#[async_trait]
impl JobQueue for Bounded<dyn JobQueue> {
    async fn prepare(&self) -> anyhow::Result<()> {
        self.call(self.inner.prepare()).await
    }
    async fn check(&self) -> anyhow::Result<()> {
        self.call(self.inner.check()).await
    }
    async fn publish(&self, job: &Job) -> anyhow::Result<()> {
        self.call(self.inner.publish(job)).await
    }
    async fn consume(&self, prefetch: u16) -> anyhow::Result<Box<dyn JobStream>> {
        self.call(self.inner.consume(prefetch)).await
    }
    async fn depths(&self) -> anyhow::Result<Depths> {
        self.call(self.inner.depths()).await
    }
    async fn publish_event(&self, event: &Event) -> anyhow::Result<()> {
        self.call(self.inner.publish_event(event)).await
    }
    async fn subscribe_events(&self, listener: Listener) -> anyhow::Result<Box<dyn EventStream>> {
        self.call(self.inner.subscribe_events(listener)).await
    }
}

#[async_trait]
impl AccountStore for Bounded<dyn AccountStore> {
    async fn create(
        &self,
        table: Table,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> anyhow::Result<bool> {
        self.call(self.inner.create(table, key, value, ttl)).await
    }
    async fn put(
        &self,
        table: Table,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> anyhow::Result<()> {
        self.call(self.inner.put(table, key, value, ttl)).await
    }
    async fn get(&self, table: Table, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.call(self.inner.get(table, key)).await
    }
    async fn remove(&self, table: Table, key: &str) -> anyhow::Result<bool> {
        self.call(self.inner.remove(table, key)).await
    }
    async fn take(&self, table: Table, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.call(self.inner.take(table, key)).await
    }
    async fn all(&self, table: Table) -> anyhow::Result<Vec<Vec<u8>>> {
        self.call(self.inner.all(table)).await
    }
    async fn count(&self, table: Table, key: &str, window: Duration) -> anyhow::Result<u64> {
        self.call(self.inner.count(table, key, window)).await
    }
    async fn counter(&self, table: Table, key: &str) -> anyhow::Result<Option<(u64, Duration)>> {
        self.call(self.inner.counter(table, key)).await
    }
}
