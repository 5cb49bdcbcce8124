//! `GET /api/photos/{id}/original` and `/api/photos/{id}/variants/{name}`: image bytes
//! streamed from object storage, for logged-in people only. An original is written once, so
//! the photo id is a valid strong ETag. A variant is written again only when it is made
//! again (reprocessing), which changes its recorded size: its ETag carries that
//! (`VariantInfo::version`), and so does the URL the API gives for it (`?v=`), so it can be
//! cached as immutable. Both are private: only the browser that loaded them may keep them,
//! never a shared cache.

use actix_web::http::header::{self, EntityTag, Header as _, IfNoneMatch};
use actix_web::{get, web, HttpRequest, HttpResponse};

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::domain::Photo;

const IMMUTABLE: &str = "private, max-age=31536000, immutable";
/// What share links answer with: checked again on every view, so a revoked or expired link
/// stops showing the photo at once.
pub const REVALIDATE: &str = "private, no-cache";

#[get("/api/photos/{id}/original")]
pub async fn original(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let photo = super::view::load(&state, &path).await?;
    let tag = EntityTag::new_strong(photo.id.to_string());
    serve_image(
        &state,
        &request,
        &Photo::original_key(&photo.id),
        &photo.content_type,
        tag,
        "private, max-age=86400",
    )
    .await
}

#[get("/api/photos/{id}/variants/{name}")]
pub async fn variant(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (id, name) = path.into_inner();
    let photo = super::view::load(&state, &id).await?;
    let Some(info) = photo.variants.get(&name) else {
        return Err(ApiError::not_found(format!(
            "photo {id} has no variant '{name}' (yet)"
        )));
    };
    let tag = EntityTag::new_strong(format!("{}-{name}-{}", photo.id, info.version()));
    serve_image(
        &state,
        &request,
        &Photo::variant_key(&photo.id, &name),
        &info.content_type,
        tag,
        IMMUTABLE,
    )
    .await
}

/// Streams the object at `key`, or answers 304 when the browser holds `tag` already.
pub async fn serve_image(
    state: &AppState,
    request: &HttpRequest,
    key: &str,
    content_type: &str,
    tag: EntityTag,
    cache_control: &str,
) -> Result<HttpResponse, ApiError> {
    if let Ok(IfNoneMatch::Items(tags)) = IfNoneMatch::parse(request) {
        if tags.iter().any(|candidate| candidate.strong_eq(&tag)) {
            return Ok(HttpResponse::NotModified()
                .insert_header(header::ETag(tag))
                .insert_header((header::CACHE_CONTROL, cache_control))
                .finish());
        }
    }
    let stream = state
        .backends
        .storage
        .stream(key)
        .await
        .map_err(|e| ApiError::unavailable("reading the image", &e))?
        .ok_or_else(|| ApiError::not_found("the image is gone from storage"))?;
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(header::ETag(tag))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .streaming(stream))
}
