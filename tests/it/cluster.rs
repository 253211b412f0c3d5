//! `chatmon serve --cluster`: two or three real server processes joined
//! through a private nats-server. Relay and order without echo, presence
//! across three nodes, a name race, a node killed and restarted, NATS
//! stopped and frozen mid-run, and the metrics with the cluster's figures.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use chatmon::protocol::{self, ServerMsg};

use crate::util::nats::Nats;
use crate::util::process::{self, Serve, ServeCmd};
use crate::util::{Chat, STALLED, WAIT, file_lines, wait_until};

/// One node: a `chatmon serve --cluster` process and its log.
struct Node {
    serve: Serve,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn node(nats: &Nats, name: &str, extra: &[&str]) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log.txt");
    let url = nats.url();
    let mut args = vec!["--cluster", url.as_str(), "--node", name];
    args.extend_from_slice(extra);
    let serve = ServeCmd::new(&log).args(args).start();
    Node {
        serve,
        log,
        _dir: dir,
    }
}

impl Node {
    fn addr(&self) -> SocketAddr {
        self.serve.addr
    }

    fn log_lines(&self) -> Vec<String> {
        file_lines(&self.log)
    }

    /// Waits until this node's log says it heard from every one of `others`.
    fn knows(&self, others: &[&str]) {
        for o in others {
            let want = format!("cluster: node {o} joined");
            wait_until(&format!("node {o} heard of"), || {
                self.log_lines().iter().any(|l| l.contains(&want))
            });
        }
    }
}

/// Reads messages until `pred` matches one, within `limit`.
fn recv_within(c: &mut Chat, limit: Duration, pred: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
    let until = Instant::now() + limit;
    // The socket's read timeout is the harness's WAIT; a longer wait (a lost
    // node) needs a longer one for this call.
    c.plain.w.set_read_timeout(Some(limit.max(WAIT))).ok();
    let found = loop {
        assert!(
            Instant::now() < until,
            "no matching message within {limit:?}"
        );
        let m = c.recv();
        if pred(&m) {
            break m;
        }
    };
    c.plain.w.set_read_timeout(Some(WAIT)).ok();
    found
}

#[test]
fn relay_in_order_without_echo_and_presence_across_three_nodes() {
    let Some(nats) = Nats::start() else { return };
    let a = node(&nats, "a", &[]);
    let b = node(&nats, "b", &[]);
    let c = node(&nats, "c", &[]);
    a.knows(&["b", "c"]);
    b.knows(&["a", "c"]);
    c.knows(&["a", "b"]);
    let mut bob = Chat::join(b.addr(), "bob");
    let mut alice = Chat::join(a.addr(), "alice");
    // bob hears alice join on another node, with the whole room's size.
    assert_eq!(
        recv_within(&mut bob, WAIT, |m| matches!(m, ServerMsg::Join { .. })),
        ServerMsg::Join {
            name: "alice".into(),
            users: 2
        }
    );
    let mut carol = Chat::join(c.addr(), "carol");
    // Presence travels on its own: bob hearing of alice on b says nothing
    // of c. carol learns the room from her welcome, and anyone c had not
    // heard of yet by then from a join right after it.
    let mut users = carol.users.clone();
    while users.len() < 3 {
        match recv_within(&mut carol, WAIT, |m| matches!(m, ServerMsg::Join { .. })) {
            ServerMsg::Join { name, .. } => users.push(name),
            _ => unreachable!(),
        }
    }
    users.sort();
    assert_eq!(
        users,
        vec!["alice", "bob", "carol"],
        "carol learns the whole cluster's room"
    );
    recv_within(
        &mut alice,
        WAIT,
        |m| matches!(m, ServerMsg::Join { name, .. } if name == "carol"),
    );
    let n = 50;
    for i in 1..=n {
        alice.say(i, &format!("m{i}"));
    }
    for listener in [&mut bob, &mut carol] {
        for i in 1..=n {
            match recv_within(listener, WAIT, |m| matches!(m, ServerMsg::Chat { .. })) {
                ServerMsg::Chat { from, text, .. } => {
                    assert_eq!(
                        (from.as_str(), text),
                        ("alice", format!("m{i}")),
                        "in order, once"
                    );
                }
                _ => unreachable!(),
            }
        }
    }
    // alice gets her replies and nothing of her own back (no echo): after
    // the last reply, carol's greeting is the next chat she sees.
    recv_within(
        &mut alice,
        WAIT,
        |m| matches!(m, ServerMsg::Reply { id, .. } if *id == n),
    );
    carol.say(1, "hello from c");
    match recv_within(&mut alice, WAIT, |m| matches!(m, ServerMsg::Chat { .. })) {
        ServerMsg::Chat { from, text, .. } => {
            assert_eq!((from.as_str(), text.as_str()), ("carol", "hello from c"))
        }
        _ => unreachable!(),
    }
    // b logs each message from another node once, saying which node.
    wait_until("b's log of alice's messages", || {
        b.log_lines()
            .iter()
            .filter(|l| {
                l.contains("Message Received") && l.contains("server <- alice on node a: m")
            })
            .count()
            == n as usize
    });
    // A clean stop says goodbye: carol leaves a and b at once.
    let mut c = c;
    let t = Instant::now();
    c.serve.sigterm();
    let left = recv_within(
        &mut bob,
        WAIT,
        |m| matches!(m, ServerMsg::Leave { name, .. } if name == "carol"),
    );
    assert!(matches!(left, ServerMsg::Leave { reason, .. } if reason == "node c left"));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "goodbye took {:?}",
        t.elapsed()
    );
}

#[test]
fn twenty_simultaneous_hellos_over_two_nodes_end_with_distinct_names() {
    let Some(nats) = Nats::start() else { return };
    let a = node(&nats, "a", &[]);
    let b = node(&nats, "b", &[]);
    a.knows(&["b"]);
    b.knows(&["a"]);
    let addrs = [a.addr(), b.addr()];
    let start = std::sync::Arc::new(std::sync::Barrier::new(20));
    let joins: Vec<_> = (0..20)
        .map(|i| {
            let addr = addrs[i % 2];
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                Chat::join(addr, "alice")
            })
        })
        .collect();
    let mut clients: Vec<Chat> = joins.into_iter().map(|j| j.join().expect("join")).collect();
    // Within a second a clash is settled; then each client learns its final
    // name from the nicks it got, up to the reply to a probe.
    thread::sleep(Duration::from_millis(1500));
    for (i, c) in clients.iter_mut().enumerate() {
        c.say(1000 + i as u64, "probe");
        loop {
            match c.recv() {
                ServerMsg::Nick { old, new } if old == c.name => c.name = new,
                ServerMsg::Reply { id, .. } if id == 1000 + i as u64 => break,
                _ => {}
            }
        }
    }
    let keys: HashSet<String> = clients
        .iter()
        .map(|c| protocol::name_key(&c.name))
        .collect();
    let names: Vec<&str> = clients.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(keys.len(), 20, "names not distinct: {names:?}");
    // A newcomer sees the same twenty distinct names.
    let probe = Chat::join(a.addr(), "zed");
    let seen: HashSet<String> = probe.users.iter().map(|n| protocol::name_key(n)).collect();
    assert_eq!(seen.len(), 21, "{:?}", probe.users);
}

#[test]
fn a_killed_node_is_lost_within_ten_seconds_and_restarts_with_its_id() {
    let Some(nats) = Nats::start() else { return };
    let a = node(&nats, "a", &[]);
    let mut b = node(&nats, "b", &[]);
    a.knows(&["b"]);
    let _bob = Chat::join(b.addr(), "bob");
    let mut alice = Chat::join(a.addr(), "alice");
    wait_until("bob in a's room", || {
        Chat::join(a.addr(), "probe")
            .users
            .iter()
            .any(|u| u == "bob")
    });
    let t = Instant::now();
    b.serve.child.signal(libc::SIGKILL);
    let _ = b.serve.child.wait(WAIT);
    let left = recv_within(
        &mut alice,
        Duration::from_secs(12),
        |m| matches!(m, ServerMsg::Leave { name, .. } if name == "bob"),
    );
    let took = t.elapsed();
    assert!(
        matches!(&left, ServerMsg::Leave { reason, .. } if reason == "node b lost"),
        "{left:?}"
    );
    assert!(took <= Duration::from_secs(10), "noticed after {took:?}");
    wait_until("a logs the loss", || {
        a.log_lines()
            .iter()
            .any(|l| l.contains("Cluster") && l.contains("cluster: node b lost"))
    });
    // The same id again: no "taken" warning, and its new users show up.
    let b2 = node(&nats, "b", &[]);
    assert!(
        !b2.serve.stderr().contains("is taken"),
        "{}",
        b2.serve.stderr()
    );
    let _bea = Chat::join(b2.addr(), "bea");
    recv_within(
        &mut alice,
        WAIT,
        |m| matches!(m, ServerMsg::Join { name, .. } if name == "bea"),
    );
    let probe = Chat::join(a.addr(), "probe2");
    assert!(probe.users.iter().any(|u| u == "bea"), "{:?}", probe.users);
    assert!(!probe.users.iter().any(|u| u == "bob"), "{:?}", probe.users);
}

#[test]
fn nats_stopped_mid_run_keeps_the_local_room_and_says_so() {
    let Some(mut nats) = Nats::start() else {
        return;
    };
    let a = node(&nats, "a", &[]);
    let b = node(&nats, "b", &[]);
    a.knows(&["b"]);
    b.knows(&["a"]);
    let mut alice = Chat::join(a.addr(), "alice");
    let mut bob = Chat::join(b.addr(), "bob");
    let mut bea = Chat::join(b.addr(), "bea");
    recv_within(
        &mut alice,
        WAIT,
        |m| matches!(m, ServerMsg::Join { name, .. } if name == "bea"),
    );
    nats.stop();
    // Every client of b hears that the link is down.
    for c in [&mut bob, &mut bea] {
        recv_within(
            c,
            WAIT,
            |m| matches!(m, ServerMsg::Cluster { up: false, node } if node == "b"),
        );
    }
    // The local room goes on: replies at once, relay to bea.
    for i in 1..=5 {
        let t = Instant::now();
        bob.say(i, &format!("while down {i}"));
        recv_within(
            &mut bob,
            WAIT,
            |m| matches!(m, ServerMsg::Reply { id, .. } if *id == i),
        );
        assert!(t.elapsed() < STALLED, "reply took {:?}", t.elapsed());
        recv_within(
            &mut bea,
            WAIT,
            |m| matches!(m, ServerMsg::Chat { text, .. } if *text == format!("while down {i}")),
        );
    }
    nats.resume();
    recv_within(&mut bob, Duration::from_secs(15), |m| {
        matches!(m, ServerMsg::Cluster { up: true, .. })
    });
    recv_within(&mut alice, Duration::from_secs(15), |m| {
        matches!(m, ServerMsg::Cluster { up: true, .. })
    });
    // Relay resumes: a few tries, since each side resubscribes on its own.
    for id in 101..=105 {
        bob.say(id, "after");
        recv_within(
            &mut bob,
            WAIT,
            |m| matches!(m, ServerMsg::Reply { id: r, .. } if *r == id),
        );
        thread::sleep(Duration::from_millis(300));
    }
    recv_within(
        &mut alice,
        WAIT,
        |m| matches!(m, ServerMsg::Chat { text, .. } if text == "after"),
    );
    // What could not cross was counted and logged at the sender.
    wait_until("b logs the drops", || {
        b.log_lines()
            .iter()
            .any(|l| l.contains("Error") && l.contains("could not cross the link"))
    });
    let lines = b.log_lines();
    assert!(lines.iter().any(|l| l.contains("cluster: link down")));
    assert!(lines.iter().any(|l| l.contains("cluster: link up")));
}

#[test]
fn a_frozen_nats_never_slows_a_local_client() {
    let Some(nats) = Nats::start() else { return };
    let a = node(&nats, "a", &[]);
    let b = node(&nats, "b", &[]);
    b.knows(&["a"]);
    let mut bob = Chat::join(b.addr(), "bob");
    let _alice = Chat::join(a.addr(), "alice");
    // Frozen, not gone: its sockets stay open and stop taking bytes, so
    // the bridge's writes block and its queue fills.
    nats.signal(libc::SIGSTOP);
    let text = "x".repeat(2000);
    let mut worst = Duration::ZERO;
    for i in 1..=3000u64 {
        let t = Instant::now();
        bob.say(i, &text);
        recv_within(
            &mut bob,
            WAIT,
            |m| matches!(m, ServerMsg::Reply { id, .. } if *id == i),
        );
        worst = worst.max(t.elapsed());
    }
    nats.signal(libc::SIGCONT);
    assert!(
        worst < STALLED,
        "a local round trip took {worst:?} while NATS was frozen"
    );
}

/// `GET /metrics` on `addr`, the body.
fn metrics_body(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("metrics connect");
    s.set_read_timeout(Some(WAIT)).ok();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[test]
fn metrics_carry_the_cluster_and_promtool_accepts_them() {
    let Some(nats) = Nats::start() else { return };
    let port = crate::util::nats::free_port();
    let maddr = format!("127.0.0.1:{port}");
    let a = node(&nats, "a", &["--metrics", &maddr]);
    let b = node(&nats, "b", &[]);
    a.knows(&["b"]);
    let mut alice = Chat::join(a.addr(), "alice");
    let mut bob = Chat::join(b.addr(), "bob");
    bob.say(1, "to a");
    recv_within(&mut alice, WAIT, |m| matches!(m, ServerMsg::Chat { .. }));
    let addr: SocketAddr = maddr.parse().expect("addr");
    let mut body = String::new();
    wait_until("the relay delay counted", || {
        body = metrics_body(addr);
        body.lines()
            .any(|l| l.starts_with("chatmon_cluster_relay_delay_seconds_count 1"))
    });
    for want in [
        "chatmon_cluster_link_up 1",
        "chatmon_cluster_nodes 1",
        "chatmon_cluster_remote_users 1",
        "chatmon_cluster_published_total",
        "chatmon_cluster_received_total",
        "chatmon_cluster_dropped_total 0",
        "chatmon_cluster_missed_total 0",
    ] {
        assert!(body.contains(want), "{want} missing:\n{body}");
    }
    if !process::installed("promtool") {
        eprintln!("SKIPPED promtool check of the cluster metrics: `promtool` is not installed");
        return;
    }
    let mut promtool = std::process::Command::new("promtool");
    promtool.args(["check", "metrics"]);
    let out = process::run_with(promtool, body.as_bytes(), WAIT * 2);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{body}"
    );
}

#[test]
fn unreachable_nats_at_start_leaves_a_working_single_node() {
    let port = crate::util::nats::free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log.txt");
    let url = format!("nats://127.0.0.1:{port}");
    let serve = ServeCmd::new(&log)
        .args(["--cluster", url.as_str(), "--node", "solo"])
        .start();
    assert!(
        serve.stderr().contains("NATS unreachable") || {
            serve.wait_stderr("the unreachable note", |l| l.contains("NATS unreachable"));
            true
        }
    );
    let mut alice = Chat::join(serve.addr, "alice");
    recv_within(
        &mut alice,
        WAIT,
        |m| matches!(m, ServerMsg::Cluster { up: false, node } if node == "solo"),
    );
    alice.say(1, "alone");
    recv_within(&mut alice, WAIT, |m| {
        matches!(m, ServerMsg::Reply { id: 1, .. })
    });
    // The writer batches lines for a few milliseconds: wait for it.
    crate::util::wait_until("for the unreachable note in the log", || {
        file_lines(&log)
            .iter()
            .any(|l| l.contains("Cluster") && l.contains("NATS unreachable"))
    });
}

#[test]
fn bench_over_two_nodes_reports_same_and_cross_node_relays() {
    let Some(nats) = Nats::start() else { return };
    let a = node(&nats, "a", &[]);
    let b = node(&nats, "b", &[]);
    a.knows(&["b"]);
    b.knows(&["a"]);
    let (sa, sb) = (a.addr().to_string(), b.addr().to_string());
    let out = process::chatmon([
        "bench",
        "--mode",
        "chat",
        "--server",
        &sa,
        "--server",
        &sb,
        "--clients",
        "4",
        "--messages",
        "50",
        "--warmup",
        "0s",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |pair: &str| -> u64 {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(pair))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {pair} row in:\n{text}"))
    };
    // Four clients, two a node: each message reaches one client on its own
    // node and two on the other (a relay still on its way when the bench
    // ends is not counted, so at most that many).
    let (same, cross) = (row("same-node"), row("cross-node"));
    assert!((1..=4 * 50).contains(&same), "{text}");
    assert!((1..=4 * 50 * 2).contains(&cross), "{text}");
}
