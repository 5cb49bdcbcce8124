//! `PhotoIndex` on Redis via fred. Each photo is a JSON string at `{prefix}photo:{id}`; the
//! sorted set `{prefix}photos` holds every id with score 0, so members sort by their UUID v7,
//! which is creation order, and pages are cut with ZRANGE BYLEX REV from the last id seen.
//! `{prefix}sha256:{hex}` is the set of ids of the photos whose original has that hash.
//! `{prefix}failed` holds the ids of the failed photos like `{prefix}photos` holds all, written
//! in the transaction that writes the record. `{prefix}finished:{minute}:done` (and
//! `:failed`) count the jobs finished in a minute (minutes since the Unix epoch), each key
//! expiring `ACTIVITY_KEPT` after its minute.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fred::clients::Transaction;
use fred::prelude::*;
use fred::types::sorted_sets::{ZRange, ZRangeBound, ZRangeKind, ZSort};
use fred::types::{Expiration, SetOptions};
use secrecy::{ExposeSecret, SecretString};

use super::{minutes_up_to, Finished, MinuteCount, Page, PhotoIndex, ACTIVITY_KEPT};
use crate::domain::{ContentHash, Photo, PhotoId, Status};

/// Where the index lives in Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port[/db]`; secret, since it may hold the password.
    pub url: SecretString,
    /// Prefix of every key written, so several galleries can share one Redis.
    pub prefix: String,
}

pub struct RedisIndex {
    client: Client,
    prefix: String,
}

/// Connects once; afterwards fred reconnects on its own with exponential backoff. The
/// index and the accounts store share the client.
/// Its own timeouts are the deadline every backend call runs under (`deadline`), so a
/// frozen Redis costs a command no more than that.
pub async fn connect(settings: &RedisSettings, deadline: Duration) -> anyhow::Result<Client> {
    // fred's error would quote the URL, password included.
    let config = Config::from_url(settings.url.expose_secret()).map_err(|_| {
        anyhow::anyhow!("invalid Redis URL (expected redis://[:password@]host:port)")
    })?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = deadline;
            c.internal_command_timeout = deadline;
        })
        .with_performance_config(|p| {
            p.default_command_timeout = deadline;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build()
        .context("invalid Redis settings")?;
    client.init().await.context("Redis is not reachable")?;
    Ok(client)
}

impl RedisIndex {
    pub fn new(client: Client, prefix: &str) -> Self {
        RedisIndex {
            client,
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
        let tx = self.client.multi();
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
        let tx = self.client.multi();
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
            let _: i64 = self
                .client
                .zrem(self.failed_key(), photo.id.as_str())
                .await
                .context("Redis update failed")?;
        }
        Ok(written.is_some())
    }

    async fn requeue(&self, photo: &Photo) -> anyhow::Result<bool> {
        let json = serde_json::to_string(photo)?;
        // One transaction: the mark goes in even if the record turns out to be gone (SET XX
        // writes nothing then), which the sweep clears when it finds no photo.
        let tx = self.client.multi();
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
        let tx = self.client.multi();
        let _: () = tx.del(self.record_key(id)).await?;
        let _: () = tx.zrem(self.order_key(), id.as_str()).await?;
        let _: () = tx.zrem(self.unqueued_key(), id.as_str()).await?;
        let _: () = tx.zrem(self.failed_key(), id.as_str()).await?;
        if let Some(hash) = &hash {
            let _: () = tx.srem(self.hash_key(hash), id.as_str()).await?;
        }
        let counts: Vec<i64> = tx.exec(true).await.context("Redis delete failed")?;
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
