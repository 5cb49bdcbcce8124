//! `PhotoIndex` in an embedded ACID store (redb), for `gallery serve` without Redis. One
//! table maps each photo's id to its JSON record; ids are UUID v7 strings, which sort in
//! creation order, so the table itself is the newest-first listing (read backwards).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use redb::{Database, ReadableTable, TableDefinition};

use super::{Page, PhotoIndex};
use crate::blocking::blocking;
use crate::domain::{Photo, PhotoId};

const PHOTOS: TableDefinition<&str, &[u8]> = TableDefinition::new("photos");

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
        write.commit()?;
        Ok(EmbeddedIndex { db: Arc::new(db) })
    }
}

fn parse(json: &[u8]) -> anyhow::Result<Photo> {
    serde_json::from_slice(json).context("corrupt photo record in the index")
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
        blocking(&self.db, move |db| {
            let write = db.begin_write()?;
            write
                .open_table(PHOTOS)?
                .insert(id.as_str(), json.as_slice())?;
            write.commit()?;
            Ok(())
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
        blocking(&self.db, move |db| {
            let write = db.begin_write()?;
            let exists = {
                let mut table = write.open_table(PHOTOS)?;
                // Checked inside the write transaction: atomic against a concurrent delete.
                let exists = table.get(id.as_str())?.is_some();
                if exists {
                    table.insert(id.as_str(), json.as_slice())?;
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
            let existed = write.open_table(PHOTOS)?.remove(id.as_str())?.is_some();
            write.commit()?;
            Ok(existed)
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
}
