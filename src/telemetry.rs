//! Logging set-up: one line per event on stderr, level from `GALLERY_LOG` (default info), as
//! text or, with `GALLERY_LOG_FORMAT=json`, as one JSON object per line for log shippers.
//! Colour only on a terminal, so container logs and files carry no escape codes. Secrets
//! never reach a line: they are held as `SecretString`, which prints as `[REDACTED]`, and
//! URLs are logged without their credentials.
//!
//! A line logged inside a span carries the span's fields: a request's id, method and route
//! (`routes::requests`), a job's or an event's photo id (`worker`, `notifier`). In JSON the
//! event's own fields sit at the top level beside `timestamp`, `level`, `target` and
//! `message`, and the spans' fields under `span` (the innermost) and `spans` (all of them).

use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (text or json)")),
        }
    }
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("GALLERY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (tests spawn many apps in one process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .try_init(),
    };
}
