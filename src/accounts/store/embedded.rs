//! `AccountStore` in an embedded ACID store (redb), for `gallery serve` without Redis: one
//! table per kind of record in `DATA_DIR/accounts.redb`. Each value is the time it expires
//! (Unix ms, 0 for never) followed by the record; expired records read as absent, and are
//! dropped when the file is opened and then every hour by the web role (`drop_expired`), so
//! a long-running `serve` does not keep every login attempt and session it ever saw.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_trait::async_trait;
use redb::{Database, DatabaseError, ReadableTable, TableDefinition};

use super::{AccountStore, Table};
use crate::blocking::blocking;

pub struct EmbeddedAccounts {
    db: Arc<Database>,
}

fn definition(table: Table) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(table.name())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// The stored form: expiry, then the record.
fn seal(value: &[u8], ttl: Option<Duration>) -> Vec<u8> {
    let expires = ttl.map_or(0, |ttl| now_ms() + (ttl.as_millis() as u64).max(1));
    let mut sealed = expires.to_le_bytes().to_vec();
    sealed.extend_from_slice(value);
    sealed
}

/// The record and its expiry, or `None` when it has expired (or is unreadable).
fn open(sealed: &[u8]) -> Option<(&[u8], u64)> {
    let (expires, value) = sealed.split_at_checked(8)?;
    let expires = u64::from_le_bytes(expires.try_into().ok()?);
    (expires == 0 || expires > now_ms()).then_some((value, expires))
}

impl EmbeddedAccounts {
    /// Opens (or creates) `DATA_DIR/accounts.redb`. Only one process can hold it: another
    /// gets an error saying so at once, never a wait.
    pub fn open_in(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("accounts.redb");
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let db = Database::create(&path).map_err(|error| match error {
            DatabaseError::DatabaseAlreadyOpen => anyhow::anyhow!(
                "{} is in use by another gallery process (a running `gallery serve`?): stop \
                 it first, or manage people from the page",
                path.display()
            ),
            other => anyhow::Error::new(other)
                .context(format!("cannot open the accounts store {}", path.display())),
        })?;
        drop_expired(&db)?;
        Ok(EmbeddedAccounts { db: Arc::new(db) })
    }
}

/// Removes every expired record of every table, in one transaction; answers how many.
fn drop_expired(db: &Database) -> anyhow::Result<u64> {
    let write = db.begin_write()?;
    let mut dropped = 0;
    for table in Table::ALL {
        let mut table = write.open_table(definition(table))?;
        table.retain(|_, sealed| {
            let live = open(sealed).is_some();
            dropped += u64::from(!live);
            live
        })?;
    }
    write.commit()?;
    Ok(dropped)
}

#[async_trait]
impl AccountStore for EmbeddedAccounts {
    async fn create(
        &self,
        table: Table,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> anyhow::Result<bool> {
        let (key, sealed) = (key.to_owned(), seal(value, ttl));
        blocking(&self.db, move |db| {
            let write = db.begin_write()?;
            let created = {
                let mut records = write.open_table(definition(table))?;
                let live = records
                    .get(key.as_str())?
                    .is_some_and(|existing| open(existing.value()).is_some());
                if !live {
                    records.insert(key.as_str(), sealed.as_slice())?;
                }
                !live
            };
            write.commit()?;
            Ok(created)
        })
        .await
    }

    async fn put(
        &self,
        table: Table,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> anyhow::Result<()> {
        let (key, sealed) = (key.to_owned(), seal(value, ttl));
        blocking(&self.db, move |db| {
            let write = db.begin_write()?;
            write
                .open_table(definition(table))?
                .insert(key.as_str(), sealed.as_slice())?;
            write.commit()?;
            Ok(())
        })
        .await
    }

    async fn get(&self, table: Table, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let key = key.to_owned();
        blocking(&self.db, move |db| {
            let records = db.begin_read()?.open_table(definition(table))?;
            let sealed = records.get(key.as_str())?;
            Ok(sealed.and_then(|sealed| open(sealed.value()).map(|(value, _)| value.to_vec())))
        })
        .await
    }

    async fn remove(&self, table: Table, key: &str) -> anyhow::Result<bool> {
        Ok(self.take(table, key).await?.is_some())
    }

    async fn take(&self, table: Table, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let key = key.to_owned();
        blocking(&self.db, move |db| {
            let write = db.begin_write()?;
            let taken = write
                .open_table(definition(table))?
                .remove(key.as_str())?
                .and_then(|sealed| open(sealed.value()).map(|(value, _)| value.to_vec()));
            write.commit()?;
            Ok(taken)
        })
        .await
    }

    async fn all(&self, table: Table) -> anyhow::Result<Vec<Vec<u8>>> {
        blocking(&self.db, move |db| {
            let records = db.begin_read()?.open_table(definition(table))?;
            let mut live = Vec::new();
            for entry in records.iter()? {
                let (_, sealed) = entry?;
                if let Some((value, _)) = open(sealed.value()) {
                    live.push(value.to_vec());
                }
            }
            Ok(live)
        })
        .await
    }

    async fn count(&self, table: Table, key: &str, window: Duration) -> anyhow::Result<u64> {
        let key = key.to_owned();
        blocking(&self.db, move |db| {
            let write = db.begin_write()?;
            let count = {
                let mut records = write.open_table(definition(table))?;
                let current = records.get(key.as_str())?.and_then(|sealed| {
                    let (value, expires) = open(sealed.value())?;
                    Some((u64::from_le_bytes(value.try_into().ok()?), expires))
                });
                let (count, expires) = match current {
                    Some((count, expires)) => (count + 1, expires),
                    None => (1, now_ms() + window.as_millis() as u64),
                };
                let mut sealed = expires.to_le_bytes().to_vec();
                sealed.extend_from_slice(&count.to_le_bytes());
                records.insert(key.as_str(), sealed.as_slice())?;
                count
            };
            write.commit()?;
            Ok(count)
        })
        .await
    }

    async fn drop_expired(&self) -> anyhow::Result<u64> {
        blocking(&self.db, drop_expired).await
    }

    async fn counter(&self, table: Table, key: &str) -> anyhow::Result<Option<(u64, Duration)>> {
        let key = key.to_owned();
        blocking(&self.db, move |db| {
            let records = db.begin_read()?.open_table(definition(table))?;
            let sealed = records.get(key.as_str())?;
            Ok(sealed.and_then(|sealed| {
                let (value, expires) = open(sealed.value())?;
                let count = u64::from_le_bytes(value.try_into().ok()?);
                Some((
                    count,
                    Duration::from_millis(expires.saturating_sub(now_ms())),
                ))
            }))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use redb::ReadableTableMetadata;

    use super::*;

    /// Records stored in `table`, expired or not.
    fn stored(store: &EmbeddedAccounts, table: Table) -> anyhow::Result<u64> {
        Ok(store
            .db
            .begin_read()?
            .open_table(definition(table))?
            .len()?)
    }

    #[tokio::test]
    async fn expired_records_are_dropped_and_live_ones_kept() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!(
            "gallery-accounts-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let store = EmbeddedAccounts::open_in(&dir)?;
        let brief = Some(Duration::from_millis(1));
        store.put(Table::Attempts, "put", b"1", brief).await?;
        store
            .count(Table::Attempts, "counted", Duration::from_millis(1))
            .await?;
        let hour = Some(Duration::from_secs(3600));
        store.put(Table::Sessions, "lasting", b"2", hour).await?;
        store.put(Table::Users, "forever", b"3", None).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(stored(&store, Table::Attempts)?, 2, "expired, still stored");

        assert_eq!(store.drop_expired().await?, 2);
        assert_eq!(stored(&store, Table::Attempts)?, 0);
        assert_eq!(store.drop_expired().await?, 0, "nothing left to drop");
        let lasting = store.get(Table::Sessions, "lasting").await?;
        assert_eq!(lasting.as_deref(), Some(&b"2"[..]));
        let forever = store.get(Table::Users, "forever").await?;
        assert_eq!(forever.as_deref(), Some(&b"3"[..]));
        drop(store);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
