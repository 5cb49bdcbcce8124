//! `/healthz` (the process is alive) and `/readyz` (its backends answer). Both are open to
//! anyone, so `/readyz` names a failing store but never says why: the error text (a host, a
//! path) goes to the log only.

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
    for (name, why) in &unready {
        tracing::warn!("not ready: {name} unreachable: {why}");
    }
    let names: Vec<&str> = unready.iter().map(|(name, _)| *name).collect();
    HttpResponse::ServiceUnavailable().json(json!({
        "error": format!("not ready: {} unreachable", names.join(", ")),
        "code": "unavailable",
        "unreachable": names,
    }))
}
