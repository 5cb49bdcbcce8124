//! Building and running the roles: `Application::build` binds the web role's listener (port 0
//! picks a free port, which tests use), `run_worker` and `run_notifier` start the background
//! roles with their health endpoint, and `run_serve` runs them all in one process. Each stops
//! cleanly on SIGTERM or Ctrl-C.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{Compress, DefaultHeaders};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tokio::sync::watch;

use crate::backends::Backends;
use crate::configuration::Settings;
use crate::notifier::{self, NotifierConfig};
use crate::routes::{self, AppState};
use crate::worker::{self, WorkerConfig};

/// The page allows only its own files: no inline script, no third-party origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(
        listen: SocketAddr,
        static_dir: PathBuf,
        settings: Settings,
        backends: Backends,
    ) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
        let port = listener.local_addr()?.port();
        let live = routes::events::LiveEvents::start(backends.queue.clone());
        let state = web::Data::new(AppState {
            backends,
            settings: Arc::new(settings),
            live,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::QueryConfig::default().error_handler(|error, _| {
                    crate::error::ApiError::bad_request("bad_query", error.to_string()).into()
                }))
                .wrap(Compress::default())
                .wrap(
                    DefaultHeaders::new()
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Referrer-Policy", "same-origin"))
                        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY)),
                )
                .service(routes::health::healthz)
                .service(routes::health::readyz)
                .service(routes::config::config)
                .service(routes::events::events)
                .service(routes::photos::upload)
                .service(routes::photos::list)
                .service(routes::photos::show)
                .service(routes::photos::remove)
                .service(routes::images::original)
                .service(routes::images::variant)
                .service(actix_files::Files::new("/", &static_dir).index_file("index.html"))
        })
        .listen(listener)?
        .shutdown_timeout(30)
        .run();
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/Ctrl-C (actix drains open requests first).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Runs a worker until SIGTERM/Ctrl-C, then lets it finish its in-flight jobs.
pub async fn run_worker(
    settings: Settings,
    config: WorkerConfig,
    health_listen: SocketAddr,
) -> anyhow::Result<()> {
    run_background_role(
        "worker",
        settings,
        health_listen,
        |backends, settings, stopped| async move {
            worker::run(backends, Arc::new(settings), config, stopped).await;
            Ok(())
        },
    )
    .await
}

/// Runs the notifier until SIGTERM/Ctrl-C.
pub async fn run_notifier(
    settings: Settings,
    config: NotifierConfig,
    health_listen: SocketAddr,
) -> anyhow::Result<()> {
    run_background_role(
        "notifier",
        settings,
        health_listen,
        |backends, _, stopped| notifier::run(backends, config, stopped),
    )
    .await
}

/// Runs the web role, a worker and (when configured) the notifier in one process until
/// SIGTERM/Ctrl-C: the HTTP server drains its requests, then the worker finishes its jobs.
pub async fn run_serve(
    listen: SocketAddr,
    static_dir: PathBuf,
    settings: Settings,
    worker_config: WorkerConfig,
    notifier_config: Option<NotifierConfig>,
) -> anyhow::Result<()> {
    let backends = Backends::connect(&settings, "serve").await?;
    tracing::info!(
        data_dir = %settings.data_dir.display(),
        storage = if settings.s3_endpoint.is_some() { "S3" } else { "files" },
        index = if settings.redis_url.is_some() { "Redis" } else { "embedded" },
        queue = if settings.amqp_url.is_some() { "RabbitMQ" } else { "embedded" },
        "serving everything in one process"
    );
    let app = Application::build(listen, static_dir, settings.clone(), backends.clone()).await?;
    tracing::info!("gallery listening on http://{listen}");
    let (stop, stopped) = watch::channel(false);
    let worker = tokio::spawn(worker::run(
        backends.clone(),
        Arc::new(settings),
        worker_config,
        stopped.clone(),
    ));
    let notifier =
        notifier_config.map(|config| tokio::spawn(notifier::run(backends, config, stopped)));
    // actix handles SIGTERM/Ctrl-C itself: this returns once it has drained.
    let served = app.run_until_stopped().await;
    let _ = stop.send(true);
    worker.await?;
    if let Some(notifier) = notifier {
        notifier.await??;
    }
    served?;
    Ok(())
}

/// What every role without a public HTTP server shares: a `/healthz` endpoint, connected
/// backends, and a stop signal that turns true on SIGTERM/Ctrl-C.
async fn run_background_role<F, Fut>(
    role: &str,
    settings: Settings,
    health_listen: SocketAddr,
    body: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Backends, Settings, watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let health = health_server(health_listen)?;
    let backends = Backends::connect(&settings, role).await?;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stop requested");
        let _ = stop.send(true);
    });
    let result = body(backends, settings, stopped).await;
    health.stop(false).await;
    result
}

/// A tiny server answering `/healthz`, so containers of roles without HTTP can be checked.
fn health_server(listen: SocketAddr) -> anyhow::Result<ServerHandle> {
    let server = HttpServer::new(|| App::new().service(routes::health::healthz))
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
