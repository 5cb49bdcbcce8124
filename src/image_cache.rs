//! The web role's memory of hot images: the bytes of small objects it served lately (a gallery
//! page asks for 30 thumbnails at once, and the next visitor for the same ones), so a repeat
//! request costs no storage round trip. Bounded by bytes (`GALLERY_IMAGE_CACHE_MB`), and an
//! object over `GALLERY_IMAGE_CACHE_ITEM_KB` is never kept (it is streamed instead).
//!
//! An entry is found by the image's ETag, which names the photo, the variant and the making
//! of it (`VariantInfo::version`): a reprocessed variant has another tag, so it is read anew,
//! and the old entry ages out unused. Nothing else is needed to keep it right across web
//! replicas: the bytes under one tag are never rewritten. Who may see an image is checked
//! before the cache is asked, on every request.
//!
//! Concurrent misses for one image make one storage read; the others wait for it
//! (quick_cache's placeholder), so a page's burst does not multiply into the store.
//!
//! Every read whole is counted as a hit or a miss (`gallery_image_cache_reads_total`), and the
//! bytes held are read at scrape time (`gallery_image_cache_bytes`), so an operator can see
//! whether the memory is big enough for the pages people look at.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::metrics::{ImageRead, Metrics};

/// How much the cache may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageCacheSettings {
    /// Bytes of images kept at most, keys and bookkeeping counted in; 0 turns the cache off.
    pub capacity_bytes: u64,
    /// Largest object kept, and read whole rather than streamed.
    pub max_item_bytes: u64,
}

impl Default for ImageCacheSettings {
    fn default() -> Self {
        // 64 MiB holds about 3,000 thumbnails and 200 previews of 12 MP photos: a few busy
        // pages over. A preview of a large photo is 200–400 KiB; an original is streamed.
        ImageCacheSettings {
            capacity_bytes: 64 * 1024 * 1024,
            max_item_bytes: 1024 * 1024,
        }
    }
}

/// What one entry costs beyond its bytes: the key, the `Bytes` handle and the cache's slot.
const ENTRY_OVERHEAD: u64 = 128;

#[derive(Clone)]
struct ByLength;

impl Weighter<String, Bytes> for ByLength {
    fn weight(&self, key: &String, bytes: &Bytes) -> u64 {
        bytes.len() as u64 + key.len() as u64 + ENTRY_OVERHEAD
    }
}

/// Shared by every worker thread of the web role.
#[derive(Clone)]
pub struct ImageCache {
    entries: Option<Arc<Cache<String, Bytes, ByLength>>>,
    max_item_bytes: u64,
    metrics: Metrics,
}

impl ImageCache {
    /// Counts its hits and misses into `metrics`.
    pub fn new(settings: ImageCacheSettings, metrics: Metrics) -> Self {
        let entries = (settings.capacity_bytes > 0).then(|| {
            // The estimate sizes the index up front; thumbnails are what most entries are.
            let estimated_items = (settings.capacity_bytes / (16 * 1024)).clamp(16, 1 << 20);
            Arc::new(Cache::with_weighter(
                estimated_items as usize,
                settings.capacity_bytes,
                ByLength,
            ))
        });
        ImageCache {
            entries,
            max_item_bytes: settings.max_item_bytes,
            metrics,
        }
    }

    /// Whether an object of this size is read whole (and may be kept) rather than streamed.
    pub fn reads_whole(&self, length: u64) -> bool {
        length <= self.max_item_bytes
    }

    /// The bytes under `tag`: from memory, or from `load` (a whole read of the object, `None`
    /// when it is gone), kept when they are `expected_length` long. A length other than the
    /// record's means the record and the object disagree (a variant being made again right
    /// now): served as read, but not kept under a tag that may not be theirs.
    pub async fn get_or_load<F>(
        &self,
        tag: &str,
        expected_length: u64,
        load: F,
    ) -> anyhow::Result<Option<Bytes>>
    where
        F: Future<Output = anyhow::Result<Option<Bytes>>>,
    {
        let entries = match &self.entries {
            Some(entries) if self.reads_whole(expected_length) => entries,
            _ => {
                self.metrics.image_cache_read(ImageRead::Miss);
                return load.await;
            }
        };
        let guard = match entries.get_value_or_guard_async(tag).await {
            Ok(bytes) => {
                self.metrics.image_cache_read(ImageRead::Hit);
                return Ok(Some(bytes));
            }
            Err(guard) => guard,
        };
        self.metrics.image_cache_read(ImageRead::Miss);
        let loaded = load.await?;
        if let Some(bytes) = &loaded {
            let length = bytes.len() as u64;
            if length == expected_length && self.reads_whole(length) {
                let _ = guard.insert(bytes.clone());
            }
        }
        // A guard dropped unfilled lets the next waiter load for itself.
        Ok(loaded)
    }

    /// Bytes held now, for the metrics and the tests.
    pub fn weight(&self) -> u64 {
        self.entries.as_ref().map_or(0, |entries| entries.weight())
    }

    /// Whether an image is held under `tag`.
    pub fn holds(&self, tag: &str) -> bool {
        self.entries
            .as_ref()
            .is_some_and(|entries| entries.contains_key(tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity_bytes: u64, max_item_bytes: u64) -> ImageCache {
        ImageCache::new(
            ImageCacheSettings {
                capacity_bytes,
                max_item_bytes,
            },
            Metrics::new("web"),
        )
    }

    /// The hits and the misses counted so far.
    fn reads(cache: &ImageCache) -> (u32, u32) {
        let text = cache.metrics.render();
        let count = |outcome: &str| {
            let prefix = format!("gallery_image_cache_reads_total{{outcome=\"{outcome}\"}} ");
            text.lines()
                .find_map(|line| line.strip_prefix(prefix.as_str()))
                .map_or(0, |value| value.parse().expect("a count"))
        };
        (count("hit"), count("miss"))
    }

    async fn load(bytes: &'static [u8]) -> anyhow::Result<Option<Bytes>> {
        Ok(Some(Bytes::from_static(bytes)))
    }

    #[tokio::test]
    async fn keeps_small_images_and_serves_them_without_loading() -> anyhow::Result<()> {
        let cache = cache(1 << 20, 1024);
        assert_eq!(
            cache.get_or_load("a", 3, load(b"abc")).await?.as_deref(),
            Some(&b"abc"[..])
        );
        assert!(cache.holds("a"));
        for _ in 0..2 {
            let again = cache
                .get_or_load("a", 3, async { anyhow::bail!("must not load again") })
                .await?;
            assert_eq!(again.as_deref(), Some(&b"abc"[..]));
        }
        assert_eq!(reads(&cache), (2, 1), "(hits, misses)");
        Ok(())
    }

    #[tokio::test]
    async fn never_keeps_what_is_over_the_item_limit_or_not_the_recorded_length(
    ) -> anyhow::Result<()> {
        let cache = cache(1 << 20, 2);
        assert!(cache.get_or_load("big", 3, load(b"abc")).await?.is_some());
        assert!(!cache.holds("big"));
        let cache = cache_with_room();
        assert!(cache.get_or_load("other", 5, load(b"abc")).await?.is_some());
        assert!(!cache.holds("other"), "length differs from the record");
        assert_eq!(
            cache.get_or_load("gone", 3, async { Ok(None) }).await?,
            None
        );
        assert!(!cache.holds("gone"));
        assert_eq!(reads(&cache), (0, 2), "every read was from storage");
        Ok(())
    }

    fn cache_with_room() -> ImageCache {
        cache(1 << 20, 1024)
    }

    #[tokio::test]
    async fn stays_within_its_capacity() -> anyhow::Result<()> {
        let capacity = 64 * 1024;
        let cache = cache(capacity, 4096);
        static BLOCK: [u8; 4000] = [7; 4000];
        for n in 0..200 {
            cache
                .get_or_load(&format!("image-{n}"), 4000, load(&BLOCK))
                .await?;
        }
        assert!(
            cache.weight() <= capacity,
            "{} > {capacity}",
            cache.weight()
        );
        assert!(cache.weight() > 0);
        Ok(())
    }

    #[tokio::test]
    async fn off_at_zero_capacity() -> anyhow::Result<()> {
        let cache = cache(0, 1024);
        assert!(cache.get_or_load("a", 3, load(b"abc")).await?.is_some());
        assert!(!cache.holds("a"));
        assert_eq!(cache.weight(), 0);
        assert!(cache.get_or_load("a", 3, load(b"abc")).await?.is_some());
        assert_eq!(reads(&cache), (0, 2), "off: every read is a miss");
        Ok(())
    }
}
