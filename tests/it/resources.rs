//! After any storm, the server's threads and open descriptors return to
//! their baseline (issue 4), read from /proc/self/task and /proc/self/fd.
//!
//! The server runs in this test's process, so the counts are the server's
//! plus the test's own sockets. The suite runs its tests as threads of one
//! process, so this test reruns itself alone in a fresh process of the test
//! binary (`util::process::alone`), where it runs every storm in turn:
//! nothing else can start a thread or open a file meanwhile.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chatmon::server::Server;
use chatmon::sys;

use crate::util::process;
use crate::util::{Chat, Plain, TestServer, poll, set_linger_zero, wait_until};

/// Connections in the flood, and how many of them the server holds.
const FLOOD: usize = 2000;
const MAX_CLIENTS: usize = 1500;

pub(crate) fn counts() -> (usize, usize) {
    (
        sys::thread_count().expect("/proc/self/task"),
        sys::fd_count().expect("/proc/self/fd"),
    )
}

/// Waits (bounded) until threads and descriptors are back to `base`.
pub(crate) fn back_to(base: (usize, usize), server: &Server, after: &str) {
    let mut now = counts();
    let back = poll(Duration::from_secs(8), || {
        now = counts();
        (now.0 <= base.0 && now.1 <= base.1 && server.active_clients() == 0).then_some(())
    });
    assert!(
        back.is_some(),
        "after {after}: threads/fds {now:?}, baseline {base:?}, {} sessions",
        server.active_clients()
    );
}

/// Connections the server has accepted or refused so far.
fn handled(server: &Server) -> u64 {
    let c = server.counters();
    c.accepted.load(Ordering::Relaxed) + c.refused.load(Ordering::Relaxed)
}

/// Waits (bounded) until the server has taken `n` connections since
/// `before`, and says how many it took if it does not.
fn handled_all(server: &Server, before: u64, n: usize, what: &str) {
    let mut took = 0;
    let done = poll(Duration::from_secs(10), || {
        took = handled(server) - before;
        (took >= n as u64).then_some(())
    });
    assert!(done.is_some(), "{what}: {took} of {n} connections taken");
    assert_eq!(took, n as u64, "{what}: more connections than were made");
}

/// Runs one chat session to its end, so that whatever is created lazily
/// exists, and returns the baseline counts.
pub(crate) fn warm_up(ts: &TestServer) -> (usize, usize) {
    {
        let mut a = Chat::join(ts.addr, "warmup");
        a.say(1, "hi");
        let _ = a.recv();
    }
    let server = ts.server();
    wait_until("for the warm-up session to end", || {
        server.active_clients() == 0
    });
    // The session's threads exit a moment after it ends: the baseline is
    // the counts once they hold still over a few looks.
    let mut last = counts();
    let mut still = 0;
    wait_until("for the counts to settle", || {
        std::thread::sleep(Duration::from_millis(20));
        let now = counts();
        still = if now == last { still + 1 } else { 0 };
        last = now;
        still >= 5
    });
    last
}

#[test]
fn storms_leave_no_thread_or_descriptor_behind() {
    if process::alone(
        "resources::storms_leave_no_thread_or_descriptor_behind",
        Duration::from_secs(300),
    ) {
        return;
    }
    let limit = sys::raise_nofile_limit().expect("raise the descriptor limit");
    assert!(limit as usize > 2 * FLOOD + 100, "descriptor limit {limit}");
    let ts = TestServer::with(|c| {
        c.idle_timeout = Some(Duration::from_millis(400));
        c.max_line = 4096;
    });
    let server = ts.server();
    let base = warm_up(&ts);

    // Storm 1: peers that vanish, mid-message, by reset and by half-close,
    // in plain and chat mode, with junk.
    let before = handled(server);
    for i in 0..300 {
        let mut s = TcpStream::connect(ts.addr).expect("connect");
        match i % 6 {
            0 => {
                let _ = s.write_all(b"half a mess");
                set_linger_zero(&s);
            }
            1 => {
                let _ = s.write_all(
                    b"{\"type\":\"hello\",\"v\":1,\"name\":\"r\"}\n{\"type\":\"msg\",\"id\":1,\"te",
                );
                set_linger_zero(&s);
            }
            2 => {
                let _ = s.write_all(b"bye");
                let _ = s.shutdown(Shutdown::Write);
            }
            3 => {
                let _ = s.write_all(&[0xff; 5000]);
            }
            4 => {
                let _ = s.write_all(b"{\"type\":\"msg\",\"id\":1,\"text\":\"x\"}\n\0\0\0\n");
            }
            _ => {
                let _ = s.write_all(format!("{}\n", "[".repeat(3000)).as_bytes());
                set_linger_zero(&s);
            }
        }
        drop(s);
    }
    // A peer that closed while still in the listen backlog costs no
    // descriptor yet, so the counts can be back before the accept thread
    // has taken the last of them; storm 2 counts its own accepts exactly.
    handled_all(server, before, 300, "peers that vanish");
    back_to(base, server, "peers that vanish");

    // Storm 2: connect and say nothing; the idle timeout frees them.
    let accepted = handled(server);
    let silent: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(ts.addr).expect("connect"))
        .collect();
    handled_all(server, accepted, silent.len(), "silent peers");
    wait_until("for the idle timeout", || server.active_clients() == 0);
    for mut s in silent {
        let mut buf = String::new();
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let _ = s.read_to_string(&mut buf);
        assert!(buf.starts_with("Error: idle for 400ms"), "{buf:?}");
    }
    back_to(base, server, "silent peers");

    drop(ts);

    // Storm 3: a flood of connections, more than max_clients, on a server
    // without idle timeout. The excess is refused with a clear line; the
    // clients it has keep working; once some leave, it accepts again.
    // Without the line deadline: its connections owe their first line, and
    // with it a full server would evict them for newcomers instead of
    // refusing (that is `hardening.rs`); here the refusal path is tested.
    let ts = TestServer::with(|c| {
        c.max_clients = MAX_CLIENTS;
        c.line_timeout = None;
    });
    let server = ts.server();
    let base = warm_up(&ts);
    let mut anchor = Chat::join(ts.addr, "anchor");
    let before = handled(server);
    let t0 = Instant::now();
    let mut flood: Vec<TcpStream> = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        flood.push(TcpStream::connect(ts.addr).expect("connect in the flood"));
    }
    let burst = t0.elapsed();
    handled_all(server, before, FLOOD, "the flood");
    assert_eq!(server.active_clients(), MAX_CLIENTS, "burst took {burst:?}");
    let mut refused = Vec::new();
    let mut held = Vec::new();
    for s in flood {
        s.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 256];
        match (&s).read(&mut buf) {
            Ok(n) if n > 0 => {
                let l = String::from_utf8_lossy(&buf[..n]).into_owned();
                assert_eq!(
                    l,
                    format!("Error: server is full ({MAX_CLIENTS} clients), try again later\n")
                );
                refused.push(s);
            }
            _ => held.push(s),
        }
    }
    assert_eq!(refused.len(), FLOOD - (MAX_CLIENTS - 1));
    assert_eq!(held.len(), MAX_CLIENTS - 1);
    drop(refused);
    // The server is full, and the anchor still chats.
    anchor.say(1, "still here");
    assert!(matches!(
        anchor.recv(),
        chatmon::protocol::ServerMsg::Reply { id: 1, .. }
    ));
    let mut turned_away = Plain::new(ts.addr);
    assert!(turned_away.line().contains("server is full"));
    // Some leave; it accepts again.
    held.truncate(held.len() - 100);
    wait_until("for the leavers to be freed", || {
        server.active_clients() == MAX_CLIENTS - 100
    });
    let mut newcomer = Plain::new(ts.addr);
    newcomer.send(b"let me in\n");
    assert_eq!(newcomer.line(), "Server received: let me in");
    // Everyone held is still served.
    for s in held.iter_mut().step_by(50) {
        s.set_nonblocking(false).expect("blocking");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(b"ping\n").expect("ping");
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).expect("pong");
        assert_eq!(&buf[..n], b"Server received: ping\n");
    }
    drop((held, newcomer, turned_away, anchor));
    back_to(base, server, "the flood");
    eprintln!(
        "flood: {FLOOD} connections in {burst:?}, {MAX_CLIENTS} held, {} refused",
        FLOOD - MAX_CLIENTS
    );
}
