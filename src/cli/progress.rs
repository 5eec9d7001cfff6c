//! [`Progress`]: a progress bar on stderr for long work (building or moving a repo, copying
//! blobs, creating tables), shown only when stderr is a terminal and the output is not JSON, so
//! pipes, logs and scripts never see one.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar, or nothing when there is no terminal to draw it on. Clones share the bar.
#[derive(Debug, Clone)]
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    fn new(total: Option<u64>, template: &str, label: &str, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_prefix(label.to_owned());
        Progress(Some(bar))
    }

    /// A bar counting bytes, of `total` if known.
    pub(crate) fn bytes(label: &str, total: Option<u64>, quiet: bool) -> Progress {
        let template = match total {
            Some(_) => "{prefix:>8} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            None => "{prefix:>8} {spinner} {bytes} {bytes_per_sec}",
        };
        Progress::new(total, template, label, quiet)
    }

    /// A counter of things whose total is not known yet (records read from stdin).
    pub(crate) fn counter(label: &str, quiet: bool) -> Progress {
        Progress::new(None, "{prefix:>8} {spinner} {pos} {per_sec}", label, quiet)
    }

    /// A spinner for work that reports no steps (creating tables), ticking on its own.
    pub(crate) fn spinner(label: &str, quiet: bool) -> Progress {
        let progress = Progress::new(None, "{prefix:>8} {spinner} {elapsed}", label, quiet);
        if let Some(bar) = &progress.0 {
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
        }
        progress
    }

    /// A bar counting `total` things.
    pub(crate) fn count(label: &str, total: u64, quiet: bool) -> Progress {
        Progress::new(
            Some(total),
            "{prefix:>8} [{bar:40}] {pos}/{len} {per_sec} {eta}",
            label,
            quiet,
        )
    }

    /// Moves the bar on by `n`.
    pub(crate) fn advance(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    /// Stops the bar, leaving its last state on the line (what was done, how fast).
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish();
        }
    }
}
