//! Passwords: checked on the way in (`Password::parse`), kept only as argon2id hashes with
//! OWASP's parameters (19 MiB, 2 passes). Hashing is slow and memory-hungry on purpose, so it
//! runs off the async threads and at most `CONCURRENT_HASHES` at once: a flood of logins
//! queues instead of taking the server's memory.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OnceCell, Semaphore};

/// Hashes computed at once, in all; each takes ~19 MiB.
const CONCURRENT_HASHES: usize = 2;

/// A password as a person chose it: 10 to 1024 bytes. Never printed.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    pub const MIN_CHARS: usize = 10;
    /// Hashing cost grows with length; nobody types more.
    pub const MAX_BYTES: usize = 1024;

    pub fn parse(raw: impl Into<String>) -> Result<Self, String> {
        let raw: String = raw.into();
        if raw.chars().count() < Self::MIN_CHARS {
            return Err(format!(
                "the password must have at least {} characters",
                Self::MIN_CHARS
            ));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(format!(
                "the password must have at most {} bytes",
                Self::MAX_BYTES
            ));
        }
        Ok(Password(raw.into()))
    }
}

/// Hashes and verifies, bounded in how many run at once.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Checked against when the e-mail is unknown, so that answer takes as long as a wrong
    /// password and does not tell which e-mails have accounts.
    decoy: Arc<OnceCell<String>>,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            permits: Arc::new(Semaphore::new(CONCURRENT_HASHES)),
            decoy: Arc::new(OnceCell::new()),
        }
    }
}

impl Hasher {
    /// The argon2id PHC string of `password`, with a fresh salt.
    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let secret = password.0.clone();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(secret.expose_secret().as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|error| anyhow::anyhow!("cannot hash the password: {error}"))
        })
        .await
    }

    /// Whether `password` matches `hash`; with no hash (unknown e-mail, or an invite not yet
    /// accepted), checks against a decoy and answers false, in the same time.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
        let (hash, real) = match hash {
            Some(hash) => (hash.to_owned(), true),
            None => (self.decoy().await?, false),
        };
        let password = SecretString::from(password.to_owned());
        let matches = self
            .run(move || {
                let parsed = PasswordHash::new(&hash)
                    .map_err(|error| anyhow::anyhow!("corrupt password hash: {error}"))?;
                Ok(Argon2::default()
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(real && matches)
    }

    async fn decoy(&self) -> anyhow::Result<String> {
        self.decoy
            .get_or_try_init(|| async {
                let random = super::secret::generate("");
                self.hash(&Password(random.into())).await
            })
            .await
            .cloned()
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self.permits.acquire().await?;
        tokio::task::spawn_blocking(work).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_bounded() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("ten chars!").is_ok());
        assert!(Password::parse("x".repeat(1025)).is_err());
        let debug = format!("{:?}", Password::parse("hunter2hunter2").expect("valid"));
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[tokio::test]
    async fn hashes_verify_only_their_password() {
        let hasher = Hasher::default();
        let password = Password::parse("correct horse").expect("valid");
        let hash = hasher.hash(&password).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(hasher
            .verify("correct horse", Some(&hash))
            .await
            .expect("verify"));
        assert!(!hasher
            .verify("wrong horse!", Some(&hash))
            .await
            .expect("verify"));
        assert!(!hasher.verify("correct horse", None).await.expect("decoy"));
    }
}
