//! Every request to the web role gets an id (sent back as `X-Request-Id`), a `request` span
//! that every line logged while handling it carries (id, method, route), one line when it is
//! answered (status and duration), and its count and latency in the metrics
//! (`gallery_http_requests_total`, `gallery_http_request_duration_seconds`).
//!
//! The route is the matched route template (`/s/{token}`, `/api/photos/{id}`), never the raw
//! path or query: share-link and invite tokens travel in paths. Nothing else of the request is
//! logged, no header at all (so never `Authorization` or `Cookie`). Probes and scrapes that
//! succeed (`/healthz`, `/readyz`, `/metrics`) log at debug, so a health check every few
//! seconds does not drown the log.
//!
//! The duration runs from the request's arrival to its response's head: for an upload that
//! includes reading the body; a streamed answer (`/api/events`) goes on after its line.

use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

use crate::metrics::Metrics;

/// The request header that carries a request's id back to the client.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Requests that run all the time by machine, logged at debug when they succeed.
const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// How `tracing_actix_web::TracingLogger` opens and closes each request's span.
pub struct RequestLog;

/// What the end of a request needs from its start.
struct Arrival {
    at: Instant,
    method: &'static str,
    route: String,
}

impl RootSpanBuilder for RequestLog {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let arrival = Arrival {
            at: Instant::now(),
            method: method_label(request.method()),
            route: route_label(request.match_pattern()),
        };
        // The logger has given the request its id just before.
        let id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            method = %arrival.method,
            route = %arrival.route,
        );
        request.extensions_mut().insert(arrival);
        span
    }

    /// Runs inside the request's span (the logger enters it), so the line carries its fields.
    fn on_request_end<B: MessageBody>(_span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let response = match outcome {
            Ok(response) => response,
            Err(error) => {
                // Not answered by the app's handlers (they turn every refusal into a
                // response): no request is left to count it against.
                let status = error.as_response_error().status_code().as_u16();
                tracing::info!(status, "request failed before an answer: {error}");
                return;
            }
        };
        let request = response.request();
        let status = response.status().as_u16();
        let extensions = request.extensions();
        let Some(arrival) = extensions.get::<Arrival>() else {
            return;
        };
        let took = arrival.at.elapsed();
        if let Some(metrics) = request.app_data::<web::Data<Metrics>>() {
            metrics.http_request(&arrival.route, arrival.method, status, took);
        }
        let duration_ms = milliseconds(took);
        if status < 400 && PROBES.contains(&arrival.route.as_str()) {
            tracing::debug!(status, duration_ms, "answered");
        } else {
            tracing::info!(status, duration_ms, "answered");
        }
    }
}

/// Sends the request's id back as `X-Request-Id`, so a client (or the gateway's log) can
/// name the request the server logged. Wrapped inside `TracingLogger`, which makes the id.
pub async fn request_id_header(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = request.extensions().get::<RequestId>().copied();
    let mut response = next.call(request).await?;
    if let Some(value) = id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok()) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

/// The method as a label from a closed set: a client may send any token as a method.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The route template the request matched; the page's files (served from one folder) and
/// paths that match nothing get a fixed name, so a raw path never becomes a label.
fn route_label(pattern: Option<String>) -> String {
    match pattern {
        Some(pattern) if pattern.starts_with('/') => pattern,
        // The static files' mount at the root matches as an empty prefix.
        Some(_) => "static".to_owned(),
        None => "unmatched".to_owned(),
    }
}

/// A duration in milliseconds, to a tenth.
fn milliseconds(took: Duration) -> f64 {
    (took.as_secs_f64() * 10_000.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_closed_sets() {
        let odd = Method::from_bytes(b"PROPFIND").expect("a method token");
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(route_label(Some("/s/{token}".into())), "/s/{token}");
        assert_eq!(route_label(Some(String::new())), "static");
        assert_eq!(route_label(None), "unmatched");
        assert_eq!(milliseconds(Duration::from_micros(12_345)), 12.3);
    }
}
