//! Reliability promises (issue 4) against an in-process server: bad input
//! gets a clear error while bystanders never notice, vanished peers are
//! freed, slow consumers are evicted without slowing anyone else, a failing
//! log disk does not stop the server, and a client survives a server restart
//! without losing a message silently.
//!
//! Thread and descriptor accounting lives in `resources`: it runs alone in a
//! process of its own.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chatmon::client::{self, ClientConfig, ClientEvent};
use chatmon::eventlog::{self, EventLog, LogSink, MemorySink};
use chatmon::protocol::{self, ClientMsg, PROTOCOL_VERSION, ServerMsg};
use chatmon::server::{Server, ServerConfig};

use crate::util::{
    Chat, Plain, STALLED, TestServer, assert_log_parses, connect, set_linger_zero, unstamped,
    wait_until,
};

/// Two chat clients that talk across every bad-input case and check that
/// nothing reached them but each other's messages and presence.
struct Bystanders {
    alice: Chat,
    bob: Chat,
    next: u64,
}

impl Bystanders {
    fn new(addr: SocketAddr) -> Bystanders {
        let mut alice = Chat::join(addr, "alice");
        let bob = Chat::join(addr, "bob");
        let _ = alice.recv_until(|m| matches!(m, ServerMsg::Join { .. }));
        Bystanders {
            alice,
            bob,
            next: 1,
        }
    }

    /// Alice says something; she gets her reply and bob the relay, and
    /// neither sees an error or a shutdown on the way.
    fn exchange(&mut self) {
        let id = self.next;
        self.next += 1;
        let text = format!("still fine #{id}");
        self.alice.say(id, &text);
        let quiet = |m: &ServerMsg| {
            assert!(
                !matches!(m, ServerMsg::Error { .. } | ServerMsg::Shutdown { .. }),
                "a bystander noticed: {m:?}"
            );
        };
        for _ in 0..1000 {
            let m = self.alice.recv();
            quiet(&m);
            if let ServerMsg::Reply {
                id: got, text: t, ..
            } = &m
            {
                assert_eq!(
                    (*got, t.as_str()),
                    (id, format!("Server received: {text}").as_str())
                );
                break;
            }
        }
        for _ in 0..1000 {
            let m = self.bob.recv();
            quiet(&m);
            if let ServerMsg::Chat { from, text: t, .. } = &m
                && from == "alice"
            {
                assert_eq!(t, &text);
                break;
            }
        }
    }
}

/// Sends raw bytes on a new connection and returns the first line back.
fn first_reply(addr: SocketAddr, bytes: &[u8]) -> (Plain, String) {
    let mut p = Plain::new(addr);
    p.send(bytes);
    let l = p.line();
    (p, l)
}

fn expect_error_line(what: &str, line: &str, needle: &str) {
    assert!(
        line.starts_with("Error: ") && line.contains(needle),
        "{what}: expected an error with {needle:?}, got {line:?}"
    );
}

fn expect_chat_error(what: &str, line: &str, needle: &str) {
    match protocol::decode::<ServerMsg>(line.as_bytes()) {
        Ok(ServerMsg::Error { message }) if message.contains(needle) => {}
        other => panic!("{what}: expected a chat error with {needle:?}, got {other:?} ({line:?})"),
    }
}

fn hello_line(name: &str) -> Vec<u8> {
    crate::util::clients::hello_line(name, None, false)
}

/// Reads until EOF or reset; what came before it.
fn drain(p: &mut Plain) -> String {
    let mut s = String::new();
    let _ = p.r.read_to_string(&mut s);
    s
}

/// Number of bad-input cases below; reported in the README's guarantees.
const BAD_INPUT_CASES: usize = 27;

#[test]
fn bad_input_gets_a_clear_error_and_bystanders_never_notice() {
    const MAX: usize = 1024;
    let ts = TestServer::with(|c| c.max_line = MAX);
    let addr = ts.addr;
    let mut by = Bystanders::new(addr);
    let mut cases = 0;
    let mut case = |by: &mut Bystanders| {
        cases += 1;
        by.exchange();
    };
    case(&mut by);

    // --- Plain sessions ---
    // 1. An oversized line, in one piece.
    let mut big = vec![b'x'; 3 * MAX];
    big.push(b'\n');
    let (mut p, l) = first_reply(addr, &big);
    expect_error_line("oversized", &l, "longer than the limit of 1024 bytes");
    p.send(b"after\n");
    assert_eq!(p.line(), "Server received: after");
    case(&mut by);

    // 2. A line that never ends: the error comes while it is arriving, once.
    let mut p = Plain::new(addr);
    p.send(&vec![b'y'; 2 * MAX]);
    let l = p.line();
    expect_error_line("never-ending line", &l, "discarding it up to its newline");
    for _ in 0..8 {
        p.send(&vec![b'y'; 4 * MAX]);
    }
    p.send(b"\nnext\n");
    assert_eq!(p.line(), "Server received: next", "one error per line");
    case(&mut by);

    // 3. A line that never ends and never pauses: warned by volume.
    let mut p = Plain::new(addr);
    let mut w = p.w.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'z'; 4096];
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if w.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let l = p.line();
    expect_error_line("endless stream", &l, "discarding it up to its newline");
    drop(p);
    let _ = writer.join();
    case(&mut by);

    // 4-6. Invalid UTF-8: a stray byte, an overlong encoding, a surrogate.
    for bad in [&b"ab\xffcd\n"[..], b"\xc0\xaf\n", b"\xed\xa0\x80\n"] {
        let (mut p, l) = first_reply(addr, bad);
        expect_error_line("invalid UTF-8", &l, "not valid UTF-8");
        p.send(b"ok\n");
        assert_eq!(p.line(), "Server received: ok");
        case(&mut by);
    }

    // 7. NUL bytes.
    let (mut p, l) = first_reply(addr, b"a\0b\n");
    expect_error_line("NUL", &l, "NUL byte");
    p.send(b"ok\n");
    assert_eq!(p.line(), "Server received: ok");
    case(&mut by);

    // 8. ANSI escape sequences: accepted, but the log holds them escaped
    // and the line parses back to the exact text.
    let ansi = "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{1b}[31mred\r";
    let (_p, l) = first_reply(addr, format!("{ansi}\n").as_bytes());
    assert_eq!(
        l,
        format!("Server received: {}", ansi.trim_end_matches('\r'))
    );
    let logged = ts.wait_log("for the ANSI message", |l| {
        l.starts_with("Message Received: ") && l.contains("pwned")
    });
    assert!(
        !logged.contains('\u{1b}') && !logged.contains('\u{7}'),
        "{logged:?}"
    );
    let e = eventlog::parse_line(&logged).expect("parses");
    assert!(e.message.ends_with(ansi.trim_end_matches('\r')), "{e:?}");
    case(&mut by);

    // --- Before the hello ---
    // 9. A chat message before the hello: told to say hello, may still do so.
    let (mut p, l) = first_reply(addr, b"{\"type\":\"msg\",\"id\":1,\"text\":\"hi\"}\n");
    expect_chat_error("msg before hello", &l, "send a hello first");
    p.send(&hello_line("late"));
    let w = p.line();
    assert!(w.contains("\"welcome\""), "{w}");
    let _ = by.alice.recv_until(|m| matches!(m, ServerMsg::Join { .. }));
    let _ = by.bob.recv_until(|m| matches!(m, ServerMsg::Join { .. }));
    drop(p);
    let _ = by
        .alice
        .recv_until(|m| matches!(m, ServerMsg::Leave { .. }));
    let _ = by.bob.recv_until(|m| matches!(m, ServerMsg::Leave { .. }));
    case(&mut by);

    // 10-16. Bad hellos: one chat error line each, then closed.
    let huge = hello_line(&"h".repeat(MAX / 2));
    let cases_hello: [(&[u8], &str); 7] = [
        (&huge, "longer than 32 characters"),
        (&hello_line(""), "name is empty"),
        (&hello_line("ser\u{1b}[2Jver"), "invalid name"),
        (b"{\"type\":\"hello\",\"v\":1}\n", "valid hello"),
        (
            b"{\"type\":\"hello\",\"v\":99,\"name\":\"x\"}\n",
            "protocol version 99",
        ),
        (b"{\"type\":\"hello\", \"name\": [1,2]}\n", "valid hello"),
        (
            b"{\"type\":\"hello\",\"v\":1,\"name\":\"a\0b\"}\n",
            "valid hello",
        ),
    ];
    for (bytes, needle) in cases_hello {
        let (mut p, l) = first_reply(addr, bytes);
        expect_chat_error("bad hello", &l, needle);
        assert_eq!(drain(&mut p), "", "closed after a bad hello");
        case(&mut by);
    }
    // 17. A hello over the line limit is an oversized line.
    let mut long_hello = b"{\"type\":\"hello\",\"v\":1,\"name\":\"".to_vec();
    long_hello.extend(vec![b'n'; 2 * MAX]);
    long_hello.extend_from_slice(b"\"}\n");
    let (_p, l) = first_reply(addr, &long_hello);
    expect_error_line("huge hello", &l, "longer than the limit");
    case(&mut by);

    // --- In a chat session ---
    let mut m = Chat::join(addr, "mallory");
    let _ = by.alice.recv_until(|m| matches!(m, ServerMsg::Join { .. }));
    let _ = by.bob.recv_until(|m| matches!(m, ServerMsg::Join { .. }));
    // Mallory also gets the bystanders' relays: skip those.
    fn next_error(m: &mut Chat) -> String {
        let e = m.recv_until(|x| {
            !matches!(
                x,
                ServerMsg::Chat { .. } | ServerMsg::Join { .. } | ServerMsg::Leave { .. }
            )
        });
        protocol::encode(&e)
    }
    let chat_bad = |m: &mut Chat, bytes: &[u8], needle: &str| {
        m.plain.send(bytes);
        let l = next_error(m);
        expect_chat_error("chat session", l.trim_end(), needle);
    };
    // 18-25. JSON that is not a chat message, wrong types, raw bytes, depth.
    let deep = format!(
        "{{\"type\":\"msg\",\"id\":1,\"text\":\"x\",\"extra\":{}{}}}\n",
        "[".repeat(400),
        "]".repeat(400)
    );
    let deep_wrapped = format!("{}{}\n", "[".repeat(MAX / 2 - 1), "]".repeat(MAX / 2 - 1));
    for (bytes, needle) in [
        (
            &b"{\"type\":\"bogus\"}\n"[..],
            "not a valid chatmon message",
        ),
        (
            b"{\"type\":\"msg\",\"id\":\"one\",\"text\":\"x\"}\n",
            "not a valid",
        ),
        (b"[1,2,3]\n", "not a valid"),
        (b"null\n", "not a valid"),
        (
            b"{\"type\":\"msg\",\"id\":1,\"text\":\"\xff\"}\n",
            "not valid UTF-8",
        ),
        (
            b"{\"type\":\"msg\",\"id\":2,\"text\":\"a\\u0000b\"}\n",
            "NUL byte",
        ),
        (deep.as_bytes(), "not a valid"),
        (deep_wrapped.as_bytes(), "not a valid"),
    ] {
        chat_bad(&mut m, bytes, needle);
        case(&mut by);
    }
    // 26. A second hello.
    m.send(&ClientMsg::Hello {
        v: PROTOCOL_VERSION,
        name: "again".into(),
        token: None,
        subscribe: false,
    });
    let l = next_error(&mut m);
    expect_chat_error("second hello", l.trim_end(), "already said hello");
    case(&mut by);
    // 27. A nick to an invalid name.
    m.send(&ClientMsg::Nick {
        name: "\u{1b}[2J".into(),
    });
    let l = next_error(&mut m);
    expect_chat_error("bad nick", l.trim_end(), "invalid name");
    case(&mut by);
    // Mallory's session survived all of it.
    m.say(99, "and yet");
    assert_eq!(
        unstamped(m.recv_until(|x| matches!(x, ServerMsg::Reply { .. }))),
        ServerMsg::reply(99, "Server received: and yet")
    );
    assert_eq!(cases, BAD_INPUT_CASES + 1, "update BAD_INPUT_CASES");

    // Every refusal was logged as an Error, and the log is whole.
    let lines = ts.log_lines();
    assert_log_parses(&lines);
    let errors = lines.iter().filter(|l| l.starts_with("Error: ")).count();
    // All but the ANSI case (accepted, escaped) are refusals.
    assert!(errors >= BAD_INPUT_CASES - 1, "{errors} errors logged");
    assert!(!lines.join("\n").contains('\u{1b}'));
}

#[test]
fn vanished_peers_are_noticed_and_freed() {
    let ts = TestServer::with(|c| c.idle_timeout = Some(Duration::from_millis(300)));
    let server = ts.server();
    // Reset in the middle of a message (plain and chat).
    let s = connect(ts.addr);
    (&s).write_all(b"half a mess").expect("write");
    set_linger_zero(&s);
    drop(s);
    let mut c = Chat::join(ts.addr, "resetter");
    c.plain
        .w
        .write_all(b"{\"type\":\"msg\",\"id\":1,\"te")
        .expect("write");
    set_linger_zero(&c.plain.w);
    drop(c);
    // Half-close: the last, unterminated message is still answered.
    let mut s = connect(ts.addr);
    s.write_all(b"last words").expect("write");
    s.shutdown(Shutdown::Write).expect("half close");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read to end");
    assert_eq!(out, "Server received: last words\n");
    // Connect and say nothing: closed by the idle timeout, with a reason.
    // (The read's own timeout bounds the wait for it.)
    let mut silent = Plain::new(ts.addr);
    assert_eq!(silent.line(), "Error: idle for 300ms, closing");
    assert_eq!(drain(&mut silent), "");
    // A silent chat client too.
    let mut quiet = Chat::join(ts.addr, "quiet");
    let m = quiet.recv_until(|m| matches!(m, ServerMsg::Error { .. }));
    assert!(matches!(m, ServerMsg::Error { message } if message.contains("idle")));
    // All freed.
    wait_until("for every session to end", || server.active_clients() == 0);
    let lines = ts.log_lines();
    assert_log_parses(&lines);
    let disc: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("Disconnection: "))
        .collect();
    assert_eq!(disc.len(), 5, "{disc:#?}");
    assert!(disc.iter().any(|l| l.contains("resetter@")));
    assert_eq!(
        disc.iter()
            .filter(|l| l.contains("(idle for 300ms)"))
            .count(),
        2
    );
    let connections = lines
        .iter()
        .filter(|l| l.starts_with("Connection: "))
        .count();
    assert_eq!(connections, 5);
}

/// Nearest-rank percentile.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
fn slow_consumer_is_evicted_and_others_keep_their_latency() {
    let ts = TestServer::with(|c| {
        c.outbox_len = 8;
        c.max_line = 256 * 1024;
    });
    // A member that never reads; a tiny receive buffer fills fast.
    let slow = TcpStream::connect(ts.addr).expect("connect");
    // SAFETY: setsockopt reads one c_int from a valid pointer.
    unsafe {
        let v: libc::c_int = 4096;
        libc::setsockopt(
            slow.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    (&slow).write_all(&hello_line("sloth")).expect("hello");
    let mut talker = Chat::join(ts.addr, "talker");
    let mut watcher = Chat::join(ts.addr, "watcher");
    let _ = talker.recv_until(|m| matches!(m, ServerMsg::Join { name, .. } if name == "watcher"));
    // The talker sends big messages (that stuff the sloth's outbox) and
    // measures each round trip; the watcher must get every one of them.
    let big = "b".repeat(64 * 1024);
    // The kernel buffers about 4.5 MB for the sloth before its outbox fills
    // (eviction came at message 69 of 64 KiB here): 100 leave a margin.
    let n = 100;
    let mut rtts = Vec::with_capacity(n);
    let watch = std::thread::spawn(move || {
        let mut got = 0;
        // Every relay, and at most the joins and leaves besides.
        for _ in 0..10 * n {
            if got == n {
                break;
            }
            match watcher.recv() {
                ServerMsg::Chat { from, .. } if from == "talker" => got += 1,
                ServerMsg::Error { message } => panic!("watcher got an error: {message}"),
                _ => {}
            }
        }
        got
    });
    for id in 0..n as u64 {
        let t0 = Instant::now();
        talker.say(id, &big);
        let reply = talker.recv_until(|m| {
            matches!(m, ServerMsg::Reply { id: got, .. } if *got == id)
                || matches!(m, ServerMsg::Error { .. })
        });
        assert!(
            matches!(reply, ServerMsg::Reply { .. }),
            "talker got an error: {reply:?}"
        );
        rtts.push(t0.elapsed());
    }
    assert_eq!(watch.join().expect("watcher"), n);
    // Should a kernel buffer more than here, stuff on (unmeasured) until the
    // sloth's outbox overflows.
    let evicted = || {
        ts.server()
            .counters()
            .slow_disconnects
            .load(Ordering::Relaxed)
            > 0
    };
    for id in n as u64..n as u64 + 300 {
        if evicted() {
            break;
        }
        talker.say(id, &big);
        let _ = talker.recv_until(|m| matches!(m, ServerMsg::Reply { .. }));
    }
    rtts.sort();
    let p99 = percentile(&rtts, 0.99);
    assert!(
        p99 < STALLED,
        "p99 {p99:?} while a slow consumer was stuffed"
    );
    // The sloth was thrown out for being slow, and it is logged why.
    let l = ts.wait_log("for the eviction", |l| {
        l.starts_with("Disconnection: ") && l.contains("sloth@") && l.contains("too slow")
    });
    assert!(l.contains("8 lines waiting"), "{l}");
    assert!(
        ts.server()
            .counters()
            .slow_disconnects
            .load(Ordering::Relaxed)
            >= 1
    );
    drop(slow);
}

/// A log sink whose disk fails while `fail` is set.
struct FlakyDisk {
    fail: Arc<AtomicBool>,
    out: MemorySink,
}

impl LogSink for FlakyDisk {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.out.append(bytes)
    }
}

#[test]
fn failing_log_disk_does_not_stop_the_server_and_nothing_is_lost() {
    let fail = Arc::new(AtomicBool::new(false));
    let out = MemorySink::default();
    let log = EventLog::with_sink(FlakyDisk {
        fail: fail.clone(),
        out: out.clone(),
    })
    .expect("log");
    let server = Server::start(
        ServerConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            stats_interval: None,
            ..ServerConfig::default()
        },
        log.clone(),
    )
    .expect("start");
    let addr = server.local_addr();
    let mut a = Chat::join(addr, "alice");
    a.say(1, "before");
    let _ = a.recv_until(|m| matches!(m, ServerMsg::Reply { .. }));
    log.flush();
    // The disk fills: the server keeps serving.
    fail.store(true, Ordering::SeqCst);
    for id in 2..52 {
        a.say(id, &format!("during {id}"));
        let m = a.recv_until(|m| matches!(m, ServerMsg::Reply { .. }));
        assert!(matches!(m, ServerMsg::Reply { id: got, .. } if got == id));
    }
    let mut p = Plain::new(addr);
    p.send(b"plain too\n");
    assert_eq!(p.line(), "Server received: plain too");
    log.flush();
    let held = out.0.lock().expect("lock").len();
    // It can write again: everything held is written, then an Error event.
    fail.store(false, Ordering::SeqCst);
    wait_until("for the held lines", || {
        out.0.lock().expect("lock").len() > held
    });
    a.say(100, "after");
    let _ = a.recv_until(|m| matches!(m, ServerMsg::Reply { .. }));
    server.shutdown(Duration::from_secs(2));
    log.flush();
    let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_log_parses(&lines);
    for id in (1..52).chain([100]) {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("Message Sent: ") && l.contains(&format!(" #{id}: "))),
            "reply #{id} missing from the log"
        );
    }
    let err = lines
        .iter()
        .position(|l| l.starts_with("Error: ") && l.contains("log writing failed"))
        .expect("an Error event about the disk");
    assert!(
        lines[err].contains("No space left on device"),
        "{}",
        lines[err]
    );
    let during = lines
        .iter()
        .position(|l| l.contains("#51: "))
        .expect("held line");
    assert!(during < err, "held lines come first, then the Error event");
    assert!(lines.last().is_some_and(|l| l.starts_with("Server Stop: ")));
}

/// Waits (bounded) for the client's next event.
fn next_event(
    rt: &tokio::runtime::Runtime,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<ClientEvent>,
) -> ClientEvent {
    rt.block_on(async {
        // Longer than the client's longest reconnect backoff (5 s after
        // refusals), so a wait across a restart never races the next retry.
        tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .expect("a client event in time")
            .expect("client task alive")
    })
}

/// Every message id's fate as the client reported it.
#[derive(Default)]
struct Fates {
    replied: BTreeSet<u64>,
    undelivered: BTreeSet<u64>,
    queued: BTreeSet<u64>,
    disconnects: Vec<(String, Duration)>,
    connects: usize,
}

impl Fates {
    fn see(&mut self, ev: &ClientEvent) {
        match ev {
            ClientEvent::Reply { id, .. } => {
                self.replied.insert(*id);
            }
            ClientEvent::Undelivered { id, .. } => {
                self.undelivered.insert(*id);
            }
            ClientEvent::Queued { id } => {
                self.queued.insert(*id);
            }
            ClientEvent::Disconnected {
                reason, retry_in, ..
            } => {
                self.disconnects.push((reason.clone(), *retry_in));
            }
            ClientEvent::Connected { .. } => self.connects += 1,
            _ => {}
        }
    }

    /// Takes events until one matches, bounded.
    fn until(
        &mut self,
        rt: &tokio::runtime::Runtime,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<ClientEvent>,
        pred: impl Fn(&ClientEvent, &Fates) -> bool,
    ) {
        for _ in 0..10_000 {
            let ev = next_event(rt, rx);
            self.see(&ev);
            if pred(&ev, self) {
                return;
            }
        }
        panic!("no such client event");
    }
}

#[test]
fn client_reconnects_after_a_restart_and_never_loses_a_message_silently() {
    let mut ts = TestServer::start();
    let addr = ts.addr;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (handle, mut rx) = {
        let _enter = rt.enter();
        client::spawn(
            ClientConfig::new(addr.to_string(), "roamer"),
            EventLog::null(),
        )
    };
    let mut f = Fates::default();
    let mut sent = BTreeSet::new();
    f.until(&rt, &mut rx, |e, _| {
        matches!(e, ClientEvent::Connected { .. })
    });
    let first = handle.send("first".into());
    sent.insert(first);
    f.until(&rt, &mut rx, |_, f| f.replied.contains(&first));
    // One more in flight while the server stops: replied or marked.
    sent.insert(handle.send("in flight".into()));
    ts.stop();
    f.until(&rt, &mut rx, |e, _| {
        matches!(e, ClientEvent::Disconnected { .. })
    });
    // Typed while the server is down: queued, said so.
    let mut typed = BTreeSet::new();
    for i in 0..3 {
        typed.insert(handle.send(format!("typed while down {i}")));
    }
    sent.extend(&typed);
    f.until(&rt, &mut rx, |_, f| typed.is_subset(&f.queued));
    // Let a retry or two fail, then restart on the same port.
    f.until(
        &rt,
        &mut rx,
        |e, _| matches!(e, ClientEvent::Connecting { attempt } if *attempt >= 3),
    );
    let log = EventLog::open(&ts.log_path).expect("log");
    let server = Server::start(
        ServerConfig {
            bind: addr,
            stats_interval: None,
            ..ServerConfig::default()
        },
        log.clone(),
    )
    .expect("restart on the same port");
    f.until(&rt, &mut rx, |_, f| f.connects == 2);
    f.until(&rt, &mut rx, |_, f| typed.is_subset(&f.replied));
    // Down again, more typed, then quit before the server is back: these
    // are marked as not delivered.
    server.shutdown(Duration::from_secs(2));
    f.until(&rt, &mut rx, |_, f| f.disconnects.len() >= 2);
    let mut lost = BTreeSet::new();
    for i in 0..2 {
        lost.insert(handle.send(format!("never delivered {i}")));
    }
    sent.extend(&lost);
    f.until(&rt, &mut rx, |_, f| lost.is_subset(&f.queued));
    handle.command(client::Command::Quit);
    f.until(&rt, &mut rx, |e, _| matches!(e, ClientEvent::Closed));

    // Every message has a known fate, and replied ones are in the log.
    let known: BTreeSet<u64> = f.replied.union(&f.undelivered).copied().collect();
    assert_eq!(known, sent, "a message was silently lost");
    assert!(lost.is_subset(&f.undelivered));
    assert!(
        f.disconnects
            .iter()
            .all(|(r, d)| !r.is_empty() && !d.is_zero())
    );
    log.flush();
    let lines = ts.log_lines();
    assert_log_parses(&lines);
    for id in &f.replied {
        assert!(
            lines.iter().any(|l| l.starts_with("Message Sent: ")
                && l.contains("roamer@127.0.0.1")
                && l.contains(&format!(" #{id}: "))),
            "reply #{id} not in the log"
        );
    }
}

#[test]
fn a_talking_client_is_kept_and_closed_once_it_falls_silent() {
    // The idle timeout is enforced by the server's sweep, not by a timer on
    // each read: a client that keeps talking past several timeouts stays,
    // and the same client falling silent is told why and closed, about one
    // timeout after its last line.
    const IDLE: Duration = Duration::from_millis(300);
    let ts = TestServer::with(|c| c.idle_timeout = Some(IDLE));
    let mut talker = Plain::new(ts.addr);
    let start = Instant::now();
    for i in 0..12 {
        talker.send(format!("still here {i}\n").as_bytes());
        assert_eq!(talker.line(), format!("Server received: still here {i}"));
        std::thread::sleep(IDLE / 3);
    }
    assert!(
        start.elapsed() > IDLE * 3,
        "the talk did not outlast the timeout"
    );
    let quiet_from = Instant::now();
    assert_eq!(talker.line(), "Error: idle for 300ms, closing");
    let quiet = quiet_from.elapsed();
    // Not before the timeout (less the last sleep, which was silence too),
    // and well within the read's own bound.
    assert!(
        quiet + IDLE / 3 >= IDLE,
        "closed after only {quiet:?} of silence"
    );
    assert_eq!(drain(&mut talker), "");
    let server = ts.server();
    wait_until("for the session to end", || server.active_clients() == 0);
    wait_until("for the disconnection in the log", || {
        ts.log_lines()
            .iter()
            .any(|l| l.starts_with("Disconnection: ") && l.contains("(idle for 300ms)"))
    });
}
