//! The server in plain (seed-compatible) mode, against a real listener on an
//! ephemeral loopback port.

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use chatmon::eventlog::{self, EventKind};

use crate::util::process;
use crate::util::{Plain, TestServer, WAIT, assert_log_parses, connect, wait_until};

/// Reads until a newline (bounded by the read timeout), as the seed's client
/// reads its answer.
fn read_line_raw(s: &mut std::net::TcpStream) -> Vec<u8> {
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    while !got.ends_with(b"\n") {
        assert!(got.len() < 64 * 1024, "no newline in {} bytes", got.len());
        let n = s.read(&mut buf).expect("recv");
        assert!(n > 0, "server closed early");
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn plain_line_gets_the_seed_reply() {
    let ts = TestServer::start();
    let mut c = Plain::new(ts.addr);
    c.send(b"hello\n");
    assert_eq!(c.line(), "Server received: hello");
    c.send(b"with crlf\r\n");
    assert_eq!(c.line(), "Server received: with crlf");
    c.send(b"two\nlines\n");
    assert_eq!(c.line(), "Server received: two");
    assert_eq!(c.line(), "Server received: lines");
    c.send("wide 世界 🎉\n".as_bytes());
    assert_eq!(c.line(), "Server received: wide 世界 🎉");
}

#[test]
fn log_response_times_are_the_reply_histogram() {
    // Four clients at once: a plain message's two lines still come together
    // (no other client's line between them), and `Message Sent` minus
    // `Message Received` is the very sample the reply-time histogram holds:
    // their sums agree to the microsecond each stamp is written at.
    const CLIENTS: usize = 4;
    const N: usize = 50;
    let ts = TestServer::start();
    std::thread::scope(|s| {
        for k in 0..CLIENTS {
            let addr = ts.addr;
            s.spawn(move || {
                let mut c = Plain::new(addr);
                for i in 0..N {
                    c.send(format!("c{k} m{i}\n").as_bytes());
                    assert_eq!(c.line(), format!("Server received: c{k} m{i}"));
                }
            });
        }
    });
    let total = (CLIENTS * N) as u64;
    // A client can read its last reply before the server thread has counted
    // and logged it (both follow the write): wait for the server's side.
    let traffic = &ts.server().counters().traffic;
    wait_until("every reply counted", || traffic.replies_sent() == total);
    let h = traffic.reply_times();
    assert_eq!(h.count, total);
    let sent = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| l.starts_with("Message Sent: ") && l.contains(" - server -> "))
            .count() as u64
    };
    let lines = crate::util::wait_for("every reply logged", || {
        let lines = ts.log_lines();
        (sent(&lines) == total).then_some(lines)
    });
    let events: Vec<_> = lines
        .iter()
        .map(|l| eventlog::parse_line(l).expect("parses"))
        .collect();
    let (mut pairs, mut log_sum_us) = (0u64, 0i64);
    for w in events.windows(2) {
        if w[0].kind() == EventKind::MessageReceived {
            assert_eq!(
                w[1].kind(),
                EventKind::MessageSent,
                "{:?} then {:?}",
                w[0],
                w[1]
            );
            let who = |m: &str| m.split(": ").next().map(|p| p[10..].to_string());
            assert_eq!(who(&w[0].message), who(&w[1].message), "one client's pair");
            log_sum_us += (w[1].time - w[0].time).num_microseconds().expect("small");
            pairs += 1;
        }
    }
    assert_eq!(pairs, total);
    let hist_sum_us = h.sum_secs * 1e6;
    assert!(
        (log_sum_us as f64 - hist_sum_us).abs() <= total as f64,
        "log {log_sum_us} µs, histogram {hist_sum_us:.1} µs"
    );
}

#[test]
fn message_without_newline_is_answered_like_the_seed() {
    let ts = TestServer::start();
    // Exactly what the seed's client does: send without newline, then recv.
    let mut s = connect(ts.addr);
    s.write_all(b"Hello, Server!").expect("send");
    assert_eq!(read_line_raw(&mut s), b"Server received: Hello, Server!\n");
    // And again on the same connection.
    s.write_all(b"second").expect("send");
    assert_eq!(read_line_raw(&mut s), b"Server received: second\n");
}

#[test]
fn half_close_still_gets_the_last_reply() {
    let ts = TestServer::start();
    let mut s = connect(ts.addr);
    s.write_all(b"bye").expect("send");
    s.shutdown(std::net::Shutdown::Write).expect("half close");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read to end");
    assert_eq!(out, "Server received: bye\n");
}

#[test]
fn seed_python_client_gets_its_reply() {
    let ts = TestServer::start();
    if !process::installed("python3") {
        // What the script does, without Python: one send, one recv.
        eprintln!("python3 is not installed: the seed client's exchange is replayed in Rust");
        let mut s = connect(ts.addr);
        s.write_all(b"Hello, Server!").expect("send");
        assert_eq!(read_line_raw(&mut s), b"Server received: Hello, Server!\n");
        return;
    }
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n\
         s.settimeout(5)\n\
         s.connect(('127.0.0.1', {}))\n\
         s.send('Hello, Server!'.encode())\n\
         print(s.recv(1024).decode(), end='')\n\
         s.close()\n",
        ts.addr.port()
    );
    let mut python = Command::new("python3");
    python.arg("-c").arg(script);
    let out = process::run(python, WAIT * 2);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Server received: Hello, Server!\n"
    );
}

#[test]
fn oversized_line_is_refused_and_connection_stays_usable() {
    let ts = TestServer::with(|c| c.max_line = 1000);
    let mut c = Plain::new(ts.addr);
    let mut big = vec![b'x'; 5000];
    big.push(b'\n');
    c.send(&big);
    let err = c.line();
    assert!(err.starts_with("Error: "), "{err}");
    assert!(err.contains("5000 bytes"), "{err}");
    assert!(err.contains("limit of 1000 bytes"), "{err}");
    c.send(b"still here\n");
    assert_eq!(c.line(), "Server received: still here");
    // Exactly at the limit is fine.
    let mut exact = vec![b'y'; 1000];
    exact.push(b'\n');
    c.send(&exact);
    assert_eq!(c.line(), format!("Server received: {}", "y".repeat(1000)));
    ts.wait_log("for the oversized line", |l| {
        l.starts_with("Error: ") && l.contains("5000 bytes")
    });
}

#[test]
fn invalid_utf8_is_refused_and_connection_stays_usable() {
    let ts = TestServer::start();
    let mut c = Plain::new(ts.addr);
    c.send(b"ab\xff\xfecd\n");
    let err = c.line();
    assert!(
        err.starts_with("Error: message is not valid UTF-8"),
        "{err}"
    );
    c.send(b"ok\n");
    assert_eq!(c.line(), "Server received: ok");
}

#[test]
fn connections_over_the_limit_are_refused_and_logged() {
    let ts = TestServer::with(|c| c.max_clients = 2);
    let mut a = Plain::new(ts.addr);
    let mut b = Plain::new(ts.addr);
    a.send(b"a\n");
    b.send(b"b\n");
    assert_eq!(a.line(), "Server received: a");
    assert_eq!(b.line(), "Server received: b");
    let mut third = connect(ts.addr);
    let mut out = String::new();
    let _ = third.read_to_string(&mut out);
    assert!(
        out.starts_with("Error: server is full (2 clients)"),
        "{out:?}"
    );
    ts.wait_log("for the refusal", |l| l.contains("refused: server is full"));
    // The clients it has are still served, and a slot frees when one leaves.
    a.send(b"again\n");
    assert_eq!(a.line(), "Server received: again");
    drop(b);
    wait_until("for the slot to be freed", || {
        ts.server().active_clients() < 2
    });
    let mut d = Plain::new(ts.addr);
    d.send(b"d\n");
    assert_eq!(d.line(), "Server received: d");
}

#[test]
fn every_event_is_logged_in_the_seed_format() {
    let mut ts = TestServer::start();
    let mut c = Plain::new(ts.addr);
    c.send(b"log me\n");
    assert_eq!(c.line(), "Server received: log me");
    drop(c);
    ts.wait_log("for the disconnection", |l| {
        l.starts_with("Disconnection: ")
    });
    ts.stop();
    let lines = ts.log_lines();
    assert_log_parses(&lines);
    let kinds: Vec<EventKind> = lines
        .iter()
        .map(|l| eventlog::parse_line(l).expect("parses").kind())
        .collect();
    assert_eq!(kinds.first(), Some(&EventKind::ServerStart));
    assert_eq!(kinds.last(), Some(&EventKind::ServerStop));
    for k in [
        EventKind::Connection,
        EventKind::MessageReceived,
        EventKind::MessageSent,
        EventKind::Disconnection,
    ] {
        assert!(kinds.contains(&k), "no {k} in {lines:#?}");
    }
    let received = lines
        .iter()
        .find(|l| l.starts_with("Message Received: "))
        .expect("received line");
    assert!(received.ends_with(": log me"), "{received}");
    assert!(received.contains("server <- 127.0.0.1:"), "{received}");
    let sent = lines
        .iter()
        .find(|l| l.starts_with("Message Sent: "))
        .expect("sent line");
    assert!(sent.ends_with("Server received: log me"), "{sent}");
}

#[test]
fn shutdown_tells_clients_and_ends_the_log() {
    let mut ts = TestServer::start();
    let mut c = Plain::new(ts.addr);
    c.send(b"x\n");
    assert_eq!(c.line(), "Server received: x");
    ts.stop();
    assert_eq!(c.line(), "Server is stopping. Goodbye.");
    assert_eq!(c.line(), "", "connection should be closed");
    let lines = ts.log_lines();
    assert!(lines.last().expect("lines").starts_with("Server Stop: "));
}

#[test]
fn shutdown_is_not_held_up_by_a_peer_that_stopped_reading() {
    let mut ts = TestServer::start();
    let mut w = connect(ts.addr);
    w.set_write_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    // Send until our own writes block: by then the server's socket buffers
    // are full and its session thread is stuck writing a reply we never read.
    let line = format!("{}\n", "z".repeat(1000));
    let mut sent = 0usize;
    while sent < 200_000 && w.write_all(line.as_bytes()).is_ok() {
        sent += 1;
    }
    let started = Instant::now();
    ts.stop();
    // The session's write timeout is 10 s; the goodbye must not wait for it.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}",
        started.elapsed()
    );
    let lines = ts.log_lines();
    assert!(lines.last().expect("lines").starts_with("Server Stop: "));
}
