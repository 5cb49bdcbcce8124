//! `PhotoIndex` on Redis via fred. Each photo is a JSON string at `{prefix}photo:{id}`; the
//! sorted set `{prefix}photos` holds every id with score 0, so members sort by their UUID v7,
//! which is creation order, and pages are cut with ZRANGE BYLEX REV from the last id seen.
//! `{prefix}sha256:{hex}` is the set of ids of the photos whose original has that hash.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fred::prelude::*;
use fred::types::sorted_sets::{ZRange, ZRangeBound, ZRangeKind, ZSort};
use fred::types::{Expiration, SetOptions};
use secrecy::{ExposeSecret, SecretString};

use super::{Page, PhotoIndex};
use crate::domain::{ContentHash, Photo, PhotoId};

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
        let written: Option<String> = self
            .client
            .set(
                self.record_key(&photo.id),
                json,
                None::<Expiration>,
                Some(SetOptions::XX),
                false,
            )
            .await
            .context("Redis update failed")?;
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
        let (written, _): (Option<String>, i64) =
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
                self.order_key(),
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
}
