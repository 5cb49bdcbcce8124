//! Who is calling: a handler that takes a `Caller` runs only for a logged-in person, found by
//! the `gallery_session` cookie or an `Authorization: Bearer` token; anyone else gets 401.
//!
//! A cookie is sent by the browser whatever page makes the request, so a change (POST, PATCH,
//! DELETE) that authenticates by cookie must come from the gallery's own page: its `Origin`
//! (or, without one, `Sec-Fetch-Site`) must be this site, else 403 `cross_origin`. A bearer
//! token is never sent by a browser on its own, so bearer requests need no such check. No
//! CORS headers are ever sent, so other sites cannot read any answer either.

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::{header, Method};
use actix_web::{web, FromRequest, HttpRequest, HttpResponseBuilder};
use futures_util::future::LocalBoxFuture;

use super::error::ApiError;
use super::AppState;
use crate::domain::{Photo, User};
use crate::error_code::ErrorCode;

pub const SESSION_COOKIE: &str = "gallery_session";

/// A logged-in person, and how they proved it.
pub struct Caller {
    pub user: User,
    /// The session secret, when the request came with the cookie (not a token).
    pub session: Option<String>,
}

impl Caller {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.user.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("only an admin may do this"))
        }
    }

    /// Members manage their own photos; admins every photo.
    pub fn require_owner_or_admin(&self, photo: &Photo) -> Result<(), ApiError> {
        let owns = photo
            .owner
            .as_ref()
            .is_some_and(|owner| owner.id == self.user.id);
        if owns || self.user.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "only the person who uploaded this photo, or an admin, may do this",
            ))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move { authenticate(&request).await })
    }
}

async fn authenticate(request: &HttpRequest) -> Result<Caller, ApiError> {
    let Some(state) = request.app_data::<web::Data<AppState>>() else {
        return Err(ApiError::unauthorized());
    };
    let accounts = &state.backends.accounts;
    if let Some(authorization) = request.headers().get(header::AUTHORIZATION) {
        let token = authorization
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty() && token.len() <= 256)
            .ok_or_else(ApiError::unauthorized)?;
        let user = accounts
            .token_user(token)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        return Ok(Caller {
            user,
            session: None,
        });
    }
    let secret = request
        .cookie(SESSION_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|secret| !secret.is_empty() && secret.len() <= 256)
        .ok_or_else(ApiError::unauthorized)?;
    let user = accounts
        .session_user(&secret)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    require_same_origin(request)?;
    Ok(Caller {
        user,
        session: Some(secret),
    })
}

/// Refuses a cookie-authenticated change that another site's page sent.
pub fn require_same_origin(request: &HttpRequest) -> Result<(), ApiError> {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return Ok(());
    }
    let headers = request.headers();
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let same = match (text("origin"), text("sec-fetch-site")) {
        (Some(origin), _) => {
            let authority = origin.split_once("://").map(|(_, rest)| rest);
            authority.is_some() && authority == text("host")
        }
        (None, Some(site)) => matches!(site, "same-origin" | "none"),
        // Neither header: not a browser (a script holding a cookie it was given).
        (None, None) => true,
    };
    if same {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::CrossOrigin,
            "this request came from another site; use the gallery's own page, or a token",
        ))
    }
}

/// Sets the session cookie on a response: HttpOnly, SameSite=Lax, and Secure when the
/// request arrived over https (directly, or as the gateway's `X-Forwarded-Proto` says).
pub fn set_session_cookie(response: &mut HttpResponseBuilder, request: &HttpRequest, secret: &str) {
    let secure = request.connection_info().scheme() == "https";
    // The browser keeps it long; the server ends it after 30 idle days on its own.
    let cookie = Cookie::build(SESSION_COOKIE, secret.to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(time::Duration::days(400))
        .finish();
    response.cookie(cookie);
}

pub fn clear_session_cookie(response: &mut HttpResponseBuilder) {
    let mut cookie = Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .finish();
    cookie.make_removal();
    response.cookie(cookie);
}
