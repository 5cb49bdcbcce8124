//! `gallery user …`: the operator's way to manage people without the page — on the
//! configured backends (Redis, or the data dir's embedded store, which a running `serve`
//! holds: then it says so and exits non-zero).

use std::io::BufRead;

use crate::accounts::{self, Accounts, Password};
use crate::backends::{BackendSettings, Backends};
use crate::cli::UserAction;
use crate::domain::{Role, User};

pub async fn manage_users(settings: &BackendSettings, action: UserAction) -> anyhow::Result<()> {
    let (_, accounts) = Backends::connect_index(settings).await?;
    match action {
        UserAction::Add { email, name, admin } => {
            let email = accounts::parse_email(&email)?;
            let name = accounts::parse_name(&name)?;
            let role = if admin { Role::Admin } else { Role::Member };
            let has_admin = accounts.users().await?.iter().any(User::is_admin);
            if !has_admin && role != Role::Admin {
                anyhow::bail!("the first person must be an admin: add --admin");
            }
            let password = password_from_stdin()?;
            let user = accounts
                .add_user(email, name, role, Some(&password))
                .await?;
            println!("added {} ({})", user.email, user.role_name());
        }
        UserAction::List => {
            for user in accounts.users().await? {
                let state = if user.is_pending() { " (invited)" } else { "" };
                println!(
                    "{}\t{}\t{}{state}\t{}",
                    user.email,
                    user.name,
                    user.role_name(),
                    user.created_at.format("%Y-%m-%d")
                );
            }
        }
        UserAction::Remove { email } => {
            let user = find(&accounts, &email).await?;
            let successor = accounts
                .users()
                .await?
                .into_iter()
                .find(|other| other.is_admin() && !other.is_pending() && other.id != user.id)
                .ok_or_else(|| anyhow::anyhow!("{email} is the only admin: add another first"))?;
            accounts.remove_user(&user.id, &successor).await?;
            println!(
                "removed {email}; their photos are now {}'s",
                successor.email
            );
        }
        UserAction::ResetPassword { email } => {
            let user = find(&accounts, &email).await?;
            let password = password_from_stdin()?;
            accounts.set_password(user, &password).await?;
            println!("new password set for {email}; their sessions have ended");
        }
    }
    Ok(())
}

async fn find(accounts: &Accounts, email: &str) -> anyhow::Result<User> {
    let parsed = accounts::parse_email(email)?;
    accounts
        .user_by_email(&parsed)
        .await?
        .ok_or_else(|| anyhow::anyhow!("nobody has the e-mail {email}"))
}

/// The first line of stdin, as a checked password (so scripts can pipe it in).
fn password_from_stdin() -> anyhow::Result<Password> {
    eprintln!(
        "password (one line on stdin, at least {} characters):",
        Password::MIN_CHARS
    );
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let line = line.trim_end_matches(['\n', '\r']);
    Password::parse(line).map_err(anyhow::Error::msg)
}
