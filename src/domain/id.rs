//! Ids: UUID v7, so they sort by creation time (the newest-first index needs no second key),
//! and only the canonical form parses, since ids end up in object keys and store keys. One
//! type per kind of record, so a user id can never be passed where a photo id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Defines an id type: `$name::new()`, `::parse`, `as_str`, `Display`, serde as a string.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn new() -> Self {
                $name(uuid::Uuid::now_v7().hyphenated().to_string())
            }

            /// Accepts only a canonical (lower-case, hyphenated) UUID, the only form `new` makes.
            pub fn parse(value: &str) -> Result<Self, InvalidId> {
                match uuid::Uuid::try_parse(value) {
                    Ok(uuid) if uuid.hyphenated().to_string() == value => Ok($name(value.to_owned())),
                    _ => Err(InvalidId($what)),
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                $name::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

uuid_id!(PhotoId, "photo");
uuid_id!(UserId, "user");
uuid_id!(
    /// Names an API token or a share link; never a secret (the secret is apart from it).
    RecordId,
    "record"
);

#[derive(Debug, thiserror::Error)]
#[error("not a {0} id (expected a UUID)")]
pub struct InvalidId(&'static str);

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
