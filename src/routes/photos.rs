//! `/api/photos`: upload (multipart), list newest first, show one, delete.

use std::collections::BTreeMap;

use actix_multipart::Multipart;
use actix_web::{delete, get, post, web, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::images::{original_url, variant_url};
use super::AppState;
use crate::domain::{Notify, Photo, PhotoId, Status};
use crate::error::ApiError;
use crate::ingest;
use crate::resize::Op;

/// A photo as the API shows it.
#[derive(Debug, Serialize)]
pub struct PhotoView {
    pub id: PhotoId,
    pub filename: String,
    pub content_type: String,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
    pub status: Status,
    pub ops: Vec<Op>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub original_url: String,
    pub variants: BTreeMap<String, VariantView>,
}

#[derive(Debug, Serialize)]
pub struct VariantView {
    pub url: String,
    pub width: u32,
    pub height: u32,
}

impl From<Photo> for PhotoView {
    fn from(photo: Photo) -> Self {
        let variants = photo
            .variants
            .iter()
            .map(|(name, info)| {
                let view = VariantView {
                    url: variant_url(&photo.id, name),
                    width: info.width,
                    height: info.height,
                };
                (name.clone(), view)
            })
            .collect();
        PhotoView {
            original_url: original_url(&photo.id),
            created_at: photo
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            id: photo.id,
            filename: photo.filename,
            content_type: photo.content_type,
            bytes: photo.bytes,
            width: photo.width,
            height: photo.height,
            status: photo.status,
            ops: photo.ops,
            error: photo.error,
            variants,
        }
    }
}

/// A file as received, before it is checked.
struct Part {
    filename: String,
    content: Result<Bytes, ApiError>,
}

#[post("/api/photos")]
pub async fn upload(
    state: web::Data<AppState>,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let settings = &state.settings;
    let mut parts = Vec::new();
    let mut ops = Vec::new();
    let (mut notify_email, mut notify_telegram) = (None, None);
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| {
            ApiError::bad_request("bad_multipart", format!("malformed multipart body: {e}"))
        })?;
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                if parts.len() >= settings.max_files {
                    return Err(ApiError::bad_request(
                        "too_many_files",
                        format!("at most {} files per request", settings.max_files),
                    ));
                }
                let filename = field
                    .content_disposition()
                    .and_then(|cd| cd.get_filename())
                    .unwrap_or("unnamed")
                    .to_owned();
                let content = read_limited(&mut field, settings.max_upload_bytes).await?;
                let content = content.ok_or_else(|| ingest::too_large(settings));
                parts.push(Part { filename, content });
            }
            "ops" => ops = ingest::parse_ops(&read_text(&mut field, "ops").await?)?,
            "notify_email" => notify_email = Some(read_text(&mut field, "notify_email").await?),
            "notify_telegram" => {
                notify_telegram = Some(read_text(&mut field, "notify_telegram").await?)
            }
            _ => {
                // Unknown fields are drained and ignored, like HTML forms expect.
                read_limited(&mut field, 0).await?;
            }
        }
    }
    if parts.is_empty() {
        return Err(ApiError::bad_request(
            "no_file",
            "no file in the request (send multipart/form-data parts named 'file')",
        ));
    }

    let notify = Notify::parse(notify_email.as_deref(), notify_telegram.as_deref())
        .map_err(|problem| ApiError::bad_request("bad_notify", problem))?;
    let request = ingest::UploadRequest { ops, notify };
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for part in parts {
        let outcome = match part.content {
            Ok(bytes) => {
                ingest::accept(
                    &state.backends,
                    settings,
                    part.filename.clone(),
                    bytes,
                    &request,
                )
                .await
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(photo) => accepted
                .push(json!({"id": photo.id, "status": photo.status, "url": format!("/api/photos/{}", photo.id)})),
            Err(error) => rejected.push((part.filename, error)),
        }
    }
    let rejected_json: Vec<_> = rejected
        .iter()
        .map(|(filename, e)| json!({"filename": filename, "error": e.message, "code": e.code}))
        .collect();
    if accepted.is_empty() {
        // Nothing stored: answer with the first problem's own status.
        let (filename, first) = &rejected[0];
        return Ok(HttpResponse::build(first.status).json(json!({
            "error": format!("{filename}: {}", first.message),
            "code": first.code,
            "photos": [],
            "rejected": rejected_json,
        })));
    }
    Ok(HttpResponse::Accepted().json(json!({"photos": accepted, "rejected": rejected_json})))
}

/// Reads a short text field.
async fn read_text(field: &mut actix_multipart::Field, name: &str) -> Result<String, ApiError> {
    let bytes = read_limited(field, 1024).await?.ok_or_else(|| {
        ApiError::bad_request("bad_field", format!("the {name} field is too long"))
    })?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request("bad_field", format!("the {name} field is not text")))
}

/// Reads a field whole; `None` when it is longer than `limit` (the rest is drained so the
/// next parts can still be read).
async fn read_limited(
    field: &mut actix_multipart::Field,
    limit: u64,
) -> Result<Option<Bytes>, ApiError> {
    let mut buffer = BytesMut::new();
    let mut over = false;
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("bad_multipart", format!("upload interrupted: {e}"))
        })?;
        if over || (buffer.len() + chunk.len()) as u64 > limit {
            over = true;
            buffer.clear();
            continue;
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok((!over).then(|| buffer.freeze()))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

#[get("/api/photos")]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(30);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_limit",
            "limit must be between 1 and 100",
        ));
    }
    let cursor = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(cursor) => Some(
            PhotoId::parse(cursor)
                .map_err(|_| ApiError::bad_request("bad_cursor", "cursor is not a photo id"))?,
        ),
        None => None,
    };
    let page = state
        .backends
        .index
        .list(limit, cursor.as_ref())
        .await
        .map_err(|e| ApiError::unavailable("listing photos", &e))?;
    let photos: Vec<PhotoView> = page.photos.into_iter().map(PhotoView::from).collect();
    Ok(HttpResponse::Ok().json(json!({"photos": photos, "next_cursor": page.next_cursor})))
}

#[get("/api/photos/{id}")]
pub async fn show(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let photo = load(&state, &path).await?;
    Ok(HttpResponse::Ok().json(PhotoView::from(photo)))
}

#[delete("/api/photos/{id}")]
pub async fn remove(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let photo = load(&state, &path).await?;
    let backends = &state.backends;
    // Metadata first: from here on nothing points at the objects, whatever happens next.
    backends
        .index
        .remove(&photo.id)
        .await
        .map_err(|e| ApiError::unavailable("deleting the photo", &e))?;
    let names = state.settings.variants().into_iter().map(|v| v.name);
    for key in photo.object_keys(names) {
        if let Err(error) = backends.storage.delete(&key).await {
            tracing::error!(%key, error = format!("{error:#}"), "object of a deleted photo left in storage");
        }
    }
    backends.announce_deleted(&photo).await;
    Ok(HttpResponse::NoContent().finish())
}

/// The photo with this id, or 404 for an unknown or malformed id.
pub async fn load(state: &AppState, id: &str) -> Result<Photo, ApiError> {
    let not_found = || ApiError::not_found(format!("no photo with id '{id}'"));
    let id = PhotoId::parse(id).map_err(|_| not_found())?;
    state
        .backends
        .index
        .get(&id)
        .await
        .map_err(|e| ApiError::unavailable("reading the photo", &e))?
        .ok_or_else(not_found)
}
