//! `chatmon bench` against real servers on loopback: an in-process chatmon
//! server, and tiny servers written here (a seed-style one that appends no
//! newline, one that stalls, one that hangs up). Small client counts and
//! message counts keep each test well under a few seconds; assertions are on
//! counts and on lower bounds that a sleep guarantees, never on speed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use chatmon::bench::{self, BenchConfig, Mode, Row, Stop};

use crate::util::TestServer;
use crate::util::process;

fn config(server: SocketAddr, clients: &[usize], stop: Stop) -> BenchConfig {
    BenchConfig {
        server: Some(server.to_string()),
        clients: clients.to_vec(),
        stop,
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(5),
        ..BenchConfig::default()
    }
}

fn assert_sane(row: &Row) {
    let l = &row.latency;
    assert_eq!(row.errors, 0, "{row:?}");
    assert_eq!(row.connected, row.clients);
    assert_eq!(l.count, row.messages, "one sample per measured reply");
    assert!(l.p50_us <= l.p90_us && l.p90_us <= l.p99_us, "{l:?}");
    assert!(l.p99_us <= l.p999_us && l.p999_us <= l.max_us, "{l:?}");
    assert!(row.throughput > 0.0);
    assert!(row.elapsed_secs > 0.0);
}

/// A server in the seed's style: every read of up to `chunk` bytes is
/// answered with `Server received: ` and exactly those bytes, no newline
/// added. A small `chunk` splits a payload over several replies. Serves
/// `conns` connections, then stops.
fn seed_style_server(conns: usize, chunk: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    thread::spawn(move || {
        for s in l.incoming().take(conns) {
            let mut s = s.expect("accept");
            thread::spawn(move || {
                let mut buf = vec![0u8; chunk];
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let mut out = b"Server received: ".to_vec();
                    out.extend_from_slice(&buf[..n]);
                    if s.write_all(&out).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn closed_loop_rows_are_sane_and_counts_add_up() {
    let ts = TestServer::start();
    let report = bench::run(&config(ts.addr, &[1, 4], Stop::Messages(50))).expect("bench runs");
    assert_eq!(report.rows.len(), 2);
    for row in &report.rows {
        assert_sane(row);
        assert_eq!(row.messages, row.clients as u64 * 50);
    }
    assert_eq!(report.load, "closed");
    // The server saw every message, warm-up or not (here there is none),
    // plus one unmeasured probe per connection.
    let received = ts
        .log_lines()
        .iter()
        .filter(|l| l.starts_with("Message Received:"))
        .count();
    assert_eq!(received, (50 + 1) + 4 * (50 + 1));
    let table = bench::render_table(&report);
    assert!(table.contains("p99.9"), "{table}");
    let csv = bench::to_csv(&report);
    assert_eq!(csv.lines().count(), 3, "{csv}");
}

#[test]
fn bench_alone_starts_its_own_server_and_keeps_its_log_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: PathBuf = dir.path().join("bench-log.txt");
    let cfg = BenchConfig {
        server: None,
        clients: vec![2],
        stop: Stop::Messages(20),
        warmup: Duration::from_millis(50),
        server_log: Some(log.clone()),
        ..BenchConfig::default()
    };
    let report = bench::run(&cfg).expect("bench runs");
    assert!(report.server.contains("in-process"), "{}", report.server);
    let row = &report.rows[0];
    assert_sane(row);
    assert_eq!(row.messages, 40);
    let text = std::fs::read_to_string(&log).expect("log kept");
    crate::util::assert_log_parses(&text.lines().map(str::to_string).collect::<Vec<_>>());
    assert!(text.contains("Server Stop"));
    // Warm-up messages reached the server too: at least the measured ones.
    assert!(text.matches("Message Received:").count() >= 40);
}

#[test]
fn open_loop_sends_exactly_its_schedule() {
    let ts = TestServer::start();
    // 400 msg/s over 4 clients for 0.5 s after a 0.25 s warm-up: messages
    // 100..300 of the schedule are measured, whatever the machine's speed.
    let cfg = BenchConfig {
        rate: Some(400.0),
        warmup: Duration::from_millis(250),
        ..config(ts.addr, &[4], Stop::Duration(Duration::from_millis(500)))
    };
    let report = bench::run(&cfg).expect("bench runs");
    let row = &report.rows[0];
    assert_sane(row);
    assert_eq!(row.messages, 200);
    assert_eq!(report.load, "open");
    let sent = ts
        .log_lines()
        .iter()
        .filter(|l| l.starts_with("Message Received:"))
        .count();
    assert_eq!(
        sent,
        300 + 4,
        "warm-up and measured messages and one probe per connection, nothing more"
    );
}

#[test]
fn open_loop_charges_a_stall_to_every_message_scheduled_during_it() {
    // Answers the probe, stalls 300 ms on the next message, then answers at once.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    thread::spawn(move || {
        if let Some(Ok(mut s)) = l.incoming().next() {
            let mut buf = vec![0u8; 4096];
            let mut pending = Vec::new();
            let mut reads = 0;
            loop {
                let n = match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                // The first read is the bench's probe. The next one holds the
                // first scheduled message, sent no earlier than the schedule's
                // start, so stalling after reading it delays it by 300 ms.
                reads += 1;
                if reads == 2 {
                    thread::sleep(Duration::from_millis(300));
                }
                pending.extend_from_slice(&buf[..n]);
                while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    let mut out = b"Server received: ".to_vec();
                    out.extend_from_slice(&line);
                    if s.write_all(&out).is_err() {
                        return;
                    }
                }
            }
        }
    });
    // 100 msg/s: messages at 0, 10, ... 490 ms. The 21 scheduled at 0..=200 ms
    // are answered after 300 ms at the earliest, so each waited at least 100 ms: more
    // than 10% of 50, so p90 must show it. A closed loop would have sent one.
    let cfg = BenchConfig {
        rate: Some(100.0),
        ..config(addr, &[1], Stop::Messages(50))
    };
    let row = &bench::run(&cfg).expect("bench runs").rows[0];
    assert_sane(row);
    assert_eq!(row.messages, 50);
    assert!(row.latency.p90_us >= 100_000, "{:?}", row.latency);
    assert!(row.latency.max_us >= 299_000, "{:?}", row.latency);
}

#[test]
fn plain_mode_works_against_a_seed_style_server_without_newlines() {
    // 40-byte payloads read 16 bytes at a time: each reply is three
    // `Server received: ` chunks of one line.
    let addr = seed_style_server(3, 16);
    let cfg = BenchConfig {
        size: 40,
        ..config(addr, &[3], Stop::Messages(30))
    };
    let row = &bench::run(&cfg).expect("bench runs").rows[0];
    assert_sane(row);
    assert_eq!(row.messages, 90);
}

#[test]
fn plain_mode_survives_pipelined_replies_from_a_seed_style_server() {
    // Open loop pipelines, so one read may hold several payloads and one
    // prefix covers them all.
    let addr = seed_style_server(2, 1024);
    let cfg = BenchConfig {
        rate: Some(2000.0),
        ..config(addr, &[2], Stop::Messages(100))
    };
    let row = &bench::run(&cfg).expect("bench runs").rows[0];
    assert_sane(row);
    assert_eq!(row.messages, 200);
}

#[test]
fn chat_mode_measures_replies_and_every_relay() {
    let ts = TestServer::start();
    let cfg = BenchConfig {
        mode: Mode::Chat,
        ..config(ts.addr, &[3], Stop::Messages(20))
    };
    let row = &bench::run(&cfg).expect("bench runs").rows[0];
    assert_sane(row);
    assert_eq!(row.messages, 60);
    let relay = row.relay.as_ref().expect("chat rows have relay figures");
    // Every message reaches the two other clients.
    assert_eq!(relay.count, 120);
    assert!(relay.p50_us <= relay.max_us);
}

#[test]
fn a_server_that_hangs_up_shows_as_errors_not_a_hang() {
    // Answers the probe, then refuses the next message and hangs up.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    thread::spawn(move || {
        for s in l.incoming().take(2) {
            let mut s = s.expect("accept");
            thread::spawn(move || {
                let mut buf = [0u8; 256];
                let n = s.read(&mut buf).unwrap_or(0);
                let mut out = b"Server received: ".to_vec();
                out.extend_from_slice(&buf[..n]);
                let _ = s.write_all(&out);
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"Error: go away\n");
            });
        }
    });
    let row = &bench::run(&config(addr, &[2], Stop::Messages(10)))
        .expect("bench runs")
        .rows[0];
    assert_eq!(row.connected, 2);
    assert!(row.errors >= 2, "{row:?}");
    assert_eq!(row.messages, 0);
    assert!(row.first_error.is_some());
}

#[test]
fn a_server_that_does_not_answer_the_seed_way_is_refused_clearly() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    thread::spawn(move || {
        if let Some(Ok(mut s)) = l.incoming().next() {
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"Error: go away\n");
        }
    });
    let err = bench::run(&config(addr, &[1], Stop::Messages(10))).expect_err("refused");
    assert!(err.to_string().contains("does not answer"), "{err}");
}

#[test]
fn nobody_listening_is_a_clear_error() {
    // Bind and drop: the port is (almost certainly) closed right after.
    let addr = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let err = bench::run(&config(addr, &[1], Stop::Messages(1))).expect_err("nothing listens");
    assert!(err.to_string().contains("no client could connect"), "{err}");
}

#[test]
fn cli_writes_json_csv_and_plot() {
    let ts = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (json, csv, svg) = (
        dir.path().join("b.json"),
        dir.path().join("b.csv"),
        dir.path().join("b.svg"),
    );
    let server = ts.addr.to_string();
    let mut args: Vec<std::ffi::OsString> = ["bench", "--server", &server, "--clients", "1,2"]
        .into_iter()
        .chain(["--messages", "20", "--warmup", "0s"])
        .map(Into::into)
        .collect();
    for (flag, path) in [("--json", &json), ("--csv", &csv), ("--plot", &svg)] {
        args.push(flag.into());
        args.push(path.into());
    }
    let out = process::chatmon(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("clients"), "{table}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid json");
    assert_eq!(v["rows"][1]["messages"], 40);
    assert_eq!(
        std::fs::read_to_string(&csv).expect("csv").lines().count(),
        3
    );
    assert!(std::fs::read_to_string(&svg).expect("svg").contains("<svg"));
}
