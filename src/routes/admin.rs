//! `/api/admin/*`: operating the gallery from the page (its admin view), for admins.
//! Reprocessing photos on the bulk lane (`POST /api/admin/reprocess`), retrying one failed
//! photo (`POST /api/admin/photos/{id}/retry`), what waits in the job queue
//! (`GET /api/admin/queues`), the failed photos with their errors (`GET /api/admin/failed`)
//! and the jobs finished per minute by all workers (`GET /api/admin/activity`). The work
//! itself is `reprocess`'s, shared with the CLI; the lists and counts are the index's.

use actix_web::{get, post, web, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Caller;
use super::error::ApiError;
use super::view::{paging, PhotoView};
use super::AppState;
use crate::domain::{Owner, Photo, PhotoId};
use crate::error_code::ErrorCode;
use crate::reprocess::{self, ReprocessError, Request, Scope};

/// The minutes `GET /api/admin/activity` answers: the last hour.
const ACTIVITY_MINUTES: usize = 60;

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

#[derive(Debug, Deserialize)]
pub struct FailedQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A failed photo as the admin page lists it.
#[derive(Debug, Serialize)]
pub struct FailedPhoto {
    pub id: PhotoId,
    pub filename: String,
    /// Why its last attempt failed.
    pub error: Option<String>,
    /// Attempts of its last job (a reprocessed or retried photo starts again at 1).
    pub attempts: u32,
    pub owner: Option<Owner>,
    /// When it was uploaded.
    pub created_at: String,
}

impl From<Photo> for FailedPhoto {
    fn from(photo: Photo) -> Self {
        FailedPhoto {
            created_at: PhotoView::timestamp(&photo.created_at),
            id: photo.id,
            filename: photo.filename,
            error: photo.error,
            attempts: photo.attempts,
            owner: photo.owner,
        }
    }
}

/// The failed photos, newest upload first, a page at a time like `GET /api/photos` (`limit`, 1 to
/// 100, 30 by default; `cursor`): `{"photos": [{"id", "filename", "error", "attempts",
/// "owner", "created_at"}], "next_cursor"}`. A photo leaves the list when it is retried,
/// reprocessed or deleted (see `PhotoIndex::failed` for photos that failed before the list
/// was kept).
#[get("/api/admin/failed")]
pub async fn failed(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<FailedQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let (limit, cursor) = paging(query.limit, query.cursor.as_deref())?;
    let page = state
        .backends
        .index
        .failed(limit, cursor.as_ref())
        .await
        .map_err(|error| ApiError::unavailable("listing the failed photos", &error))?;
    let mut photos = page.photos;
    state.backends.accounts.owners().await?.apply(&mut photos);
    let photos: Vec<FailedPhoto> = photos.into_iter().map(FailedPhoto::from).collect();
    Ok(HttpResponse::Ok().json(json!({"photos": photos, "next_cursor": page.next_cursor})))
}

/// The jobs finished by all workers in each of the last 60 minutes, oldest first, the last
/// being the current minute so far: `{"minutes": [{"minute", "done", "failed"}]}` (`minute`:
/// its start; `failed`: failed for good, the photo marked failed; retried attempts are not
/// counted).
#[get("/api/admin/activity")]
pub async fn activity(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let minutes = state
        .backends
        .index
        .finished_per_minute(Utc::now(), ACTIVITY_MINUTES)
        .await
        .map_err(|error| ApiError::unavailable("reading the jobs per minute", &error))?;
    Ok(HttpResponse::Ok().json(json!({ "minutes": minutes })))
}
