//! The TUI's cost per frame: a full scrollback (5,000 chat entries) and a full
//! log panel (500 lines) drawn at 160×50 on ratatui's `TestBackend`. The
//! target is under 1 ms a frame, so that 30 frames a second stay under 3 % of
//! a core.
//!
//! `cargo bench --bench tui_frame`
//!
//! Each frame is drawn on a fresh off-screen terminal and read back as text
//! ([`chatmon::tui::render::to_text`]), so the figure is an upper bound: the
//! real loop reuses its terminal and only sends the cells that changed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use chatmon::client::ClientEvent;
use chatmon::tui::app::{App, LogSource};
use chatmon::tui::render::to_text;

/// What the TUI holds at most: its chat scrollback and its log panel.
const CHAT_ENTRIES: usize = 5_000;
const LOG_LINES: usize = 500;
const WIDTH: u16 = 160;
const HEIGHT: u16 = 50;

fn full_app() -> App {
    let mut app = App::new("127.0.0.1:7878", "bench", "log.txt");
    let now = Instant::now();
    app.on_client(
        ClientEvent::Connected {
            name: "bench".into(),
            users: vec!["bench".into(), "alice".into(), "bob".into(), "carol".into()],
            server: "chatmon".into(),
            embedded: false,
            plain: false,
        },
        now,
    );
    let names = ["alice", "bob", "carol"];
    for i in 0..CHAT_ENTRIES {
        app.on_client(
            ClientEvent::Chat {
                from: names[i % names.len()].into(),
                text: format!(
                    "message {i}: the quick brown fox jumps over the lazy dog, again and again"
                ),
                ts: "2026-01-02 03:04:05.678901".into(),
                timing: None,
            },
            now,
        );
    }
    for i in 0..LOG_LINES {
        app.push_log(
            LogSource::File,
            format!(
                "Message Received: 2026-01-02 03:04:05.{i:06} - server <- alice@127.0.0.1:40000 #{i}: the quick brown fox"
            ),
        );
    }
    app
}

fn frame(c: &mut Criterion) {
    let mut app = full_app();
    let mut g = c.benchmark_group("tui");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("frame_160x50_5000_chat_500_log", |b| {
        b.iter(|| black_box(to_text(&mut app, WIDTH, HEIGHT)))
    });
    g.finish();
}

criterion_group!(benches, frame);
criterion_main!(benches);
