//! Logging set-up: one line per event on stderr, level from `GALLERY_LOG` (default info).
//! Colour only on a terminal, so container logs and files carry no escape codes. Secrets
//! never reach a line: they are held as `SecretString`, which prints as `[REDACTED]`, and
//! URLs are logged without their credentials.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("GALLERY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // A second call (tests spawn many apps in one process) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
