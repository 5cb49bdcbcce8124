//! Logging in and out: `POST /api/setup` (the first account, while there is none),
//! `POST /api/session` (e-mail and password → the session cookie), `GET /api/session` (who am
//! I) and `DELETE /api/session`. How a person is shown: `user_view`.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{clear_session_cookie, set_session_cookie, Caller};
use super::error::ApiError;
use super::{client_address, AppState};
use crate::accounts::{self, AccountError};
use crate::domain::User;

/// A person as the API shows them: never their password hash.
pub fn user_view(user: &User) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "notify_email": user.notify.email,
        "notify_telegram": user.notify.telegram,
        "lang": user.notify.lang,
        "created_at": user.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "pending": user.is_pending(),
    })
}

/// Answers `{"user"}` with a new session cookie for `user`.
pub async fn logged_in(
    state: &AppState,
    request: &HttpRequest,
    mut response: actix_web::HttpResponseBuilder,
    user: &User,
) -> Result<HttpResponse, ApiError> {
    let secret = state.backends.accounts.start_session(user).await?;
    set_session_cookie(&mut response, request, &secret);
    Ok(response.json(json!({ "user": user_view(user) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupForm {
    email: String,
    name: String,
    password: String,
}

#[post("/api/setup")]
pub async fn setup(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Json<SetupForm>,
) -> Result<HttpResponse, ApiError> {
    let accounts = &state.backends.accounts;
    if !accounts.setup_required().await? {
        return Err(AccountError::AlreadySetUp.into());
    }
    let email = accounts::parse_email(&form.email)?;
    let name = accounts::parse_name(&form.name)?;
    let password = accounts::parse_password(&form.password)?;
    let user = accounts.set_up(email, name, &password).await?;
    tracing::info!(user = %user.id, "first account created");
    logged_in(&state, &request, HttpResponse::Created(), &user).await
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
}

#[post("/api/session")]
pub async fn log_in(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Json<LoginForm>,
) -> Result<HttpResponse, ApiError> {
    let client = client_address(&request, state.trust_proxy);
    let user = state
        .backends
        .accounts
        .log_in(&form.email, &form.password, client)
        .await?;
    logged_in(&state, &request, HttpResponse::Ok(), &user).await
}

#[get("/api/session")]
pub async fn current(caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "user": user_view(&caller.user) }))
}

#[delete("/api/session")]
pub async fn log_out(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    if let Some(secret) = &caller.session {
        state.backends.accounts.end_session(secret).await?;
    }
    let mut response = HttpResponse::NoContent();
    clear_session_cookie(&mut response);
    // Photos the browser kept (they are cacheable for the one who saw them) must not stay
    // viewable on a shared computer after logout.
    response.insert_header(("Clear-Site-Data", "\"cache\""));
    Ok(response.finish())
}
