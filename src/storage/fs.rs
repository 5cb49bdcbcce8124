//! `ObjectStore` on the local filesystem, for `gallery serve` without S3: one file per
//! object under a root directory. Writes are atomic (a complete file, fsync, rename: see
//! `install`), and every key maps to a path inside the root, whatever bytes it holds. A file
//! put from the same filesystem (the upload spool, in the same data dir) is renamed into
//! place, never copied.

use std::future::Future;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::{ObjectStore, ObjectStream};

/// Longest file name written; longer key segments are replaced by their hash.
const MAX_NAME: usize = 200;
/// Bytes read per blocking-pool trip when a file is streamed (an original): tokio's default
/// of 4 KiB made a thread hand-off per 4 KiB.
const STREAM_BUFFER: usize = 256 * 1024;

pub struct FsStore {
    root: PathBuf,
    /// Half-written files live here until renamed; encoded names never start with '.'.
    temp: PathBuf,
}

impl FsStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let temp = root.join(".tmp");
        FsStore { root, temp }
    }

    /// The store `gallery serve` keeps in its data dir: `DATA_DIR/objects`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::new(data_dir.join("objects"))
    }

    /// Where the object with this key lives. Each `/`-separated segment becomes one path
    /// component: bytes other than `[A-Za-z0-9_-]` and inner dots are percent-encoded, so
    /// no component is empty, `.`, `..`, hidden, absolute or holds a separator or NUL.
    pub fn path_of(&self, key: &str) -> PathBuf {
        let mut path = self.root.clone();
        for segment in key.split('/') {
            path.push(encode_segment(segment));
        }
        path
    }

    /// Makes the complete file `source` the object at `key`; `source` is gone afterwards. The
    /// one way objects are written: the data synced, then renamed over the object (readers
    /// see the old object or the new one, never part of one), then the directory entry synced
    /// (the rename is durable only once it is). `source` must be on the store's filesystem.
    async fn install(&self, source: &Path, key: &str) -> std::io::Result<()> {
        let path = self.path_of(key);
        let parent = path.parent().unwrap_or(&self.root).to_owned();
        tokio::fs::create_dir_all(&parent).await?;
        // Write access, not for writing: some systems refuse to sync a read-only handle.
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(source)
            .await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(source, &path).await?;
        sync_dir(&parent).await
    }

    /// Installs a temp file that `write` fills; the temp file goes if anything fails.
    async fn install_new<F>(
        &self,
        key: &str,
        write: impl FnOnce(PathBuf) -> F,
    ) -> anyhow::Result<()>
    where
        F: Future<Output = std::io::Result<()>>,
    {
        let temp = self.temp.join(uuid::Uuid::now_v7().simple().to_string());
        let written = async {
            write(temp.clone()).await?;
            self.install(&temp, key).await
        }
        .await;
        if let Err(error) = written {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(error)
                .with_context(|| format!("cannot write {}", self.path_of(key).display()));
        }
        Ok(())
    }
}

fn encode_segment(segment: &str) -> String {
    if segment.is_empty() {
        // '%' alone is never the encoding of anything else ('%' itself becomes "%25").
        return "%".to_owned();
    }
    let mut name = String::with_capacity(segment.len());
    for (index, byte) in segment.bytes().enumerate() {
        let keep = byte.is_ascii_alphanumeric()
            || byte == b'_'
            || byte == b'-'
            || (byte == b'.' && index > 0);
        if keep {
            name.push(byte as char);
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    if name.len() > MAX_NAME {
        // '~' is always encoded above, so a hashed name cannot meet an encoded one.
        let digest = Sha256::digest(segment.as_bytes());
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        return format!("~{hex}");
    }
    name
}

fn missing(error: &std::io::Error) -> bool {
    error.kind() == ErrorKind::NotFound
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

#[async_trait]
impl ObjectStore for FsStore {
    async fn prepare(&self) -> anyhow::Result<()> {
        tokio::fs::create_dir_all(&self.temp)
            .await
            .with_context(|| format!("cannot create {}", self.temp.display()))?;
        // Leftovers of writes cut short by a crash: never renamed, so never visible.
        let mut entries = tokio::fs::read_dir(&self.temp).await?;
        while let Some(entry) = entries.next_entry().await? {
            let _ = tokio::fs::remove_file(entry.path()).await;
        }
        Ok(())
    }

    async fn check(&self) -> anyhow::Result<()> {
        let metadata = tokio::fs::metadata(&self.temp)
            .await
            .with_context(|| format!("cannot reach {}", self.root.display()))?;
        anyhow::ensure!(
            metadata.is_dir(),
            "{} is not a directory",
            self.temp.display()
        );
        Ok(())
    }

    async fn put(&self, key: &str, bytes: Bytes, _content_type: &str) -> anyhow::Result<()> {
        self.install_new(
            key,
            |temp| async move { tokio::fs::write(temp, bytes).await },
        )
        .await
    }

    async fn put_file(&self, key: &str, path: &Path, _content_type: &str) -> anyhow::Result<()> {
        let renamed = self.install(path, key).await;
        match renamed {
            Ok(()) => Ok(()),
            // Still there: the rename did not happen, most likely because the file is on
            // another filesystem (a rename cannot cross one). Then it is copied, and installed
            // as any new object; were it something else, the copy says so.
            Err(_) if tokio::fs::try_exists(path).await.unwrap_or(false) => {
                let source = path.to_owned();
                self.install_new(key, |temp| async move {
                    tokio::fs::copy(source, temp).await.map(drop)
                })
                .await
            }
            Err(error) => {
                Err(error).with_context(|| format!("cannot write {}", self.path_of(key).display()))
            }
        }
    }

    fn keeps_put_files(&self) -> bool {
        true
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<Bytes>> {
        let path = self.path_of(key);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(error) if missing(&error) => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    async fn stream(&self, key: &str) -> anyhow::Result<Option<ObjectStream>> {
        let path = self.path_of(key);
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(error) if missing(&error) => return Ok(None),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot open {}", path.display()))
            }
        };
        // The open file's own size: a rename over the path since cannot change it.
        let length = file
            .metadata()
            .await
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        let bytes = tokio_util::io::ReaderStream::with_capacity(file, STREAM_BUFFER).boxed();
        Ok(Some(ObjectStream {
            length: Some(length),
            bytes,
        }))
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let path = self.path_of(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(error) if missing(&error) => Ok(()),
            Err(error) => Err(error).with_context(|| format!("cannot delete {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (FsStore, PathBuf) {
        let root = std::env::temp_dir().join(format!("gallery-fs-{}", uuid::Uuid::now_v7()));
        (FsStore::new(&root), root)
    }

    #[test]
    fn hostile_keys_stay_inside_the_root() {
        let (store, root) = store();
        let long = "a".repeat(5000);
        let keys = [
            "../../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "./.hidden",
            "nul\0byte",
            "back\\slash",
            "",
            "//",
            "..",
            long.as_str(),
        ];
        for key in keys {
            let path = store.path_of(key);
            assert!(path.starts_with(&root), "{key:?} → {}", path.display());
            let inside = path.strip_prefix(&root).expect("inside");
            for component in inside.components() {
                let std::path::Component::Normal(name) = component else {
                    panic!("{key:?} gave a non-plain component in {}", path.display());
                };
                let name = name.to_str().expect("ascii");
                assert!(!name.starts_with('.'), "{key:?} → hidden {name}");
                assert!(name.len() <= MAX_NAME + 1, "{key:?} → long name");
                assert!(!name.contains('\0') && !name.contains('\\'));
            }
        }
    }

    #[test]
    fn distinct_keys_get_distinct_paths() {
        let (store, _) = store();
        let keys = [
            "a/b", "a%2Fb", "a.b", ".a", "%2Ea", "", "%", "a/", "a//b", "a/%/b", "~",
        ];
        let paths: std::collections::BTreeSet<PathBuf> =
            keys.iter().map(|key| store.path_of(key)).collect();
        assert_eq!(paths.len(), keys.len());
        assert_eq!(
            store.path_of("originals/0192.jpg"),
            store.root.join("originals").join("0192.jpg")
        );
    }

    #[tokio::test]
    async fn objects_round_trip_and_leave_no_temp_files() -> anyhow::Result<()> {
        let (store, root) = store();
        store.prepare().await?;
        let long = "x".repeat(1000);
        for key in ["originals/a", "../escape", long.as_str(), "a/b/c.jpg"] {
            store
                .put(key, Bytes::from_static(b"hello"), "image/jpeg")
                .await?;
            assert_eq!(store.get(key).await?, Some(Bytes::from_static(b"hello")));
            let object = store.stream(key).await?.expect("stream");
            assert_eq!(object.length, Some(5));
            let mut stream = object.bytes;
            let mut streamed = Vec::new();
            while let Some(chunk) = stream.next().await {
                streamed.extend_from_slice(&chunk?);
            }
            assert_eq!(streamed, b"hello");
            store.delete(key).await?;
            assert_eq!(store.get(key).await?, None);
            store.delete(key).await?;
        }
        assert!(!root.parent().expect("parent").join("escape").exists());
        let temp_left = std::fs::read_dir(root.join(".tmp"))?.count();
        assert_eq!(temp_left, 0);
        std::fs::remove_dir_all(&root)?;
        Ok(())
    }

    #[tokio::test]
    async fn a_file_is_moved_into_place_or_copied_across_filesystems() -> anyhow::Result<()> {
        let (store, root) = store();
        store.prepare().await?;
        let spool = root.join("spool");
        std::fs::create_dir_all(&spool)?;
        let source = spool.join("upload");
        let content: Vec<u8> = (0..300_000u32).map(|n| (n % 251) as u8).collect();
        std::fs::write(&source, &content)?;
        store
            .put_file("photos/a/original", &source, "image/jpeg")
            .await?;
        assert_eq!(std::fs::read(store.path_of("photos/a/original"))?, content);
        assert!(!source.exists(), "renamed, not copied");

        // tmpfs is another filesystem than the temp dir on most machines: there, a copy.
        use std::os::unix::fs::MetadataExt;
        let shm = Path::new("/dev/shm");
        let elsewhere =
            shm.is_dir() && std::fs::metadata(shm)?.dev() != std::fs::metadata(&root)?.dev();
        if elsewhere {
            let source = shm.join(format!("gallery-fs-{}", uuid::Uuid::now_v7()));
            std::fs::write(&source, &content)?;
            store
                .put_file("photos/b/original", &source, "image/jpeg")
                .await?;
            assert_eq!(std::fs::read(store.path_of("photos/b/original"))?, content);
            assert!(source.exists(), "copied: the source is the caller's");
            std::fs::remove_file(&source)?;
        }
        assert_eq!(std::fs::read_dir(root.join(".tmp"))?.count(), 0);
        std::fs::remove_dir_all(&root)?;
        Ok(())
    }

    #[tokio::test]
    async fn a_failed_put_leaves_no_object_and_no_temp_file() -> anyhow::Result<()> {
        let (store, root) = store();
        store.prepare().await?;
        // A file where the object's directory should be: nothing can be written under it.
        std::fs::write(root.join("photos"), b"in the way")?;
        let source = root.join("upload");
        std::fs::write(&source, b"an image")?;
        assert!(store
            .put_file("photos/a/original", &source, "image/jpeg")
            .await
            .is_err());
        assert!(store
            .put("photos/a/original", Bytes::from_static(b"x"), "image/jpeg")
            .await
            .is_err());
        assert!(source.exists(), "the caller's file is left to the caller");
        assert_eq!(std::fs::read_dir(root.join(".tmp"))?.count(), 0);
        assert_eq!(std::fs::read(root.join("photos"))?, b"in the way");
        std::fs::remove_dir_all(&root)?;
        Ok(())
    }
}
