//! People: a `User` of the gallery with their `Role`, login `Email`, language and notification
//! contacts, and the `Owner` a photo records. Constructors reject what a client could send
//! wrong (an e-mail that is not one, a name too long, a password too short).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Notify, UserId};

/// What a person may do: members see every photo and manage their own; admins manage all
/// photos and the people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

impl FromStr for Role {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            other => Err(format!("unknown role '{other}' (expected admin or member)")),
        }
    }
}

/// The language a person reads the page and their notifications in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lang {
    #[default]
    #[serde(rename = "en")]
    En,
    #[serde(rename = "pt-BR")]
    PtBr,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::PtBr => "pt-BR",
        }
    }
}

impl FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "en" => Ok(Lang::En),
            "pt-BR" | "pt-br" | "pt" => Ok(Lang::PtBr),
            other => Err(format!("unknown language '{other}' (expected en or pt-BR)")),
        }
    }
}

/// An e-mail address, trimmed and lower-cased (it is the login, so `Ana@X.org` and
/// `ana@x.org` are one person). Checked for shape only: whether it receives mail is the
/// mail server's business.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && !email.chars().any(|c| {
                c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')
            })
            && email.split_once('@').is_some_and(|(user, domain)| {
                !user.is_empty() && domain.contains('.') && !domain.contains('@')
            });
        if valid {
            Ok(Email(email))
        } else {
            Err(format!("'{}' is not an e-mail address", raw.trim()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Email::parse(&value)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

/// A display name: trimmed, 1 to 100 characters, no control characters.
pub fn clean_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.chars().count() > 100 {
        return Err("the name is longer than 100 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("the name holds control characters".into());
    }
    Ok(name.to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: String,
    pub role: Role,
    /// argon2id PHC string; `None` while an invited person has not yet chosen a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Where this person's notifications go, and in which language.
    #[serde(default)]
    pub notify: Notify,
    pub created_at: DateTime<Utc>,
    /// Bumped when the password changes: sessions made before stop working.
    #[serde(default)]
    pub session_epoch: u32,
}

impl User {
    /// A person as the photos they upload name them.
    pub fn as_owner(&self) -> Owner {
        Owner {
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }

    pub fn role_name(&self) -> &'static str {
        match self.role {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Invited, and has not set a password yet.
    pub fn is_pending(&self) -> bool {
        self.password_hash.is_none()
    }
}

/// Who uploaded a photo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub id: UserId,
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Ana@Example.COM ").map(String::from),
            Ok("ana@example.com".to_owned())
        );
        for bad in [
            "ana",
            "ana@localhost",
            "a b@c.d",
            "<x>@y.z",
            "a@b.c,d@e.f",
            "@x.org",
            "a@b@c.d",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn names_are_bounded() {
        assert_eq!(clean_name("  Ana  "), Ok("Ana".to_owned()));
        assert!(clean_name(" ").is_err());
        assert!(clean_name("a\nb").is_err());
        assert!(clean_name(&"x".repeat(101)).is_err());
    }
}
