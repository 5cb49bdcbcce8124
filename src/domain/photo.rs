//! `Photo`: the metadata record of one upload, as stored in the cache and served by the API.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ContentHash, Email, Lane, Lang, Op, Owner, PhotoId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Processing,
    Done,
    Failed,
}

impl Status {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Processing => "processing",
            Status::Done => "done",
            Status::Failed => "failed",
        }
    }

    /// Queued or processing: a job for the photo is on its way or running.
    pub fn in_flight(self) -> bool {
        matches!(self, Status::Queued | Status::Processing)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantInfo {
    pub width: u32,
    pub height: u32,
    pub content_type: String,
    pub bytes: u64,
    /// The first 16 hex digits of the variant's SHA-256; absent in records written before
    /// variants carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl VariantInfo {
    /// What a variant made from `bytes` is recorded as.
    pub fn of(width: u32, height: u32, content_type: &str, bytes: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(bytes);
        VariantInfo {
            width,
            height,
            content_type: content_type.to_owned(),
            bytes: bytes.len() as u64,
            digest: Some(
                digest[..8]
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect(),
            ),
        }
    }

    /// Tells this making of a variant from another: a variant made again (reprocessing, after
    /// an engine change, at another size or quality) has other bytes, so its URL and ETag,
    /// which carry this, change with it, and neither a browser nor the web role's memory of
    /// hot images keeps showing the old one. Records from before the digest fall back to
    /// dimensions and length.
    pub fn version(&self) -> String {
        match &self.digest {
            Some(digest) => format!("{}x{}-{digest}", self.width, self.height),
            None => format!("{}x{}-{}", self.width, self.height, self.bytes),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Photo {
    pub id: PhotoId,
    /// As uploaded; shown to people, never used in a path or rendered as HTML.
    pub filename: String,
    pub content_type: String,
    pub bytes: u64,
    /// SHA-256 of the original as uploaded, lowercase hex: how `gallery import` knows a file
    /// is already in the gallery. `None` for photos from before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<ContentHash>,
    /// Size after EXIF orientation and the rotate ops; until processed, as stored in the file.
    pub width: u32,
    pub height: u32,
    pub status: Status,
    pub ops: Vec<Op>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    /// How many times a worker has started on this photo, finished or not; bounds the
    /// redeliveries of a job whose processing kills the worker. Never reset: it is also what
    /// tells one finished processing from a later one (`Event::identity`).
    #[serde(default)]
    pub deliveries: u32,
    #[serde(default)]
    pub variants: BTreeMap<String, VariantInfo>,
    /// The lane of the photo's latest job: `bulk` once reprocessing queued it, which nobody
    /// is told about (the notifier keeps quiet), `upload` otherwise.
    #[serde(default)]
    pub lane: Lane,
    /// Who to tell when processing ends: the uploader's contacts as their profile had them at
    /// upload. Private, never shown by the API.
    #[serde(default, skip_serializing_if = "Notify::is_empty")]
    pub notify: Notify,
    /// Who uploaded it; `None` for photos from before accounts existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

/// Where a person's notifications go, and in which language.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram: Option<String>,
    #[serde(default)]
    pub lang: Lang,
}

impl Notify {
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.telegram.is_none()
    }

    /// Checks an e-mail contact; blank means none.
    pub fn parse_email(email: &str) -> Result<Option<String>, String> {
        let email = email.trim();
        if email.is_empty() {
            return Ok(None);
        }
        Email::parse(email).map(|email| Some(email.into()))
    }

    /// Checks a Telegram chat id (a number, or @channel); blank means none.
    pub fn parse_telegram(chat: &str) -> Result<Option<String>, String> {
        let chat = chat.trim();
        if chat.is_empty() {
            return Ok(None);
        }
        let numeric = chat.strip_prefix('-').unwrap_or(chat);
        let valid = (!numeric.is_empty()
            && numeric.len() <= 20
            && numeric.bytes().all(|b| b.is_ascii_digit()))
            || (chat.starts_with('@')
                && (6..=33).contains(&chat.len())
                && chat[1..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        if !valid {
            return Err(format!(
                "'{chat}' is not a Telegram chat id (a number, or @channel)"
            ));
        }
        Ok(Some(chat.to_owned()))
    }
}

impl Photo {
    /// Key of the original in object storage.
    pub fn original_key(id: &PhotoId) -> String {
        format!("photos/{id}/original")
    }

    /// Key of a variant in object storage.
    pub fn variant_key(id: &PhotoId, name: &str) -> String {
        format!("photos/{id}/{name}")
    }

    /// Every object key this photo may own, for deletion.
    pub fn object_keys(&self, variant_names: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut names: Vec<String> = self.variants.keys().cloned().collect();
        names.extend(variant_names);
        names.sort();
        names.dedup();
        std::iter::once(Self::original_key(&self.id))
            .chain(names.iter().map(|name| Self::variant_key(&self.id, name)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{Notify, VariantInfo};

    #[test]
    fn notify_targets_are_checked() {
        assert_eq!(Notify::parse_email(" "), Ok(None));
        assert_eq!(
            Notify::parse_email("ana@example.com"),
            Ok(Some("ana@example.com".into()))
        );
        assert_eq!(
            Notify::parse_telegram("-100123"),
            Ok(Some("-100123".into()))
        );
        assert!(Notify::parse_telegram("@gallery_bot").is_ok());
        for bad in ["ana", "ana@localhost", "a b@c.d", "<x>@y.z", "a@b.c,d@e.f"] {
            assert!(Notify::parse_email(bad).is_err(), "{bad} accepted");
        }
        for bad in ["12a", "-", "@ab", "chat"] {
            assert!(Notify::parse_telegram(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_variant_made_again_with_other_bytes_has_another_version() {
        let first = VariantInfo::of(320, 240, "image/jpeg", b"first making");
        let again = VariantInfo::of(320, 240, "image/jpeg", b"other making");
        assert_eq!(first.bytes, again.bytes, "same size and length");
        assert_ne!(first.version(), again.version());
        assert_eq!(
            first.version(),
            VariantInfo::of(320, 240, "image/jpeg", b"first making").version()
        );
        // A record from before the digest still reads, and keeps its old version.
        let old: VariantInfo = serde_json::from_str(
            r#"{"width":320,"height":240,"content_type":"image/jpeg","bytes":12}"#,
        )
        .expect("an old record");
        assert_eq!(old.version(), "320x240-12");
    }
}
