//! `PhotoId`: a UUID v7, so ids sort by creation time and the newest-first index needs no
//! second key.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhotoId(String);

impl PhotoId {
    pub fn new() -> Self {
        PhotoId(uuid::Uuid::now_v7().hyphenated().to_string())
    }

    /// Accepts only a canonical (lower-case, hyphenated) UUID, the only form `new` makes: an id
    /// ends up in object keys and Redis keys, so nothing else may pass.
    pub fn parse(value: &str) -> Result<Self, InvalidPhotoId> {
        match uuid::Uuid::try_parse(value) {
            Ok(uuid) if uuid.hyphenated().to_string() == value => Ok(PhotoId(value.to_owned())),
            _ => Err(InvalidPhotoId),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for PhotoId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for PhotoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for PhotoId {
    type Error = InvalidPhotoId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        PhotoId::parse(&value)
    }
}

impl From<PhotoId> for String {
    fn from(id: PhotoId) -> Self {
        id.0
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not a photo id (expected a UUID)")]
pub struct InvalidPhotoId;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_parse_and_sort_by_creation() {
        let first = PhotoId::new();
        let second = PhotoId::new();
        assert_eq!(PhotoId::parse(first.as_str()).ok(), Some(first.clone()));
        assert!(first < second);
    }

    #[test]
    fn rejects_anything_but_a_canonical_uuid() {
        for bad in [
            "",
            "../etc/passwd",
            "0190B4A2-0000-7000-8000-000000000000",
            "abc",
            "0190b4a2000070008000000000000000",
        ] {
            assert!(PhotoId::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
