//! Chat mode: replies matched by id, relay, presence, names, between real
//! clients of a real server.

use chatmon::protocol::{self, ClientMsg, ServerMsg};

use crate::util::{Chat, Plain, TestServer, WAIT, assert_log_parses, unstamped};

#[test]
fn three_clients_reply_relay_and_presence() {
    let ts = TestServer::start();
    let mut alice = Chat::join(ts.addr, "alice");
    assert_eq!(alice.name, "alice");
    assert_eq!(alice.users, vec!["alice"]);

    let mut bob = Chat::join(ts.addr, "bob");
    assert_eq!(bob.users, vec!["alice", "bob"]);
    assert_eq!(
        alice.recv(),
        ServerMsg::Join {
            name: "bob".into(),
            users: 2
        }
    );
    let mut carol = Chat::join(ts.addr, "carol");
    assert_eq!(
        alice.recv(),
        ServerMsg::Join {
            name: "carol".into(),
            users: 3
        }
    );
    assert_eq!(
        bob.recv(),
        ServerMsg::Join {
            name: "carol".into(),
            users: 3
        }
    );

    // Two messages in flight: replies carry their ids.
    alice.say(7, "hi all");
    alice.say(8, "second");
    assert_eq!(
        unstamped(alice.recv()),
        ServerMsg::reply(7, "Server received: hi all")
    );
    assert_eq!(
        unstamped(alice.recv()),
        ServerMsg::reply(8, "Server received: second")
    );
    for peer in [&mut bob, &mut carol] {
        for want in ["hi all", "second"] {
            match peer.recv() {
                ServerMsg::Chat {
                    from,
                    text,
                    ts,
                    read_us,
                    sent_us,
                    ..
                } => {
                    // The server's read time of the original; the test
                    // client's msg carried no stamps of its own.
                    assert!(read_us.is_some());
                    assert_eq!(sent_us, None);
                    assert_eq!(from, "alice");
                    assert_eq!(text, want);
                    assert_eq!(ts.len(), 26, "{ts}");
                }
                other => panic!("expected chat, got {other:?}"),
            }
        }
    }

    // Bob talks while Alice's messages are relayed: ids, not order, match.
    bob.say(1, "from bob");
    assert_eq!(
        unstamped(bob.recv()),
        ServerMsg::reply(1, "Server received: from bob")
    );
    assert!(matches!(alice.recv(), ServerMsg::Chat { from, .. } if from == "bob"));

    drop(carol);
    match alice.recv() {
        ServerMsg::Leave { name, users, .. } => {
            assert_eq!(name, "carol");
            assert_eq!(users, 2);
        }
        other => panic!("expected leave, got {other:?}"),
    }
    assert!(matches!(bob.recv(), ServerMsg::Leave { name, .. } if name == "carol"));
    let lines = ts.log_lines();
    assert_log_parses(&lines);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Join: ") && l.contains("as carol"))
    );
}

#[test]
fn taken_names_are_made_unique_and_nick_renames() {
    let ts = TestServer::start();
    let mut a = Chat::join(ts.addr, "alice");
    let b = Chat::join(ts.addr, "Alice");
    assert_eq!(b.name, "Alice-2");
    let _ = a.recv(); // join
    a.send(&ClientMsg::Nick { name: "zed".into() });
    assert_eq!(
        a.recv(),
        ServerMsg::Nick {
            old: "alice".into(),
            new: "zed".into()
        }
    );
    // Impersonating the server is refused.
    a.send(&ClientMsg::Nick {
        name: "server".into(),
    });
    assert!(matches!(a.recv(), ServerMsg::Error { message } if message.contains("reserved")));
}

#[test]
fn plain_messages_reach_the_room_under_the_sender_address() {
    let ts = TestServer::start();
    let mut a = Chat::join(ts.addr, "alice");
    let mut p = Plain::new(ts.addr);
    p.send(b"from nc\n");
    assert_eq!(p.line(), "Server received: from nc");
    match a.recv() {
        ServerMsg::Chat { from, text, .. } => {
            assert!(from.starts_with("127.0.0.1:"), "{from}");
            assert_eq!(text, "from nc");
        }
        other => panic!("expected chat, got {other:?}"),
    }
}

#[test]
fn malformed_chat_lines_get_errors_and_the_session_goes_on() {
    let ts = TestServer::start();
    let mut a = Chat::join(ts.addr, "alice");
    a.plain.send(b"{\"type\":\"msg\",\"id\":\"x\"}\n");
    assert!(
        matches!(a.recv(), ServerMsg::Error { message } if message.contains("not a valid chatmon message"))
    );
    a.plain.send(b"not json\n");
    assert!(matches!(a.recv(), ServerMsg::Error { .. }));
    a.plain.send(b"\xff\n");
    assert!(matches!(a.recv(), ServerMsg::Error { message } if message.contains("UTF-8")));
    a.say(1, "fine");
    assert_eq!(
        unstamped(a.recv()),
        ServerMsg::reply(1, "Server received: fine")
    );
}

#[test]
fn a_chat_line_split_across_pauses_is_one_message() {
    // Longer than the plain mode's 20 ms partial-line delay: on a real
    // network a long line arrives in pieces, and chat lines wait for their
    // newline.
    let ts = TestServer::start();
    let hello = protocol::encode(&ClientMsg::Hello {
        v: protocol::PROTOCOL_VERSION,
        name: "split".into(),
        token: None,
        subscribe: false,
    });
    let mut c = Plain::new(ts.addr);
    let (a, b) = hello.split_at(10);
    c.send(a.as_bytes());
    std::thread::sleep(std::time::Duration::from_millis(100));
    c.send(b.as_bytes());
    let welcome: ServerMsg = protocol::decode(c.line().as_bytes()).expect("welcome");
    assert!(matches!(welcome, ServerMsg::Welcome { .. }), "{welcome:?}");
    let line = protocol::encode(&ClientMsg::msg(1, "x".repeat(2000)));
    let (a, b) = line.split_at(1000);
    c.send(a.as_bytes());
    std::thread::sleep(std::time::Duration::from_millis(100));
    c.send(b.as_bytes());
    let reply: ServerMsg = protocol::decode(c.line().as_bytes()).expect("reply");
    assert_eq!(
        unstamped(reply),
        ServerMsg::reply(1, format!("Server received: {}", "x".repeat(2000)))
    );
}

#[test]
fn a_client_that_only_reads_is_not_closed_as_idle() {
    use chatmon::client::{self, ClientConfig, ClientEvent};
    use std::time::{Duration, Instant};
    const IDLE: Duration = Duration::from_millis(600);
    const PING_EVERY: Duration = Duration::from_millis(150);
    // Pings spanning twice the idle timeout: the marker that it would have
    // been closed by now if pings did not count.
    let pings = (2 * IDLE.as_millis() / PING_EVERY.as_millis()) as u64;
    let ping_len = protocol::encode(&ClientMsg::Ping { id: None }).len() as u64;
    let ts = TestServer::with(|c| c.idle_timeout = Some(IDLE));
    let bytes_in = || ts.server().counters().traffic.bytes_in();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut cfg = ClientConfig::new(ts.addr.to_string(), "reader");
        cfg.ping_every = PING_EVERY;
        // Probes would keep it alive too: this is about pings alone.
        cfg.probe_every = Duration::ZERO;
        let (handle, mut events) = client::spawn(cfg, chatmon::eventlog::EventLog::null());
        let deadline = Instant::now() + 4 * WAIT;
        let mut connected = 0;
        // Counted from the welcome on: the hello is in by then.
        let mut since: Option<u64> = None;
        while since.is_none_or(|b| bytes_in() < b + pings * ping_len) {
            assert!(
                Instant::now() < deadline,
                "the server never got {pings} pings ({} bytes in)",
                bytes_in()
            );
            match tokio::time::timeout(Duration::from_millis(50), events.recv()).await {
                Ok(Some(ClientEvent::Connected { .. })) => {
                    connected += 1;
                    since = Some(bytes_in());
                }
                Ok(Some(ClientEvent::Disconnected { reason, .. })) => {
                    panic!("disconnected while only reading: {reason}")
                }
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => panic!("the client task ended"),
            }
        }
        assert_eq!(connected, 1);
        handle.command(client::Command::Quit);
    });
    assert!(
        !ts.log_lines().iter().any(|l| l.contains("idle for")),
        "{:#?}",
        ts.log_lines()
    );
}
