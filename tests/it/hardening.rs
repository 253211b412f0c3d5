//! A few slow or greedy peers cannot lock everyone out (issue 11): a line
//! must end within `--line-timeout` of its first byte and a first line within
//! `--line-timeout` of connecting; one address holds at most `--max-per-ip`
//! connections; a full server evicts the connection that has waited longest
//! without a complete line, never someone who said hello. The storms run
//! alone in their process and check that threads and descriptors return to
//! their baseline, as `resources.rs` does.

use std::io::{BufReader, ErrorKind as IoErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chatmon::eventlog::{self, LogMessage, Shed};
use chatmon::metrics::MetricsServer;
use chatmon::protocol::{self, ClientMsg, ServerMsg};
use chatmon::server::{ErrorKind, Server};

use crate::resources::{back_to, warm_up};
use crate::util::clients::hello_line;
use crate::util::process::{self, ServeCmd};
use crate::util::{Chat, Plain, TestServer, WAIT, connect, poll, wait_for, wait_until};

/// What a connection the server closes reads, up to its end (bounded).
fn rest_of(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// A connection from the loopback address `src` (any of 127/8), so that one
/// test can be several addresses. (By hand: std cannot bind before connect.)
fn connect_from(src: &str, addr: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let sockaddr = |a: std::net::SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let SocketAddr::V4(to) = addr else {
        panic!("IPv4 only: {addr}")
    };
    let from = sockaddr(std::net::SocketAddrV4::new(src.parse().expect("src"), 0));
    let to = sockaddr(to);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a new socket; bind and connect read one sockaddr_in each from
    // valid pointers; the descriptor is owned by the TcpStream from then on
    // (or closed here on failure).
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let s = TcpStream::from_raw_fd(fd);
        let r = libc::bind(fd, (&from as *const libc::sockaddr_in).cast(), len);
        assert_eq!(r, 0, "bind {src}: {}", std::io::Error::last_os_error());
        let r = libc::connect(fd, (&to as *const libc::sockaddr_in).cast(), len);
        assert_eq!(
            r,
            0,
            "connect from {src}: {}",
            std::io::Error::last_os_error()
        );
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        s.set_write_timeout(Some(WAIT)).expect("timeout");
        s
    }
}

fn plain_from(src: &str, addr: SocketAddr) -> Plain {
    let s = connect_from(src, addr);
    Plain {
        w: s.try_clone().expect("clone"),
        r: BufReader::new(s),
    }
}

/// A chat client joined from the loopback address `src`.
fn chat_from(src: &str, addr: SocketAddr, name: &str) -> Chat {
    let mut c = Chat {
        plain: plain_from(src, addr),
        name: String::new(),
        users: Vec::new(),
    };
    c.plain.send(&hello_line(name, None, false));
    match c.recv() {
        ServerMsg::Welcome { name, .. } => c.name = name,
        other => panic!("expected welcome, got {other:?}"),
    }
    c
}

fn round_trip(c: &mut Chat, id: u64) {
    c.say(id, "still here");
    let got = c.recv_until(|m| matches!(m, ServerMsg::Reply { .. }));
    assert!(
        matches!(got, ServerMsg::Reply { id: i, .. } if i == id),
        "{got:?}"
    );
}

fn kind_count(server: &Server, kind: ErrorKind) -> u64 {
    server.counters().errors_by_kind.get(kind)
}

#[test]
fn a_silent_connection_is_closed_at_the_hello_deadline_whatever_the_idle_timeout() {
    let ts = TestServer::with(|c| {
        c.line_timeout = Some(Duration::from_secs(1));
        c.idle_timeout = Some(Duration::from_secs(60));
    });
    let t0 = Instant::now();
    let mut silent = connect(ts.addr);
    // One that says its line at once owes nothing more: quiet afterwards
    // (shorter than the idle timeout) is fine.
    let mut talker = Plain::new(ts.addr);
    talker.send(b"hi\n");
    assert_eq!(talker.line(), "Server received: hi");
    let got = rest_of(&mut silent);
    let took = t0.elapsed();
    assert_eq!(got, "Error: no line within 1s of connecting, closing\n");
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    let peer = silent.local_addr().expect("addr").to_string();
    ts.wait_log("for the hello timeout", |l| {
        l.starts_with("Error: ")
            && l.ends_with(&format!(
                "server: {peer}: no line within 1s of connecting, closing"
            ))
    });
    ts.wait_log("for its disconnection", |l| {
        l.ends_with(&format!(
            "server: {peer} disconnected (no line within 1s of connecting)"
        ))
    });
    std::thread::sleep(Duration::from_millis(1500));
    talker.send(b"again\n");
    assert_eq!(talker.line(), "Server received: again");
    assert_eq!(kind_count(ts.server(), ErrorKind::HelloTimeout), 1);
    crate::util::assert_log_parses(&ts.log_lines());
}

#[test]
fn a_line_not_finished_in_time_is_closed_with_the_error_in_the_clients_words() {
    let ts = TestServer::with(|c| c.line_timeout = Some(Duration::from_secs(1)));
    let mut watcher = Chat::join(ts.addr, "watcher");

    // A plain trickler: each byte is answered (the seed's pause rule), but
    // the line's time runs from its first byte until a newline, which never
    // comes.
    let mut trickler = connect(ts.addr);
    let peer = trickler.local_addr().expect("addr").to_string();
    let t0 = Instant::now();
    let mut got = Vec::new();
    for _ in 0..40 {
        if trickler.write_all(b"x").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        trickler
            .set_nonblocking(true)
            .expect("nonblocking for a peek");
        let mut buf = [0u8; 4096];
        let ended = match trickler.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                got.ends_with(b", closing\n")
            }
            Err(e) => e.kind() != IoErrorKind::WouldBlock,
        };
        trickler.set_nonblocking(false).expect("blocking");
        if ended {
            break;
        }
    }
    got.extend_from_slice(rest_of(&mut trickler).as_bytes());
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(got.starts_with("Server received: x\n"), "{got:?}");
    assert!(
        got.ends_with("Error: line not finished within 1s, closing\n"),
        "{got:?}"
    );
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
    ts.wait_log("for the line timeout", |l| {
        l.ends_with(&format!(
            "server: {peer}: line not finished within 1s, closing"
        ))
    });

    // A chat client that stops halfway through a line hears it in JSON, and
    // the room hears why it left.
    let mut half = Chat::join(ts.addr, "half");
    watcher.recv_until(|m| matches!(m, ServerMsg::Join { .. }));
    half.plain.send(b"{\"type\":\"msg\",\"id\":1,");
    let got = half.recv();
    assert_eq!(
        got,
        ServerMsg::Error {
            message: "line not finished within 1s, closing".into()
        }
    );
    let left = watcher.recv_until(|m| matches!(m, ServerMsg::Leave { .. }));
    assert_eq!(
        left,
        ServerMsg::Leave {
            name: "half".into(),
            users: 1,
            reason: "line not finished within 1s".into()
        }
    );
    round_trip(&mut watcher, 7);
    assert_eq!(kind_count(ts.server(), ErrorKind::LineTimeout), 2);
}

#[test]
fn a_slow_but_steady_64_kib_chat_line_is_served() {
    // The default deadline (10 s); a 64 KiB line sent over 3 s in small
    // pieces, as on a slow real network.
    let ts = TestServer::start();
    let mut alice = Chat::join(ts.addr, "alice");
    let overhead = protocol::encode(&ClientMsg::msg(1, String::new())).len();
    let text = "s".repeat(protocol::DEFAULT_MAX_LINE + 1 - overhead);
    let line = protocol::encode(&ClientMsg::msg(1, text.clone()));
    assert_eq!(
        line.len(),
        protocol::DEFAULT_MAX_LINE + 1,
        "64 KiB and its newline"
    );
    let pieces = 100;
    let t0 = Instant::now();
    for chunk in line.as_bytes().chunks(line.len().div_ceil(pieces)) {
        alice.plain.send(chunk);
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(t0.elapsed() >= Duration::from_secs(3), "{:?}", t0.elapsed());
    match alice.recv() {
        ServerMsg::Reply { id: 1, text: t, .. } => {
            assert_eq!(t, protocol::reply_text(&text));
        }
        other => panic!("expected the reply, got {other:?}"),
    }
    round_trip(&mut alice, 2);
    assert_eq!(kind_count(ts.server(), ErrorKind::LineTimeout), 0);
}

#[test]
fn a_full_server_evicts_the_longest_waiting_connection_never_a_chat_user() {
    let ts = TestServer::with(|c| {
        c.max_clients = 3;
        c.line_timeout = Some(Duration::from_secs(30));
    });
    let server = ts.server();
    let mut alice = Chat::join(ts.addr, "alice");
    let mut oldest = connect(ts.addr);
    wait_until("for the oldest to be held", || server.active_clients() == 2);
    let mut younger = connect(ts.addr);
    wait_until("for the server to be full", || server.active_clients() == 3);

    let mut first = Plain::new(ts.addr);
    first.send(b"let me in\n");
    assert_eq!(first.line(), "Server received: let me in");
    let got = rest_of(&mut oldest);
    assert!(
        got.starts_with("Error: evicted to make room: no complete line after ")
            && got.ends_with("s, closing\n"),
        "{got:?}"
    );
    let peer = oldest.local_addr().expect("addr").to_string();
    ts.wait_log("for the eviction", |l| {
        l.contains(&format!("server: {peer}: evicted to make room"))
    });
    // The younger one was not touched; the next newcomer takes its slot.
    younger.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 64];
    assert!(
        matches!(younger.read(&mut buf), Err(e) if e.kind() == IoErrorKind::WouldBlock),
        "the younger one was closed too early"
    );
    younger.set_nonblocking(false).expect("blocking");
    let mut second = Plain::new(ts.addr);
    second.send(b"me too\n");
    assert_eq!(second.line(), "Server received: me too");
    assert!(rest_of(&mut younger).starts_with("Error: evicted to make room"));

    // Now everyone has said a line: nobody to evict, the newcomer is refused.
    let mut third = connect(ts.addr);
    assert_eq!(
        rest_of(&mut third),
        "Error: server is full (3 clients), try again later\n"
    );
    round_trip(&mut alice, 1);
    first.send(b"ok\n");
    assert_eq!(first.line(), "Server received: ok");
    assert_eq!(kind_count(server, ErrorKind::Evicted), 2);
    assert_eq!(kind_count(server, ErrorKind::Refused), 1);
}

/// `GET /metrics`, as `name{labels} value` pairs.
fn scrape(addr: SocketAddr) -> Vec<(String, f64)> {
    let mut s = connect(addr);
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .expect("request");
    let page = rest_of(&mut s);
    let body = page.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn refusals_and_evictions_are_counted_by_reason_in_metrics_and_stats() {
    let mut ts = TestServer::with(|c| {
        c.max_clients = 2;
        c.line_timeout = Some(Duration::from_millis(500));
        c.max_per_ip = Some(1);
        c.max_per_ip_loopback = true;
        c.stats_interval = Some(Duration::from_secs(3600));
    });
    let ms = MetricsServer::start("127.0.0.1:0".parse().expect("addr"), ts.server().monitor())
        .expect("metrics");
    let addr = ts.addr;
    // One per address; a second from the same one is refused.
    let mut a = plain_from("127.0.0.1", addr);
    a.send(b"a\n");
    assert_eq!(a.line(), "Server received: a");
    let mut b = connect_from("127.0.0.1", addr);
    assert_eq!(
        rest_of(&mut b),
        "Error: too many connections from 127.0.0.1 (1), try again later\n"
    );
    // Silent: the hello deadline. A begun line: the line deadline. (Each
    // waits for the slot to be free again, so that nobody is evicted yet.)
    let only_a = || {
        wait_until("for only a to be left", || {
            ts.server().active_clients() == 1
        })
    };
    let mut c = connect_from("127.0.0.2", addr);
    assert!(rest_of(&mut c).starts_with("Error: no line within 500ms"));
    only_a();
    let mut d = connect_from("127.0.0.3", addr);
    d.write_all(b"{").expect("write");
    assert!(rest_of(&mut d).starts_with("Error: line not finished within 500ms"));
    only_a();
    // Full (a and e): f evicts e; then g finds nobody to evict.
    let mut e = connect_from("127.0.0.4", addr);
    wait_until("for the server to be full", || {
        ts.server().active_clients() == 2
    });
    let mut f = plain_from("127.0.0.5", addr);
    f.send(b"f\n");
    assert_eq!(f.line(), "Server received: f");
    assert!(rest_of(&mut e).starts_with("Error: evicted to make room"));
    let mut g = connect_from("127.0.0.6", addr);
    assert!(rest_of(&mut g).starts_with("Error: server is full (2 clients)"));

    let expected = [
        ("server_full", 1.0),
        ("per_address", 1.0),
        ("evicted", 1.0),
        ("line_timeout", 1.0),
        ("hello_timeout", 1.0),
    ];
    let m = wait_for("the shed figures in the metrics", || {
        let m = scrape(ms.local_addr());
        expected
            .iter()
            .all(|(reason, v)| {
                let key = format!("chatmon_connections_shed_total{{reason=\"{reason}\"}}");
                m.iter().any(|(k, x)| *k == key && x == v)
            })
            .then_some(m)
    });
    for (kind, v) in [
        ("per_address", 1.0),
        ("evicted", 1.0),
        ("line_timeout", 1.0),
        ("hello_timeout", 1.0),
        ("refused", 1.0),
    ] {
        let key = format!("chatmon_errors_total{{kind=\"{kind}\"}}");
        assert!(m.iter().any(|(k, x)| *k == key && *x == v), "{key}: {m:?}");
    }
    ms.shutdown();
    // The last `Stats` line (written at the stop) carries the interval's
    // figures by reason, and parses back.
    drop((a, f));
    ts.stop();
    let lines = ts.log_lines();
    crate::util::assert_log_parses(&lines);
    let shed = lines
        .iter()
        .rev()
        .find_map(|l| {
            let ev = eventlog::parse_line(l).ok()?;
            match ev.log_message() {
                LogMessage::Stats(s) => Some(s.shed),
                _ => None,
            }
        })
        .expect("a Stats line");
    assert_eq!(
        shed,
        Shed {
            server_full: 1,
            per_address: 1,
            evicted: 1,
            line_timeout: 1,
            hello_timeout: 1,
        }
    );
    let stats = lines
        .iter()
        .rfind(|l| l.starts_with("Stats: "))
        .expect("a Stats line");
    assert!(
        stats.ends_with(" server_full=1 per_address=1 evicted=1 line_timeout=1 hello_timeout=1"),
        "{stats}"
    );
}

#[test]
fn serve_flags_set_the_deadline_and_the_per_address_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = ServeCmd::new(&dir.path().join("log.txt"))
        .args([
            "--line-timeout",
            "1s",
            "--max-per-ip",
            "1",
            "--max-per-ip-loopback",
        ])
        .start();
    let mut a = Plain::new(serve.addr);
    a.send(b"hi\n");
    assert_eq!(a.line(), "Server received: hi");
    let mut b = connect(serve.addr);
    assert_eq!(
        rest_of(&mut b),
        "Error: too many connections from 127.0.0.1 (1), try again later\n"
    );
    drop(a);
    let mut c = wait_for("for the address's slot to be free", || {
        let mut c = connect(serve.addr);
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = [0u8; 8];
        match c.read(&mut buf) {
            Err(e) if matches!(e.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) => {
                Some(c)
            }
            _ => None,
        }
    });
    assert_eq!(
        rest_of(&mut c),
        "Error: no line within 1s of connecting, closing\n"
    );
    let help = process::chatmon(["serve", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--line-timeout", "--max-per-ip", "--max-per-ip-loopback"] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
}

/// Trickler `i` opens its line with a byte that makes it look like the
/// start of a hello (odd) or of a plain message (even).
fn trickle_byte(i: usize) -> &'static [u8] {
    if i % 2 == 1 { b"{" } else { b"x" }
}

#[test]
fn slow_peer_storms_leave_no_thread_or_descriptor_behind() {
    if process::alone(
        "hardening::slow_peer_storms_leave_no_thread_or_descriptor_behind",
        Duration::from_secs(300),
    ) {
        return;
    }
    chatmon::sys::raise_nofile_limit().expect("raise the descriptor limit");
    trickler_storm();
    per_address_storm();
    silent_flood();
}

/// 200 tricklers (one byte a second, never a newline) against
/// `--max-clients 200 --line-timeout 2s`: within 4 s a newcomer is served
/// and every trickler has been closed with the error.
fn trickler_storm() {
    const N: usize = 200;
    let ts = TestServer::with(|c| {
        c.max_clients = N;
        c.line_timeout = Some(Duration::from_secs(2));
    });
    let server = ts.server();
    let base = warm_up(&ts);
    let mut streams: Vec<TcpStream> = (0..N)
        .map(|i| {
            let mut s = TcpStream::connect(ts.addr).expect("connect a trickler");
            s.write_all(trickle_byte(i)).expect("first byte");
            s
        })
        .collect();
    wait_until("for every trickler to be held", || {
        server.active_clients() == N
    });
    let t0 = Instant::now();
    let trickle = std::thread::spawn(move || {
        // Reads what came before each byte, and stops writing to one that
        // ended, so that no write meets a closed socket (its reset could
        // drop the error line before it is read).
        let mut got: Vec<Vec<u8>> = vec![Vec::new(); N];
        let mut done = [false; N];
        for s in &streams {
            s.set_nonblocking(true).expect("nonblocking");
        }
        let until = Instant::now() + Duration::from_secs(6);
        while Instant::now() < until && done.iter().any(|d| !d) {
            for (i, s) in streams.iter_mut().enumerate() {
                if done[i] {
                    continue;
                }
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => {
                            done[i] = true;
                            break;
                        }
                        Ok(n) => got[i].extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == IoErrorKind::WouldBlock => break,
                        Err(_) => {
                            done[i] = true;
                            break;
                        }
                    }
                }
                if !done[i] && !got[i].ends_with(b", closing\n") {
                    let _ = s.write(trickle_byte(i));
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        (streams, got)
    });
    // The server is full of tricklers: a newcomer gets in at once.
    let mut honest = Chat::join(ts.addr, "honest");
    round_trip(&mut honest, 1);
    let served = t0.elapsed();
    let closed = poll(Duration::from_secs(4).saturating_sub(t0.elapsed()), || {
        let c = kind_count(server, ErrorKind::LineTimeout) + kind_count(server, ErrorKind::Evicted);
        (c == N as u64).then_some(())
    });
    let all_closed_after = t0.elapsed();
    assert!(
        closed.is_some(),
        "after {all_closed_after:?}: {} line timeouts, {} evicted, {} sessions",
        kind_count(server, ErrorKind::LineTimeout),
        kind_count(server, ErrorKind::Evicted),
        server.active_clients()
    );
    let (streams, got) = trickle.join().expect("trickler thread");
    let evicted = kind_count(server, ErrorKind::Evicted);
    assert_eq!(evicted, 1, "the newcomer took one trickler's slot");
    let mut line_errors = 0;
    for (i, g) in got.iter().enumerate() {
        let g = String::from_utf8_lossy(g);
        let last = g.lines().last().unwrap_or_default();
        if last == "Error: line not finished within 2s, closing" {
            line_errors += 1;
        } else {
            assert!(
                last.starts_with("Error: evicted to make room"),
                "trickler {i} got {g:?}"
            );
        }
        // Plain-looking tricklers were answered byte by byte until then (two
        // bytes may meet in one read on a busy machine); hello-looking ones
        // got nothing but the error.
        let others = g.lines().count() - 1;
        if i % 2 == 1 {
            assert_eq!(others, 0, "trickler {i}: {g:?}");
        } else {
            let answers = |l: &str| {
                l.strip_prefix("Server received: ")
                    .is_some_and(|x| !x.is_empty() && x.bytes().all(|b| b == b'x'))
            };
            assert!(g.lines().rev().skip(1).all(answers), "{g:?}");
        }
    }
    assert_eq!(line_errors, N - 1);
    assert_eq!(kind_count(server, ErrorKind::Refused), 0);
    // The newcomer is still served after the storm.
    round_trip(&mut honest, 2);
    drop((streams, honest));
    back_to(base, server, "the tricklers");
    eprintln!(
        "tricklers: newcomer served after {served:?}, all {N} closed after {all_closed_after:?}"
    );
}

/// `--max-per-ip 50 --max-per-ip-loopback`: the 51st connection from one
/// address is refused (logged once per burst); the first 50 and a chat user
/// from another address keep working.
fn per_address_storm() {
    const LIMIT: usize = 50;
    let ts = TestServer::with(|c| {
        c.max_per_ip = Some(LIMIT);
        c.max_per_ip_loopback = true;
    });
    let server = ts.server();
    let base = warm_up(&ts);
    let mut carol = chat_from("127.0.0.2", ts.addr, "carol");
    let mut held: Vec<Plain> = (0..LIMIT)
        .map(|i| {
            let mut p = Plain::new(ts.addr);
            p.send(format!("{i}\n").as_bytes());
            assert_eq!(p.line(), format!("Server received: {i}"));
            p
        })
        .collect();
    let refusal =
        format!("Error: too many connections from 127.0.0.1 ({LIMIT}), try again later\n");
    for _ in 0..10 {
        let mut s = connect(ts.addr);
        assert_eq!(rest_of(&mut s), refusal);
    }
    let logged = |ts: &TestServer| {
        ts.log_lines()
            .iter()
            .filter(|l| {
                l.ends_with(&format!(
                    "refused: too many connections from 127.0.0.1 ({LIMIT})"
                ))
            })
            .count()
    };
    assert_eq!(logged(&ts), 1, "one log line for the burst");
    assert_eq!(kind_count(server, ErrorKind::PerAddress), 10);
    for (i, p) in held.iter_mut().enumerate().step_by(7) {
        p.send(b"ping\n");
        assert_eq!(p.line(), "Server received: ping", "held {i}");
    }
    round_trip(&mut carol, 1);
    // One leaves: one more gets in, and the next refusal is a new burst.
    held.pop();
    wait_until("for the slot to be free", || {
        server.active_clients() == LIMIT
    });
    let mut again = Plain::new(ts.addr);
    again.send(b"in\n");
    assert_eq!(again.line(), "Server received: in");
    let mut s = connect(ts.addr);
    assert_eq!(rest_of(&mut s), refusal);
    ts.wait_log("for the second burst's line", |_| logged(&ts) == 2);
    drop((held, again, carol, s));
    back_to(base, server, "the per-address storm");
}

/// 300 connections that say nothing against `--max-clients 100`: each
/// newcomer evicts the one that waited longest, nobody is refused, the chat
/// user in the room is never evicted, and the rest expire at the deadline.
fn silent_flood() {
    const MAX: usize = 100;
    const FLOOD: usize = 300;
    let ts = TestServer::with(|c| {
        c.max_clients = MAX;
        c.line_timeout = Some(Duration::from_secs(2));
    });
    let server = ts.server();
    let base = warm_up(&ts);
    let mut anchor = Chat::join(ts.addr, "anchor");
    let accepted = server.counters().accepted.load(Ordering::Relaxed);
    let flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| TcpStream::connect(ts.addr).expect("connect in the flood"))
        .collect();
    wait_until("for the whole flood to be accepted", || {
        server.counters().accepted.load(Ordering::Relaxed) - accepted == FLOOD as u64
    });
    round_trip(&mut anchor, 1);
    wait_until("for the flood to expire", || server.active_clients() == 1);
    let evicted = kind_count(server, ErrorKind::Evicted);
    let expired = kind_count(server, ErrorKind::HelloTimeout);
    assert_eq!(evicted, (FLOOD - (MAX - 1)) as u64);
    assert_eq!(evicted + expired, FLOOD as u64);
    assert_eq!(kind_count(server, ErrorKind::Refused), 0);
    round_trip(&mut anchor, 2);
    drop((flood, anchor));
    back_to(base, server, "the silent flood");
}
