//! `/api/tokens`: API tokens for scripts (`Authorization: Bearer TOKEN`). A token is shown
//! once, when made; afterwards only its name, creation and last use.

use actix_web::{delete, get, post, web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::domain::RecordId;

#[get("/api/tokens")]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let tokens = state.backends.accounts.tokens_of(&caller.user.id).await?;
    Ok(HttpResponse::Ok().json(json!({ "tokens": tokens })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenForm {
    name: String,
}

#[post("/api/tokens")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    form: web::Json<TokenForm>,
) -> Result<HttpResponse, ApiError> {
    let (token, secret) = state
        .backends
        .accounts
        .create_token(&caller.user, &form.name)
        .await?;
    Ok(HttpResponse::Created().json(json!({
        "id": token.id,
        "name": token.name,
        "created_at": token.created_at,
        "token": secret,
    })))
}

#[delete("/api/tokens/{id}")]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = RecordId::parse(&path)
        .map_err(|_| ApiError::not_found(format!("no token with id '{path}'")))?;
    state
        .backends
        .accounts
        .revoke_token(&caller.user.id, &id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
