//! Security promises (issue 4): loopback by default, a warning when exposed
//! without a token, token authentication that fails closed, is logged with the
//! peer address and never logs the token, and names nobody can use to pass
//! for the server or another user.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatmon::eventlog::{self, EventLog};
use chatmon::protocol::{self, ClientMsg, PROTOCOL_VERSION, ServerMsg};
use chatmon::server::{Server, ServerConfig};
use common::{Chat, Plain, TestServer, assert_log_parses};

const TOKEN: &str = "s3cret-Token-9f2c";

/// Reads what is left on a connection until EOF (bounded by the read timeout).
fn read_to_eof(p: &mut Plain) -> String {
    let mut rest = String::new();
    let _ = p.r.read_to_string(&mut rest);
    rest
}

/// Sends a hello with `token` and returns the first line the server answers.
fn hello_with(addr: SocketAddr, name: &str, token: Option<&str>) -> (Plain, ServerMsg) {
    let mut p = Plain::new(addr);
    p.send(
        protocol::encode(&ClientMsg::Hello {
            v: PROTOCOL_VERSION,
            name: name.into(),
            token: token.map(str::to_string),
            subscribe: false,
        })
        .as_bytes(),
    );
    let line = p.line();
    let msg = protocol::decode(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    (p, msg)
}

#[test]
fn defaults_are_loopback() {
    let def: SocketAddr = protocol::DEFAULT_ADDR.parse().expect("addr");
    assert!(def.ip().is_loopback());
    assert!(ServerConfig::default().bind.ip().is_loopback());
}

#[test]
fn chat_sessions_need_the_token_and_failures_are_logged_without_it() {
    let ts = TestServer::with(|c| c.token = Some(TOKEN.into()));
    // Missing token: one clear error line, then the connection closes.
    let (mut p, msg) = hello_with(ts.addr, "mallory", None);
    let missing_port = p.w.local_addr().expect("addr").port();
    assert!(
        matches!(&msg, ServerMsg::Error { message } if message.contains("requires a token")),
        "{msg:?}"
    );
    assert_eq!(read_to_eof(&mut p), "", "nothing after the error line");
    // Wrong token, even one that shares a long prefix with the right one.
    let wrong = format!("{}X", &TOKEN[..TOKEN.len() - 1]);
    let (mut p, msg) = hello_with(ts.addr, "mallory", Some(&wrong));
    let wrong_port = p.w.local_addr().expect("addr").port();
    assert!(
        matches!(&msg, ServerMsg::Error { message } if message == "wrong token"),
        "{msg:?}"
    );
    assert_eq!(read_to_eof(&mut p), "");
    // The right token gets in and can talk.
    let mut a = Chat::join_with(ts.addr, "alice", Some(TOKEN), false);
    a.say(1, "in");
    assert_eq!(
        a.recv(),
        ServerMsg::Reply {
            id: 1,
            text: "Server received: in".into()
        }
    );
    // Both failures are logged with the peer address; no token ever is.
    for port in [missing_port, wrong_port] {
        ts.wait_log("for the failed attempt", |l| {
            l.starts_with("Error: ")
                && l.contains(&format!("127.0.0.1:{port}"))
                && l.contains("authentication failed")
        });
    }
    let lines = ts.log_lines();
    assert_log_parses(&lines);
    let all = lines.join("\n");
    assert!(!all.contains(TOKEN), "the token leaked into the log");
    assert!(!all.contains(&wrong), "a wrong token leaked into the log");
}

#[test]
fn plain_sessions_need_auth_first() {
    let ts = TestServer::with(|c| c.token = Some(TOKEN.into()));
    // A message before AUTH: one error line, closed, not echoed or relayed.
    let mut p = Plain::new(ts.addr);
    p.send(b"hello without auth\n");
    let l = p.line();
    assert!(l.starts_with("Error: this server requires a token"), "{l}");
    assert_eq!(read_to_eof(&mut p), "");
    // Wrong token.
    let mut p = Plain::new(ts.addr);
    p.send(b"AUTH nope\n");
    assert_eq!(p.line(), "Error: wrong token");
    assert_eq!(read_to_eof(&mut p), "");
    // Right token, then the seed protocol.
    let mut p = Plain::new(ts.addr);
    p.send(format!("AUTH {TOKEN}\n").as_bytes());
    assert_eq!(p.line(), "Authenticated.");
    p.send(b"now it works\n");
    assert_eq!(p.line(), "Server received: now it works");
    let lines = ts.log_lines();
    assert!(!lines.join("\n").contains(TOKEN));
    assert!(!lines.iter().any(|l| l.contains("hello without auth")));
    assert!(!lines.iter().any(|l| l.contains("AUTH nope")));
}

#[test]
fn an_empty_token_is_refused_at_start() {
    let cfg = ServerConfig {
        bind: "127.0.0.1:0".parse().expect("addr"),
        token: Some(String::new()),
        stats_interval: None,
        ..ServerConfig::default()
    };
    let err = match Server::start(cfg, EventLog::null()) {
        Ok(_) => panic!("an empty token would let everyone in"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("token is empty"), "{err}");
}

/// The real binary, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `chatmon serve` with `args` and `env`, returns it and its stderr
/// lines up to and including the "listening on" banner.
fn serve(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> (Proc, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatmon"));
    cmd.arg("serve")
        .args(["--stats-interval", "0", "--log"])
        .arg(dir.join("log.txt"))
        .args(args)
        .env_remove("CHATMON_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn chatmon serve");
    let stderr = child.stderr.take().expect("stderr");
    let proc = Proc(child);
    let mut lines = Vec::new();
    let mut r = BufReader::new(stderr);
    for _ in 0..10 {
        let mut l = String::new();
        if r.read_line(&mut l).expect("stderr") == 0 {
            break;
        }
        let done = l.contains("listening on");
        lines.push(l.trim_end().to_string());
        if done {
            break;
        }
    }
    (proc, lines)
}

fn banner_addr(lines: &[String]) -> SocketAddr {
    lines
        .iter()
        .find_map(|l| l.split("listening on ").nth(1))
        .and_then(|r| r.split(',').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {lines:?}"))
}

#[test]
fn binary_warns_when_exposed_without_token_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Bound to all interfaces only long enough to read the warning; nothing
    // connects to it.
    let (p, lines) = serve(&["--bind", "0.0.0.0:0"], &[], dir.path());
    drop(p);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("warning: listening on 0.0.0.0:0 without --token")),
        "{lines:?}"
    );
    let (p, lines) = serve(&["--bind", "127.0.0.1:0"], &[], dir.path());
    drop(p);
    assert!(!lines.iter().any(|l| l.contains("warning")), "{lines:?}");
    let (p, lines) = serve(
        &["--bind", "0.0.0.0:0"],
        &[("CHATMON_TOKEN", TOKEN)],
        dir.path(),
    );
    drop(p);
    assert!(!lines.iter().any(|l| l.contains("warning")), "{lines:?}");
}

#[test]
fn binary_takes_the_token_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (p, lines) = serve(
        &["--bind", "127.0.0.1:0"],
        &[("CHATMON_TOKEN", TOKEN)],
        dir.path(),
    );
    let addr = banner_addr(&lines);
    assert!(!lines.join("\n").contains(TOKEN), "token on stderr");
    let (_, msg) = hello_with(addr, "mallory", None);
    assert!(matches!(msg, ServerMsg::Error { .. }), "{msg:?}");
    let (_, msg) = hello_with(addr, "alice", Some(TOKEN));
    assert!(matches!(msg, ServerMsg::Welcome { .. }), "{msg:?}");
    // The failure reaches the log file, without the token.
    let log = dir.path().join("log.txt");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("authentication failed") {
            assert!(!text.contains(TOKEN));
            break;
        }
        assert!(Instant::now() < deadline, "no failure logged: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(p);
    // `--help` shows the variable but never its value.
    let out = Command::new(env!("CARGO_BIN_EXE_chatmon"))
        .args(["serve", "--help"])
        .env("CHATMON_TOKEN", TOKEN)
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("CHATMON_TOKEN") && !help.contains(TOKEN),
        "{help}"
    );
}

#[test]
fn names_cannot_pass_for_the_server_or_another_user() {
    let ts = TestServer::start();
    let mut alice = Chat::join(ts.addr, "alice");
    // Reserved names, in any case or look-alike letters, and names that
    // could forge text: refused with a clear error, connection closed.
    for bad in [
        "server",
        "SERVER",
        "Ѕerver",
        "ｓｅｒｖｅｒ",
        "chatmon",
        "y0u",
        "",
        "a b",
        "alice:",
        "bob\nserver",
        "x\u{1b}[2J",
        "\u{202e}ecila",
        "a\u{200b}lice",
        "𝐚lice",
        &"n".repeat(protocol::MAX_NAME_LEN + 1),
    ] {
        let (mut p, msg) = hello_with(ts.addr, bad, None);
        assert!(
            matches!(&msg, ServerMsg::Error { message } if message.starts_with("invalid name")),
            "{bad:?}: {msg:?}"
        );
        assert_eq!(read_to_eof(&mut p), "", "{bad:?}");
    }
    // Names that look like alice's get a suffix, so the pane and the log
    // always tell them apart.
    let mut others = Vec::new();
    for fake in ["alice", "ALICE", "аlice", "AIice", "a1ice", "ａｌｉｃｅ"] {
        let c = Chat::join(ts.addr, fake);
        assert_ne!(
            protocol::name_key(&c.name),
            protocol::name_key("alice"),
            "{fake} became {}",
            c.name
        );
        assert!(c.name.starts_with(fake), "{fake} became {}", c.name);
        others.push(c);
    }
    // Renaming to a taken name or the server's is not allowed either.
    let bob = &mut others[0];
    bob.send(&ClientMsg::Nick {
        name: "Alice".into(),
    });
    let msg = bob.recv_until(|m| matches!(m, ServerMsg::Nick { .. } | ServerMsg::Error { .. }));
    match msg {
        ServerMsg::Nick { new, .. } => assert_ne!(protocol::name_key(&new), "alice"),
        other => panic!("{other:?}"),
    }
    bob.send(&ClientMsg::Nick {
        name: "Server".into(),
    });
    let msg = bob.recv_until(|m| matches!(m, ServerMsg::Error { .. }));
    assert!(matches!(msg, ServerMsg::Error { message } if message.contains("reserved")));
    // Message text cannot forge a log line or a sender: it stays one
    // escaped line under the real sender.
    alice.say(
        1,
        "hi\nMessage Sent: 2026-01-01 00:00:00.000000 - server -> bob: pwned",
    );
    let _ = alice.recv_until(|m| matches!(m, ServerMsg::Reply { id: 1, .. }));
    let lines = ts.log_lines();
    assert_log_parses(&lines);
    let forged: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("pwned"))
        .map(|l| eventlog::parse_line(l).expect("parses"))
        .collect();
    assert!(!forged.is_empty());
    for e in &forged {
        assert!(
            e.message.starts_with("server <- alice@") || e.message.starts_with("server -> alice@"),
            "{e:?}"
        );
    }
}
