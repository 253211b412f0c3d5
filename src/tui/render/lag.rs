//! The status bar's lag (`lag 0.42ms`, from the latest probe) and the live
//! panel's last note (an export's file, a reset). High lag and timeouts say
//! so with a glyph and a word, not only a colour.

use std::time::Duration;

use ratatui::text::Span;

use super::Theme;
use crate::tui::app::{App, Lag};

/// `0.42ms`, `12.3ms`, `1.23s`: the lag to two decimals where it is small.
pub(crate) fn fmt_lag(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2}ms")
    } else if ms < 1000.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{:.2}s", ms / 1000.0)
    }
}

pub(super) fn spans(app: &App, theme: &Theme) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    let lag = match app.live().lag() {
        Lag::Unknown if app.live().probes_on() => Some(("lag …".to_string(), theme.dim)),
        Lag::Unknown => None,
        Lag::Normal(d) => Some((format!("lag {}", fmt_lag(d)), theme.lag_ok)),
        Lag::High(d) => Some((format!("lag {} ▲ high", fmt_lag(d)), theme.lag_high)),
        Lag::TimedOut(after) => Some((
            format!("lag ✗ timeout (no reply in {})", fmt_lag(after)),
            theme.lost,
        )),
    };
    if let Some((text, style)) = lag {
        out.push(Span::raw("│ "));
        out.push(Span::styled(text, style));
        out.push(Span::raw(" "));
    }
    if !app.mouse() {
        out.push(Span::raw("│ "));
        out.push(Span::styled("mouse off".to_string(), theme.dim));
        out.push(Span::raw(" "));
    }
    if let Some((failed, note)) = app.live_note() {
        out.push(Span::raw("│ "));
        let style = if *failed { theme.lost } else { theme.dim };
        out.push(Span::styled(note.clone(), style));
        out.push(Span::raw(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_reads_as_the_issue_says() {
        assert_eq!(fmt_lag(Duration::from_micros(420)), "0.42ms");
        assert_eq!(fmt_lag(Duration::from_micros(12_340)), "12.3ms");
        assert_eq!(fmt_lag(Duration::from_millis(1500)), "1.50s");
    }
}
