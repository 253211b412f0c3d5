//! Writes a synthetic chatmon event log of a given size, for measuring
//! `chatmon report` on big files. Every line comes from the one writer,
//! `eventlog::format_line`: server and client lines as a shared `log.txt`
//! holds them (receive, reply, client send, client receive with `rtt=`),
//! connections, `Stats` every 10 s, an error now and then and one malformed
//! line per 100,000.
//!
//! ```text
//! cargo run --release --example gen_log -- big.log 1G
//! ```

use std::io::{BufWriter, Write};
use std::time::Duration;

use chrono::NaiveDateTime;

use chatmon::eventlog::{self, EventKind};

/// Clients in the log, each with its own name and port.
const CLIENTS: u64 = 100;
/// Port of the first client (`127.0.0.1:40000`).
const FIRST_PORT: u64 = 40000;
/// Log time between messages: ~20,000 messages per second.
const MESSAGE_STEP: Duration = Duration::from_micros(50);
/// Round trips spread over `RTT_BASE_US .. RTT_BASE_US + RTT_SPREAD_US`,
/// stepped by a prime so that they do not repeat in a short cycle.
const RTT_BASE_US: u64 = 150;
const RTT_SPREAD_US: u64 = 900;
const RTT_STEP: u64 = 7919;
/// One error line per this many messages.
const ERROR_EVERY: u64 = 50_000;
/// One malformed line per this many messages.
const BAD_LINE_EVERY: u64 = 100_000;
/// Log time between `Stats` lines, as a chatmon server's default.
const STATS_EVERY: Duration = Duration::from_secs(10);
/// Output buffer: big writes for a big file.
const WRITE_BUF: usize = 1 << 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(path), Some(size)) = (args.first(), args.get(1)) else {
        eprintln!("usage: gen_log FILE SIZE   (SIZE in bytes, or with K, M or G)");
        std::process::exit(2);
    };
    let Some(target) = parse_size(size) else {
        eprintln!("gen_log: {size:?} is not a size such as 500M or 1G");
        std::process::exit(2);
    };
    let file = match std::fs::File::create(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("gen_log: cannot create {path}: {e}");
            std::process::exit(1);
        }
    };
    let mut out = BufWriter::with_capacity(WRITE_BUF, file);
    let mut t = NaiveDateTime::parse_from_str("2026-01-02 03:04:05.000000", "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_default();
    let clients = CLIENTS;
    let mut written = 0u64;
    let mut i = 0u64;
    let mut next_stats = t + STATS_EVERY;
    let mut line = |kind: EventKind, t: NaiveDateTime, msg: &str, written: &mut u64| {
        let l = eventlog::format_line(&kind, t, msg);
        *written += l.len() as u64;
        out.write_all(l.as_bytes())
    };
    // One line in 100,000 is garbage, written through the same closure.
    let bad_line = "this line is not an event line";
    let mut result = Ok(());
    for c in 0..clients {
        result = result.and(line(
            EventKind::Connection,
            t,
            &format!("server: 127.0.0.1:{} connected", FIRST_PORT + c),
            &mut written,
        ));
    }
    while written < target && result.is_ok() {
        let c = i % clients;
        let name = format!("user{c}");
        let peer = format!("127.0.0.1:{}", FIRST_PORT + c);
        let rtt_us = RTT_BASE_US + (i * RTT_STEP) % RTT_SPREAD_US;
        let text = format!("message number {i} from {name}");
        t += MESSAGE_STEP;
        result = result
            .and(line(
                EventKind::MessageSent,
                t,
                &format!("{name} -> server 127.0.0.1:7878 #{i}: {text}"),
                &mut written,
            ))
            .and(line(
                EventKind::MessageReceived,
                t,
                &format!("server <- {name}@{peer} #{i}: {text}"),
                &mut written,
            ))
            .and(line(
                EventKind::MessageSent,
                t,
                &format!("server -> {name}@{peer} #{i}: Server received: {text}"),
                &mut written,
            ))
            .and(line(
                EventKind::MessageReceived,
                t + Duration::from_micros(rtt_us),
                &format!(
                    "{name} <- server 127.0.0.1:7878 #{i} {}: Server received: {text}",
                    eventlog::format_rtt(Duration::from_micros(rtt_us))
                ),
                &mut written,
            ));
        if i % ERROR_EVERY == ERROR_EVERY - 1 {
            result = result.and(line(
                EventKind::Error,
                t,
                &format!("server: {name}@{peer}: line of 70000 bytes is longer than the limit"),
                &mut written,
            ));
        }
        if i % BAD_LINE_EVERY == BAD_LINE_EVERY - 1 {
            result = result.and(line(
                EventKind::Other(String::new()),
                t,
                bad_line,
                &mut written,
            ));
        }
        if t >= next_stats {
            result = result.and(line(
                EventKind::Stats,
                t,
                &format!("server: clients={clients} messages=200000 rate=20000.0/s bytes_in=9000000 bytes_out=11000000 errors=0 interval=10.0s"),
                &mut written,
            ));
            next_stats += STATS_EVERY;
        }
        i += 1;
    }
    if let Err(e) = result.and(out.flush()) {
        eprintln!("gen_log: cannot write {path}: {e}");
        std::process::exit(1);
    }
    eprintln!("gen_log: wrote {written} bytes, {i} messages, to {path}");
}

fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'K' | 'k' => (&s[..s.len() - 1], 1 << 10),
        'M' | 'm' => (&s[..s.len() - 1], 1 << 20),
        'G' | 'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}
