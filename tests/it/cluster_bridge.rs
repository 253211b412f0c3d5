//! The cluster bridge against a real private nats-server: relay and order
//! without echo, presence across three nodes, a node lost, a name clash, and
//! NATS stopped and restarted with every loss counted.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::nats::Nats;
use chatmon::cluster::{Bridge, ClusterConfig, ClusterEvent, LinkState, RoomEvent, wire};

/// Every wait in these tests gives up after this long.
const WAIT: Duration = Duration::from_secs(10);

/// A bridge and everything it told its hub, collected by a thread.
struct Node {
    bridge: Option<Bridge>,
    events: Arc<Mutex<Vec<ClusterEvent>>>,
    drain: Option<thread::JoinHandle<()>>,
}

impl Node {
    fn start(nats: &Nats, node: &str, tweak: impl FnOnce(&mut ClusterConfig)) -> Node {
        let mut cfg = ClusterConfig::new(vec![nats.url()], "lobby", node);
        cfg.heartbeat = Duration::from_millis(200);
        cfg.connect_wait = Duration::from_secs(5);
        tweak(&mut cfg);
        let (bridge, started) = Bridge::start(cfg).expect("bridge starts");
        assert!(started.connected, "{node} connected at start");
        let mut rx = bridge.take_events().expect("events");
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        let drain = thread::spawn(move || {
            while let Some(e) = rx.recv() {
                ev.lock().unwrap().push(e);
            }
        });
        Node {
            bridge: Some(bridge),
            events,
            drain: Some(drain),
        }
    }

    fn b(&self) -> &Bridge {
        self.bridge.as_ref().expect("bridge running")
    }

    fn events(&self) -> Vec<ClusterEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the events so far.
    fn wait_for(&self, what: &str, pred: impl Fn(&[ClusterEvent]) -> bool) {
        let until = Instant::now() + WAIT;
        while !pred(&self.events.lock().unwrap()) {
            assert!(
                Instant::now() < until,
                "timed out waiting for {what}: {:?}",
                self.events()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(&mut self) {
        if let Some(b) = self.bridge.take() {
            b.shutdown();
        }
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn knows(node: &str) -> impl Fn(&[ClusterEvent]) -> bool + '_ {
    move |evs| {
        evs.iter()
            .any(|e| matches!(e, ClusterEvent::NodeJoined { node: n } if n == node))
    }
}

fn joined<'a>(node: &'a str, name: &'a str) -> impl Fn(&[ClusterEvent]) -> bool + 'a {
    move |evs| {
        evs.iter().any(
            |e| matches!(e, ClusterEvent::Joined { node: n, name: m } if n == node && m == name),
        )
    }
}

fn chats(evs: &[ClusterEvent]) -> Vec<(String, String, u64)> {
    evs.iter()
        .filter_map(|e| match e {
            ClusterEvent::Chat {
                node, from, order, ..
            } => Some((node.clone(), from.clone(), *order)),
            _ => None,
        })
        .collect()
}

/// Waits until the counters of `sender` and `receiver` balance, and
/// returns the last ones.
fn settle(
    sender: &Node,
    receiver: &Node,
) -> (
    chatmon::cluster::ClusterStats,
    chatmon::cluster::ClusterStats,
) {
    let until = Instant::now() + WAIT;
    loop {
        let (s, r) = (sender.b().stats(), receiver.b().stats());
        if r.received + s.dropped + r.missed == s.offered || Instant::now() >= until {
            return (s, r);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_bridges_relay_in_order_without_echo() {
    let Some(nats) = Nats::start() else { return };
    let a = Node::start(&nats, "a", |_| {});
    let b = Node::start(&nats, "b", |_| {});
    a.wait_for("a hears b", knows("b"));
    b.wait_for("b hears a", knows("a"));
    assert_eq!(a.b().link_state(), LinkState::Up);
    a.b().publish(RoomEvent::Join {
        name: "alice".into(),
    });
    b.wait_for("alice on b", joined("a", "alice"));
    assert!(b.b().taken_remotely("Alice"));
    assert_eq!(
        b.b().remote_users(),
        vec![("alice".to_string(), "a".to_string())]
    );
    let n = 300u64;
    for order in 1..=n {
        a.b().publish(RoomEvent::Chat {
            from: "alice".into(),
            text: format!("message {order}"),
            order,
        });
    }
    b.wait_for("every chat on b", |evs| chats(evs).len() as u64 >= n);
    let got = chats(&b.events());
    let want: Vec<(String, String, u64)> =
        (1..=n).map(|o| ("a".into(), "alice".into(), o)).collect();
    assert_eq!(got, want, "each message once, in the sender's order");
    // Give any echo time to arrive, then check there was none.
    thread::sleep(Duration::from_millis(300));
    assert!(chats(&a.events()).is_empty(), "a got its own messages back");
    let (sa, sb) = settle(&a, &b);
    assert_eq!(sa.offered, n + 1);
    assert_eq!((sa.published, sa.dropped), (n + 1, 0));
    assert_eq!((sb.received, sb.missed), (n + 1, 0));
    assert!(
        b.b().relay_delay().count >= n,
        "relay delay recorded per chat"
    );
}

#[test]
fn presence_across_three_nodes_with_late_joiner_and_goodbye() {
    let Some(nats) = Nats::start() else { return };
    let a = Node::start(&nats, "a", |_| {});
    let b = Node::start(&nats, "b", |_| {});
    a.b().publish(RoomEvent::Join {
        name: "alice".into(),
    });
    b.b().publish(RoomEvent::Join { name: "bob".into() });
    a.wait_for("bob on a", joined("b", "bob"));
    // c comes later: it learns a's and b's rosters by request.
    let mut c = Node::start(&nats, "c", |_| {});
    c.b().publish(RoomEvent::Join {
        name: "carol".into(),
    });
    c.wait_for("alice on c", joined("a", "alice"));
    c.wait_for("bob on c", joined("b", "bob"));
    a.wait_for("carol on a", joined("c", "carol"));
    b.wait_for("carol on b", joined("c", "carol"));
    assert_eq!(
        c.b().remote_users(),
        vec![("alice".into(), "a".into()), ("bob".into(), "b".into())]
    );
    assert_eq!(
        a.b().remote_users(),
        vec![("bob".into(), "b".into()), ("carol".into(), "c".into())]
    );
    // A nick crosses too.
    b.b().publish(RoomEvent::Nick {
        old: "bob".into(),
        new: "robert".into(),
    });
    a.wait_for("bob renamed on a", |evs| {
        evs.iter()
            .any(|e| matches!(e, ClusterEvent::Renamed { new, .. } if new == "robert"))
    });
    // A clean stop says goodbye: carol leaves at once, not after 9 s.
    let t = Instant::now();
    c.stop();
    a.wait_for("carol left a", |evs| {
        evs.iter().any(|e| {
            matches!(e, ClusterEvent::Left { name, reason, .. } if name == "carol" && reason == "node c left")
        })
    });
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "goodbye took {:?}",
        t.elapsed()
    );
    b.wait_for("c left b", |evs| {
        evs.iter()
            .any(|e| matches!(e, ClusterEvent::NodeLeft { node } if node == "c"))
    });
    assert_eq!(b.b().nodes(), vec!["a".to_string()]);
}

#[test]
fn a_silent_node_is_lost_with_its_users() {
    let Some(nats) = Nats::start() else { return };
    let a = Node::start(&nats, "a", |c| c.lost_after = Duration::from_secs(2));
    // A node that dies without a goodbye: speak the wire format by hand,
    // then go silent.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let send = |seq: u64, body: wire::Body| {
            let env = wire::Envelope {
                v: wire::WIRE_VERSION,
                node: "ghost".into(),
                inc: 42,
                seq,
                ts_us: 0,
                body,
            };
            let client = client.clone();
            async move {
                client
                    .publish(wire::bus_subject("lobby"), env.encode().into())
                    .await
                    .unwrap();
            }
        };
        send(
            1,
            wire::Body::Join {
                claim: wire::Claim {
                    name: "casper".into(),
                    since_us: 1,
                },
            },
        )
        .await;
        client.flush().await.unwrap();
    });
    a.wait_for("casper on a", joined("ghost", "casper"));
    let t = Instant::now();
    a.wait_for("ghost lost", |evs| {
        evs.iter().any(|e| {
            matches!(e, ClusterEvent::Left { name, reason, .. } if name == "casper" && reason == "node ghost lost")
        }) && evs.iter().any(|e| matches!(e, ClusterEvent::NodeLost { node } if node == "ghost"))
    });
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "lost after {:?}",
        t.elapsed()
    );
    assert!(!a.b().taken_remotely("casper"));
}

#[test]
fn simultaneous_claims_leave_one_holder() {
    let Some(nats) = Nats::start() else { return };
    let a = Node::start(&nats, "a", |_| {});
    let b = Node::start(&nats, "b", |_| {});
    a.wait_for("a hears b", knows("b"));
    b.wait_for("b hears a", knows("a"));
    a.b().publish(RoomEvent::Join {
        name: "alice".into(),
    });
    b.b().publish(RoomEvent::Join {
        name: "alice".into(),
    });
    let renamed = |evs: &[ClusterEvent]| {
        evs.iter()
            .filter(|e| matches!(e, ClusterEvent::RenameLocal { name } if name == "alice"))
            .count()
    };
    let until = Instant::now() + Duration::from_secs(2);
    while renamed(&a.events()) + renamed(&b.events()) == 0 {
        assert!(
            Instant::now() < until,
            "no node renamed its alice within 2 s"
        );
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        renamed(&a.events()).min(1) + renamed(&b.events()).min(1),
        1,
        "exactly one node gives alice up: a {:?} b {:?}",
        a.events(),
        b.events()
    );
}

#[test]
fn nats_restart_is_survived_and_every_loss_counted() {
    let Some(mut nats) = Nats::start() else {
        return;
    };
    let a = Node::start(&nats, "a", |_| {});
    let b = Node::start(&nats, "b", |_| {});
    a.wait_for("a hears b", knows("b"));
    b.wait_for("b hears a", knows("a"));
    a.b().publish(RoomEvent::Join {
        name: "alice".into(),
    });
    b.wait_for("alice on b", joined("a", "alice"));
    let total = 3000u64;
    // Publish from this thread while NATS goes away and comes back.
    let mut stopped = false;
    let mut resumed = false;
    for order in 1..=total {
        a.b().publish(RoomEvent::Chat {
            from: "alice".into(),
            text: format!("m{order}"),
            order,
        });
        if order == total / 3 {
            nats.stop();
            stopped = true;
        }
        if order == total / 2 {
            a.wait_for("a sees the link down", |evs| {
                evs.iter()
                    .any(|e| matches!(e, ClusterEvent::Link { up: false }))
            });
            assert_eq!(a.b().link_state(), LinkState::Down);
            nats.resume();
            resumed = true;
            a.wait_for("a back up", |evs| {
                evs.iter()
                    .any(|e| matches!(e, ClusterEvent::Link { up: true }))
            });
            b.wait_for("b back up", |evs| {
                evs.iter()
                    .any(|e| matches!(e, ClusterEvent::Link { up: true }))
            });
        }
        thread::sleep(Duration::from_micros(500));
    }
    assert!(stopped && resumed);
    // Relay resumed: the last messages arrive.
    b.wait_for("the last message on b", |evs| {
        chats(evs).last().is_some_and(|c| c.2 == total)
    });
    let (sa, sb) = settle(&a, &b);
    assert_eq!(sa.offered, total + 1);
    assert_eq!(
        sb.received + sa.dropped + sb.missed,
        sa.offered,
        "received {} + dropped {} + missed {} != sent {}",
        sb.received,
        sa.dropped,
        sb.missed,
        sa.offered
    );
    eprintln!(
        "outage: sent {} received {} dropped at sender {} missed at receiver {}",
        sa.offered, sb.received, sa.dropped, sb.missed
    );
    assert!(sa.dropped + sb.missed > 0, "the outage lost nothing?");
    // Chats delivered match the count and keep the sender's order.
    let got = chats(&b.events());
    assert!(got.windows(2).all(|w| w[0].2 < w[1].2), "order kept");
    // Presence resynchronised: alice still there on b.
    assert!(b.b().taken_remotely("alice"));
    let dropped_reported: u64 = a
        .events()
        .iter()
        .filter_map(|e| match e {
            ClusterEvent::Dropped { count } => Some(*count),
            _ => None,
        })
        .sum();
    let until = Instant::now() + Duration::from_secs(2);
    let mut reported = dropped_reported;
    while reported < sa.dropped && Instant::now() < until {
        thread::sleep(Duration::from_millis(100));
        reported = a
            .events()
            .iter()
            .filter_map(|e| match e {
                ClusterEvent::Dropped { count } => Some(*count),
                _ => None,
            })
            .sum();
    }
    assert_eq!(reported, sa.dropped, "every drop reported to the hub");
}

/// The figures for the README: raw NATS against the bridge, same payload
/// size, one publisher and one subscriber on this machine. A measurement,
/// not a check: run it by hand on a release build with
/// `cargo test --release --test it cluster_bridge::measure -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_raw_nats_and_bridge_throughput() {
    use futures_util::StreamExt;
    let Some(nats) = Nats::start() else { return };
    let n = 200_000u64;
    // A chat message as the bridge sends it is ~114 bytes of JSON for a
    // short text; the raw run uses the same size.
    let payload = vec![b'x'; 114];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let raw = rt.block_on(async {
        let sub_client = async_nats::connect(nats.url()).await.unwrap();
        let pub_client = async_nats::connect(nats.url()).await.unwrap();
        let mut sub = sub_client.subscribe("raw.bench").await.unwrap();
        sub_client.flush().await.unwrap();
        let t = Instant::now();
        let reader = tokio::spawn(async move {
            let mut got = 0u64;
            let mut last = t;
            while got < n {
                match tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
                    Ok(Some(_)) => {
                        got += 1;
                        last = Instant::now();
                    }
                    _ => break,
                }
            }
            (got, last)
        });
        for _ in 0..n {
            pub_client
                .publish("raw.bench", payload.clone().into())
                .await
                .unwrap();
        }
        pub_client.flush().await.unwrap();
        // Up to the last message that arrived, not the wait for lost ones.
        let (got, last) = reader.await.unwrap();
        (got, last.duration_since(t))
    });
    let env = wire::Envelope {
        v: wire::WIRE_VERSION,
        node: "a".into(),
        inc: 123_456_789_012,
        seq: 123_456,
        ts_us: 1_764_000_000_000_000,
        body: wire::Body::Chat {
            from: "alice".into(),
            text: "hello".into(),
            order: 12_345,
        },
    };
    let bridged_size = env.encode().len();
    let a = Node::start(&nats, "a", |c| c.queue_len = 1 << 20);
    let b = Node::start(&nats, "b", |c| c.inbound_len = 1 << 20);
    a.wait_for("a hears b", knows("b"));
    let m = 100_000u64;
    let t = Instant::now();
    for order in 1..=m {
        a.b().publish(RoomEvent::Chat {
            from: "alice".into(),
            text: "hello".into(),
            order,
        });
    }
    let until = Instant::now() + Duration::from_secs(60);
    while b.b().stats().received + b.b().stats().missed < m && Instant::now() < until {
        thread::sleep(Duration::from_millis(5));
    }
    let bridged = t.elapsed();
    let (sa, sb) = settle(&a, &b);
    println!(
        "raw NATS: {} of {n} messages of 114 B in {:?}: {:.0} msg/s",
        raw.0,
        raw.1,
        raw.0 as f64 / raw.1.as_secs_f64()
    );
    println!(
        "bridge: {} received, {} dropped, {} missed of {m} chat messages ({bridged_size} B bridged) \
         in {bridged:?}: {:.0} msg/s",
        sb.received,
        sa.dropped,
        sb.missed,
        sb.received as f64 / bridged.as_secs_f64()
    );
}
