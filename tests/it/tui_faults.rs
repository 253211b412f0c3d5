//! The TUI's promises (issue 4), with the real binary in a pseudo-terminal:
//! no escape sequence from the network or the tailed file reaches the
//! terminal, and the terminal is restored on SIGTERM and on a panic.

use std::io::Write;

use crate::util::pty::Tui;
use crate::util::{Chat, TestServer};

fn find_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// The terminal was left as found: the alternate screen was left and the
/// cursor shown again after the last time they were entered and hidden.
fn assert_restored(raw: &[u8]) {
    let tail = String::from_utf8_lossy(&raw[raw.len().saturating_sub(300)..]).into_owned();
    let enter = find_last(raw, b"\x1b[?1049h").expect("entered the alternate screen");
    let leave = find_last(raw, b"\x1b[?1049l");
    assert!(
        leave.is_some_and(|l| l > enter),
        "alternate screen not left: {tail:?}"
    );
    if let Some(hide) = find_last(raw, b"\x1b[?25l") {
        assert!(
            find_last(raw, b"\x1b[?25h").is_some_and(|s| s > hide),
            "cursor left hidden: {tail:?}"
        );
    }
    // Mouse capture is undone too.
    if let Some(on) = find_last(raw, b"\x1b[?1000h") {
        assert!(
            find_last(raw, b"\x1b[?1000l").is_some_and(|off| off > on),
            "mouse capture left on: {tail:?}"
        );
    }
}

fn chat_args<'a>(server: &'a str, log: &'a str) -> Vec<&'a str> {
    vec![
        "chat",
        "--server",
        server,
        "--name",
        "pty",
        "--log",
        log,
        "--no-local-server",
    ]
}

#[test]
fn sigterm_restores_the_terminal() {
    let ts = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ts.addr.to_string();
    let mut tui = Tui::spawn(&chat_args(&server, "client.txt"), &[], dir.path());
    tui.wait_for("connected");
    assert!(!tui.cooked(), "the TUI runs in raw mode");
    tui.signal(libc::SIGTERM);
    assert!(tui.wait_exit(), "chatmon exited with failure on SIGTERM");
    assert_restored(&tui.raw());
    assert!(tui.cooked(), "raw mode left on after SIGTERM");
    // It said goodbye to the server on the way out.
    ts.wait_log("for the disconnection", |l| {
        l.starts_with("Disconnection: ") && l.contains("pty@")
    });
}

#[test]
fn panic_restores_the_terminal() {
    let ts = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ts.addr.to_string();
    let mut tui = Tui::spawn(
        &chat_args(&server, "client.txt"),
        &[("CHATMON_TEST_PANIC", "1"), ("RUST_BACKTRACE", "0")],
        dir.path(),
    );
    assert!(!tui.wait_exit(), "a panic must not exit with success");
    let raw = tui.raw();
    assert_restored(&raw);
    assert!(tui.cooked(), "raw mode left on after a panic");
    // The panic message is printed after the terminal is restored, so the
    // user can read it.
    let enter = find_last(&raw, b"\x1b[?1049h").expect("entered");
    let leave = enter
        + raw[enter..]
            .windows(8)
            .position(|w| w == b"\x1b[?1049l")
            .expect("left");
    let after = String::from_utf8_lossy(&raw[leave..]);
    assert!(after.contains("panicking on purpose"), "{after:?}");
}

#[test]
fn hostile_text_never_reaches_the_terminal() {
    let ts = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let tailed = dir.path().join("tailed.txt");
    std::fs::write(&tailed, "").expect("tail file");
    let server = ts.addr.to_string();
    let tail = tailed.to_string_lossy().into_owned();
    let mut args = chat_args(&server, "client.txt");
    args.extend(["--tail", &tail]);
    let mut tui = Tui::spawn(&args, &[], dir.path());
    tui.wait_for("connected");
    // From the network: a title change, a screen clear, a bidi override.
    let mut evil = Chat::join(ts.addr, "evil");
    evil.say(1, "net\u{1b}]0;pwned-net\u{7}\u{1b}[2J\u{202e}kcah");
    let _ = evil.recv_until(|m| matches!(m, chatmon::protocol::ServerMsg::Reply { .. }));
    // From the tailed file: a raw line no chatmon would write.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&tailed)
        .expect("open tail");
    f.write_all(b"Error: 2026-01-01 00:00:00.000000 - file\x1b]0;pwned-file\x07\x1b[2J\r\n")
        .expect("write tail");
    drop(f);
    let screen = tui.wait_for("net\\u{1b}]0;pwned-net");
    assert!(screen.contains("\\u{202e}kcah"), "{screen}");
    tui.wait_for("file\\u{1b}]0;pwned-file");
    let raw = tui.raw();
    for bad in [
        &b"\x1b]0;pwned"[..],
        "\u{202e}".as_bytes(),
        b"\x07",
        b"\x1b[2J\x1b]",
    ] {
        assert!(
            find_last(&raw, bad).is_none(),
            "{:?} reached the terminal",
            String::from_utf8_lossy(bad)
        );
    }
    tui.signal(libc::SIGTERM);
    assert!(tui.wait_exit());
    assert_restored(&tui.raw());
}
