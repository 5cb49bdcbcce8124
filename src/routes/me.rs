//! `GET /api/me` and `PATCH /api/me`: one's own profile — name, notification contacts,
//! language — and a new password, given with the current one.

use actix_web::{get, patch, web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::auth::{set_session_cookie, Caller};
use super::error::ApiError;
use super::session::user_view;
use super::AppState;
use crate::accounts::{self, ProfileChange};

#[get("/api/me")]
pub async fn show(caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(user_view(&caller.user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeForm {
    name: Option<String>,
    notify_email: Option<String>,
    notify_telegram: Option<String>,
    lang: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
}

#[patch("/api/me")]
pub async fn update(
    state: web::Data<AppState>,
    request: HttpRequest,
    caller: Caller,
    form: web::Json<MeForm>,
) -> Result<HttpResponse, ApiError> {
    let form = form.into_inner();
    let accounts = &state.backends.accounts;
    // Checked before anything is saved: a refused request changes nothing.
    let new_password = form
        .password
        .as_deref()
        .map(accounts::parse_password)
        .transpose()?;
    let change = ProfileChange {
        name: form.name,
        notify_email: form.notify_email,
        notify_telegram: form.notify_telegram,
        lang: form.lang,
    };
    if new_password.is_some() {
        let current = form.current_password.as_deref().unwrap_or_default();
        accounts.verify_password(&caller.user, current).await?;
    }
    let user = accounts.update_profile(caller.user, change).await?;
    let Some(password) = &new_password else {
        return Ok(HttpResponse::Ok().json(user_view(&user)));
    };
    // Every session made with the old password ends, this one too: it gets a new cookie.
    let user = accounts.set_password(user, password).await?;
    let mut response = HttpResponse::Ok();
    if caller.session.is_some() {
        let secret = accounts.start_session(&user).await?;
        set_session_cookie(&mut response, &request, &secret);
    }
    Ok(response.json(user_view(&user)))
}
