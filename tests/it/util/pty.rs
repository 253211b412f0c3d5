//! The real `chatmon` binary in a pseudo-terminal: keystrokes in, the screen
//! read back through a terminal emulator (vt100) and kept raw as well.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// A program running in a pty. Killed when dropped.
pub struct Tui {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    screen: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    /// Set when the reader saw the end of the output (the program and every
    /// process holding the pty are gone): nothing more will arrive.
    eof: Arc<AtomicBool>,
    master: Box<dyn portable_pty::MasterPty + Send>,
    /// Held while it runs: a storm test waits for it.
    _share: super::Share,
}

impl Tui {
    /// Starts `chatmon ARGS` in a 36×140 pty, in `cwd`, with `env` added.
    pub fn spawn(args: &[&str], env: &[(&str, &str)], cwd: &std::path::Path) -> Tui {
        Tui::spawn_under(&[], args, env, cwd)
    }

    /// [`Tui::spawn`] run through `wrapper` (a program and its arguments,
    /// such as `faketime -f +2s`), which then runs `chatmon ARGS`.
    pub fn spawn_under(
        wrapper: &[&str],
        args: &[&str],
        env: &[(&str, &str)],
        cwd: &std::path::Path,
    ) -> Tui {
        let share = super::Share::take();
        let (rows, cols) = (36, 140);
        let pty = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("openpty");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut cmd = CommandBuilder::new(program);
                cmd.args(rest);
                cmd.arg(super::process::CHATMON);
                cmd
            }
            None => CommandBuilder::new(super::process::CHATMON),
        };
        cmd.args(args);
        cmd.cwd(cwd);
        cmd.env("TERM", "xterm-256color");
        cmd.env("USER", "tester");
        cmd.env_remove("CHATMON_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pty.slave.spawn_command(cmd).expect("spawn chatmon");
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().expect("reader");
        let writer = pty.master.take_writer().expect("writer");
        let size = |n: u16| std::num::NonZeroU16::new(n).expect("non-zero size");
        let screen = Arc::new(Mutex::new(vt100::Parser::new(size(rows), size(cols), 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let eof = Arc::new(AtomicBool::new(false));
        let (s, r, e) = (screen.clone(), raw.clone(), eof.clone());
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
            e.store(true, Ordering::SeqCst);
        });
        Tui {
            child,
            writer,
            screen,
            raw,
            eof,
            master: pty.master,
            _share: share,
        }
    }

    pub fn contents(&self) -> String {
        self.screen.lock().expect("lock").screen().contents()
    }

    pub fn raw(&self) -> Vec<u8> {
        self.raw.lock().expect("lock").clone()
    }

    /// Waits (bounded) until the screen shows `text`; returns the screen.
    pub fn wait_for(&self, text: &str) -> String {
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

    /// Types bytes, as a user at the keyboard.
    pub fn keys(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("type");
        self.writer.flush().expect("flush");
    }

    /// Whether the terminal is in cooked mode (line editing and echo on),
    /// as the kernel's pty says; raw mode turns both off.
    pub fn cooked(&self) -> bool {
        let fd = self.master.as_raw_fd().expect("master fd");
        // SAFETY: tcgetattr writes one termios into the zeroed struct.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::tcgetattr(fd, &mut t) }, 0, "tcgetattr");
        t.c_lflag & libc::ICANON != 0 && t.c_lflag & libc::ECHO != 0
    }

    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.child.process_id().expect("pid");
        // SAFETY: kill with the pid of our own child.
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
    }

    /// Waits (bounded) for the exit and for the last of its output; returns
    /// whether it succeeded.
    pub fn wait_exit(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break st;
            }
            assert!(Instant::now() < deadline, "chatmon did not exit");
            std::thread::sleep(Duration::from_millis(30));
        };
        // The output may still be in flight after the exit: wait for the
        // reader to reach its end (bounded: a grandchild could hold the pty).
        let drained = Instant::now() + Duration::from_secs(2);
        while !self.eof.load(Ordering::SeqCst) && Instant::now() < drained {
            std::thread::sleep(Duration::from_millis(10));
        }
        status.success()
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
