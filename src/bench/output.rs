//! A sweep's results for people (the table) and for programs (JSON, CSV).
//! Formatting only: every figure comes from the [`BenchReport`].

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use super::{BenchError, BenchReport, io_err};
use crate::latency::ms;

/// The rows as a table for people.
pub fn render_table(report: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "server {}, {} mode, {} loop{}, {} byte payload, warm-up {:.1}s",
        report.server,
        report.mode.name(),
        report.load,
        report
            .rate
            .map(|r| format!(" at {r} msg/s"))
            .unwrap_or_default(),
        report.size,
        report.warmup_secs,
    );
    let _ = writeln!(s, "round-trip latency in milliseconds");
    let chat = report.rows.iter().any(|r| r.relay.is_some());
    let tls = report.rows.iter().any(|r| r.handshakes_per_sec.is_some());
    let _ = write!(
        s,
        "{:>7} {:>10} {:>7} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "clients", "messages", "errors", "msg/s", "p50", "p90", "p99", "p99.9", "max"
    );
    if chat {
        let _ = write!(s, " {:>10} {:>9} {:>9}", "relays", "relay p50", "relay p99");
    }
    let stamped = report.rows.iter().any(|r| r.server_time.is_some());
    if stamped {
        let _ = write!(
            s,
            " {:>9} {:>9} {:>9} {:>9}",
            "srv p50", "srv p99", "net p50", "net p99"
        );
    }
    if tls {
        let _ = write!(s, " {:>9}", "TLS hs/s");
    }
    s.push('\n');
    for r in &report.rows {
        let l = &r.latency;
        let _ = write!(
            s,
            "{:>7} {:>10} {:>7} {:>11.1} {:>8} {:>8} {:>8} {:>8} {:>8}",
            r.clients,
            r.messages,
            r.errors,
            r.throughput,
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.max_us)
        );
        if let Some(rl) = &r.relay {
            let _ = write!(
                s,
                " {:>10} {:>9} {:>9}",
                rl.count,
                ms(rl.p50_us),
                ms(rl.p99_us)
            );
        }
        if let (Some(sv), Some(nw)) = (&r.server_time, &r.network) {
            let _ = write!(
                s,
                " {:>9} {:>9} {:>9} {:>9}",
                ms(sv.p50_us),
                ms(sv.p99_us),
                ms(nw.p50_us),
                ms(nw.p99_us)
            );
        }
        if tls {
            match r.handshakes_per_sec {
                Some(h) => {
                    let _ = write!(s, " {h:>9.0}");
                }
                None => {
                    let _ = write!(s, " {:>9}", "-");
                }
            }
        }
        s.push('\n');
    }
    let split = report.rows.iter().any(|r| r.relay_cross_node.is_some());
    if split {
        let _ = writeln!(s, "relay latency (one way) by pair, in milliseconds");
        let _ = writeln!(
            s,
            "{:>7} {:>11} {:>10} {:>8} {:>8} {:>8} {:>8}",
            "clients", "pair", "relays", "p50", "p90", "p99", "max"
        );
        for r in &report.rows {
            for (pair, l) in [
                ("same-node", &r.relay_same_node),
                ("cross-node", &r.relay_cross_node),
            ] {
                if let Some(l) = l {
                    let _ = writeln!(
                        s,
                        "{:>7} {:>11} {:>10} {:>8} {:>8} {:>8} {:>8}",
                        r.clients,
                        pair,
                        l.count,
                        ms(l.p50_us),
                        ms(l.p90_us),
                        ms(l.p99_us),
                        ms(l.max_us)
                    );
                }
            }
        }
    }
    for r in &report.rows {
        if let Some(e) = &r.first_error {
            let _ = writeln!(
                s,
                "{} clients: {} errors, the first: {e}",
                r.clients, r.errors
            );
        }
    }
    s
}

/// Writes the report as JSON.
pub fn write_json(report: &BenchReport, path: &Path) -> Result<(), BenchError> {
    let text = serde_json::to_string_pretty(report).map_err(|e| BenchError::Io {
        context: "cannot encode the report".into(),
        source: io::Error::other(e),
    })?;
    std::fs::write(path, text + "\n").map_err(io_err(format!("cannot write {}", path.display())))
}

/// The rows as CSV, one line per client count, latencies in microseconds.
pub fn to_csv(report: &BenchReport) -> String {
    let mut s = String::from(
        "clients,connected,messages,errors,elapsed_s,throughput_msg_s,p50_us,p90_us,p99_us,p999_us,max_us,mean_us,relays,relay_p50_us,relay_p99_us,relay_max_us\n",
    );
    for r in &report.rows {
        let l = &r.latency;
        let _ = write!(
            s,
            "{},{},{},{},{:.6},{:.1},{},{},{},{},{},{:.1}",
            r.clients,
            r.connected,
            r.messages,
            r.errors,
            r.elapsed_secs,
            r.throughput,
            l.p50_us,
            l.p90_us,
            l.p99_us,
            l.p999_us,
            l.max_us,
            l.mean_us
        );
        match &r.relay {
            Some(rl) => {
                let _ = writeln!(s, ",{},{},{},{}", rl.count, rl.p50_us, rl.p99_us, rl.max_us);
            }
            None => s.push_str(",,,,\n"),
        }
    }
    s
}

/// Writes the CSV (see [`to_csv`]).
pub fn write_csv(report: &BenchReport, path: &Path) -> Result<(), BenchError> {
    std::fs::write(path, to_csv(report)).map_err(io_err(format!("cannot write {}", path.display())))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bench::{Mode, Row};
    use crate::latency::Latency;

    fn lat(base: u64) -> Latency {
        Latency {
            count: base * 10,
            min_us: base,
            p50_us: base * 2,
            p90_us: base * 3,
            p99_us: base * 5,
            p999_us: base * 8,
            max_us: base * 13,
            mean_us: base as f64 * 2.345,
        }
    }

    /// A sweep of three rows with made-up figures; `chat` adds relays and an
    /// open-loop rate.
    pub(crate) fn fixture(chat: bool) -> BenchReport {
        let rows = [1usize, 10, 100]
            .iter()
            .enumerate()
            .map(|(i, &c)| Row {
                clients: c,
                connected: c,
                messages: 1000 * (i as u64 + 1),
                errors: i as u64,
                elapsed_secs: 1.234567 * (i as f64 + 1.0),
                throughput: 810.3 * (i as f64 + 1.0),
                latency: lat(100 * (i as u64 + 1)),
                relay: chat.then(|| lat(50 * (i as u64 + 1))),
                server_time: None,
                network: None,
                relay_same_node: None,
                relay_cross_node: None,
                first_error: (i == 2).then(|| "no reply within 10s".to_string()),
                handshakes_per_sec: None,
            })
            .collect();
        BenchReport {
            server: "127.0.0.1:7878".into(),
            mode: if chat { Mode::Chat } else { Mode::Plain },
            load: if chat { "open" } else { "closed" },
            rate: chat.then_some(500.0),
            messages_per_client: (!chat).then_some(100),
            duration_secs: chat.then_some(2.5),
            warmup_secs: 1.0,
            size: 32,
            rows,
        }
    }

    #[test]
    fn table_lines_up_and_names_the_first_error() {
        let want = "\
server 127.0.0.1:7878, chat mode, open loop at 500 msg/s, 32 byte payload, warm-up 1.0s
round-trip latency in milliseconds
clients   messages  errors       msg/s      p50      p90      p99    p99.9      max     relays relay p50 relay p99
      1       1000       0       810.3    0.200    0.300    0.500    0.800    1.300        500     0.100     0.250
     10       2000       1      1620.6    0.400    0.600    1.000    1.600    2.600       1000     0.200     0.500
    100       3000       2      2430.9    0.600    0.900    1.500    2.400    3.900       1500     0.300     0.750
100 clients: 2 errors, the first: no reply within 10s
";
        assert_eq!(render_table(&fixture(true)), want);
        let plain = render_table(&fixture(false));
        assert!(plain.starts_with(
            "server 127.0.0.1:7878, plain mode, closed loop, 32 byte payload, warm-up 1.0s\n"
        ));
        assert!(!plain.contains("relay"));
        // With a server that stamps its replies: server and network time
        // beside the round trip.
        let mut stamped = fixture(true);
        for r in &mut stamped.rows {
            r.server_time = Some(lat(10));
            r.network = Some(lat(90));
        }
        let t = render_table(&stamped);
        let head = t.lines().nth(2).unwrap_or_default();
        assert!(
            head.ends_with("relay p99   srv p50   srv p99   net p50   net p99"),
            "{t}"
        );
        let row = t.lines().nth(3).unwrap_or_default();
        assert!(row.ends_with("0.020     0.050     0.180     0.450"), "{t}");
    }

    #[test]
    fn csv_has_a_line_per_row_and_empty_relay_columns_in_plain_mode() {
        let csv = to_csv(&fixture(false));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[1],
            "1,1,1000,0,1.234567,810.3,200,300,500,800,1300,234.5,,,,"
        );
        let csv = to_csv(&fixture(true));
        assert!(
            csv.lines()
                .nth(3)
                .is_some_and(|l| l.ends_with(",1500,300,750,1950"))
        );
    }

    #[test]
    fn json_names_the_loop_and_skips_what_does_not_apply() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("b.json");
        write_json(&fixture(false), &path).expect("written");
        let text = std::fs::read_to_string(&path).expect("read back");
        assert!(text.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["loop"], "closed");
        assert_eq!(v["mode"], "plain");
        assert!(v.get("rate").is_none() && v.get("duration_secs").is_none());
        assert!(v["rows"][0].get("relay").is_none());
        assert_eq!(v["rows"][2]["first_error"], "no reply within 10s");
    }
}
