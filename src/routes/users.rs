//! People, for admins: `/api/users` lists, invites (a one-time link where the person sets
//! their password), changes a role or name, removes. And the invite itself, open to whoever
//! holds its link: `GET /invite/{token}` (the page), `GET`/`POST /api/invites/{token}`.

use actix_files::NamedFile;
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::error::ApiError;
use super::session::{logged_in, user_view};
use super::AppState;
use crate::accounts::{self, AccountError};
use crate::domain::{Role, UserId};
use crate::error_code::ErrorCode;

#[get("/api/users")]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let users = state.backends.accounts.users().await?;
    let users: Vec<_> = users.iter().map(user_view).collect();
    Ok(HttpResponse::Ok().json(json!({ "users": users })))
}

fn parse_role(raw: &str) -> Result<Role, ApiError> {
    raw.parse()
        .map_err(|problem: String| ApiError::new(ErrorCode::BadField, format!("role: {problem}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteForm {
    email: String,
    name: String,
    role: Option<String>,
}

#[post("/api/users")]
pub async fn invite(
    state: web::Data<AppState>,
    caller: Caller,
    form: web::Json<InviteForm>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let email = accounts::parse_email(&form.email)?;
    let name = accounts::parse_name(&form.name)?;
    let role = form.role.as_deref().map(parse_role).transpose()?;
    let (user, token, expires_at) = state
        .backends
        .accounts
        .invite(email, name, role.unwrap_or(Role::Member))
        .await?;
    tracing::info!(user = %user.id, by = %caller.user.id, "person invited");
    Ok(HttpResponse::Created().json(json!({
        "user": user_view(&user),
        "invite_url": format!("/invite/{token}"),
        "expires_at": expires_at,
    })))
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|_| ApiError::not_found(format!("no user with id '{raw}'")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    role: Option<String>,
    name: Option<String>,
}

#[patch("/api/users/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    form: web::Json<UserChange>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let id = user_id(&path)?;
    let role = form.role.as_deref().map(parse_role).transpose()?;
    let name = form.name.as_deref().map(accounts::parse_name).transpose()?;
    let user = state.backends.accounts.update_user(&id, role, name).await?;
    Ok(HttpResponse::Ok().json(user_view(&user)))
}

#[delete("/api/users/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let id = user_id(&path)?;
    state
        .backends
        .accounts
        .remove_user(&id, &caller.user)
        .await?;
    tracing::info!(user = %id, by = %caller.user.id, "person removed");
    Ok(HttpResponse::NoContent().finish())
}

/// The page, which reads the token from its own address.
#[get("/invite/{token}")]
pub async fn invite_page(state: web::Data<AppState>) -> actix_web::Result<NamedFile> {
    Ok(NamedFile::open_async(state.static_dir.join("index.html")).await?)
}

/// Invite tokens are 64 hex digits; anything else is not looked up at all.
fn invite_token(raw: &str) -> Result<&str, ApiError> {
    if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(raw)
    } else {
        Err(AccountError::InviteNotFound.into())
    }
}

#[get("/api/invites/{token}")]
pub async fn invited(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (user, expires_at) = state
        .backends
        .accounts
        .invited(invite_token(&path)?)
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "email": user.email,
        "name": user.name,
        "expires_at": expires_at,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptForm {
    password: String,
}

#[post("/api/invites/{token}")]
pub async fn accept(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: web::Json<AcceptForm>,
) -> Result<HttpResponse, ApiError> {
    let token = invite_token(&path)?;
    let password = accounts::parse_password(&form.password)?;
    let user = state
        .backends
        .accounts
        .accept_invite(token, &password)
        .await?;
    tracing::info!(user = %user.id, "invite accepted");
    logged_in(&state, &request, HttpResponse::Ok(), &user).await
}
