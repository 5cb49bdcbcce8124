//! HTTP routes of the web role, one module per resource, plus what they share: `auth` (who
//! is calling), `view` (how a photo is shown and found), `error` (the one mapping of
//! refusals to HTTP statuses) and `requests` (every request's id, log line and metrics).
//! A new endpoint is a module here, registered in `startup::Application::build`.

pub mod admin;
pub mod auth;
pub mod config;
pub mod error;
pub mod events;
pub mod form;
pub mod health;
pub mod images;
pub mod links;
pub mod me;
pub mod metrics;
pub mod photos;
pub mod requests;
pub mod session;
pub mod tokens;
pub mod users;
pub mod view;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use actix_web::HttpRequest;

use self::events::StreamLimits;
use crate::accounts::Password;
use crate::backends::Backends;
use crate::domain::{Email, VariantSpec};
use crate::image_cache::{ImageCache, ImageCacheSettings};
use crate::ingest::Limits;

/// The web role's own settings: where it listens, the page it serves, how long it drains.
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub listen: SocketAddr,
    pub static_dir: PathBuf,
    /// How long a stopping server waits for open requests (event streams end at once).
    pub shutdown_timeout: Duration,
    /// Live event streams allowed at once.
    pub streams: StreamLimits,
    /// Requests come through our own proxy (the compose stack's nginx), which appends the
    /// client's address to `X-Forwarded-For`; otherwise the peer is the client.
    pub trust_proxy: bool,
    /// Created at start while the gallery has no account (headless installs).
    pub admin: Option<FirstAdmin>,
    /// How slow an upload may be before it is cut off.
    pub upload_pace: form::UploadPace,
    /// How long a recorded photo may wait for its job to be queued before the sweep queues
    /// it (`ingest::requeue_stranded`); well above any upload's own time.
    pub stranded_after: Duration,
    /// The memory of hot images (`image_cache`).
    pub image_cache: ImageCacheSettings,
}

/// The admin `GALLERY_ADMIN_EMAIL` and `GALLERY_ADMIN_PASSWORD` ask for.
#[derive(Debug, Clone)]
pub struct FirstAdmin {
    pub email: Email,
    pub password: Password,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            static_dir: PathBuf::from("static"),
            shutdown_timeout: Duration::from_secs(8),
            streams: StreamLimits::default(),
            trust_proxy: false,
            admin: None,
            upload_pace: form::UploadPace::default(),
            stranded_after: Duration::from_secs(300),
            image_cache: ImageCacheSettings::default(),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub backends: Backends,
    pub limits: Limits,
    pub variants: Vec<VariantSpec>,
    pub live: events::LiveEvents,
    pub trust_proxy: bool,
    /// The page's files: the invite and share pages are served from here.
    pub static_dir: PathBuf,
    pub upload_pace: form::UploadPace,
    /// Where uploaded files wait until their request is read (`form::Spooled`).
    pub spool: form::Spool,
    /// Small images served lately (`routes::images`).
    pub images: ImageCache,
}

/// The address a request comes from: the peer's, or behind our own proxy the one it appended
/// to `X-Forwarded-For` (the last entry: earlier ones are whatever the client claimed).
pub fn client_address(request: &HttpRequest, trust_proxy: bool) -> Option<IpAddr> {
    let peer = request.peer_addr().map(|address| address.ip());
    if !trust_proxy {
        return peer;
    }
    request
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .last()
        .and_then(|last| last.trim().parse().ok())
        .or(peer)
}
