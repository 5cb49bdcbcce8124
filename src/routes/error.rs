//! API errors: the one place where refusals become HTTP. Each carries a stable `ErrorCode`
//! (the catalog is `error_code`) and a message naming the problem, and is sent as JSON
//! `{"error": ..., "code": ...}` with the status its code maps to here.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::accounts::AccountError;
use crate::error_code::ErrorCode;
use crate::ingest::IngestError;
use crate::reprocess::ReprocessError;

#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    #[serde(rename = "error")]
    pub message: String,
    /// Seconds for `Retry-After` on a 429 (10 unless the refusal knows better).
    #[serde(skip)]
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "log in first (a session cookie, or Authorization: Bearer TOKEN)",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// A backend failed: the cause is logged in full but the client only learns which step.
    pub fn unavailable(what: &str, cause: &anyhow::Error) -> Self {
        tracing::error!(error = format!("{cause:#}"), "{what} failed");
        // The store is named (the operator's first question), the cause's details are not.
        let message = match crate::deadline::failing_store(cause) {
            Some(store) => format!("{what} failed ({store}); try again later"),
            None => format!("{what} failed; try again later"),
        };
        Self::new(ErrorCode::Unavailable, message)
    }

    pub fn status(&self) -> StatusCode {
        status_of(self.code)
    }
}

/// The HTTP status of every code.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::TooLarge | ErrorCode::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UploadTooSlow => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::TooManyPixels | ErrorCode::TooLargeToDecode | ErrorCode::BadImage => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ErrorCode::EmptyFile
        | ErrorCode::UnknownOp
        | ErrorCode::BadMultipart
        | ErrorCode::BadField
        | ErrorCode::TooManyFiles
        | ErrorCode::NoFile
        | ErrorCode::UnknownField
        | ErrorCode::BadJson
        | ErrorCode::WeakPassword
        | ErrorCode::BadLimit
        | ErrorCode::BadCursor
        | ErrorCode::BadSha256
        | ErrorCode::BadQuery => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized | ErrorCode::BadCredentials => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden | ErrorCode::CrossOrigin => StatusCode::FORBIDDEN,
        ErrorCode::AlreadySetUp
        | ErrorCode::EmailTaken
        | ErrorCode::LastAdmin
        | ErrorCode::NotFailed => StatusCode::CONFLICT,
        ErrorCode::NotFound | ErrorCode::InviteNotFound | ErrorCode::LinkNotFound => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::TooManyStreams | ErrorCode::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match &error {
            IngestError::Unavailable { step, cause } => ApiError::unavailable(step, cause),
            _ => ApiError::new(error.code(), error.to_string()),
        }
    }
}

impl From<ReprocessError> for ApiError {
    fn from(error: ReprocessError) -> Self {
        match &error {
            ReprocessError::Unavailable { step, cause } => ApiError::unavailable(step, cause),
            _ => ApiError::new(error.code(), error.to_string()),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(error: AccountError) -> Self {
        match &error {
            AccountError::Unavailable { step, cause } => ApiError::unavailable(step, cause),
            AccountError::TooManyAttempts { retry_after } => ApiError {
                retry_after: Some(retry_after.as_secs().max(1)),
                ..ApiError::new(error.code(), error.to_string())
            },
            _ => ApiError::new(error.code(), error.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status());
        if self.status() == StatusCode::TOO_MANY_REQUESTS {
            let seconds = self.retry_after.unwrap_or(10);
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(self)
    }
}
