//! Accepting one uploaded file: check it, store the original, record its metadata, enqueue
//! its job — in that order, so a worker never sees a job without metadata. A failure at any
//! step undoes the earlier ones: a photo is either fully accepted or leaves nothing behind.
//!
//! Storing, recording and queueing are each timed into the process's metrics (`UploadStage`;
//! the route times the receiving), as the worker times a job's stages.
//!
//! A process killed between recording and queueing leaves a photo `queued` with no job; the
//! index marks every photo until its job is confirmed, and `requeue_stranded` queues what a
//! mark outlived by a grace period.
//!
//! This is the use case, not HTTP: it answers an `IngestError`, and `routes` decides what
//! status each becomes. A new way to refuse a file is a variant here with its `ErrorCode`.
//!
//! A file comes as a complete file on disk (`Received`, the web role's spool), and is never
//! read whole: the rules are checked on its head (`read_head`: up to where the header ends,
//! at most `HEAD_LIMIT`), and the store streams it.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::backends::Backends;
use crate::domain::{ContentHash, Job, Lane, Notify, Op, Owner, Photo, PhotoId, Status};
use crate::error_code::ErrorCode;
use crate::metrics::UploadStage;
use crate::resize::{self, ProbeError};

/// What uploads may be: set by the operator, checked before anything is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted file, in bytes.
    pub max_upload_bytes: u64,
    /// Largest accepted image, in pixels (from the header, before any decode).
    pub max_pixels: u64,
    /// Most files in one upload request.
    pub max_files: usize,
    /// Most memory decoding one image may need, in bytes (from the header, before any decode;
    /// how it is figured: `resize::Probe::decode_bytes`).
    pub max_decode_bytes: u64,
    /// Largest upload request, all its parts together.
    pub max_request_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_upload_bytes: 50 * 1024 * 1024,
            max_pixels: 100_000_000,
            max_files: 32,
            max_decode_bytes: resize::DEFAULT_MAX_DECODE_BYTES,
            max_request_bytes: 32 * 50 * 1024 * 1024,
        }
    }
}

/// Why a file was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the file is empty")]
    Empty,
    #[error("file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error(transparent)]
    Unreadable(#[from] ProbeError),
    #[error("image is {width}×{height} = {pixels} pixels, more than the limit of {limit}")]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
    #[error(
        "image is {width}×{height} and needs {needs} bytes ({} MiB) of memory to decode, more than the limit of {limit} bytes ({} MiB)",
        needs.div_ceil(1 << 20),
        limit / (1 << 20)
    )]
    TooLargeToDecode {
        width: u32,
        height: u32,
        needs: u64,
        limit: u64,
    },
    /// A backend failed at `step`; the file may be accepted later. The cause is for the log,
    /// never for the client.
    #[error("{step} failed; try again later")]
    Unavailable {
        step: &'static str,
        #[source]
        cause: anyhow::Error,
    },
}

impl IngestError {
    pub fn code(&self) -> ErrorCode {
        match self {
            IngestError::Empty => ErrorCode::EmptyFile,
            IngestError::TooLarge { .. } => ErrorCode::TooLarge,
            IngestError::Unreadable(ProbeError::UnsupportedType) => ErrorCode::UnsupportedType,
            IngestError::Unreadable(ProbeError::BadHeader(_))
            | IngestError::Unreadable(ProbeError::OversizedMetadata { .. }) => ErrorCode::BadImage,
            IngestError::TooManyPixels { .. } => ErrorCode::TooManyPixels,
            IngestError::TooLargeToDecode { .. } => ErrorCode::TooLargeToDecode,
            IngestError::Unavailable { .. } => ErrorCode::Unavailable,
        }
    }

    fn unavailable(step: &'static str) -> impl FnOnce(anyhow::Error) -> IngestError {
        move |cause| IngestError::Unavailable { step, cause }
    }
}

/// The most of a file's start read to check it. A JPEG's frame header comes after its
/// metadata segments (EXIF, ICC profile, XMP): this leaves room for 1 MiB of ICC profile (the
/// most the engine keeps) and 3 MiB of the rest. A JPEG whose frame header lies further is
/// refused as unreadable.
pub const HEAD_LIMIT: usize = 4 << 20;
/// The first read of a file's head; each next one doubles what is held.
const HEAD_STEP: usize = 64 * 1024;

/// A received file, complete on disk: what `accept` takes.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub path: &'a Path,
    /// Its length in bytes.
    pub size: u64,
    /// Its SHA-256, taken as it was received.
    pub sha256: &'a ContentHash,
    /// What `check` found in its head: the file passed it.
    pub probe: resize::Probe,
}

/// Reads the start of a file, as far as its header goes (`resize::head_complete`) and at most
/// `HEAD_LIMIT`: what `validate` needs. One blocking task for the whole head: each read of a
/// tokio file is a hop to a blocking thread, and a camera photo's EXIF block took a dozen of
/// them (read_to_end probes from 32 bytes up), a few milliseconds of every upload.
pub async fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || read_head_now(&path))
        .await
        .map_err(std::io::Error::other)?
}

fn read_head_now(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let mut head = Vec::new();
    loop {
        // Doubling, so a head that ends late is scanned a few times, not once per step.
        let want = head.len().max(HEAD_STEP).min(HEAD_LIMIT - head.len());
        head.reserve_exact(want);
        let read = (&mut file).take(want as u64).read_to_end(&mut head)?;
        if read < want || head.len() >= HEAD_LIMIT || resize::head_complete(&head) {
            return Ok(head);
        }
    }
}

/// Checks what can be checked without decoding, from a file's `head` (its start, as
/// `read_head` reads it) and its `size`: size, type from the bytes, pixel count, the memory a
/// decode would need, oversized metadata.
pub fn validate(head: &[u8], size: u64, limits: &Limits) -> Result<resize::Probe, IngestError> {
    if size > limits.max_upload_bytes {
        return Err(IngestError::TooLarge {
            limit: limits.max_upload_bytes,
        });
    }
    if size == 0 {
        return Err(IngestError::Empty);
    }
    let probe = resize::probe(head)?;
    if probe.pixels() > limits.max_pixels {
        return Err(IngestError::TooManyPixels {
            width: probe.width,
            height: probe.height,
            pixels: probe.pixels(),
            limit: limits.max_pixels,
        });
    }
    if probe.decode_bytes > limits.max_decode_bytes {
        return Err(IngestError::TooLargeToDecode {
            width: probe.width,
            height: probe.height,
            needs: probe.decode_bytes,
            limit: limits.max_decode_bytes,
        });
    }
    Ok(probe)
}

/// `validate` on a file on disk of `size` bytes, read from its head.
pub async fn check(path: &Path, size: u64, limits: &Limits) -> Result<resize::Probe, IngestError> {
    let head = read_head(path)
        .await
        .map_err(|e| IngestError::unavailable("reading the file")(e.into()))?;
    validate(&head, size, limits)
}

/// What applies to every file of one upload request.
#[derive(Debug, Clone, Default)]
pub struct UploadRequest {
    pub ops: Vec<Op>,
    /// The uploader's contacts, told when processing ends.
    pub notify: Notify,
    pub owner: Option<Owner>,
}

/// Stores one checked file and enqueues its processing.
pub async fn accept(
    backends: &Backends,
    filename: String,
    file: Received<'_>,
    request: &UploadRequest,
) -> Result<Photo, IngestError> {
    let probe = file.probe;
    let id = PhotoId::new();
    let photo = Photo {
        id: id.clone(),
        filename,
        content_type: probe.format.content_type().to_owned(),
        bytes: file.size,
        sha256: Some(file.sha256.clone()),
        width: probe.width,
        height: probe.height,
        status: Status::Queued,
        ops: request.ops.clone(),
        created_at: Utc::now(),
        error: None,
        attempts: 0,
        deliveries: 0,
        variants: Default::default(),
        lane: Lane::Upload,
        notify: request.notify.clone(),
        owner: request.owner.clone(),
    };
    let metrics = &backends.metrics;
    let original_key = Photo::original_key(&id);
    let storing = Instant::now();
    if let Err(error) = backends
        .storage
        .put_file(&original_key, file.path, &photo.content_type)
        .await
    {
        // A failed PUT may still have landed; make sure it did not.
        let _ = backends.storage.delete(&original_key).await;
        return Err(IngestError::unavailable("storing the original")(error));
    }
    metrics.upload_stage(UploadStage::Store, storing.elapsed());
    let recording = Instant::now();
    if let Err(error) = backends.index.insert(&photo).await {
        // A failed insert may still have landed (written, but not confirmed by the replicas
        // in time); make sure it did not. Not awaited: the undo needs the store that just
        // failed, and the client waits for this answer (a frozen Redis would cost it two
        // deadlines, not one). The undo's own calls are bounded the same way.
        let backends = backends.clone();
        tokio::spawn(async move { undo(&backends, &photo).await });
        return Err(IngestError::unavailable("recording the photo")(error));
    }
    metrics.upload_stage(UploadStage::Record, recording.elapsed());
    #[cfg(feature = "test-hooks")]
    if std::env::var_os("GALLERY_TEST_ABORT_BEFORE_QUEUE").is_some() {
        // Stands for a kill -9 between recording and queueing (`requeue_stranded` heals it).
        std::process::abort();
    }
    // Announced first, on the same channel as the job, so `photo.queued` reaches listeners
    // before a worker can say `photo.processing` and pages see them in order. The two wait for
    // their confirms together: a broker that does not answer costs one deadline, not two.
    let job = Job::of(&photo);
    let queueing = Instant::now();
    let (_, published) = tokio::join!(backends.announce(&photo), backends.queue.publish(&job));
    if let Err(error) = published {
        undo(backends, &photo).await;
        // Not awaited: the broker just failed, and the client waits for this answer.
        let backends = backends.clone();
        let gone = photo.clone();
        tokio::spawn(async move { backends.announce_deleted(&gone).await });
        return Err(IngestError::unavailable("queueing the photo")(error));
    }
    metrics.upload_stage(UploadStage::Queue, queueing.elapsed());
    // The job is queued, so the photo is accepted: the mark is cleared after the answer (one
    // store write, a disk sync under `serve`, less before it). A mark that outlives a crash
    // or a failure only has the sweep queue the job once more, which a worker skips.
    let backends = backends.clone();
    tokio::spawn(async move {
        if let Err(error) = backends.index.queued(&id).await {
            tracing::warn!(%id, "could not clear the photo's not-yet-queued mark: {error:#}");
        }
    });
    Ok(photo)
}

/// Queues the jobs of photos recorded (or requeued by `reprocess`) more than `grace` ago
/// whose job was never confirmed queued: the process was killed (or lost its broker and then
/// its life) between the two steps. Answers how many it queued. Run by every web process now and then; two of them
/// may both queue one photo, and the worker skips a job whose photo is already done.
pub async fn requeue_stranded(backends: &Backends, grace: Duration) -> anyhow::Result<usize> {
    let before = Utc::now() - chrono::Duration::from_std(grace)?;
    let mut requeued = 0;
    for id in backends.index.unqueued(before, 100).await? {
        match backends.index.get(&id).await? {
            Some(photo) if photo.status == Status::Queued => {
                // On the lane its record names: an upload's, or a reprocessing's.
                backends.queue.publish(&Job::of(&photo)).await?;
                match photo.lane {
                    Lane::Upload => {
                        tracing::warn!(%id, "queued a photo whose upload was cut off before its job was")
                    }
                    Lane::Bulk => {
                        tracing::warn!(%id, "queued a photo whose reprocessing was cut off before its job was")
                    }
                }
                requeued += 1;
            }
            // Gone, or a worker has it: a job existed after all.
            _ => {}
        }
        backends.index.queued(&id).await?;
    }
    Ok(requeued)
}

async fn undo(backends: &Backends, photo: &Photo) {
    if let Err(error) = backends.index.remove(&photo.id).await {
        tracing::error!(id = %photo.id, error = format!("{error:#}"), "could not undo metadata of a failed upload");
    }
    if let Err(error) = backends
        .storage
        .delete(&Photo::original_key(&photo.id))
        .await
    {
        tracing::error!(id = %photo.id, error = format!("{error:#}"), "could not undo original of a failed upload");
    }
}
