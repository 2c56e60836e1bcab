//! Progress bars on a terminal (indicatif), nothing otherwise: a CronJob's logs stay JSON.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    enabled: bool,
}

impl Progress {
    /// Bars when stderr is a terminal.
    pub fn for_stderr() -> Self {
        Self {
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// Never draws (tests, pipelines).
    pub fn hidden() -> Self {
        Self { enabled: false }
    }

    /// A bar of `len` steps labelled `what`; hidden when not on a terminal.
    pub fn bar(&self, len: u64, what: &str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) =
            ProgressStyle::with_template("{msg:>18} [{bar:40}] {pos}/{len} {elapsed}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}
