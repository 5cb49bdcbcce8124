//! The catalog of stable error codes: every refusal the API sends carries one of these in
//! `{"error": ..., "code": ...}`, so clients can act on it without parsing messages. A new
//! kind of refusal gets its code here (and its HTTP status in `routes::error`); a code, once
//! published, never changes meaning.

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    // The uploaded file
    /// Not JPEG, PNG or WebP by its bytes.
    UnsupportedType,
    /// Over the per-file byte limit.
    TooLarge,
    /// Over the pixel limit, read from the header.
    TooManyPixels,
    /// Decoding would need more memory than the decode budget, figured from the header.
    TooLargeToDecode,
    /// The header cannot be read, or the image carries oversized metadata.
    BadImage,
    EmptyFile,
    // The upload request
    UnknownOp,
    BadMultipart,
    BadField,
    TooManyFiles,
    NoFile,
    /// The whole upload request is over its byte limit.
    RequestTooLarge,
    /// The client sent the upload too slowly, and was cut off.
    UploadTooSlow,
    /// A form field the API does not take (the old per-upload notify targets).
    UnknownField,
    /// A JSON body that does not parse, or is too large.
    BadJson,
    // Query strings
    BadLimit,
    BadCursor,
    /// `sha256=` that is not 64 hexadecimal digits.
    BadSha256,
    BadQuery,
    // Live events
    /// Too many `/api/events` streams open, from this client or in all.
    TooManyStreams,
    // Accounts and access
    /// No session or token, or one that is unknown, ended or expired.
    Unauthorized,
    /// Logged in, but not allowed to do this.
    Forbidden,
    /// A cookie-authenticated change sent from another site.
    CrossOrigin,
    /// Wrong e-mail or password (the same answer for both).
    BadCredentials,
    /// Too many failed logins for the account or from the client.
    TooManyAttempts,
    /// `POST /api/setup` once the gallery has accounts.
    AlreadySetUp,
    EmailTaken,
    /// Removing or demoting the only admin.
    LastAdmin,
    WeakPassword,
    InviteNotFound,
    LinkNotFound,
    // Operating it
    /// Retrying a photo that has not failed.
    NotFailed,
    // Anything
    NotFound,
    /// A backend failed; the request may work later.
    Unavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnsupportedType => "unsupported_type",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::TooManyPixels => "too_many_pixels",
            ErrorCode::TooLargeToDecode => "too_large_to_decode",
            ErrorCode::BadImage => "bad_image",
            ErrorCode::EmptyFile => "empty_file",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::BadMultipart => "bad_multipart",
            ErrorCode::BadField => "bad_field",
            ErrorCode::TooManyFiles => "too_many_files",
            ErrorCode::NoFile => "no_file",
            ErrorCode::RequestTooLarge => "request_too_large",
            ErrorCode::UploadTooSlow => "upload_too_slow",
            ErrorCode::UnknownField => "unknown_field",
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadLimit => "bad_limit",
            ErrorCode::BadCursor => "bad_cursor",
            ErrorCode::BadSha256 => "bad_sha256",
            ErrorCode::BadQuery => "bad_query",
            ErrorCode::TooManyStreams => "too_many_streams",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::CrossOrigin => "cross_origin",
            ErrorCode::BadCredentials => "bad_credentials",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::AlreadySetUp => "already_set_up",
            ErrorCode::EmailTaken => "email_taken",
            ErrorCode::LastAdmin => "last_admin",
            ErrorCode::WeakPassword => "weak_password",
            ErrorCode::InviteNotFound => "invite_not_found",
            ErrorCode::LinkNotFound => "link_not_found",
            ErrorCode::NotFailed => "not_failed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}
