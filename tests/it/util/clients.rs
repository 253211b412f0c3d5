//! Blocking test clients with bounded reads: a line-oriented plain client
//! (the seed's protocol) and a chat-protocol client on top of it.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};

use chatmon::protocol::{self, ClientMsg, PROTOCOL_VERSION, ServerMsg};

/// A line-oriented plain client.
pub struct Plain {
    pub r: BufReader<TcpStream>,
    /// A clone of the same socket, so that writes need no `&mut` of the reader.
    pub w: TcpStream,
}

impl Plain {
    pub fn new(addr: SocketAddr) -> Plain {
        let s = super::connect(addr);
        Plain {
            w: s.try_clone().expect("clone"),
            r: BufReader::new(s),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("write");
    }

    /// Reads one line, without its newline.
    pub fn line(&mut self) -> String {
        let mut s = String::new();
        self.r.read_line(&mut s).expect("read line");
        s.trim_end_matches('\n').to_string()
    }
}

/// A chat-protocol client.
pub struct Chat {
    pub plain: Plain,
    /// The name the server gave us (it may add a suffix).
    pub name: String,
    /// The room as the welcome listed it.
    pub users: Vec<String>,
}

impl Chat {
    /// Connects, says hello, waits for the welcome.
    pub fn join(addr: SocketAddr, name: &str) -> Chat {
        Self::join_with(addr, name, None, false)
    }

    pub fn join_with(addr: SocketAddr, name: &str, token: Option<&str>, subscribe: bool) -> Chat {
        let mut plain = Plain::new(addr);
        plain.send(&hello_line(name, token, subscribe));
        let mut c = Chat {
            plain,
            name: String::new(),
            users: Vec::new(),
        };
        match c.recv() {
            ServerMsg::Welcome { name, users, .. } => {
                c.name = name;
                c.users = users;
            }
            other => panic!("expected welcome, got {other:?}"),
        }
        c
    }

    pub fn send(&mut self, msg: &ClientMsg) {
        self.plain.send(protocol::encode(msg).as_bytes());
    }

    pub fn say(&mut self, id: u64, text: &str) {
        self.send(&ClientMsg::msg(id, text));
    }

    pub fn recv(&mut self) -> ServerMsg {
        let line = self.plain.line();
        protocol::decode(line.as_bytes()).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"))
    }

    /// Receives until a message matches (skipping others), bounded.
    pub fn recv_until(&mut self, pred: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        for _ in 0..10_000 {
            let m = self.recv();
            if pred(&m) {
                return m;
            }
        }
        panic!("no matching message");
    }
}

/// The encoded hello a chat client opens with.
pub fn hello_line(name: &str, token: Option<&str>, subscribe: bool) -> Vec<u8> {
    protocol::encode(&ClientMsg::Hello {
        v: PROTOCOL_VERSION,
        name: name.into(),
        token: token.map(str::to_string),
        subscribe,
    })
    .into_bytes()
}
