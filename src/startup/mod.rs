//! Building and running the roles: `Application::build` binds the web role's listener (port 0
//! picks a free port, which tests use), `run_worker` and `run_notifier` start the background
//! roles with their health and metrics endpoint, and `run_serve` runs them all in one
//! process. Each stops cleanly on SIGTERM or Ctrl-C. `settings` turns the command line into
//! each component's typed settings.

mod reprocess;
mod settings;
mod users;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{from_fn, Compress, DefaultHeaders};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tokio::sync::watch;
use tracing_actix_web::TracingLogger;

pub use self::reprocess::reprocess;
pub use self::settings::Settings;
pub use self::users::manage_users;
use crate::accounts::store::AccountStore;
use crate::backends::{BackendSettings, Backends};
use crate::error_code::ErrorCode;
use crate::image_cache::ImageCache;
use crate::ingest;
use crate::metrics::Metrics;
use crate::notifier::{self, NotifierSettings};
use crate::routes::error::ApiError;
use crate::routes::events::LiveEvents;
use crate::routes::form::Spool;
use crate::routes::{self, AppState, WebSettings};
use crate::worker;

/// The page allows only its own files: no inline script, no third-party origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub struct Application {
    port: u16,
    server: Server,
    live: LiveEvents,
}

impl Application {
    pub async fn build(
        web_settings: &WebSettings,
        settings: &Settings,
        backends: Backends,
    ) -> anyhow::Result<Self> {
        let listen = web_settings.listen;
        let listener =
            TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
        let port = listener.local_addr()?.port();
        if let Some(admin) = &web_settings.admin {
            let created = backends
                .accounts
                .bootstrap_admin(&admin.email, &admin.password)
                .await
                .map_err(|error| anyhow::anyhow!("cannot create the first admin: {error}"))?;
            if created {
                tracing::info!(email = %admin.email, "first admin created from GALLERY_ADMIN_EMAIL");
            }
        }
        let metrics = web::Data::new(backends.metrics.clone());
        let live = LiveEvents::start(
            backends.queue.clone(),
            backends.accounts.clone(),
            web_settings.streams,
        );
        let write_back = backends.storage.keeps_put_files();
        let images = ImageCache::new(web_settings.image_cache, backends.metrics.clone());
        let state = web::Data::new(AppState {
            backends,
            limits: settings.limits.clone(),
            variants: settings.variants.clone(),
            live: live.clone(),
            trust_proxy: web_settings.trust_proxy,
            static_dir: web_settings.static_dir.clone(),
            upload_pace: web_settings.upload_pace,
            spool: Spool {
                dir: settings.backends.data_dir.join("spool"),
                write_back,
            },
            images,
        });
        routes::form::clear_spool(&state.spool.dir);
        tokio::spawn(requeue_stranded(
            state.backends.clone(),
            web_settings.stranded_after,
        ));
        tokio::spawn(drop_expired_accounts(state.backends.accounts.store()));
        let static_dir = web_settings.static_dir.clone();
        let server =
            HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .app_data(metrics.clone())
                    .app_data(web::QueryConfig::default().error_handler(|error, _| {
                        ApiError::new(ErrorCode::BadQuery, error.to_string()).into()
                    }))
                    .app_data(web::JsonConfig::default().limit(16 * 1024).error_handler(
                        |error, _| {
                            ApiError::new(ErrorCode::BadJson, format!("bad JSON body: {error}"))
                                .into()
                        },
                    ))
                    .wrap(Compress::default())
                    .wrap(
                        DefaultHeaders::new()
                            .add(("X-Content-Type-Options", "nosniff"))
                            .add(("Referrer-Policy", "same-origin"))
                            .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY)),
                    )
                    // Outermost: the id, the span and the clock cover everything inside.
                    .wrap(from_fn(routes::requests::request_id_header))
                    .wrap(TracingLogger::<routes::requests::RequestLog>::new())
                    .service(routes::health::healthz)
                    .service(routes::health::readyz)
                    .service(routes::metrics::metrics)
                    .service(routes::config::config)
                    .service(routes::session::setup)
                    .service(routes::session::log_in)
                    .service(routes::session::current)
                    .service(routes::session::log_out)
                    .service(routes::me::show)
                    .service(routes::me::update)
                    .service(routes::tokens::list)
                    .service(routes::tokens::create)
                    .service(routes::tokens::revoke)
                    .service(routes::users::list)
                    .service(routes::users::invite)
                    .service(routes::users::update)
                    .service(routes::users::remove)
                    .service(routes::users::invite_page)
                    .service(routes::users::invited)
                    .service(routes::users::accept)
                    .service(routes::admin::reprocess_photos)
                    .service(routes::admin::retry)
                    .service(routes::admin::queues)
                    .service(routes::admin::failed)
                    .service(routes::admin::activity)
                    .service(routes::events::events)
                    .service(routes::photos::upload)
                    .service(routes::photos::list)
                    .service(routes::photos::show)
                    .service(routes::photos::remove)
                    .service(routes::images::original)
                    .service(routes::images::variant)
                    .service(routes::links::create)
                    .service(routes::links::list)
                    .service(routes::links::revoke)
                    .service(routes::links::page)
                    .service(routes::links::shown)
                    .service(routes::links::preview)
                    .service(routes::links::original)
                    .service(actix_files::Files::new("/", &static_dir).index_file("index.html"))
            })
            .listen(listener)?
            // Signals are ours (see `run_until_stopped`): live streams must end before the drain.
            .disable_signals()
            .shutdown_timeout(web_settings.shutdown_timeout.as_secs())
            .run();
        Ok(Application { port, server, live })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/Ctrl-C; then ends every live event stream at once and drains
    /// the other open requests for up to the shutdown timeout.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let live = self.live;
        let stopper = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("stop requested: ending live streams, draining open requests");
            live.close();
            handle.stop(true).await;
        });
        let served = self.server.await;
        stopper.abort();
        served
    }
}

/// Now and then queues the photos an ingest cut off between recording and queueing (see
/// `ingest::requeue_stranded`), for as long as the web role runs.
async fn requeue_stranded(backends: Backends, grace: Duration) {
    // Often enough that a stranded photo waits about `grace`, rarely enough to cost nothing.
    let every = (grace / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        if let Err(error) = ingest::requeue_stranded(&backends, grace).await {
            tracing::warn!("could not queue stranded photos (tried again in {every:?}): {error:#}");
        }
    }
}

/// How often the web role clears expired account records out of a store that keeps them
/// (`AccountStore::drop_expired`): login attempts and sessions outlive their use by at most
/// this, so the store holds about an hour's worth of them beyond the live ones.
const DROP_EXPIRED_EVERY: Duration = Duration::from_secs(3600);

async fn drop_expired_accounts(store: Arc<dyn AccountStore>) {
    loop {
        tokio::time::sleep(DROP_EXPIRED_EVERY).await;
        match store.drop_expired().await {
            Ok(0) => {}
            Ok(dropped) => tracing::info!(dropped, "expired account records dropped"),
            Err(error) => tracing::warn!("could not drop expired account records: {error:#}"),
        }
    }
}

/// Runs a worker until SIGTERM/Ctrl-C, then lets it finish its in-flight jobs.
pub async fn run_worker(
    settings: Settings,
    health_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let backends = settings.backends.clone();
    run_background_role(
        "worker",
        &backends,
        health_listen,
        |backends, stopped| async move {
            worker::run(backends, settings.worker, settings.variants, stopped).await;
            Ok(())
        },
    )
    .await
}

/// Runs the notifier until SIGTERM/Ctrl-C.
pub async fn run_notifier(
    settings: Settings,
    notifier: NotifierSettings,
    health_listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    run_background_role(
        "notifier",
        &settings.backends,
        health_listen,
        |backends, stopped| notifier::run(backends, notifier, stopped),
    )
    .await
}

/// Runs the web role, a worker and (when configured) the notifier in one process until
/// SIGTERM/Ctrl-C: the HTTP server drains its requests, then the worker finishes its jobs.
pub async fn run_serve(
    web_settings: WebSettings,
    settings: Settings,
    notifier: Option<NotifierSettings>,
) -> anyhow::Result<()> {
    let backends = Backends::connect(&settings.backends, "serve").await?;
    tracing::info!(
        data_dir = %settings.backends.data_dir.display(),
        "serving everything in one process ({})",
        settings.backends.describe()
    );
    let app = Application::build(&web_settings, &settings, backends.clone()).await?;
    let listen = web_settings.listen;
    tracing::info!("gallery listening on http://{}:{}", listen.ip(), app.port());
    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn(worker::run(
        backends.clone(),
        settings.worker,
        settings.variants,
        stopped.clone(),
    ));
    let notifier =
        notifier.map(|notifier| tokio::spawn(notifier::run(backends, notifier, stopped)));
    // Returns once SIGTERM/Ctrl-C came and the server has drained.
    let served = app.run_until_stopped().await;
    let _ = stop.send(true);
    worker.await?;
    if let Some(notifier) = notifier {
        notifier.await??;
    }
    served?;
    Ok(())
}

/// What every role without a public HTTP server shares: a `/healthz` and `/metrics` listener
/// when an address is given (none by default, so several roles can share a host), connected
/// backends, and a stop signal that turns true on SIGTERM/Ctrl-C.
async fn run_background_role<F, Fut>(
    role: &str,
    settings: &BackendSettings,
    health_listen: Option<SocketAddr>,
    body: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Backends, watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    // Made before the backends are reached: the health listener serves it from the start.
    let metrics = Metrics::new(role);
    let health = health_listen
        .map(|listen| health_server(listen, metrics.clone()))
        .transpose()?;
    let backends = Backends::connect_measured(settings, role, metrics).await?;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stop requested");
        let _ = stop.send(true);
    });
    let result = body(backends, stopped).await;
    if let Some(health) = health {
        health.stop(false).await;
    }
    result
}

/// A tiny server answering `/healthz`, so containers of roles without HTTP can be checked,
/// and `/metrics`, so they can be scraped.
fn health_server(listen: SocketAddr, metrics: Metrics) -> anyhow::Result<ServerHandle> {
    let metrics = web::Data::new(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .service(routes::health::healthz)
            .service(routes::metrics::metrics)
    })
    .workers(1)
    .disable_signals()
    .bind(listen)
    .with_context(|| format!("cannot listen on {listen}"))?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(handle)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
