//! `/healthz` (the process is alive) and `/readyz` (its backends answer).

use actix_web::{get, web, HttpResponse};
use serde_json::json;

use super::AppState;

#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let unready = state.backends.unready().await;
    if unready.is_empty() {
        return HttpResponse::Ok().json(json!({"status": "ready"}));
    }
    let names: Vec<&str> = unready.iter().map(|(name, _)| *name).collect();
    let details: serde_json::Map<String, serde_json::Value> = unready
        .into_iter()
        .map(|(name, why)| (name.to_owned(), why.into()))
        .collect();
    HttpResponse::ServiceUnavailable().json(json!({
        "error": format!("not ready: {} unreachable", names.join(", ")),
        "code": "unavailable",
        "unreachable": details,
    }))
}
