//! A [`LogReport`] for people (the text report) and for programs (JSON).
//! Formatting only: every figure comes from the report.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use super::{LogReport, ReportError, SOURCE_NONE, SOURCE_RTT};
use crate::latency::{Latency, ms};

/// Width of the client column of the latency table.
const NAME_WIDTH: usize = 24;
/// Clients with a row of their own; the rest are in the JSON.
const CLIENTS_SHOWN: usize = 50;
/// Malformed lines shown.
const MALFORMED_SHOWN: usize = 20;
/// Characters of a malformed line shown.
const TEXT_WIDTH: usize = 80;

/// The report for people.
pub fn render_text(r: &LogReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} lines ({} bytes), {} events, {} malformed",
        r.lines, r.bytes, r.events, r.malformed
    );
    if let (Some(a), Some(b)) = (&r.first_time, &r.last_time) {
        let _ = writeln!(s, "from {a} to {b}");
    }
    let kinds: Vec<String> = r.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    if !kinds.is_empty() {
        let _ = writeln!(s, "events: {}", kinds.join(", "));
    }
    s.push('\n');
    latency_table(&mut s, r);
    s.push('\n');
    let timing = crate::timing::summary::render_text(&r.timing);
    if !timing.is_empty() {
        s.push_str(&timing);
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "throughput: {} messages, mean {:.1}/s, peak {}/s over {} seconds with events ({})",
        r.messages,
        r.mean_messages_per_second,
        r.peak_messages_per_second,
        r.seconds.len(),
        r.throughput_basis
    );
    if !r.stats.is_empty() {
        let peak = r.stats.iter().map(|p| p.rate).fold(0.0, f64::max);
        let peak_clients = r.stats.iter().map(|p| p.clients).max().unwrap_or(0);
        let _ = writeln!(
            s,
            "server stats: {} intervals, peak rate {peak:.1}/s, peak {peak_clients} clients",
            r.stats.len()
        );
    }
    let _ = writeln!(s, "connections: peak {} open", r.peak_connections);
    let _ = writeln!(s, "errors: {}", r.errors);
    for e in &r.error_samples {
        let _ = writeln!(s, "  {e}");
    }
    if r.malformed > 0 {
        let _ = writeln!(
            s,
            "\nmalformed lines: {} (first {} shown)",
            r.malformed,
            r.malformed_lines.len().min(MALFORMED_SHOWN)
        );
        for b in r.malformed_lines.iter().take(MALFORMED_SHOWN) {
            let _ = writeln!(
                s,
                "  line {}: {}: {}",
                b.line,
                b.error,
                truncate(&b.text, TEXT_WIDTH)
            );
        }
    }
    s
}

/// The latency section: where the figures come from, then one row overall
/// and one per client.
fn latency_table(s: &mut String, r: &LogReport) {
    if r.latency_source == SOURCE_NONE {
        let _ = writeln!(
            s,
            "latency: none in this log (no `rtt=` and no Message Sent/Received pairs)"
        );
        return;
    }
    let how = if r.latency_source == SOURCE_RTT {
        "round trips recorded by the clients".to_string()
    } else {
        format!(
            "paired Message Sent / Message Received timestamps in order; resolution {} (what the timestamps carry){}",
            r.latency_resolution,
            if r.unpaired_sends > 0 {
                format!(", {} sends without a reply", r.unpaired_sends)
            } else {
                String::new()
            }
        )
    };
    let _ = writeln!(s, "latency (ms): {how}");
    let _ = writeln!(
        s,
        "{:<NAME_WIDTH$} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "client", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    let mut row = |name: &str, l: &Latency| {
        let _ = writeln!(
            s,
            "{:<NAME_WIDTH$} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            truncate(name, NAME_WIDTH),
            l.count,
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.max_us)
        );
    };
    row("all", &r.latency);
    if r.per_client.len() > 1 {
        for c in r.per_client.iter().take(CLIENTS_SHOWN) {
            row(&c.client, &c.latency);
        }
        if r.per_client.len() > CLIENTS_SHOWN {
            let _ = writeln!(
                s,
                "... and {} more clients (see --json)",
                r.per_client.len() - CLIENTS_SHOWN
            );
        }
    }
}

/// `s` cut to `max` characters, the last of them an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Writes the report as JSON.
pub fn write_json(r: &LogReport, path: &Path) -> Result<(), ReportError> {
    let err = |source| ReportError::Io {
        path: path.display().to_string(),
        source,
    };
    let text = serde_json::to_string_pretty(r).map_err(|e| err(io::Error::other(e)))?;
    std::fs::write(path, text + "\n").map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::run;

    #[test]
    fn long_names_are_cut_with_an_ellipsis() {
        assert_eq!(truncate("short", 8), "short");
        assert_eq!(truncate("exactly8", 8), "exactly8");
        assert_eq!(truncate("ninechars", 8), "ninecha…");
    }

    #[test]
    fn text_report_of_a_seed_log() {
        let r = run("Connection: 2024-10-13 14:35:24 - Client connected\n\
             Message Sent: 2024-10-13 14:35:45 - Hello, Server!\n\
             Message Received: 2024-10-13 14:35:46 - Server received: Hello, Server!\n\
             Message Sent: 2024-10-13 14:35:47 - again\n\
             garbage\n");
        let want = "\
5 lines (224 bytes), 4 events, 1 malformed
from 2024-10-13 14:35:24.000000 to 2024-10-13 14:35:47.000000
events: Connection 1, Message Received 1, Message Sent 2

latency (ms): paired Message Sent / Message Received timestamps in order; resolution 1 s (what the timestamps carry), 1 sends without a reply
client                       count       p50       p90       p99     p99.9       max
all                              1  1000.447  1000.447  1000.447  1000.447  1000.447

throughput: 2 messages, mean 0.1/s, peak 1/s over 4 seconds with events (messages clients sent (`Message Sent` lines))
connections: peak 1 open
errors: 0

malformed lines: 1 (first 1 shown)
  line 5: no `Event_Type: ` prefix: garbage
";
        assert_eq!(render_text(&r), want);
    }

    #[test]
    fn a_log_without_latency_says_so() {
        let r = run("Connection: 2024-10-13 14:35:24 - Client connected\n");
        assert!(render_text(&r).contains("latency: none in this log"));
    }
}
