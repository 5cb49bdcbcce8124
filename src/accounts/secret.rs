//! Secrets handed to clients (session ids, API tokens, invite and share-link tokens) and the
//! only form the stores keep of them: their SHA-256. A leaked store leaks no usable secret,
//! and a record is found by hashing what the client sends.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

/// 256 random bits from the OS, as 64 hex digits, after `prefix`.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex(&bytes))
}

/// The key a secret's record is stored under.
pub fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_hashed() {
        let (a, b) = (generate("t_"), generate("t_"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 + 64);
        assert!(a.starts_with("t_"));
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
        assert!(!digest(&a).contains(&a[2..]));
    }
}
