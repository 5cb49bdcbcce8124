//! Accepting one uploaded file: check it, store the original, record its metadata, enqueue
//! its job — in that order, so a worker never sees a job without metadata. A failure at any
//! step undoes the earlier ones: a photo is either fully accepted or leaves nothing behind.

use actix_web::http::StatusCode;
use bytes::Bytes;
use chrono::Utc;

use crate::backends::Backends;
use crate::configuration::Settings;
use crate::domain::{Job, Notify, Photo, PhotoId, Status};
use crate::error::ApiError;
use crate::resize::{self, Op, ProbeError};

/// Checks what can be checked without decoding: type from the bytes, size, pixel count.
pub fn validate(bytes: &[u8], settings: &Settings) -> Result<resize::Probe, ApiError> {
    if bytes.len() as u64 > settings.max_upload_bytes {
        return Err(too_large(settings));
    }
    if bytes.is_empty() {
        return Err(ApiError::bad_request("empty_file", "the file is empty"));
    }
    let probe = resize::probe(bytes).map_err(|error| match error {
        ProbeError::UnsupportedType => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_type",
            error.to_string(),
        ),
        ProbeError::BadHeader(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_image",
            error.to_string(),
        ),
    })?;
    if probe.pixels() > settings.max_pixels {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_pixels",
            format!(
                "image is {}×{} = {} pixels, more than the limit of {}",
                probe.width,
                probe.height,
                probe.pixels(),
                settings.max_pixels
            ),
        ));
    }
    Ok(probe)
}

pub fn too_large(settings: &Settings) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "file is larger than the limit of {} bytes",
            settings.max_upload_bytes
        ),
    )
}

/// What applies to every file of one upload request.
#[derive(Debug, Clone, Default)]
pub struct UploadRequest {
    pub ops: Vec<Op>,
    pub notify: Notify,
}

/// Stores one checked file and enqueues its processing.
pub async fn accept(
    backends: &Backends,
    settings: &Settings,
    filename: String,
    bytes: Bytes,
    request: &UploadRequest,
) -> Result<Photo, ApiError> {
    let probe = validate(&bytes, settings)?;
    let id = PhotoId::new();
    let photo = Photo {
        id: id.clone(),
        filename,
        content_type: probe.format.content_type().to_owned(),
        bytes: bytes.len() as u64,
        width: probe.width,
        height: probe.height,
        status: Status::Queued,
        ops: request.ops.clone(),
        created_at: Utc::now(),
        error: None,
        attempts: 0,
        variants: Default::default(),
        notify: request.notify.clone(),
    };
    let original_key = Photo::original_key(&id);
    if let Err(error) = backends
        .storage
        .put(&original_key, bytes, &photo.content_type)
        .await
    {
        // A failed PUT may still have landed; make sure it did not.
        let _ = backends.storage.delete(&original_key).await;
        return Err(ApiError::unavailable("storing the original", &error));
    }
    if let Err(error) = backends.index.insert(&photo).await {
        undo(backends, &photo, false).await;
        return Err(ApiError::unavailable("recording the photo", &error));
    }
    // Announced before the job exists: publishes are confirmed, so `photo.queued` is in every
    // listener's queue before a worker can say `photo.processing`, and pages see them in order.
    backends.announce(&photo).await;
    if let Err(error) = backends
        .queue
        .publish(&Job::first(id, request.ops.clone()))
        .await
    {
        undo(backends, &photo, true).await;
        backends.announce_deleted(&photo).await;
        return Err(ApiError::unavailable("queueing the photo", &error));
    }
    Ok(photo)
}

async fn undo(backends: &Backends, photo: &Photo, recorded: bool) {
    if recorded {
        if let Err(error) = backends.index.remove(&photo.id).await {
            tracing::error!(id = %photo.id, error = format!("{error:#}"), "could not undo metadata of a failed upload");
        }
    }
    if let Err(error) = backends
        .storage
        .delete(&Photo::original_key(&photo.id))
        .await
    {
        tracing::error!(id = %photo.id, error = format!("{error:#}"), "could not undo original of a failed upload");
    }
}

/// Parses the `ops` form field: a comma list, applied in order; blanks are ignored.
pub fn parse_ops(field: &str) -> Result<Vec<Op>, ApiError> {
    field
        .split(',')
        .map(str::trim)
        .filter(|op| !op.is_empty())
        .map(|op| {
            op.parse::<Op>()
                .map_err(|e| ApiError::bad_request("unknown_op", e.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_parse_in_order_and_reject_unknown_names() {
        assert_eq!(
            parse_ops(" rotate90, grayscale,,").ok(),
            Some(vec![Op::Rotate90, Op::Grayscale])
        );
        assert_eq!(parse_ops("").ok(), Some(vec![]));
        let error = parse_ops("rotate90,sepia")
            .err()
            .map(|e| (e.status, e.message));
        assert_eq!(
            error,
            Some((
                StatusCode::BAD_REQUEST,
                "unknown operation 'sepia' (expected rotate90, rotate180, rotate270, grayscale)"
                    .into()
            ))
        );
    }
}
