//! `GET`/`HEAD /api/photos/{id}/original` and `/api/photos/{id}/variants/{name}`: image bytes
//! for logged-in people only, with their length, validators and caching rules. An original is
//! written once, so the photo id is a valid strong ETag, and its upload time its
//! `Last-Modified`. A variant is written again only when it is made again (reprocessing),
//! which changes its recorded digest: its ETag carries that (`VariantInfo::version`), and so
//! does the URL the API gives for it (`?v=`), so it can be cached as immutable. Both are
//! private: only the browser that loaded them may keep them, never a shared cache.
//!
//! How the bytes are read: an object up to `GALLERY_IMAGE_CACHE_ITEM_KB` (every thumbnail and
//! preview) is read whole, in one storage call, and kept in the `ImageCache`, so a page's
//! thumbnails cost no storage trip the second time; a larger one (an original) is streamed
//! with its length declared. Who may see the photo is checked first, every time: the record
//! is read per request (a deleted photo is gone at once), and the cache only ever answers
//! for a request already allowed.

use actix_web::body::SizedStream;
use actix_web::http::header::{
    self, EntityTag, Header as _, HttpDate, IfModifiedSince, IfNoneMatch,
};
use actix_web::http::Method;
use actix_web::{route, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;
use crate::domain::Photo;
use crate::storage::ByteStream;

const IMMUTABLE: &str = "private, max-age=31536000, immutable";
/// What share links answer with: checked again on every view, so a revoked or expired link
/// stops showing the photo at once.
pub const REVALIDATE: &str = "private, no-cache";

/// One image as its record describes it: where it is and what a response says about it.
pub struct Image<'a> {
    pub key: String,
    pub content_type: &'a str,
    /// The length recorded when it was stored.
    pub length: u64,
    pub tag: EntityTag,
    /// When it was written, where that is known for sure (an original's upload).
    pub modified: Option<DateTime<Utc>>,
}

impl<'a> Image<'a> {
    pub fn original(photo: &'a Photo) -> Self {
        Image {
            key: Photo::original_key(&photo.id),
            content_type: &photo.content_type,
            length: photo.bytes,
            tag: EntityTag::new_strong(photo.id.to_string()),
            modified: Some(photo.created_at),
        }
    }

    /// The variant `name`, or 404 while the photo has none by that name.
    pub fn variant(photo: &'a Photo, name: &str) -> Result<Self, ApiError> {
        let Some(info) = photo.variants.get(name) else {
            return Err(ApiError::not_found(format!(
                "photo {} has no variant '{name}' (yet)",
                photo.id
            )));
        };
        Ok(Image {
            key: Photo::variant_key(&photo.id, name),
            content_type: &info.content_type,
            length: info.bytes,
            tag: EntityTag::new_strong(format!("{}-{name}-{}", photo.id, info.version())),
            modified: None,
        })
    }
}

#[route("/api/photos/{id}/original", method = "GET", method = "HEAD")]
pub async fn original(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let photo = super::view::load(&state, &path).await?;
    serve_image(
        &state,
        &request,
        &Image::original(&photo),
        "private, max-age=86400",
    )
    .await
}

#[route("/api/photos/{id}/variants/{name}", method = "GET", method = "HEAD")]
pub async fn variant(
    _caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (id, name) = path.into_inner();
    let photo = super::view::load(&state, &id).await?;
    serve_image(&state, &request, &Image::variant(&photo, &name)?, IMMUTABLE).await
}

/// Answers with the image's bytes (no body for `HEAD`, the same headers), or 304 when the
/// browser holds this very image already.
pub async fn serve_image(
    state: &AppState,
    request: &HttpRequest,
    image: &Image<'_>,
    cache_control: &str,
) -> Result<HttpResponse, ApiError> {
    let fresh = not_modified(request, &image.tag, image.modified);
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header(header::ETag(image.tag.clone()))
        .insert_header((header::CACHE_CONTROL, cache_control));
    if let Some(modified) = image.modified {
        response.insert_header(header::LastModified(http_date(modified)));
    }
    if fresh {
        return Ok(response.finish());
    }
    response
        .content_type(image.content_type)
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    let storage = &state.backends.storage;
    if state.images.reads_whole(image.length) {
        let bytes = state
            .images
            .get_or_load(image.tag.tag(), image.length, storage.get(&image.key))
            .await
            .map_err(|e| ApiError::unavailable("reading the image", &e))?
            .ok_or_else(gone)?;
        return Ok(response.body(bytes));
    }
    let object = storage
        .stream(&image.key)
        .await
        .map_err(|e| ApiError::unavailable("reading the image", &e))?
        .ok_or_else(gone)?;
    let length = object.length.unwrap_or(image.length);
    if request.method() == Method::HEAD {
        // Nothing will be sent: the length is all a HEAD needs.
        let nothing = futures_util::stream::empty::<std::io::Result<bytes::Bytes>>();
        return Ok(response.body(SizedStream::new(length, nothing)));
    }
    Ok(response.body(SizedStream::new(length, exactly(object.bytes, length))))
}

fn gone() -> ApiError {
    ApiError::not_found("the image is gone from storage")
}

fn http_date(time: DateTime<Utc>) -> HttpDate {
    let seconds = u64::try_from(time.timestamp()).unwrap_or_default();
    HttpDate::from(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
}

/// Whether the browser's copy is this image: `If-None-Match` decides when sent (any of its
/// tags, compared weakly as RFC 9110 says for it, or `*`); only without it does
/// `If-Modified-Since`, for images whose write time is known.
fn not_modified(request: &HttpRequest, tag: &EntityTag, modified: Option<DateTime<Utc>>) -> bool {
    if request.headers().contains_key(header::IF_NONE_MATCH) {
        return match IfNoneMatch::parse(request) {
            Ok(IfNoneMatch::Any) => true,
            Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|candidate| candidate.weak_eq(tag)),
            Err(_) => false,
        };
    }
    let (Some(modified), Ok(IfModifiedSince(since))) = (modified, IfModifiedSince::parse(request))
    else {
        return false;
    };
    let since = std::time::SystemTime::from(since);
    let modified_s = u64::try_from(modified.timestamp()).unwrap_or_default();
    since >= std::time::UNIX_EPOCH + std::time::Duration::from_secs(modified_s)
}

/// The stream, failing if it ends short of `length` bytes or runs past it: the length was
/// declared up front (taken from the record where the store does not tell it), so a body
/// that disagrees must break the response, not pass for the image.
fn exactly(bytes: ByteStream, length: u64) -> impl Stream<Item = std::io::Result<bytes::Bytes>> {
    let mut remaining = length;
    let mut ended = false;
    bytes
        .map(Some)
        .chain(futures_util::stream::once(async { None }))
        .filter_map(move |chunk| {
            let item = match chunk {
                _ if ended => None,
                Some(Ok(chunk)) => {
                    let size = chunk.len() as u64;
                    if size > remaining {
                        ended = true;
                        Some(Err(std::io::Error::other(
                            "the stored image is longer than recorded",
                        )))
                    } else {
                        remaining -= size;
                        Some(Ok(chunk))
                    }
                }
                Some(Err(error)) => {
                    ended = true;
                    Some(Err(error))
                }
                None if remaining > 0 => Some(Err(std::io::Error::other(
                    "the stored image is shorter than recorded",
                ))),
                None => None,
            };
            std::future::ready(item)
        })
}
