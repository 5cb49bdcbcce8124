//! `/metrics`: the process's measurements in Prometheus' text format (`crate::metrics`), on
//! the web role's listener and on the worker's and notifier's health listener. Open like
//! `/healthz` on those listeners, which only the deployment's own network reaches: the gateway
//! refuses `/metrics` from outside (`deploy/nginx/nginx.conf`).

use actix_web::{get, web, HttpResponse};

use crate::metrics::{Metrics, CONTENT_TYPE};

#[get("/metrics")]
pub async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    // Queue depth belongs here, read at scrape time and handed to
    // `Metrics::set_queue_depths`, once the queue reports its depth per lane.
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header(("Cache-Control", "no-store"))
        .body(metrics.render())
}
