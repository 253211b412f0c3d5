//! End to end: the real `chatmon` binary in a real pseudo-terminal, driven by
//! keystrokes, its screen read back through a terminal emulator (vt100).

use crate::util::TestServer;
use crate::util::pty::Tui;

/// A loopback address where nothing listens: bind port 0, note it, release it.
fn free_loopback_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

#[test]
fn type_a_message_and_see_its_reply_and_rtt() {
    let ts = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ts.addr.to_string();
    let mut tui = Tui::spawn(
        &[
            "chat",
            "--server",
            &server,
            "--name",
            "pty",
            "--log",
            "client.txt",
        ],
        &[],
        dir.path(),
    );
    tui.wait_for("● connected");
    tui.keys("hello from a pty 世界\r".as_bytes());
    let screen = tui.wait_for("↳ Server received: hello from a pty 世界");
    assert!(screen.contains("rtt "), "{screen}");
    // The latency panel counted it: the messages' column of the `n` row.
    tui.wait_for("│n ");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let c = tui.contents();
        let counted = c.lines().any(|l| {
            l.split("│n ")
                .nth(1)
                .and_then(|r| r.split('│').next())
                .is_some_and(|cells| cells.split_whitespace().nth(1) == Some("1"))
        });
        if counted {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not counted:\n{c}");
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    // The server logged it, and so did the client, with its RTT.
    ts.wait_log("for the pty message", |l| {
        l.starts_with("Message Received: ") && l.ends_with("hello from a pty 世界")
    });
    tui.keys(b"\x1b"); // Esc quits
    assert!(tui.wait_exit(), "chatmon exited with failure");
    let client_log = std::fs::read_to_string(dir.path().join("client.txt")).expect("client log");
    assert!(
        client_log
            .lines()
            .any(|l| l.starts_with("Message Received: ") && l.contains(" rtt=")),
        "{client_log}"
    );
    // Left the alternate screen: the terminal is restored.
    let raw = tui.raw();
    let tail = String::from_utf8_lossy(&raw[raw.len().saturating_sub(200)..]).into_owned();
    assert!(
        tail.contains("\x1b[?1049l"),
        "no alternate-screen exit in {tail:?}"
    );
}

#[test]
fn no_server_running_starts_one_and_a_second_tui_joins() {
    let server = free_loopback_addr();
    let dir = tempfile::tempdir().expect("tempdir");
    // No subcommand: the main job.
    let mut first = Tui::spawn(&["--server", &server, "--name", "first"], &[], dir.path());
    first.wait_for("local server (in this process)");
    first.wait_for("● connected");
    let mut second = Tui::spawn(
        &["chat", "--server", &server, "--name", "second"],
        &[],
        dir.path(),
    );
    second.wait_for("● connected");
    first.wait_for("second joined (2 in the room)");
    second.keys(b"hi first\r");
    first.wait_for("second: hi first");
    second.keys(b"\x03"); // Ctrl-C
    assert!(second.wait_exit());
    first.wait_for("second left");
    first.keys(b"/quit\r");
    assert!(first.wait_exit());
    // Both wrote the same log.txt in the working directory, as in the seed.
    let log = std::fs::read_to_string(dir.path().join("log.txt")).expect("log.txt");
    assert!(log.lines().any(|l| l.starts_with("Server Start: ")));
    assert!(
        log.lines()
            .any(|l| l.starts_with("Message Sent: ") && l.contains("second -> server"))
    );
    assert!(log.lines().any(|l| l.starts_with("Server Stop: ")), "{log}");
}

#[test]
fn when_the_tui_running_the_server_quits_another_takes_over() {
    let server = free_loopback_addr();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = Tui::spawn(&["--server", &server, "--name", "first"], &[], dir.path());
    first.wait_for("local server (in this process)");
    let mut second = Tui::spawn(&["--server", &server, "--name", "second"], &[], dir.path());
    second.wait_for("● connected");
    first.keys(b"\x1b");
    assert!(first.wait_exit());
    second.wait_for("this chatmon now runs one itself");
    second.wait_for("● connected");
    second.keys(b"still here\r");
    second.wait_for("↳ Server received: still here");
    second.keys(b"\x1b");
    assert!(second.wait_exit());
}

#[test]
fn a_restarted_chatmon_serve_gets_its_address_back_and_the_tui_reconnects() {
    let mut ts = TestServer::start();
    let addr = ts.addr;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = addr.to_string();
    let mut tui = Tui::spawn(
        &["chat", "--server", &server, "--name", "stay"],
        &[],
        dir.path(),
    );
    tui.wait_for("● connected");
    ts.stop();
    tui.wait_for("server is stopping");
    // While it is down the TUI keeps what is typed, and does not take the
    // address: a stopped `chatmon serve` must be able to come back.
    tui.keys(b"typed while down\r");
    tui.wait_for("queued");
    let again = TestServer::with(|c| c.bind = addr);
    tui.wait_for("↳ Server received: typed while down");
    assert!(!tui.contents().contains("runs one itself"));
    again.wait_log("for the queued message", |l| {
        l.ends_with(": typed while down")
    });
    tui.keys(b"\x1b");
    assert!(tui.wait_exit());
}
