//! Chat mode: replies matched by id, relay, presence, names, between real
//! clients of a real server.

mod common;

use chatmon::protocol::{ClientMsg, ServerMsg};
use common::{Chat, Plain, TestServer, assert_log_parses};

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
        alice.recv(),
        ServerMsg::Reply {
            id: 7,
            text: "Server received: hi all".into()
        }
    );
    assert_eq!(
        alice.recv(),
        ServerMsg::Reply {
            id: 8,
            text: "Server received: second".into()
        }
    );
    for peer in [&mut bob, &mut carol] {
        for want in ["hi all", "second"] {
            match peer.recv() {
                ServerMsg::Chat { from, text, ts } => {
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
        bob.recv(),
        ServerMsg::Reply {
            id: 1,
            text: "Server received: from bob".into()
        }
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
        a.recv(),
        ServerMsg::Reply {
            id: 1,
            text: "Server received: fine".into()
        }
    );
}
