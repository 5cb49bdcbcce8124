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
