//! HTTP routes of the web role, one module per resource.

pub mod config;
pub mod events;
pub mod health;
pub mod images;
pub mod photos;

use std::sync::Arc;

use crate::backends::Backends;
use crate::configuration::Settings;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub backends: Backends,
    pub settings: Arc<Settings>,
    pub live: events::LiveEvents,
}
