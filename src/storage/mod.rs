//! Object storage for originals and variants. The roles use only the `ObjectStore` trait;
//! `s3` is the implementation for any path-style S3 (MinIO, Garage, s3s, AWS), `fs` the
//! embedded one (files under the data dir) for `gallery serve`.

mod fs;
mod s3;

use std::path::Path;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

pub use self::fs::FsStore;
pub use self::s3::{S3Settings, S3Store};

/// The bytes of an object, as they arrive.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// An object being read: its bytes as they arrive, and its length when the store tells it
/// without another round trip (a file's size; rust-s3 does not hand over the GET's headers).
pub struct ObjectStream {
    pub length: Option<u64>,
    pub bytes: ByteStream,
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Creates what the store needs (the bucket) when missing. Safe to call at every start.
    async fn prepare(&self) -> anyhow::Result<()>;
    /// Answers whether the store can be reached right now (for /readyz).
    async fn check(&self) -> anyhow::Result<()>;
    /// Writes a whole object; it is either stored entirely or not at all.
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> anyhow::Result<()>;
    /// Writes an object from a complete file, streaming it: memory holds a buffer, never the
    /// file. Stored entirely or not at all, as `put`. The store may move the file into place
    /// rather than copy it (`FsStore` does on its own filesystem), so it may be gone after.
    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> anyhow::Result<()>;
    /// Whether `put_file` keeps the very file it is given (moves it into place and syncs it)
    /// rather than reading it: then an upload is written to disk as it arrives
    /// (`routes::form`), so the sync that stores it has little left to wait for.
    fn keeps_put_files(&self) -> bool {
        false
    }
    /// Reads a whole object; `None` when it does not exist.
    async fn get(&self, key: &str) -> anyhow::Result<Option<Bytes>>;
    /// `get` for an object whose length is known beforehand (an original: its job says it),
    /// which lets a store read a large one in parts side by side (`S3Store` does). A length
    /// that turns out wrong costs time, not the read: the object is then read as `get` does.
    async fn get_sized(&self, key: &str, length: u64) -> anyhow::Result<Option<Bytes>> {
        let _ = length;
        self.get(key).await
    }
    /// Streams an object; `None` when it does not exist.
    async fn stream(&self, key: &str) -> anyhow::Result<Option<ObjectStream>>;
    /// Removes an object; removing a missing one is not an error.
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
}
