//! `Photo`: the metadata record of one upload, as stored in the cache and served by the API.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Op, PhotoId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Processing,
    Done,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantInfo {
    pub width: u32,
    pub height: u32,
    pub content_type: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Photo {
    pub id: PhotoId,
    /// As uploaded; shown to people, never used in a path or rendered as HTML.
    pub filename: String,
    pub content_type: String,
    pub bytes: u64,
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
    /// redeliveries of a job whose processing kills the worker.
    #[serde(default)]
    pub deliveries: u32,
    #[serde(default)]
    pub variants: BTreeMap<String, VariantInfo>,
    /// Who to tell when processing ends; private, never shown by the API.
    #[serde(default, skip_serializing_if = "Notify::is_empty")]
    pub notify: Notify,
}

/// Per-photo notification targets given at upload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram: Option<String>,
}

impl Notify {
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.telegram.is_none()
    }

    /// Checks the form fields; blank means "not asked for".
    pub fn parse(email: Option<&str>, telegram: Option<&str>) -> Result<Self, String> {
        let email = email.map(str::trim).filter(|e| !e.is_empty());
        let telegram = telegram.map(str::trim).filter(|t| !t.is_empty());
        if let Some(email) = email {
            let valid = email.len() <= 254
                && !email.chars().any(|c| {
                    c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == ','
                })
                && email
                    .split_once('@')
                    .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'));
            if !valid {
                return Err(format!("'{email}' is not an e-mail address"));
            }
        }
        if let Some(chat) = telegram {
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
        }
        Ok(Notify {
            email: email.map(str::to_owned),
            telegram: telegram.map(str::to_owned),
        })
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
    use super::Notify;

    #[test]
    fn notify_targets_are_checked() {
        assert_eq!(Notify::parse(Some(" "), None), Ok(Notify::default()));
        let ok = Notify::parse(Some("ana@example.com"), Some("-100123")).expect("valid");
        assert_eq!(ok.email.as_deref(), Some("ana@example.com"));
        assert_eq!(ok.telegram.as_deref(), Some("-100123"));
        assert!(Notify::parse(None, Some("@gallery_bot")).is_ok());
        for bad in ["ana", "ana@localhost", "a b@c.d", "<x>@y.z", "a@b.c,d@e.f"] {
            assert!(Notify::parse(Some(bad), None).is_err(), "{bad} accepted");
        }
        for bad in ["12a", "-", "@ab", "chat"] {
            assert!(Notify::parse(None, Some(bad)).is_err(), "{bad} accepted");
        }
    }
}
