//! End to end: the real `chatmon` binary in a real pseudo-terminal, driven by
//! keystrokes, its screen read back through a terminal emulator (vt100).

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

use common::TestServer;

/// A program running in a pty, with its screen kept up to date by a reader
/// thread. Kills the program when dropped.
struct Tui {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    screen: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Tui {
    fn spawn(args: &[&str], cwd: &std::path::Path) -> Tui {
        let (rows, cols) = (36, 120);
        let pty = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("openpty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_chatmon"));
        cmd.args(args);
        cmd.cwd(cwd);
        cmd.env("TERM", "xterm-256color");
        cmd.env("USER", "tester");
        let child = pty.slave.spawn_command(cmd).expect("spawn chatmon");
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().expect("reader");
        let writer = pty.master.take_writer().expect("writer");
        let size = |n: u16| std::num::NonZeroU16::new(n).expect("non-zero size");
        let screen = Arc::new(Mutex::new(vt100::Parser::new(size(rows), size(cols), 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (screen.clone(), raw.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        s.lock().expect("lock").process(&buf[..n]);
                        r.lock().expect("lock").extend_from_slice(&buf[..n]);
                    }
                }
            }
        });
        Tui {
            child,
            writer,
            screen,
            raw,
            _master: pty.master,
        }
    }

    fn contents(&self) -> String {
        self.screen.lock().expect("lock").screen().contents()
    }

    /// Waits (bounded) until the screen shows `text`.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let c = self.contents();
            if c.contains(text) {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {text:?}; it shows:\n{c}"
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    fn keys(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("type");
        self.writer.flush().expect("flush");
    }

    /// Waits (bounded) for the program to exit; returns whether it succeeded.
    fn wait_exit(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st.success();
            }
            assert!(Instant::now() < deadline, "chatmon did not exit");
            std::thread::sleep(Duration::from_millis(30));
        }
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        dir.path(),
    );
    tui.wait_for("● connected");
    tui.keys("hello from a pty 世界\r".as_bytes());
    let screen = tui.wait_for("↳ Server received: hello from a pty 世界");
    assert!(screen.contains("rtt "), "{screen}");
    // The latency panel counted it.
    tui.wait_for("n 1  min ");
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
    let raw = tui.raw.lock().expect("lock").clone();
    let tail = String::from_utf8_lossy(&raw[raw.len().saturating_sub(200)..]).into_owned();
    assert!(
        tail.contains("\x1b[?1049l"),
        "no alternate-screen exit in {tail:?}"
    );
}

#[test]
fn no_server_running_starts_one_and_a_second_tui_joins() {
    // A free loopback port: bind, note it, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let server = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("tempdir");
    // No subcommand: the main job.
    let mut first = Tui::spawn(&["--server", &server, "--name", "first"], dir.path());
    first.wait_for("local server (in this process)");
    first.wait_for("● connected");
    let mut second = Tui::spawn(
        &["chat", "--server", &server, "--name", "second"],
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
