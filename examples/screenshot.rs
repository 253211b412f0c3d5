//! Draws the README's screenshot scene (alice's TUI with bob and carol in
//! the room, a minute of probes with one lost and a reconnect) off screen
//! and prints it as ANSI text; Rich turns that into `assets/screenshot.svg`:
//!
//! ```text
//! cargo run --example screenshot > /tmp/screen.ansi
//! python3 -c 'import sys; from rich.console import Console; from rich.text import Text; c = Console(record=True, width=140, file=open("/dev/null", "w")); c.print(Text.from_ansi(open("/tmp/screen.ansi").read()), end=""); c.save_svg("assets/screenshot.svg", title="chatmon — alice, with bob and carol in the room")'
//! ```

use std::time::{Duration, Instant};

use chatmon::client::{ClientEvent, DisconnectKind};
use chatmon::tui::app::{App, LogSource};
use chatmon::tui::render::to_ansi;

/// The screen, as the README shows it.
const WIDTH: u16 = 140;
const HEIGHT: u16 = 40;
/// Seconds of probes before the picture is taken.
const PROBE_SECS: u64 = 58;

fn main() {
    let mut app = App::new("127.0.0.1:7878", "alice", "log.txt");
    let now = Instant::now();
    let ago = |ms: u64| now.checked_sub(Duration::from_millis(ms)).unwrap_or(now);
    let connected = |users: Vec<&str>| ClientEvent::Connected {
        name: "alice".into(),
        users: users.into_iter().map(String::from).collect(),
        server: "chatmon 0.1.0".into(),
        embedded: false,
        plain: false,
    };
    app.on_client(connected(vec!["alice", "bob"]), ago(60_000));
    for (i, s) in (1..=PROBE_SECS).rev().enumerate() {
        let t = ago(s * 1000);
        if s == 31 {
            app.on_client(ClientEvent::ProbeLost { id: i as u64 }, t);
            continue;
        }
        if s == 24 {
            app.on_client(
                ClientEvent::Disconnected {
                    reason: "connection lost: Connection reset by peer (os error 104)".into(),
                    kind: DisconnectKind::Lost,
                    retry_in: Duration::from_millis(100),
                },
                t,
            );
            app.on_client(connected(vec!["alice", "bob"]), ago(s * 1000 - 150));
            continue;
        }
        // A loopback-like spread: mostly 0.2-0.4 ms, a slow one now and then.
        let us = 200 + (i as u64 * 37 % 180) + if i % 13 == 0 { 900 } else { 0 };
        app.on_client(
            ClientEvent::Probe {
                id: i as u64,
                rtt: Duration::from_micros(us),
            },
            t,
        );
    }
    app.on_client(
        ClientEvent::Join {
            name: "carol".into(),
            users: 3,
        },
        ago(20_000),
    );
    let mine = [
        (1, "hello everyone", 14_000, 412),
        (2, "the panel moves even when nobody types", 9_000, 287),
        (3, "你好 🎉", 4_000, 301),
    ];
    for (id, text, at, rtt) in mine {
        app.sent_local(id, text.into());
        app.on_client(ClientEvent::Sent { id }, ago(at));
        app.on_client(
            ClientEvent::Reply {
                id,
                text: format!("Server received: {text}"),
                rtt: Duration::from_micros(rtt),
                split: None,
            },
            ago(at - 1),
        );
        app.push_log(
            LogSource::File,
            format!(
                "Message Received: 2026-12-02 00:10:{:02}.000000 - alice <- server 127.0.0.1:7878 #{id} rtt={:.3}ms: Server received: {text}",
                60 - at / 1000,
                rtt as f64 / 1000.0
            ),
        );
    }
    for (from, text, at) in [("bob", "hi alice", 12_000), ("carol", "o/", 6_000)] {
        app.on_client(
            ClientEvent::Chat {
                from: from.into(),
                text: text.into(),
                ts: format!("2026-12-02 00:10:{:02}.000000", 60 - at / 1000),
                timing: None,
            },
            ago(at),
        );
    }
    app.on_client(
        ClientEvent::Probe {
            id: 1000,
            rtt: Duration::from_micros(420),
        },
        now,
    );
    print!("{}", to_ansi(&mut app, WIDTH, HEIGHT));
}
