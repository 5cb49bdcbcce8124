//! `AccountStore` on Redis via fred, on the index's connection. A record is a string at
//! `{prefix}account:{table}:{key}`, expiring by Redis' own TTL; a listed table also keeps
//! the set `{prefix}account:{table}` of its keys, pruned of expired ones as they are listed.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use fred::prelude::*;
use fred::types::{Expiration, SetOptions};

use super::{AccountStore, Table};
use crate::cache::redis::{Durable, Redis};

pub struct RedisAccounts {
    client: Client,
    /// Every write but the login-attempt counters: people, sessions, tokens, links, and
    /// their removal (a revoked session must stay revoked after a failover).
    durable: Durable,
    prefix: String,
}

impl RedisAccounts {
    pub fn new(redis: Redis, prefix: &str) -> Self {
        RedisAccounts {
            client: redis.client,
            durable: redis.durable,
            prefix: format!("{prefix}account:"),
        }
    }

    fn key(&self, table: Table, key: &str) -> String {
        format!("{}{}:{key}", self.prefix, table.name())
    }

    fn listing(&self, table: Table) -> String {
        format!("{}{}", self.prefix, table.name())
    }
}

fn expiration(ttl: Option<Duration>) -> Option<Expiration> {
    ttl.map(|ttl| Expiration::PX(ttl.as_millis().max(1) as i64))
}

/// Tables whose keys are listed; the others are reached by key only.
fn listed(table: Table) -> bool {
    matches!(
        table,
        Table::Users | Table::Tokens | Table::Links | Table::Successors
    )
}

#[async_trait]
impl AccountStore for RedisAccounts {
    async fn create(
        &self,
        table: Table,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> anyhow::Result<bool> {
        let value = Bytes::copy_from_slice(value);
        let record = self.key(table, key);
        let writer = self.durable.writer();
        let written: Option<String> = if listed(table) {
            let tx = writer.client().multi();
            let _: () = tx
                .set(&record, value, expiration(ttl), Some(SetOptions::NX), false)
                .await?;
            let _: () = tx.sadd(self.listing(table), key).await?;
            let (written, _): (Option<String>, i64) =
                tx.exec(true).await.context("Redis write failed")?;
            written
        } else {
            writer
                .client()
                .set(&record, value, expiration(ttl), Some(SetOptions::NX), false)
                .await
                .context("Redis write failed")?
        };
        if let Err(error) = writer.confirm().await {
            if written.is_some() {
                // Taken but not confirmed: let go, so that a failed create leaves nothing (a
                // set-up or an e-mail address tried again must not find itself taken).
                let _ = self.remove(table, key).await;
            }
            return Err(error.context("Redis write failed"));
        }
        Ok(written.is_some())
    }

    async fn put(
        &self,
        table: Table,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> anyhow::Result<()> {
        let value = Bytes::copy_from_slice(value);
        let record = self.key(table, key);
        let writer = self.durable.writer();
        if listed(table) {
            let tx = writer.client().multi();
            let _: () = tx.set(&record, value, expiration(ttl), None, false).await?;
            let _: () = tx.sadd(self.listing(table), key).await?;
            let _: () = tx.exec(true).await.context("Redis write failed")?;
        } else {
            let _: () = writer
                .client()
                .set(&record, value, expiration(ttl), None, false)
                .await
                .context("Redis write failed")?;
        }
        writer.confirm().await.context("Redis write failed")?;
        Ok(())
    }

    async fn get(&self, table: Table, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let value: Option<Bytes> = self
            .client
            .get(self.key(table, key))
            .await
            .context("Redis read failed")?;
        Ok(value.map(|value| value.to_vec()))
    }

    async fn remove(&self, table: Table, key: &str) -> anyhow::Result<bool> {
        let writer = self.durable.writer();
        let tx = writer.client().multi();
        let _: () = tx.del(self.key(table, key)).await?;
        let _: () = tx.srem(self.listing(table), key).await?;
        let (deleted, _): (i64, i64) = tx.exec(true).await.context("Redis delete failed")?;
        writer.confirm().await.context("Redis delete failed")?;
        Ok(deleted > 0)
    }

    async fn take(&self, table: Table, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let writer = self.durable.writer();
        let tx = writer.client().multi();
        let _: () = tx.getdel(self.key(table, key)).await?;
        let _: () = tx.srem(self.listing(table), key).await?;
        let (value, _): (Option<Bytes>, i64) =
            tx.exec(true).await.context("Redis delete failed")?;
        writer.confirm().await.context("Redis delete failed")?;
        Ok(value.map(|value| value.to_vec()))
    }

    async fn all(&self, table: Table) -> anyhow::Result<Vec<Vec<u8>>> {
        let keys: Vec<String> = self
            .client
            .smembers(self.listing(table))
            .await
            .context("Redis list failed")?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let records: Vec<String> = keys.iter().map(|key| self.key(table, key)).collect();
        let values: Vec<Option<Bytes>> = self
            .client
            .mget(records)
            .await
            .context("Redis list failed")?;
        let expired: Vec<&String> = keys
            .iter()
            .zip(&values)
            .filter_map(|(key, value)| value.is_none().then_some(key))
            .collect();
        if !expired.is_empty() {
            // Best effort: a key left behind is pruned on the next listing.
            let _: Result<i64, _> = self.client.srem(self.listing(table), expired).await;
        }
        Ok(values.into_iter().flatten().map(|v| v.to_vec()).collect())
    }

    async fn count(&self, table: Table, key: &str, window: Duration) -> anyhow::Result<u64> {
        let record = self.key(table, key);
        // Both in one transaction: the counter never exists without its expiry.
        let tx = self.client.multi();
        let _: () = tx
            .set(
                &record,
                0,
                expiration(Some(window)),
                Some(SetOptions::NX),
                false,
            )
            .await?;
        let _: () = tx.incr(&record).await?;
        let (_, count): (Option<String>, u64) =
            tx.exec(true).await.context("Redis count failed")?;
        Ok(count)
    }

    async fn counter(&self, table: Table, key: &str) -> anyhow::Result<Option<(u64, Duration)>> {
        let record = self.key(table, key);
        let tx = self.client.multi();
        let _: () = tx.get(&record).await?;
        let _: () = tx.pttl(&record).await?;
        let (count, left): (Option<u64>, i64) = tx.exec(true).await.context("Redis read failed")?;
        Ok(count.map(|count| (count, Duration::from_millis(left.max(0) as u64))))
    }
}
