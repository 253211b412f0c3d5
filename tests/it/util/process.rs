//! Child processes: the one harness that starts `chatmon serve` and reads its
//! address from the banner, a bounded run of any command, and a test run
//! alone in a fresh copy of this test binary. Every child is stopped by its
//! PID (kill, then wait) when its guard drops, so a failing test leaves no
//! process behind.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Share, WAIT, Whole, wait_for, wait_for_within};

/// The `chatmon` binary under test.
pub const CHATMON: &str = env!("CARGO_BIN_EXE_chatmon");

/// What `chatmon serve` prints on stderr once it listens; the address follows.
const BANNER: &str = "chatmon: listening on ";

/// A child that is killed and reaped (by its PID) when dropped.
pub struct Reap(pub Child);

impl Reap {
    pub fn pid(&self) -> libc::pid_t {
        self.0.id() as libc::pid_t
    }

    /// Sends `sig` to the child.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid, which it still is: it is
        // reaped only by `wait` below or by the drop.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits (bounded by `limit`) for the exit.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        wait_for_within(limit, "for the child to exit", || {
            self.0.try_wait().expect("try_wait")
        })
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How to start `chatmon serve`: on 127.0.0.1:0, without periodic stats,
/// without a token from the environment, logging to `log`.
pub struct ServeCmd {
    log: PathBuf,
    bind: String,
    /// Further arguments, after the defaults (a later flag wins).
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    /// RLIMIT_NOFILE for the child, to exhaust its descriptors.
    nofile: Option<u64>,
}

impl ServeCmd {
    pub fn new(log: &Path) -> ServeCmd {
        ServeCmd {
            log: log.to_path_buf(),
            bind: "127.0.0.1:0".into(),
            args: Vec::new(),
            env: Vec::new(),
            nofile: None,
        }
    }

    pub fn bind(mut self, addr: &str) -> ServeCmd {
        self.bind = addr.into();
        self
    }

    pub fn args<S: Into<OsString>>(mut self, args: impl IntoIterator<Item = S>) -> ServeCmd {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> ServeCmd {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn nofile(mut self, n: u64) -> ServeCmd {
        self.nofile = Some(n);
        self
    }

    /// Starts it and waits (bounded) for the banner.
    pub fn start(self) -> Serve {
        let share = Share::take();
        let mut cmd = Command::new(CHATMON);
        cmd.args(["serve", "--bind", &self.bind, "--stats-interval", "0"])
            .arg("--log")
            .arg(&self.log)
            .args(&self.args)
            .env_remove("CHATMON_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(n) = self.nofile {
            // SAFETY: setrlimit is async-signal-safe, and the closure touches
            // nothing but its own stack.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = Reap(cmd.spawn().expect("spawn chatmon serve"));
        let stderr = Lines::collect(child.0.stderr.take().expect("stderr"));
        let addr = wait_for("for the `chatmon serve` banner", || {
            let lines = stderr.lines();
            if let Some(l) = lines.iter().find(|l| l.starts_with(BANNER)) {
                return Some(banner_addr(l));
            }
            assert!(
                !stderr.ended(),
                "chatmon serve ended before listening: {lines:#?}"
            );
            None
        });
        Serve {
            child,
            addr,
            stderr,
            _share: share,
        }
    }
}

/// The address in a banner line: `chatmon: listening on ADDR, logging to …`.
fn banner_addr(line: &str) -> SocketAddr {
    line.strip_prefix(BANNER)
        .and_then(|r| r.split(',').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
}

/// A running `chatmon serve`, its stderr collected by a thread.
pub struct Serve {
    pub child: Reap,
    pub addr: SocketAddr,
    stderr: Lines,
    /// Held while it runs: a storm test waits for it.
    _share: Share,
}

impl Serve {
    /// Everything it printed on stderr so far, one string.
    pub fn stderr(&self) -> String {
        self.stderr
            .lines()
            .iter()
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// Its stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lines()
    }

    /// Waits (bounded) for a stderr line that satisfies `pred`; returns it.
    pub fn wait_stderr(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        wait_for(what, || self.stderr.lines().into_iter().find(|l| pred(l)))
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn sigterm(&mut self) -> ExitStatus {
        self.child.signal(libc::SIGTERM);
        self.child.wait(WAIT * 2)
    }
}

/// The lines a child writes to a pipe, gathered by a thread until EOF.
#[derive(Clone)]
struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
    /// Set at EOF: the child (and everything holding the pipe) is gone.
    ended: Arc<AtomicBool>,
}

impl Lines {
    fn collect(pipe: impl Read + Send + 'static) -> Lines {
        let me = Lines {
            lines: Arc::default(),
            ended: Arc::default(),
        };
        let out = me.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                out.lines.lock().expect("lock").push(line);
            }
            out.ended.store(true, Ordering::SeqCst);
        });
        me
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}

/// Runs `cmd` to its end with `stdin` fed to it, bounded by `limit` (killed
/// past it), and returns what it printed.
pub fn run_with(mut cmd: Command, stdin: &[u8], limit: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Reap(cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")));
    let mut input = child.0.stdin.take().expect("stdin");
    let input = {
        let bytes = stdin.to_vec();
        std::thread::spawn(move || {
            let _ = input.write_all(&bytes);
        })
    };
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = read_all(Box::new(child.0.stdout.take().expect("stdout")));
    let stderr = read_all(Box::new(child.0.stderr.take().expect("stderr")));
    let status = child.wait(limit);
    let _ = input.join();
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Runs `cmd` to its end (nothing on stdin), bounded by `limit`.
pub fn run(cmd: Command, limit: Duration) -> Output {
    run_with(cmd, b"", limit)
}

/// Runs `chatmon ARGS` to its end, bounded.
pub fn chatmon<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Output {
    let mut cmd = Command::new(CHATMON);
    cmd.args(args).env_remove("CHATMON_TOKEN");
    run(cmd, WAIT * 6)
}

/// Whether `program --version` runs: tools a test can use when installed.
pub fn installed(program: &str) -> bool {
    let mut cmd = Command::new(program);
    cmd.arg("--version");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match cmd.spawn() {
        Ok(child) => Reap(child).wait(WAIT * 2).success(),
        Err(_) => false,
    }
}

/// Set in the child that [`alone`] starts, to the one test it runs.
const ALONE: &str = "CHATMON_TEST_ALONE";

/// Runs the test `name` (its path in this binary, e.g. `resources::storms`)
/// alone in a fresh process of this test binary and asserts that it passes.
/// For tests that count the threads or descriptors of their own process:
/// the other tests, running as threads beside them, would be counted too.
/// Nothing else runs meanwhile (it takes the [`Whole`] machine).
/// Returns `false` when called in that child, where the test's body runs.
pub fn alone(name: &str, limit: Duration) -> bool {
    if std::env::var_os(ALONE).is_some_and(|v| v == name) {
        return false;
    }
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(ALONE, name);
    // Alone on the machine too, as it was in a test binary of its own.
    let whole = Whole::take();
    let out = run(cmd, limit);
    drop(whole);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} failed alone:\n{said}");
    assert!(
        said.contains("1 passed"),
        "{name} did not run alone:\n{said}"
    );
    eprint!("{said}");
    true
}
