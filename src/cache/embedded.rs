//! `PhotoIndex` in an embedded ACID store (redb), for `gallery serve` without Redis. One
//! table maps each photo's id to its JSON record; ids are UUID v7 strings, which sort in
//! creation order, so the table itself is the newest-first listing (read backwards). A
//! multimap table finds the ids of the photos whose original has a given SHA-256, and
//! `failed` holds the ids of the failed photos, written in the transaction that writes the
//! record. `finished` counts the jobs finished per minute; each count prunes the minutes
//! that ended `ACTIVITY_KEPT` before it.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{Database, MultimapTableDefinition, ReadableTable, TableDefinition, WriteTransaction};

use super::{minute_of, minutes_up_to, Finished, MinuteCount, Page, PhotoIndex, ACTIVITY_KEPT};
use crate::blocking::blocking;
use crate::domain::{ContentHash, Photo, PhotoId, Status};

const PHOTOS: TableDefinition<&str, &[u8]> = TableDefinition::new("photos");
/// Photos recorded but not yet known to be queued: id → when recorded (Unix ms).
const UNQUEUED: TableDefinition<&str, i64> = TableDefinition::new("unqueued");
/// The originals' hashes: SHA-256 (hex) → ids of the photos whose original it is.
const BY_HASH: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("by_sha256");
/// The failed photos' ids, in the order of `PHOTOS`.
const FAILED: TableDefinition<&str, ()> = TableDefinition::new("failed");
/// Jobs finished per minute (minutes since the Unix epoch): (done, failed).
const FINISHED: TableDefinition<i64, (u64, u64)> = TableDefinition::new("finished_per_minute");

pub struct EmbeddedIndex {
    db: Arc<Database>,
}

impl EmbeddedIndex {
    /// Opens (or creates) `DATA_DIR/index.redb`. Only one process can hold it.
    pub fn open_in(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("index.redb");
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let db = Database::create(&path)
            .with_context(|| format!("cannot open the photo index {}", path.display()))?;
        let write = db.begin_write()?;
        write.open_table(PHOTOS)?;
        write.open_table(UNQUEUED)?;
        write.open_multimap_table(BY_HASH)?;
        write.open_table(FAILED)?;
        write.open_table(FINISHED)?;
        write.commit()?;
        Ok(EmbeddedIndex { db: Arc::new(db) })
    }
}

fn parse(json: &[u8]) -> anyhow::Result<Photo> {
    serde_json::from_slice(json).context("corrupt photo record in the index")
}

/// Lists the photo among the failed ones, or takes it out, as its status says: in the
/// transaction that writes its record.
fn track_failed(write: &WriteTransaction, id: &str, status: Status) -> anyhow::Result<()> {
    let mut failed = write.open_table(FAILED)?;
    if status == Status::Failed {
        failed.insert(id, ())?;
    } else {
        failed.remove(id)?;
    }
    Ok(())
}

#[async_trait]
impl PhotoIndex for EmbeddedIndex {
    async fn check(&self) -> anyhow::Result<()> {
        blocking(&self.db, |db| {
            db.begin_read()?.open_table(PHOTOS)?;
            Ok(())
        })
        .await
    }

    async fn insert(&self, photo: &Photo) -> anyhow::Result<()> {
        let id = photo.id.to_string();
        let json = serde_json::to_vec(photo)?;
        let recorded = photo.created_at.timestamp_millis();
        let hash = photo.sha256.clone();
        let status = photo.status;
        blocking(&self.db, move |db| {
            let write = db.begin_write()?;
            write
                .open_table(PHOTOS)?
                .insert(id.as_str(), json.as_slice())?;
            write.open_table(UNQUEUED)?.insert(id.as_str(), recorded)?;
            track_failed(&write, &id, status)?;
            if let Some(hash) = &hash {
                write
                    .open_multimap_table(BY_HASH)?
                    .insert(hash.as_str(), id.as_str())?;
            }
            write.commit()?;
            Ok(())
        })
        .await
    }

    async fn queued(&self, id: &PhotoId) -> anyhow::Result<()> {
        let id = id.to_string();
        blocking(&self.db, move |db| {
            let write = db.begin_write()?;
            write.open_table(UNQUEUED)?.remove(id.as_str())?;
            write.commit()?;
            Ok(())
        })
        .await
    }

    async fn unqueued(&self, before: DateTime<Utc>, limit: usize) -> anyhow::Result<Vec<PhotoId>> {
        let before = before.timestamp_millis();
        blocking(&self.db, move |db| {
            let table = db.begin_read()?.open_table(UNQUEUED)?;
            // Few rows (only uploads in flight or cut off), so a scan is cheap.
            let mut stranded = Vec::new();
            for entry in table.iter()? {
                let (id, recorded) = entry?;
                if recorded.value() <= before {
                    if let Ok(id) = PhotoId::parse(id.value()) {
                        stranded.push((recorded.value(), id));
                    }
                }
            }
            stranded.sort_by_key(|(recorded, _)| *recorded);
            Ok(stranded.into_iter().take(limit).map(|(_, id)| id).collect())
        })
        .await
    }

    async fn get(&self, id: &PhotoId) -> anyhow::Result<Option<Photo>> {
        let id = id.to_string();
        blocking(&self.db, move |db| {
            let table = db.begin_read()?.open_table(PHOTOS)?;
            let record = table.get(id.as_str())?;
            record.map(|json| parse(json.value())).transpose()
        })
        .await
    }

    async fn update(&self, photo: &Photo) -> anyhow::Result<bool> {
        let id = photo.id.to_string();
        let json = serde_json::to_vec(photo)?;
        let status = photo.status;
        blocking(&self.db, move |db| {
            let write = db.begin_write()?;
            let exists = {
                let mut table = write.open_table(PHOTOS)?;
                // Checked inside the write transaction: atomic against a concurrent delete.
                let exists = table.get(id.as_str())?.is_some();
                if exists {
                    table.insert(id.as_str(), json.as_slice())?;
                    track_failed(&write, &id, status)?;
                }
                exists
            };
            write.commit()?;
            Ok(exists)
        })
        .await
    }

    async fn requeue(&self, photo: &Photo) -> anyhow::Result<bool> {
        let id = photo.id.to_string();
        let json = serde_json::to_vec(photo)?;
        let now = Utc::now().timestamp_millis();
        let status = photo.status;
        blocking(&self.db, move |db| {
            let write = db.begin_write()?;
            let exists = {
                let mut table = write.open_table(PHOTOS)?;
                let exists = table.get(id.as_str())?.is_some();
                if exists {
                    table.insert(id.as_str(), json.as_slice())?;
                    write.open_table(UNQUEUED)?.insert(id.as_str(), now)?;
                    track_failed(&write, &id, status)?;
                }
                exists
            };
            write.commit()?;
            Ok(exists)
        })
        .await
    }

    async fn remove(&self, id: &PhotoId) -> anyhow::Result<bool> {
        let id = id.to_string();
        blocking(&self.db, move |db| {
            let write = db.begin_write()?;
            let removed = write
                .open_table(PHOTOS)?
                .remove(id.as_str())?
                .map(|json| parse(json.value()));
            write.open_table(UNQUEUED)?.remove(id.as_str())?;
            write.open_table(FAILED)?.remove(id.as_str())?;
            // A record that does not parse leaves its id under its hash, where `with_hash`
            // skips it.
            if let Some(hash) = removed
                .as_ref()
                .and_then(|photo| photo.as_ref().ok())
                .and_then(|photo| photo.sha256.as_ref())
            {
                write
                    .open_multimap_table(BY_HASH)?
                    .remove(hash.as_str(), id.as_str())?;
            }
            write.commit()?;
            Ok(removed.is_some())
        })
        .await
    }

    async fn list(&self, limit: usize, cursor: Option<&PhotoId>) -> anyhow::Result<Page> {
        let cursor = cursor.map(PhotoId::to_string);
        blocking(&self.db, move |db| {
            let table = db.begin_read()?.open_table(PHOTOS)?;
            let newest_first = match &cursor {
                Some(cursor) => table.range::<&str>(..cursor.as_str())?.rev(),
                None => table.range::<&str>(..)?.rev(),
            };
            // One more than asked tells whether a next page exists.
            let mut photos = Vec::with_capacity(limit + 1);
            for entry in newest_first.take(limit + 1) {
                let (_, json) = entry?;
                photos.push(parse(json.value())?);
            }
            let has_more = photos.len() > limit;
            photos.truncate(limit);
            let next_cursor = if has_more {
                photos.last().map(|photo| photo.id.clone())
            } else {
                None
            };
            Ok(Page {
                photos,
                next_cursor,
            })
        })
        .await
    }

    async fn failed(&self, limit: usize, cursor: Option<&PhotoId>) -> anyhow::Result<Page> {
        let cursor = cursor.map(PhotoId::to_string);
        blocking(&self.db, move |db| {
            let read = db.begin_read()?;
            let failed = read.open_table(FAILED)?;
            let newest_first = match &cursor {
                Some(cursor) => failed.range::<&str>(..cursor.as_str())?.rev(),
                None => failed.range::<&str>(..)?.rev(),
            };
            let mut ids = Vec::with_capacity(limit + 1);
            for entry in newest_first.take(limit + 1) {
                ids.push(entry?.0.value().to_owned());
            }
            // One more than asked tells whether a next page exists.
            let has_more = ids.len() > limit;
            ids.truncate(limit);
            let records = read.open_table(PHOTOS)?;
            let mut photos = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(json) = records.get(id.as_str())? {
                    photos.push(parse(json.value())?);
                }
            }
            let next_cursor = match ids.last() {
                Some(last) if has_more => PhotoId::parse(last).ok(),
                _ => None,
            };
            Ok(Page {
                photos,
                next_cursor,
            })
        })
        .await
    }

    async fn count_finished(&self, finished: Finished, at: DateTime<Utc>) -> anyhow::Result<()> {
        let minute = minute_of(at);
        let oldest_kept = minute_of(at - ACTIVITY_KEPT);
        blocking(&self.db, move |db| {
            let write = db.begin_write()?;
            {
                let mut table = write.open_table(FINISHED)?;
                let (done, failed) = table.get(minute)?.map_or((0, 0), |count| count.value());
                let counted = match finished {
                    Finished::Done => (done + 1, failed),
                    Finished::Failed => (done, failed + 1),
                };
                table.insert(minute, counted)?;
                // At most a row a minute: pruning as we go keeps the table small.
                table.retain_in(..oldest_kept, |_, _| false)?;
            }
            write.commit()?;
            Ok(())
        })
        .await
    }

    async fn finished_per_minute(
        &self,
        until: DateTime<Utc>,
        minutes: usize,
    ) -> anyhow::Result<Vec<MinuteCount>> {
        let minutes = minutes_up_to(until, minutes.min(ACTIVITY_KEPT.num_minutes() as usize));
        blocking(&self.db, move |db| {
            let table = db.begin_read()?.open_table(FINISHED)?;
            let mut counts = Vec::new();
            for minute in minutes {
                let (done, failed) = table.get(minute)?.map_or((0, 0), |count| count.value());
                counts.push(MinuteCount::new(minute, done, failed));
            }
            Ok(counts)
        })
        .await
    }

    async fn with_hash(&self, hash: &ContentHash, limit: usize) -> anyhow::Result<Vec<Photo>> {
        let hash = hash.to_string();
        blocking(&self.db, move |db| {
            let read = db.begin_read()?;
            let mut ids = Vec::new();
            for id in read.open_multimap_table(BY_HASH)?.get(hash.as_str())? {
                ids.push(id?.value().to_owned());
            }
            // Ids sort in creation order: newest first, as the gallery lists.
            ids.sort_by(|a, b| b.cmp(a));
            let records = read.open_table(PHOTOS)?;
            let mut photos = Vec::new();
            for id in ids {
                if photos.len() == limit {
                    break;
                }
                if let Some(json) = records.get(id.as_str())? {
                    photos.push(parse(json.value())?);
                }
            }
            Ok(photos)
        })
        .await
    }
}
