//! HTTP routes of the web role, one module per resource, plus what they share: `view` (how a
//! photo is shown and found) and `error` (the one mapping of refusals to HTTP statuses).
//! A new endpoint is a module here, registered in `startup::Application::build`.

pub mod config;
pub mod error;
pub mod events;
pub mod health;
pub mod images;
pub mod photos;
pub mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::backends::Backends;
use crate::domain::VariantSpec;
use crate::ingest::Limits;

/// The web role's own settings: where it listens, the page it serves, how long it drains.
#[derive(Debug, Clone)]
pub struct WebSettings {
    pub listen: SocketAddr,
    pub static_dir: PathBuf,
    /// How long a stopping server waits for open requests (event streams end at once).
    pub shutdown_timeout: Duration,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            static_dir: PathBuf::from("static"),
            shutdown_timeout: Duration::from_secs(8),
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
}
