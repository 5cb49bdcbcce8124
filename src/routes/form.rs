//! Reading an upload's multipart body within bounds, whatever the client sends.
//!
//! The body passes through `BoundedBody` before the multipart parser sees it: every byte of it
//! counts against the request cap (`Limits::max_request_bytes`, 413 `request_too_large`), a
//! client that sends too slowly is cut off (408 `upload_too_slow`) instead of holding a
//! connection open, and what lies between two part bodies (a boundary line and a part's
//! headers, or a preamble), which the parser buffers whole until it ends, is at most 8 KiB
//! (400 `bad_multipart`). Then `FormReader` bounds each part: a text field at 4 KiB, a file
//! at the per-file limit; a file that is not an image by its first bytes is refused there and
//! the rest of it drained unread.
//!
//! How a file's bytes go to storage "as they arrive": into a spool file of their own
//! (`Spooled`), chunk by chunk, so receiving holds two 1 MiB buffers whatever the size (its
//! SHA-256, recorded with the photo, is taken from the same chunks); the file is checked from
//! its head as soon as it is complete, and once the whole form is read it is streamed from the
//! spool to storage (`ingest::accept`), one file at a time. Not straight
//! to storage: fields such as `ops` may come after the files they apply to, and a request
//! refused for them (or for its size, half way) must leave nothing in storage. A process
//! killed mid-request leaves only spool files, which `clear_spool` removes.

use std::cell::RefCell;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_multipart::{Field, Multipart, MultipartError};
use actix_web::error::PayloadError;
use actix_web::http::header::{HeaderMap, CONTENT_TYPE};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::domain::ContentHash;
use crate::error_code::ErrorCode;
use crate::ingest::{IngestError, Limits, Received};
use crate::resize::{Format, Probe, ProbeError};

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
/// The most bytes between two part bodies: the boundary line and the next part's headers
/// (with the preamble, for the first part).
const MAX_PART_HEAD_BYTES: usize = 8 * 1024;

/// Why `BoundedBody` cut a request off. The multipart parser passes on only that its stream
/// failed, so the refusal itself is handed to `FormReader` through here.
type Refusal = Rc<RefCell<Option<ApiError>>>;

/// A request body within the request's bounds (see the module doc); past one it fails, and
/// its refusal waits in `refusal`.
struct BoundedBody<S> {
    inner: S,
    max_bytes: u64,
    pace: UploadPace,
    started: Instant,
    received: u64,
    idle: Pin<Box<tokio::time::Sleep>>,
    /// `None` without a multipart boundary: the parser refuses such a body at once.
    framing: Option<Framing>,
    refusal: Refusal,
    ended: bool,
}

impl<S> BoundedBody<S> {
    fn refuse(&mut self, error: ApiError) -> Poll<Option<Result<Bytes, PayloadError>>> {
        let cause = std::io::Error::other(error.message.clone());
        *self.refusal.borrow_mut() = Some(error);
        self.ended = true;
        Poll::Ready(Some(Err(PayloadError::Io(cause))))
    }

    fn too_slow(&self) -> ApiError {
        ApiError::new(
            ErrorCode::UploadTooSlow,
            format!(
                "the upload is too slow: {} bytes in {} s (at least {} bytes/s are needed)",
                self.received,
                self.started.elapsed().as_secs(),
                self.pace.min_bytes_per_s
            ),
        )
    }
}

impl<S> Stream for BoundedBody<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        let elapsed = this.started.elapsed();
        if elapsed > this.pace.window
            && this.received < this.pace.min_bytes_per_s * elapsed.as_secs()
        {
            return this.refuse(this.too_slow());
        }
        let chunk = match this.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => chunk,
            Poll::Pending => {
                if this.idle.as_mut().poll(cx).is_ready() {
                    return this.refuse(this.too_slow());
                }
                return Poll::Pending;
            }
            other => return other,
        };
        this.received += chunk.len() as u64;
        let deadline = tokio::time::Instant::now() + this.pace.idle;
        this.idle.as_mut().reset(deadline);
        if this.received > this.max_bytes {
            let message = format!(
                "the request is larger than the limit of {} bytes",
                this.max_bytes
            );
            return this.refuse(ApiError::new(ErrorCode::RequestTooLarge, message));
        }
        if let Some(framing) = &mut this.framing {
            if framing.feed(&chunk).is_err() {
                let message = format!(
                    "a part's headers (with its boundary line) are longer than \
                     {MAX_PART_HEAD_BYTES} bytes"
                );
                return this.refuse(ApiError::new(ErrorCode::BadMultipart, message));
            }
        }
        Poll::Ready(Some(Ok(chunk)))
    }
}

/// Where in the multipart structure a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Before the first delimiter.
    Preamble,
    /// After a delimiter, up to the blank line that ends the part's headers.
    Head,
    Body,
    /// After the closing delimiter: the parser stops reading there.
    Epilogue,
}

/// Follows a multipart body just far enough to count what lies outside part bodies: a body
/// ends at a delimiter (`CRLF--boundary`, found across chunk edges), the part's headers that
/// follow end at a blank line.
struct Framing {
    delimiter: memchr::memmem::Finder<'static>,
    place: Place,
    /// The end of what was searched for a delimiter, too short to hold one: the next chunk
    /// may complete it.
    carry: Vec<u8>,
    /// Bytes outside part bodies since the last body ended.
    outside: usize,
    /// Bytes since the last delimiter, and the last four of them.
    head_len: usize,
    window: u32,
}

struct FramingTooLong;

impl Framing {
    fn new(boundary: &str) -> Self {
        let delimiter = format!("\r\n--{boundary}").into_bytes();
        Framing {
            delimiter: memchr::memmem::Finder::new(&delimiter).into_owned(),
            place: Place::Preamble,
            // The first delimiter may open the body, with no line break before it.
            carry: b"\r\n".to_vec(),
            outside: 0,
            head_len: 0,
            window: 0,
        }
    }

    fn feed(&mut self, mut data: &[u8]) -> Result<(), FramingTooLong> {
        while !data.is_empty() {
            match self.place {
                Place::Epilogue => return Ok(()),
                Place::Preamble | Place::Body => {
                    let found = self.find_delimiter(data);
                    if self.place == Place::Preamble {
                        self.outside += found.unwrap_or(data.len());
                    }
                    let Some(end) = found else {
                        return self.within_bounds();
                    };
                    self.place = Place::Head;
                    self.head_len = 0;
                    self.window = 0;
                    data = &data[end..];
                }
                Place::Head => {
                    let (used, place) = self.read_head(data);
                    self.outside += used;
                    self.within_bounds()?;
                    data = &data[used..];
                    if place == Place::Body {
                        self.outside = 0;
                        self.carry.clear();
                    }
                    self.place = place;
                }
            }
        }
        Ok(())
    }

    fn within_bounds(&self) -> Result<(), FramingTooLong> {
        if self.outside > MAX_PART_HEAD_BYTES {
            Err(FramingTooLong)
        } else {
            Ok(())
        }
    }

    /// Reads a part's head up to its blank line (then its body follows) or `--` right after
    /// the delimiter (the closing one): the bytes used and the place after them.
    fn read_head(&mut self, data: &[u8]) -> (usize, Place) {
        for (at, &byte) in data.iter().enumerate() {
            self.head_len += 1;
            self.window = (self.window << 8) | u32::from(byte);
            if self.head_len == 2 && self.window & 0xFFFF == u32::from(u16::from_be_bytes(*b"--")) {
                return (at + 1, Place::Epilogue);
            }
            if self.window == u32::from_be_bytes(*b"\r\n\r\n") {
                return (at + 1, Place::Body);
            }
        }
        (data.len(), Place::Head)
    }

    /// Where the first delimiter in `carry` and `data` ends, in `data`; without one, keeps the
    /// end of them in `carry`.
    fn find_delimiter(&mut self, data: &[u8]) -> Option<usize> {
        let len = self.delimiter.needle().len();
        if !self.carry.is_empty() {
            // Only a delimiter that starts in `carry` needs this; `carry` holds fewer bytes
            // than one, so it ends in `data`.
            let mut edge = self.carry.clone();
            edge.extend_from_slice(&data[..data.len().min(len - 1)]);
            if let Some(at) = self.delimiter.find(&edge) {
                let end = at + len - self.carry.len();
                self.carry.clear();
                return Some(end);
            }
        }
        if let Some(at) = self.delimiter.find(data) {
            self.carry.clear();
            return Some(at + len);
        }
        self.carry
            .extend_from_slice(&data[data.len().saturating_sub(len - 1)..]);
        let extra = self.carry.len().saturating_sub(len - 1);
        self.carry.drain(..extra);
        None
    }
}

/// The boundary a multipart body's `Content-Type` names.
fn boundary(headers: &HeaderMap) -> Option<String> {
    let content_type: actix_web::mime::Mime =
        headers.get(CONTENT_TYPE)?.to_str().ok()?.parse().ok()?;
    Some(
        content_type
            .get_param(actix_web::mime::BOUNDARY)?
            .as_str()
            .to_owned(),
    )
}

/// Reads the parts of one request, within the request's bounds and each part's.
pub struct FormReader<'a> {
    limits: &'a Limits,
    pace: UploadPace,
    refusal: Refusal,
}

impl<'a> FormReader<'a> {
    pub fn new(limits: &'a Limits, pace: UploadPace) -> Self {
        FormReader {
            limits,
            pace,
            refusal: Refusal::default(),
        }
    }

    /// The multipart parts of a request body, read through its bounds.
    pub fn parts<S>(&self, headers: &HeaderMap, body: S) -> Multipart
    where
        S: Stream<Item = Result<Bytes, PayloadError>> + Unpin + 'static,
    {
        let bounded = BoundedBody {
            inner: body,
            max_bytes: self.limits.max_request_bytes,
            pace: self.pace,
            started: Instant::now(),
            received: 0,
            idle: Box::pin(tokio::time::sleep(self.pace.idle)),
            framing: boundary(headers).map(|boundary| Framing::new(&boundary)),
            refusal: self.refusal.clone(),
            ended: false,
        };
        Multipart::new(headers, bounded)
    }

    /// What a failure of the parts answers: the bound the body broke, else a bad body.
    pub fn failed(&self, error: MultipartError) -> ApiError {
        self.refusal.borrow_mut().take().unwrap_or_else(|| {
            ApiError::new(
                ErrorCode::BadMultipart,
                format!("malformed multipart body: {error}"),
            )
        })
    }

    /// The part's next chunk, or `None` at its end; an error ends the whole request.
    async fn next_chunk(&mut self, field: &mut Field) -> Result<Option<Bytes>, ApiError> {
        match field.next().await {
            None => Ok(None),
            Some(Ok(chunk)) => Ok(Some(chunk)),
            Some(Err(error)) => Err(self.failed(error)),
        }
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

    /// Receives a file part into the spool chunk by chunk (memory holds two buffers), hashing
    /// it on the way, or refuses it as soon as it is known to be unacceptable (not an image by
    /// its first bytes, or over the per-file limit) and drains the rest unread.
    pub async fn file(
        &mut self,
        field: &mut Field,
        spool: &Spool,
    ) -> Result<Result<Spooled, IngestError>, ApiError> {
        let limit = self.limits.max_upload_bytes;
        let mut head = BytesMut::new();
        let mut writer: Option<SpoolWriter> = None;
        let mut size = 0u64;
        let mut refused = None;
        while let Some(chunk) = self.next_chunk(field).await? {
            if refused.is_some() {
                continue;
            }
            size += chunk.len() as u64;
            if size > limit {
                refused = Some(IngestError::TooLarge { limit });
                writer = None;
                continue;
            }
            if writer.is_none() {
                head.extend_from_slice(&chunk);
                if head.len() < SNIFF_BYTES {
                    continue;
                }
                if Format::sniff(&head).is_none() {
                    refused = Some(IngestError::Unreadable(ProbeError::UnsupportedType));
                    continue;
                }
                writer = Some(SpoolWriter::create(spool).await?);
            }
            if let Some(writer) = &mut writer {
                // The head, kept until the type was known, goes first.
                let bytes = if head.is_empty() {
                    chunk
                } else {
                    head.split().freeze()
                };
                writer.write(&bytes).await?;
            }
        }
        if let Some(error) = refused {
            return Ok(Err(error));
        }
        let writer = match writer {
            Some(writer) => writer,
            // Shorter than a type can be told from: the checks that follow say what is wrong.
            None => {
                let mut writer = SpoolWriter::create(spool).await?;
                writer.write(&head).await?;
                writer
            }
        };
        writer.finish().await.map(Ok)
    }
}

/// The spool failed (a full disk): the request may work later.
fn spool_failed(cause: anyhow::Error) -> ApiError {
    ApiError::unavailable("receiving the file", &cause)
}

/// A spool file's place; the file goes when this is dropped (stored, refused, or the client
/// went away), unless storing it moved it away.
struct SpoolPath(PathBuf);

impl Drop for SpoolPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where uploaded files wait until their request is read.
#[derive(Debug, Clone)]
pub struct Spool {
    pub dir: PathBuf,
    /// Whether each part written is handed to the disk at once (`start_write_back`): when
    /// storage keeps the spool file itself (`ObjectStore::keeps_put_files`, the files of
    /// `gallery serve`), whose sync then finds most of it written. Measured on this disk, a
    /// 3.7 MB file written in four 1 MiB parts (15 runs each way, two runs): its sync took
    /// 0.24-0.88 ms (p50) instead of 2.43-3.98 ms; in `serve`, a 12 MP original's sync took
    /// 0.21-0.35 ms over 8 uploads (6.7-10.1 ms before, measured on an earlier day). On S3
    /// the spool file is read once and deleted: writing it out would be wasted.
    pub write_back: bool,
}

/// What the spool gathers before each write. The form hands over small chunks, and each
/// write is a hop to a blocking thread: a 12 MP photo in 16 KiB writes was hundreds of hops in
/// the way of every upload (tens of ms on a busy host).
const SPOOL_BUFFER: usize = 1 << 20;

/// A spool file being written, and the SHA-256 of what was written so far: the hash is taken
/// from the bytes on their way to disk, so the file is never read again for it. One part is
/// written on a blocking thread while the next is gathered.
struct SpoolWriter {
    path: SpoolPath,
    disk: Disk,
    /// What is gathered for the next write.
    buffer: Vec<u8>,
    /// Bytes handed to the disk so far: where the next write starts.
    written: u64,
    write_back: bool,
    hash: Sha256,
    size: u64,
}

/// The spool file, either idle (with a spare buffer) or being written to.
enum Disk {
    Idle(std::fs::File, Vec<u8>),
    Writing(tokio::task::JoinHandle<std::io::Result<(std::fs::File, Vec<u8>)>>),
    /// Between the two, while a write is awaited; left so when it failed (and said so).
    Broken,
}

impl SpoolWriter {
    async fn create(spool: &Spool) -> Result<SpoolWriter, ApiError> {
        let path = SpoolPath(spool.dir.join(uuid::Uuid::now_v7().simple().to_string()));
        let file = async {
            tokio::fs::create_dir_all(&spool.dir).await?;
            tokio::fs::File::create(&path.0).await
        }
        .await
        .map_err(|e| spool_failed(e.into()))?;
        Ok(SpoolWriter {
            path,
            disk: Disk::Idle(file.into_std().await, Vec::with_capacity(SPOOL_BUFFER)),
            buffer: Vec::with_capacity(SPOOL_BUFFER),
            written: 0,
            write_back: spool.write_back,
            hash: Sha256::new(),
            size: 0,
        })
    }

    async fn write(&mut self, mut bytes: &[u8]) -> Result<(), ApiError> {
        self.hash.update(bytes);
        self.size += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = SPOOL_BUFFER - self.buffer.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.buffer.extend_from_slice(now);
            bytes = later;
            if self.buffer.len() == SPOOL_BUFFER {
                self.write_buffer().await?;
            }
        }
        Ok(())
    }

    /// Hands the buffer to a blocking thread to write, once the write before it is done.
    async fn write_buffer(&mut self) -> Result<(), ApiError> {
        let (mut file, spare) = self.settle().await?;
        let full = std::mem::replace(&mut self.buffer, spare);
        let offset = self.written;
        self.written += full.len() as u64;
        let write_back = self.write_back;
        self.disk = Disk::Writing(tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            file.write_all(&full)?;
            if write_back {
                start_write_back(&file, offset, full.len());
            }
            let mut spare = full;
            spare.clear();
            Ok((file, spare))
        }));
        Ok(())
    }

    /// Waits for the write under way, if any: the file and a spare buffer.
    async fn settle(&mut self) -> Result<(std::fs::File, Vec<u8>), ApiError> {
        match std::mem::replace(&mut self.disk, Disk::Broken) {
            Disk::Idle(file, spare) => Ok((file, spare)),
            Disk::Writing(write) => write
                .await
                .map_err(std::io::Error::other)
                .and_then(|written| written)
                .map_err(|e| spool_failed(e.into())),
            Disk::Broken => Err(spool_failed(anyhow::anyhow!(
                "an earlier write to the spool failed"
            ))),
        }
    }

    async fn finish(mut self) -> Result<Spooled, ApiError> {
        if !self.buffer.is_empty() {
            self.write_buffer().await?;
        }
        self.settle().await?;
        Ok(Spooled {
            path: self.path,
            size: self.size,
            sha256: ContentHash::from_digest(&self.hash.finalize()),
        })
    }
}

/// Asks the kernel to start writing `length` bytes from `offset` to disk now, without waiting
/// for it. A hint: the sync that stores the file says whether it was written.
fn start_write_back(file: &std::fs::File, offset: u64, length: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        let (Ok(offset), Ok(length)) = (i64::try_from(offset), i64::try_from(length)) else {
            return;
        };
        // SAFETY: the descriptor is open (borrowed from `file`) for the whole call, and
        // sync_file_range only reads its arguments.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset,
                length,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, length);
}

/// A received file waiting on disk until the form is read, with its length and hash.
pub struct Spooled {
    path: SpoolPath,
    size: u64,
    sha256: ContentHash,
}

impl Spooled {
    /// What `ingest::validate` says of the file, from its head: a file that passes comes back
    /// with what its head says, as `ingest::accept` takes it.
    pub async fn check(self, limits: &Limits) -> Result<Checked, IngestError> {
        let probe = crate::ingest::check(&self.path.0, self.size, limits).await?;
        Ok(Checked {
            spooled: self,
            probe,
        })
    }
}

/// A spooled file whose head passed the checks.
pub struct Checked {
    spooled: Spooled,
    probe: Probe,
}

impl Checked {
    /// The file, as `ingest` takes it.
    pub fn received(&self) -> Received<'_> {
        Received {
            path: &self.spooled.path.0,
            size: self.spooled.size,
            sha256: &self.spooled.sha256,
            probe: self.probe,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn part(headers: &str, body: &[u8]) -> Vec<u8> {
        let mut part = format!("--xyz\r\n{headers}\r\n\r\n").into_bytes();
        part.extend_from_slice(body);
        part.extend_from_slice(b"\r\n");
        part
    }

    /// Feeds `body` in chunks of `size`: whether the framing stayed within bounds.
    fn fits(body: &[u8], size: usize) -> bool {
        let mut framing = Framing::new("xyz");
        body.chunks(size).all(|chunk| framing.feed(chunk).is_ok())
    }

    #[test]
    fn bodies_of_any_size_pass_in_chunks_of_any_size() {
        let file = vec![b'-'; 300_000];
        let long_head = format!(
            "Content-Disposition: form-data; name=\"{}\"",
            "n".repeat(7000)
        );
        let mut body = part("Content-Disposition: form-data; name=\"file\"", &file);
        body.extend(part(&long_head, b"--xy\r\n--xy-\r\n-xyz: near misses"));
        body.extend(part("", &file));
        body.extend_from_slice(b"--xyz--\r\n");
        body.extend(vec![b'e'; 100_000]); // an epilogue, never parsed
        for size in [1, 2, 5, 7, 64, 4096, body.len()] {
            assert!(fits(&body, size), "chunks of {size}");
        }
    }

    #[test]
    fn headers_or_a_preamble_past_the_bound_are_refused() {
        let endless = format!(
            "--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}",
            "a".repeat(MAX_PART_HEAD_BYTES)
        );
        let long_head = format!("X-Pad: {}", "p".repeat(MAX_PART_HEAD_BYTES));
        let mut second = part("", &[0; 100_000]);
        second.extend(part(&long_head, b"x"));
        let preamble = format!("{}\r\n\r\n", "p".repeat(MAX_PART_HEAD_BYTES + 1));
        let mut padded = b"--xyz".to_vec();
        padded.extend(vec![b' '; MAX_PART_HEAD_BYTES + 1]);
        for body in [endless.as_bytes(), &second, preamble.as_bytes(), &padded] {
            for size in [1, 100, body.len()] {
                assert!(!fits(body, size), "chunks of {size}");
            }
        }
    }

    /// The spool writes in parts of `SPOOL_BUFFER`, one on a thread while the next gathers:
    /// whatever the chunks, the file and its hash are the bytes sent, in order.
    #[tokio::test]
    async fn the_spool_keeps_every_byte_in_order_across_its_parts() {
        let dir = std::env::temp_dir().join(format!("gallery-spool-{}", uuid::Uuid::now_v7()));
        let bytes: Vec<u8> = (0..2 * SPOOL_BUFFER + 12_345)
            .map(|i| (i % 251) as u8)
            .collect();
        for (chunk, write_back) in [
            (1000, true),
            (SPOOL_BUFFER, false),
            (SPOOL_BUFFER + 1, true),
        ] {
            let spool = Spool {
                dir: dir.clone(),
                write_back,
            };
            let mut writer = SpoolWriter::create(&spool).await.expect("a spool file");
            for part in bytes.chunks(chunk) {
                writer.write(part).await.expect("written");
            }
            let spooled = writer.finish().await.expect("finished");
            let on_disk = std::fs::read(&spooled.path.0).expect("the spool file");
            assert!(on_disk == bytes, "chunks of {chunk}: the file differs");
            assert_eq!(spooled.size, bytes.len() as u64);
            assert_eq!(
                spooled.sha256,
                ContentHash::from_digest(&Sha256::digest(&bytes)),
                "chunks of {chunk}"
            );
            let path = spooled.path.0.clone();
            drop(spooled);
            assert!(!path.exists(), "a dropped spool file is removed");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
