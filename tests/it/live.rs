//! The live latency panel (issue 13): the server answers probes at once
//! without relaying or logging them; the TUI probes on its own, shows the
//! lag, counts probes lost while the server is stopped, and recovers.

use std::time::{Duration, Instant};

use chatmon::protocol::{ClientMsg, ServerMsg};

use crate::util::process::ServeCmd;
use crate::util::pty::Tui;
use crate::util::{Chat, Plain, TestServer, wait_for_within};

#[test]
fn probes_are_answered_at_once_not_relayed_not_logged() {
    let ts = TestServer::start();
    let mut alice = Chat::join(ts.addr, "alice");
    let mut bob = Chat::join(ts.addr, "bob");
    alice.recv(); // bob's join
    alice.send(&ClientMsg::Probe { id: 5 });
    // Stamped like a reply: the server's read and write times.
    match alice.recv() {
        ServerMsg::ProbeReply {
            id: 5,
            read_us: Some(r),
            write_us: Some(w),
        } => assert!(w >= r, "written {w} before read {r}"),
        other => panic!("expected the probe's reply, got {other:?}"),
    }
    alice.say(6, "after the probe");
    alice.recv_until(|m| matches!(m, ServerMsg::Reply { id: 6, .. }));
    // Bob's next message is the chat line, not a probe.
    match bob.recv() {
        ServerMsg::Chat { text, .. } => assert_eq!(text, "after the probe"),
        other => panic!("expected the relayed message, got {other:?}"),
    }
    ts.wait_log("the message", |l| l.ends_with(": after the probe"));
    let lines = ts.log_lines();
    let received = lines
        .iter()
        .filter(|l| l.starts_with("Message Received: "))
        .count();
    assert_eq!(received, 1, "only the message, not the probe: {lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("probe\"")), "{lines:#?}");
}

#[test]
fn a_plain_session_echoes_a_probe_line_as_before() {
    let ts = TestServer::start();
    let mut p = Plain::new(ts.addr);
    p.send(b"{\"type\":\"probe\",\"id\":1}\n");
    assert_eq!(p.line(), "Server received: {\"type\":\"probe\",\"id\":1}");
}

#[test]
fn a_server_from_before_probes_gets_one_and_no_more() {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chatmon::client::{self, ClientConfig, ClientEvent};

    // What an older chatmon says of a message type it does not know.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let probes_seen = Arc::new(AtomicUsize::new(0));
    let seen = probes_seen.clone();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut out = stream.try_clone().expect("clone");
        let mut lines = BufReader::new(stream).lines();
        let _hello = lines.next();
        let welcome = "{\"type\":\"welcome\",\"name\":\"old\",\"users\":[\"old\"],\"server\":\"chatmon 0.0.9\"}\n";
        out.write_all(welcome.as_bytes()).expect("welcome");
        for line in lines.map_while(Result::ok) {
            if line.contains("\"probe\"") {
                seen.fetch_add(1, Ordering::SeqCst);
                let refusal = "{\"type\":\"error\",\"message\":\"message is not a valid chatmon message: unknown variant `probe`, expected one of `hello`, `msg`, `nick`, `subscribe`, `ping` at line 1 column 15\"}\n";
                let _ = out.write_all(refusal.as_bytes());
            }
        }
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (errors, lost) = rt.block_on(async {
        let mut cfg = ClientConfig::new(addr.to_string(), "old");
        cfg.probe_every = Duration::from_millis(50);
        let (handle, mut events) = client::spawn(cfg, chatmon::eventlog::EventLog::null());
        let (mut errors, mut lost) = (Vec::new(), 0);
        let end = tokio::time::Instant::now() + Duration::from_millis(1500);
        while let Ok(Some(ev)) = tokio::time::timeout_at(end, events.recv()).await {
            match ev {
                ClientEvent::ServerError(m) => errors.push(m),
                ClientEvent::ProbeLost { .. } => lost += 1,
                _ => {}
            }
        }
        handle.command(client::Command::Quit);
        (errors, lost)
    });
    assert_eq!(probes_seen.load(Ordering::SeqCst), 1, "{errors:?}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("does not answer latency probes"),
        "{errors:?}"
    );
    assert_eq!(lost, 0, "a refused probe is not a lost one");
}

/// Waits (bounded) until the screen satisfies `pred`; returns it.
fn wait_screen(tui: &Tui, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = tui.contents();
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "screen never showed {what}:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// `lag ` and a number in the status bar.
fn shows_lag_figure(screen: &str) -> bool {
    let bar = screen.lines().next().unwrap_or("");
    bar.split("lag ")
        .nth(1)
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
}

/// The probes' lost count in the figures table (`lost  ✗ 3  0`).
fn probes_lost(screen: &str) -> u64 {
    let row = screen
        .lines()
        .find(|l| l.contains("│lost "))
        .unwrap_or_else(|| panic!("no lost row:\n{screen}"));
    let cells = row.split("│lost ").nth(1).unwrap_or("");
    let first = cells.split_whitespace().find(|w| *w != "✗").unwrap_or("");
    first
        .parse()
        .unwrap_or_else(|_| panic!("no count in {row:?}"))
}

#[test]
fn probes_show_the_lag_and_a_stopped_server_shows_as_timeouts_then_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = ServeCmd::new(&dir.path().join("server.txt")).start();
    let server = serve.addr.to_string();
    let mut tui = Tui::spawn(
        &[
            "chat",
            "--server",
            &server,
            "--name",
            "prober",
            "--log",
            "client.txt",
            "--no-local-server",
            "--probe",
            "200ms",
        ],
        &[],
        dir.path(),
    );
    tui.wait_for("● connected");
    // Nothing typed: the probes alone give a lag figure and a count.
    let s = wait_screen(&tui, "a lag figure", shows_lag_figure);
    // Normally 0; a CI machine that stalls us for over a second may lose one
    // already, so what is checked is that the stop makes the count rise.
    let lost_before = probes_lost(&s);
    assert!(s.contains("RTT over time"), "{s}");

    serve.child.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    wait_screen(&tui, "the timeout state", |s| {
        s.lines().next().unwrap_or("").contains("lag ✗ timeout")
    });
    let remaining = Duration::from_secs(2).saturating_sub(stopped.elapsed());
    std::thread::sleep(remaining);
    let s = wait_screen(&tui, "lost probes", |s| probes_lost(s) > lost_before);
    let lost = probes_lost(&s);
    assert!(s.contains("✗"), "{s}");
    serve.child.signal(libc::SIGCONT);

    let s = wait_screen(&tui, "the lag back", |s| {
        shows_lag_figure(s) && !s.lines().next().unwrap_or("").contains("timeout")
    });
    assert!(probes_lost(&s) >= lost, "{s}");
    assert!(s.contains("● connected"), "the connection survived:\n{s}");

    // One `Probe` line every 10 s in the client's log, none in the server's.
    let log = dir.path().join("client.txt");
    let line = wait_for_within(Duration::from_secs(15), "a Probe log line", || {
        std::fs::read_to_string(&log)
            .ok()?
            .lines()
            .find(|l| l.starts_with("Probe: ") && l.contains(": probes to "))
            .map(str::to_string)
    });
    assert!(
        line.contains(" count=") && line.contains(" jitter="),
        "{line}"
    );
    let server_log = std::fs::read_to_string(dir.path().join("server.txt")).expect("log");
    assert!(!server_log.contains("Message Received"), "{server_log}");
    tui.keys(b"\x1b");
    assert!(tui.wait_exit());
}

#[test]
fn probes_off_show_no_lag_and_no_mouse_says_so() {
    let ts = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ts.addr.to_string();
    let mut tui = Tui::spawn(
        &[
            "chat",
            "--server",
            &server,
            "--name",
            "quiet",
            "--probe",
            "0",
            "--no-mouse",
            "--theme",
            "light",
        ],
        &[],
        dir.path(),
    );
    let s = tui.wait_for("● connected");
    std::thread::sleep(Duration::from_millis(500));
    let s2 = tui.contents();
    for s in [&s, &s2] {
        assert!(!s.lines().next().unwrap_or("").contains("lag"), "{s}");
        assert!(s.contains("mouse off"), "{s}");
        assert!(s.contains("probe off"), "{s}");
    }
    // No mouse capture was asked of the terminal.
    let raw = String::from_utf8_lossy(&tui.raw()).into_owned();
    assert!(!raw.contains("\x1b[?1000h"), "mouse capture enabled");
    tui.keys(b"\x1b");
    assert!(tui.wait_exit());
}
