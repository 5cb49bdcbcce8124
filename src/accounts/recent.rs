//! Who proved to be whom in the last second: a session cookie or API token, by its digest,
//! mapped to the person it authenticated. A gallery page asks for 30 thumbnails at once, each
//! carrying the same cookie; without this each would read the session and the person from
//! the store (two round trips to Redis on the services) before its image.
//!
//! How promptly a change takes effect: in the process that makes it (logout, a password
//! change, a role or profile change, a person removed, a token revoked), at once: everything
//! remembered is forgotten there, and a lookup already under way then does not store what it
//! read (but for one that passes its check at that very instant, which then lingers at most
//! `MEMORY`). In another process (a second web replica, or `gallery user remove` on the
//! services), within `MEMORY`, one second, as each entry runs out. Under `gallery serve` every
//! change is made in the one process. Bounded to `KEPT` entries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

use crate::domain::User;

/// How long a proof is trusted without asking the store again.
pub const MEMORY: Duration = Duration::from_secs(1);
/// Entries at most (each a person record and a digest, well under a KiB).
const KEPT: usize = 10_000;

pub struct RecentCallers {
    entries: Cache<String, (User, Instant)>,
    /// Moves on at every `forget_all`: a lookup that began before it must not store what it
    /// read, which may be what was just forgotten.
    generation: AtomicU64,
}

impl Default for RecentCallers {
    fn default() -> Self {
        RecentCallers {
            entries: Cache::new(KEPT),
            generation: AtomicU64::new(0),
        }
    }
}

impl RecentCallers {
    /// The person behind `key` if they proved it within `MEMORY`.
    pub fn get(&self, key: &str) -> Option<User> {
        let (user, at) = self.entries.get(key)?;
        (at.elapsed() < MEMORY).then_some(user)
    }

    /// Where a lookup starts: hand it to `remember` with what the lookup found.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn remember(&self, key: String, user: User, generation: u64, started: Instant) {
        if self.generation() == generation {
            self.entries.insert(key, (user, started));
        }
    }

    /// After any change to who may do what.
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
    }
}
