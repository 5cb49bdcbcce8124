//! `ContentHash`: the SHA-256 of an original as uploaded, in lowercase hex. The gallery records
//! it with each photo so a client can ask whether a file is already there (`gallery import`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentHash(String);

impl ContentHash {
    /// The hash of a finished SHA-256 digest (32 bytes).
    pub fn from_digest(digest: &[u8]) -> Self {
        ContentHash(digest.iter().map(|byte| format!("{byte:02x}")).collect())
    }

    /// A hash as people and clients write it: 64 hex digits, either case.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            Ok(ContentHash(text.to_ascii_lowercase()))
        } else {
            Err(format!(
                "'{}' is not a SHA-256 (64 hexadecimal digits)",
                text.chars().take(80).collect::<String>()
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ContentHash {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        ContentHash::parse(&text)
    }
}

impl From<ContentHash> for String {
    fn from(hash: ContentHash) -> String {
        hash.0
    }
}

#[cfg(test)]
mod tests {
    use super::ContentHash;

    #[test]
    fn only_64_hex_digits_are_a_hash_and_they_read_lowercase() {
        let upper = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        let hash = ContentHash::parse(upper).expect("valid");
        assert_eq!(hash.as_str(), upper.to_ascii_lowercase());
        assert_eq!(
            ContentHash::from_digest(&[0xab; 32]).as_str(),
            "ab".repeat(32)
        );
        for bad in [
            "",
            "abc",
            &"g".repeat(64),
            &"a".repeat(65),
            &format!("{}é", "a".repeat(62)),
        ] {
            assert!(ContentHash::parse(bad).is_err(), "{bad} accepted");
        }
        let json = serde_json::to_string(&hash).expect("serializes");
        assert_eq!(serde_json::from_str::<ContentHash>(&json).ok(), Some(hash));
        assert!(serde_json::from_str::<ContentHash>("\"nope\"").is_err());
    }
}
