//! `GET /api/events`: photo events as server-sent events, so the page updates live.
//!
//! One bus subscription per web process fans out to every open page through a broadcast
//! channel; a page that falls behind is told to `resync` (re-read the gallery) rather than
//! slowing the others down.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};
use bytes::Bytes;
use serde_json::json;
use tokio::sync::broadcast;

use super::photos::PhotoView;
use super::AppState;
use crate::domain::Event;
use crate::queue::{JobQueue, Listener};

const KEEPALIVE: Duration = Duration::from_secs(15);

/// The web process's feed of photo events, already framed for SSE.
#[derive(Clone)]
pub struct LiveEvents {
    sender: broadcast::Sender<Bytes>,
}

impl LiveEvents {
    /// Subscribes to the bus in the background, resubscribing whenever the connection drops.
    pub fn start(queue: Arc<dyn JobQueue>) -> Self {
        let (sender, _) = broadcast::channel(256);
        let feed = sender.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(500);
            loop {
                match queue.subscribe_events(Listener::Live).await {
                    Ok(mut subscription) => {
                        delay = Duration::from_millis(500);
                        while let Some(delivery) = subscription.next().await {
                            // No receivers is fine: nobody has the page open.
                            let _ = feed.send(frame(&delivery.event));
                        }
                        tracing::warn!("live event subscription ended; resubscribing");
                    }
                    Err(error) => tracing::warn!(
                        "cannot subscribe to photo events: {error:#}; retrying in {delay:?}"
                    ),
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        });
        LiveEvents { sender }
    }
}

fn frame(event: &Event) -> Bytes {
    let data = json!({"type": event.kind.as_str(), "photo": PhotoView::from(event.photo.clone())});
    Bytes::from(format!("event: photo\ndata: {data}\n\n"))
}

#[get("/api/events")]
pub async fn events(state: web::Data<AppState>) -> HttpResponse {
    let receiver = state.live.sender.subscribe();
    let hello = Bytes::from_static(b": connected\n\n");
    let stream = futures_util::stream::unfold(
        (Some(hello), receiver),
        |(first, mut receiver)| async move {
            if let Some(first) = first {
                return Some((Ok::<_, std::convert::Infallible>(first), (None, receiver)));
            }
            let chunk = match tokio::time::timeout(KEEPALIVE, receiver.recv()).await {
                Ok(Ok(frame)) => frame,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    Bytes::from_static(b"event: resync\ndata: {}\n\n")
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                Err(_) => Bytes::from_static(b": keepalive\n\n"),
            };
            Some((Ok(chunk), (None, receiver)))
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Compression and proxy buffering would hold events back.
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}
