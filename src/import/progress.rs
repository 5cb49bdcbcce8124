//! What `gallery import` shows while it works. On a terminal: an indicatif bar (files, bytes,
//! rate, ETA) with each refusal and failure printed above it. Anywhere else (a pipe, a log
//! file, CI): one plain line per file, since a bar's redraws would fill a log with noise.
//! Then, either way, a summary naming every file refused or failed and why.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Outcome, Source, Summary};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    Bar,
    Lines,
}

impl Display {
    /// A bar only where someone watches: when stdout is a terminal.
    pub fn for_terminal(stdout_is_terminal: bool) -> Display {
        if stdout_is_terminal {
            Display::Bar
        } else {
            Display::Lines
        }
    }
}

pub struct Progress {
    /// `None` in `Display::Lines`.
    bar: Option<ProgressBar>,
    files: usize,
    done: AtomicUsize,
    started: Instant,
}

impl Progress {
    /// Progress on stdout, shown as suits it.
    pub fn for_stdout(files: usize, bytes: u64) -> Progress {
        Progress::new(
            Display::for_terminal(std::io::stdout().is_terminal()),
            files,
            bytes,
        )
    }

    pub fn new(display: Display, files: usize, bytes: u64) -> Progress {
        let bar = (display == Display::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stdout());
            let style = ProgressStyle::with_template(
                "{msg} [{wide_bar}] {binary_bytes}/{binary_total_bytes} \
                 {binary_bytes_per_sec} ETA {eta}",
            )
            .map(|style| style.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(format!("0/{files} files"));
            // Rate and ETA move between chunks too.
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress {
            bar,
            files,
            done: AtomicUsize::new(0),
            started: Instant::now(),
        }
    }

    pub fn display(&self) -> Display {
        match self.bar {
            Some(_) => Display::Bar,
            None => Display::Lines,
        }
    }

    /// A line of text, above the bar if there is one.
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => say(text),
        }
    }

    /// Counts the bytes of one file as they go out.
    pub fn file(&self, size: u64) -> FileProgress {
        FileProgress {
            bar: self.bar.clone(),
            size,
            sent: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Reports a file's outcome.
    pub fn done(&self, source: &Source, outcome: &Outcome) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{done}/{} files", self.files));
                if matches!(outcome, Outcome::Refused { .. } | Outcome::Failed(_)) {
                    bar.println(describe(&source.name, outcome));
                }
            }
            None => say(&describe(&source.name, outcome)),
        }
    }

    /// Takes the bar away and prints the summary.
    pub fn finish(&self, summary: &Summary) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let count = |wanted: fn(&Outcome) -> bool| {
            summary
                .outcomes
                .iter()
                .filter(|(_, outcome)| wanted(outcome))
                .count()
        };
        let bytes: u64 = summary.outcomes.iter().map(|(source, _)| source.size).sum();
        say(&format!(
            "{} files ({}) in {:.1?}: {} uploaded, {} already in the gallery, {} same as \
             another file, {} refused, {} failed",
            summary.outcomes.len(),
            HumanBytes(bytes),
            self.started.elapsed(),
            count(|o| matches!(o, Outcome::Uploaded)),
            count(|o| matches!(o, Outcome::Present)),
            count(|o| matches!(o, Outcome::Duplicate(_))),
            count(|o| matches!(o, Outcome::Refused { .. })),
            count(|o| matches!(o, Outcome::Failed(_))),
        ));
        let mut problems: Vec<&(Source, Outcome)> = summary
            .outcomes
            .iter()
            .filter(|(_, outcome)| matches!(outcome, Outcome::Refused { .. } | Outcome::Failed(_)))
            .collect();
        problems.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        if !problems.is_empty() {
            say("not imported:");
            for (source, outcome) in problems {
                say(&format!("  {}", describe(&source.name, outcome)));
            }
        }
    }
}

/// One line saying what became of a file.
pub fn describe(name: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Uploaded => format!("uploaded {name}"),
        Outcome::Present => format!("skipped {name} (already in the gallery)"),
        Outcome::Duplicate(first) => format!("skipped {name} (same content as {first})"),
        Outcome::Refused { reason, code } => format!("refused {name}: {reason} ({code})"),
        Outcome::Failed(reason) => format!("failed {name}: {reason}"),
    }
}

/// Writes a line to stdout; a reader that went away (`| head`) stops nothing.
fn say(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// The bytes of one file on the bar: counted as they go out, taken back when a try fails,
/// made whole when the file is done (sent, skipped or refused).
#[derive(Clone)]
pub struct FileProgress {
    bar: Option<ProgressBar>,
    size: u64,
    sent: Arc<AtomicU64>,
}

impl FileProgress {
    pub fn sent(&self, bytes: u64) {
        self.sent.fetch_add(bytes, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    /// A try that failed: what it sent will go again.
    pub fn undo(&self) {
        let sent = self.sent.swap(0, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.dec(sent);
        }
    }

    /// The file is done: the bar counts all of it, whatever was sent.
    pub fn complete(&self) {
        let sent = self.sent.swap(self.size, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(self.size.saturating_sub(sent));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_is_drawn_only_when_stdout_is_a_terminal() {
        assert_eq!(Display::for_terminal(true), Display::Bar);
        assert_eq!(Display::for_terminal(false), Display::Lines);
        let lines = Progress::new(Display::Lines, 3, 100);
        assert_eq!(lines.display(), Display::Lines);
        assert!(lines.bar.is_none());
        let bar = Progress::new(Display::Bar, 3, 100);
        assert_eq!(bar.display(), Display::Bar);
        // The test harness's stdout is not a terminal: this process shows lines.
        let ours = Progress::for_stdout(3, 100);
        assert_eq!(
            ours.display(),
            Display::for_terminal(std::io::stdout().is_terminal())
        );
    }

    #[test]
    fn a_file_counts_whole_on_the_bar_however_its_tries_went() {
        let progress = Progress::new(Display::Bar, 1, 100);
        let bar = progress.bar.clone().expect("bar");
        let file = progress.file(100);
        file.sent(60);
        assert_eq!(bar.position(), 60);
        file.undo();
        assert_eq!(bar.position(), 0);
        file.sent(100);
        file.complete();
        assert_eq!(bar.position(), 100);
        let skipped = progress.file(50);
        skipped.complete();
        assert_eq!(bar.position(), 150);
    }

    #[test]
    fn each_outcome_reads_as_one_line() {
        let refused = Outcome::Refused {
            reason: "not a JPEG, PNG or WebP image".into(),
            code: "unsupported_type".into(),
        };
        assert_eq!(
            describe("a/notes.jpg", &refused),
            "refused a/notes.jpg: not a JPEG, PNG or WebP image (unsupported_type)"
        );
        assert_eq!(describe("b.jpg", &Outcome::Uploaded), "uploaded b.jpg");
        assert_eq!(
            describe("b.jpg", &Outcome::Present),
            "skipped b.jpg (already in the gallery)"
        );
    }
}
