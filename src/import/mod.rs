//! `gallery import DIR --server URL`: uploads every JPEG, PNG and WebP file under a folder to a
//! gallery through its public API, several at once, skipping what the gallery already has.
//!
//! Each file, up to `jobs` of them at once: its SHA-256 is read from disk, the gallery is asked
//! whether a photo has it (`GET /api/photos?sha256=`), and only if none has is the file sent
//! (`POST /api/photos`, streamed from disk, never read whole). The server records the hash
//! before it answers 202, so an import killed at any point and run again finds every file that
//! got in and sends only the rest: nothing twice. Two files of the folder with the same content
//! go once. The server itself takes the same file twice when asked to (a person may mean it):
//! the check is the importer's.
//!
//! A passing failure (no connection, a reset, 408, 429, 5xx) is tried again after the
//! `RetryPolicy`'s wait, or the server's `Retry-After`, and the gallery is asked about the hash
//! again first: an answer lost on the way may hide an upload that got in. A refusal (any other
//! 4xx) is final and reported with the server's reason and code. `progress` shows it all: a
//! bar on a terminal, plain lines otherwise. The exit code is 0 only when every file is in the
//! gallery.

mod client;
mod progress;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use self::client::{Client, Failure};
use self::progress::FileProgress;
pub use self::progress::{Display, Progress};
use crate::domain::ContentHash;
use crate::retry::RetryPolicy;

/// What an import needs: the folder, the gallery and its token, and how hard to push.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    pub dir: PathBuf,
    /// The gallery's base URL, e.g. `https://photos.example.com`.
    pub server: reqwest::Url,
    /// An API token of the person the photos will belong to.
    pub token: SecretString,
    /// Files sent at once.
    pub jobs: usize,
    /// Waits between tries of one file after a passing failure.
    pub retry: RetryPolicy,
    /// Tries per file before it counts as failed.
    pub attempts: u32,
}

impl ImportSettings {
    /// Files sent at once unless told otherwise: enough to hide the round trips, few enough
    /// not to trip a gateway's rate limit (the compose stack's allows bursts of 20).
    pub const DEFAULT_JOBS: usize = 4;

    pub fn new(dir: PathBuf, server: reqwest::Url, token: SecretString) -> Self {
        ImportSettings {
            dir,
            server,
            token,
            jobs: Self::DEFAULT_JOBS,
            // 1 s, 2 s, 4 s, 8 s: a restarting server is back within them.
            retry: RetryPolicy {
                initial: Duration::from_secs(1),
                factor: 2,
                max: Duration::from_secs(30),
                jitter: 0.2,
            },
            attempts: 5,
        }
    }
}

/// A file to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    /// Its path under the folder, as reported.
    pub name: String,
    pub size: u64,
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Uploaded,
    /// The gallery had it already.
    Present,
    /// Another file of this import has the same content (named here); that one went.
    Duplicate(String),
    /// The server refused it: its reason and code.
    Refused {
        reason: String,
        code: String,
    },
    /// It could not be read or sent, even after retries.
    Failed(String),
}

/// What an import did, file by file.
#[derive(Debug, Default)]
pub struct Summary {
    pub outcomes: Vec<(Source, Outcome)>,
}

impl Summary {
    /// Every file is in the gallery: nothing refused, nothing failed.
    pub fn all_in(&self) -> bool {
        self.outcomes.iter().all(|(_, outcome)| {
            matches!(
                outcome,
                Outcome::Uploaded | Outcome::Present | Outcome::Duplicate(_)
            )
        })
    }
}

/// Imports the folder; answers what became of each file. An error means nothing was tried:
/// the folder cannot be read, or the gallery cannot be reached or refuses the token.
pub async fn run(settings: ImportSettings) -> anyhow::Result<Summary> {
    let sources = find_images(&settings.dir)?;
    let client = Client::new(&settings.server, settings.token.clone())?;
    let who = client
        .who_am_i()
        .await
        .map_err(|failure| anyhow::anyhow!("{}: {}", settings.server, failure.describe()))?;
    let bytes = sources.iter().map(|source| source.size).sum();
    let progress = Progress::for_stdout(sources.len(), bytes);
    progress.line(&format!(
        "importing {} files ({}) from {} into {} as {who}",
        sources.len(),
        indicatif::HumanBytes(bytes),
        settings.dir.display(),
        settings.server
    ));
    let import = Import {
        settings: &settings,
        client,
        progress: &progress,
        claimed: Mutex::default(),
    };
    let outcomes = futures_util::stream::iter(sources)
        .map(|source| async {
            let outcome = import.one(&source).await;
            (source, outcome)
        })
        .buffer_unordered(settings.jobs.max(1))
        .collect()
        .await;
    let summary = Summary { outcomes };
    progress.finish(&summary);
    Ok(summary)
}

/// One import under way.
struct Import<'a> {
    settings: &'a ImportSettings,
    client: Client,
    progress: &'a Progress,
    /// The hashes this import has taken on, with the first file that had each.
    claimed: Mutex<HashMap<ContentHash, String>>,
}

impl Import<'_> {
    /// Imports one file, and reports it.
    async fn one(&self, source: &Source) -> Outcome {
        let file = self.progress.file(source.size);
        let outcome = self.send_unless_present(source, &file).await;
        file.complete();
        self.progress.done(source, &outcome);
        outcome
    }

    async fn send_unless_present(&self, source: &Source, file: &FileProgress) -> Outcome {
        let hash = match hash_file(&source.path).await {
            Ok(hash) => hash,
            Err(error) => return Outcome::Failed(format!("cannot read it: {error}")),
        };
        if let Some(first) = self.claim(&hash, &source.name) {
            return Outcome::Duplicate(first);
        }
        let mut sent = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tried = async {
                if self.client.has(&hash).await? {
                    return Ok(true);
                }
                sent = true;
                self.client
                    .upload(source, file)
                    .await
                    .inspect_err(|_| file.undo())?;
                Ok(false)
            }
            .await;
            let failure = match tried {
                // Found after a try that sent it: that try got in, its answer did not come back.
                Ok(true) if sent => return Outcome::Uploaded,
                Ok(true) => return Outcome::Present,
                Ok(false) => return Outcome::Uploaded,
                Err(failure) => failure,
            };
            match failure {
                Failure::Refused { reason, code } => return Outcome::Refused { reason, code },
                Failure::Passing { reason, .. } if attempt >= self.settings.attempts.max(1) => {
                    return Outcome::Failed(format!("{reason} ({attempt} tries)"));
                }
                Failure::Passing { retry_after, .. } => {
                    let wait = retry_after.unwrap_or_else(|| self.settings.retry.delay(attempt));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Takes on `hash` for `name`; answers the file that took it on first, if another did.
    fn claim(&self, hash: &ContentHash, name: &str) -> Option<String> {
        // A poisoned lock only means another file's task panicked: the map is still whole.
        let mut claimed = self
            .claimed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match claimed.get(hash) {
            Some(first) => Some(first.clone()),
            None => {
                claimed.insert(hash.clone(), name.to_owned());
                None
            }
        }
    }
}

/// Whether a file is one the gallery takes, by its extension (the server checks the bytes).
fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            ["jpg", "jpeg", "png", "webp"]
                .iter()
                .any(|known| extension.eq_ignore_ascii_case(known))
        })
}

/// Every image file under `dir`, in every subfolder, sorted by path. Links to files count;
/// links to folders are not followed (they may loop).
pub fn find_images(dir: &Path) -> anyhow::Result<Vec<Source>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder)
            .with_context(|| format!("cannot read {}", folder.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", folder.display()))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .with_context(|| format!("cannot read {}", path.display()))?;
            if kind.is_dir() {
                pending.push(path);
                continue;
            }
            if !is_image(&path) {
                continue;
            }
            // Follows a link to what it names; a broken one is reported when read.
            let meta = std::fs::metadata(&path).ok();
            if meta.as_ref().is_some_and(|meta| meta.is_dir()) {
                continue;
            }
            let size = meta.map_or(0, |meta| meta.len());
            let name = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            found.push(Source { path, name, size });
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// The SHA-256 of a file, read in chunks on a blocking thread.
async fn hash_file(path: &Path) -> std::io::Result<ContentHash> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(path)?;
        let mut hash = Sha256::new();
        let mut buffer = vec![0; 256 * 1024];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                return Ok(ContentHash::from_digest(&hash.finalize()));
            }
            hash.update(&buffer[..read]);
        }
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_found_in_every_subfolder_by_their_extension() {
        let dir = std::env::temp_dir().join(format!("gallery-import-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(dir.join("2024/summer")).expect("dirs");
        for name in [
            "a.jpg",
            "b.JPEG",
            "notes.txt",
            "2024/c.png",
            "2024/summer/d.WebP",
            "2024/e",
        ] {
            std::fs::write(dir.join(name), b"x").expect("file");
        }
        let names: Vec<String> = find_images(&dir)
            .expect("readable")
            .into_iter()
            .map(|source| source.name)
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            names,
            ["2024/c.png", "2024/summer/d.WebP", "a.jpg", "b.JPEG"]
        );
    }
}
