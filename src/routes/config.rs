//! `GET /api/config`: the limits and choices the page needs to check uploads before sending,
//! and the names it shows (ops, variants): the page spells none of them itself.

use actix_web::{get, web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::domain::Op;
use crate::resize::Format;

#[get("/api/config")]
pub async fn config(state: web::Data<AppState>) -> HttpResponse {
    let limits = &state.limits;
    let accepted_types = [Format::Jpeg, Format::Png, Format::Webp].map(|f| f.content_type());
    let ops = Op::ALL.map(|op| op.as_str());
    HttpResponse::Ok().json(json!({
        "max_upload_bytes": limits.max_upload_bytes,
        "max_pixels": limits.max_pixels,
        "max_decode_bytes": limits.max_decode_bytes,
        "max_files": limits.max_files,
        "accepted_types": accepted_types,
        "ops": ops,
        "variants": state.variants,
    }))
}
