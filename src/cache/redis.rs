//! `PhotoIndex` on Redis via fred. Each photo is a JSON string at `{prefix}photo:{id}`; the
//! sorted set `{prefix}photos` holds every id with score 0, so members sort by their UUID v7,
//! which is creation order, and pages are cut with ZRANGE BYLEX REV from the last id seen.
//! `{prefix}sha256:{hex}` is the set of ids of the photos whose original has that hash.
//! `{prefix}failed` holds the ids of the failed photos like `{prefix}photos` holds all, written
//! in the transaction that writes the record. `{prefix}finished:{minute}:done` (and
//! `:failed`) count the jobs finished in a minute (minutes since the Unix epoch), each key
//! expiring `ACTIVITY_KEPT` after its minute.
//!
//! `connect` reaches a single Redis or, behind Sentinel, whichever node is the primary now;
//! `Durable` makes the writes the app acknowledges wait for replicas, so that a failover
//! loses none of them.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fred::clients::Transaction;
use fred::prelude::*;
use fred::types::config::Server;
use fred::types::sorted_sets::{ZRange, ZRangeBound, ZRangeKind, ZSort};
use fred::types::{ClusterHash, CustomCommand, Expiration, SetOptions};
use secrecy::{ExposeSecret, SecretString};

use super::{minutes_up_to, Finished, MinuteCount, Page, PhotoIndex, ACTIVITY_KEPT};
use crate::domain::{ContentHash, Photo, PhotoId, Status};

/// Where the index lives in Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port[/db]`, or a primary found through Sentinel:
    /// `redis-sentinel://[:password@]host:26379[/db]?sentinelServiceName=NAME&node=host2:26379
    /// [&sentinelPassword=…]`; secret, since it may hold passwords.
    pub url: SecretString,
    /// Prefix of every key written, so several galleries can share one Redis.
    pub prefix: String,
    /// How many replicas must hold a write before the app acknowledges it (see `Durable`);
    /// 0, for a single Redis, waits for none.
    pub min_replicas: u32,
}

pub struct RedisIndex {
    client: Client,
    /// Writes the app acknowledges: records, status changes, removals. Clearing a photo's
    /// not-yet-queued mark is not one: lost, it only queues the job once more.
    durable: Durable,
    prefix: String,
}

/// The index's and the accounts store's way into Redis (they share it).
#[derive(Clone)]
pub struct Redis {
    /// Reads, and writes nobody is told about.
    pub client: Client,
    /// Writes the app acknowledges.
    pub durable: Durable,
}

/// Writers of their own, so a `WAIT` holding one up never delays the others.
const DURABLE_WRITERS: usize = 4;

/// Connects once; afterwards fred reconnects on its own with exponential backoff, and behind
/// Sentinel each reconnection asks the Sentinels where the primary is now, so writes follow
/// a failover without a restart.
/// Its own timeouts are the deadline every backend call runs under (`deadline`), so a
/// frozen Redis costs a command no more than that.
pub async fn connect(settings: &RedisSettings, deadline: Duration) -> anyhow::Result<Redis> {
    // fred's error would quote the URL, passwords included.
    let config = Config::from_url(settings.url.expose_secret()).map_err(|_| {
        anyhow::anyhow!(
            "invalid Redis URL (expected redis://[:password@]host:port, or \
             redis-sentinel://[:password@]host:port?sentinelServiceName=NAME)"
        )
    })?;
    let mut builder = Builder::from_config(config);
    builder
        .with_connection_config(|c| {
            c.connection_timeout = deadline;
            c.internal_command_timeout = deadline;
        })
        .with_performance_config(|p| {
            p.default_command_timeout = deadline;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2));
    let client = builder.build().context("invalid Redis settings")?;
    client.init().await.context("Redis is not reachable")?;
    let durable = match settings.min_replicas {
        0 => Durable::unreplicated(client.clone()),
        replicas => {
            let writers = builder
                .build_pool(DURABLE_WRITERS)
                .context("invalid Redis settings")?;
            writers.init().await.context("Redis is not reachable")?;
            // A quarter of the deadline: replicas answer in a millisecond, or within a second
            // of a failover; without one, a refused upload (its write, then the undo, each
            // waiting this long) still answers within the deadline.
            let timeout = (deadline / 4).as_millis().max(1) as i64;
            Durable::replicated(writers, replicas.into(), timeout)
        }
    };
    Ok(Redis { client, durable })
}

/// Writes that must outlive the loss of the primary. Replication is asynchronous: a write the
/// primary has answered may not have reached a replica when the primary dies, and Sentinel
/// then promotes a replica without it. With `min_replicas` set, each write is followed by
/// `WAIT min_replicas`, which answers once that many replicas hold everything its connection
/// wrote, so the replica Sentinel promotes (the most up to date) has the write. WAIT holds
/// its connection until the replicas answer, so these writes have connections of their own:
/// reads never queue behind one, and go on while no replica answers.
#[derive(Clone)]
pub struct Durable {
    writers: Writers,
}

#[derive(Clone)]
enum Writers {
    /// A single Redis: writes go on the shared client, acknowledged as the primary answers.
    Unreplicated(Client),
    Replicated {
        pool: Pool,
        replicas: i64,
        /// How long WAIT waits for the replicas, in ms.
        timeout: i64,
    },
}

impl Durable {
    fn unreplicated(client: Client) -> Self {
        Durable {
            writers: Writers::Unreplicated(client),
        }
    }

    fn replicated(pool: Pool, replicas: i64, timeout: i64) -> Self {
        Durable {
            writers: Writers::Replicated {
                pool,
                replicas,
                timeout,
            },
        }
    }

    /// A connection for one write; `confirm` the write on it before acknowledging it.
    pub fn writer(&self) -> Writer {
        match &self.writers {
            Writers::Unreplicated(client) => Writer {
                client: client.clone(),
                wait: None,
            },
            Writers::Replicated {
                pool,
                replicas,
                timeout,
            } => {
                let client = pool.next().clone();
                Writer {
                    wait: Some(Wait {
                        replicas: *replicas,
                        timeout: *timeout,
                        primary: primary(&client),
                    }),
                    client,
                }
            }
        }
    }
}

/// One write's connection, from `Durable::writer`.
pub struct Writer {
    client: Client,
    wait: Option<Wait>,
}

struct Wait {
    replicas: i64,
    timeout: i64,
    /// The primary the connection had before the write: none while it reconnects.
    primary: Option<Server>,
}

/// The server a client's connection is to (behind Sentinel, the primary), if connected.
fn primary(client: &Client) -> Option<Server> {
    client.active_connections().into_iter().next()
}

impl Writer {
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Answers once enough replicas hold what was written on this connection; an error when
    /// they do not within the timeout, or when the connection moved to another primary
    /// meanwhile (WAIT on the new one would count replicas that never had the write).
    pub async fn confirm(self) -> anyhow::Result<()> {
        let Some(wait) = self.wait else {
            return Ok(());
        };
        // A write sent while disconnected went to the primary connected to since.
        let written_on = wait.primary.or_else(|| primary(&self.client));
        let command = CustomCommand::new_static("WAIT", ClusterHash::FirstKey, true);
        let acked: i64 = self
            .client
            .custom(command, vec![wait.replicas, wait.timeout])
            .await
            .context("Redis replication check failed")?;
        if written_on.is_none() || primary(&self.client) != written_on {
            anyhow::bail!("Redis changed primaries during the write");
        }
        if acked < wait.replicas {
            anyhow::bail!(
                "{acked} of the {} Redis replicas required confirmed the write",
                wait.replicas
            );
        }
        Ok(())
    }
}

impl RedisIndex {
    pub fn new(redis: Redis, prefix: &str) -> Self {
        RedisIndex {
            client: redis.client,
            durable: redis.durable,
            prefix: prefix.to_owned(),
        }
    }

    fn record_key(&self, id: &PhotoId) -> String {
        format!("{}photo:{id}", self.prefix)
    }

    fn order_key(&self) -> String {
        format!("{}photos", self.prefix)
    }

    /// Ids of photos recorded but not yet known to be queued, scored by when (Unix ms).
    fn unqueued_key(&self) -> String {
        format!("{}unqueued", self.prefix)
    }

    /// Ids of the photos whose original has this hash.
    fn hash_key(&self, hash: &ContentHash) -> String {
        format!("{}sha256:{hash}", self.prefix)
    }

    /// Ids of the failed photos, with score 0 like `order_key`.
    fn failed_key(&self) -> String {
        format!("{}failed", self.prefix)
    }

    /// The count of jobs that ended so in this minute (minutes since the Unix epoch).
    fn finished_key(&self, minute: i64, finished: Finished) -> String {
        let outcome = match finished {
            Finished::Done => "done",
            Finished::Failed => "failed",
        };
        format!("{}finished:{minute}:{outcome}", self.prefix)
    }

    /// Lists the photo among the failed ones, or takes it out, as its status says: queued in
    /// `tx`, the transaction that writes its record. Adds one result to the transaction's.
    async fn track_failed(&self, tx: &Transaction, photo: &Photo) -> FredResult<()> {
        if photo.status == Status::Failed {
            tx.zadd(
                self.failed_key(),
                None,
                None,
                false,
                false,
                (0.0, photo.id.as_str()),
            )
            .await
        } else {
            tx.zrem(self.failed_key(), photo.id.as_str()).await
        }
    }

    /// A page of the ids in the sorted set `key` (every score 0), newest first, with their
    /// records.
    async fn page_of(
        &self,
        key: String,
        limit: usize,
        cursor: Option<&PhotoId>,
    ) -> anyhow::Result<Page> {
        let newest = match cursor {
            Some(id) => ZRange {
                kind: ZRangeKind::Exclusive,
                range: ZRangeBound::Lex(id.to_string()),
            },
            None => ZRange {
                kind: ZRangeKind::Inclusive,
                range: ZRangeBound::InfiniteLex,
            },
        };
        let oldest = ZRange {
            kind: ZRangeKind::Inclusive,
            range: ZRangeBound::NegInfinityLex,
        };
        // One more than asked tells whether a next page exists.
        let ids: Vec<String> = self
            .client
            .zrange(
                key,
                newest,
                oldest,
                Some(ZSort::ByLex),
                true,
                Some((0, limit as i64 + 1)),
                false,
            )
            .await
            .context("Redis list failed")?;
        let has_more = ids.len() > limit;
        let ids: Vec<PhotoId> = ids
            .into_iter()
            .take(limit)
            .filter_map(|id| PhotoId::parse(&id).ok())
            .collect();
        if ids.is_empty() {
            return Ok(Page {
                photos: Vec::new(),
                next_cursor: None,
            });
        }
        let photos = self.records(&ids).await.context("Redis list failed")?;
        let next_cursor = if has_more { ids.last().cloned() } else { None };
        Ok(Page {
            photos,
            next_cursor,
        })
    }

    /// The records of these ids, in their order, skipping any that is gone.
    async fn records(&self, ids: &[PhotoId]) -> anyhow::Result<Vec<Photo>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.record_key(id)).collect();
        let records: Vec<Option<String>> =
            self.client.mget(keys).await.context("Redis read failed")?;
        records
            .into_iter()
            .flatten()
            .map(|json| self.parse(&json))
            .collect()
    }

    fn parse(&self, json: &str) -> anyhow::Result<Photo> {
        serde_json::from_str(json).context("corrupt photo record in Redis")
    }
}

#[async_trait]
impl PhotoIndex for RedisIndex {
    async fn check(&self) -> anyhow::Result<()> {
        let _: String = self
            .client
            .ping(None)
            .await
            .context("Redis is not reachable")?;
        Ok(())
    }

    async fn insert(&self, photo: &Photo) -> anyhow::Result<()> {
        let json = serde_json::to_string(photo)?;
        let writer = self.durable.writer();
        let tx = writer.client().multi();
        let _: () = tx
            .set(self.record_key(&photo.id), json, None, None, false)
            .await?;
        let _: () = tx
            .zadd(
                self.order_key(),
                None,
                None,
                false,
                false,
                (0.0, photo.id.as_str()),
            )
            .await?;
        let _: () = tx
            .zadd(
                self.unqueued_key(),
                None,
                None,
                false,
                false,
                (
                    photo.created_at.timestamp_millis() as f64,
                    photo.id.as_str(),
                ),
            )
            .await?;
        if let Some(hash) = &photo.sha256 {
            let _: () = tx.sadd(self.hash_key(hash), photo.id.as_str()).await?;
        }
        if photo.status == Status::Failed {
            self.track_failed(&tx, photo).await?;
        }
        let _: () = tx.exec(true).await.context("Redis insert failed")?;
        writer.confirm().await.context("Redis insert failed")?;
        Ok(())
    }

    async fn queued(&self, id: &PhotoId) -> anyhow::Result<()> {
        let _: i64 = self
            .client
            .zrem(self.unqueued_key(), id.as_str())
            .await
            .context("Redis update failed")?;
        Ok(())
    }

    async fn unqueued(&self, before: DateTime<Utc>, limit: usize) -> anyhow::Result<Vec<PhotoId>> {
        let ids: Vec<String> = self
            .client
            .zrangebyscore(
                self.unqueued_key(),
                f64::NEG_INFINITY,
                before.timestamp_millis() as f64,
                false,
                Some((0, limit as i64)),
            )
            .await
            .context("Redis read failed")?;
        Ok(ids
            .iter()
            .filter_map(|id| PhotoId::parse(id).ok())
            .collect())
    }

    async fn get(&self, id: &PhotoId) -> anyhow::Result<Option<Photo>> {
        let json: Option<String> = self
            .client
            .get(self.record_key(id))
            .await
            .context("Redis get failed")?;
        json.map(|json| self.parse(&json)).transpose()
    }

    async fn update(&self, photo: &Photo) -> anyhow::Result<bool> {
        let json = serde_json::to_string(photo)?;
        // SET .. XX writes only if the record still exists: atomic against a concurrent delete.
        let writer = self.durable.writer();
        let tx = writer.client().multi();
        let _: () = tx
            .set(
                self.record_key(&photo.id),
                json,
                None::<Expiration>,
                Some(SetOptions::XX),
                false,
            )
            .await?;
        self.track_failed(&tx, photo).await?;
        let (written, _): (Option<String>, i64) =
            tx.exec(true).await.context("Redis update failed")?;
        if written.is_none() && photo.status == Status::Failed {
            // Removed meanwhile: take back the id the transaction listed anyway.
            let _: i64 = writer
                .client()
                .zrem(self.failed_key(), photo.id.as_str())
                .await
                .context("Redis update failed")?;
        }
        writer.confirm().await.context("Redis update failed")?;
        Ok(written.is_some())
    }

    async fn requeue(&self, photo: &Photo) -> anyhow::Result<bool> {
        let json = serde_json::to_string(photo)?;
        // One transaction: the mark goes in even if the record turns out to be gone (SET XX
        // writes nothing then), which the sweep clears when it finds no photo.
        let writer = self.durable.writer();
        let tx = writer.client().multi();
        let _: () = tx
            .set(
                self.record_key(&photo.id),
                json,
                None::<Expiration>,
                Some(SetOptions::XX),
                false,
            )
            .await?;
        let _: () = tx
            .zadd(
                self.unqueued_key(),
                None,
                None,
                false,
                false,
                (Utc::now().timestamp_millis() as f64, photo.id.as_str()),
            )
            .await?;
        self.track_failed(&tx, photo).await?;
        let (written, _, _): (Option<String>, i64, i64) =
            tx.exec(true).await.context("Redis update failed")?;
        writer.confirm().await.context("Redis update failed")?;
        Ok(written.is_some())
    }

    async fn remove(&self, id: &PhotoId) -> anyhow::Result<bool> {
        // A record's hash never changes, so reading it first races with nothing. A record
        // that does not parse leaves its id in a hash's set, where `with_hash` skips it.
        let hash = self
            .get(id)
            .await
            .ok()
            .flatten()
            .and_then(|photo| photo.sha256);
        let writer = self.durable.writer();
        let tx = writer.client().multi();
        let _: () = tx.del(self.record_key(id)).await?;
        let _: () = tx.zrem(self.order_key(), id.as_str()).await?;
        let _: () = tx.zrem(self.unqueued_key(), id.as_str()).await?;
        let _: () = tx.zrem(self.failed_key(), id.as_str()).await?;
        if let Some(hash) = &hash {
            let _: () = tx.srem(self.hash_key(hash), id.as_str()).await?;
        }
        let counts: Vec<i64> = tx.exec(true).await.context("Redis delete failed")?;
        writer.confirm().await.context("Redis delete failed")?;
        Ok(counts.first().is_some_and(|deleted| *deleted > 0))
    }

    async fn with_hash(&self, hash: &ContentHash, limit: usize) -> anyhow::Result<Vec<Photo>> {
        let ids: Vec<String> = self
            .client
            .smembers(self.hash_key(hash))
            .await
            .context("Redis read failed")?;
        let mut ids: Vec<PhotoId> = ids
            .iter()
            .filter_map(|id| PhotoId::parse(id).ok())
            .collect();
        // Ids sort in creation order: newest first, as the gallery lists.
        ids.sort_by(|a, b| b.cmp(a));
        ids.truncate(limit);
        self.records(&ids).await
    }

    async fn list(&self, limit: usize, cursor: Option<&PhotoId>) -> anyhow::Result<Page> {
        self.page_of(self.order_key(), limit, cursor).await
    }

    async fn failed(&self, limit: usize, cursor: Option<&PhotoId>) -> anyhow::Result<Page> {
        let mut page = self.page_of(self.failed_key(), limit, cursor).await?;
        // In step with the records but for an id a crash left between the transaction and
        // its undo in `update`: its record, if any, says otherwise.
        page.photos.retain(|photo| photo.status == Status::Failed);
        Ok(page)
    }

    async fn count_finished(&self, finished: Finished, at: DateTime<Utc>) -> anyhow::Result<()> {
        let minute = super::minute_of(at);
        let key = self.finished_key(minute, finished);
        let gone_at = (minute + 1) * 60 + ACTIVITY_KEPT.num_seconds();
        // One transaction: a count never stays without its expiry.
        let tx = self.client.multi();
        let _: () = tx.incr(&key).await?;
        let _: () = tx.expire_at(&key, gone_at, None).await?;
        let _: (i64, i64) = tx.exec(true).await.context("Redis count failed")?;
        Ok(())
    }

    async fn finished_per_minute(
        &self,
        until: DateTime<Utc>,
        minutes: usize,
    ) -> anyhow::Result<Vec<MinuteCount>> {
        let minutes = minutes_up_to(until, minutes.min(ACTIVITY_KEPT.num_minutes() as usize));
        let mut keys = Vec::new();
        for minute in minutes.clone() {
            keys.push(self.finished_key(minute, Finished::Done));
            keys.push(self.finished_key(minute, Finished::Failed));
        }
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let counts: Vec<Option<u64>> = self.client.mget(keys).await.context("Redis read failed")?;
        Ok(minutes
            .zip(counts.chunks(2))
            .map(|(minute, pair)| {
                let count = |at: usize| pair.get(at).copied().flatten().unwrap_or(0);
                MinuteCount::new(minute, count(0), count(1))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> RedisSettings {
        RedisSettings {
            url: url.into(),
            prefix: "gallery:".into(),
            min_replicas: 0,
        }
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_quoting_its_passwords() {
        for url in [
            // No service name: fred cannot tell which primary to ask for.
            "redis-sentinel://:data-secret@127.0.0.1:26379/0?sentinelPassword=sentinel-secret",
            "redis-sentinel://:data-secret@127.0.0.1:notaport/0?sentinelServiceName=gallery",
            "redis://:data-secret@127.0.0.1:6379/notadb",
        ] {
            let error = match connect(&settings(url), Duration::from_millis(200)).await {
                Ok(_) => panic!("{url} was taken"),
                Err(error) => format!("{error:#}"),
            };
            assert!(error.contains("invalid Redis URL"), "{error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }
}
