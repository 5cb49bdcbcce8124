//! `GET /api/config`: the limits and choices the page needs to check uploads before sending.

use actix_web::{get, web, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::resize::{Format, Op};

#[get("/api/config")]
pub async fn config(state: web::Data<AppState>) -> HttpResponse {
    let settings = &state.settings;
    let variants: Vec<_> = settings
        .variants()
        .into_iter()
        .map(|v| json!({"name": v.name, "max_side": v.max_side}))
        .collect();
    let accepted_types = [Format::Jpeg, Format::Png, Format::Webp].map(|f| f.content_type());
    let ops = Op::ALL.map(|op| op.as_str());
    HttpResponse::Ok().json(json!({
        "max_upload_bytes": settings.max_upload_bytes,
        "max_pixels": settings.max_pixels,
        "max_files": settings.max_files,
        "accepted_types": accepted_types,
        "ops": ops,
        "variants": variants,
    }))
}
