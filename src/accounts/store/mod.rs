//! Where accounts live: a small keyed record store with expiry, which `accounts` builds every
//! record kind on (people, sessions, tokens, invites, share links, login-attempt counters).
//! `redis` keeps it in Redis beside the photo index; `embedded` in a redb file under the data
//! dir for `gallery serve`. Records are opaque bytes here: their shape is `accounts`' business.
//!
//! One table is not about accounts: `Sent`, the notifier's ledger of sends (see
//! `notifier::ledger`). It needs exactly this (a durable keyed record with expiry, on Redis
//! and on redb, reachable from every role), and a second store of the same shape beside
//! this one would only duplicate it.

mod embedded;
mod redis;

use std::time::Duration;

use async_trait::async_trait;

pub use self::embedded::EmbeddedAccounts;
pub use self::redis::RedisAccounts;

/// One kind of record. Listable tables keep an index of their keys; the others are only
/// reached by key (and may expire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `UserId` → user.
    Users,
    /// Lower-cased e-mail → `UserId`; creating here first is what keeps e-mails unique.
    Emails,
    /// Hash of a session secret → session.
    Sessions,
    /// Hash of an API token → token.
    Tokens,
    /// Hash of an invite secret → invite.
    Invites,
    /// Hash of a share-link secret → link.
    Links,
    /// Failed logins per account and per client address, counted over a window.
    Attempts,
    /// Removed person's `UserId` → (it, the `UserId` who took over their photos).
    Successors,
    /// Facts about the gallery itself ("set up").
    Meta,
    /// Not an account record: the notifier's ledger, one record per notification sent
    /// (event, channel, recipient), kept a week so a redelivered event is not sent again.
    Sent,
}

impl Table {
    pub const ALL: [Table; 10] = [
        Table::Users,
        Table::Emails,
        Table::Sessions,
        Table::Tokens,
        Table::Invites,
        Table::Links,
        Table::Attempts,
        Table::Successors,
        Table::Meta,
        Table::Sent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Users => "users",
            Table::Emails => "emails",
            Table::Sessions => "sessions",
            Table::Tokens => "tokens",
            Table::Invites => "invites",
            Table::Links => "links",
            Table::Attempts => "attempts",
            Table::Successors => "successors",
            Table::Meta => "meta",
            Table::Sent => "notifications_sent",
        }
    }
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Writes only when `key` is absent (atomically); false, writing nothing, when it exists.
    async fn create(
        &self,
        table: Table,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> anyhow::Result<bool>;
    /// Writes, replacing any record at `key`.
    async fn put(
        &self,
        table: Table,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> anyhow::Result<()>;
    async fn get(&self, table: Table, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Removes the record; answers whether it existed.
    async fn remove(&self, table: Table, key: &str) -> anyhow::Result<bool>;
    /// Removes the record and answers it, atomically: of two callers, one gets it.
    async fn take(&self, table: Table, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Every live record of the table, in no particular order.
    async fn all(&self, table: Table) -> anyhow::Result<Vec<Vec<u8>>>;
    /// Adds one to the counter at `key`, which lives `window` from its first count; answers
    /// the new count.
    async fn count(&self, table: Table, key: &str, window: Duration) -> anyhow::Result<u64>;
    /// The counter at `key` and how long until it ends; `None` when there is none.
    async fn counter(&self, table: Table, key: &str) -> anyhow::Result<Option<(u64, Duration)>>;
    /// Drops every record whose time is up and answers how many. Expired records already
    /// read as absent; this only gives their room back. Redis does it by itself.
    async fn drop_expired(&self) -> anyhow::Result<u64> {
        Ok(0)
    }
}
