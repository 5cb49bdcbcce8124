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
use tokio_util::sync::CancellationToken;

use super::view::PhotoView;
use super::AppState;
use crate::domain::Event;
use crate::queue::{JobQueue, Listener};
use crate::retry::{until_ok, RetryPolicy};

const KEEPALIVE: Duration = Duration::from_secs(15);

/// The web process's feed of photo events, already framed for SSE.
#[derive(Clone)]
pub struct LiveEvents {
    sender: broadcast::Sender<Bytes>,
    /// Cancelled when the server stops: every open stream ends, so open pages never hold
    /// a shutdown up (browsers reconnect to whichever web process is there next).
    closing: CancellationToken,
}

impl LiveEvents {
    /// Subscribes to the bus in the background, resubscribing whenever the connection drops.
    pub fn start(queue: Arc<dyn JobQueue>) -> Self {
        let (sender, _) = broadcast::channel(256);
        let closing = CancellationToken::new();
        let feed = sender.clone();
        let stopped = closing.clone();
        let listen = async move {
            loop {
                let subscribe = || queue.subscribe_events(Listener::Live);
                let what = "cannot subscribe to photo events";
                let Some(mut subscription) =
                    until_ok(RetryPolicy::RECONNECT, what, None, subscribe).await
                else {
                    return;
                };
                while let Some(delivery) = subscription.next().await {
                    // No receivers is fine: nobody has the page open.
                    let _ = feed.send(frame(&delivery.event));
                }
                tracing::warn!("live event subscription ended; resubscribing");
            }
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = stopped.cancelled() => {}
                _ = listen => {}
            }
        });
        LiveEvents { sender, closing }
    }

    /// Ends every open stream and stops listening.
    pub fn close(&self) {
        self.closing.cancel();
    }
}

fn frame(event: &Event) -> Bytes {
    let data = json!({"type": event.kind.as_str(), "photo": PhotoView::from(event.photo.clone())});
    Bytes::from(format!("event: photo\ndata: {data}\n\n"))
}

#[get("/api/events")]
pub async fn events(state: web::Data<AppState>) -> HttpResponse {
    let receiver = state.live.sender.subscribe();
    let closing = state.live.closing.clone();
    let hello = Bytes::from_static(b": connected\n\n");
    let stream = futures_util::stream::unfold(
        (Some(hello), receiver, closing),
        |(first, mut receiver, closing)| async move {
            if let Some(first) = first {
                return Some((
                    Ok::<_, std::convert::Infallible>(first),
                    (None, receiver, closing),
                ));
            }
            let next = tokio::select! {
                _ = closing.cancelled() => return None,
                next = tokio::time::timeout(KEEPALIVE, receiver.recv()) => next,
            };
            let chunk = match next {
                Ok(Ok(frame)) => frame,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    Bytes::from_static(b"event: resync\ndata: {}\n\n")
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                Err(_) => Bytes::from_static(b": keepalive\n\n"),
            };
            Some((Ok(chunk), (None, receiver, closing)))
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
