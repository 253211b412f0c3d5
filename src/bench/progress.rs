//! The progress bar a bench draws on stderr while a row runs (nothing when
//! stderr is not a terminal). Reads the row's counters; changes nothing.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use super::driver::RowShared;
use super::{BenchConfig, Stop};

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// A row's bar and the task that keeps it current.
pub(crate) struct Progress {
    bar: ProgressBar,
    ticker: JoinHandle<()>,
}

impl Progress {
    /// Starts the bar of a row of `clients` clients; it counts replies
    /// (`--messages`) or time (`--duration`) until the row is done.
    pub(crate) fn start(config: &BenchConfig, clients: usize, sh: Arc<RowShared>) -> Progress {
        let bar = bar(config, clients);
        let pb = bar.clone();
        let stop = config.stop;
        let ticker = tokio::spawn(async move {
            let mut done = sh.done.subscribe();
            let mut every = tokio::time::interval(TICK);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = done.wait_for(|d| *d) => break,
                }
                let n = sh.completed.load(Ordering::Relaxed);
                match stop {
                    Stop::Messages(_) => pb.set_position(n),
                    Stop::Duration(_) => {
                        let ms = Instant::now()
                            .saturating_duration_since(sh.start)
                            .as_millis();
                        pb.set_position(u64::try_from(ms).unwrap_or(u64::MAX));
                    }
                }
                pb.set_message(format!("{clients} clients, {n} replies"));
            }
        });
        Progress { bar, ticker }
    }

    /// Waits for the row's end to reach the ticker, then clears the bar.
    pub(crate) async fn finish(self) {
        // A ticker that panicked has nothing left to draw.
        let _ = self.ticker.await;
        self.bar.finish_and_clear();
    }
}

fn bar(config: &BenchConfig, clients: usize) -> ProgressBar {
    let (len, template) = match config.stop {
        Stop::Messages(m) => (
            m.saturating_mul(clients as u64),
            "{bar:30} {pos}/{len} replies  {msg}",
        ),
        Stop::Duration(d) => (
            u64::try_from((d + config.warmup).as_millis()).unwrap_or(u64::MAX),
            "{bar:30} {elapsed} / {len}ms  {msg}",
        ),
    };
    // The stderr target draws nothing when stderr is not a terminal.
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb
}
