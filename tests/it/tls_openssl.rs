//! TLS with certificates and keys made by Debian's `openssl`, the way people
//! make them (the README's `openssl req` command included): every key format
//! the contract names loads, and a handshake through chatmon's own server
//! stream and client succeeds or fails in words.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chatmon::tls::client::{TlsClient, TlsClientOptions, TlsConnectError};
use chatmon::tls::server::load_server_config;
use chatmon::tls::stream::TlsStream;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Runs `openssl` in `dir`; the tests need the real binary (`.ci/run`
/// installs it).
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (Debian package openssl) must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The README's self-signed certificate command, with `newkey` chosen.
pub(crate) fn self_signed(dir: &Path, newkey: &[&str], extra: &[&str]) -> (PathBuf, PathBuf) {
    let mut args = vec!["req", "-x509"];
    args.extend_from_slice(newkey);
    args.extend_from_slice(&[
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "30",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ]);
    args.extend_from_slice(extra);
    openssl(dir, &args);
    (dir.join("cert.pem"), dir.join("key.pem"))
}

pub(crate) const NOT_CA: [&str; 2] = ["-addext", "basicConstraints=critical,CA:FALSE"];

/// A TLS echo server on loopback for one client, on chatmon's stream.
fn serve_once(cert: &Path, key: &Path) -> SocketAddr {
    let config = load_server_config(cert, key).expect("the pair loads");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (sock, _) = l.accept().unwrap();
        if let Ok(s) = TlsStream::accept(sock, config, Duration::from_secs(5)) {
            let mut buf = [0u8; 256];
            if let Ok(n) = s.read(&mut buf) {
                let mut reply = b"Server received: ".to_vec();
                reply.extend_from_slice(&buf[..n]);
                let _ = s.write_all(&reply);
                let _ = s.close_notify();
            }
        }
    });
    addr
}

async fn hello(addr: SocketAddr, ca: &Path) -> Result<String, TlsConnectError> {
    let opts = TlsClientOptions {
        ca_file: Some(ca.to_path_buf()),
        ..Default::default()
    };
    let client = TlsClient::new(&addr.to_string(), &opts).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut s = client.connect(tcp, Duration::from_secs(5)).await?;
    s.write_all(b"hello\n").await.unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).await.unwrap();
    Ok(line)
}

#[tokio::test]
async fn every_key_format_from_openssl_serves() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // RSA: PKCS#8 as `req` writes it, then PKCS#1 ("BEGIN RSA PRIVATE KEY").
    let (cert, key) = self_signed(d, &["-newkey", "rsa:2048"], &NOT_CA);
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .contains("BEGIN PRIVATE KEY")
    );
    assert_eq!(
        hello(serve_once(&cert, &key), &cert).await.unwrap(),
        "Server received: hello\n"
    );
    openssl(
        d,
        &["rsa", "-in", "key.pem", "-traditional", "-out", "pkcs1.pem"],
    );
    let pkcs1 = d.join("pkcs1.pem");
    assert!(
        std::fs::read_to_string(&pkcs1)
            .unwrap()
            .contains("BEGIN RSA PRIVATE KEY")
    );
    assert_eq!(
        hello(serve_once(&cert, &pkcs1), &cert).await.unwrap(),
        "Server received: hello\n"
    );

    // ECDSA P-256: PKCS#8, then SEC1 ("BEGIN EC PRIVATE KEY").
    let (cert, key) = self_signed(
        d,
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        &NOT_CA,
    );
    assert_eq!(
        hello(serve_once(&cert, &key), &cert).await.unwrap(),
        "Server received: hello\n"
    );
    openssl(d, &["ec", "-in", "key.pem", "-out", "sec1.pem"]);
    let sec1 = d.join("sec1.pem");
    assert!(
        std::fs::read_to_string(&sec1)
            .unwrap()
            .contains("BEGIN EC PRIVATE KEY")
    );
    assert_eq!(
        hello(serve_once(&cert, &sec1), &cert).await.unwrap(),
        "Server received: hello\n"
    );

    // Ed25519.
    let (cert, key) = self_signed(d, &["-newkey", "ed25519"], &NOT_CA);
    assert_eq!(
        hello(serve_once(&cert, &key), &cert).await.unwrap(),
        "Server received: hello\n"
    );
}

#[tokio::test]
async fn a_default_openssl_req_certificate_is_a_ca_and_the_client_says_so() {
    // Without `basicConstraints=CA:FALSE`, `openssl req -x509` makes a CA
    // certificate, which a verifier will not take as a server's own.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(
        dir.path(),
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        &[],
    );
    let e = hello(serve_once(&cert, &key), &cert).await.unwrap_err();
    assert!(matches!(e, TlsConnectError::CaAsServer), "{e:?}: {e}");
    assert!(e.to_string().contains("basicConstraints=CA:FALSE"), "{e}");
}

#[test]
fn an_encrypted_openssl_key_is_refused_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, _) = self_signed(
        d,
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        &NOT_CA,
    );
    openssl(
        d,
        &[
            "pkey",
            "-in",
            "key.pem",
            "-aes256",
            "-passout",
            "pass:secret",
            "-out",
            "enc.pem",
        ],
    );
    let e = load_server_config(&cert, &d.join("enc.pem"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is encrypted; chatmon needs it unencrypted"),
        "{e}"
    );
}

/// Runs `cmd` with `input` on its stdin until a stdout line equals `want`
/// (then kills it) or 10 s pass; returns all it printed.
fn run_until_line(mut cmd: Command, input: &[u8], want: &str) -> String {
    use std::io::{BufRead, Write};
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client program must be installed");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    // Keep stdin open: `s_client -quiet` would otherwise end at once.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line == want;
                seen.push(line);
                if done {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let mut text = seen.join("\n");
    if !seen.iter().any(|l| l == want) {
        text.push_str("\n[stderr] ");
        text.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    text
}

pub(crate) fn s_client(addr: SocketAddr, ca: &Path, input: &[u8]) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-quiet",
        "-verify_return_error",
        "-servername",
        "localhost",
    ])
    .arg("-connect")
    .arg(addr.to_string())
    .arg("-CAfile")
    .arg(ca);
    run_until_line(cmd, input, "Server received: hello")
}

pub(crate) fn python_ssl(addr: SocketAddr, ca: &Path, input: &[u8]) -> String {
    const SCRIPT: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
    with ctx.wrap_socket(s, server_hostname="localhost") as t:
        t.sendall(sys.stdin.buffer.readline())
        buf = b""
        while b"\n" not in buf:
            d = t.recv(4096)
            if not d:
                break
            buf += d
        print(buf.decode().rstrip("\n"), flush=True)
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", SCRIPT])
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(ca);
    run_until_line(cmd, input, "Server received: hello")
}

#[test]
fn openssl_s_client_and_python_ssl_talk_to_the_server_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(
        dir.path(),
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        &NOT_CA,
    );
    let out = s_client(serve_once(&cert, &key), &cert, b"hello\n");
    assert!(out.lines().any(|l| l == "Server received: hello"), "{out}");
    let out = python_ssl(serve_once(&cert, &key), &cert, b"hello\n");
    assert!(out.lines().any(|l| l == "Server received: hello"), "{out}");
}
