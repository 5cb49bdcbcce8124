//! Share links: the owner of a photo (or an admin) makes a link that shows it to anyone who
//! has it, until it expires or is revoked — `/api/photos/{id}/links` — and the public side:
//! `GET /s/{token}` (the share page), `/s/{token}/photo` (what it shows: `shown`), `/s/{token}/preview`
//! and `/s/{token}/original` (the bytes).

use std::time::Duration;

use actix_files::NamedFile;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{delete, get, post, route, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::error::ApiError;
use super::images::{serve_image, Image, REVALIDATE};
use super::view::{load, load_owned};
use super::AppState;
use crate::accounts::{AccountError, ShareLink, LINK_LIFETIME};
use crate::domain::{Photo, RecordId};
use crate::error_code::ErrorCode;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkForm {
    expires_in_s: u64,
}

#[post("/api/photos/{id}/links")]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    form: web::Json<LinkForm>,
) -> Result<HttpResponse, ApiError> {
    let photo = load_owned(&state, &path).await?;
    caller.require_owner_or_admin(&photo)?;
    if !LINK_LIFETIME.contains(&form.expires_in_s) {
        return Err(ApiError::new(
            ErrorCode::BadField,
            format!(
                "expires_in_s must be between {} and {} seconds",
                LINK_LIFETIME.start(),
                LINK_LIFETIME.end()
            ),
        ));
    }
    let (link, secret) = state
        .backends
        .accounts
        .create_link(
            &photo.id,
            &caller.user,
            Duration::from_secs(form.expires_in_s),
        )
        .await?;
    Ok(HttpResponse::Created().json(json!({
        "id": link.id,
        "url": format!("/s/{secret}"),
        "expires_at": link.expires_at,
    })))
}

#[get("/api/photos/{id}/links")]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let photo = load_owned(&state, &path).await?;
    caller.require_owner_or_admin(&photo)?;
    let links = state.backends.accounts.links_of(&photo.id).await?;
    let links: Vec<_> = links
        .iter()
        .map(|link| json!({"id": link.id, "created_at": link.created_at, "expires_at": link.expires_at}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "links": links })))
}

#[delete("/api/photos/{id}/links/{link}")]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, link) = path.into_inner();
    let photo = load_owned(&state, &id).await?;
    caller.require_owner_or_admin(&photo)?;
    let link = RecordId::parse(&link)
        .map_err(|_| ApiError::not_found(format!("no share link with id '{link}'")))?;
    state
        .backends
        .accounts
        .revoke_link(&photo.id, &link)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The page, which reads the token from its own address.
#[get("/s/{token}")]
pub async fn page(state: web::Data<AppState>) -> actix_web::Result<NamedFile> {
    Ok(NamedFile::open_async(state.static_dir.join("share.html")).await?)
}

/// The photo a share token opens; 404 `link_not_found` for anything else, a malformed token
/// included (it is never looked up), and for a photo deleted since.
async fn shared_photo(state: &AppState, token: &str) -> Result<(Photo, ShareLink), ApiError> {
    let well_formed = token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(AccountError::LinkNotFound.into());
    }
    let link = state.backends.accounts.shared(token).await?;
    let photo = load(state, link.photo_id.as_str())
        .await
        .map_err(|_| ApiError::from(AccountError::LinkNotFound))?;
    Ok((photo, link))
}

/// The largest variant, which the share page shows.
fn preview_name(state: &AppState) -> Option<&str> {
    state
        .variants
        .iter()
        .max_by_key(|variant| variant.max_side)
        .map(|variant| variant.name.as_str())
}

#[get("/s/{token}/photo")]
pub async fn shown(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (photo, link) = shared_photo(&state, &path).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "filename": photo.filename,
            "width": photo.width,
            "height": photo.height,
            "status": photo.status,
            "expires_at": link.expires_at,
            "preview_url": format!("/s/{}/preview", path.as_str()),
            "original_url": format!("/s/{}/original", path.as_str()),
        })))
}

#[route("/s/{token}/preview", method = "GET", method = "HEAD")]
pub async fn preview(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (photo, _) = shared_photo(&state, &path).await?;
    let name = preview_name(&state).unwrap_or_default();
    let image = Image::variant(&photo, name)
        .map_err(|_| ApiError::not_found("the preview is not ready yet"))?;
    serve_image(&state, &request, &image, REVALIDATE).await
}

#[route("/s/{token}/original", method = "GET", method = "HEAD")]
pub async fn original(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (photo, _) = shared_photo(&state, &path).await?;
    let mut response = serve_image(&state, &request, &Image::original(&photo), REVALIDATE).await?;
    // ASCII only in the header: the name was cleaned of control characters on upload, and
    // anything else outside ASCII is not worth a second encoding here.
    let ascii: String = photo
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(ascii)],
    };
    if let Ok(value) = disposition.to_string().parse() {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
