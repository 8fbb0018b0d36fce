//! Progress reporting: an indicatif bar on a terminal, plain log lines otherwise (CI).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// A progress reporter for a known number of steps.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: u64,
    last_log: Instant,
}

impl Progress {
    /// Starts reporting `total` steps of the task `label`.
    pub fn new(label: &str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta} {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(label.to_string());
            bar
        });
        Self {
            bar,
            label: label.to_string(),
            total,
            done: 0,
            last_log: Instant::now(),
        }
    }

    /// Advances by `n` steps, with a short status message.
    pub fn inc(&mut self, n: u64, msg: &str) {
        self.done += n;
        match &self.bar {
            Some(bar) => {
                bar.set_message(msg.to_string());
                bar.inc(n);
            }
            None => {
                if self.last_log.elapsed() >= Duration::from_secs(10) || self.done >= self.total {
                    tracing::info!("{}: {}/{} {}", self.label, self.done, self.total, msg);
                    self.last_log = Instant::now();
                }
            }
        }
    }

    /// Prints a line above the bar (or logs it).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => tracing::info!("{line}"),
        }
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
