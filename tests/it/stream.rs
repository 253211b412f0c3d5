//! The server's event stream and periodic stats: subscribers see what the
//! server logs, a slow subscriber slows nobody and learns what it missed,
//! `Stats` lines land in the log and reach subscribers, and the TUI shows
//! all of it.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use chatmon::client::{self, ClientConfig, ClientEvent, Command};
use chatmon::eventlog::{self, EventKind, EventLog};
use chatmon::protocol::{ClientMsg, ServerMsg};
use chatmon::tui::app::{App, LogSource, LogView};
use chatmon::tui::render;

use crate::util::{Chat, Plain, STALLED, TestServer, WAIT, assert_log_parses, poll};

/// Reads a subscriber's messages until every wanted event line has come,
/// checking each event line parses; returns the event lines seen.
fn events_until(c: &mut Chat, wanted: &[(&EventKind, &str)]) -> Vec<String> {
    let mut seen = Vec::new();
    let mut missing: Vec<(&EventKind, &str)> = wanted.to_vec();
    let deadline = Instant::now() + WAIT;
    while !missing.is_empty() {
        assert!(
            Instant::now() < deadline,
            "still missing {missing:?}; saw {seen:#?}"
        );
        if let ServerMsg::Event { line } = c.recv() {
            let e = eventlog::parse_line(&line)
                .unwrap_or_else(|err| panic!("streamed line does not parse ({err}): {line:?}"));
            missing.retain(|(kind, text)| !(e.kind() == **kind && e.message.contains(text)));
            seen.push(line);
        }
    }
    seen
}

#[test]
fn subscriber_sees_connections_and_messages_from_others() {
    let ts = TestServer::start();
    let mut watcher = Chat::join_with(ts.addr, "watcher", None, true);

    let mut alice = Chat::join(ts.addr, "alice");
    let alice_addr = alice.plain.w.local_addr().expect("addr").to_string();
    alice.say(7, "hello from alice");
    alice.recv_until(|m| matches!(m, ServerMsg::Reply { id: 7, .. }));
    let mut p = Plain::new(ts.addr);
    let p_addr = p.w.local_addr().expect("addr").to_string();
    p.send(b"plain hi\n");
    assert_eq!(p.line(), "Server received: plain hi");
    drop(p);

    let seen = events_until(
        &mut watcher,
        &[
            (&EventKind::Connection, &format!("{alice_addr} connected")),
            (&EventKind::Join, "joined the room as alice"),
            (&EventKind::MessageReceived, "#7: hello from alice"),
            (&EventKind::MessageSent, "Server received: hello from alice"),
            (&EventKind::Connection, &format!("{p_addr} connected")),
            (&EventKind::MessageReceived, "plain hi"),
            (&EventKind::Disconnection, &format!("{p_addr} disconnected")),
        ],
    );
    // The stream carries the very lines of the server's log file. (A line
    // goes to subscribers a moment before it is queued for the file.)
    let mut missing = Vec::new();
    let all_there = poll(WAIT, || {
        let file = ts.log_lines();
        assert_log_parses(&file);
        missing = seen.iter().filter(|l| !file.contains(l)).cloned().collect();
        missing.is_empty().then_some(())
    });
    assert!(
        all_there.is_some(),
        "streamed lines not in the file: {missing:#?}"
    );
}

#[test]
fn subscription_can_be_turned_on_and_off() {
    let ts = TestServer::start();
    let mut watcher = Chat::join(ts.addr, "watcher");
    let mut alice = Chat::join(ts.addr, "alice");
    watcher.recv_until(|m| matches!(m, ServerMsg::Join { .. }));

    // Not subscribed: the relay comes, no event line before it.
    alice.say(1, "before");
    let m = watcher.recv();
    assert!(
        matches!(&m, ServerMsg::Chat { text, .. } if text == "before"),
        "{m:?}"
    );

    // A round trip on the same connection makes sure the server has taken
    // the (unanswered) subscribe command before alice speaks.
    let sync = |w: &mut Chat, id: u64| {
        w.say(id, "sync");
        w.recv_until(|m| matches!(m, ServerMsg::Reply { id: i, .. } if *i == id));
    };
    watcher.send(&ClientMsg::Subscribe { on: true });
    sync(&mut watcher, 100);
    alice.say(2, "during");
    events_until(&mut watcher, &[(&EventKind::MessageReceived, "#2: during")]);

    watcher.send(&ClientMsg::Subscribe { on: false });
    sync(&mut watcher, 101);
    alice.say(3, "after");
    let mut n = 0;
    loop {
        n += 1;
        assert!(n < 10_000, "no relay of \"after\"");
        match watcher.recv() {
            ServerMsg::Chat { text, .. } if text == "after" => break,
            ServerMsg::Event { line } => {
                assert!(!line.contains("after"), "event after unsubscribing: {line}")
            }
            _ => {}
        }
    }
}

#[test]
fn slow_subscriber_slows_nobody_and_learns_what_it_missed() {
    /// Round trips timed once the slow subscriber is known to be stuck.
    const WHILE_STUCK: usize = 100;
    let ts = TestServer::with(|c| c.event_backlog = 16);
    let dropped = || {
        ts.server()
            .counters()
            .events_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // Subscribes, then never reads: its socket buffers fill, its writer
    // blocks, and its event queue overflows.
    let slow = Chat::join_with(ts.addr, "slow", None, true);
    let mut bob = Chat::join(ts.addr, "bob");

    // Bob reads every relay as it comes, in his own thread, up to "last".
    let (bob_tx, bob_rx) = mpsc::channel();
    let bob_thread = thread::spawn(move || {
        let mut got = 0usize;
        // Far more than the relays sent before "last".
        for _ in 0..100_000 {
            if let ServerMsg::Chat { text, .. } = bob.recv() {
                got += 1;
                if text == "last" {
                    break;
                }
            }
        }
        let _ = bob_tx.send(got);
        bob
    });

    // Big lines, so that megabytes of events pile up behind `slow` quickly:
    // send until the server has had to drop some (bounded).
    let text = "z".repeat(8 * 1024);
    let mut p = Plain::new(ts.addr);
    let round_trip = |p: &mut Plain, line: &str| {
        let t = Instant::now();
        p.send(format!("{line}\n").as_bytes());
        assert_eq!(p.line(), format!("Server received: {line}"));
        t.elapsed()
    };
    let mut sent = 0usize;
    while dropped() == 0 {
        assert!(sent < 3000, "no event dropped after {sent} messages");
        round_trip(&mut p, &format!("{sent} {text}"));
        sent += 1;
    }
    // Now `slow` is stuck for sure; everyone else goes on at full speed.
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    for i in 0..WHILE_STUCK {
        worst = worst.max(round_trip(&mut p, &format!("stuck {i} {text}")));
    }
    worst = worst.max(round_trip(&mut p, "last"));
    sent += WHILE_STUCK + 1;
    let total = start.elapsed();
    // Generous bounds, far above a busy machine's loopback round trips,
    // far below what waiting on the stuck subscriber would cost.
    assert!(
        worst < STALLED,
        "a round trip took {worst:?} with a slow subscriber"
    );
    assert!(
        total < 2 * STALLED,
        "{WHILE_STUCK} round trips took {total:?} with a slow subscriber"
    );
    assert_eq!(
        bob_rx
            .recv_timeout(WAIT)
            .expect("bob got every relay in time"),
        sent
    );
    let _bob = bob_thread.join().expect("bob's thread");

    // `slow` is still connected, and once it reads it is told how many it
    // missed.
    let mut slow = slow;
    match slow.recv_until(|m| matches!(m, ServerMsg::Dropped { .. })) {
        ServerMsg::Dropped { count } => assert!(count > 0),
        other => unreachable!("{other:?}"),
    }
    assert_eq!(
        ts.server()
            .counters()
            .slow_disconnects
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

/// The `key=value` fields of a `Stats` message.
fn stats_field(message: &str, key: &str) -> f64 {
    let v = message
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in {message:?}"));
    v.trim_end_matches("/s")
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|e| panic!("bad {key} in {message:?}: {e}"))
}

#[test]
fn stats_lines_are_logged_and_streamed() {
    let ts = TestServer::with(|c| c.stats_interval = Some(Duration::from_millis(100)));
    let mut watcher = Chat::join_with(ts.addr, "watcher", None, true);
    let mut p = Plain::new(ts.addr);
    for i in 0..5 {
        p.send(format!("m{i}\n").as_bytes());
        p.line();
    }

    // A new subscriber gets the figures at once (before any interval)...
    match watcher.recv_until(|m| matches!(m, ServerMsg::Stats { .. })) {
        ServerMsg::Stats { names, .. } => assert_eq!(names, vec!["watcher".to_string()]),
        other => unreachable!("{other:?}"),
    }
    // ...and then every interval, as a message of their own...
    match watcher.recv_until(|m| matches!(m, ServerMsg::Stats { clients: 2, .. })) {
        ServerMsg::Stats {
            clients,
            names,
            msgs_per_sec,
            ..
        } => {
            assert_eq!(clients, 2, "watcher and the plain client");
            assert_eq!(names, vec!["watcher".to_string()]);
            assert!(msgs_per_sec >= 0.0);
        }
        other => unreachable!("{other:?}"),
    }
    // ...and as a log line in the stream.
    events_until(&mut watcher, &[(&EventKind::Stats, "clients=2")]);

    // In the file, every interval's messages add up to what was sent.
    let mut stats: Vec<String> = Vec::new();
    let added_up = poll(WAIT, || {
        let lines = ts.log_lines();
        assert_log_parses(&lines);
        stats = lines
            .iter()
            .filter_map(|l| eventlog::parse_line(l).ok())
            .filter(|e| e.kind() == EventKind::Stats)
            .map(|e| e.message.into_owned())
            .collect();
        let msgs: f64 = stats.iter().map(|m| stats_field(m, "messages")).sum();
        if msgs == 5.0 {
            for m in &stats {
                for key in [
                    "clients",
                    "rate",
                    "bytes_in",
                    "bytes_out",
                    "errors",
                    "interval",
                ] {
                    assert!(stats_field(m, key) >= 0.0, "{m}");
                }
            }
            return Some(());
        }
        None
    });
    assert!(
        added_up.is_some(),
        "Stats lines never added up to 5: {stats:#?}"
    );
}

#[test]
fn no_stats_when_the_interval_is_off() {
    let off = TestServer::with(|c| c.stats_interval = None);
    let zero = TestServer::with(|c| c.stats_interval = Some(Duration::ZERO));
    // A control with a short interval: once it has sent periodic figures,
    // the others would have too, were they sending any.
    let control = TestServer::with(|c| c.stats_interval = Some(Duration::from_millis(100)));
    let mut w = Chat::join_with(zero.addr, "w", None, true);
    let mut c = Chat::join_with(control.addr, "c", None, true);
    // One snapshot when subscribing, the figures a TUI shows at once...
    for s in [&mut w, &mut c] {
        assert!(matches!(
            s.recv_until(|m| matches!(m, ServerMsg::Stats { .. })),
            ServerMsg::Stats { clients: 1, .. }
        ));
    }
    // (The control's periodic figures, and its log line of them.)
    c.recv_until(|m| matches!(m, ServerMsg::Stats { .. }));
    c.recv_until(|m| matches!(m, ServerMsg::Stats { .. }));
    control.wait_log("for the control's Stats line", |l| l.starts_with("Stats: "));
    w.say(1, "x");
    // ...and no periodic ones: everything up to the reply holds no Stats.
    let reply = w.recv_until(|m| {
        assert!(
            !matches!(m, ServerMsg::Stats { .. }),
            "periodic Stats with a zero interval"
        );
        matches!(m, ServerMsg::Reply { .. })
    });
    assert!(matches!(reply, ServerMsg::Reply { id: 1, .. }), "{reply:?}");
    for ts in [&off, &zero] {
        assert!(
            !ts.log_lines().iter().any(|l| l.starts_with("Stats: ")),
            "{:#?}",
            ts.log_lines()
        );
    }
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    render::to_text(app, w, h)
}

/// Headless end to end: the real client task, subscribed to a real server,
/// feeds the TUI state; the render shows the server panel and the stream
/// merged with the tailed file.
#[test]
fn tui_shows_the_server_panel_and_the_merged_stream() {
    let ts = TestServer::with(|c| c.stats_interval = Some(Duration::from_millis(100)));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let addr = ts.addr;
    let events: Vec<ClientEvent> = rt.block_on(async move {
        let mut cfg = ClientConfig::new(addr.to_string(), "me");
        cfg.subscribe = true;
        let (handle, mut rx) = client::spawn(cfg, EventLog::null());
        let mut got = Vec::new();
        let mut bob: Option<thread::JoinHandle<Chat>> = None;
        let (mut heard_bob, mut stats_with_bob) = (false, false);
        let deadline = tokio::time::Instant::now() + WAIT;
        while !(heard_bob && stats_with_bob) {
            let ev = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("stream never showed bob: {got:#?}"))
                .expect("client task alive");
            match &ev {
                ClientEvent::Connected { .. } if bob.is_none() => {
                    // Bob speaks from a blocking thread, once we are in.
                    bob = Some(thread::spawn(move || {
                        let mut b = Chat::join(addr, "bob");
                        b.say(1, "hello from bob");
                        b.recv_until(|m| matches!(m, ServerMsg::Reply { .. }));
                        b
                    }));
                }
                ClientEvent::ServerEvent(l) if l.contains("#1: hello from bob") => heard_bob = true,
                ClientEvent::ServerStats { names, .. } if names.contains(&"bob".to_string()) => {
                    stats_with_bob = true
                }
                _ => {}
            }
            got.push(ev);
        }
        handle.command(Command::Quit);
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(ev) = rx.recv().await {
                if ev == ClientEvent::Closed {
                    break;
                }
            }
        })
        .await;
        if let Some(b) = bob {
            let _ = b.join();
        }
        got
    });

    let mut app = App::new(&addr.to_string(), "me", "log.txt");
    let now = Instant::now();
    // A line from the tailed file, older than anything streamed.
    app.push_log(
        LogSource::File,
        "Connection: 2000-01-01 00:00:00.000000 - tailed: from the file".into(),
    );
    for ev in events {
        app.on_client(ev, now);
    }
    assert_eq!(app.log_view, LogView::Both, "both sources by default");

    let s = screen(&mut app, 250, 50);
    let server_row = s
        .lines()
        .find(|l| l.contains("clients ·"))
        .unwrap_or_else(|| panic!("no server panel:\n{s}"));
    assert!(server_row.contains("msg/s"), "{server_row}");
    assert!(server_row.contains("up 0h00m0"), "{server_row}");
    assert!(server_row.contains("bob"), "{server_row}");
    assert!(server_row.contains("me"), "{server_row}");
    assert!(s.contains("Server"), "{s}");
    assert!(s.contains("file + server (F2)"), "{s}");
    // Merged in time order: the old file line above bob's streamed message,
    // which carries the stream's mark.
    let file_row = s
        .lines()
        .position(|l| l.contains("tailed: from the file"))
        .unwrap_or_else(|| panic!("no file line:\n{s}"));
    let bob_row = s
        .lines()
        .position(|l| l.contains("#1: hello from bob"))
        .unwrap_or_else(|| panic!("no streamed line:\n{s}"));
    assert!(file_row < bob_row, "{s}");
    assert!(
        s.lines().nth(bob_row).is_some_and(|l| l.contains("⇣")),
        "{s}"
    );

    // F2 cycles the view: the file only, then the server only.
    let f2 = crossterm::event::Event::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::F(2),
        crossterm::event::KeyModifiers::NONE,
    ));
    app.on_event(&f2);
    assert_eq!(app.log_view, LogView::File);
    let s = screen(&mut app, 250, 50);
    assert!(
        s.contains("tailed: from the file") && !s.contains("#1: hello from bob"),
        "{s}"
    );
    app.on_event(&f2);
    assert_eq!(app.log_view, LogView::Server);
    let s = screen(&mut app, 250, 50);
    assert!(
        !s.contains("tailed: from the file") && s.contains("#1: hello from bob"),
        "{s}"
    );

    // The panel fits a common terminal size too.
    let s = screen(&mut app, 120, 40);
    assert!(s.lines().any(|l| l.contains("clients ·")), "{s}");
}
