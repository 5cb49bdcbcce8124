//! `/metrics`: the process's measurements in Prometheus' text format (`crate::metrics`), on
//! the web role's listener and on the worker's and notifier's health listener. Open like
//! `/healthz` on those listeners, which only the deployment's own network reaches: the gateway
//! refuses `/metrics` from outside (`deploy/nginx/nginx.conf`).

use std::time::Duration;

use actix_web::{get, web, HttpResponse};

use super::AppState;
use crate::metrics::{Metrics, CONTENT_TYPE};

/// A scrape waits this long for the queue's depths at most (Prometheus' own timeout is 10 s).
const DEPTHS_WITHIN: Duration = Duration::from_secs(2);

#[get("/metrics")]
pub async fn metrics(
    metrics: web::Data<Metrics>,
    state: Option<web::Data<AppState>>,
) -> HttpResponse {
    // The queue's depths and the image memory's size are read at scrape time, by the web role
    // only (the health listeners have no backends). Every web process reports the same depths,
    // hence `max by (lane)` on the dashboard; its memory is its own, hence `by (instance)`. A
    // queue that does not answer leaves the last figures, never the scrape.
    if let Some(state) = state {
        metrics.set_image_cache_bytes(state.images.weight());
        let read = tokio::time::timeout(DEPTHS_WITHIN, state.backends.queue.depths()).await;
        match read.unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {DEPTHS_WITHIN:?}"))) {
            Ok(depths) => metrics.set_queue_depths(&[
                ("upload", depths.upload),
                ("bulk", depths.bulk),
                ("retrying", depths.retrying),
                ("dead", depths.dead),
            ]),
            Err(error) => tracing::warn!("could not read the queue's depths: {error:#}"),
        }
    }
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header(("Cache-Control", "no-store"))
        .body(metrics.render())
}
