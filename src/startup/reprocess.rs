//! `gallery reprocess …`: queueing photos again from the command line, on the configured
//! backends (the use case, and the rule that makes it safe to stop and run again, is
//! `reprocess`'s; this is its command line). It shows how far it got: a bar of photos queued,
//! then one of photos done, read back from the index, when stdout is a terminal; otherwise
//! plain lines, one every `LINE_EVERY` at most and one at the end of each phase, for logs and
//! pipes.
//!
//! Ctrl-C stops it at once; what it queued stays queued and is processed. On the embedded
//! backends `gallery serve` holds the data dir and must be stopped first (it says so), so no
//! worker runs meanwhile: the command only queues, and `serve` processes the photos when it
//! starts again.

use std::cell::Cell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Settings;
use crate::backends::Backends;
use crate::cli::ReprocessArgs;
use crate::domain::PhotoId;
use crate::reprocess::{self, Request, Scope};

/// Plain progress lines (stdout not a terminal) come at most this often.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// How often the photos queued are read back while they are processed.
const POLL_EVERY: Duration = Duration::from_secs(1);

pub async fn reprocess(settings: &Settings, args: &ReprocessArgs) -> anyhow::Result<()> {
    let since = args
        .since
        .as_deref()
        .map(reprocess::parse_since)
        .transpose()
        .map_err(|problem| anyhow::anyhow!("--since: {problem}"))?;
    let scope = if args.all { Scope::All } else { Scope::Missing };
    let request = Request { scope, since };
    let backends = Backends::connect(&settings.backends, "reprocess").await?;
    let variants = &settings.variants;
    let terminal = std::io::stdout().is_terminal();

    let plan = reprocess::plan(&backends, variants, &request).await?;
    println!(
        "{} to reprocess on the bulk lane ({} already queued or processing, left to run)",
        photos(plan.queue.len()),
        plan.in_flight.len()
    );
    if plan.queue.is_empty() {
        return Ok(());
    }

    let queueing = Progress::new("queued", plan.queue.len(), terminal);
    let enqueue = reprocess::enqueue(&backends, variants, &request, &plan.queue, |count| {
        queueing.set(count, "")
    });
    let queued = tokio::select! {
        queued = enqueue => queued,
        _ = tokio::signal::ctrl_c() => {
            queueing.stop();
            println!("stopped: what was queued is processed; run again to queue the rest");
            return Ok(());
        }
    };
    let queued = match queued {
        Ok(queued) => queued,
        Err(error) => {
            queueing.stop();
            anyhow::bail!("{error} (what was queued is processed; run again to queue the rest)");
        }
    };
    queueing.finish(queued.len(), "");

    if settings.backends.queue.amqp_url.is_none() {
        println!("they wait in the embedded queue: `gallery serve` processes them when it starts");
        return Ok(());
    }
    tokio::select! {
        watched = watch(&backends, queued, terminal) => watched,
        _ = tokio::signal::ctrl_c() => {
            println!("stopped watching: the photos queued are processed all the same");
            Ok(())
        }
    }
}

/// Reads the photos `queued` back until none is queued or processing any more.
async fn watch(backends: &Backends, queued: Vec<PhotoId>, terminal: bool) -> anyhow::Result<()> {
    let total = queued.len();
    let processing = Progress::new("done", total, terminal);
    let mut waiting = queued;
    let mut failed = 0;
    loop {
        let progress = reprocess::progress(backends, &waiting).await?;
        failed += progress.failed;
        waiting = progress.waiting;
        let note = if failed > 0 {
            format!(" ({failed} failed)")
        } else {
            String::new()
        };
        if waiting.is_empty() {
            processing.finish(total, &note);
            return Ok(());
        }
        processing.set(total - waiting.len(), &note);
        tokio::time::sleep(POLL_EVERY).await;
    }
}

fn photos(count: usize) -> String {
    match count {
        0 => "no photo".into(),
        1 => "1 photo".into(),
        _ => format!("{count} photos"),
    }
}

/// How far one phase got: a bar on a terminal, plain lines otherwise.
struct Progress {
    what: &'static str,
    total: usize,
    bar: Option<ProgressBar>,
    /// When the last plain line was written.
    written: Cell<Option<Instant>>,
}

impl Progress {
    fn new(what: &'static str, total: usize, terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stdout());
            let style = ProgressStyle::with_template("{msg:>8} [{bar:30}] {pos}/{len} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar.set_message(what);
            bar
        });
        Progress {
            what,
            total,
            bar,
            written: Cell::new(None),
        }
    }

    /// `count` of the total so far; `note` says more (how many failed).
    fn set(&self, count: usize, note: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(count as u64);
                bar.set_message(format!("{}{note}", self.what));
            }
            None => {
                let due = self
                    .written
                    .get()
                    .map_or(true, |at| at.elapsed() >= LINE_EVERY);
                if due && count < self.total {
                    self.line(count, note);
                }
            }
        }
    }

    fn finish(&self, count: usize, note: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{}{note}", self.what));
                bar.set_position(count as u64);
                bar.finish();
            }
            None => self.line(count, note),
        }
    }

    /// Leaves the bar as it is, for a message below it.
    fn stop(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }

    fn line(&self, count: usize, note: &str) {
        println!("{} {count} of {}{note}", self.what, self.total);
        self.written.set(Some(Instant::now()));
    }
}
