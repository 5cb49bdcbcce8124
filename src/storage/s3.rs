//! `ObjectStore` on S3 through rust-s3, always path-style so self-hosted servers work
//! without wildcard DNS.
//!
//! Files (`put_file`, an upload's original) go up as one streamed PUT to a presigned URL:
//! the body is read from the file as it is sent (64 KiB at a time) with its length declared,
//! so memory holds a buffer whatever the size, and an S3 PUT is atomic: cut short, it leaves
//! no object, and a process killed half way leaves nothing to clean up. rust-s3's own
//! `put_object_stream` was not used: it signs every 8 MiB part's payload, so it buffers each
//! part and copies it into the request body, and runs up to 10 parts at once (2–10, from the
//! machine's free memory): up to 160 MiB for one file, and a multipart upload that a killed
//! process leaves behind. One PUT takes up to 5 GiB, far above any photo limit.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use s3::creds::Credentials;
use s3::{Bucket, BucketConfiguration, Region};
use secrecy::{ExposeSecret, SecretString};

use super::{ObjectStore, ObjectStream};

/// How long a presigned upload URL is valid: checked when the PUT starts, not when it ends.
const PRESIGNED_SECS: u32 = 15 * 60;
/// The read buffer of a streamed upload. Each read of a `tokio::fs::File` is a hop to a
/// blocking thread: 1 MiB makes a 12 MP original 4 of them rather than 57.
const UPLOAD_BUFFER: usize = 1 << 20;
/// An original (`get_sized`) goes in ranged GETs of about this size, `READS_AT_ONCE` at a
/// time: one GET is one stream that Garage serves block after block (1 MiB blocks, each read
/// and checked on its own), while parts are served side by side. A 3.7 MB original on Garage
/// on loopback (2 cores, curl): one GET 11.8–12.8 ms, one 1 MiB part 4.1–4.7 ms. The worker's
/// fetch in `make bench`'s latency runs (2 cores, alternating binaries): a 12 MP original
/// 16.0 / 16.9 ms whole, 13.0 / 14.8 ms in parts; a 50 MP one (14 MB) 59.1 / 57.8 ms whole,
/// 48.7 / 39.7 ms in parts.
const READ_PART: u64 = 1 << 20;
const READS_AT_ONCE: usize = 4;
/// The shortest last part: a shorter tail goes with the part before it. Garage does not set
/// TCP_NODELAY, so a response of a few KiB waits for the client's delayed ACK: 43 ms for
/// any GET of up to 5 KB on loopback, 1.8 ms for 300 KB.
const SHORTEST_PART: u64 = READ_PART / 4;

/// Where the bucket is and how to sign in.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// Path-style endpoint, e.g. `http://minio:9000`.
    pub endpoint: String,
    pub region: String,
    /// Created at start-up when missing.
    pub bucket: String,
    pub access_key: SecretString,
    pub secret_key: SecretString,
}

pub struct S3Store {
    bucket: Box<Bucket>,
    region: Region,
    credentials: Credentials,
    /// Sends streamed uploads (rust-s3's client takes only whole buffers).
    http: reqwest::Client,
}

impl S3Store {
    pub fn new(settings: &S3Settings) -> anyhow::Result<Self> {
        let region = Region::Custom {
            region: settings.region.clone(),
            endpoint: settings.endpoint.trim_end_matches('/').to_owned(),
        };
        let credentials = Credentials::new(
            Some(settings.access_key.expose_secret()),
            Some(settings.secret_key.expose_secret()),
            None,
            None,
            None,
        )
        .context("invalid S3 credentials")?;
        let bucket = Bucket::new(&settings.bucket, region.clone(), credentials.clone())
            .context("invalid S3 bucket settings")?
            .with_path_style();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Between two reads, not for the whole upload: a large file may take minutes.
            .read_timeout(Duration::from_secs(60))
            .build()
            .context("cannot build the S3 upload client")?;
        Ok(S3Store {
            bucket,
            region,
            credentials,
            http,
        })
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The parts (start, length) an object of `length` bytes is read in: `READ_PART` each, the
/// last one up to `SHORTEST_PART` longer rather than a short one of its own.
fn parts(length: u64) -> impl Iterator<Item = (u64, u64)> {
    (0..length)
        .step_by(READ_PART as usize)
        .map_while(move |start| {
            let left = length - start;
            if left < SHORTEST_PART && start > 0 {
                None // read with the part before
            } else if left < READ_PART + SHORTEST_PART {
                Some((start, left))
            } else {
                Some((start, READ_PART))
            }
        })
}

/// What one ranged GET of an object found.
enum Part {
    Bytes(Bytes),
    Missing,
    /// The object is not of the length asked for, or the server sent it whole.
    NotOfLength,
}

impl S3Store {
    /// Reads `part` bytes from `start` of `key`, an object of `length` bytes.
    async fn get_part(
        &self,
        key: &str,
        start: u64,
        part: u64,
        length: u64,
    ) -> anyhow::Result<Part> {
        let response = self
            .bucket
            .get_object_range(key, start, Some(start + part - 1))
            .await
            .with_context(|| format!("S3 get {key} failed"))?;
        match response.status_code() {
            404 => Ok(Part::Missing),
            // 416: the range is not in the object, shorter than said.
            200 | 416 => Ok(Part::NotOfLength),
            206 => {
                let whole = response
                    .headers()
                    .get("content-range")
                    .and_then(|range| content_range_length(range));
                let bytes = response.bytes().clone();
                if whole != Some(length) || bytes.len() as u64 != part {
                    return Ok(Part::NotOfLength);
                }
                Ok(Part::Bytes(bytes))
            }
            status => bail!("S3 get {key} failed: HTTP {status}"),
        }
    }
}

/// The object's length in a `Content-Range: bytes 0-1048575/3693928` header.
fn content_range_length(header: &str) -> Option<u64> {
    let (_, length) = header.strip_prefix("bytes ")?.split_once('/')?;
    length.trim().parse().ok()
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn prepare(&self) -> anyhow::Result<()> {
        if self.check().await.is_ok() {
            return Ok(());
        }
        let created = Bucket::create_with_path_style(
            &self.bucket.name,
            self.region.clone(),
            self.credentials.clone(),
            BucketConfiguration::default(),
        )
        .await
        .context("S3 is not reachable")?;
        // 409: another role created it between our check and our request.
        if !is_success(created.response_code) && created.response_code != 409 {
            bail!(
                "could not create bucket {}: HTTP {} {}",
                self.bucket.name,
                created.response_code,
                created.response_text
            );
        }
        self.check().await
    }

    async fn check(&self) -> anyhow::Result<()> {
        // Listing one key proves the server answers, the credentials work and the bucket exists.
        self.bucket
            .list_page(String::new(), None, None, None, Some(1))
            .await
            .with_context(|| format!("S3 bucket {} is not reachable", self.bucket.name))?;
        Ok(())
    }

    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> anyhow::Result<()> {
        let response = self
            .bucket
            .put_object_with_content_type(key, &bytes, content_type)
            .await
            .with_context(|| format!("S3 put {key} failed"))?;
        if !is_success(response.status_code()) {
            bail!("S3 put {key} failed: HTTP {}", response.status_code());
        }
        Ok(())
    }

    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> anyhow::Result<()> {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let size = file.metadata().await?.len();
        let url = self
            .bucket
            .presign_put(key, PRESIGNED_SECS, None, None)
            .await
            .with_context(|| format!("S3 put {key}: cannot sign the upload"))?;
        // The declared length makes a body that ends early (or runs long) fail the request
        // rather than store a different object.
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            file,
            UPLOAD_BUFFER,
        ));
        let response = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(body)
            .send()
            .await
            // The presigned URL carries a signature and the access key: never in a log line.
            .map_err(|error| anyhow::anyhow!("S3 put {key} failed: {}", error.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let text: String = text.chars().take(500).collect();
            bail!("S3 put {key} failed: HTTP {status} {text}");
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<Bytes>> {
        let response = self
            .bucket
            .get_object(key)
            .await
            .with_context(|| format!("S3 get {key} failed"))?;
        match response.status_code() {
            404 => Ok(None),
            status if is_success(status) => Ok(Some(response.bytes().clone())),
            status => bail!("S3 get {key} failed: HTTP {status}"),
        }
    }

    async fn get_sized(&self, key: &str, length: u64) -> anyhow::Result<Option<Bytes>> {
        if length < READ_PART + SHORTEST_PART {
            return self.get(key).await;
        }
        let mut whole = Vec::new();
        // In order, `READS_AT_ONCE` in flight: memory holds the object and those parts.
        let reads = parts(length).map(|(start, part)| self.get_part(key, start, part, length));
        let mut arriving = futures_util::stream::iter(reads).buffered(READS_AT_ONCE);
        while let Some(part) = arriving.next().await {
            match part? {
                Part::Bytes(bytes) => {
                    // Only once the server has said the object is that long.
                    if whole.is_empty() {
                        whole.reserve_exact(length as usize);
                    }
                    whole.extend_from_slice(&bytes);
                }
                Part::Missing => return Ok(None),
                // Not the length the job said (or a server that ignores ranges): read whole.
                Part::NotOfLength => return self.get(key).await,
            }
        }
        Ok(Some(Bytes::from(whole)))
    }

    async fn stream(&self, key: &str) -> anyhow::Result<Option<ObjectStream>> {
        let response = self
            .bucket
            .get_object_stream(key)
            .await
            .with_context(|| format!("S3 get {key} failed"))?;
        match response.status_code {
            404 => Ok(None),
            status if is_success(status) => Ok(Some(ObjectStream {
                length: None,
                bytes: Box::pin(
                    response
                        .bytes
                        .map(|chunk| chunk.map_err(std::io::Error::other)),
                ),
            })),
            status => bail!("S3 get {key} failed: HTTP {status}"),
        }
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let response = self
            .bucket
            .delete_object(key)
            .await
            .with_context(|| format!("S3 delete {key} failed"))?;
        match response.status_code() {
            404 => Ok(()),
            status if is_success(status) => Ok(()),
            status => bail!("S3 delete {key} failed: HTTP {status}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_every_byte_once_in_order_and_none_is_short() {
        let mib = READ_PART;
        for length in [
            mib + SHORTEST_PART,
            2 * mib - 1,
            2 * mib,
            2 * mib + 1,
            2 * mib + SHORTEST_PART - 1,
            2 * mib + SHORTEST_PART,
            3_693_928,
            14_155_345,
        ] {
            let parts: Vec<_> = parts(length).collect();
            let mut next = 0;
            for &(start, part) in &parts {
                assert_eq!(start, next, "{length}: parts in order, no gap or overlap");
                assert!(
                    (SHORTEST_PART..READ_PART + SHORTEST_PART).contains(&part),
                    "{length}: part of {part} bytes"
                );
                next = start + part;
            }
            assert_eq!(next, length, "{length}: every byte read ({parts:?})");
        }
        assert_eq!(
            parts(2 * READ_PART + 1).count(),
            2,
            "a 1-byte tail joins the part before"
        );
    }

    #[test]
    fn the_length_is_read_from_content_range() {
        assert_eq!(
            content_range_length("bytes 0-1048575/3693928"),
            Some(3_693_928)
        );
        assert_eq!(content_range_length("bytes 0-1048575/*"), None);
        assert_eq!(content_range_length("0-1048575/3693928"), None);
    }
}
