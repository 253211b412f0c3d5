//! TLS end to end: `serve` with a certificate (in process and as the real
//! binary), clients no one here wrote (`openssl s_client`, Python's `ssl`),
//! chatmon's own chat client, TUI and bench, and every way it can go wrong
//! said in words. Certificates are made here with rcgen; no key is committed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chatmon::server::ServerConfig;
use chatmon::tls::client::{TlsClient, TlsClientOptions, TlsConnectError};
use chatmon::tls::server::ReloadableServerConfig;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::tls_openssl::{python_ssl, s_client};
use crate::util::process::{ServeCmd, chatmon};
use crate::util::pty::Tui;
use crate::util::{TestServer, WAIT, wait_until};

/// A CA of its own and files for a leaf it signs, in a temp dir.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        static N: AtomicUsize = AtomicUsize::new(0);
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.distinguished_name.push(
            DnType::CommonName,
            format!("chatmon it CA {}", N.fetch_add(1, Ordering::Relaxed)),
        );
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().expect("key")).expect("CA");
        let pki = Pki {
            ca,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        std::fs::write(pki.ca_path(), pki.ca.pem()).expect("write CA");
        pki.leaf("cert.pem", "key.pem", &["localhost", "127.0.0.1"], None);
        pki
    }

    /// Writes a leaf for `names` (valid between 1 January of the years, if
    /// given) as `cert`/`key` in the dir.
    fn leaf(&self, cert: &str, key: &str, names: &[&str], years: Option<(i32, i32)>) {
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
        p.distinguished_name.push(DnType::CommonName, names[0]);
        if let Some((a, b)) = years {
            p.not_before = rcgen::date_time_ymd(a, 1, 1);
            p.not_after = rcgen::date_time_ymd(b, 1, 1);
        }
        let k = KeyPair::generate().expect("key");
        let c = p.signed_by(&k, &self.ca).expect("sign");
        std::fs::write(self.path(cert), c.pem()).expect("write cert");
        std::fs::write(self.path(key), k.serialize_pem()).expect("write key");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ca_path(&self) -> PathBuf {
        self.path("ca.pem")
    }

    fn config(&self) -> Arc<ReloadableServerConfig> {
        Arc::new(
            ReloadableServerConfig::load(self.path("cert.pem"), self.path("key.pem"))
                .expect("pair loads"),
        )
    }

    /// Client options that trust this CA.
    fn trust(&self) -> TlsClientOptions {
        TlsClientOptions {
            ca_file: Some(self.ca_path()),
            ..Default::default()
        }
    }
}

fn tls_server(pki: &Pki, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let tls = pki.config();
    TestServer::with(move |c| {
        c.tls = Some(tls);
        tweak(c);
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Connects with chatmon's TLS client to `server` (the name checked) at
/// `addr`, sends `lines` and returns the first `want` lines that come back.
fn exchange(
    addr: SocketAddr,
    server: &str,
    opts: &TlsClientOptions,
    lines: &[&str],
    want: usize,
) -> Result<Vec<String>, TlsConnectError> {
    // A thread of its own, so that a test already inside a runtime can call it.
    std::thread::scope(|scope| {
        scope
            .spawn(|| exchange_on_runtime(addr, server, opts, lines, want))
            .join()
            .expect("exchange thread")
    })
}

fn exchange_on_runtime(
    addr: SocketAddr,
    server: &str,
    opts: &TlsClientOptions,
    lines: &[&str],
    want: usize,
) -> Result<Vec<String>, TlsConnectError> {
    rt().block_on(async {
        let client = TlsClient::new(server, opts).expect("client settings");
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let s = client.open(tcp, WAIT).await?;
        let (rd, mut wr) = s.into_split();
        for l in lines {
            wr.write_all(format!("{l}\n").as_bytes())
                .await
                .map_err(|e| client.explain_io(e))?;
            wr.flush().await.map_err(|e| client.explain_io(e))?;
        }
        let mut rd = BufReader::new(rd);
        let mut got = Vec::new();
        while got.len() < want {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, rd.read_line(&mut line))
                .await
                .expect("a line in time")
                .map_err(|e| client.explain_io(e))?;
            if n == 0 {
                break;
            }
            got.push(line.trim_end().to_string());
        }
        Ok(got)
    })
}

fn local(addr: SocketAddr) -> String {
    format!("localhost:{}", addr.port())
}

#[test]
fn openssl_s_client_and_python_ssl_get_the_echo() {
    let pki = Pki::new();
    let ts = tls_server(&pki, |_| {});
    let out = s_client(ts.addr, &pki.ca_path(), b"hello\n");
    assert!(out.lines().any(|l| l == "Server received: hello"), "{out}");
    let out = python_ssl(ts.addr, &pki.ca_path(), b"hello\n");
    assert!(out.lines().any(|l| l == "Server received: hello"), "{out}");
}

#[test]
fn chat_over_tls_with_a_token_inside_the_session() {
    let pki = Pki::new();
    let ts = tls_server(&pki, |c| c.token = Some("s3cret".into()));
    // The seed's protocol with AUTH, then the chat protocol with a token.
    let got = exchange(
        ts.addr,
        &local(ts.addr),
        &pki.trust(),
        &["AUTH s3cret", "hello"],
        2,
    )
    .unwrap();
    assert_eq!(got, ["Authenticated.", "Server received: hello"]);
    let hello = r#"{"type":"hello","v":1,"name":"alice","token":"s3cret"}"#;
    let got = exchange(ts.addr, &local(ts.addr), &pki.trust(), &[hello], 1).unwrap();
    assert!(got[0].contains(r#""type":"welcome""#), "{got:?}");
    let bad = r#"{"type":"hello","v":1,"name":"bob","token":"wrong"}"#;
    let got = exchange(ts.addr, &local(ts.addr), &pki.trust(), &[bad], 1).unwrap();
    assert!(got[0].contains(r#""type":"error""#), "{got:?}");
}

#[test]
fn a_plain_client_on_the_tls_port_gets_nothing_and_is_logged() {
    let pki = Pki::new();
    let ts = tls_server(&pki, |_| {});
    let mut s = TcpStream::connect(ts.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(b"hello\n").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.is_empty(), "a plain client was served {got:?}");
    let line = ts.wait_log("for the plain client's Error", |l| {
        l.starts_with("Error: ") && l.contains("not a TLS client")
    });
    assert!(
        line.ends_with(&format!(
            "server: {me}: not a TLS client: it sent plain text (a client without TLS?)"
        )),
        "{line}"
    );
    // Garbage is closed too.
    let mut g = TcpStream::connect(ts.addr).unwrap();
    g.set_read_timeout(Some(WAIT)).unwrap();
    g.write_all(&[0u8, 1, 2, 3, 0xff]).unwrap();
    let mut got = Vec::new();
    let _ = g.read_to_end(&mut got);
    assert!(got.is_empty());
    ts.wait_log("for the garbage Error", |l| {
        l.contains("are not a TLS ClientHello")
    });
}

#[test]
fn a_tls_client_on_a_plain_port_says_the_server_does_not_speak_tls() {
    let ts = TestServer::start();
    let pki = Pki::new();
    let e = exchange(ts.addr, &local(ts.addr), &pki.trust(), &[], 0).unwrap_err();
    assert!(
        e.to_string().starts_with("server does not speak TLS"),
        "{e:?}: {e}"
    );
}

#[test]
fn wrong_ca_wrong_name_and_expired_are_each_worded() {
    let pki = Pki::new();
    let ts = tls_server(&pki, |_| {});
    let other = Pki::new();
    let e = exchange(ts.addr, &local(ts.addr), &other.trust(), &[], 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "certificate is not trusted (unknown issuer); it is not signed by a CA in --tls-ca"
    );
    let e = exchange(ts.addr, "chat.example.org:1", &pki.trust(), &[], 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "certificate is for localhost, 127.0.0.1, not chat.example.org"
    );
    // The server logs the refusal of its certificate, with the address.
    ts.wait_log("for the client's alert", |l| {
        l.starts_with("Error: ") && l.contains("does not accept this server's certificate")
    });

    pki.leaf("old.pem", "old-key.pem", &["localhost"], Some((2020, 2021)));
    let old = Arc::new(
        ReloadableServerConfig::load(pki.path("old.pem"), pki.path("old-key.pem")).unwrap(),
    );
    let ts = TestServer::with(move |c| c.tls = Some(old));
    let e = exchange(ts.addr, &local(ts.addr), &pki.trust(), &[], 0).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("certificate has expired (valid until 2021-01-01 00:00:00 UTC"),
        "{e}"
    );
    // --tls-insecure takes it anyway.
    let insecure = TlsClientOptions {
        insecure: true,
        ..Default::default()
    };
    let got = exchange(ts.addr, &local(ts.addr), &insecure, &["hello"], 1).unwrap();
    assert_eq!(got, ["Server received: hello"]);
}

#[test]
fn max_clients_counts_handshakes_and_a_stalled_one_times_out() {
    let pki = Pki::new();
    let ts = tls_server(&pki, |c| {
        c.max_clients = 3;
        c.tls_handshake_timeout = Duration::from_millis(500);
        // No eviction of silent connections: a full server refuses.
        c.line_timeout = None;
    });
    // Three clients that never say hello hold the three slots.
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(ts.addr).unwrap())
        .collect();
    wait_until("three handshakes in progress", || {
        ts.server().active_clients() == 3
    });
    let e = exchange(ts.addr, &local(ts.addr), &pki.trust(), &[], 0).unwrap_err();
    assert!(
        matches!(e, TlsConnectError::Closed | TlsConnectError::Io(_)),
        "{e:?}"
    );
    ts.wait_log("for the refusal", |l| {
        l.contains("refused: server is full (3 clients)")
    });
    // Their handshakes time out, the slots come back.
    ts.wait_log("for the handshake timeout", |l| {
        l.contains("TLS handshake not finished within 500ms")
    });
    wait_until("the slots to free", || ts.server().active_clients() == 0);
    let got = exchange(ts.addr, &local(ts.addr), &pki.trust(), &["hello"], 1).unwrap();
    assert_eq!(got, ["Server received: hello"]);
    drop(idle);
}

#[test]
fn a_full_server_evicts_a_stalled_handshake_for_a_newcomer() {
    // With the line deadline on (the default), a connection that has not
    // even finished its TLS handshake is the first to make room.
    let pki = Pki::new();
    let ts = tls_server(&pki, |c| c.max_clients = 2);
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(ts.addr).unwrap())
        .collect();
    wait_until("two handshakes in progress", || {
        ts.server().active_clients() == 2
    });
    let got = exchange(ts.addr, &local(ts.addr), &pki.trust(), &["hello"], 1).unwrap();
    assert_eq!(got, ["Server received: hello"]);
    ts.wait_log("for the eviction", |l| {
        l.starts_with("Error: ") && l.contains("evicted to make room")
    });
    drop(idle);
}

#[test]
fn a_thousand_half_open_handshakes_do_not_stop_others() {
    let _ = chatmon::sys::raise_nofile_limit();
    let pki = Pki::new();
    let ts = tls_server(&pki, |c| c.max_clients = 1100);
    let mut half_open = Vec::new();
    for i in 0..1000 {
        let mut s = TcpStream::connect(ts.addr).unwrap();
        // Half of them start a ClientHello and stall.
        if i % 2 == 0 {
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
        }
        half_open.push(s);
    }
    wait_until("the half-open handshakes to be admitted", || {
        ts.server().active_clients() >= 1000
    });
    let started = Instant::now();
    let got = exchange(ts.addr, &local(ts.addr), &pki.trust(), &["hello"], 1).unwrap();
    assert_eq!(got, ["Server received: hello"]);
    assert!(started.elapsed() < WAIT, "took {:?}", started.elapsed());
    drop(half_open);
    wait_until("the half-open ones to go", || {
        ts.server().active_clients() == 0
    });
}

#[test]
fn https_metrics_with_the_same_certificate() {
    let pki = Pki::new();
    let ts = tls_server(&pki, |_| {});
    let tls = pki.config();
    let m = chatmon::metrics::MetricsServer::start_tls(
        "127.0.0.1:0".parse().unwrap(),
        ts.server().monitor(),
        tls,
    )
    .unwrap();
    let addr = m.local_addr();
    let body = rt().block_on(async {
        let client = TlsClient::new(&local(addr), &pki.trust()).unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut s = client.open(tcp, WAIT).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        s.flush().await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read_to_end(&mut s, &mut out))
            .await;
        String::from_utf8_lossy(&out).into_owned()
    });
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("chatmon_"), "{body}");
    // Plain HTTP to the HTTPS port gets nothing.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    m.shutdown();
}

/// `chatmon serve` with the pki's certificate; extra flags after.
fn serve_tls(pki: &Pki, log: &Path, bind: &str, extra: &[&str]) -> crate::util::process::Serve {
    let mut args = vec![
        "--tls-cert".to_string(),
        pki.path("cert.pem").display().to_string(),
        "--tls-key".to_string(),
        pki.path("key.pem").display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    ServeCmd::new(log).bind(bind).args(args).start()
}

#[test]
fn sighup_reloads_without_dropping_clients_and_a_bad_pair_keeps_the_old() {
    let pki = Pki::new();
    let log = pki.path("log.txt");
    let serve = serve_tls(&pki, &log, "127.0.0.1:0", &[]);
    let addr = serve.addr;
    rt().block_on(async {
        let client = TlsClient::new(&local(addr), &pki.trust()).unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let s = client.open(tcp, WAIT).await.unwrap();
        let (rd, mut wr) = s.into_split();
        let mut rd = BufReader::new(rd);
        let mut line = String::new();
        let mut say = async |text: &str, line: &mut String| {
            wr.write_all(format!("{text}\n").as_bytes()).await.unwrap();
            wr.flush().await.unwrap();
            line.clear();
            tokio::time::timeout(WAIT, rd.read_line(line))
                .await
                .unwrap()
                .unwrap();
            line.trim_end().to_string()
        };
        assert_eq!(say("one", &mut line).await, "Server received: one");

        // A renewal from another CA, same paths; SIGHUP.
        let next = Pki::new();
        std::fs::copy(next.path("cert.pem"), pki.path("cert.pem")).unwrap();
        std::fs::copy(next.path("key.pem"), pki.path("key.pem")).unwrap();
        serve.child.signal(libc::SIGHUP);
        serve.wait_stderr("for the reload", |l| {
            l.contains("TLS certificate and key reloaded")
        });
        // The client connected before it is still served.
        assert_eq!(say("two", &mut line).await, "Server received: two");
        // New clients get the new certificate.
        let e = exchange(addr, &local(addr), &pki.trust(), &[], 0).unwrap_err();
        assert!(matches!(e, TlsConnectError::UnknownIssuer { .. }), "{e}");
        let got = exchange(addr, &local(addr), &next.trust(), &["hi"], 1).unwrap();
        assert_eq!(got, ["Server received: hi"]);

        // A botched renewal: a key that does not match. The old pair stays.
        std::fs::write(
            pki.path("key.pem"),
            KeyPair::generate().unwrap().serialize_pem(),
        )
        .unwrap();
        serve.child.signal(libc::SIGHUP);
        let why = serve.wait_stderr("for the failed reload", |l| l.contains("TLS reload failed"));
        assert!(why.contains("does not match the certificate"), "{why}");
        let got = exchange(addr, &local(addr), &next.trust(), &["still"], 1).unwrap();
        assert_eq!(got, ["Server received: still"]);
        assert_eq!(say("three", &mut line).await, "Server received: three");
    });
    // The writer batches lines for a few milliseconds: wait for it.
    crate::util::wait_until("for the failed reload in the log", || {
        crate::util::file_lines(&log).iter().any(|l| {
            l.starts_with("Error: ")
                && l.contains(
                    "server: tls: reload failed, still serving the old certificate and key",
                )
        })
    });
}

#[test]
fn clear_text_warning_only_off_loopback_without_tls() {
    let pki = Pki::new();
    let log = pki.path("log.txt");
    let mut plain = ServeCmd::new(&log)
        .bind("0.0.0.0:0")
        .args(["--token", "t"])
        .start();
    plain.wait_stderr("for the clear-text warning", |l| {
        l.contains("without TLS (--tls-cert/--tls-key): the chat and the token cross the network in clear text")
    });
    plain.sigterm();
    let mut tls = serve_tls(&pki, &log, "0.0.0.0:0", &["--token", "t"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!tls.stderr().contains("clear text"), "{}", tls.stderr());
    tls.sigterm();
}

#[test]
fn bad_certificate_files_stop_serve_with_words() {
    let pki = Pki::new();
    let out = chatmon([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--tls-cert",
        pki.path("nope.pem").to_str().unwrap(),
        "--tls-key",
        pki.path("key.pem").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read the certificate file"), "{err}");
    let out = chatmon(["bench", "--tls", "--clients", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls needs --server"), "{err}");
}

#[test]
fn bench_over_tls_reports_handshakes_per_second() {
    let pki = Pki::new();
    let ts = tls_server(&pki, |_| {});
    let server = local(ts.addr);
    let ca = pki.ca_path();
    let out = chatmon([
        "bench",
        "--server",
        &server,
        "--tls-ca",
        ca.to_str().unwrap(),
        "--clients",
        "1,4",
        "--messages",
        "20",
        "--warmup",
        "0",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("TLS hs/s"), "{text}");
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("4 "))
        .unwrap_or_else(|| panic!("no 4-client row: {text}"));
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields[1], "80", "{row}");
    assert_eq!(fields[2], "0", "{row}");
    let hs: f64 = fields.last().unwrap().parse().unwrap();
    assert!(hs > 0.0, "{row}");
}

#[test]
fn tui_over_tls_in_a_pty() {
    let pki = Pki::new();
    let ts = tls_server(&pki, |_| {});
    let server = local(ts.addr);
    let ca = pki.ca_path().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut tui = Tui::spawn(
        &[
            "chat", "--server", &server, "--tls-ca", &ca, "--name", "pty", "--log", "c.txt",
        ],
        &[],
        dir.path(),
    );
    let screen = tui.wait_for("● connected");
    assert!(screen.contains(" TLS"), "{screen}");
    assert!(!screen.contains("NOT VERIFIED"), "{screen}");
    tui.keys(b"hello over tls\r");
    tui.wait_for("Server received: hello over tls");
    tui.keys(b"\x1b");
    assert!(tui.wait_exit());

    // Insecure: connected, and the status bar says it is not verified.
    let mut tui = Tui::spawn(
        &[
            "chat",
            "--server",
            &server,
            "--tls-insecure",
            "--name",
            "pty",
            "--log",
            "c.txt",
        ],
        &[],
        dir.path(),
    );
    tui.wait_for("TLS NOT VERIFIED (--tls-insecure)");
    tui.keys(b"\x1b");
    assert!(tui.wait_exit());

    // A CA that did not sign it: the reason in the status bar and the log.
    let other = Pki::new();
    let ca = other.ca_path().display().to_string();
    let mut tui = Tui::spawn(
        &[
            "chat", "--server", &server, "--tls-ca", &ca, "--name", "pty", "--log", "c.txt",
        ],
        &[],
        dir.path(),
    );
    tui.wait_for("certificate is not trusted (unknown issuer)");
    tui.keys(b"\x1b");
    assert!(tui.wait_exit());
    let log = std::fs::read_to_string(dir.path().join("c.txt")).unwrap();
    assert!(
        log.lines().any(|l| l.starts_with("Error: ")
            && l.contains("TLS with ")
            && l.contains("certificate is not trusted (unknown issuer)")),
        "{log}"
    );
}
