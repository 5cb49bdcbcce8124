//! `/api/admin/*`: operating the gallery from the page, for admins. Reprocessing photos on the
//! bulk lane (`POST /api/admin/reprocess`), retrying one failed photo
//! (`POST /api/admin/photos/{id}/retry`), and what waits in the job queue
//! (`GET /api/admin/queues`). The work itself is `reprocess`'s, shared with the CLI.

use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiError;
use super::view::PhotoView;
use super::AppState;
use crate::error_code::ErrorCode;
use crate::reprocess::{self, ReprocessError, Request, Scope};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReprocessForm {
    #[serde(default)]
    missing: bool,
    #[serde(default)]
    all: bool,
    /// A day (`2024-05-01`) or an RFC 3339 time: only photos created at or after it.
    since: Option<String>,
}

impl ReprocessForm {
    fn request(&self) -> Result<Request, ApiError> {
        let scope = match (self.missing, self.all) {
            (true, false) => Scope::Missing,
            (false, true) => Scope::All,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::BadField,
                    "say which photos: {\"missing\": true} (lacking a variant, or failed) or {\"all\": true}",
                ))
            }
        };
        let since = self
            .since
            .as_deref()
            .map(reprocess::parse_since)
            .transpose()
            .map_err(|problem| ApiError::new(ErrorCode::BadField, format!("since: {problem}")))?;
        Ok(Request { scope, since })
    }
}

/// Queues the photos asked for on the bulk lane; `202 {"queued", "in_flight"}` once they all
/// are (`in_flight`: skipped, their job already on its way).
#[post("/api/admin/reprocess")]
pub async fn reprocess_photos(
    state: web::Data<AppState>,
    caller: Caller,
    form: web::Json<ReprocessForm>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let request = form.request()?;
    // Its own task: an admin who closes the page must not stop it half way (it would be
    // safe, but they would not know how far it got).
    let backends = state.backends.clone();
    let variants = state.variants.clone();
    let run = tokio::spawn(async move { reprocess::run(&backends, &variants, &request).await });
    let summary = run.await.unwrap_or_else(|crashed| {
        Err(ReprocessError::Unavailable {
            step: "queueing the photos",
            cause: anyhow::anyhow!("the reprocessing task failed: {crashed}"),
        })
    })?;
    tracing::info!(by = %caller.user.id, queued = summary.queued, "reprocessing asked for");
    Ok(HttpResponse::Accepted().json(summary))
}

/// Queues one failed photo again, on the upload lane; `202` with the photo, now queued.
#[post("/api/admin/photos/{id}/retry")]
pub async fn retry(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let mut photo = reprocess::retry(&state.backends, &path).await?;
    tracing::info!(id = %photo.id, by = %caller.user.id, "failed photo retried");
    state
        .backends
        .accounts
        .owners()
        .await?
        .apply(std::slice::from_mut(&mut photo));
    Ok(HttpResponse::Accepted().json(PhotoView::from(photo)))
}

/// What waits: `{"upload", "bulk", "retrying", "dead"}` (see `queue::Depths`).
#[get("/api/admin/queues")]
pub async fn queues(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let depths = state
        .backends
        .queue
        .depths()
        .await
        .map_err(|error| ApiError::unavailable("reading the queues", &error))?;
    Ok(HttpResponse::Ok().json(depths))
}
