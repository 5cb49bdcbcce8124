//! How the API shows a photo (`PhotoView`, with the URLs of its images), finds one by id, and
//! reads a page's `limit` and `cursor`: shared by every route that answers with or about a
//! photo.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::ApiError;
use super::AppState;
use crate::domain::{ContentHash, Op, Owner, Photo, PhotoId, Status, VariantInfo};
use crate::error_code::ErrorCode;

/// A photo as the API shows it.
#[derive(Debug, Serialize)]
pub struct PhotoView {
    pub id: PhotoId,
    pub filename: String,
    pub content_type: String,
    pub bytes: u64,
    /// SHA-256 of the original; `null` for photos from before it was recorded.
    pub sha256: Option<ContentHash>,
    pub width: u32,
    pub height: u32,
    pub status: Status,
    pub ops: Vec<Op>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub original_url: String,
    pub variants: BTreeMap<String, VariantView>,
    /// Who uploaded it; `null` for photos from before accounts.
    pub owner: Option<Owner>,
}

#[derive(Debug, Serialize)]
pub struct VariantView {
    pub url: String,
    pub width: u32,
    pub height: u32,
}

impl PhotoView {
    /// A time as the API writes it: RFC 3339, UTC, to the millisecond.
    pub fn timestamp(time: &DateTime<Utc>) -> String {
        time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

impl From<Photo> for PhotoView {
    fn from(photo: Photo) -> Self {
        let variants = photo
            .variants
            .iter()
            .map(|(name, info)| {
                let view = VariantView {
                    url: variant_url(&photo.id, name, info),
                    width: info.width,
                    height: info.height,
                };
                (name.clone(), view)
            })
            .collect();
        PhotoView {
            original_url: original_url(&photo.id),
            created_at: Self::timestamp(&photo.created_at),
            id: photo.id,
            filename: photo.filename,
            content_type: photo.content_type,
            bytes: photo.bytes,
            sha256: photo.sha256,
            width: photo.width,
            height: photo.height,
            status: photo.status,
            ops: photo.ops,
            error: photo.error,
            variants,
            owner: photo.owner,
        }
    }
}

/// Used by the photo JSON to point at the images.
pub fn original_url(id: &PhotoId) -> String {
    format!("/api/photos/{id}/original")
}

/// The variant's address, with its version: cached for a year, it must change when the
/// variant is made again.
pub fn variant_url(id: &PhotoId, name: &str, info: &VariantInfo) -> String {
    format!("/api/photos/{id}/variants/{name}?v={}", info.version())
}

/// A page's size (`limit`, 1 to 100, 30 by default) and where it starts (`cursor`: the
/// `next_cursor` of the page before, a photo id; empty or none for the first page).
pub fn paging(
    limit: Option<usize>,
    cursor: Option<&str>,
) -> Result<(usize, Option<PhotoId>), ApiError> {
    let limit = limit.unwrap_or(30);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::BadLimit,
            "limit must be between 1 and 100",
        ));
    }
    let cursor = match cursor.filter(|cursor| !cursor.is_empty()) {
        Some(cursor) => Some(
            PhotoId::parse(cursor)
                .map_err(|_| ApiError::new(ErrorCode::BadCursor, "cursor is not a photo id"))?,
        ),
        None => None,
    };
    Ok((limit, cursor))
}

/// The photo with this id as stored (its owner as recorded at upload); 404 for an unknown or
/// malformed id. For serving its bytes, which needs no owner.
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

/// The photo with its owner as of now (renamed, or a removed person's successor): for showing
/// it, and for deciding who may change it.
pub async fn load_owned(state: &AppState, id: &str) -> Result<Photo, ApiError> {
    let mut photo = load(state, id).await?;
    state
        .backends
        .accounts
        .owners()
        .await?
        .apply(std::slice::from_mut(&mut photo));
    Ok(photo)
}
