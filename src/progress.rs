//! Progress on stderr for long work, shown only to a person at a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Makes progress bars, or hidden ones when nobody is watching (a pipe, a scheduler, `--quiet`).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    visible: bool,
}

impl Progress {
    /// Visible when stderr is a terminal and not `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self {
            visible: !quiet && std::io::stderr().is_terminal(),
        }
    }

    fn target(&self) -> ProgressDrawTarget {
        if self.visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }
    }

    /// A bar counting `total` units of work.
    pub fn bar(&self, total: u64, unit: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(total), self.target());
        let template = format!(
            "{{elapsed_precise}} [{{bar:40}}] {{human_pos}}/{{human_len}} {unit} ({{per_sec}}, {{eta}} left)"
        );
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    }
}
