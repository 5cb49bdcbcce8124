//! `ObjectStore` on S3 through rust-s3, always path-style so self-hosted servers work
//! without wildcard DNS.

use anyhow::{bail, Context};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use s3::creds::Credentials;
use s3::{Bucket, BucketConfiguration, Region};
use secrecy::{ExposeSecret, SecretString};

use super::{ByteStream, ObjectStore};

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
        Ok(S3Store {
            bucket,
            region,
            credentials,
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

    async fn stream(&self, key: &str) -> anyhow::Result<Option<ByteStream>> {
        let response = self
            .bucket
            .get_object_stream(key)
            .await
            .with_context(|| format!("S3 get {key} failed"))?;
        match response.status_code {
            404 => Ok(None),
            status if is_success(status) => Ok(Some(Box::pin(
                response
                    .bytes
                    .map(|chunk| chunk.map_err(std::io::Error::other)),
            ))),
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
