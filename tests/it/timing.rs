//! Where the time goes, end to end: two real `chatmon chat` clients, one of
//! them two seconds ahead under Debian's `faketime`, must agree on the clock
//! offset and see a loopback one-way delay; and the TUI must work against
//! seed-style plain servers (the seed's Python server's way: `recv(1024)`,
//! answered with the prefix and no newline of its own).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use crate::util::TestServer;
use crate::util::process;
use crate::util::pty::Tui;

/// The skew faketime gives the first client, and how far its measured
/// offset may stray from it on a loaded loopback ("a few ms").
const SKEW_MS: f64 = 2000.0;
const TOLERANCE_MS: f64 = 5.0;
/// Messages the skewed client sends: the fastest of them must show a
/// loopback delay (about a millisecond on an idle machine), while a loaded
/// 2-core machine may stall any single one by a scheduling wait, as it
/// would stall a round trip.
const MESSAGES: usize = 5;
/// No single delay may come anywhere near the 2000 ms that subtracting the
/// raw clocks would give.
const DELAY_LIMIT_MS: f64 = 500.0;

/// The offset the latency panel shows, in ms.
fn panel_offset(screen: &str) -> Option<f64> {
    let rest = &screen[screen.find("clock offset ")? + "clock offset ".len()..];
    rest[..rest.find("ms")?].parse().ok()
}

/// `KEY=-1.234ms±0.045ms` (or without the bound) from a log line: the value
/// and the bound in ms.
fn figure(line: &str, key: &str) -> Option<(f64, Option<f64>)> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest.find([' ', ':']).unwrap_or(rest.len());
    let word = &rest[..end];
    match word.split_once('±') {
        Some((v, b)) => Some((
            v.strip_suffix("ms")?.parse().ok()?,
            Some(b.strip_suffix("ms")?.parse().ok()?),
        )),
        None => Some((word.strip_suffix("ms")?.parse().ok()?, None)),
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn skewed_clocks_agree_on_offset_and_one_way_delay() {
    assert!(
        process::installed("faketime"),
        "this test needs Debian's faketime (apt-get install faketime; .ci/run does)"
    );
    let ts = TestServer::start();
    let server = ts.addr.to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let common = ["--server", &server, "--no-local-server"];
    let mut ahead = Tui::spawn_under(
        &["faketime", "-f", "+2s"],
        &[
            &["chat", "--name", "ahead", "--log", "ahead.txt"][..],
            &common,
        ]
        .concat(),
        &[],
        dir.path(),
    );
    let mut honest = Tui::spawn(
        &[
            &["chat", "--name", "honest", "--log", "honest.txt"][..],
            &common,
        ]
        .concat(),
        &[],
        dir.path(),
    );
    // The clock probes after the welcome give both an offset before anyone
    // types: the latency panel shows it.
    let screen = ahead.wait_for("clock offset ");
    let shown = panel_offset(&screen).unwrap_or_else(|| panic!("no offset in {screen}"));
    assert!((shown + SKEW_MS).abs() < TOLERANCE_MS, "{screen}");
    honest.wait_for("clock offset ");
    // Whoever came second sees the other in its welcome, not as a join.
    ahead.wait_for("2 in room");
    for i in 0..MESSAGES {
        ahead.keys(format!("hello from the future {i}\r").as_bytes());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ahead.wait_for("(server ");
    let screen = honest.wait_for(&format!("hello from the future {}  · ", MESSAGES - 1));
    assert!(screen.contains(" one way"), "{screen}");
    honest.keys(b"hi back\r");
    ahead.wait_for("honest: hi back  · ");
    ahead.keys(b"\x1b");
    honest.keys(b"\x1b");
    assert!(ahead.wait_exit() && honest.wait_exit());

    // The skewed client's reply lines: server and network time, and an
    // offset (server minus its clock) within a few ms of -2 s.
    let a = lines(&dir.path().join("ahead.txt"));
    let reply = a
        .iter()
        .find(|l| {
            l.contains(" <- server ") && l.contains(": Server received: hello from the future 0")
        })
        .unwrap_or_else(|| panic!("no reply line in {a:#?}"));
    let (rtt, _) = figure(reply, "rtt=").expect("rtt");
    let (srv, _) = figure(reply, "server=").expect("server=");
    let (net, _) = figure(reply, "net=").expect("net=");
    assert!((srv + net - rtt).abs() < 0.0015, "{reply}");
    let (offset, bound) = figure(reply, "offset=").expect("offset=");
    let bound = bound.expect("offset bound");
    assert!(
        (offset + SKEW_MS).abs() < TOLERANCE_MS,
        "offset {offset} ms, want -{SKEW_MS} ± {TOLERANCE_MS}: {reply}"
    );
    assert!(bound < TOLERANCE_MS, "{reply}");
    // The relay lines, both ways: small one-way delays, 2 s of skew
    // notwithstanding; the fastest a loopback one.
    let h = lines(&dir.path().join("honest.txt"));
    let mut fastest = f64::MAX;
    for (log, from, text) in [
        (&h, "ahead", "hello from the future "),
        (&a, "honest", "hi back"),
    ] {
        let relays: Vec<&String> = log
            .iter()
            .filter(|l| l.contains(&format!(" <- {from} via ")) && l.contains(text))
            .collect();
        assert!(!relays.is_empty(), "no relay line from {from} in {log:#?}");
        for relay in relays {
            let (delay, bound) = figure(relay, "delay=").expect("delay=");
            let bound = bound.expect("delay bound");
            assert!(
                delay < DELAY_LIMIT_MS && delay > -bound - 0.001,
                "one-way delay {delay} ms ± {bound}: {relay}"
            );
            if from == "ahead" {
                fastest = fastest.min(delay);
            }
        }
    }
    assert!(
        fastest < TOLERANCE_MS,
        "the fastest of {MESSAGES} one-way delays took {fastest} ms: {h:#?}"
    );
    // The server's own lines carry none of it.
    assert!(
        ts.log_lines()
            .iter()
            .all(|l| !l.contains("offset=") && !l.contains("delay=")),
        "{:#?}",
        ts.log_lines()
    );
}

/// The seed's server, as its Python does it: each `recv(1024)` answered with
/// `Server received: ` and the bytes as they came, no newline of its own.
fn seed_style_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
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
fn the_tui_falls_back_to_a_plain_session_with_a_seed_style_server() {
    let addr = seed_style_server().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tui = Tui::spawn(
        &[
            "chat",
            "--server",
            &addr,
            "--name",
            "seedy",
            "--no-local-server",
            "--log",
            "c.txt",
        ],
        &[],
        dir.path(),
    );
    tui.wait_for("plain server (no chat)");
    tui.wait_for("● connected");
    tui.keys(b"hello seed\r");
    let screen = tui.wait_for("↳ Server received: hello seed");
    assert!(screen.contains("#1 rtt "), "{screen}");
    assert!(!screen.contains("does not speak"), "{screen}");
    // Longer than one recv(1024): the seed answers it in two pieces, and
    // then two messages close together may come back under one prefix.
    let long = "0123456789".repeat(110);
    // Typed as a person (or a paste) would, in pieces: a pty drops input
    // that a busy reader leaves in its buffer too long.
    for piece in long.as_bytes().chunks(100) {
        tui.keys(piece);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    tui.keys(b"\r");
    tui.wait_for("#2 rtt ");
    tui.keys(b"three\r");
    tui.wait_for("↳ Server received: three");
    tui.keys(b"\x1b");
    assert!(tui.wait_exit());
    let log = lines(&dir.path().join("c.txt"));
    let replies: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("Message Received: ") && l.contains(" rtt="))
        .collect();
    assert_eq!(replies.len(), 3, "{log:#?}");
    assert!(replies[1].contains(" #2 rtt="), "{}", replies[1]);
    assert!(
        replies[1].ends_with(&format!(": Server received: {long}")),
        "{}",
        replies[1]
    );
    assert!(replies[2].contains(" #3 rtt="), "{}", replies[2]);
    // No server time from a plain server.
    assert!(
        replies.iter().all(|l| !l.contains(" server=")),
        "{replies:#?}"
    );
}

#[test]
fn plain_forces_the_seed_protocol_against_chatmon_serve() {
    let ts = TestServer::start();
    let server = ts.addr.to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut tui = Tui::spawn(
        &[
            "chat",
            "--server",
            &server,
            "--name",
            "p",
            "--no-local-server",
            "--plain",
        ],
        &[],
        dir.path(),
    );
    tui.wait_for("plain server (no chat)");
    tui.keys(b"plain hello\r");
    let screen = tui.wait_for("↳ Server received: plain hello");
    assert!(screen.contains("#1 rtt "), "{screen}");
    // The server saw a plain session: a line without an id.
    ts.wait_log("for the plain message", |l| {
        l.starts_with("Message Received: ")
            && l.contains("server <- ")
            && l.ends_with(": plain hello")
            && !l.contains(" #1")
    });
    tui.keys(b"\x1b");
    assert!(tui.wait_exit());
}

/// A server that answers like the seed's but drops newlines: its answer to
/// the hello never ends a line.
fn newline_eating_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let mut out = b"Server received: ".to_vec();
                    out.extend(buf[..n].iter().filter(|&&b| b != b'\n'));
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
fn a_hello_answered_without_a_newline_still_falls_back_to_plain() {
    use chatmon::client::{self, ClientConfig, ClientEvent, Command};
    use std::time::{Duration, Instant};
    let addr = newline_eating_server().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (handle, mut events) = client::spawn(
            ClientConfig::new(addr, "eaten"),
            chatmon::eventlog::EventLog::null(),
        );
        let deadline = Instant::now() + crate::util::WAIT;
        let mut sent = false;
        loop {
            assert!(Instant::now() < deadline, "no reply in a plain session");
            match tokio::time::timeout(Duration::from_millis(50), events.recv()).await {
                Ok(Some(ClientEvent::Connected { plain, server, .. })) => {
                    assert!(plain, "{server}");
                    assert_eq!(server, client::PLAIN_SERVER);
                    if !sent {
                        handle.send("no newline for me".into());
                        sent = true;
                    }
                }
                Ok(Some(ClientEvent::Reply {
                    id, text, split, ..
                })) => {
                    assert_eq!(id, 1);
                    assert_eq!(text, "Server received: no newline for me");
                    assert_eq!(split, None, "a plain server has no server time");
                    break;
                }
                Ok(Some(ClientEvent::Disconnected { reason, .. })) if !sent => {
                    panic!("gave up instead of falling back: {reason}")
                }
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => panic!("the client task ended"),
            }
        }
        handle.command(Command::Quit);
    });
}
