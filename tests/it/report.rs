//! `chatmon report` on real logs: one written by a chatmon server and a real
//! chatmon client sharing a file (as `chatmon` does by default), and one in
//! the seed's format with malformed lines mixed in.

use std::time::Instant;

use chatmon::client::{self, ClientConfig, ClientEvent, Command};
use chatmon::eventlog::EventLog;
use chatmon::report::{self, ReportOptions};

use crate::util::process;
use crate::util::{TestServer, WAIT};

/// The seed's format exactly (whole seconds), from its README, plus a server
/// line, a reply and two lines that are not event lines.
const SEED_LOG: &str = "\
Connection: 2024-10-13 14:35:24 - Client connected
Message Sent: 2024-10-13 14:35:45 - Hello, Server!
this line is not an event
Message Received: 2024-10-13 14:35:45 - Hello, Server!
Message Received: 2024-10-13 14:35:46 - Server received: Hello, Server!
Connection: 13/10/2024 14:35:47 - a date the seed never wrote
Message Sent: 2024-10-13 14:35:50 - again
Message Received: 2024-10-13 14:35:52 - Server received: again
";

#[test]
fn seed_log_is_read_and_malformed_lines_are_numbered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.txt");
    std::fs::write(&path, SEED_LOG).expect("write log");
    let r = report::analyse_file(&path, &ReportOptions::default()).expect("report");
    assert_eq!(r.lines, 8);
    assert_eq!(r.events, 6);
    assert_eq!(r.malformed, 2);
    let numbers: Vec<u64> = r.malformed_lines.iter().map(|b| b.line).collect();
    assert_eq!(numbers, [3, 6]);
    assert_eq!(r.latency_source, "paired");
    assert_eq!(r.latency_resolution, "1 s");
    assert_eq!(r.latency.count, 2);
    // 1 s and 2 s, to three significant digits.
    assert!(r.latency.min_us >= 999_000 && r.latency.max_us <= 2_002_000);
    assert_eq!(r.messages, 2, "two `Message Sent` lines");
    assert_eq!(r.peak_connections, 1);
    let text = report::render_text(&r);
    assert!(text.contains("resolution 1 s"), "{text}");
    assert!(text.contains("line 3:"), "{text}");
    assert!(text.contains("line 6:"), "{text}");
}

#[test]
fn chatmon_log_gives_rtts_per_client_and_server_throughput() {
    let ts = TestServer::start();
    // The client appends to the server's log, as `chatmon` does by default.
    let client_log = EventLog::open(&ts.log_path).expect("open shared log");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (h, mut events) = client::spawn(
            ClientConfig::new(ts.addr.to_string(), "alice"),
            client_log.clone(),
        );
        for i in 0..5 {
            h.send(format!("message {i}"));
        }
        let deadline = Instant::now() + WAIT;
        let mut replies = 0;
        while replies < 5 {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, events.recv()).await {
                Ok(Some(ClientEvent::Reply { .. })) => replies += 1,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => panic!("only {replies} replies before the deadline"),
            }
        }
        h.command(Command::Quit);
        while let Ok(Some(e)) = tokio::time::timeout(WAIT, events.recv()).await {
            if e == ClientEvent::Closed {
                break;
            }
        }
    });
    client_log.flush();
    let mut ts = ts;
    ts.stop();
    let r = report::analyse_file(&ts.log_path, &ReportOptions::default()).expect("report");
    assert_eq!(r.malformed, 0, "{:?}", r.malformed_lines);
    assert_eq!(r.latency_source, "rtt");
    assert_eq!(r.latency_resolution, "1 µs");
    assert_eq!(r.latency.count, 5);
    let names: Vec<&str> = r.per_client.iter().map(|c| c.client.as_str()).collect();
    assert_eq!(names, ["alice"]);
    // Counted once, from the server's side, though both sides logged.
    assert_eq!(r.messages, 5);
    assert_eq!(r.peak_connections, 1);
    assert!(r.kinds.contains_key("Server Start"));
}

#[test]
fn cli_report_prints_and_writes_json_and_plot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log.txt");
    std::fs::write(&log, SEED_LOG).expect("write log");
    let (json, svg) = (dir.path().join("r.json"), dir.path().join("r.svg"));
    let out = process::chatmon([
        "report".as_ref(),
        log.as_os_str(),
        "--json".as_ref(),
        json.as_os_str(),
        "--plot".as_ref(),
        svg.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("malformed lines: 2"), "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid json");
    assert_eq!(v["malformed"], 2);
    assert_eq!(v["malformed_lines"][0]["line"], 3);
    assert!(std::fs::read_to_string(&svg).expect("svg").contains("<svg"));
}

#[test]
fn missing_log_is_a_clear_error_and_an_empty_one_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = report::analyse_file(&dir.path().join("nope.txt"), &ReportOptions::default())
        .expect_err("no such file");
    assert!(err.to_string().contains("nope.txt"), "{err}");
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").expect("write");
    let r = report::analyse_file(&empty, &ReportOptions::default()).expect("report");
    assert_eq!((r.lines, r.events, r.malformed), (0, 0, 0));
    assert_eq!(r.latency_source, "none");
}
