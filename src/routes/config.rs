//! `GET /api/config`: the limits and choices the page needs to check uploads before sending,
//! the names it shows (ops, variants): the page spells none of them itself; and whether the
//! gallery still needs its first account. Open to anyone: the login page needs it.

use actix_web::{get, web, HttpResponse};
use serde_json::json;

use super::error::ApiError;
use super::AppState;
use crate::domain::Op;
use crate::resize::Format;

#[get("/api/config")]
pub async fn config(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let limits = &state.limits;
    let accepted_types = [Format::Jpeg, Format::Png, Format::Webp].map(|f| f.content_type());
    let ops = Op::ALL.map(|op| op.as_str());
    let setup_required = state.backends.accounts.setup_required().await?;
    Ok(HttpResponse::Ok().json(json!({
        "setup_required": setup_required,
        "max_upload_bytes": limits.max_upload_bytes,
        "max_pixels": limits.max_pixels,
        "max_decode_bytes": limits.max_decode_bytes,
        "max_files": limits.max_files,
        "max_request_bytes": limits.max_request_bytes,
        "accepted_types": accepted_types,
        "ops": ops,
        "variants": state.variants,
    })))
}
