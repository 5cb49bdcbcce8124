//! `GET /api/events`: photo events as server-sent events, so the page updates live.
//!
//! One bus subscription per web process fans out to every open page through a broadcast
//! channel; a page that falls behind is told to `resync` (re-read the gallery) rather than
//! slowing the others down. Streams are counted per client address and in all, so no client
//! can hold the server's connections; a comment line every 15 s keeps idle ones alive through
//! proxies, and every stream ends the moment the server stops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::auth::Caller;
use super::error::ApiError;
use super::view::PhotoView;
use super::{client_address, AppState};
use crate::accounts::Accounts;
use crate::domain::Event;
use crate::error_code::ErrorCode;
use crate::queue::{JobQueue, Listener};
use crate::retry::{until_ok, RetryPolicy};

/// How many live streams may be open at once, and how often an idle one is written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// From one client address (a page holds one; a few tabs or devices behind one NAT more).
    pub per_client: usize,
    /// In all, for this web process.
    pub total: usize,
    /// A comment line on an idle stream: keeps proxies from timing it out, and is how a
    /// client that left is noticed (the server learns of a closed connection only by
    /// writing to it), so its stream stops counting.
    pub heartbeat: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            per_client: 8,
            total: 1000,
            heartbeat: Duration::from_secs(15),
        }
    }
}

/// Counts open streams; a `StreamTicket` is one of them, given back when dropped (the client
/// left, or the server stopped).
#[derive(Clone)]
struct StreamGate {
    limits: StreamLimits,
    open: Arc<Mutex<OpenStreams>>,
}

#[derive(Default)]
struct OpenStreams {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

struct StreamTicket {
    open: Arc<Mutex<OpenStreams>>,
    client: IpAddr,
}

impl StreamGate {
    fn admit(&self, client: IpAddr) -> Result<StreamTicket, ApiError> {
        // A panic elsewhere while holding the lock leaves counts that are still valid.
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mine = open.per_client.get(&client).copied().unwrap_or(0);
        if mine >= self.limits.per_client {
            return Err(ApiError::new(
                ErrorCode::TooManyStreams,
                format!(
                    "{client} already has {mine} live streams open (the limit is {})",
                    self.limits.per_client
                ),
            ));
        }
        if open.total >= self.limits.total {
            return Err(ApiError::new(
                ErrorCode::TooManyStreams,
                format!(
                    "the server has its limit of {} live streams open",
                    self.limits.total
                ),
            ));
        }
        open.total += 1;
        *open.per_client.entry(client).or_insert(0) += 1;
        Ok(StreamTicket {
            open: self.open.clone(),
            client,
        })
    }
}

impl Drop for StreamTicket {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_client.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}

/// The web process's feed of photo events, already framed for SSE.
#[derive(Clone)]
pub struct LiveEvents {
    sender: broadcast::Sender<Bytes>,
    gate: StreamGate,
    /// Cancelled when the server stops: every open stream ends, so open pages never hold
    /// a shutdown up (browsers reconnect to whichever web process is there next).
    closing: CancellationToken,
}

impl LiveEvents {
    /// Subscribes to the bus in the background, resubscribing whenever the connection drops.
    pub fn start(queue: Arc<dyn JobQueue>, accounts: Accounts, limits: StreamLimits) -> Self {
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
                    let mut event = delivery.event;
                    // Pages show who owns a photo now (renamed, or taken over); when that
                    // cannot be read, who uploaded it.
                    if let Ok(owners) = accounts.owners().await {
                        owners.apply(std::slice::from_mut(&mut event.photo));
                    }
                    // No receivers is fine: nobody has the page open.
                    let _ = feed.send(frame(&event));
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
        let gate = StreamGate {
            limits,
            open: Arc::default(),
        };
        LiveEvents {
            sender,
            gate,
            closing,
        }
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

/// One open stream: what it still has to send and where its events come from.
struct Feed {
    hello: Option<Bytes>,
    receiver: broadcast::Receiver<Bytes>,
    closing: CancellationToken,
    heartbeat: Duration,
    _ticket: StreamTicket,
}

impl Feed {
    /// The next chunk to send; `None` ends the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(hello) = self.hello.take() {
            return Some(hello);
        }
        let next = tokio::select! {
            _ = self.closing.cancelled() => return None,
            next = tokio::time::timeout(self.heartbeat, self.receiver.recv()) => next,
        };
        match next {
            Ok(Ok(frame)) => Some(frame),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                Some(Bytes::from_static(b"event: resync\ndata: {}\n\n"))
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => None,
            Err(_) => Some(Bytes::from_static(b": keepalive\n\n")),
        }
    }
}

#[get("/api/events")]
pub async fn events(
    _caller: Caller,
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // Without a peer address (a Unix socket) every such client shares one count.
    let client = client_address(&request, state.trust_proxy)
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let live = &state.live;
    let feed = Feed {
        hello: Some(Bytes::from_static(b": connected\n\n")),
        _ticket: live.gate.admit(client)?,
        receiver: live.sender.subscribe(),
        closing: live.closing.clone(),
        heartbeat: live.gate.limits.heartbeat,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let chunk = feed.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), feed))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Compression and proxy buffering would hold events back.
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}
