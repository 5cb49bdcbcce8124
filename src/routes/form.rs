//! Reading an upload's multipart body within bounds, whatever the client sends: the whole
//! request is capped (`Limits::max_request_bytes`, 413 `request_too_large`), a text field at
//! 4 KiB, a file at the per-file limit; a file that is not an image by its first bytes is
//! refused there and the rest of it drained unread; and a client that sends too slowly is cut
//! off (408 `upload_too_slow`) instead of holding a connection open.
//!
//! How a file's bytes go to storage "as they arrive": into a spool file of their own
//! (`Spooled`), chunk by chunk, so receiving holds one chunk in memory whatever the size; the
//! file is checked from its head as soon as it is complete, and once the whole form is read it
//! is streamed from the spool to storage (`ingest::accept`), one file at a time. Not straight
//! to storage: fields such as `ops` may come after the files they apply to, and a request
//! refused for them (or for its size, half way) must leave nothing in storage. A process
//! killed mid-request leaves only spool files, which `clear_spool` removes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix_multipart::Field;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::error::ApiError;
use crate::error_code::ErrorCode;
use crate::ingest::{IngestError, Limits, Received};
use crate::resize::{Format, ProbeError};

/// How slow an upload may be before it is cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadPace {
    /// The longest wait for the next chunk.
    pub idle: Duration,
    /// Time allowed before the average rate is checked.
    pub window: Duration,
    /// Slowest average rate accepted after the window (a slow phone sends far more).
    pub min_bytes_per_s: u64,
}

impl Default for UploadPace {
    fn default() -> Self {
        UploadPace {
            idle: Duration::from_secs(30),
            window: Duration::from_secs(60),
            min_bytes_per_s: 1024,
        }
    }
}

/// Longest accepted text field (`ops`).
const MAX_TEXT_BYTES: usize = 4 * 1024;
/// Enough of a file's start to tell its type (WebP needs 12).
const SNIFF_BYTES: usize = 12;

/// Reads the parts of one request, counting every byte against the request's bounds.
pub struct FormReader<'a> {
    limits: &'a Limits,
    pace: UploadPace,
    started: Instant,
    received: u64,
}

impl<'a> FormReader<'a> {
    pub fn new(limits: &'a Limits, pace: UploadPace) -> Self {
        FormReader {
            limits,
            pace,
            started: Instant::now(),
            received: 0,
        }
    }

    /// The part's next chunk, or `None` at its end; an error ends the whole request.
    async fn next_chunk(&mut self, field: &mut Field) -> Result<Option<Bytes>, ApiError> {
        let elapsed = self.started.elapsed();
        let too_slow = || {
            ApiError::new(
                ErrorCode::UploadTooSlow,
                format!(
                    "the upload is too slow: {} bytes in {} s (at least {} bytes/s are needed)",
                    self.received,
                    elapsed.as_secs(),
                    self.pace.min_bytes_per_s
                ),
            )
        };
        if elapsed > self.pace.window
            && self.received < self.pace.min_bytes_per_s * elapsed.as_secs()
        {
            return Err(too_slow());
        }
        let chunk = match tokio::time::timeout(self.pace.idle, field.next()).await {
            Err(_) => return Err(too_slow()),
            Ok(None) => return Ok(None),
            Ok(Some(Err(error))) => {
                return Err(ApiError::new(
                    ErrorCode::BadMultipart,
                    format!("upload interrupted: {error}"),
                ))
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        self.received += chunk.len() as u64;
        if self.received > self.limits.max_request_bytes {
            return Err(ApiError::new(
                ErrorCode::RequestTooLarge,
                format!(
                    "the request is larger than the limit of {} bytes",
                    self.limits.max_request_bytes
                ),
            ));
        }
        Ok(Some(chunk))
    }

    /// Reads the rest of a part, keeping nothing.
    pub async fn drain(&mut self, field: &mut Field) -> Result<(), ApiError> {
        while self.next_chunk(field).await?.is_some() {}
        Ok(())
    }

    /// Reads a short text field.
    pub async fn text(&mut self, field: &mut Field, name: &str) -> Result<String, ApiError> {
        let mut text = BytesMut::new();
        while let Some(chunk) = self.next_chunk(field).await? {
            if text.len() + chunk.len() > MAX_TEXT_BYTES {
                return Err(ApiError::new(
                    ErrorCode::BadField,
                    format!("the {name} field is longer than {MAX_TEXT_BYTES} bytes"),
                ));
            }
            text.extend_from_slice(&chunk);
        }
        String::from_utf8(text.to_vec()).map_err(|_| {
            ApiError::new(ErrorCode::BadField, format!("the {name} field is not text"))
        })
    }

    /// Receives a file part into the spool chunk by chunk (memory holds one chunk), or
    /// refuses it as soon as it is known to be unacceptable (not an image by its first bytes,
    /// or over the per-file limit) and drains the rest unread.
    pub async fn file(
        &mut self,
        field: &mut Field,
        spool_dir: &Path,
    ) -> Result<Result<Spooled, IngestError>, ApiError> {
        let limit = self.limits.max_upload_bytes;
        let mut head = BytesMut::new();
        let mut spooled: Option<(Spooled, tokio::fs::File)> = None;
        let mut size = 0u64;
        let mut refused = None;
        while let Some(chunk) = self.next_chunk(field).await? {
            if refused.is_some() {
                continue;
            }
            size += chunk.len() as u64;
            if size > limit {
                refused = Some(IngestError::TooLarge { limit });
                spooled = None;
                continue;
            }
            if spooled.is_none() {
                head.extend_from_slice(&chunk);
                if head.len() < SNIFF_BYTES {
                    continue;
                }
                if Format::sniff(&head).is_none() {
                    refused = Some(IngestError::Unreadable(ProbeError::UnsupportedType));
                    continue;
                }
                let opened = Spooled::create(spool_dir).await.map_err(spool_failed)?;
                spooled = Some(opened);
            }
            if let Some((_, file)) = &mut spooled {
                // The head, kept until the type was known, goes first.
                let bytes = if head.is_empty() {
                    chunk
                } else {
                    head.split().freeze()
                };
                file.write_all(&bytes)
                    .await
                    .map_err(|e| spool_failed(e.into()))?;
            }
        }
        if let Some(error) = refused {
            return Ok(Err(error));
        }
        let (mut spooled, mut file) = match spooled {
            Some(opened) => opened,
            // Shorter than a type can be told from: the checks that follow say what is wrong.
            None => {
                let (spooled, mut file) = Spooled::create(spool_dir).await.map_err(spool_failed)?;
                file.write_all(&head)
                    .await
                    .map_err(|e| spool_failed(e.into()))?;
                (spooled, file)
            }
        };
        file.flush().await.map_err(|e| spool_failed(e.into()))?;
        spooled.size = size;
        Ok(Ok(spooled))
    }
}

/// The spool failed (a full disk): the request may work later.
fn spool_failed(cause: anyhow::Error) -> ApiError {
    ApiError::unavailable("receiving the file", &cause)
}

/// A received file waiting on disk until the form is read; the file goes when this is
/// dropped (stored, refused, or the client went away), unless storing it moved it away.
pub struct Spooled {
    path: PathBuf,
    size: u64,
}

impl Spooled {
    async fn create(dir: &Path) -> anyhow::Result<(Spooled, tokio::fs::File)> {
        tokio::fs::create_dir_all(dir).await?;
        let spooled = Spooled {
            path: dir.join(uuid::Uuid::now_v7().simple().to_string()),
            size: 0,
        };
        let file = tokio::fs::File::create(&spooled.path).await?;
        Ok((spooled, file))
    }

    /// The file, as `ingest` takes it.
    pub fn received(&self) -> Received<'_> {
        Received {
            path: &self.path,
            size: self.size,
        }
    }

    /// What `ingest::validate` says of the file, from its head.
    pub async fn check(&self, limits: &Limits) -> Result<(), IngestError> {
        crate::ingest::check(self.received(), limits)
            .await
            .map(drop)
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes what a killed process left in the spool: files a day old (no request lasts that
/// long; younger ones may belong to another web process on the same data dir).
pub fn clear_spool(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let day = Duration::from_secs(24 * 3600);
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age > day));
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
