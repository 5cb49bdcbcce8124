//! `/api/photos`: upload (multipart), list newest first (or those whose original has a given
//! SHA-256), show one, delete — for logged-in people. Everyone sees every photo (a family
//! gallery); a photo is deleted by the person who uploaded it or by an admin.

use std::time::Instant;

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::error::ApiError;
use super::form::{Checked, FormReader};
use super::view::{load_owned, paging, PhotoView};
use super::AppState;
use crate::cache::Page;
use crate::domain::{ContentHash, FileName, Op};
use crate::error_code::ErrorCode;
use crate::ingest::{self, IngestError};
use crate::metrics::UploadStage;

/// A file part as received: checked from its bytes and waiting on disk, or refused.
struct Part {
    filename: String,
    content: Result<Checked, IngestError>,
}

/// Counts every file accepted or refused (`gallery_uploads_*_total`), and a request refused
/// as a whole (too many files, a broken form, too slow...) once, by its code.
#[post("/api/photos")]
pub async fn upload(
    state: web::Data<AppState>,
    caller: Caller,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let answer = receive(&state, caller, request, body).await;
    if let Err(refused) = &answer {
        state.backends.metrics.upload_refused(refused.code);
    }
    answer
}

async fn receive(
    state: &AppState,
    caller: Caller,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limits = &state.limits;
    let mut reader = FormReader::new(limits, state.upload_pace);
    let mut form = reader.parts(request.headers(), body);
    let mut parts = Vec::new();
    let mut ops = Vec::new();
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| reader.failed(e))?;
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                if parts.len() >= limits.max_files {
                    return Err(ApiError::new(
                        ErrorCode::TooManyFiles,
                        format!("at most {} files per request", limits.max_files),
                    ));
                }
                // Cleaned before anything else sees it: rejections echo it back too.
                let filename = FileName::clean(
                    field
                        .content_disposition()
                        .and_then(|cd| cd.get_filename())
                        .unwrap_or(FileName::UNNAMED),
                )
                .into_string();
                let receiving = Instant::now();
                let content = match reader.file(&mut field, &state.spool).await? {
                    // Checked from its header now, so a bad file is not kept even on disk.
                    Ok(spooled) => {
                        let received = receiving.elapsed();
                        let checked = spooled.check(limits).await;
                        if checked.is_ok() {
                            let metrics = &state.backends.metrics;
                            metrics.upload_stage(UploadStage::Receive, received);
                        }
                        checked
                    }
                    Err(error) => Err(error),
                };
                parts.push(Part { filename, content });
            }
            "ops" => {
                ops = Op::parse_list(&reader.text(&mut field, "ops").await?)
                    .map_err(|e| ApiError::new(ErrorCode::UnknownOp, e.to_string()))?
            }
            // Notifications go to the uploader's own contacts (their profile), never to an
            // address a request names.
            "notify_email" | "notify_telegram" => {
                return Err(ApiError::new(
                    ErrorCode::UnknownField,
                    format!(
                        "the {name} field is gone: notifications go to the contacts in your \
                         profile (PATCH /api/me)"
                    ),
                ));
            }
            // Unknown fields are drained and ignored, like HTML forms expect.
            _ => reader.drain(&mut field).await?,
        }
    }
    if parts.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NoFile,
            "no file in the request (send multipart/form-data parts named 'file')",
        ));
    }

    let request = ingest::UploadRequest {
        ops,
        notify: caller.user.notify.clone(),
        owner: Some(caller.user.as_owner()),
    };
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for part in parts {
        let outcome = match part.content {
            Ok(checked) => {
                // Its own task: a client that disconnects drops this handler, and must not
                // stop a file half way between stored, recorded and queued.
                let backends = state.backends.clone();
                let request = request.clone();
                let filename = part.filename.clone();
                let accepting = tokio::spawn(async move {
                    let file = checked.received();
                    ingest::accept(&backends, filename, file, &request).await
                });
                accepting.await.unwrap_or_else(|crashed| {
                    Err(IngestError::Unavailable {
                        step: "accepting the file",
                        cause: anyhow::anyhow!("the ingest task failed: {crashed}"),
                    })
                })
            }
            Err(error) => Err(error),
        };
        let metrics = &state.backends.metrics;
        match outcome {
            Ok(photo) => {
                metrics.upload_accepted();
                accepted.push(json!({"id": photo.id, "status": photo.status, "url": format!("/api/photos/{}", photo.id)}))
            }
            Err(error) => {
                let error = ApiError::from(error);
                metrics.upload_refused(error.code);
                rejected.push((part.filename, error))
            }
        }
    }
    let rejected_json: Vec<_> = rejected
        .iter()
        .map(|(filename, e)| json!({"filename": filename, "error": e.message, "code": e.code}))
        .collect();
    if accepted.is_empty() {
        // Nothing stored: answer with the first problem's own status.
        let (filename, first) = &rejected[0];
        return Ok(HttpResponse::build(first.status()).json(json!({
            "error": format!("{filename}: {}", first.message),
            "code": first.code,
            "photos": [],
            "rejected": rejected_json,
        })));
    }
    Ok(HttpResponse::Accepted().json(json!({"photos": accepted, "rejected": rejected_json})))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
    /// Only the photos whose original has this SHA-256 (`gallery import` asks before sending
    /// a file); newest first, up to `limit`, on one page.
    sha256: Option<String>,
}

#[get("/api/photos")]
pub async fn list(
    _caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let (limit, cursor) = paging(query.limit, query.cursor.as_deref())?;
    let page = match query.sha256.as_deref() {
        Some(hash) => {
            let hash = ContentHash::parse(hash)
                .map_err(|e| ApiError::new(ErrorCode::BadSha256, format!("sha256: {e}")))?;
            let photos = state
                .backends
                .index
                .with_hash(&hash, limit)
                .await
                .map_err(|e| ApiError::unavailable("finding photos by hash", &e))?;
            Page {
                photos,
                next_cursor: None,
            }
        }
        None => state
            .backends
            .index
            .list(limit, cursor.as_ref())
            .await
            .map_err(|e| ApiError::unavailable("listing photos", &e))?,
    };
    let mut photos = page.photos;
    state.backends.accounts.owners().await?.apply(&mut photos);
    let photos: Vec<PhotoView> = photos.into_iter().map(PhotoView::from).collect();
    Ok(HttpResponse::Ok().json(json!({"photos": photos, "next_cursor": page.next_cursor})))
}

#[get("/api/photos/{id}")]
pub async fn show(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let photo = load_owned(&state, &path).await?;
    Ok(HttpResponse::Ok().json(PhotoView::from(photo)))
}

#[delete("/api/photos/{id}")]
pub async fn remove(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let photo = load_owned(&state, &path).await?;
    caller.require_owner_or_admin(&photo)?;
    let backends = &state.backends;
    // Metadata first: from here on nothing points at the objects, whatever happens next.
    backends
        .index
        .remove(&photo.id)
        .await
        .map_err(|e| ApiError::unavailable("deleting the photo", &e))?;
    let names = state.variants.iter().map(|v| v.name.clone());
    for key in photo.object_keys(names) {
        if let Err(error) = backends.storage.delete(&key).await {
            tracing::error!(%key, error = format!("{error:#}"), "object of a deleted photo left in storage");
        }
    }
    if let Err(error) = backends.accounts.revoke_links_of(&photo.id).await {
        // They lead nowhere already: a link to a photo that is gone answers 404.
        tracing::warn!(id = %photo.id, "share links of a deleted photo left: {error}");
    }
    backends.announce_deleted(&photo).await;
    Ok(HttpResponse::NoContent().finish())
}
