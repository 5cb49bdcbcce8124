//! The gallery's public API as `gallery import` uses it: who the token belongs to, whether a
//! photo has a given hash, and uploading one file streamed from disk. Every answer is sorted
//! into success, a refusal (final) or a passing failure (worth another try).

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::RETRY_AFTER;
use reqwest::{Response, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::progress::FileProgress;
use super::Source;
use crate::domain::ContentHash;

/// The longest `Retry-After` honoured: a server asking for more is asked again sooner.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server said no for good (a 4xx but 408 and 429): its message and code.
    Refused { reason: String, code: String },
    /// No answer, or one that may change (408, 429, 5xx): worth another try, after
    /// `retry_after` when the server named a time.
    Passing {
        reason: String,
        retry_after: Option<Duration>,
    },
}

impl Failure {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Failure::Refused { reason, code } => format!("{reason} ({code})"),
            Failure::Passing { reason, .. } => reason.clone(),
        }
    }

    fn unanswered(error: reqwest::Error) -> Self {
        // The address is in the import's first line; the error's chain says what went wrong.
        let error = error.without_url();
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        Failure::Passing {
            reason,
            retry_after: None,
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    server: Url,
    token: SecretString,
}

impl Client {
    pub fn new(server: &Url, token: SecretString) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Between two reads of an answer: a server that stops answering costs this, not
            // the import. Sending is not bounded by it: a big file takes as long as it takes.
            .read_timeout(Duration::from_secs(300))
            .build()?;
        Ok(Client {
            http,
            server: server.clone(),
            token,
        })
    }

    fn url(&self, path: &str) -> Result<Url, Failure> {
        self.server.join(path).map_err(|error| Failure::Refused {
            reason: format!("cannot make a URL of {path}: {error}"),
            code: "bad_url".into(),
        })
    }

    /// Sends a request with the token; a success, or the failure it is.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response, Failure> {
        let response = request
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(Failure::unanswered)?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(failure_of(response).await)
    }

    /// The name and e-mail of the token's owner: checks the address and the token at once.
    pub async fn who_am_i(&self) -> Result<String, Failure> {
        let response = self.send(self.http.get(self.url("/api/session")?)).await?;
        let body: Value = response.json().await.map_err(Failure::unanswered)?;
        let user = &body["user"];
        Ok(format!(
            "{} <{}>",
            user["name"].as_str().unwrap_or("?"),
            user["email"].as_str().unwrap_or("?")
        ))
    }

    /// Whether the gallery has a photo whose original has this hash.
    pub async fn has(&self, hash: &ContentHash) -> Result<bool, Failure> {
        let mut url = self.url("/api/photos")?;
        url.query_pairs_mut()
            .append_pair("sha256", hash.as_str())
            .append_pair("limit", "1");
        let response = self.send(self.http.get(url)).await?;
        let body: Value = response.json().await.map_err(Failure::unanswered)?;
        match body["photos"].as_array() {
            Some(photos) => Ok(!photos.is_empty()),
            None => Err(Failure::Passing {
                reason: "the gallery's answer has no photos list".into(),
                retry_after: None,
            }),
        }
    }

    /// Uploads one file, streamed from disk, counting what goes out in `progress`.
    pub async fn upload(&self, source: &Source, progress: &FileProgress) -> Result<(), Failure> {
        let file = tokio::fs::File::open(&source.path)
            .await
            .map_err(|error| Failure::Passing {
                reason: format!("cannot read it: {error}"),
                retry_after: None,
            })?;
        let counter = progress.clone();
        let chunks =
            tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024).inspect(move |chunk| {
                if let Ok(chunk) = chunk {
                    counter.sent(chunk.len() as u64);
                }
            });
        let filename = source
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| source.name.clone());
        let part = reqwest::multipart::Part::stream_with_length(
            reqwest::Body::wrap_stream(chunks),
            source.size,
        )
        .file_name(filename);
        let form = reqwest::multipart::Form::new().part("file", part);
        let request = self.http.post(self.url("/api/photos")?).multipart(form);
        let response = self.send(request).await?;
        let body: Value = response.json().await.map_err(Failure::unanswered)?;
        if body["photos"]
            .as_array()
            .is_some_and(|photos| !photos.is_empty())
        {
            return Ok(());
        }
        // A success that accepted nothing: the rejection says why.
        let (reason, code) = reason_and_code(&body["rejected"][0], "not accepted");
        Err(Failure::Refused { reason, code })
    }
}

/// The failure an unsuccessful answer is.
async fn failure_of(response: Response) -> Failure {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(|seconds| Duration::from_secs(seconds).min(LONGEST_RETRY_AFTER));
    let body: Value = response.json().await.unwrap_or(Value::Null);
    // An upload's refusal names the file in `error`; its `rejected` entry says it plainly.
    let said = match &body["rejected"][0] {
        Value::Null => &body,
        rejected => rejected,
    };
    let passing = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT;
    let (reason, code) = reason_and_code(said, &status.to_string());
    if passing {
        Failure::Passing {
            reason: format!("{reason} ({code})"),
            retry_after,
        }
    } else {
        Failure::Refused { reason, code }
    }
}

/// The message and code of an `{"error", "code"}` object; `fallback` when it has no message.
fn reason_and_code(said: &Value, fallback: &str) -> (String, String) {
    (
        said["error"].as_str().unwrap_or(fallback).to_owned(),
        said["code"].as_str().unwrap_or("unknown").to_owned(),
    )
}
