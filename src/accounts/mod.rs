//! Accounts and access: people, their sessions and API tokens, invites, share links, and the
//! brake on password guessing. This is the use case, not HTTP: `routes::auth` turns a
//! request's cookie or bearer token into a `User` through here, and answers `AccountError`s
//! with the status `routes::error` gives their codes.
//!
//! Every record lives in an `AccountStore` (Redis, or redb for `gallery serve`). Secrets given
//! to clients are 256 random bits and stored only hashed (`secret`); passwords only as argon2id
//! hashes (`password`). A session or token checked within the last second is not read again
//! (`recent`, which says how promptly a logout or a removal takes effect).

mod password;
mod recent;
mod secret;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use self::password::{Hasher, Password};
use self::recent::RecentCallers;
use self::store::{AccountStore, Table};
use crate::domain::{
    clean_name, Email, Notify, Owner, Photo, PhotoId, RecordId, Role, User, UserId,
};
use crate::error_code::ErrorCode;

/// Sessions end after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 24 * 3600);
/// An invite link works this long.
pub const INVITE_VALID: Duration = Duration::from_secs(7 * 24 * 3600);
/// Failed logins are counted over this window...
pub const ATTEMPT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// ...and refused past this many for one account...
pub const MAX_FAILURES_PER_ACCOUNT: u64 = 5;
/// ...or this many from one client address.
pub const MAX_FAILURES_PER_CLIENT: u64 = 20;
/// A session's idle clock is written back at most this often, not on every request.
const TOUCH_EVERY: Duration = Duration::from_secs(3600);
/// Share links live at most a year (in seconds).
pub const LINK_LIFETIME: std::ops::RangeInclusive<u64> = 1..=365 * 24 * 3600;

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("wrong e-mail or password")]
    BadCredentials,
    #[error("too many failed logins; try again in {} s", retry_after.as_secs())]
    TooManyAttempts { retry_after: Duration },
    #[error("the gallery is already set up: log in instead")]
    AlreadySetUp,
    #[error("{0} already has an account")]
    EmailTaken(Email),
    #[error("the gallery needs at least one admin: make someone else admin first")]
    LastAdmin,
    #[error("{0}")]
    WeakPassword(String),
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error("you cannot remove yourself; another admin can")]
    RemovingSelf,
    #[error("this invite link is unknown, used or expired: ask for a new one")]
    InviteNotFound,
    #[error("this share link is unknown, revoked or expired")]
    LinkNotFound,
    #[error("{0}")]
    NotFound(String),
    /// The store failed; the cause is for the log only.
    #[error("{step} failed; try again later")]
    Unavailable {
        step: &'static str,
        #[source]
        cause: anyhow::Error,
    },
}

impl AccountError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AccountError::BadCredentials => ErrorCode::BadCredentials,
            AccountError::TooManyAttempts { .. } => ErrorCode::TooManyAttempts,
            AccountError::AlreadySetUp => ErrorCode::AlreadySetUp,
            AccountError::EmailTaken(_) => ErrorCode::EmailTaken,
            AccountError::LastAdmin => ErrorCode::LastAdmin,
            AccountError::RemovingSelf => ErrorCode::Forbidden,
            AccountError::WeakPassword(_) => ErrorCode::WeakPassword,
            AccountError::Invalid { .. } => ErrorCode::BadField,
            AccountError::InviteNotFound => ErrorCode::InviteNotFound,
            AccountError::LinkNotFound => ErrorCode::LinkNotFound,
            AccountError::NotFound(_) => ErrorCode::NotFound,
            AccountError::Unavailable { .. } => ErrorCode::Unavailable,
        }
    }
}

/// Maps a store failure to `Unavailable` at `step`.
fn failed(step: &'static str) -> impl FnOnce(anyhow::Error) -> AccountError {
    move |cause| AccountError::Unavailable { step, cause }
}

fn invalid(field: &'static str) -> impl FnOnce(String) -> AccountError {
    move |problem| AccountError::Invalid { field, problem }
}

pub fn parse_email(raw: &str) -> Result<Email, AccountError> {
    Email::parse(raw).map_err(invalid("email"))
}

pub fn parse_name(raw: &str) -> Result<String, AccountError> {
    clean_name(raw).map_err(invalid("name"))
}

pub fn parse_password(raw: &str) -> Result<Password, AccountError> {
    Password::parse(raw).map_err(AccountError::WeakPassword)
}

/// A logged-in browser: found by the hash of its cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    user_id: UserId,
    /// The user's `session_epoch` when it began; a password change bumps it.
    epoch: u32,
    last_seen: DateTime<Utc>,
}

/// A token for scripts (`Authorization: Bearer`), as listed to its owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: RecordId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// How `ApiToken` is stored (its owner included, which the API does not show).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    id: RecordId,
    user_id: UserId,
    name: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    /// Where the record is, to revoke it by id.
    digest: String,
}

impl TokenRecord {
    fn view(&self) -> ApiToken {
        ApiToken {
            id: self.id.clone(),
            name: self.name.clone(),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Invite {
    user_id: UserId,
    expires_at: DateTime<Utc>,
}

/// A photo readable without an account, by whoever has the link, until it expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShareLink {
    pub id: RecordId,
    pub photo_id: PhotoId,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Where the record is, to revoke it by id.
    digest: String,
}

/// What a person may change about themselves; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub name: Option<String>,
    /// `Some("")` clears the contact.
    pub notify_email: Option<String>,
    pub notify_telegram: Option<String>,
    pub lang: Option<String>,
}

/// The accounts of one gallery, on its store.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn AccountStore>,
    hasher: Hasher,
    /// Sessions and tokens checked within the last second (`recent`).
    recent: Arc<RecentCallers>,
}

const SETUP: &str = "setup";

impl Accounts {
    pub fn new(store: Arc<dyn AccountStore>) -> Self {
        Accounts {
            store,
            hasher: Hasher::default(),
            recent: Arc::default(),
        }
    }

    /// The record store underneath, for the one kind of record kept beside the accounts that
    /// is not theirs: the notifier's ledger of sends (`store::Table::Sent`).
    pub fn store(&self) -> Arc<dyn AccountStore> {
        self.store.clone()
    }

    async fn read<T: DeserializeOwned>(
        &self,
        table: Table,
        key: &str,
    ) -> Result<Option<T>, AccountError> {
        let Some(bytes) = self
            .store
            .get(table, key)
            .await
            .map_err(failed("reading accounts"))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| failed("reading accounts")(error.into()))
    }

    async fn write<T: Serialize>(
        &self,
        table: Table,
        key: &str,
        record: &T,
        ttl: Option<Duration>,
    ) -> Result<(), AccountError> {
        let bytes = serde_json::to_vec(record).map_err(|e| failed("saving accounts")(e.into()))?;
        self.store
            .put(table, key, &bytes, ttl)
            .await
            .map_err(failed("saving accounts"))
    }

    // ---- people ----

    /// Whether nobody has an account yet (the page then offers to create the first).
    pub async fn setup_required(&self) -> Result<bool, AccountError> {
        Ok(self
            .store
            .get(Table::Meta, SETUP)
            .await
            .map_err(failed("reading accounts"))?
            .is_none())
    }

    /// Creates the first account, as admin; refused once anyone has an account.
    pub async fn set_up(
        &self,
        email: Email,
        name: String,
        password: &Password,
    ) -> Result<User, AccountError> {
        // The marker is taken first and atomically: of two concurrent set-ups, one wins.
        let first = self
            .store
            .create(Table::Meta, SETUP, b"1", None)
            .await
            .map_err(failed("setting up"))?;
        if !first {
            return Err(AccountError::AlreadySetUp);
        }
        let created = self
            .add_user(email, name, Role::Admin, Some(password))
            .await;
        if created.is_err() {
            let _ = self.store.remove(Table::Meta, SETUP).await;
        }
        created
    }

    /// Creates a person; without a password they are pending until they accept an invite.
    pub async fn add_user(
        &self,
        email: Email,
        name: String,
        role: Role,
        password: Option<&Password>,
    ) -> Result<User, AccountError> {
        let password_hash = match password {
            Some(password) => Some(
                self.hasher
                    .hash(password)
                    .await
                    .map_err(failed("hashing the password"))?,
            ),
            None => None,
        };
        let user = User {
            id: UserId::new(),
            email: email.clone(),
            name,
            role,
            password_hash,
            notify: Notify::default(),
            created_at: Utc::now(),
            session_epoch: 0,
        };
        let claimed = self
            .store
            .create(
                Table::Emails,
                email.as_str(),
                user.id.as_str().as_bytes(),
                None,
            )
            .await
            .map_err(failed("saving accounts"))?;
        if !claimed {
            return Err(AccountError::EmailTaken(email));
        }
        if let Err(error) = self
            .write(Table::Users, user.id.as_str(), &user, None)
            .await
        {
            let _ = self.store.remove(Table::Emails, email.as_str()).await;
            return Err(error);
        }
        // Whoever is added first, by any path, ends the first-run set-up.
        let _ = self.store.create(Table::Meta, SETUP, b"1", None).await;
        Ok(user)
    }

    pub async fn user(&self, id: &UserId) -> Result<Option<User>, AccountError> {
        self.read(Table::Users, id.as_str()).await
    }

    pub async fn user_by_email(&self, email: &Email) -> Result<Option<User>, AccountError> {
        let Some(id) = self
            .store
            .get(Table::Emails, email.as_str())
            .await
            .map_err(failed("reading accounts"))?
        else {
            return Ok(None);
        };
        let id = String::from_utf8_lossy(&id).into_owned();
        self.read(Table::Users, &id).await
    }

    /// Everyone, oldest first.
    pub async fn users(&self) -> Result<Vec<User>, AccountError> {
        let mut users: Vec<User> = self.all(Table::Users).await?;
        users.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(users)
    }

    async fn all<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<T>, AccountError> {
        let records = self
            .store
            .all(table)
            .await
            .map_err(failed("reading accounts"))?;
        records
            .iter()
            .map(|bytes| serde_json::from_slice(bytes))
            .collect::<Result<_, _>>()
            .map_err(|error| failed("reading accounts")(error.into()))
    }

    async fn save_user(&self, user: &User) -> Result<(), AccountError> {
        let saved = self.write(Table::Users, user.id.as_str(), user, None).await;
        // A role, a password (its sessions' epoch) or a name changed: none of it may linger.
        self.recent.forget_all();
        saved
    }

    async fn other_admins(&self, than: &UserId) -> Result<usize, AccountError> {
        Ok(self
            .users()
            .await?
            .iter()
            .filter(|user| user.is_admin() && !user.is_pending() && &user.id != than)
            .count())
    }

    /// An admin changes someone's role or name.
    pub async fn update_user(
        &self,
        id: &UserId,
        role: Option<Role>,
        name: Option<String>,
    ) -> Result<User, AccountError> {
        let mut user = self
            .user(id)
            .await?
            .ok_or_else(|| AccountError::NotFound(format!("no user with id '{id}'")))?;
        if role == Some(Role::Member) && user.is_admin() && self.other_admins(id).await? == 0 {
            return Err(AccountError::LastAdmin);
        }
        user.role = role.unwrap_or(user.role);
        user.name = name.unwrap_or(user.name);
        self.save_user(&user).await?;
        Ok(user)
    }

    /// Removes a person: their sessions and tokens stop working, and their photos become
    /// `successor`'s.
    pub async fn remove_user(&self, id: &UserId, successor: &User) -> Result<(), AccountError> {
        let user = self
            .user(id)
            .await?
            .ok_or_else(|| AccountError::NotFound(format!("no user with id '{id}'")))?;
        if user.is_admin() && self.other_admins(id).await? == 0 {
            return Err(AccountError::LastAdmin);
        }
        if &successor.id == id {
            // Their photos would go to nobody.
            return Err(AccountError::RemovingSelf);
        }
        // Their photos keep naming them; from now on that name leads to the successor.
        let handover = (id.clone(), successor.id.clone());
        self.write(Table::Successors, id.as_str(), &handover, None)
            .await?;
        // The record first: from here on no session or token of theirs authenticates.
        let removed = self
            .store
            .remove(Table::Users, id.as_str())
            .await
            .map_err(failed("removing the user"));
        self.recent.forget_all();
        removed?;
        let _ = self.store.remove(Table::Emails, user.email.as_str()).await;
        for token in self.token_records().await? {
            if &token.user_id == id {
                let _ = self.store.remove(Table::Tokens, &token.digest).await;
            }
        }
        Ok(())
    }

    /// A person changes their own profile.
    pub async fn update_profile(
        &self,
        mut user: User,
        change: ProfileChange,
    ) -> Result<User, AccountError> {
        if let Some(name) = change.name {
            user.name = parse_name(&name)?;
        }
        if let Some(email) = change.notify_email {
            user.notify.email = Notify::parse_email(&email).map_err(invalid("notify_email"))?;
        }
        if let Some(chat) = change.notify_telegram {
            user.notify.telegram =
                Notify::parse_telegram(&chat).map_err(invalid("notify_telegram"))?;
        }
        if let Some(lang) = change.lang {
            user.notify.lang = lang.parse().map_err(invalid("lang"))?;
        }
        self.save_user(&user).await?;
        Ok(user)
    }

    /// Sets a new password: every session made before stops working.
    pub async fn set_password(
        &self,
        mut user: User,
        password: &Password,
    ) -> Result<User, AccountError> {
        user.password_hash = Some(
            self.hasher
                .hash(password)
                .await
                .map_err(failed("hashing the password"))?,
        );
        user.session_epoch = user.session_epoch.wrapping_add(1);
        self.save_user(&user).await?;
        Ok(user)
    }

    /// Checks that `password` is the person's current one (before they may set another).
    pub async fn verify_password(&self, user: &User, password: &str) -> Result<(), AccountError> {
        let matches = self
            .hasher
            .verify(password, user.password_hash.as_deref())
            .await
            .map_err(failed("checking the password"))?;
        if matches {
            Ok(())
        } else {
            Err(AccountError::BadCredentials)
        }
    }

    // ---- invites ----

    /// Adds a pending person and answers the secret of their invite link.
    pub async fn invite(
        &self,
        email: Email,
        name: String,
        role: Role,
    ) -> Result<(User, String, DateTime<Utc>), AccountError> {
        let user = self.add_user(email, name, role, None).await?;
        let token = secret::generate("");
        let invite = Invite {
            user_id: user.id.clone(),
            expires_at: Utc::now() + INVITE_VALID,
        };
        self.write(
            Table::Invites,
            &secret::digest(&token),
            &invite,
            Some(INVITE_VALID),
        )
        .await?;
        Ok((user, token, invite.expires_at))
    }

    /// Who an invite is for, without using it.
    pub async fn invited(&self, token: &str) -> Result<(User, DateTime<Utc>), AccountError> {
        let invite: Invite = self
            .read(Table::Invites, &secret::digest(token))
            .await?
            .ok_or(AccountError::InviteNotFound)?;
        let user = self
            .user(&invite.user_id)
            .await?
            .filter(User::is_pending)
            .ok_or(AccountError::InviteNotFound)?;
        Ok((user, invite.expires_at))
    }

    /// Uses an invite: sets the person's password. Works once.
    pub async fn accept_invite(
        &self,
        token: &str,
        password: &Password,
    ) -> Result<User, AccountError> {
        // Checked before it is used up, so a weak password does not burn the link.
        let (user, _) = self.invited(token).await?;
        let taken = self
            .store
            .take(Table::Invites, &secret::digest(token))
            .await
            .map_err(failed("accepting the invite"))?;
        if taken.is_none() {
            return Err(AccountError::InviteNotFound);
        }
        self.set_password(user, password).await
    }

    // ---- logins and sessions ----

    /// Checks an e-mail and password. Counts failures per account and per client address,
    /// and refuses to check at all past the limits, so guessing is slow whatever the answer.
    pub async fn log_in(
        &self,
        email: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<User, AccountError> {
        let email = Email::parse(email).ok();
        let account_key = email.as_ref().map(|email| format!("account:{email}"));
        let client_key = client.map(|client| format!("client:{client}"));
        for (key, limit) in [
            (&account_key, MAX_FAILURES_PER_ACCOUNT),
            (&client_key, MAX_FAILURES_PER_CLIENT),
        ] {
            let Some(key) = key else { continue };
            let counted = self
                .store
                .counter(Table::Attempts, key)
                .await
                .map_err(failed("checking login attempts"))?;
            if let Some((failures, left)) = counted {
                if failures >= limit {
                    return Err(AccountError::TooManyAttempts {
                        retry_after: left.max(Duration::from_secs(1)),
                    });
                }
            }
        }
        let user = match &email {
            Some(email) => self.user_by_email(email).await?,
            None => None,
        };
        let hash = user.as_ref().and_then(|user| user.password_hash.as_deref());
        let matches = self
            .hasher
            .verify(password, hash)
            .await
            .map_err(failed("checking the password"))?;
        match user {
            Some(user) if matches => {
                if let Some(key) = &account_key {
                    let _ = self.store.remove(Table::Attempts, key).await;
                }
                Ok(user)
            }
            _ => {
                for key in [&account_key, &client_key].into_iter().flatten() {
                    self.store
                        .count(Table::Attempts, key, ATTEMPT_WINDOW)
                        .await
                        .map_err(failed("counting login attempts"))?;
                }
                Err(AccountError::BadCredentials)
            }
        }
    }

    /// Starts a session; answers its secret, for the cookie.
    pub async fn start_session(&self, user: &User) -> Result<String, AccountError> {
        let secret = secret::generate("");
        let session = Session {
            user_id: user.id.clone(),
            epoch: user.session_epoch,
            last_seen: Utc::now(),
        };
        self.write(
            Table::Sessions,
            &secret::digest(&secret),
            &session,
            Some(SESSION_IDLE),
        )
        .await?;
        Ok(secret)
    }

    /// The person a session cookie belongs to; `None` for an unknown, ended or expired one.
    pub async fn session_user(&self, secret: &str) -> Result<Option<User>, AccountError> {
        let key = secret::digest(secret);
        let remembered = format!("session:{key}");
        if let Some(user) = self.recent.get(&remembered) {
            return Ok(Some(user));
        }
        let (generation, started) = (self.recent.generation(), Instant::now());
        let Some(mut session) = self.read::<Session>(Table::Sessions, &key).await? else {
            return Ok(None);
        };
        let user = self
            .user(&session.user_id)
            .await?
            .filter(|user| user.session_epoch == session.epoch && !user.is_pending());
        let Some(user) = user else {
            let _ = self.store.remove(Table::Sessions, &key).await;
            return Ok(None);
        };
        let idle = (Utc::now() - session.last_seen)
            .to_std()
            .unwrap_or_default();
        if idle > TOUCH_EVERY {
            session.last_seen = Utc::now();
            self.write(Table::Sessions, &key, &session, Some(SESSION_IDLE))
                .await?;
        }
        self.recent
            .remember(remembered, user.clone(), generation, started);
        Ok(Some(user))
    }

    pub async fn end_session(&self, secret: &str) -> Result<(), AccountError> {
        let removed = self
            .store
            .remove(Table::Sessions, &secret::digest(secret))
            .await
            .map_err(failed("logging out"));
        self.recent.forget_all();
        removed.map(drop)
    }

    // ---- API tokens ----

    pub async fn create_token(
        &self,
        user: &User,
        name: &str,
    ) -> Result<(ApiToken, String), AccountError> {
        let name = parse_name(name).map_err(|_| AccountError::Invalid {
            field: "name",
            problem: "give the token a name of 1 to 100 characters".into(),
        })?;
        let secret = secret::generate("gallery_");
        let record = TokenRecord {
            id: RecordId::new(),
            user_id: user.id.clone(),
            name,
            created_at: Utc::now(),
            last_used_at: None,
            digest: secret::digest(&secret),
        };
        self.write(Table::Tokens, &record.digest, &record, None)
            .await?;
        Ok((record.view(), secret))
    }

    async fn token_records(&self) -> Result<Vec<TokenRecord>, AccountError> {
        self.all(Table::Tokens).await
    }

    pub async fn tokens_of(&self, user: &UserId) -> Result<Vec<ApiToken>, AccountError> {
        let mut tokens: Vec<ApiToken> = self
            .token_records()
            .await?
            .iter()
            .filter(|token| &token.user_id == user)
            .map(TokenRecord::view)
            .collect();
        tokens.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(tokens)
    }

    pub async fn revoke_token(&self, user: &UserId, id: &RecordId) -> Result<(), AccountError> {
        let token = self
            .token_records()
            .await?
            .into_iter()
            .find(|token| &token.user_id == user && &token.id == id)
            .ok_or_else(|| AccountError::NotFound(format!("no token with id '{id}'")))?;
        let removed = self
            .store
            .remove(Table::Tokens, &token.digest)
            .await
            .map_err(failed("revoking the token"));
        self.recent.forget_all();
        removed.map(drop)
    }

    /// The person a bearer token belongs to; `None` for an unknown or revoked one.
    pub async fn token_user(&self, secret: &str) -> Result<Option<User>, AccountError> {
        let key = secret::digest(secret);
        let remembered = format!("token:{key}");
        if let Some(user) = self.recent.get(&remembered) {
            return Ok(Some(user));
        }
        let (generation, started) = (self.recent.generation(), Instant::now());
        let Some(mut token) = self.read::<TokenRecord>(Table::Tokens, &key).await? else {
            return Ok(None);
        };
        let Some(user) = self.user(&token.user_id).await? else {
            return Ok(None);
        };
        let stale = token
            .last_used_at
            .map_or(true, |used| (Utc::now() - used).num_seconds() > 60);
        if stale {
            token.last_used_at = Some(Utc::now());
            // Best effort: "last used" is a hint, never a reason to refuse a request.
            let _ = self.write(Table::Tokens, &key, &token, None).await;
        }
        self.recent
            .remember(remembered, user.clone(), generation, started);
        Ok(Some(user))
    }

    // ---- share links ----

    pub async fn create_link(
        &self,
        photo: &PhotoId,
        by: &User,
        lifetime: Duration,
    ) -> Result<(ShareLink, String), AccountError> {
        let secret = secret::generate("");
        let now = Utc::now();
        let record = ShareLink {
            id: RecordId::new(),
            photo_id: photo.clone(),
            created_by: by.id.clone(),
            created_at: now,
            expires_at: now + lifetime,
            digest: secret::digest(&secret),
        };
        self.write(Table::Links, &record.digest, &record, Some(lifetime))
            .await?;
        Ok((record, secret))
    }

    pub async fn links_of(&self, photo: &PhotoId) -> Result<Vec<ShareLink>, AccountError> {
        let mut links: Vec<ShareLink> = self
            .all::<ShareLink>(Table::Links)
            .await?
            .into_iter()
            .filter(|link| &link.photo_id == photo)
            .collect();
        links.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(links)
    }

    pub async fn revoke_link(&self, photo: &PhotoId, id: &RecordId) -> Result<(), AccountError> {
        let link = self
            .links_of(photo)
            .await?
            .into_iter()
            .find(|link| &link.id == id)
            .ok_or_else(|| AccountError::NotFound(format!("no share link with id '{id}'")))?;
        self.store
            .remove(Table::Links, &link.digest)
            .await
            .map_err(failed("revoking the link"))?;
        Ok(())
    }

    /// Every link of a deleted photo goes with it.
    pub async fn revoke_links_of(&self, photo: &PhotoId) -> Result<(), AccountError> {
        for link in self.links_of(photo).await? {
            let _ = self.store.remove(Table::Links, &link.digest).await;
        }
        Ok(())
    }

    /// The link a share URL's secret opens.
    pub async fn shared(&self, secret: &str) -> Result<ShareLink, AccountError> {
        let record: ShareLink = self
            .read(Table::Links, &secret::digest(secret))
            .await?
            .ok_or(AccountError::LinkNotFound)?;
        if record.expires_at <= Utc::now() {
            return Err(AccountError::LinkNotFound);
        }
        Ok(record)
    }

    // ---- operators ----

    /// Creates the admin from `GALLERY_ADMIN_EMAIL` / `…_PASSWORD` unless the gallery is
    /// already set up; answers whether it did.
    pub async fn bootstrap_admin(
        &self,
        email: &Email,
        password: &Password,
    ) -> Result<bool, AccountError> {
        if !self.setup_required().await? {
            return Ok(false);
        }
        let name = email
            .as_str()
            .split('@')
            .next()
            .unwrap_or("admin")
            .to_owned();
        match self.set_up(email.clone(), name, password).await {
            Ok(_) => Ok(true),
            // Another replica set it up at the same moment.
            Err(AccountError::AlreadySetUp) => Ok(false),
            Err(error) => Err(error),
        }
    }
}

/// Who owns photos now: each photo records its uploader as they were at upload; this says
/// what that owner is called today, or, for a person since removed, who took their photos
/// over. Read once per listing, so renaming or removing a person touches no photo record (and
/// never races a worker writing one).
pub struct Owners {
    names: HashMap<UserId, String>,
    successors: HashMap<UserId, UserId>,
}

impl Owners {
    /// The photo's owner as of now.
    pub fn resolve(&self, recorded: &Owner) -> Owner {
        let mut id = &recorded.id;
        // A chain of removals is short; the bound guards against a cycle in a corrupt store.
        for _ in 0..16 {
            if let Some(name) = self.names.get(id) {
                return Owner {
                    id: id.clone(),
                    name: name.clone(),
                };
            }
            match self.successors.get(id) {
                Some(next) => id = next,
                None => break,
            }
        }
        recorded.clone()
    }

    /// Sets every photo's owner to who owns it now.
    pub fn apply(&self, photos: &mut [Photo]) {
        for photo in photos {
            if let Some(owner) = &photo.owner {
                photo.owner = Some(self.resolve(owner));
            }
        }
    }
}

impl Accounts {
    pub async fn owners(&self) -> Result<Owners, AccountError> {
        let names = self
            .users()
            .await?
            .into_iter()
            .map(|user| (user.id, user.name))
            .collect();
        let successors = self
            .all::<(UserId, UserId)>(Table::Successors)
            .await?
            .into_iter()
            .collect();
        Ok(Owners { names, successors })
    }
}
