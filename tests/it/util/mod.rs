//! Helpers shared by every area of the suite: bounded waits, sockets with
//! timeouts, the log check, and (in submodules) the in-process server, the
//! blocking clients, the `chatmon` process harness and the pty driver.
//! Nothing here knows what a particular test checks.

pub mod clients;
pub mod nats;
pub mod process;
pub mod pty;
pub mod server;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use chatmon::eventlog;
use chatmon::protocol::ServerMsg;

pub use clients::{Chat, Plain};
pub use server::TestServer;

/// Every blocking read in the tests gives up after this long.
pub const WAIT: Duration = Duration::from_secs(5);

/// How often the bounded waits look again.
const POLL: Duration = Duration::from_millis(10);

/// A round trip longer than this means the server made someone wait on
/// someone else: what it would wait for otherwise is a write timeout of
/// 10 s. One loopback round trip on a busy 2-core machine stays far below
/// it, so a check against it cannot flake, and still tells the two apart.
pub const STALLED: Duration = Duration::from_secs(2);

/// Waits (bounded by [`WAIT`] × 2) until `cond` holds.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(what, || cond().then_some(()));
}

/// Waits (bounded by [`WAIT`] × 2) until `probe` returns something, and
/// returns it.
pub fn wait_for<T>(what: &str, probe: impl FnMut() -> Option<T>) -> T {
    wait_for_within(WAIT * 2, what, probe)
}

/// [`wait_for`] with its own bound, for waits that are long by nature (a
/// child process running a whole storm).
pub fn wait_for_within<T>(limit: Duration, what: &str, probe: impl FnMut() -> Option<T>) -> T {
    poll(limit, probe).unwrap_or_else(|| panic!("timed out after {limit:?} waiting {what}"))
}

/// Calls `probe` until it returns something or `limit` has passed (then
/// `None`, so that the caller can say what it saw last).
pub fn poll<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Opens a connection with read and write timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.set_write_timeout(Some(WAIT)).expect("timeout");
    s
}

/// Parses every line of a log with the one parser; panics on a bad line.
pub fn assert_log_parses(lines: &[String]) {
    for (i, l) in lines.iter().enumerate() {
        if let Err(e) = eventlog::parse_line(l) {
            panic!("log line {} does not parse ({e}): {l:?}", i + 1);
        }
    }
}

/// A file's lines (none if it does not exist yet).
pub fn file_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Sets SO_LINGER to zero, so that dropping the socket sends RST: a peer
/// that vanishes mid-conversation.
pub fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads one linger struct from a valid pointer.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

/// Who has the machine: any number of ordinary tests at once, or one test
/// that must have it to itself (a storm of thousands of connections, which
/// would slow everything beside it past its bounds). As separate test
/// binaries they ran one after the other; in one binary they would not.
struct Room {
    state: std::sync::Mutex<(usize, bool)>,
    changed: std::sync::Condvar,
}

static ROOM: Room = Room {
    state: std::sync::Mutex::new((0, false)),
    changed: std::sync::Condvar::new(),
};

/// A share of the machine, held by every server, child process and pty the
/// harness starts, and released when it drops. Shares never wait for a
/// test that merely waits for the whole machine, so a test may hold several.
pub struct Share(());

impl Share {
    pub fn take() -> Share {
        let mut s = ROOM.state.lock().unwrap_or_else(|e| e.into_inner());
        while s.1 {
            s = ROOM.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.0 += 1;
        Share(())
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut s = ROOM.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 -= 1;
        ROOM.changed.notify_all();
    }
}

/// The whole machine, until it drops: waits until no share is held.
pub struct Whole(());

impl Whole {
    pub fn take() -> Whole {
        let mut s = ROOM.state.lock().unwrap_or_else(|e| e.into_inner());
        while s.1 || s.0 > 0 {
            s = ROOM.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.1 = true;
        Whole(())
    }
}

impl Drop for Whole {
    fn drop(&mut self) {
        let mut s = ROOM.state.lock().unwrap_or_else(|e| e.into_inner());
        s.1 = false;
        ROOM.changed.notify_all();
    }
}

/// A server's reply or relay without its clock stamps, for comparing with
/// an expected message; panics unless a reply carries both stamps in order
/// (read no later than write) and a relay the server's read time.
pub fn unstamped(m: ServerMsg) -> ServerMsg {
    match m {
        ServerMsg::Reply {
            id,
            text,
            read_us,
            write_us,
        } => {
            let (Some(r), Some(w)) = (read_us, write_us) else {
                panic!("reply #{id} without the server's stamps");
            };
            assert!(r <= w, "reply #{id} written before it was read: {r} > {w}");
            ServerMsg::reply(id, text)
        }
        ServerMsg::Chat {
            from,
            text,
            ts,
            read_us,
            ..
        } => {
            assert!(
                read_us.is_some(),
                "relay from {from} without the server's read time"
            );
            ServerMsg::chat(from, text, ts)
        }
        other => other,
    }
}
